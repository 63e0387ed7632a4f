"""Honest estimates of a search, from what the search already recorded (no training).

A search crowns the trial with the best pooled objective, on the very LOSO folds that then
score it, so the champion's own figure is optimistic. `tsfmicro.honest` measures and removes
that selection bias from per-subject confusion matrices; this module is the service's glue:

- **where the predictions come from.** At the end of a search, the driver reads every
  trial's last Tune checkpoint (`search.trial.load_folds`: each finished fold's test
  probabilities after every epoch) and takes, per fold, the epoch the search's evaluation
  mode uses (`tsfmicro.training.evaluation.select_epoch`), the same predictions the trial's
  pooled objective was computed from. This covers complete, pruned and failed trials alike.
  For a finished search read later (`tsfmicro leaderboard --search NAME --honest`), complete
  trials are read from MLflow alone (their `predictions.parquet`, rows of the search's mode);
  pruned and failed trials have no such artifact, so their folds are looked for in their
  Tune checkpoints under the search's storage folder (recorded on the search run); where
  none is found the trial is listed without tie figures, and the output says so.
- **which trials take part.** Only complete trials (a fold for every subject) can be the
  champion or be selected inside BBC; a pruned or failed trial is compared with the champion
  on the subjects it has (paired bootstrap over those subjects). Trials are in run order
  (the order the search started them), so exact ties go to the earliest.
- **where the figures go.** One MLflow run per search (`tsfmicro.kind=search`, tagged with the
  search's name): the figures as metrics (`search_best_uf1`, `bbc_uf1_ci_lo`, ...), the whole
  report as `honest.json`; each trial run gets its difference with the champion
  (`tie_diff`, `tied_with_best`, ...), which the leaderboards read.

Intervals use the search's own bootstrap settings (`SearchConfig.bootstrap` resamples, seed 0),
so the search-best interval is exactly the champion's logged `<mode>_<metric>_ci_lo/hi`.

In `published-oracle`, whose ACC comes from each subject's ACC epoch and whose UF1 and UAR
from its UF1 epoch, each trial carries both sets of predictions: the selection (champion,
BBC's in-bag choice, ties) uses the objective's own epochs, and each figure's ACC is read
from the ACC epochs, its UF1 and UAR from the UF1 epochs, as the trial's logged scores are.
"""

from __future__ import annotations

import io
import json
import math
import os
import socket
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from search.schema import (
    CI_HI,
    CI_LO,
    EXPERIMENT_PREFIX,
    FIGURE_BBC,
    FIGURE_NESTED,
    FIGURE_SEARCH_BEST,
    HONEST_ARTIFACT,
    KIND_SEARCH,
    KIND_TRIAL,
    OBJECTIVE,
    SETTINGS_ARTIFACT,
    STATE_COMPLETE,
    STATE_FAILED,
    STATE_KILLED,
    STATE_RUNNING,
    SearchMetric,
    Tag,
    TieMetric,
    figure_metric,
    run_filter,
)
from tsfmicro.errors import ConfigError, InputError
from tsfmicro.metrics import METRICS
from tsfmicro.vocab import EPOCH_PROBS_FILE, PREDICTIONS_FILE, SEPARATE_ACC_MODES

DEFAULT_BOOT = 1000  # SearchConfig.bootstrap's default, for searches that did not record it
SEED = 0  # the seed of every subject bootstrap of a search (LosoResult.evaluate's)
LEVEL = 0.95
FIGURE_LABELS = {
    FIGURE_SEARCH_BEST: "search-best",
    FIGURE_BBC: "bias-corrected",
    FIGURE_NESTED: "nested",
}
FIGURE_NOTES = {
    FIGURE_SEARCH_BEST: "OPTIMISTIC: the champion scored on the folds that chose it",
    FIGURE_BBC: "BBC-CV over subjects: the selection redone on resampled subjects, scored "
    "on the left-out ones (what to report)",
    FIGURE_NESTED: "not run for this search (nested LOSO is a search of its own, at many "
    "times the cost)",
}

Triple = tuple[np.ndarray, np.ndarray, np.ndarray]  # (subjects, y_true, y_pred)


@dataclass
class TrialInput:
    """One trial's held-out predictions in the search's evaluation mode."""

    trial_id: str
    state: str
    run_id: str | None = None
    predictions: Triple | None = None  # None: its folds could not be found
    note: str = ""  # why predictions is None
    # the ACC epochs' predictions, in a mode that reads ACC from other epochs than UF1 and UAR
    # (published-oracle); None: `predictions` serve every score
    acc_predictions: Triple | None = None


# ---- predictions ----------------------------------------------------------------------------


def fold_predictions(
    folds: Mapping[str, Any],
    labels: np.ndarray,
    num_classes: int,
    mode: str,
    val_metric: str,
    score: str = "uf1",
) -> Triple:
    """(subjects, y_true, y_pred) of finished folds (FoldResult by subject) in `mode`: each
    fold's test predictions at the epoch the mode selects for `score` (as the trial's own
    metrics; only published-oracle reads "acc" from other epochs)."""
    from tsfmicro.training.evaluation import select_epoch

    subjects, y_true, y_pred = [], [], []
    for subject in sorted(folds):
        fold = folds[subject]
        epoch = select_epoch(fold, mode, labels, num_classes, val_metric, score)
        subjects.append(np.full(len(fold.test_index), str(subject), dtype=object))
        y_true.append(np.asarray(labels)[fold.test_index])
        y_pred.append(np.asarray(fold.test_probs[epoch]).argmax(1))
    if not subjects:
        empty = np.array([], dtype=np.int64)
        return np.array([], dtype=object), empty, empty
    return np.concatenate(subjects), np.concatenate(y_true), np.concatenate(y_pred)


def mode_inputs(
    folds: Mapping[str, Any], labels: np.ndarray, num_classes: int, mode: str, val_metric: str
) -> tuple[Triple, Triple | None]:
    """(predictions, ACC predictions or None) of finished folds in `mode`."""
    main = fold_predictions(folds, labels, num_classes, mode, val_metric)
    if mode not in SEPARATE_ACC_MODES:
        return main, None
    return main, fold_predictions(folds, labels, num_classes, mode, val_metric, "acc")


def result_inputs(
    results: Sequence[Any],
    summaries: Sequence[Mapping[str, Any]],
    labels: np.ndarray,
    num_classes: int,
    mode: str,
    val_metric: str,
    run_ids: Mapping[str, str] | None = None,
) -> list[TrialInput]:
    """The trials of a finished Tune run (its ResultGrid, in run order) with their summaries
    (search.run's `_trial_summary`: trial_id, state, params): predictions from each last
    checkpoint. `val_metric`: the base recipe's, unless a trial's parameters set it."""
    from search.trial import load_folds

    inputs = []
    for result, summary in zip(results, summaries, strict=True):
        trial_id = str(summary.get("trial_id") or "")
        state = str(summary.get("state"))
        run_id = (run_ids or {}).get(trial_id)
        checkpoint = getattr(result, "checkpoint", None)
        if checkpoint is None:
            inputs.append(TrialInput(trial_id, state, run_id, None, "no fold finished"))
            continue
        with checkpoint.as_directory() as directory:
            folds = load_folds(directory)
        metric = (summary.get("params") or {}).get("val_metric", val_metric)  # if searched
        triple, acc = mode_inputs(folds, labels, num_classes, mode, metric)
        inputs.append(TrialInput(trial_id, state, run_id, triple, acc_predictions=acc))
    return inputs


# ---- the figures ----------------------------------------------------------------------------


def estimate(
    inputs: Sequence[TrialInput],
    *,
    num_classes: int,
    eval_mode: str,
    objective: str,
    subjects: Sequence[str] | None = None,
    n_boot: int = DEFAULT_BOOT,
    seed: int = SEED,
    level: float = LEVEL,
    champion: str | None = None,
    search: str = "",
    source: str = "",
) -> dict[str, Any]:
    """The search's three figures and every trial's tie with the champion, JSON-ready.

    Raises InputError when no figure can be computed (fewer than 2 subjects, no complete
    trial)."""
    from tsfmicro import honest as H

    usable = {t.trial_id for t in inputs if t.predictions is not None and len(t.predictions[0])}
    if not usable:
        raise InputError("no trial has any held-out prediction: nothing to estimate")
    # Every trial takes part, those without predictions as trials with no subject: they cannot
    # be selected and change no figure, but they are counted (n_trials, excluded_trials).
    empty = (np.array([], dtype=str), np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    main = H.subject_confusions(
        {t.trial_id: t.predictions if t.trial_id in usable else empty for t in inputs},
        num_classes,
        subjects=subjects,
    )
    # A mode whose ACC comes from other epochs (published-oracle): those predictions too.
    separate = any(t.acc_predictions is not None for t in inputs if t.trial_id in usable)
    acc_data = None
    if separate:
        acc_data = H.subject_confusions(
            {
                t.trial_id: (t.acc_predictions or t.predictions) if t.trial_id in usable else empty
                for t in inputs
            },
            num_classes,
            subjects=subjects,
        )
    data = acc_data if acc_data is not None and objective == "acc" else main
    if data.n_subjects < 2:
        raise InputError(
            f"the search has {data.n_subjects} fold unit(s) to resample (test subjects, or the "
            "held-out datasets of a cross-dataset protocol): a bootstrap needs at least 2"
        )
    if not data.complete.any():
        raise InputError(
            f"no complete trial: none of the {len(inputs)} trials has all {data.n_subjects} "
            "subjects, so the search has no champion to estimate"
        )
    if champion is not None and (
        champion not in data.trials or not data.complete[data.trials.index(champion)]
    ):
        champion = None  # the recorded champion has no predictions here: pick by the rule
    best = H.search_best(data, objective, n_boot, seed, level, champion)
    corrected = H.bbc(data, objective, n_boot, seed, level)
    if acc_data is not None:  # each score from its own epochs, the selection unchanged
        for scored, metrics in ((acc_data, ("acc",)), (main, ("uf1", "uar"))):
            if scored is data:
                continue
            again = H.search_best(scored, objective, n_boot, seed, level, best.champion)
            other = H.bbc(data, objective, n_boot, seed, level, score_data=scored)
            for m in metrics:
                for target, source in ((best, again), (corrected, other)):
                    setattr(target, m, getattr(source, m))
                    setattr(target, f"{m}_ci", getattr(source, f"{m}_ci"))
    tie_rows = {
        r.trial: r.to_dict() for r in H.ties(data, objective, n_boot, seed, level, best.champion)
    }
    ties = []
    for t in inputs:
        row: dict[str, Any] = {"trial": t.trial_id, "state": t.state, "run_id": t.run_id}
        if t.trial_id in usable:
            row.update(
                {k: v for k, v in tie_rows[t.trial_id].items() if k not in ("trial", "index")}
            )
        else:
            row.update(tied_with_best=None, note=t.note or "no fold finished")
        ties.append(row)
    report = {
        "search": search,
        "eval_mode": eval_mode,
        "objective": objective,
        "champion": best.champion,
        "n_trials": len(inputs),
        "n_complete": int(data.complete.sum()),
        "n_subjects": data.n_subjects,
        "n_tied": sum(1 for r in ties if r.get("tied_with_best") is True),
        "n_boot": int(n_boot),
        "seed": int(seed),
        "level": float(level),
        "source": source,
        "missing": [t.trial_id for t in inputs if t.trial_id not in usable],
        "computed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "estimates": {
            FIGURE_SEARCH_BEST: best.to_dict(),
            FIGURE_BBC: corrected.to_dict(),
            FIGURE_NESTED: None,
        },
        "ties": ties,
    }
    return json_safe(report)


def driver_tags() -> dict[str, str]:
    """The tags that say which driver process holds a run open."""
    return {Tag.DRIVER_HOST: socket.gethostname(), Tag.DRIVER_PID: str(os.getpid())}


def reopen_run(client: Any, found: Any) -> str:
    """A run found again on resume, RUNNING once more under this driver; the reason it ended
    last time is kept as its previous reason. Returns its id."""
    run_id = found.info.run_id
    if found.info.status != "RUNNING":
        client.update_run(run_id, status="RUNNING")
    if Tag.REASON in found.data.tags:
        client.set_tag(run_id, Tag.PREVIOUS_REASON, found.data.tags[Tag.REASON])
        client.delete_tag(run_id, Tag.REASON)
    for key, value in {**driver_tags(), Tag.STATE: STATE_RUNNING}.items():
        client.set_tag(run_id, key, value)
    return run_id


def json_safe(value: Any) -> Any:
    """NaN and infinities as None, so the report is strict JSON."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def tie_of(report: Mapping[str, Any], trial_id: str) -> dict[str, Any] | None:
    for row in report.get("ties", []):
        if row["trial"] == trial_id:
            return row
    return None


# ---- text -----------------------------------------------------------------------------------


REPORT_WIDTH = 120  # columns the report fits in (a terminal's, beside the leaderboard)


def format_report(report: Mapping[str, Any]) -> str:
    """The three figures as a small table with one line on what each means, then the ties."""
    mode, objective = report["eval_mode"], report["objective"]
    level = int(round(100 * report["level"]))
    lines = [
        f"honest estimates of search {report['search']}: {mode} mode, selection by "
        f"{objective.upper()} over {report['n_complete']} complete of {report['n_trials']} "
        f"trials, {report['n_subjects']} subjects",
        f"  ({level}% intervals over {report['n_boot']} subject resamples)",
        f"  {'figure':<15}" + "".join(f"{m.upper():>22}" for m in METRICS),
    ]
    for figure, label in FIGURE_LABELS.items():
        est = report["estimates"].get(figure)
        if not est:
            lines.append(f"  {label:<15}{FIGURE_NOTES[figure]}")
            continue
        cells = "".join(
            f"{_num(est[m]):>8} [{_num(est[m + '_ci'][0], 2)},{_num(est[m + '_ci'][1], 2)}]"
            for m in METRICS
        )
        note = FIGURE_NOTES[figure]
        if figure == FIGURE_SEARCH_BEST:
            note += f" ({est['champion']})"
        row = f"  {label:<15}{cells}"
        # the note beside the figures where it fits in REPORT_WIDTH columns, else below them
        joined = f"{row}  {note}"
        lines += [joined] if len(joined) <= REPORT_WIDTH else [row, f"    {note}"]
    lines.append(
        f"  tied with the champion: {report['n_tied']} of {report['n_trials']} trials (the "
        f"{level}% interval of their {objective.upper()} minus the champion's,"
    )
    lines.append("  paired over subjects, contains 0)")
    missing = report.get("missing") or []
    if missing:
        notes = {r["trial"]: r.get("note", "") for r in report["ties"]}
        lines.append(
            f"  no tie figures for {len(missing)} trial(s) whose folds were not found: "
            + ", ".join(f"{t} ({notes.get(t) or 'no folds'})" for t in missing[:8])
            + (" ..." if len(missing) > 8 else "")
        )
    return "\n".join(lines)


def _num(value: Any, digits: int = 3) -> str:
    return "nan" if value is None else f"{float(value):.{digits}f}"


# ---- the search run -------------------------------------------------------------------------


def find_search_run(client: Any, experiment_id: str, search: str) -> Any | None:
    """The search's own run (kind search), found by its tags; the earliest if there are several."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=run_filter({Tag.KIND: KIND_SEARCH, Tag.SEARCH: search}),
        max_results=50,
        order_by=["attributes.start_time ASC"],
    )
    return runs[0] if runs else None


def search_run_tags(cfg: Any, dataset: str, protocol: str, commit: str | None) -> dict[str, str]:
    """The tags every run of a search's own tree carries (its search run, a nested search's
    outer fold runs): what was searched, on what, by which commit."""
    return {
        Tag.DATASET: dataset,
        Tag.PROTOCOL: protocol,
        Tag.PRESET: cfg.preset,
        Tag.EVAL_MODE: cfg.eval_mode,
        Tag.OBJECTIVE: cfg.objective,
        Tag.GIT_COMMIT: commit or "unknown",
        Tag.SHUFFLED_LABELS: str(cfg.data.shuffle_labels).lower(),
    }


def search_run_params(cfg: Any, subjects: int, samples: int) -> dict[str, Any]:
    """The parameters of a search's run: its size, sampler, scheduler and seeds."""
    return {
        "trials": cfg.trials,
        "sampler": cfg.sampler,
        "scheduler": cfg.scheduler,
        "seed": cfg.seed,
        "bootstrap": cfg.bootstrap,
        "subjects": subjects,
        "samples": samples,
    }


def open_search_run(
    client: Any,
    experiment_id: str,
    search: str,
    tags: Mapping[str, str],
    params: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> str:
    """The search's run, RUNNING: created with `tags` (and `params`, the settings as an
    artifact) or, when the search already has one (a resume), reopened with its reason kept."""
    found = find_search_run(client, experiment_id, search)
    here = driver_tags()
    if found is not None:
        return reopen_run(client, found)
    all_tags = {
        **{k: str(v) for k, v in tags.items()},
        **here,
        Tag.KIND: KIND_SEARCH,
        Tag.SEARCH: search,
        Tag.STATE: STATE_RUNNING,
    }
    run = client.create_run(experiment_id, tags=all_tags, run_name=search)
    run_id = run.info.run_id
    if params:
        from mlflow.entities import Param

        client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
    if settings is not None:
        _log_json(client, run_id, SETTINGS_ARTIFACT, settings)
    return run_id


def end_search_run(client: Any, run_id: str, status: str, reason: str | None = None) -> None:
    """FINISHED (state complete), KILLED or FAILED, with the reason for anything but success."""
    state = {"FINISHED": STATE_COMPLETE, "KILLED": STATE_KILLED}.get(status, STATE_FAILED)
    if reason:
        client.set_tag(run_id, Tag.REASON, reason[-4900:])
    client.set_tag(run_id, Tag.STATE, state)
    client.set_terminated(run_id, status=status)


def log_report(client: Any, run_id: str, report: Mapping[str, Any]) -> None:
    """The figures on the search run (metrics and honest.json) and each trial's tie on its run."""
    from mlflow.entities import Metric

    stamp = int(time.time() * 1000)
    metrics = []
    for figure, est in report["estimates"].items():
        if not est:
            continue
        for m in METRICS:
            values = (est[m], *est[m + "_ci"])
            for suffix, value in zip(("", CI_LO, CI_HI), values, strict=True):
                if value is not None:
                    metrics.append(Metric(figure_metric(figure, m) + suffix, value, stamp, 0))
    counts = {
        SearchMetric.N_TRIALS: report["n_trials"],
        SearchMetric.N_COMPLETE: report["n_complete"],
        SearchMetric.N_SUBJECTS: report["n_subjects"],
        SearchMetric.N_TIED: report["n_tied"],
        SearchMetric.N_BOOT: report["n_boot"],
        SearchMetric.BBC_SKIPPED: report["estimates"][FIGURE_BBC]["skipped_resamples"],
    }
    metrics += [Metric(k, float(v), stamp, 0) for k, v in counts.items()]
    client.log_batch(run_id, metrics=metrics)
    _log_json(client, run_id, HONEST_ARTIFACT, report)
    run = client.get_run(run_id)
    if Tag.HONEST_NOTE in run.data.tags:
        client.delete_tag(run_id, Tag.HONEST_NOTE)
    for row in report["ties"]:
        if not row.get("run_id") or row.get("tied_with_best") is None:
            continue
        values = {
            TieMetric.DIFF: row.get("diff"),
            TieMetric.DIFF + CI_LO: (row.get("diff_ci") or [None, None])[0],
            TieMetric.DIFF + CI_HI: (row.get("diff_ci") or [None, None])[1],
            TieMetric.SHARE: row.get("share_at_least_as_good"),
            TieMetric.TIED: 1.0 if row["tied_with_best"] else 0.0,
            TieMetric.SUBJECTS: row.get("n_subjects"),
        }
        client.log_batch(
            row["run_id"],
            metrics=[Metric(k, float(v), stamp, 0) for k, v in values.items() if v is not None],
        )


def note_no_report(client: Any, run_id: str, reason: str) -> None:
    client.set_tag(run_id, Tag.HONEST_NOTE, reason[:4900])


def _log_json(client: Any, run_id: str, name: str, payload: Any) -> None:
    with tempfile.TemporaryDirectory(prefix="tsfmicro-honest-") as tmp:
        path = Path(tmp) / name
        path.write_text(json.dumps(payload, indent=2, default=str))
        client.log_artifact(run_id, str(path))


def stored_report(client: Any, run_id: str) -> dict[str, Any] | None:
    """The honest.json a search run holds, or None."""
    names = {a.path for a in client.list_artifacts(run_id)}
    if HONEST_ARTIFACT not in names:
        return None
    with tempfile.TemporaryDirectory(prefix="tsfmicro-honest-") as tmp:
        return json.loads(Path(client.download_artifacts(run_id, HONEST_ARTIFACT, tmp)).read_text())


# ---- a finished search, from MLflow ---------------------------------------------------------


def search_trial_runs(client: Any, search: str, experiment: str | None = None) -> list:
    """The trial runs of a search in one tsfmicro experiment, in run order (start time)."""
    if experiment:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise ConfigError(f"no MLflow experiment named {experiment!r}")
        ids = [found.experiment_id]
    else:
        ids = [
            e.experiment_id
            for e in client.search_experiments()
            if e.name.startswith(EXPERIMENT_PREFIX)
        ]
    runs = (
        client.search_runs(
            ids,
            filter_string=run_filter({Tag.SEARCH: search, Tag.KIND: KIND_TRIAL}),
            max_results=50000,
        )
        if ids
        else []
    )
    if not runs:
        where = f"experiment {experiment!r}" if experiment else "any tsfmicro experiment"
        raise ConfigError(f"no search named {search!r} in {where} (no trial run carries that name)")
    experiments = {r.info.experiment_id for r in runs}
    if len(experiments) > 1:
        names = sorted(client.get_experiment(e).name for e in experiments)
        raise ConfigError(
            f"search {search!r} has trials in several experiments ({', '.join(names)}): "
            "choose one with --experiment"
        )
    return sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))


def _download(client: Any, run_id: str, name: str) -> bytes | None:
    try:
        names = {a.path for a in client.list_artifacts(run_id)}
    except Exception:
        return None
    if name not in names:
        return None
    with tempfile.TemporaryDirectory(prefix="tsfmicro-honest-") as tmp:
        return Path(client.download_artifacts(run_id, name, tmp)).read_bytes()


def _mlflow_predictions(client: Any, run_id: str, mode: str) -> Any | None:
    import pandas as pd

    raw = _download(client, run_id, PREDICTIONS_FILE)
    if raw is None:
        return None
    table = pd.read_parquet(io.BytesIO(raw))
    return table[table["mode"] == mode]


def checkpoint_dirs(storage_path: str | Path, search: str) -> dict[str, Path]:
    """Trial id -> its latest checkpoint folder holding finished folds, under the search's
    Tune folder (`<storage>/<search>/<trial>/checkpoint_NNNNNN/folds.json`)."""
    root = Path(storage_path) / search
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    for trial_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        checkpoints = sorted(
            (p for p in trial_dir.glob("checkpoint_*") if (p / "folds.json").is_file()),
            key=lambda p: p.name,
        )
        if not checkpoints:
            continue
        trial_id = _tune_trial_id(trial_dir)
        if trial_id:
            found[trial_id] = checkpoints[-1]
    return found


def _tune_trial_id(trial_dir: Path) -> str | None:
    """A Tune trial folder's trial id: from its result.json, else from its name
    (`<trainable>_<trial id>_<n>_...`)."""
    result = trial_dir / "result.json"
    if result.is_file():
        with result.open() as handle:
            for line in handle:
                try:
                    value = json.loads(line).get("trial_id")
                except (ValueError, AttributeError):
                    continue
                if value:
                    return str(value)
    parts = trial_dir.name.split("_")
    for i, part in enumerate(parts[:-1]):
        if len(part) == 8 and parts[i + 1].isdigit() and all(c in "0123456789abcdef" for c in part):
            return part
    return None


def mlflow_inputs(
    client: Any,
    runs: Sequence[Any],
    mode: str,
    storage_path: str | Path | None,
    search: str,
    say: Callable[[str], None] | None = None,
) -> tuple[list[TrialInput], list[str], int]:
    """(inputs, subjects, classes) of a finished search: complete trials from their
    predictions.parquet, the others from their Tune checkpoints when found."""
    inputs: list[TrialInput] = []
    subjects: set[str] = set()
    num_classes = 0
    reference: tuple[str, Any] | None = None  # a complete trial: index -> label
    for run in runs:
        tags, params = run.data.tags, run.data.params
        trial_id, state = tags.get(Tag.TRIAL_ID, run.info.run_id), tags.get(Tag.STATE, "")
        num_classes = num_classes or int(params.get("num_classes", 0) or 0)
        if state != STATE_COMPLETE:
            inputs.append(TrialInput(trial_id, state, run.info.run_id))
            continue
        table = _mlflow_predictions(client, run.info.run_id, mode)
        if table is None or table.empty:
            note = f"its run has no {PREDICTIONS_FILE} rows for mode {mode}"
            inputs.append(TrialInput(trial_id, state, run.info.run_id, None, note))
            continue
        triple = (
            table["subject"].astype(str).to_numpy(),
            table["label"].to_numpy(np.int64),
            table["pred"].to_numpy(np.int64),
        )
        acc = None
        if mode in SEPARATE_ACC_MODES and "acc_pred" in table:
            acc = (triple[0], triple[1], table["acc_pred"].to_numpy(np.int64))
        subjects.update(triple[0].tolist())
        inputs.append(TrialInput(trial_id, state, run.info.run_id, triple, acc_predictions=acc))
        if reference is None:
            reference = (run.info.run_id, table)
    if not num_classes:
        raise ConfigError("the search's trial runs do not record num_classes")
    waiting = [t for t in inputs if t.state != STATE_COMPLETE]
    if waiting:
        dirs = checkpoint_dirs(storage_path, search) if storage_path else {}
        labels = _labels_by_index(client, *reference) if reference and dirs else None
        by_run = {r.info.run_id: r for r in runs}
        for t in waiting:
            where = dirs.get(t.trial_id)
            if where is None or labels is None:
                t.note = (
                    "its Tune checkpoint was not found under "
                    f"{Path(storage_path) / search if storage_path else 'the storage path'}"
                )
                continue
            from search.trial import load_folds

            val_metric = by_run[t.run_id].data.params.get("val_metric", "uf1")
            t.predictions, t.acc_predictions = mode_inputs(
                load_folds(where), labels, num_classes, mode, val_metric
            )
    if say is not None:
        found = sum(1 for t in waiting if t.predictions is not None)
        if waiting:
            say(f"{found} of {len(waiting)} unfinished trial(s) read from Tune checkpoints")
    return inputs, sorted(subjects), num_classes


def _labels_by_index(client: Any, run_id: str, table: Any) -> np.ndarray | None:
    """Every sample's label by its index in the search's data, from a complete trial: its
    epoch_probs.npz holds each fold's test indices, its predictions the labels in that order."""
    raw = _download(client, run_id, EPOCH_PROBS_FILE)
    if raw is None:
        return None
    with np.load(io.BytesIO(raw), allow_pickle=False) as arrays:
        index = {k.split("/", 1)[1]: arrays[k] for k in arrays.files if k.startswith("test_index/")}
    n = 1 + max(int(v.max()) for v in index.values() if len(v))
    labels = np.full(n, -1, dtype=np.int64)
    for subject, rows in index.items():
        values = table[table["subject"].astype(str) == subject]["label"].to_numpy(np.int64)
        if len(values) != len(rows):
            return None
        labels[rows] = values
    return labels if (labels >= 0).all() else None


def honest_for_search(
    tracking_uri: str,
    search: str,
    *,
    experiment: str | None = None,
    storage_path: str | None = None,
    n_boot: int | None = None,
    log: bool = True,
    say: Callable[[str], None] | None = None,
    client: Any = None,
) -> dict[str, Any]:
    """Compute (and, with `log`, record) the honest estimates of a finished search from
    MLflow (and its Tune checkpoints for unfinished trials, when found)."""
    if client is None:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri)
    runs = search_trial_runs(client, search, experiment)
    experiment_id = runs[0].info.experiment_id
    modes = {r.data.tags.get(Tag.EVAL_MODE) for r in runs} - {None}
    objectives = {r.data.tags.get(Tag.OBJECTIVE) for r in runs} - {None}
    if len(modes) != 1 or len(objectives) != 1:
        raise ConfigError(
            f"search {search!r}: its trials do not agree on the evaluation mode and objective "
            f"({sorted(modes)}, {sorted(objectives)})"
        )
    mode, objective = modes.pop(), objectives.pop()
    search_run = find_search_run(client, experiment_id, search)
    if storage_path is None and search_run is not None:
        storage_path = search_run.data.tags.get(Tag.STORAGE_PATH)
    if n_boot is None:
        recorded = search_run.data.params.get("bootstrap") if search_run is not None else None
        n_boot = int(recorded) if recorded else DEFAULT_BOOT
    inputs, subjects, num_classes = mlflow_inputs(client, runs, mode, storage_path, search, say)
    complete = [
        r
        for r in runs
        if r.data.tags.get(Tag.STATE) == STATE_COMPLETE and OBJECTIVE in r.data.metrics
    ]
    champion = None
    if complete:  # the search's rule: best objective, ties to the earliest
        top = max(r.data.metrics[OBJECTIVE] for r in complete)
        champion = next(
            r.data.tags.get(Tag.TRIAL_ID) for r in complete if r.data.metrics[OBJECTIVE] == top
        )
    report = estimate(
        inputs,
        num_classes=num_classes,
        eval_mode=mode,
        objective=objective,
        subjects=subjects,
        n_boot=n_boot,
        champion=champion,
        search=search,
        source="mlflow predictions.parquet (complete trials); Tune checkpoints (others, "
        "where found)",
    )
    if log:
        if search_run is None:
            first = runs[0].data.tags
            tags = {
                k: first[k]
                for k in (Tag.DATASET, Tag.PROTOCOL, Tag.PRESET, Tag.EVAL_MODE, Tag.OBJECTIVE,
                          Tag.SHUFFLED_LABELS)
                if k in first
            }  # fmt: skip
            run_id = open_search_run(client, experiment_id, search, tags)
            log_report(client, run_id, report)
            end_search_run(client, run_id, "FINISHED")
        else:
            log_report(client, search_run.info.run_id, report)
    return report


def stored_for_search(
    client: Any, search: str, experiment: str | None = None
) -> dict[str, Any] | None:
    """The honest report a search run stored (at the end of the search or on request), or
    None when the search has no search run or no report."""
    try:
        runs = search_trial_runs(client, search, experiment)
    except ConfigError:
        return None
    found = find_search_run(client, runs[0].info.experiment_id, search)
    return stored_report(client, found.info.run_id) if found is not None else None
