"""The search driver: data, Ray, Tune with Optuna, MLflow, and the registry afterwards.

    from search.config import SearchConfig
    from search.run import run_search
    outcome = run_search(SearchConfig(name="my-search"))

A search's settings are saved beside its Tune results, so
`run_search(load_settings(name, storage_path), resume=True)` continues an
interrupted search with its completed trials (and the completed folds of
unfinished trials) kept.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from search.capacity import capacity_note, cluster_capacity, fit_capacity
from search.checks import require_valid
from search.config import DEFAULT_STORAGE, SearchConfig
from search.data import dataset_label, load_search_pairs
from search.endings import (
    active,
    at_interrupt,
    check_interrupted,
    guarded,
    reinstall,
    tune_loop,
)
from search.schema import (
    FOLD_SECONDS,
    FOLDS_DONE,
    KIND_TRIAL,
    N_FOLDS,
    OBJECTIVE,
    STATE_COMPLETE,
    STATE_FAILED,
    STATE_KILLED,
    STATE_PRUNED,
    Tag,
    experiment_name,
    run_filter,
)
from search.security import check_resume_tree, checked_local_ray, loopback_node
from search.trial import FOLD_STORE, TrialSetup, fold_placement, loso_trial
from tsfmicro.config import preset
from tsfmicro.errors import ConfigError
from tsfmicro.runinfo import git_commit

log = logging.getLogger(__name__)

SETTINGS_FILE = "tsfmicro_search.json"
FLAT_SETTINGS_FILE = "flat_search.yaml"  # beside a nested search's settings (search.nested)


@dataclass
class SearchOutcome:
    name: str
    experiment_id: str
    experiment: str
    trials: list[dict[str, Any]]  # one per trial: id, state, params, metrics
    best: dict[str, Any] | None
    seconds: float
    fold_seconds: float
    registered: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def experiment_dir(cfg: SearchConfig) -> Path:
    return Path(cfg.storage_path).resolve() / cfg.name


def save_settings(cfg: SearchConfig) -> None:
    """The search's settings file, written whole or not at all (a full disk: one line)."""
    from tsfmicro.fileio import write_errors, written_whole

    path = experiment_dir(cfg)
    with write_errors(path):
        path.mkdir(parents=True, exist_ok=True)
    with written_whole(path / SETTINGS_FILE) as temp:
        temp.write_text(json.dumps(cfg.to_dict(), indent=2, default=list))


def load_settings(name: str, storage_path: str) -> SearchConfig:
    path = Path(storage_path).resolve() / name / SETTINGS_FILE
    if not path.is_file():
        raise ConfigError(
            f"no search named {name!r} under {Path(storage_path).resolve()} "
            f"({SETTINGS_FILE} not found)"
        )
    return SearchConfig.from_dict(json.loads(path.read_text()))


def init_ray(cfg: SearchConfig, say: Any = None) -> None:
    """Connect to the cluster named by ray_address, or start a local Ray that listens on
    loopback only (search.security; `say` gets one line on who can reach it)."""
    import ray

    if ray.is_initialized():
        return
    env = {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    if cfg.ray_address is None:
        # Loopback only (Ray alone would listen on every interface), and Ray's token
        # authentication stays on (a fresh local ray.init() turns it on; the token file goes
        # in the user's Ray folder). Only the test suite's and benchmarks' own clusters, which
        # nobody else reaches, run without it.
        with loopback_node():
            ray.init(
                include_dashboard=False,
                runtime_env={"env_vars": env},
                log_to_driver=False,
                configure_logging=False,
            )
        checked_local_ray(say)
        at_interrupt(ray.shutdown)  # an interrupted search stops the Ray it started
    else:
        # On a cluster the job's runtime env (ray job submit) or the image sets the workers'
        # environment; adding ours here would conflict with it.
        ray.init(address=cfg.ray_address, log_to_driver=False)
    reinstall()  # ray.init replaced the search's SIGTERM handler with its own sys.exit


def placed(cfg: SearchConfig) -> SearchConfig:
    """`cfg` with its resources resolved against the connected Ray cluster (Resources.resolved):
    on a cluster with GPUs (declared with --cluster-gpus, else up now), folds get GPUs unless
    told otherwise."""
    gpus = cluster_capacity(cfg).gpus
    return cfg.replace(resources=cfg.resources.resolved(gpus))


def plan_resources(cfg: SearchConfig, n_folds: int) -> tuple[int, int]:
    """(fold tasks of one trial at once, trials at once) that fit the cluster unless set, sized
    for its declared maximum where given, else for the nodes up now (search.capacity); a
    task trains `Resources.fold_batch` folds together."""
    return fit_capacity(cfg, n_folds, cluster_capacity(cfg))


def run_plan(cfg: SearchConfig, n_folds: int, parallelism: int, concurrency: int) -> dict:
    """How the search places its folds: trials at once, fold tasks per trial at once, folds per
    task and how many of them train at once in a task (Runner.for_task), and so how many folds
    at most train at the same time across the cluster."""
    from tsfmicro.training.runners import Runner

    r = cfg.resources
    per_task = r.fold_batch or n_folds
    threads = max(1, int(r.fold_cpus))
    at_once = Runner.for_task(r.fold_group, per_task, threads, cfg.machine).at_once(per_task)
    return {
        "trials_at_once": concurrency,
        "fold_tasks_per_trial": parallelism,
        "folds_per_task": per_task,
        "folds_at_once_per_task": at_once,
        "fold_slots": concurrency * parallelism * at_once,
    }


def checked_experiment_dir(cfg: SearchConfig, resume: bool) -> Path:
    """The search's folder under the storage path; a resume needs one there, a new search
    needs none (its name is taken otherwise)."""
    exp_dir = experiment_dir(cfg)
    if resume and not (exp_dir / SETTINGS_FILE).is_file():
        raise ConfigError(f"cannot resume {cfg.name!r}: nothing found at {exp_dir}")
    if resume:
        check_resume_tree(cfg.name, exp_dir)  # Tune unpickles its state from there
    if not resume and (exp_dir / SETTINGS_FILE).is_file():
        raise ConfigError(
            f"a search named {cfg.name!r} already exists at {exp_dir}; "
            "use --resume to continue it or choose another --name"
        )
    from search.checks import optuna_problem
    from search.study import study_name_problem

    # a new search's study name must be free in its Optuna storage (read where it is valid;
    # search.checks names what is wrong with it otherwise)
    url = cfg.optuna_url()
    problem = "" if optuna_problem(url) else study_name_problem(url, cfg.name, resume)
    if problem:
        raise ConfigError(problem)
    return exp_dir


def open_experiment(
    cfg: SearchConfig, dataset: str, protocol: str, resume: bool, say: Any
) -> tuple[Any, str, str]:
    """(MLflow client, experiment name, experiment id) of a search's dataset and protocol,
    the experiment created if new; runs left RUNNING by a driver that is gone are closed, and
    a new search's settings are saved under the storage path."""
    from mlflow import MlflowClient

    from search.tracking import close_orphaned_runs, ensure_experiment

    client = MlflowClient(cfg.tracking_uri)
    exp_name = experiment_name(dataset, protocol)
    experiment_id = ensure_experiment(client, exp_name)
    closed = close_orphaned_runs(client, experiment_id)
    if closed:
        say(f"closed {len(closed)} run(s) left RUNNING by a search driver that is gone")
    if not resume:
        save_settings(cfg)
    return client, exp_name, experiment_id


def _sigterm_to_exit(signum: int, frame: Any) -> None:
    """A SIGTERM handler for drivers that install their own: the running search's guard
    handles it (search.endings), else the process exits at once with 128 + the signal."""
    guard = active()
    if guard is None:
        raise SystemExit(128 + signum)
    guard.handle(signum, frame)


@guarded  # the name is held while it runs; SIGINT/SIGTERM end it cleanly (search.endings)
def run_search(
    cfg: SearchConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    echo: Any = None,
    parent_run: str | None = None,
    run_tags: dict[str, str] | None = None,
) -> SearchOutcome:
    """Run (or, with resume=True, continue) a search; log everything to MLflow; register
    the best configuration afterwards when cfg.register is set.

    `parent_run`, `run_tags`: an inner search of a nested one (search.nested). Its trial runs
    become children of `parent_run` (the outer fold's run), which also stands in for the
    search's own run (its honest estimates go there; the caller opens and ends it), and every
    trial and fold run carries `run_tags`."""
    if cfg.nested:
        raise ConfigError(
            f"search {cfg.name!r} is nested: run it with search.nested.run_nested "
            "(tsfmicro search --nested)"
        )
    from ray import tune
    from ray.tune.execution.placement_groups import PlacementGroupFactory

    from search.checks import shown_uri
    from search.honest import (
        end_search_run,
        open_search_run,
        search_run_params,
        search_run_tags,
    )
    from search.progress import Display, TuneProgress, showing
    from search.quiet import silence_dependencies
    from search.searcher import make_searcher
    from search.tracking import (
        MlflowTracker,
        SearchContext,
        dataset_record,
        log_dataset,
    )

    silence_dependencies()
    say = echo or (lambda message: print(message, file=sys.stderr))
    started = time.perf_counter()
    require_valid(cfg)  # before any data, Ray or MLflow run (search.checks)
    exp_dir = checked_experiment_dir(cfg, resume)
    cfg = cfg.replace(optuna_storage=cfg.optuna_url())  # its settings keep where the study is

    dataset, protocol = dataset_label(cfg.data)
    base_model = preset(cfg.preset)
    say(
        f"search {cfg.name}: {dataset} / {protocol}, preset {cfg.preset}, {cfg.trials} trials, "
        f"sampler {cfg.sampler}, scheduler {cfg.scheduler}, objective {cfg.eval_mode} "
        f"{cfg.objective}"
    )
    pairs = load_search_pairs(cfg.data, base_model.image_size, seed=cfg.seed, progress=progress)
    base_model = base_model.replace(num_classes=pairs.num_classes)
    base_train = cfg.train.replace(seed=cfg.seed)
    subjects = tuple(pairs.fold_ids())  # one fold each: subjects, or held-out datasets
    moved = pairs.moved_training_pairs()
    say(
        f"data: {len(pairs)} samples, {len(subjects)} subjects, classes "
        f"{', '.join(pairs.class_names)}; {moved} train on published pairs"  # docs/model.md
        + ("; LABELS SHUFFLED (a chance-level control)" if cfg.data.shuffle_labels else "")
    )

    client, exp_name, experiment_id = open_experiment(cfg, dataset, protocol, resume, say)

    init_ray(cfg, say)
    import ray

    cfg = placed(cfg)  # the settings file keeps fold_gpus unset: a resume re-resolves it
    # Those per-fold snapshots are wanted (see CheckpointConfig below): no warning about them.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

    parallelism, concurrency = plan_resources(cfg, len(subjects))
    plan = run_plan(cfg, len(subjects), parallelism, concurrency)
    say(
        f"ray: {ray.cluster_resources().get('CPU', 0):g} CPUs, "
        f"{ray.cluster_resources().get('GPU', 0):g} GPUs; {concurrency} trial(s) at once, "
        f"{parallelism} fold task(s) each, "
        f"{cfg.resources.fold_batch or len(subjects)} fold(s) per task"
        f"{' (' + cfg.resources.fold_group + ')' if cfg.resources.fold_batch != 1 else ''}, "
        f"{cfg.resources.fold_cpus:g} CPU(s) and {cfg.resources.fold_gpus:g} GPU(s) per task"
    )
    note = capacity_note(cfg, cluster_capacity(cfg), parallelism, concurrency)
    if note:  # sized beyond the nodes up now: the trials wait for nodes to join
        say(note)
    setup = TrialSetup(
        data_ref=[ray.put(pairs)],
        subjects=subjects,
        labels=pairs.labels.numpy(),
        num_classes=pairs.num_classes,
        base_model=base_model,
        base_train=base_train,
        eval_mode=cfg.eval_mode,
        objective=cfg.objective,
        fold_cpus=cfg.resources.fold_cpus,
        fold_gpus=cfg.resources.fold_gpus,
        fold_parallelism=parallelism,
        fold_batch=cfg.resources.fold_batch or len(subjects),
        fold_group=cfg.resources.fold_group,
        fold_retries=cfg.fold_retries,
        machine=cfg.machine,
        fold_store=str(exp_dir / FOLD_STORE),
    )
    bundles = fold_placement(
        cfg.resources.trial_cpus, cfg.resources.fold_cpus, cfg.resources.fold_gpus, parallelism
    )
    trainable = tune.with_resources(
        tune.with_parameters(loso_trial, setup=setup), PlacementGroupFactory(bundles)
    )
    if parent_run is not None:
        # Tune registers a trainable by its name for the whole Ray job; the inner searches of a
        # nested one may run side by side in one job, each with its own data and setup.
        trainable._name = f"loso_trial_{cfg.name}"
    ctx = SearchContext(
        search_name=cfg.name,
        tracking_uri=cfg.tracking_uri,
        experiment_id=experiment_id,
        dataset=dataset,
        protocol=protocol,
        preset=cfg.preset,
        eval_mode=cfg.eval_mode,
        objective=cfg.objective,
        class_names=pairs.class_names,
        keys=pairs.keys,
        subjects=pairs.subjects,
        folds=pairs.folds,
        labels=pairs.labels.numpy(),
        base_model=base_model,
        base_train=base_train,
        searched=tuple(cfg.space.names),
        git_commit=git_commit(),
        bootstrap=cfg.bootstrap,
        train_pairs_moved=moved,
        shuffled_labels=cfg.data.shuffle_labels,
        machine=cfg.machine,
        dataset_input=dataset_record(pairs, dataset, protocol, cfg.data),
        parent_run=parent_run,
        extra_tags=tuple(sorted((run_tags or {}).items())),
    )
    tracker = MlflowTracker(ctx)

    # a resume of a search stopped before Tune saved its first state starts Tune afresh
    if resume and tune.Tuner.can_restore(str(exp_dir)):
        tuner = tune.Tuner.restore(str(exp_dir), trainable=trainable, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=make_searcher(
                    cfg.space, cfg.sampler, cfg.seed, storage=cfg.optuna_storage,
                    study_name=cfg.name, attrs={"mlflow_experiment": exp_name,
                                                "tracking_uri": shown_uri(cfg.tracking_uri)},
                ),  # fmt: skip
                scheduler=_scheduler(cfg, len(subjects)),
                num_samples=cfg.trials,
                max_concurrent_trials=concurrency,
                time_budget_s=cfg.time_budget_s,
                reuse_actors=True,  # a new trial reuses the last one's process (and its imports)
            ),
            run_config=tune.RunConfig(
                name=cfg.name,
                storage_path=str(Path(cfg.storage_path).resolve()),
                callbacks=[tracker, TuneProgress(cfg.name)],
                failure_config=tune.FailureConfig(max_failures=cfg.trial_retries),
                # Each checkpoint holds every finished fold, so one is enough; keeping one
                # also makes Tune snapshot the experiment after each fold, so a killed driver
                # resumes from the latest fold rather than an older periodic snapshot.
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                verbose=0,  # no Tune tables: search.progress shows the search's progress
            ),
        )
    # The search's own run (kind search): its settings, then its honest estimates. It ends
    # FINISHED when the search does, KILLED when the driver is interrupted, FAILED on an error.
    search_run = parent_run or open_search_run(
        client,
        experiment_id,
        cfg.name,
        tags={
            **search_run_tags(cfg, dataset, protocol, ctx.git_commit),
            Tag.STORAGE_PATH: str(Path(cfg.storage_path).resolve()),
        },
        params=search_run_params(cfg, len(subjects), len(pairs)),
        settings=cfg.to_dict(),
    )
    log_dataset(client, search_run, ctx.dataset_input)
    say(f"optuna: study {cfg.name}; view it: optuna-dashboard {shown_uri(cfg.optuna_storage)}")
    status, reason = "KILLED", "the search driver stopped before the search finished"
    try:
        try:
            display = Display.on(
                sys.stderr,
                cfg.trials,
                f"{cfg.eval_mode} {cfg.objective.upper()}",
                enabled=progress,
                started=started,
                budget_s=cfg.time_budget_s,
            )
            # a first signal stops Tune's loop, saving its state
            with tune_loop(), showing(cfg.name, display):
                grid = tuner.fit()
        finally:
            # Whatever happened, no trial run of this search stays RUNNING.
            closed = close_search_runs(
                client,
                experiment_id,
                cfg.name,
                "the search driver stopped before this trial finished",
                keep=(search_run,),
            )
            if closed:
                say(f"closed {len(closed)} unfinished trial run(s) as KILLED")
        check_interrupted()  # stopped by a signal: no estimates, refit or registration

        trials = [_trial_summary(r) for r in grid]
        fold_seconds = float(sum(t["metrics"].get(FOLD_SECONDS, 0.0) for t in trials))
        finished = [t for t in trials if t["state"] == STATE_COMPLETE]
        best = max(finished, key=lambda t: t["metrics"][OBJECTIVE]) if finished else None
        outcome = SearchOutcome(
            name=cfg.name,
            experiment_id=experiment_id,
            experiment=exp_name,
            trials=trials,
            best=best,
            seconds=time.perf_counter() - started,
            fold_seconds=fold_seconds,
        )
        outcome.extra["search_run_id"] = search_run
        outcome.extra["optuna"] = {"storage": shown_uri(cfg.optuna_storage), "study": cfg.name}
        outcome.extra["plan"] = plan
        _honest_estimates(cfg, client, experiment_id, search_run, grid, outcome, pairs, say)
        # Tune stopped by itself (e.g. kill -USR1) before every trial ended: nothing registered
        stopped = grid.num_terminated + grid.num_errors < len(grid)
        if cfg.register and best is not None and not stopped:
            from search.registry import register_best

            outcome.registered = register_best(
                cfg, outcome, pairs, base_model, base_train, say=say
            )
        if stopped:
            reason = "the search was interrupted before every trial finished (--resume it)"
            outcome.extra["interrupted"] = True  # a nested search stops there too
        else:
            status, reason = "FINISHED", ""
        return outcome
    except Exception as exc:
        status, reason = "FAILED", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if parent_run is None:  # an inner search's stand-in run is its caller's to end
            end_search_run(client, search_run, status, reason or None)


def _honest_estimates(
    cfg: SearchConfig,
    client: Any,
    experiment_id: str,
    search_run: str,
    grid: Any,
    outcome: SearchOutcome,
    pairs: Any,
    say: Any,
) -> None:
    """The search's honest estimates (search.honest) from every trial's last checkpoint:
    into the outcome (`estimates`, and each trial's `tie`), onto the search run and the trial
    runs. A search with nothing to estimate (no complete trial, one subject) gets a note."""
    from search.honest import estimate, log_report, note_no_report, result_inputs, tie_of
    from tsfmicro.errors import InputError

    runs = client.search_runs(
        [experiment_id],
        filter_string=run_filter({Tag.SEARCH: cfg.name, Tag.KIND: KIND_TRIAL}),
        max_results=50000,
    )
    run_ids = {r.data.tags.get(Tag.TRIAL_ID): r.info.run_id for r in runs}
    try:
        inputs = result_inputs(
            list(grid),
            outcome.trials,
            pairs.labels.numpy(),
            pairs.num_classes,
            cfg.eval_mode,
            cfg.train.val_metric,
            run_ids,
        )
        report = estimate(
            inputs,
            num_classes=pairs.num_classes,
            eval_mode=cfg.eval_mode,
            objective=cfg.objective,
            subjects=pairs.fold_ids(),
            n_boot=cfg.bootstrap,
            champion=outcome.best["trial_id"] if outcome.best else None,
            search=cfg.name,
            source="Tune checkpoints of every trial, at the end of the search",
        )
    except InputError as exc:
        outcome.extra["estimates_note"] = str(exc)
        note_no_report(client, search_run, str(exc))
        say(f"no honest estimates for search {cfg.name}: {exc}")
        return
    log_report(client, search_run, report)
    outcome.extra["honest"] = report
    for trial in outcome.trials:
        tie = tie_of(report, trial["trial_id"])
        if tie is not None:
            trial["tie"] = {k: v for k, v in tie.items() if k not in ("trial", "state", "run_id")}


def close_search_runs(
    client: Any, experiment_id: str, search: str, reason: str, keep: Any = ()
) -> list[str]:
    """End every RUNNING run of a search as KILLED, with the reason (except the run ids in
    `keep`: the search's own run, which the driver ends itself)."""
    from search.tracking import end_run

    runs = client.search_runs(
        [experiment_id],
        filter_string=run_filter({Tag.SEARCH: search}, status="RUNNING"),
        max_results=5000,
    )
    runs = [r for r in runs if r.info.run_id not in set(keep)]
    for run in runs:
        end_run(client, run.info.run_id, "KILLED", reason, state=STATE_KILLED)
    return [r.info.run_id for r in runs]


def _scheduler(cfg: SearchConfig, n_folds: int) -> Any:
    if cfg.scheduler == "none":
        return None
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        time_attr=FOLDS_DONE,
        metric=OBJECTIVE,
        mode="max",
        max_t=n_folds,
        grace_period=max(1, n_folds // 4),
        reduction_factor=2,
    )


def _trial_summary(result: Any) -> dict[str, Any]:
    metrics = dict(result.metrics or {})
    done, total = metrics.get(FOLDS_DONE, 0), metrics.get(N_FOLDS, 0)
    if result.error is not None:
        state = STATE_FAILED
    elif total and done >= total:
        state = STATE_COMPLETE
    else:
        state = STATE_PRUNED
    return {
        "trial_id": metrics.get("trial_id", ""),
        "state": state,
        "params": dict(result.config or {}),
        "metrics": {
            k: v
            for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
        },
        "error": str(result.error).splitlines()[0] if result.error is not None else None,
    }


def register_search(
    name: str, storage_path: str = DEFAULT_STORAGE, say: Any = None
) -> dict[str, Any]:
    """Refit and register the best complete trial of a finished search (from its MLflow runs)."""
    say = say or (lambda message: print(message, file=sys.stderr))
    cfg = load_settings(name, storage_path)
    if cfg.nested:
        raise ConfigError(
            f"search {name!r} is nested: it registers nothing (its product is its estimate); "
            "the model it describes is the flat search's, whose command it printed "
            f"(tsfmicro search --config {experiment_dir(cfg) / FLAT_SETTINGS_FILE} ...)"
        )
    from search.endings import hold_name
    from search.stores import require_readable, store_errors

    # the store the search wrote must be there and readable (never a new empty one), and the
    # search's name is held while its champion is refitted and registered: a second register,
    # or the search itself resumed meanwhile, refuses
    require_readable(cfg.tracking_uri)
    with hold_name(cfg.storage_path, name), store_errors(cfg.tracking_uri):
        return _register_held(cfg, name, say)


def _register_held(cfg: SearchConfig, name: str, say: Any) -> dict[str, Any]:
    from mlflow import MlflowClient

    from search.registry import register_best

    dataset, protocol = dataset_label(cfg.data)
    client = MlflowClient(cfg.tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name(dataset, protocol))
    if experiment is None:
        raise ConfigError(f"no MLflow experiment for search {name!r} at {cfg.tracking_uri}")
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=run_filter(
            {Tag.SEARCH: name, Tag.KIND: KIND_TRIAL, Tag.STATE: STATE_COMPLETE}
        ),
        max_results=50000,
    )
    if not runs:
        raise ConfigError(f"search {name!r} has no complete trial to register")
    best_run = max(runs, key=lambda r: r.data.metrics.get(OBJECTIVE, float("-inf")))
    base_model = preset(cfg.preset)
    pairs = load_search_pairs(cfg.data, base_model.image_size, seed=cfg.seed, progress=False)
    base_model = base_model.replace(num_classes=pairs.num_classes)
    params = {
        k: _param_value(v)
        for k, v in best_run.data.params.items()
        if k in set(cfg.space.names) | {c for c, _ in cfg.space.constants}
    }
    best = {
        "trial_id": best_run.data.tags[Tag.TRIAL_ID],
        "params": params,
        "metrics": {OBJECTIVE: best_run.data.metrics[OBJECTIVE]},
    }
    outcome = SearchOutcome(
        name=name,
        experiment_id=experiment.experiment_id,
        experiment=experiment.name,
        trials=[],
        best=best,
        seconds=0.0,
        fold_seconds=0.0,
    )
    init_ray(cfg)
    cfg = placed(cfg)
    return register_best(cfg, outcome, pairs, base_model, cfg.train.replace(seed=cfg.seed), say=say)


def _param_value(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)
