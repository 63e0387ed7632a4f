"""What a search's plan is sized for: the cluster's CPUs and GPUs, declared or present.

A search plans how many fold tasks of a trial and how many trials run at once
(search.checks.fit_resources), and whether folds take GPUs when `--fold-gpus` is unset
(Resources.resolved), for a *capacity*:

- declared: `Resources.cluster_cpus` / `cluster_gpus` (`--cluster-cpus`, `--cluster-gpus`),
  the most an autoscaling cluster will hold (its max workers x each worker's CPUs and GPUs).
  The plan is sized for them whatever is up when the search starts: on a cluster scaled to
  zero (a head with no CPUs and no workers yet) every trial's placement group is created and
  waits, and those pending groups are the demand the Ray autoscaler adds nodes for;
- otherwise the nodes up when the search starts (`ray.cluster_resources()`), as before.

When neither fits one fold (no worker has joined, nothing declared), a search that joined a
cluster does not fail: it plans the fold tasks and trials given (`--fold-parallelism`,
`--concurrency`; one each by default) and waits for nodes the same way. Only a declared size
that cannot hold one fold is an error (it never will). A local Ray never grows, so its plan
is always the machine's, and declaring a size for it is refused (SearchConfig).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from search.checks import fit_resources
from search.config import SearchConfig
from tsfmicro.errors import ConfigError

_UNBOUNDED = 1e12  # a figure read from the nodes up now: it may grow to anything


@dataclass(frozen=True)
class Capacity:
    """The CPUs and GPUs a plan is sized for, and those up when it was made."""

    cpus: float
    gpus: float
    present_cpus: float
    present_gpus: float
    declared_cpus: bool = False
    declared_gpus: bool = False

    @property
    def declared(self) -> bool:
        return self.declared_cpus or self.declared_gpus

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpus": self.cpus,
            "gpus": self.gpus,
            "present_cpus": self.present_cpus,
            "present_gpus": self.present_gpus,
            "declared": [n for n, d in (("cpus", self.declared_cpus),
                                        ("gpus", self.declared_gpus)) if d],
        }  # fmt: skip


def capacity_of(cfg: SearchConfig, present: Mapping[str, float]) -> Capacity:
    """The capacity of `cfg` on a cluster whose nodes up now hold `present` (Ray's resource
    names): each declared figure replaces the present one."""
    r = cfg.resources
    cpus, gpus = float(present.get("CPU", 0.0)), float(present.get("GPU", 0.0))
    return Capacity(
        cpus=float(r.cluster_cpus) if r.cluster_cpus is not None else cpus,
        gpus=float(r.cluster_gpus) if r.cluster_gpus is not None else gpus,
        present_cpus=cpus,
        present_gpus=gpus,
        declared_cpus=r.cluster_cpus is not None,
        declared_gpus=r.cluster_gpus is not None,
    )


def cluster_capacity(cfg: SearchConfig) -> Capacity:
    """The capacity of `cfg` on the connected Ray cluster."""
    import ray

    return capacity_of(cfg, ray.cluster_resources())


def fit_capacity(cfg: SearchConfig, n_folds: int, cap: Capacity) -> tuple[int, int]:
    """(fold tasks of one trial at once, trials at once) for `cfg` (resources resolved) on
    `cap`. Where no fold fits the nodes up now and the search joined a cluster, the given
    --fold-parallelism and --concurrency (1 each when unset): the trials wait for nodes. A
    ConfigError when a declared size, or a local Ray, cannot hold one fold."""
    try:
        return fit_resources(cfg, n_folds, cap.cpus, cap.gpus)
    except ConfigError as exc:
        if cfg.ray_address is None:
            raise  # a local Ray never grows
        # a figure read from the nodes up now may grow; a declared one will not
        try:
            fit_resources(
                cfg,
                n_folds,
                cap.cpus if cap.declared_cpus else _UNBOUNDED,
                cap.gpus if cap.declared_gpus else _UNBOUNDED,
            )
        except ConfigError:
            raise ConfigError(
                f"the declared cluster ({_declared(cap)}) cannot hold one fold "
                f"({cfg.resources.fold_cpus:g} CPUs, {cfg.resources.fold_gpus:g} GPUs): "
                "raise --cluster-cpus/--cluster-gpus to the cluster's maximum or lower "
                "--fold-cpus/--fold-gpus"
            ) from exc
        r = cfg.resources
        return r.fold_parallelism or 1, min(r.concurrency or 1, cfg.trials)


def capacity_note(cfg: SearchConfig, cap: Capacity, parallelism: int, concurrency: int) -> str:
    """One line on a cluster search's plan made beyond the nodes up now ("" when it fits
    them, and for a local search)."""
    if cfg.ray_address is None:
        return ""
    r = cfg.resources
    need_cpus = concurrency * (r.trial_cpus + parallelism * r.fold_cpus)
    need_gpus = concurrency * parallelism * (r.fold_gpus or 0.0)
    if need_cpus <= cap.present_cpus + 1e-9 and need_gpus <= cap.present_gpus + 1e-9:
        return ""
    up = f"{cap.present_cpus:g} CPUs and {cap.present_gpus:g} GPUs up now"
    wait = (
        "trials wait in their placement groups until nodes join (the pending demand an "
        "autoscaler adds nodes for)"
    )
    if cap.declared:
        return f"cluster: planned for {_declared(cap)} (declared); {up}: {wait}"
    note = (
        f"cluster: {up}, not room for the plan ({need_cpus:g} CPUs, {need_gpus:g} GPUs); "
        f"{wait}; declare the cluster's size (--cluster-cpus, --cluster-gpus) to plan "
        "for more"
    )
    if cfg.resources.fold_gpus == 0 and cap.gpus == 0:
        note += "; folds take no GPU (none is up: give --fold-gpus or --cluster-gpus for GPUs)"
    return note


def _declared(cap: Capacity) -> str:
    return f"{cap.cpus:g} CPUs, {cap.gpus:g} GPUs"
