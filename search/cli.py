"""`tsfmicro search`, `register`, `pull` and `leaderboard`: thin wrappers over search.*.

Ray, Optuna and MLflow are imported only when a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from search.config import DEFAULT_STORAGE, local_storage_path
from search.schema import CHAMPION, DEFAULT_TRACKING_URI, model_name
from tsfmicro.recipes import RECIPES
from tsfmicro.vocab import EVAL_MODES, FOLD_GROUPS, OPTIMISTIC_MODES, SCORES


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    _add_search(subparsers)
    _add_register(subparsers)
    _add_pull(subparsers)
    _add_leaderboard(subparsers)


def _add_search(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "search",
        help="hyperparameter search over LOSO evaluations (Ray Tune + Optuna, logged to MLflow)",
        description="Search TSFmicro configurations: each trial is one configuration whose LOSO "
        "folds run as Ray tasks; every trial and fold is logged to MLflow; the best "
        "configuration is refitted on all subjects and registered. With no flags: the "
        "synthetic benchmark (generated on first use), the tiny preset, 4 trials, a local Ray "
        "and an MLflow SQLite store in the working directory.",
    )
    p.add_argument("--name", help="search name (default: search-<UTC time>)")
    p.add_argument("--resume", metavar="NAME", help="continue an interrupted search")
    p.add_argument("--config", type=Path, help="YAML file of SearchConfig fields; flags override")
    p.add_argument(
        "--check",
        action="store_true",
        help="check the whole configuration and print the plan (data, folds, trials, resources, "
        "where runs and models go); start nothing; exit 0 if valid, 2 with the problems",
    )
    d = p.add_argument_group("data")
    d.add_argument(
        "--dataset", help="synthetic (default), toy, casme2, samm, casme3, mmew, smic, composite"
    )
    d.add_argument("--root", help="the dataset copy's folder (real datasets)")
    d.add_argument("--protocol", help="protocol (default: the dataset's main one)")
    d.add_argument("--annotation", help="annotation file, when not in --root")
    d.add_argument("--layout", help="frame layout (CASME II: raw or cropped)")
    d.add_argument("--synth-dataset", help="layout the synthetic benchmark imitates (casme2)")
    d.add_argument("--synth-subjects", type=int, help="synthetic subjects (default 8)")
    d.add_argument("--synth-clips", type=int, help="synthetic clips per subject (default 10)")
    d.add_argument("--synth-difficulty", help="synthetic difficulty (default easy)")
    d.add_argument(
        "--synth-pair-frames",
        action="store_true",
        default=None,
        help="synthetic: also write the frames the published training-pair choice compares",
    )
    d.add_argument(
        "--shuffle-labels",
        action="store_true",
        default=None,
        help="permute the labels (with --seed): a chance-level control; the dataset is named "
        "<dataset>-shuffled, so it never shares an experiment or leaderboard with real labels",
    )
    d.add_argument("--toy-subjects", type=int, help="toy task: subjects (default 6)")
    d.add_argument("--toy-per-subject", type=int, help="toy task: samples per subject (12)")
    d.add_argument("--toy-classes", type=int, help="toy task: classes (default 3)")
    d.add_argument("--data-dir", help="where synthetic copies are written")
    d.add_argument("--cache-dir", help="face-crop cache")
    s = p.add_argument_group("space and model")
    s.add_argument("--preset", help="base model preset (default tiny)")
    s.add_argument(
        "--recipe",
        choices=list(RECIPES),
        help="base training recipe: default (the published values with a CPU budget: 12 "
        "epochs, batch 16, weight decay 0.05) or published (the public scripts' values for "
        "the dataset and protocol, tsfmicro.recipes); --set and --param change it",
    )
    s.add_argument("--space", type=Path, help="search space YAML (replaces the default space)")
    s.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="add or replace a searched field: int:LOW:HIGH, float:LOW:HIGH[:log], "
        "choice:A,B,C (e.g. weight_decay=float:0.01:1:log)",
    )
    s.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="fix a field for every trial (e.g. epochs=30, class_weighting=balanced), or a "
        "machine setting (device=cuda, compile=inductor, amp=false)",
    )
    r = p.add_argument_group("search")
    r.add_argument("--trials", type=int, help="number of trials (default 4)")
    r.add_argument("--sampler", choices=["tpe", "gp", "random", "grid"])
    r.add_argument("--scheduler", choices=["none", "asha"])
    r.add_argument(
        "--eval-mode",
        choices=EVAL_MODES,
        help="evaluation mode of the objective (default final; "
        f"{' and '.join(sorted(OPTIMISTIC_MODES))} are optimistic: epochs chosen on test "
        "subjects)",
    )
    r.add_argument("--objective", choices=list(SCORES), help="maximised (default uf1)")
    r.add_argument("--seed", type=int)
    r.add_argument("--time-budget", type=float, help="seconds; stop starting trials after this")
    r.add_argument("--no-register", action="store_true", help="skip refit and registration")
    r.add_argument(
        "--nested",
        action="store_true",
        default=None,
        help="nested LOSO: run the whole search inside each outer fold on the other subjects, "
        "refit its champion and score it on the held-out ones; the pooled outer scores "
        "estimate the search procedure (registers nothing; docs/search.md)",
    )
    r.add_argument(
        "--outer-folds",
        type=int,
        metavar="K",
        help="with --nested: K outer folds of subjects grouped at random from --seed "
        "(default: one subject each, a true nested LOSO)",
    )
    x = p.add_argument_group("resources and storage")
    x.add_argument("--fold-cpus", type=float, help="CPUs per fold task (default 1)")
    x.add_argument(
        "--fold-gpus",
        type=float,
        help="GPUs per fold task; fractions share a GPU (default: 0.25 where the cluster has "
        "GPUs, else 0)",
    )
    x.add_argument("--fold-parallelism", type=int, help="fold tasks of one trial at once")
    x.add_argument(
        "--fold-batch",
        type=int,
        help="folds per task, trained together on its device (default 1: folds spread over "
        "workers; 0: all of a trial's folds in one task)",
    )
    x.add_argument(
        "--fold-group",
        choices=list(FOLD_GROUPS),
        help="how a task's folds (--fold-batch above 1) train together: stacked into one model "
        "(default), each in a thread on a CUDA stream of its own (streams: on the CPU as many "
        "at once as --fold-cpus), or one after another (sequential)",
    )
    x.add_argument("--concurrency", type=int, help="trials at once")
    x.add_argument(
        "--cluster-cpus",
        type=float,
        metavar="N",
        help="with --ray-address: the most CPUs the cluster will hold for folds (an "
        "autoscaling cluster's max workers x each worker's); the plan is sized for them, not "
        "for the nodes up at the start, and trials wait for nodes to join (default: the "
        "nodes up)",
    )
    x.add_argument(
        "--cluster-gpus",
        type=float,
        metavar="N",
        help="with --ray-address: the most GPUs the cluster will hold (as --cluster-cpus)",
    )
    x.add_argument("--ray-address", help="Ray cluster address ('auto' inside a cluster job)")
    x.add_argument(
        "--storage-path",
        help=f"Tune results (default {DEFAULT_STORAGE}; shared storage on a multi-node cluster)",
    )
    x.add_argument("--tracking-uri", help=f"MLflow tracking URI (default {DEFAULT_TRACKING_URI})")
    x.add_argument(
        "--optuna-storage",
        metavar="URL",
        help="database of the search's Optuna study, named after the search (for "
        "optuna-dashboard and --resume): e.g. postgresql://user@host/db (default: optuna.db "
        "beside a local MLflow store, else under --storage-path)",
    )
    x.add_argument(
        "--quiet",
        action="store_true",
        help="print only the result (the leaderboard, estimates and what was registered)",
    )
    x.add_argument("--json", type=Path, help="also write the outcome as JSON to this file")
    p.set_defaults(handler=run_search_command)


def _parse_param(text: str) -> tuple[str, dict[str, Any]]:
    from tsfmicro.errors import ConfigError

    name, _, spec = text.partition("=")
    kind, _, rest = spec.partition(":")
    parts = rest.split(":") if rest else []
    try:
        if kind == "choice":
            values = [_scalar(v) for v in rest.split(",") if v]
            return name, {"type": "categorical", "choices": values}
        if kind in ("int", "float") and len(parts) in (2, 3):
            # whole for an int (Param refuses int:2.5:8 rather than truncate it)
            out: dict[str, Any] = {"type": kind, "low": float(parts[0]), "high": float(parts[1])}
            if len(parts) == 3:
                if parts[2] != "log":
                    raise ValueError(parts[2])
                out["log"] = True
            return name, out
    except ValueError:
        pass
    raise ConfigError(
        f"--param {text!r}: expected NAME=int:LOW:HIGH, NAME=float:LOW:HIGH[:log] "
        "or NAME=choice:A,B,..."
    )


def _scalar(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def build_search_config(args: argparse.Namespace) -> Any:
    import dataclasses

    import yaml

    from search.config import DataSpec, Resources, SearchConfig, default_train
    from search.data import recipe_train
    from search.space import DEFAULT_SPACE, SearchSpace
    from tsfmicro.config import MACHINE_FIELDS, MachineConfig, split_train_record
    from tsfmicro.errors import ConfigError

    base: dict[str, Any] = {}
    if args.config is not None:
        try:
            base = yaml.safe_load(args.config.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{args.config}: {exc}") from exc
        if not isinstance(base, dict):
            raise ConfigError(f"{args.config}: expected a mapping of SearchConfig fields")
        known = {f.name for f in dataclasses.fields(SearchConfig)}
        unknown = sorted(set(base) - known)
        if unknown:
            raise ConfigError(f"{args.config}: unknown field(s) {unknown}")
    data = dict(base.get("data") or {})
    for flag, key in [
        ("dataset", "dataset"),
        ("root", "root"),
        ("protocol", "protocol"),
        ("annotation", "annotation"),
        ("layout", "layout"),
        ("synth_dataset", "synth_dataset"),
        ("synth_subjects", "synth_subjects"),
        ("synth_clips", "synth_clips"),
        ("synth_difficulty", "synth_difficulty"),
        ("synth_pair_frames", "synth_pair_frames"),
        ("shuffle_labels", "shuffle_labels"),
        ("toy_subjects", "toy_subjects"),
        ("toy_per_subject", "toy_per_subject"),
        ("toy_classes", "toy_classes"),
        ("data_dir", "data_dir"),
        ("cache_dir", "cache_dir"),
    ]:
        if getattr(args, flag) is not None:
            data[key] = getattr(args, flag)
    resources = dict(base.get("resources") or {})
    for flag in (
        "fold_cpus",
        "fold_gpus",
        "fold_parallelism",
        "fold_batch",
        "fold_group",
        "concurrency",
        "cluster_cpus",
        "cluster_gpus",
    ):
        if getattr(args, flag) is not None:
            resources[flag] = getattr(args, flag)
    space = (
        SearchSpace.from_dict(base["space"], str(args.config))
        if "space" in base
        else (DEFAULT_SPACE)
    )
    if args.space is not None:
        space = SearchSpace.from_yaml(args.space)
    extra = dict(_parse_param(text) for text in args.param)
    # settings files written before the recipe/machine split hold machine fields in "train"
    recipe = recipe_train(getattr(args, "recipe", None) or "default", DataSpec(**data))
    train, moved = split_train_record(
        {**default_train().to_dict(), **recipe, **(base.get("train") or {})}
    )
    machine = {**moved.to_dict(), **(base.get("machine") or {})}
    for text in args.set:
        name, sep, value = text.partition("=")
        if not sep:
            raise ConfigError(f"--set {text!r}: expected NAME=VALUE")
        if name in MACHINE_FIELDS:  # a machine setting: never part of the space
            machine[name] = _scalar(value)
        else:
            extra[name] = _scalar(value)
    if extra:
        space = space.extend(SearchSpace.from_dict(extra, "--param/--set"))
    skip = ("data", "resources", "space", "train", "machine")
    values = {k: v for k, v in base.items() if k not in skip}
    for flag, key in [
        ("preset", "preset"),
        ("trials", "trials"),
        ("sampler", "sampler"),
        ("scheduler", "scheduler"),
        ("eval_mode", "eval_mode"),
        ("objective", "objective"),
        ("seed", "seed"),
        ("time_budget", "time_budget_s"),
        ("ray_address", "ray_address"),
        ("storage_path", "storage_path"),
        ("tracking_uri", "tracking_uri"),
        ("optuna_storage", "optuna_storage"),
    ]:
        if getattr(args, flag) is not None:
            values[key] = getattr(args, flag)
    if args.nested:
        values["nested"] = True
    if args.outer_folds is not None:
        values["outer_folds"] = args.outer_folds
    if args.no_register:
        values["register"] = False
    name = (
        args.name
        or values.pop("name", None)
        or ("search-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S"))
    )
    values.pop("name", None)
    return SearchConfig(
        name=name,
        data=DataSpec(**data),
        resources=Resources(**resources),
        space=space,
        train=train,
        machine=MachineConfig.from_dict(machine),
        **values,
    )


def run_search_command(args: argparse.Namespace) -> int:
    """`tsfmicro search`; stopped by SIGINT or SIGTERM, it says how to resume (its last line)
    and exits 128 + the signal (search.endings)."""
    from search.endings import SearchInterrupted, refuse_if_held
    from search.quiet import silence_dependencies
    from tsfmicro.errors import ConfigError

    silence_dependencies()  # before Ray, MLflow and Optuna are imported
    # A running search's name is refused before the heavy imports (the search takes the
    # lock itself later, search.endings); here only where flags alone say the storage path.
    name = args.resume or (args.name if args.config is None or args.storage_path else None)
    if name and not getattr(args, "check", False):
        try:
            storage = local_storage_path(args.storage_path or DEFAULT_STORAGE)
        except ConfigError:
            storage = None  # refused with the other settings' problems
        if storage is not None:
            refuse_if_held(storage, name)
    try:
        return _search_command(args)
    except SearchInterrupted as stop:
        from search.run import SETTINGS_FILE

        saved = Path(stop.storage_path).resolve() / stop.name / SETTINGS_FILE
        sys.stdout.flush()
        print("\n".join(stop.lines(saved.is_file())), file=sys.stderr, flush=True)
        return stop.exit_code


def _search_command(args: argparse.Namespace) -> int:
    from search.leaderboard import format_compact_leaderboard, leaderboard
    from search.run import load_settings, run_search

    if args.resume:
        storage = local_storage_path(args.storage_path or DEFAULT_STORAGE)
        cfg = load_settings(args.resume, storage)
        _note_resume_flags(args, cfg)
    else:
        cfg = build_search_config(args)
    if args.check:
        from search.plan import check_command

        return check_command(cfg, resume=bool(args.resume), json_path=args.json)
    from search.checks import require_valid

    require_valid(cfg)  # before the search holds its name, loads data or starts Ray
    if cfg.nested:
        from search.nested import nested_command

        return nested_command(cfg, resume=bool(args.resume), quiet=args.quiet, json_path=args.json)
    # --quiet: the result only (stdout); no progress, no notes on the way
    echo = (lambda message: None) if args.quiet else None
    outcome = run_search(cfg, resume=bool(args.resume), progress=not args.quiet, echo=echo)
    from search.honest import format_report

    board = leaderboard(cfg.tracking_uri, outcome.experiment, search=cfg.name)
    # about 120 columns wide; every column: tsfmicro leaderboard --search NAME
    print(format_compact_leaderboard(board, cfg.eval_mode, cfg.objective))
    honest = outcome.extra.get("honest")
    if honest:
        print(format_report(honest))
    else:
        print(f"honest estimates: none ({outcome.extra.get('estimates_note', 'not computed')})")
    overhead = outcome.seconds - outcome.fold_seconds
    print(
        f"search {cfg.name}: {len(outcome.trials)} trials in {outcome.seconds:.0f} s "
        f"(fold training {outcome.fold_seconds:.0f} s)\n  MLflow experiment "
        f"'{outcome.experiment}' at {cfg.tracking_uri}"
    )
    if cfg.data.shuffle_labels:  # part of the result: said with --quiet too
        print("  LABELS SHUFFLED: a chance-level control; its figures measure the selection's "
              "bias, not a model")
    if outcome.registered:
        r = outcome.registered
        print(
            f"registered {r['name']} version {r['version']}: {r['reason']}\n"
            f"  pull it with: tsfmicro pull {r['name']}@{CHAMPION} --tracking-uri "
            f"{cfg.tracking_uri}"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "name": cfg.name,
                    "experiment": outcome.experiment,
                    "seconds": outcome.seconds,
                    "fold_seconds": outcome.fold_seconds,
                    "overhead_seconds": overhead,
                    "trials": outcome.trials,
                    "best": outcome.best,
                    "registered": outcome.registered,
                    # search_best (optimistic), bbc (bias-corrected), nested (None: not run)
                    "estimates": honest["estimates"] if honest else None,
                    "estimates_note": outcome.extra.get("estimates_note"),
                    "honest": honest,
                    "plan": outcome.extra.get("plan"),
                    "optuna": outcome.extra.get("optuna"),  # its study: storage and name
                },
                indent=2,
                default=str,
            )
        )
    if outcome.best is None:
        print(f"search {cfg.name}: no trial completed all its folds", file=sys.stderr)
        return 1
    return 0


def _note_resume_flags(args: argparse.Namespace, cfg: Any) -> None:
    """A resume continues what was started: --nested / --outer-folds given with --resume
    that disagree with the search's settings are ignored, with a note."""
    kind = "nested" if cfg.nested else "flat"
    asked = []
    if args.nested is not None and bool(args.nested) != cfg.nested:
        asked.append("--nested")
    if args.outer_folds is not None and args.outer_folds != cfg.outer_folds:
        asked.append(f"--outer-folds {args.outer_folds}")
    if asked:
        print(
            f"note: resuming {cfg.name!r} as it was started (a {kind} search"
            + (f", {cfg.outer_folds} outer folds" if cfg.nested and cfg.outer_folds else "")
            + f"); {' and '.join(asked)} ignored",
            file=sys.stderr,
        )


def _add_register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "register",
        help="refit a finished search's best configuration and register it",
        description="Refit the best complete trial of a search on all subjects, log it as an "
        f"MLflow model, register it as {model_name('<dataset>', '<protocol>')}, and move the "
        f"'{CHAMPION}' alias if it beats the current champion.",
    )
    p.add_argument("name", help="the search's name")
    p.add_argument("--storage-path", default=DEFAULT_STORAGE)
    p.set_defaults(handler=run_register)


def run_register(args: argparse.Namespace) -> int:
    from search.quiet import silence_dependencies
    from search.run import register_search

    silence_dependencies()
    result = register_search(args.name, args.storage_path)
    print(f"registered {result['name']} version {result['version']}: {result['reason']}")
    return 0


def _add_pull(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "pull",
        help="download a registered model (NAME, NAME@alias or NAME/version)",
        description="Download a registered tsfmicro model and its config from MLflow; "
        "`tsfmicro predict --model DIR` then runs it.",
    )
    p.add_argument("model", help=f"e.g. {model_name('casme2', '5class')}@{CHAMPION}")
    p.add_argument("--out", type=Path, default=Path("models"), help="folder (default models/)")
    p.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI)
    p.set_defaults(handler=run_pull)


def run_pull(args: argparse.Namespace) -> int:
    from search.registry import pull

    name = args.model.replace("@", "_").replace("/", "_v")
    folder = pull(args.tracking_uri, args.model, args.out / name)
    print(
        f"{args.model} -> {folder}\n  run it with: tsfmicro predict --model {folder} "
        "--onset ONSET.jpg --apex APEX.jpg"
    )
    return 0


def _add_leaderboard(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "leaderboard",
        help="print trials ranked by a metric (--honest: a search's bias-corrected estimate)",
        description="Trials ranked by a metric, each with its difference from its search's "
        "champion (tied: the 95% interval contains 0). With --search NAME --honest: "
        "recompute the search's honest estimates (search-best, optimistic; BBC-CV "
        "bias-corrected) from its recorded predictions, log them on the search's MLflow run, "
        "and print them (docs/evaluation.md).",
    )
    p.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI)
    p.add_argument("--experiment", help="MLflow experiment (default: all tsfmicro experiments)")
    p.add_argument("--search", help="only this search's trials")
    p.add_argument("--eval-mode", default="final", choices=EVAL_MODES)
    p.add_argument("--metric", default="uf1", choices=list(SCORES))
    p.add_argument(
        "--honest",
        action="store_true",
        help="with --search: recompute its honest estimates and ties (no training)",
    )
    p.add_argument(
        "--storage-path",
        help="with --honest: the search's Tune folder, for the folds of pruned trials "
        "(default: the one the search recorded)",
    )
    p.add_argument("--bootstrap", type=int, help="with --honest: subject resamples "
                   "(default: the search's own setting)")  # fmt: skip
    p.add_argument("--json", type=Path, help="also write the rows (and estimates) as JSON")
    p.set_defaults(handler=run_leaderboard)


def run_leaderboard(args: argparse.Namespace) -> int:
    from search.leaderboard import leaderboard_command
    from search.quiet import silence_dependencies

    silence_dependencies()  # e.g. MLflow's bars while a search's stored estimates download
    return leaderboard_command(args)
