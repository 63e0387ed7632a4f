"""`tsfmicro search --check`: the whole configuration checked as a search checks it before
work (search.checks, and the search's name under the storage path) and the plan printed:
the data and its subjects, the folds, the trials and the space, what each fold gets and how
many run at once, where runs, Tune results and models go. It starts no Ray (a local Ray's
resources are read the way Ray would detect them), opens no MLflow store, writes no data,
and exits 0 when the settings are valid, 2 with one line per problem otherwise.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from search.capacity import capacity_of
from search.checks import (
    cache_dir,
    fit_resources,
    local_ray_pending,
    local_resources,
    problems,
    shown_uri,
    sqlite_file,
)
from search.config import AUTO_FOLD_GPUS, SearchConfig
from tsfmicro.errors import ConfigError, TsfmicroError


def check_command(cfg: SearchConfig, *, resume: bool, json_path: Any = None) -> int:
    """Print the plan (stdout) and every problem (stderr, one line each); 0 or 2."""
    from search.run import checked_experiment_dir

    found = problems(cfg)
    try:
        checked_experiment_dir(cfg, resume)
    except ConfigError as exc:
        found.append(str(exc))
    plan = search_plan(cfg, found, resume)
    print(format_plan(plan))
    for problem in found:
        print(f"tsfmicro search --check: error: {problem}", file=sys.stderr)
    print(
        f"check: {len(found)} problem(s); fix them before running this search"
        if found
        else "check: the settings are valid; nothing was started"
    )
    if json_path is not None:
        report = {"valid": not found, "problems": found, "plan": plan}
        Path(json_path).write_text(json.dumps(report, indent=2, default=str))
    return 2 if found else 0


def search_plan(cfg: SearchConfig, found: list[str], resume: bool = False) -> dict[str, Any]:
    """The plan as JSON-ready data; problems met while making it (a real copy's annotation
    that cannot be read) are appended to `found`."""
    from search.data import dataset_label
    from search.run import experiment_dir
    from search.schema import CHAMPION, experiment_name, model_name

    try:
        dataset, protocol = dataset_label(cfg.data)
    except TsfmicroError:
        dataset, protocol = cfg.data.dataset, cfg.data.protocol or "?"
    subjects, data = _data_plan(cfg, found)
    plan: dict[str, Any] = {"name": cfg.name, "dataset": dataset, "protocol": protocol}
    plan["data"] = {**data, "subjects": subjects, "shuffled_labels": cfg.data.shuffle_labels}
    plan["folds"] = {"scheme": "leave-one-subject-out", "per_trial": subjects}
    if cfg.nested:
        plan["folds"]["outer_folds"] = cfg.outer_folds or subjects
    plan["trials"] = {
        "count": cfg.trials,
        "sampler": cfg.sampler,
        "scheduler": cfg.scheduler,
        "seed": cfg.seed,
        "objective": f"{cfg.eval_mode} {cfg.objective} (maximised)",
        "time_budget_s": cfg.time_budget_s,
    }
    plan["space"] = {name: _describe(spec) for name, spec in cfg.space.to_dict().items()}
    plan["model"] = _model_plan(cfg)
    plan["resources"] = _resources_plan(cfg, subjects)
    db = sqlite_file(cfg.tracking_uri)
    plan["runs"] = {
        "tracking_uri": shown_uri(cfg.tracking_uri),
        "sqlite_file": str(db.expanduser().absolute()) if db else None,
        "sqlite_file_exists": bool(db and db.expanduser().is_file()),
        "experiment": experiment_name(dataset, protocol),
    }
    plan["optuna"] = _optuna_plan(cfg, resume)
    plan["storage"] = {"folder": str(experiment_dir(cfg))}
    if cfg.nested:
        plan["models"] = "nothing registered: a nested search's product is its estimate"
    elif not cfg.register:
        plan["models"] = "nothing registered (--no-register)"
    else:
        plan["models"] = (
            f"best complete trial refitted on every subject and registered as "
            f"{model_name(dataset, protocol)} (alias {CHAMPION} if it beats the current one)"
        )
    return plan


def _optuna_plan(cfg: SearchConfig, resume: bool) -> dict[str, Any]:
    """Where the search's Optuna study is kept, and what is there now (read only)."""
    from search.checks import optuna_problem
    from search.study import existing_study, sqlite_file

    url = cfg.optuna_url()
    db = sqlite_file(url)
    if optuna_problem(url):  # named among the problems; not read (a server may not answer)
        state = "unreadable"
    else:
        try:
            trials = existing_study(url, cfg.name)
            state = "new" if trials is None else f"{trials} trial(s) there" + (
                ", continued" if resume else "")  # fmt: skip
        except Exception:  # named among the problems (search.study.study_name_problem)
            state = "unreadable"
    return {
        "storage": shown_uri(url),
        "study": cfg.name,
        "sqlite_file": str(db) if db else None,
        "sqlite_file_exists": bool(db and db.is_file()),
        "study_state": state,
        "dashboard": f"optuna-dashboard {shown_uri(url)}",
    }


def _data_plan(cfg: SearchConfig, found: list[str]) -> tuple[int | None, dict[str, Any]]:
    """(subject count or None, where the samples come from)."""
    spec = cfg.data
    if spec.dataset == "toy":
        source = f"the toy task in memory, {spec.toy_per_subject} samples per subject"
        return spec.known_subjects(), {"source": source}
    crops = {"face_crop_cache": str(cache_dir(cfg))}
    if spec.dataset == "synthetic":
        from search.data import synthetic_root

        root = synthetic_root(spec)
        state = "present" if root.is_dir() else "written on first use"
        source = f"synthetic copy {root} ({state}), {spec.synth_clips} clips per subject"
        return spec.known_subjects(), {"source": source, **crops}
    subjects = spec.known_subjects()
    if subjects is None and spec.root and Path(spec.root).is_dir():
        from tsfmicro.datasets import load_dataset

        try:
            table = load_dataset(
                spec.dataset,
                spec.root,
                spec.protocol,
                annotation=spec.annotation,
                layout=spec.layout,
                require_frames=False,
            )
            subjects = int(table.samples["subject"].nunique())
        except TsfmicroError as exc:
            found.append(f"DataSpec: {spec.dataset} at {spec.root}: {exc}")
    return subjects, {"source": f"{spec.dataset} copy at {spec.root}", **crops}


def _model_plan(cfg: SearchConfig) -> dict[str, Any]:
    from search.space import resolve_configs
    from tsfmicro.config import preset

    try:
        model, train = resolve_configs(preset(cfg.preset), cfg.train, dict(cfg.space.constants))
    except TsfmicroError:
        model, train = preset(cfg.preset), cfg.train
    return {
        "preset": cfg.preset,
        "image_size": model.image_size,
        "epochs": train.epochs,
        "batch_size": train.batch_size,
        "machine": cfg.machine.to_dict(),
    }


def _resources_plan(cfg: SearchConfig, subjects: int | None) -> dict[str, Any]:
    """Per fold task, and on the cluster: how many fold tasks and trials at once."""
    from search.run import run_plan

    r = cfg.resources
    out: dict[str, Any] = {
        "fold_cpus": r.fold_cpus,
        "fold_gpus": r.fold_gpus
        if r.fold_gpus is not None
        else f"auto: {AUTO_FOLD_GPUS:g} where the cluster has GPUs, else 0",
        "folds_per_task": r.fold_batch or "all of a trial's",
        "fold_group": r.fold_group,
        "trial_cpus": r.trial_cpus,
        "fold_retries": cfg.fold_retries,
        "trial_retries": cfg.trial_retries,
    }
    if local_ray_pending(cfg):
        cpus, gpus = local_resources()
        out["cluster"] = {"ray": "a local Ray started by the search", "cpus": cpus, "gpus": gpus}
    elif cfg.ray_address is not None and r.cluster_cpus is None and r.cluster_gpus is None:
        out["cluster"] = {"ray": f"the cluster at {cfg.ray_address}, read when joined"}
        return out
    elif cfg.ray_address is not None:  # sized for its declared maximum (search.capacity)
        cap = capacity_of(cfg, {})
        cpus, gpus = cap.cpus, cap.gpus
        out["cluster"] = {"ray": f"the cluster at {cfg.ray_address}, declared size (an "
                                 "undeclared figure is read when joined)",
                          "cpus": cpus, "gpus": gpus}  # fmt: skip
    else:
        import ray

        total = ray.cluster_resources()
        cpus, gpus = total.get("CPU", 0.0), total.get("GPU", 0.0)
        out["cluster"] = {"ray": "the Ray this process is connected to", "cpus": cpus,
                          "gpus": gpus}  # fmt: skip
    placed = cfg.replace(resources=r.resolved(gpus))
    out["fold_gpus_here"] = placed.resources.fold_gpus
    if subjects:
        try:
            parallelism, concurrency = fit_resources(placed, subjects, cpus, gpus)
            out["placement"] = run_plan(placed, subjects, parallelism, concurrency)
        except ConfigError:
            pass  # search.checks.fit_problem names it
    return out


def _describe(spec: Any) -> str:
    """A space entry in a few words."""
    if not isinstance(spec, dict):
        return f"= {spec}"
    if spec["type"] == "categorical":
        return "one of " + ", ".join(map(str, spec["choices"]))
    text = f"{spec['type']} {spec['low']:g}..{spec['high']:g}"
    if spec.get("log"):
        text += " (log)"
    if spec.get("step") is not None:
        text += f" step {spec['step']:g}"
    return text


def format_plan(plan: dict[str, Any]) -> str:
    """The plan as lines a person reads."""
    d, f, t, m, r = plan["data"], plan["folds"], plan["trials"], plan["model"], plan["resources"]
    subjects = d["subjects"] if d["subjects"] is not None else "? (counted when the data loads)"
    lines = [
        f"search plan: {plan['name']} (nothing started: no Ray, no MLflow run, no data written)",
        f"  data       {plan['dataset']} / {plan['protocol']}: {subjects} subjects; {d['source']}"
        + ("; labels shuffled (a chance-level control)" if d["shuffled_labels"] else ""),
        f"  folds      {f['scheme']}: {f['per_trial'] or '?'} folds per trial"
        + (
            f"; nested: {f['outer_folds'] or '?'} outer folds, a whole search inside each"
            if "outer_folds" in f
            else ""
        ),
        f"  trials     {t['count']}, sampler {t['sampler']}, scheduler {t['scheduler']}, seed "
        f"{t['seed']}; objective {t['objective']}"
        + (f"; time budget {t['time_budget_s']:g} s" if t["time_budget_s"] else ""),
        "  space      " + "; ".join(f"{k} {v}" for k, v in plan["space"].items()),
        f"  model      preset {m['preset']} ({m['image_size']} px), {m['epochs']} epochs, "
        f"batch {m['batch_size']}; device {m['machine']['device']}",
        f"  per task   {r['fold_cpus']:g} CPU(s), GPUs {r['fold_gpus']}"
        + (f" (here: {r['fold_gpus_here']:g})" if "fold_gpus_here" in r else "")
        + f"; folds per task: {r['folds_per_task']} ({r['fold_group']})",
    ]
    cluster = r["cluster"]
    line = f"  cluster    {cluster['ray']}"
    if "cpus" in cluster:
        line += f": {cluster['cpus']:g} CPUs, {cluster['gpus']:g} GPUs"
    p = r.get("placement")
    if p:
        line += (
            f"; {p['trials_at_once']} trial(s) at once x {p['fold_tasks_per_trial']} fold "
            f"task(s) per trial x {p['folds_at_once_per_task']} fold(s) at once per task = "
            f"{p['fold_slots']} fold(s) training at once"
        )
    lines.append(line)
    runs = plan["runs"]
    where = ""
    if runs["sqlite_file"]:
        where = f" ({runs['sqlite_file']}, {'exists' if runs['sqlite_file_exists'] else 'new'})"
    lines += [
        f"  runs       MLflow {runs['tracking_uri']}{where}, experiment {runs['experiment']}",
        f"  optuna     study {plan['optuna']['study']} ({plan['optuna']['study_state']}) in "
        f"{plan['optuna']['storage']}; view it: {plan['optuna']['dashboard']}",
        f"  storage    {plan['storage']['folder']} (Tune results and the search's settings)",
        f"  models     {plan['models']}",
    ]
    if "face_crop_cache" in d:
        lines.append(f"  cache      face crops in {d['face_crop_cache']}")
    return "\n".join(lines)
