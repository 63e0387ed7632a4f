"""`tsfmicro train`: one LOSO training run, a results table, and its files in a folder.

The command only wires arguments to `tsfmicro.training.loso.run_loso`; everything
it does can be done from Python with the same functions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path("runs")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from tsfmicro.config import COMPILE_MODES, FUSIONS, PRESETS, TEMPORAL_MIXERS, TrainConfig
    from tsfmicro.recipes import RECIPES
    from tsfmicro.vocab import FOLD_GROUPS

    defaults = TrainConfig()
    p = subparsers.add_parser(
        "train",
        help="LOSO training of one configuration",
        description="Train one TSFmicro configuration with leave-one-subject-out folds, print "
        "pooled ACC/UF1/UAR for each evaluation mode, and write predictions, metrics and the "
        "config to an output folder.",
    )
    data = p.add_argument_group("data")
    data.add_argument(
        "--dataset",
        default="toy",
        help="toy (default: an in-memory synthetic motion task) or a dataset adapter "
        "(casme2, samm, casme3, mmew, smic, composite) read from --root",
    )
    data.add_argument("--root", type=Path, help="the dataset copy's folder")
    data.add_argument(
        "--protocol",
        help="dataset protocol (default: the dataset's main one); composite: 3class, lodo "
        "(leave one dataset out) or TRAIN-to-TEST such as casme2-to-samm (folds by dataset)",
    )
    data.add_argument("--annotation", type=Path, help="annotation spreadsheet, if not in --root")
    data.add_argument("--layout", help="frame layout where a dataset has several (CASME II)")
    data.add_argument(
        "--cache-dir",
        type=Path,
        help="face-crop cache (default: $TSFMICRO_CACHE or ~/.cache/tsfmicro)",
    )
    data.add_argument("--toy-subjects", type=int, default=6, help="toy: subjects (default 6)")
    data.add_argument(
        "--toy-per-subject", type=int, default=12, help="toy: samples per subject (default 12)"
    )
    data.add_argument("--toy-classes", type=int, default=3, help="toy: classes (default 3)")
    data.add_argument(
        "--shuffle-labels",
        action="store_true",
        help="permute the labels at random (a chance-level control)",
    )

    model = p.add_argument_group("model")
    model.add_argument(
        "--preset",
        choices=list(PRESETS),
        default="tiny",
        help="model preset (default: tiny; the published model is 'paper')",
    )
    model.add_argument("--fusion", choices=list(FUSIONS), help="fusion variant")
    model.add_argument("--temporal-depth", type=int, help="total temporal (RetNet) blocks")
    model.add_argument("--spatial-depth", type=int, help="spatial ViT blocks")
    model.add_argument("--mixer", choices=list(TEMPORAL_MIXERS), help="temporal token mixer")
    model.add_argument("--drop-path", type=float, help="stochastic depth rate")

    train = p.add_argument_group("training")
    train.add_argument(
        "--config",
        type=Path,
        help="YAML file with 'model' (optionally 'preset' and 'recipe') and 'train' sections; "
        "flags override it",
    )
    train.add_argument(
        "--recipe",
        choices=list(RECIPES),
        help="training recipe the other flags start from: default (the paper's text) or "
        "published (the public scripts' values for the dataset and protocol: 174 or 199 "
        "epochs, their weight decay, rotation and padding, ImageNet-mean fill, nearest "
        "rotation; tsfmicro.recipes)",
    )
    train.add_argument("--epochs", type=int, help=f"epoch budget (default {defaults.epochs})")
    train.add_argument("--batch-size", type=int, help=f"default {defaults.batch_size}")
    train.add_argument("--lr", type=float, help=f"AdamW learning rate (default {defaults.lr})")
    train.add_argument(
        "--weight-decay", type=float, help=f"AdamW weight decay (default {defaults.weight_decay})"
    )
    train.add_argument("--class-weighting", choices=["none", "balanced"])
    train.add_argument("--no-augment", action="store_true", help="turn augmentation off")
    train.add_argument(
        "--annotated-pairs",
        action="store_true",
        help="train on the annotated onset/apex pair, not the published training pair near it",
    )
    train.add_argument(
        "--val-subjects",
        type=int,
        help="inner validation subjects per fold (enables the 'val' mode)",
    )
    train.add_argument("--seed", type=int, help="run seed (default 0)")
    train.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    train.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
    train.add_argument(
        "--compile",
        choices=list(COMPILE_MODES),
        help="torch.compile the training step: inductor, cudagraphs (CUDA graphs, CUDA only), "
        "aot_eager (trace only); default off",
    )
    train.add_argument(
        "--fold-group",
        choices=list(FOLD_GROUPS),
        help="how folds train together: sequential (one after another), stacked (their "
        "models stacked into one), streams (each in a thread, and on CUDA a stream, of its "
        "own); default: stacked when --fold-batch is not 1, else sequential",
    )
    train.add_argument(
        "--fold-batch",
        type=int,
        default=1,
        help="folds trained at once (default 1: one after another; 0: all folds at once)",
    )
    train.add_argument(
        "--fold-streams",
        type=int,
        default=1,
        help="the same as --fold-group streams --fold-batch N: folds trained at once, each in "
        "a thread (and on CUDA a stream) of its own; on the CPU use one per core with "
        "--threads 1",
    )

    out = p.add_argument_group("output")
    out.add_argument(
        "--out",
        type=Path,
        help=f"output folder (default: {DEFAULT_OUT}/train-<run id>); an existing folder "
        "that holds files is refused unless --force",
    )
    out.add_argument(
        "--force",
        action="store_true",
        help="write into --out even if it holds files (the run's own files are replaced)",
    )
    out.add_argument(
        "--bootstrap",
        type=_positive_int,
        default=1000,
        help="subject-bootstrap replicates for the intervals (default 1000)",
    )
    out.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(handler=run)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def prepare_out(out_dir: Path, force: bool) -> None:
    """Refuse an output folder that already holds files (unless `force`), and check before
    any training that the folder can be created and written to."""
    import tempfile

    from tsfmicro.errors import ConfigError, InputError

    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file, not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise ConfigError(
            f"--out {out_dir} already holds files (an earlier run's?); choose another folder "
            "or pass --force to write into it"
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise InputError(f"--out {out_dir} cannot be written to: {exc.strerror}") from exc


def build_configs(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """ModelConfig, TrainConfig (the recipe) and MachineConfig from an optional YAML file,
    then the flags. The training values start from the named recipe (--recipe or the file's
    `recipe`; tsfmicro.recipes), which the file's `train` section and the flags override. A
    file's `train` section may still hold machine settings (device, amp, channels_last,
    compile, eval_batch_size), as files did before the recipe/machine split."""
    from tsfmicro.config import MachineConfig, ModelConfig, preset, split_train_record
    from tsfmicro.errors import ConfigError

    file_model: dict[str, Any] = {}
    file_train: dict[str, Any] = {}
    file_machine: dict[str, Any] = {}
    preset_name = args.preset
    recipe_name = getattr(args, "recipe", None)
    if args.config is not None:
        import yaml

        try:
            loaded = yaml.safe_load(args.config.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{args.config}: not valid YAML: {exc}") from exc
        keys = {"model", "train", "machine", "preset", "recipe"}
        if not isinstance(loaded, dict) or set(loaded) - keys:
            raise ConfigError(
                f"{args.config}: expected top-level keys model, train, machine, preset, recipe"
            )
        file_model = dict(loaded.get("model") or {})
        file_train = dict(loaded.get("train") or {})
        file_machine = dict(loaded.get("machine") or {})
        preset_name = loaded.get("preset", preset_name)
        recipe_name = recipe_name or loaded.get("recipe")
    args.recipe = recipe_name or "default"  # what run() logs and records
    flags_model = {
        "fusion": args.fusion,
        "temporal_depth": args.temporal_depth,
        "spatial_depth": args.spatial_depth,
        "temporal_mixer": args.mixer,
        "drop_path": args.drop_path,
    }
    flags_train = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "class_weighting": args.class_weighting,
        "val_subjects": args.val_subjects,
        "seed": args.seed,
        "augment": False if args.no_augment else None,
        "train_pairs": False if args.annotated_pairs else None,
    }
    flags_machine = {"device": args.device, "compile": args.compile}
    model_values = {**file_model, **{k: v for k, v in flags_model.items() if v is not None}}
    train_values = {
        **train_recipe(args, args.recipe),
        **file_train,
        **{k: v for k, v in flags_train.items() if v is not None},
    }
    base = preset(preset_name).to_dict()
    model_cfg = ModelConfig.from_dict({**base, **model_values})
    train_cfg, moved = split_train_record(train_values)
    machine_values = {
        **moved.to_dict(),
        **file_machine,
        **{k: v for k, v in flags_machine.items() if v is not None},
    }
    return model_cfg, train_cfg, MachineConfig.from_dict(machine_values)


def train_recipe(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """The TrainConfig values recipe `name` gives the data the flags name (--dataset,
    --protocol, --toy-classes), resolved without reading the data."""
    from tsfmicro.pairs import source_key
    from tsfmicro.recipes import recipe_values

    if name == "default":
        return recipe_values(name)
    return recipe_values(name, *source_key(args.dataset, args.protocol, args.toy_classes))


def recipe_line(args: argparse.Namespace, name: str) -> str:
    """Where a recipe's values come from, in one line (for the log and config.json)."""
    from tsfmicro.pairs import source_key
    from tsfmicro.recipes import describe

    if name == "default":
        return describe(name)
    return describe(name, *source_key(args.dataset, args.protocol, args.toy_classes))


def load_training_pairs(args: argparse.Namespace, image_size: int, seed: int) -> Any:
    """The PairSet named by the data flags: the toy task, or a dataset copy through the
    face-crop cache."""
    from tsfmicro.pairs import load_source_pairs

    return load_source_pairs(args, image_size=image_size, seed=seed, progress=not args.quiet)


def runner_from_args(args: argparse.Namespace, machine: Any = None) -> Any:
    """The runner that --fold-group, --fold-batch and --fold-streams ask for, with the machine
    settings `machine` (MachineConfig; default: the defaults)."""
    from tsfmicro.config import DEFAULT_MACHINE
    from tsfmicro.errors import ConfigError
    from tsfmicro.training.runners import Runner

    group, size = args.fold_group, args.fold_batch
    if args.fold_streams != 1:
        if group not in (None, "streams") or size != 1:
            raise ConfigError(
                "--fold-streams N is --fold-group streams --fold-batch N; give either it or "
                f"--fold-group/--fold-batch (got --fold-streams {args.fold_streams}, "
                f"--fold-group {group}, --fold-batch {size})"
            )
        group, size = "streams", args.fold_streams
    if group is None:
        group = "sequential" if size == 1 else "stacked"
    if group == "sequential" and size != 1:
        raise ConfigError(
            f"--fold-group sequential trains one fold at a time (--fold-batch {size})"
        )
    return Runner(group, size, machine=machine or DEFAULT_MACHINE)


def run(args: argparse.Namespace) -> int:
    import torch

    from tsfmicro.report import results_table
    from tsfmicro.runinfo import run_info
    from tsfmicro.training.loso import run_loso

    if args.threads:
        torch.set_num_threads(args.threads)
    model_cfg, train_cfg, machine = build_configs(args)
    runner = runner_from_args(args, machine)
    info = run_info()
    out_dir = args.out or DEFAULT_OUT / f"train-{info['run_id']}"
    prepare_out(out_dir, args.force)
    data = load_training_pairs(args, model_cfg.image_size, train_cfg.seed)
    model_cfg = model_cfg.replace(num_classes=data.num_classes)
    if args.shuffle_labels:
        data = data.shuffled_labels(train_cfg.seed)
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    recipe = recipe_line(args, args.recipe)
    folds_total = len(data.fold_ids())
    held_out = "" if data.folds is None else f", {folds_total} held-out dataset(s)"
    log(
        f"run {info['run_id']}: {data.name}, {len(data)} samples, "
        f"{len(data.subject_ids())} subjects{held_out}; preset {args.preset}, "
        f"fusion {model_cfg.fusion}, "
        f"{recipe}, {train_cfg.epochs} epochs, seed {train_cfg.seed}, device {machine.device}"
    )

    done = []
    what = "subject" if data.folds is None else "held out"

    def on_fold(fold: Any) -> None:
        done.append(fold)
        y = data.labels[fold.test_index].numpy()
        acc = float((fold.test_probs[-1].argmax(1) == y).mean())
        log(
            f"  fold {len(done)}/{folds_total} {what} {fold.subject}: {len(y)} test samples, "
            f"final acc {acc:.3f}, train loss {fold.train_loss[-1]:.3f}, {fold.seconds:.1f} s"
        )

    result = run_loso(data, model_cfg, train_cfg, runner, on_fold=on_fold)
    result.info.update(
        info,
        data={
            "dataset": args.dataset,
            "name": data.name,
            "root": str(args.root) if args.root else None,
            "shuffled_labels": args.shuffle_labels,
        },
        recipe={"name": args.recipe, "source": recipe},
    )
    reports = result.save(out_dir, n_boot=args.bootstrap)
    print(results_table(reports))  # with the per-part table of a run over several datasets
    _write_parts(reports, out_dir)
    print(
        f"run {info['run_id']} ({result.seconds:.1f} s): predictions, metrics and config "
        f"in {out_dir}"
    )
    return 0


def _write_parts(reports: dict[str, Any], out_dir: Path) -> None:
    """A pooled run over several datasets (the composite): each part's ACC/UF1/UAR per mode
    (LosoResult.part_reports, also in metrics.json under `<mode>.parts`) in parts.json.
    A cross-dataset run's held-out scores stay in metrics.json (`<mode>.held_out`)."""
    import json

    from tsfmicro.fileio import written_whole

    parts = {mode: r.extra["parts"] for mode, r in reports.items() if r.extra.get("parts")}
    if parts:
        with written_whole(Path(out_dir) / "parts.json") as temporary:
            temporary.write_text(json.dumps(parts, indent=2))
