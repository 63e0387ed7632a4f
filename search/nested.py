"""Nested LOSO: an honest estimate of what a whole search procedure delivers.

    tsfmicro search --nested [--outer-folds K] ...      (or run_nested(SearchConfig(nested=True)))

A search picks the trial with the best pooled LOSO objective and that trial's own figure is
scored on the very folds that picked it, so it is optimistic. A nested search takes subjects
out *before* any choice is made:

- **outer folds.** The subjects are dealt into K groups (`outer_groups`): by default one
  subject each (a true nested LOSO); with `--outer-folds K`, the sorted subject ids permuted
  with `numpy.random.default_rng(seed)` and cut into K consecutive groups whose sizes differ by
  at most one (`numpy.array_split`). Deterministic from the search's seed.
- **inside each outer fold** the whole search (same space, sampler, trial count, scheduler,
  resources, machine settings and seed) runs as an *inner search* (`search.run.run_search`)
  whose data is only the outer-training subjects (`DataSpec.subjects`), with LOSO over them.
  Its champion (the best complete trial by the search's evaluation mode and objective) is
  refitted on every outer-training subject with registration's recipe
  (`search.registry.refit_predict` = `refit`'s `train_full`, as a Ray task with a fold's
  resources) and predicts the outer test subjects in eval mode.
- **the estimate.** The outer predictions of all K folds, pooled, give ACC, UF1 and UAR with
  subject-bootstrap intervals (`tsfmicro.metrics.evaluate`, the search's `bootstrap`
  resamples, seed 0). It is the performance of the *procedure* (sample configurations, choose
  by inner LOSO, refit), on subjects that took no part in any choice; not the performance of
  one configuration (each outer fold may choose a different one: `choice_counts`).
- **what is registered: nothing.** A nested search's product is its estimate. The model whose
  procedure it describes is the one the flat search with the same settings registers; the
  nested search writes that search's settings (`flat_search.yaml`) and prints its command.
  Inner searches never register.
- **side by side when the cluster has room.** One inner search is planned as a flat search
  (`search.run.plan_resources`); when the cluster fits several (`inner_room`), that many run
  at once, each a Ray task driving its own Tune experiment with its plan pinned to that size
  (`run_side_by_side`); else they run one after another in this driver, each using the whole
  cluster. Refits run in this driver as each inner search ends.

Storage: `<storage>/<name>/` holds the settings (`tsfmicro_search.json`, nested: true), the
outer plan and each finished outer fold's record (`outer/fold-<k>.json` and `.npz`: the chosen
configuration, the outer test predictions; written atomically, no pickles), the flat search's
settings (`flat_search.yaml`), and the inner searches' Tune folders under `inner/`.
`--resume NAME` skips finished outer folds and resumes an unfinished inner search through
Tune's restore.

MLflow, one tree in the search's experiment: the nested search's run (kind search, tag
`tsfmicro.nested=true`; the figure as `nested_uf1`, `nested_uf1_ci_lo`, ...; `nested.json`)
> one run per outer fold (kind outer: its test subjects and chosen configuration as params,
its test scores, its inner search's own search-best and BBC figures) > the inner search's
trial runs > their fold runs; every run below the search run is tagged with the nested
search (`tsfmicro.nested_in`) and the outer fold (`tsfmicro.outer_fold`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from search.checks import require_valid
from search.config import SearchConfig, outer_fold_problem
from search.data import dataset_label, load_search_pairs
from search.endings import guarded
from search.honest import driver_tags, json_safe, reopen_run
from search.run import (
    FLAT_SETTINGS_FILE,
    SETTINGS_FILE,
    checked_experiment_dir,
    experiment_dir,
    init_ray,
    open_experiment,
    placed,
    run_search,
)
from search.schema import (
    CI_HI,
    CI_LO,
    FIGURE_BBC,
    FIGURE_NESTED,
    FIGURE_SEARCH_BEST,
    FOLDS_DONE,
    KIND_OUTER,
    NESTED_ARTIFACT,
    OBJECTIVE,
    OUTER_ARTIFACT,
    PARENT_RUN_TAG,
    STATE_COMPLETE,
    STATE_KILLED,
    STATE_RUNNING,
    NestedMetric,
    OuterMetric,
    OuterParam,
    SearchMetric,
    Tag,
    figure_metric,
    outer_test_metric,
    run_filter,
)
from tsfmicro.config import preset
from tsfmicro.errors import ConfigError
from tsfmicro.metrics import METRICS
from tsfmicro.runinfo import git_commit

OUTER_DIR = "outer"  # <storage>/<name>/outer/: the plan and each finished outer fold
INNER_DIR = "inner"  # <storage>/<name>/inner/: the inner searches' Tune folders
PLAN_FILE = "plan.json"
SEED = 0  # the subject bootstrap's seed (as every interval of a search)
LEVEL = 0.95
MEANING = (
    "the performance of the whole search procedure (sample configurations, choose the inner "
    "LOSO champion, refit it on the training subjects) on subjects that took no part in any "
    "choice; not the performance of one configuration"
)
REGISTERED = (
    "nothing: a nested search's product is its estimate; the model whose procedure it "
    "describes is the one the flat search below registers"
)
SIDE_BY_SIDE = (
    "inner searches run side by side (each a Ray task) when the cluster fits several, each as "
    "large as one alone would plan; else one after another, each using the whole cluster"
)


@dataclass
class NestedOutcome:
    name: str
    experiment_id: str
    experiment: str
    search_run_id: str
    outer: list[dict[str, Any]]  # one record per outer fold (fold-<k>.json)
    estimate: dict[str, Any] | None  # estimates.nested
    seconds: float  # this driver's wall time (a resumed search: since the resume)
    flat_command: str
    extra: dict[str, Any] = field(default_factory=dict)


def inner_name(name: str, k: int) -> str:
    return f"{name}-outer{k}"


def outer_groups(subjects: list[str], outer_folds: int | None, seed: int) -> list[list[str]]:
    """The outer test groups: one subject each in sorted order (outer_folds None or equal to
    the subject count), else the sorted ids permuted with default_rng(seed) and cut into
    `outer_folds` consecutive groups of near-equal size (array_split); each group sorted."""
    names = sorted(str(s) for s in subjects)
    k = len(names) if outer_folds is None else int(outer_folds)
    problem = outer_fold_problem(len(names), k)
    if problem:
        raise ConfigError(problem)
    if k == len(names):
        return [[s] for s in names]
    order = np.random.default_rng(seed).permutation(len(names))
    return [sorted(names[i] for i in part) for part in np.array_split(order, k)]


def inner_config(cfg: SearchConfig, k: int, train_subjects: list[str]) -> SearchConfig:
    """The inner search of outer fold `k`: the nested search's settings on the outer-training
    subjects only, never registering, its Tune folder under the nested search's."""
    return cfg.replace(
        name=inner_name(cfg.name, k),
        nested=False,
        outer_folds=None,
        register=False,
        data=replace(cfg.data, subjects=tuple(train_subjects)),
        storage_path=str(experiment_dir(cfg) / INNER_DIR),
    )


def flat_settings(cfg: SearchConfig) -> dict[str, Any]:
    """The settings of the flat search a nested search describes (a `--config` file): the
    same search on every subject, registering its champion (a nested search's own `register`
    has no effect)."""
    flat = cfg.replace(nested=False, outer_folds=None, register=True).to_dict()
    flat.pop("name")
    flat.pop("nested")
    flat.pop("outer_folds")
    return json.loads(json.dumps(flat, default=list))  # tuples as lists: plain YAML


def flat_yaml(cfg: SearchConfig) -> str:
    """flat_settings as the YAML of `--config` (space parameters in their order)."""
    import yaml

    return yaml.safe_dump(flat_settings(cfg), sort_keys=False)


def flat_name(cfg: SearchConfig) -> str:
    """The name the printed flat command gives the flat search (the dashboard shows that
    search's search-best and BBC figures beside this one's nested figure)."""
    return f"{cfg.name}-flat"


def flat_command(cfg: SearchConfig) -> str:
    path = experiment_dir(cfg) / FLAT_SETTINGS_FILE
    return f"tsfmicro search --config {path} --name {flat_name(cfg)}"


# ---- files ----------------------------------------------------------------------------------


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _outer_paths(cfg: SearchConfig, k: int) -> tuple[Path, Path]:
    folder = experiment_dir(cfg) / OUTER_DIR
    return folder / f"fold-{k}.json", folder / f"fold-{k}.npz"


def save_outer(cfg: SearchConfig, record: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """An outer fold's record and predictions: the npz first, then the JSON that names it
    (the JSON is what marks the outer fold finished); each written to a temporary name and
    renamed. String arrays are stored as unicode (no object arrays, so no pickles)."""
    json_path, npz_path = _outer_paths(cfg, record["outer_fold"])
    buffer = tempfile.SpooledTemporaryFile()
    np.savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    buffer.seek(0)
    _write_atomic(npz_path, buffer.read())
    _write_atomic(json_path, json.dumps(record, indent=2).encode())


def load_outer(cfg: SearchConfig, k: int) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    json_path, npz_path = _outer_paths(cfg, k)
    if not json_path.is_file() or not npz_path.is_file():
        return None
    record = json.loads(json_path.read_text())
    with np.load(npz_path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    return record, arrays


# ---- MLflow ---------------------------------------------------------------------------------


def _find_outer_run(client: Any, experiment_id: str, name: str, k: int) -> Any | None:
    runs = client.search_runs(
        [experiment_id],
        filter_string=run_filter({Tag.KIND: KIND_OUTER, Tag.SEARCH: name, Tag.OUTER_FOLD: str(k)}),
        max_results=1,
    )
    return runs[0] if runs else None


def open_outer_run(
    client: Any,
    experiment_id: str,
    cfg: SearchConfig,
    search_run: str,
    k: int,
    test: list[str],
    train: list[str],
    tags: dict[str, str],
) -> str:
    """Outer fold k's run, RUNNING: found again by its tags (a resume) or created below the
    nested search's run."""
    found = _find_outer_run(client, experiment_id, cfg.name, k)
    if found is not None:
        return reopen_run(client, found)
    from mlflow.entities import Param

    all_tags = {
        **tags,
        **driver_tags(),
        PARENT_RUN_TAG: search_run,
        Tag.KIND: KIND_OUTER,
        Tag.SEARCH: cfg.name,
        Tag.NESTED_IN: cfg.name,
        Tag.OUTER_FOLD: str(k),
        Tag.INNER_SEARCH: inner_name(cfg.name, k),
        Tag.STATE: STATE_RUNNING,
    }
    run = client.create_run(experiment_id, tags=all_tags, run_name=f"{cfg.name}-outer{k}")
    client.log_batch(
        run.info.run_id,
        params=[
            Param(OuterParam.TEST_SUBJECTS, ",".join(test)[:6000]),
            Param(OuterParam.TRAIN_SUBJECTS, ",".join(train)[:6000]),
        ],
    )
    return run.info.run_id


def log_outer(client: Any, run_id: str, record: dict[str, Any], table: Any) -> None:
    """An outer fold's result on its run: the chosen configuration (params), its test scores,
    its inner objective and its cost (metrics), its test predictions (a CSV)."""
    from mlflow.entities import Metric, Param

    stamp = int(time.time() * 1000)
    existing = client.get_run(run_id).data.params
    params = [Param(OuterParam.CHOSEN_TRIAL, record["trial_id"])] + [
        Param(k, str(v)[:6000]) for k, v in sorted(record["params"].items())
    ]
    params = [p for p in params if p.key not in existing]  # a resume logs them once
    values = {outer_test_metric(m): record["test"][m] for m in METRICS}
    cost = record["cost"]
    values.update(
        {
            OuterMetric.INNER_OBJECTIVE: record["inner_objective"],
            OuterMetric.N_TEST: record["n_test"],
            OuterMetric.SECONDS: cost["seconds"],
            OuterMetric.INNER_FOLDS: cost["inner_folds"],
            OuterMetric.REFIT_SECONDS: cost["refit_seconds"],
        }
    )
    metrics = [
        Metric(k, float(v), stamp, 0) for k, v in values.items() if v is not None and np.isfinite(v)
    ]
    client.log_batch(run_id, metrics=metrics, params=params)
    with tempfile.TemporaryDirectory(prefix="tsfmicro-outer-") as tmp:
        path = Path(tmp) / OUTER_ARTIFACT
        table.to_csv(path, index=False)
        client.log_artifact(run_id, str(path))


def close_nested_runs(client: Any, experiment_id: str, name: str, reason: str) -> list[str]:
    """End every RUNNING run below a nested search (its outer fold runs and anything an inner
    search left) as KILLED."""
    from search.tracking import end_run

    runs = client.search_runs(
        [experiment_id],
        filter_string=run_filter({Tag.NESTED_IN: name}, status="RUNNING"),
        max_results=5000,
    )
    for run in runs:
        end_run(client, run.info.run_id, "KILLED", reason, state=STATE_KILLED)
    return [r.info.run_id for r in runs]


def log_estimate(client: Any, run_id: str, estimate: dict[str, Any]) -> None:
    """The nested figure (nested_uf1, its interval, ...), the cost and nested.json on the
    nested search's run."""
    from mlflow.entities import Metric

    from search.honest import note_no_report

    stamp = int(time.time() * 1000)
    metrics = []
    for m in METRICS:
        for suffix, value in zip(
            ("", CI_LO, CI_HI), (estimate[m], *estimate[m + "_ci"]), strict=True
        ):
            if value is not None:
                metrics.append(Metric(figure_metric(FIGURE_NESTED, m) + suffix, value, stamp, 0))
    cost = estimate["cost"]
    counts = {
        SearchMetric.N_SUBJECTS: estimate["n_subjects"],
        SearchMetric.N_BOOT: estimate["n_boot"],
        NestedMetric.OUTER_FOLDS: estimate["outer_folds"],
        NestedMetric.SECONDS: cost["nested"]["seconds"],
        NestedMetric.FOLD_SECONDS: cost["nested"]["fold_seconds"] + cost["nested"]["refit_seconds"],
        NestedMetric.FOLDS: cost["nested"]["folds"],
        NestedMetric.REFITS: cost["nested"]["refits"],
        NestedMetric.FLAT_FOLDS: cost["flat"]["folds"],
        NestedMetric.FOLD_RATIO: cost["fold_ratio"],
        NestedMetric.PASS_RATIO: cost["sample_pass_ratio"],
    }
    metrics += [Metric(k, float(v), stamp, 0) for k, v in counts.items() if v is not None]
    client.log_batch(run_id, metrics=metrics)
    with tempfile.TemporaryDirectory(prefix="tsfmicro-nested-") as tmp:
        path = Path(tmp) / NESTED_ARTIFACT
        path.write_text(json.dumps(estimate, indent=2, default=str))
        client.log_artifact(run_id, str(path))
    note_no_report(
        client,
        run_id,
        "a nested search: its figure is the nested one; search-best and BBC belong to the "
        "flat search it describes (and each outer fold's run holds its inner search's)",
    )


# ---- the estimate ---------------------------------------------------------------------------


def _value_key(value: Any) -> str:
    """How a chosen value is counted: floats to 3 significant digits, the rest as written."""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def choice_counts(chosen: list[dict[str, Any]], names: list[str]) -> dict[str, dict[str, int]]:
    """For each searched parameter, how many outer folds chose each value (most chosen
    first); floats are counted at 3 significant digits."""
    out: dict[str, dict[str, int]] = {}
    for name in names:
        counts = Counter(_value_key(c["params"][name]) for c in chosen if name in c["params"])
        out[name] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return out


def training_units(samples: dict[str, int], subjects: list[str], trials: int) -> int:
    """Sample passes per epoch of one search over `subjects` (every trial trains every LOSO
    fold, each on all subjects but one: (S - 1) x N per trial) and its refit (N)."""
    n = sum(samples[s] for s in subjects)
    return trials * (len(subjects) - 1) * n + n


def nested_estimate(
    cfg: SearchConfig,
    pairs: Any,
    groups: list[list[str]],
    records: list[dict[str, Any]],
    arrays: list[dict[str, np.ndarray]],
) -> dict[str, Any]:
    """estimates.nested: the pooled outer predictions' scores with subject-bootstrap
    intervals, each outer fold's choice, the choice counts and the cost against the flat
    search's."""
    from tsfmicro.metrics import evaluate

    y_true = np.concatenate([a["y_true"] for a in arrays]).astype(np.int64)
    y_pred = np.concatenate([a["probs"].argmax(1) for a in arrays]).astype(np.int64)
    subjects = np.concatenate([a["subjects"] for a in arrays]).astype(str)
    report = evaluate(
        y_true, y_pred, subjects, pairs.class_names, n_boot=cfg.bootstrap, level=LEVEL, seed=SEED
    )
    all_subjects = pairs.subject_ids()
    samples = {s: int((pairs.subjects == s).sum()) for s in all_subjects}
    nested_units = sum(training_units(samples, r["train_subjects"], cfg.trials) for r in records)
    flat_units = training_units(samples, all_subjects, cfg.trials)
    nested_folds = int(sum(r["cost"]["inner_folds"] for r in records))
    flat_folds = cfg.trials * len(all_subjects)
    cost = {
        "nested": {
            "seconds": float(sum(r["cost"]["seconds"] for r in records)),
            "fold_seconds": float(sum(r["cost"]["inner_fold_seconds"] for r in records)),
            "refit_seconds": float(sum(r["cost"]["refit_seconds"] for r in records)),
            "folds": nested_folds,
            "refits": len(records),
            "sample_passes": nested_units,
        },
        "flat": {"folds": flat_folds, "refits": 1, "sample_passes": flat_units},
        "fold_ratio": nested_folds / flat_folds,
        "sample_pass_ratio": nested_units / flat_units,
        "note": "nested: measured over every outer fold (its inner search, refit and "
        "scoring; seconds of a resumed outer fold count from the resume); folds: fold "
        "trainings, pruned trials' included. flat: the same search on every subject, counted "
        "(no pruning). sample passes: training samples seen per epoch, every trial training "
        "every fold (trials x (S-1) x N per search, + N for its refit)",
    }
    chosen = [
        {
            "outer_fold": r["outer_fold"],
            "test_subjects": r["test_subjects"],
            "inner_search": r["inner_search"],
            "trial_id": r["trial_id"],
            "params": r["params"],
            "inner_objective": r["inner_objective"],
            "test": r["test"],
        }
        for r in records
    ]
    out: dict[str, Any] = {
        "figure": FIGURE_NESTED,
        **{m: float(getattr(report, m)) for m in METRICS},
        **{m + "_ci": [float(v) for v in report.ci[m]] for m in METRICS},
        "level": LEVEL,
        "n_boot": int(cfg.bootstrap),
        "seed": SEED,
        "n_subjects": int(report.n_subjects),
        "n_samples": int(report.n_samples),
        "eval_mode": cfg.eval_mode,
        "objective": cfg.objective,
        "outer_folds": len(groups),
        "groups": groups,
        "grouping": "one subject each (sorted)"
        if all(len(g) == 1 for g in groups) and len(groups) == len(all_subjects)
        else f"sorted subject ids permuted with numpy default_rng({cfg.seed}), cut into "
        f"{len(groups)} groups (array_split)",
        "chosen": chosen,
        "choice_counts": choice_counts(chosen, list(cfg.space.names)),
        "cost": cost,
        "optimistic": False,
        "meaning": MEANING,
        "method": "nested LOSO: per outer fold, the whole search on the outer-training "
        "subjects, its champion refitted on them and scored on the outer test subjects; "
        "pooled outer predictions, percentile subject-bootstrap intervals",
        "registered": None,
        "registered_note": REGISTERED,
        "inner_searches": SIDE_BY_SIDE,
        "flat_command": flat_command(cfg),
    }
    return json_safe(out)


# ---- the driver -----------------------------------------------------------------------------


def inner_room(cfg: SearchConfig, inner_subjects: int, pending: int) -> tuple[int, Any]:
    """How many inner searches run side by side, and the resources each keeps to (None: one at
    a time, each planned for the whole cluster as a flat search is).

    One inner search is planned as a flat search would be on the connected cluster
    (search.run.plan_resources: fold tasks per trial, trials at once, the latter at most the
    trial count); it needs concurrency x (trial CPUs + parallelism x fold CPUs) CPUs and the
    matching GPUs. As many as fit that many times run at once, up to the outer folds left."""
    import math

    from search.capacity import cluster_capacity
    from search.run import plan_resources

    here = placed(cfg)
    parallelism, concurrency = plan_resources(here, inner_subjects)
    r = here.resources
    total = cluster_capacity(here)  # declared (--cluster-cpus/--cluster-gpus), else up now
    cpus = concurrency * (r.trial_cpus + parallelism * r.fold_cpus)
    room = math.floor((total.cpus + 1e-9) / cpus)
    if r.fold_gpus:
        room = min(
            room,
            math.floor(total.gpus / (concurrency * parallelism * r.fold_gpus) + 1e-9),
        )
    side = max(1, min(room, pending))
    if side == 1:
        return 1, None
    return side, replace(cfg.resources, concurrency=concurrency, fold_parallelism=parallelism)


def _inner_task(inner: SearchConfig, resume: bool, parent_run: str, run_tags: dict) -> Any:
    """Body of an inner search run as a Ray task (side by side): the flat search's driver in
    a worker. What it would have printed comes back in outcome.extra["said"]."""
    said: list[str] = []
    outcome = run_search(
        inner,
        resume=resume,
        progress=False,
        echo=said.append,
        parent_run=parent_run,
        run_tags=run_tags,
    )
    outcome.extra["said"] = said
    return outcome


def run_side_by_side(
    pending: list[int], side: int, prepare: Any, finish: Any, tags_of: Any, say: Any
) -> None:
    """The pending outer folds' inner searches as Ray tasks, `side` at once (each task a Tune
    driver holding no CPU; its trials and folds take the cluster's resources as a flat
    search's do). As each ends, its champion is refitted and the outer fold recorded (in this
    driver, `finish`) and the next inner search starts. On any error or interruption the
    inner searches still running are cancelled (their Tune loops stop, their runs are closed
    by the nested search's own clean-up)."""
    import ray

    task = ray.remote(num_cpus=0, max_retries=0)(_inner_task)
    queue = list(pending)
    running: dict[Any, tuple[int, SearchConfig, str, float]] = {}
    try:
        while queue or running:
            while queue and len(running) < side:
                k = queue.pop(0)
                inner, resume, outer_run, fold_started = prepare(k)
                ref = task.options(name=f"inner_search:{inner.name}").remote(
                    inner, resume, outer_run, tags_of(k)
                )
                running[ref] = (k, inner, outer_run, fold_started)
            ready, _ = ray.wait(list(running), num_returns=1)
            k, inner, outer_run, fold_started = running.pop(ready[0])
            outcome = ray.get(ready[0])
            for line in outcome.extra.get("said", [])[-3:]:
                say(f"  {inner.name}: {line}")
            finish(k, inner, outcome, outer_run, fold_started)
    finally:
        for ref in running:
            ray.cancel(ref)
        if running:  # let their drivers stop and close their runs before ours closes the rest
            ray.wait(list(running), num_returns=len(running), timeout=60)


def _check_plan(cfg: SearchConfig, groups: list[list[str]], resume: bool) -> None:
    """The outer plan is written once; a resume checks the data still splits the same way."""
    path = experiment_dir(cfg) / OUTER_DIR / PLAN_FILE
    plan = {"outer_folds": len(groups), "groups": groups, "seed": cfg.seed}
    if resume and path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("groups") != groups:
            raise ConfigError(
                f"cannot resume {cfg.name!r}: its data no longer splits into the outer folds it "
                f"started with ({path})"
            )
        return
    _write_atomic(path, json.dumps(plan, indent=2).encode())


@guarded  # the name is held while it runs; SIGINT/SIGTERM end it cleanly (search.endings)
def run_nested(
    cfg: SearchConfig, *, resume: bool = False, progress: bool = True, echo: Any = None
) -> NestedOutcome:
    """Run (or, with resume=True, continue) a nested search; see the module docstring."""
    import pandas as pd

    from search.honest import (
        end_search_run,
        open_search_run,
        search_run_params,
        search_run_tags,
    )
    from search.registry import refit_predict
    from search.space import resolve_configs
    from search.tracking import end_run
    from tsfmicro.datasets import cross
    from tsfmicro.metrics import confusion_matrix, scores

    say = echo or (lambda message: print(message, file=sys.stderr))
    if not cfg.nested:
        raise ConfigError(f"search {cfg.name!r} is not nested: run it with search.run.run_search")
    started = time.perf_counter()
    require_valid(cfg)  # before any data, Ray or MLflow run (search.checks)
    exp_dir = checked_experiment_dir(cfg, resume)

    dataset, protocol = dataset_label(cfg.data)
    if cross.is_cross(protocol):  # folds by dataset (tsfmicro.datasets.cross)
        raise ConfigError(
            f"nested search {cfg.name!r}: protocol {protocol} holds out whole datasets, and "
            "nested LOSO splits subjects; run it as a flat search"
        )
    base_model = preset(cfg.preset)
    pairs = load_search_pairs(cfg.data, base_model.image_size, seed=cfg.seed, progress=progress)
    base_model = base_model.replace(num_classes=pairs.num_classes)
    base_train = cfg.train.replace(seed=cfg.seed)
    subjects = pairs.subject_ids()
    problem = outer_fold_problem(len(subjects), cfg.outer_folds, cfg.max_val_subjects())
    if problem:  # before any work: no Ray, no MLflow run, no settings file
        raise ConfigError(f"nested search {cfg.name!r}: {problem}")
    groups = outer_groups(subjects, cfg.outer_folds, cfg.seed)
    say(
        f"nested search {cfg.name}: {dataset} / {protocol}, {len(subjects)} subjects in "
        f"{len(groups)} outer folds; inside each, a search of {cfg.trials} trials (preset "
        f"{cfg.preset}, sampler {cfg.sampler}, scheduler {cfg.scheduler}, objective "
        f"{cfg.eval_mode} {cfg.objective}) on the other subjects; {SIDE_BY_SIDE}"
        + ("; LABELS SHUFFLED (a chance-level control)" if cfg.data.shuffle_labels else "")
    )

    client, exp_name, experiment_id = open_experiment(cfg, dataset, protocol, resume, say)
    _check_plan(cfg, groups, resume)
    _write_atomic(exp_dir / FLAT_SETTINGS_FILE, flat_yaml(cfg).encode())
    common = search_run_tags(cfg, dataset, protocol, git_commit())
    search_run = open_search_run(
        client,
        experiment_id,
        cfg.name,
        tags={
            **common,
            Tag.NESTED: "true",
            Tag.FLAT_SEARCH: flat_name(cfg),
            Tag.STORAGE_PATH: str(Path(cfg.storage_path).resolve()),
        },
        params={**search_run_params(cfg, len(subjects), len(pairs)), "outer_folds": len(groups)},
        settings=cfg.to_dict(),
    )
    finished: dict[int, tuple[dict[str, Any], dict[str, np.ndarray]]] = {}
    tags = {Tag.NESTED_IN: cfg.name}

    def prepare(k: int) -> tuple[SearchConfig, bool, str, float]:
        """Outer fold k's run and its inner search's settings (resumed where Tune can)."""
        test = groups[k - 1]
        train = [s for s in subjects if s not in set(test)]
        say(
            f"outer fold {k}/{len(groups)}: test subject(s) {', '.join(test)}; inner search "
            f"{inner_name(cfg.name, k)} on {len(train)} subjects"
        )
        outer_run = open_outer_run(client, experiment_id, cfg, search_run, k, test, train, common)
        inner = inner_config(cfg, k, train)
        if pinned is not None:  # side by side: each inner search keeps to its share
            inner = inner.replace(resources=pinned)
        inner_dir = experiment_dir(inner)
        inner_resume = (inner_dir / SETTINGS_FILE).is_file()
        if inner_resume:
            from ray import tune

            if not tune.Tuner.can_restore(str(inner_dir)):
                # stopped before Tune wrote its first state: nothing to keep, start again
                shutil.rmtree(inner_dir)
                inner_resume = False
        return inner, inner_resume, outer_run, time.perf_counter()

    def finish(k: int, inner: SearchConfig, outcome: Any, outer_run: str, fold_started: float):
        """Refit outer fold k's inner champion on its training subjects, score it on the test
        subjects, and record, log and save the outer fold."""
        test = groups[k - 1]
        train = [s for s in subjects if s not in set(test)]
        if outcome.extra.get("interrupted"):
            raise KeyboardInterrupt  # Tune stopped on Ctrl-C: stop here, --resume later
        if outcome.best is None:
            raise ConfigError(
                f"outer fold {k}: inner search {inner.name} completed no trial, so there "
                "is no configuration to refit (a time budget too short?)"
            )
        best = outcome.best
        model_cfg, train_cfg = resolve_configs(base_model, base_train, best["params"])
        say(
            f"outer fold {k}: refitting trial {best['trial_id']} ({cfg.eval_mode} "
            f"{cfg.objective} {best['metrics'][OBJECTIVE]:.3f} on the inner LOSO) on "
            f"{len(train)} subjects, predicting {', '.join(test)}"
        )
        init_ray(cfg)
        resources = placed(cfg).resources
        test_pairs = pairs.only_subjects(test)
        probs, refit_seconds = refit_predict(
            pairs.only_subjects(train),
            test_pairs,
            model_cfg,
            train_cfg,
            resources.fold_cpus,
            resources.fold_gpus,
            cfg.machine,
        )
        probs = np.asarray(probs, dtype=np.float32)
        y_true = test_pairs.labels.numpy().astype(np.int64)
        y_pred = probs.argmax(1)
        test_scores = scores(confusion_matrix(y_true, y_pred, pairs.num_classes))
        index = np.flatnonzero(np.isin(pairs.subjects.astype(str), test))
        sampled = {n: best["params"][n] for n in cfg.space.names if n in best["params"]}
        record = {
            "outer_fold": k,
            "test_subjects": test,
            "train_subjects": train,
            "inner_search": inner.name,
            "trial_id": best["trial_id"],
            "params": sampled,
            "config": best["params"],
            "inner_objective": float(best["metrics"][OBJECTIVE]),
            "test": {m: float(test_scores[m]) for m in METRICS},
            "n_test": len(test_pairs),
            "run_id": outer_run,
            "predictions": _outer_paths(cfg, k)[1].name,
            "cost": {
                "seconds": time.perf_counter() - fold_started,
                "inner_seconds": float(outcome.seconds),
                "inner_fold_seconds": float(outcome.fold_seconds),
                "inner_folds": int(sum(t["metrics"].get(FOLDS_DONE, 0) for t in outcome.trials)),
                "inner_trials": len(outcome.trials),
                "refit_seconds": float(refit_seconds),
            },
        }
        record = json_safe(record)
        stored = {
            "index": index,
            "keys": test_pairs.keys.astype(str),
            "subjects": test_pairs.subjects.astype(str),
            "y_true": y_true,
            "probs": probs,
        }
        table = pd.DataFrame(
            {
                "key": stored["keys"],
                "subject": stored["subjects"],
                "label": y_true,
                "pred": y_pred,
                **{f"p_{c}": probs[:, i] for i, c in enumerate(pairs.class_names)},
            }
        )
        log_outer(client, outer_run, record, table)
        save_outer(cfg, record, stored)
        end_run(client, outer_run, "FINISHED", state=STATE_COMPLETE)
        say(
            f"outer fold {k}: test "
            + ", ".join(f"{m.upper()} {record['test'][m]:.3f}" for m in METRICS)
            + f" on {len(test_pairs)} samples"
        )
        finished[k] = (record, stored)

    # SIGINT and SIGTERM are the guard's (search.endings, @guarded): they raise here and the
    # finally below closes the runs
    status, reason = "KILLED", "the nested search stopped before every outer fold finished"
    try:
        pending = []
        for k, test in enumerate(groups, start=1):
            done = load_outer(cfg, k)
            if done is not None and done[0]["test_subjects"] == test:
                say(f"outer fold {k}/{len(groups)}: finished before, kept ({done[0]['trial_id']})")
                run = _find_outer_run(client, experiment_id, cfg.name, k)
                if run is not None and run.data.tags.get(Tag.STATE) != STATE_COMPLETE:
                    end_run(client, run.info.run_id, "FINISHED", state=STATE_COMPLETE)
                finished[k] = done
            else:
                pending.append(k)
        init_ray(cfg)
        side, pinned = inner_room(cfg, max(len(subjects) - len(g) for g in groups), len(pending))
        if side == 1:
            for k in pending:
                inner, inner_resume, outer_run, fold_started = prepare(k)
                outcome = run_search(
                    inner,
                    resume=inner_resume,
                    progress=progress,
                    echo=say,
                    parent_run=outer_run,
                    run_tags={**tags, Tag.OUTER_FOLD: str(k)},
                )
                finish(k, inner, outcome, outer_run, fold_started)
        else:
            say(
                f"{side} inner searches side by side (each {pinned.concurrency} trial(s) of "
                f"{pinned.fold_parallelism} fold task(s) at once), each a Ray task of its own"
            )
            run_side_by_side(
                pending, side, prepare, finish, lambda k: {**tags, Tag.OUTER_FOLD: str(k)}, say
            )
        records = [finished[k][0] for k in range(1, len(groups) + 1)]
        arrays = [finished[k][1] for k in range(1, len(groups) + 1)]
        for record, stored in zip(records, arrays, strict=True):
            index = np.asarray(stored["index"])
            if not np.array_equal(pairs.keys[index].astype(str), stored["keys"]):
                raise ConfigError(
                    f"outer fold {record['outer_fold']}: its stored predictions are of other "
                    "samples than the data has now"
                )
        estimate = nested_estimate(cfg, pairs, groups, records, arrays)
        log_estimate(client, search_run, estimate)
        status, reason = "FINISHED", ""
        return NestedOutcome(
            name=cfg.name,
            experiment_id=experiment_id,
            experiment=exp_name,
            search_run_id=search_run,
            outer=records,
            estimate=estimate,
            seconds=time.perf_counter() - started,
            flat_command=flat_command(cfg),
            extra={
                "fold_seconds": estimate["cost"]["nested"]["fold_seconds"]
                + estimate["cost"]["nested"]["refit_seconds"]
            },
        )
    except Exception as exc:
        status, reason = "FAILED", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        closed = close_nested_runs(
            client,
            experiment_id,
            cfg.name,
            reason or "the nested search driver stopped before this run finished",
        )
        if closed:
            say(f"closed {len(closed)} unfinished run(s) of the nested search as KILLED")
        end_search_run(client, search_run, status, reason or None)


# ---- text and the command ---------------------------------------------------------------------


def _num(value: Any, digits: int = 3) -> str:
    return "nan" if value is None else f"{float(value):.{digits}f}"


def format_nested(outcome: NestedOutcome) -> str:
    """The outer folds, the figure and what it means, the choice counts, the cost and what
    was registered."""
    est = outcome.estimate
    if est is None:
        return f"nested search {outcome.name}: no estimate"
    level = int(round(100 * est["level"]))
    lines = [
        f"nested LOSO of search {outcome.name}: {est['outer_folds']} outer folds over "
        f"{est['n_subjects']} subjects ({est['grouping']}); each chose by {est['eval_mode']} "
        f"{est['objective'].upper()} on an inner LOSO",
        f"  {'outer':>5}  {'test subjects':<20} {'chosen':<10} {'inner':>7} "
        + "".join(f"{'test ' + m.upper():>9}" for m in METRICS)
        + "  configuration",
    ]
    for c in est["chosen"]:
        subjects = ",".join(c["test_subjects"])
        lines.append(
            f"  {c['outer_fold']:>5}  {subjects[:20]:<20} {c['trial_id'][:10]:<10} "
            f"{_num(c['inner_objective']):>7} "
            + "".join(f"{_num(c['test'][m]):>9}" for m in METRICS)
            + "  "
            + " ".join(f"{k}={_value_key(v)}" for k, v in c["params"].items())
        )
    cells = "  ".join(
        f"{m.upper()} {_num(est[m])} [{_num(est[m + '_ci'][0], 2)},{_num(est[m + '_ci'][1], 2)}]"
        for m in METRICS
    )
    lines += [
        f"  nested estimate: {cells}  ({level}% intervals over {est['n_boot']} subject "
        f"resamples of the pooled outer predictions, {est['n_samples']} samples)",
        f"  what it means: {MEANING}.",
        "  chosen across outer folds (how often each value):",
    ]
    for name, counts in est["choice_counts"].items():
        lines.append(f"    {name}: " + ", ".join(f"{v} x{n}" for v, n in counts.items()))
    cost = est["cost"]
    nested, flat = cost["nested"], cost["flat"]
    lines += [
        f"  cost: {nested['seconds']:.0f} s summed over the outer folds ({nested['folds']} "
        f"inner fold trainings, {nested['fold_seconds']:.0f} s; {nested['refits']} refits, "
        f"{nested['refit_seconds']:.0f} s); the flat search trains {flat['folds']} folds + 1 "
        f"refit: nested/flat {cost['fold_ratio']:.1f}x the fold trainings, "
        f"{cost['sample_pass_ratio']:.1f}x the training samples",
        f"  {SIDE_BY_SIDE}.",
        f"  registered: {REGISTERED}:",
        f"    {outcome.flat_command}",
    ]
    return "\n".join(lines)


def outcome_json(outcome: NestedOutcome) -> dict[str, Any]:
    """The `--json` outcome of a nested search: the flat outcome's keys where they apply."""
    return {
        "name": outcome.name,
        "nested": True,
        "experiment": outcome.experiment,
        "search_run_id": outcome.search_run_id,
        "seconds": outcome.seconds,
        "fold_seconds": outcome.extra.get("fold_seconds"),
        "trials": [],
        "best": None,
        "registered": None,
        "estimates": {
            FIGURE_SEARCH_BEST: None,
            FIGURE_BBC: None,
            FIGURE_NESTED: outcome.estimate,
        },
        "estimates_note": "a nested search: search-best and BBC belong to the flat search it "
        f"describes ({outcome.flat_command})",
        "outer": outcome.outer,
        "flat_command": outcome.flat_command,
    }


def nested_command(cfg: SearchConfig, *, resume: bool, quiet: bool, json_path: Any) -> int:
    """`tsfmicro search --nested` (and `--resume` of a nested search)."""
    echo = (lambda message: None) if quiet else None  # --quiet: the result only
    outcome = run_nested(cfg, resume=resume, progress=not quiet, echo=echo)
    print(format_nested(outcome))
    print(
        f"nested search {cfg.name}: {len(outcome.outer)} outer folds in "
        f"{outcome.seconds:.0f} s; MLflow experiment '{outcome.experiment}' at "
        f"{cfg.tracking_uri}"
    )
    if json_path is not None:
        Path(json_path).write_text(json.dumps(outcome_json(outcome), indent=2, default=str))
    return 0 if outcome.estimate is not None else 1
