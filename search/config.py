"""What a search is: data, base model and training, space, sampler, scheduler, resources,
budget, storage and tracking. Typed, frozen, validated on construction."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from search.schema import DEFAULT_TRACKING_URI
from search.space import DEFAULT_SPACE, SearchSpace
from tsfmicro.config import PRESETS, MachineConfig, TrainConfig, split_train_record
from tsfmicro.errors import ConfigError
from tsfmicro.vocab import EVAL_MODES, FOLD_GROUPS, SCORES, EvalMode, FoldGroup, Score

Sampler = Literal["tpe", "gp", "random", "grid"]
Scheduler = Literal["none", "asha"]

DEFAULT_STORAGE = "runs/search"  # where Tune keeps searches unless told otherwise
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_URI_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def local_storage_path(text: str) -> str:
    """A search's storage path as a local folder: a plain path as given, `file:///abs/path`
    as `/abs/path`. Any other URI (s3://, gs://, hdfs://, ...) is refused: the driver, the
    trials and the honest estimates read and write the storage folder with local file I/O,
    so a bucket has to be mounted as a folder (docs/search.md, Checked before work)."""
    text = str(text)
    if not text.strip():
        raise ConfigError("SearchConfig.storage_path: empty; give a folder")
    match = _URI_SCHEME.match(text)
    if text.lower().startswith("file:"):
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise ConfigError(
                f"SearchConfig.storage_path: {text!r}: a file URI names a local folder "
                "(file:///abs/path)"
            )
        return unquote(parts.path)
    if match:
        raise ConfigError(
            f"SearchConfig.storage_path: {text!r}: {match.group(1)}:// storage is not "
            "supported; give a local folder or a file:// URI (on a cluster: a shared mount at "
            "the same path on every node, such as NFS, a volume claim or a bucket mounted with "
            "a FUSE driver)"
        )
    return text


@dataclass(frozen=True)
class DataSpec:
    """Where a search's samples come from."""

    dataset: str = "synthetic"  # "synthetic" (generated on first use), "toy", or an adapter
    root: str | None = None  # a dataset copy's folder (adapters only)
    protocol: str | None = None  # default: the dataset's main protocol
    annotation: str | None = None  # annotation file, when not in root
    layout: str | None = None  # frame layout, where a dataset has several
    # The synthetic benchmark: written once in a real dataset's layout, then read like one.
    synth_dataset: str = "casme2"  # whose layout and protocol it imitates
    synth_subjects: int = 8
    synth_clips: int = 10  # clips per subject
    synth_difficulty: str = "easy"
    synth_seed: int = 0
    synth_pair_frames: bool = False  # also write the training-pair candidates (SynthConfig)
    # The toy task (in memory, no faces): for quick checks.
    toy_subjects: int = 6
    toy_per_subject: int = 12
    toy_classes: int = 3
    data_dir: str | None = None  # where synthetic copies are written (default: cache/synth)
    cache_dir: str | None = None  # face-crop cache (default: $TSFMICRO_CACHE or ~/.cache)
    # Permute the labels (PairSet.shuffled_labels with the search's seed): a chance-level
    # control. The dataset gets a name of its own (search.data.dataset_label), so such a
    # search never shares an experiment or a leaderboard with the real labels.
    shuffle_labels: bool = False
    # Only these subjects (after any label shuffling, so a subset keeps the labels the whole
    # set had); None: every subject. A nested search's inner searches use it.
    subjects: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.subjects is not None:
            names = tuple(str(s) for s in self.subjects)  # a JSON or YAML list
            object.__setattr__(self, "subjects", names)
            repeated = sorted({s for s in names if names.count(s) > 1})
            if not names or repeated:
                raise ConfigError(
                    "DataSpec.subjects must name at least one subject, each once"
                    + (f" (repeated: {', '.join(repeated)})" if repeated else "")
                )
        from tsfmicro.datasets import list_datasets  # the adapters' registry, and composite

        adapters = set(list_datasets())
        if self.dataset not in adapters | {"synthetic", "toy"}:
            raise ConfigError(
                f"DataSpec.dataset: unknown {self.dataset!r}; choose synthetic, toy or one of "
                f"{', '.join(sorted(adapters))}"
            )
        if self.dataset in adapters and not self.root:
            raise ConfigError(f"DataSpec.root: dataset {self.dataset!r} needs its folder (root)")
        for name in ("synth_subjects", "synth_clips", "toy_subjects", "toy_per_subject"):
            if getattr(self, name) < 1:
                raise ConfigError(f"DataSpec.{name} must be >= 1, got {getattr(self, name)}")

    def known_subjects(self) -> int | None:
        """How many subjects the search will have, where the settings alone say so (the named
        subjects, the toy task's or the synthetic benchmark's count); None for a real copy."""
        if self.subjects is not None:
            return len(self.subjects)
        if self.dataset == "toy":
            return self.toy_subjects
        if self.dataset == "synthetic":
            return self.synth_subjects
        return None


# GPUs per fold task when the cluster has GPUs and none was asked for: four folds share a
# GPU (one fold at batch 32 leaves a GPU mostly idle); docs/speed.md.
AUTO_FOLD_GPUS = 0.25


@dataclass(frozen=True)
class Resources:
    """How trials and their LOSO folds are placed on the cluster."""

    fold_cpus: float = 1.0  # CPUs per fold task
    # GPUs per fold task; fractions pack several folds on one GPU. None: AUTO_FOLD_GPUS when
    # the cluster has GPUs, else 0 (CPU folds); see resolved().
    fold_gpus: float | None = None
    fold_parallelism: int | None = None  # folds of one trial at once (default: what fits)
    concurrency: int | None = None  # trials at once (default: what fits)
    trial_cpus: float = 0.0  # CPUs for the trial's own process, which only waits on folds
    # Folds per task, trained together on the task's device: 1 spreads a trial's folds over
    # workers one fold per task; 0 puts all of a trial's folds in one task (one GPU). See
    # docs/speed.md for which is faster where.
    fold_batch: int = 1
    # How a task's folds train together (tsfmicro.training.runners.Runner.for_task):
    # "stacked", their models stacked into one; "streams", each in a thread of its own and on
    # CUDA a stream of its own (on the CPU as many at once as the task has CPUs); "sequential",
    # one after another.
    fold_group: FoldGroup = "stacked"
    # The most CPUs and GPUs the cluster will hold for folds: an autoscaling cluster's
    # maximum (max workers x each worker's). The plan (fold tasks and trials at once, and
    # fold_gpus when unset) is sized for them instead of the nodes up when the search starts;
    # trials that do not fit yet wait in their placement groups, which is the demand an
    # autoscaler adds nodes for. None: the nodes up at the start (search.capacity).
    cluster_cpus: float | None = None
    cluster_gpus: float | None = None

    def __post_init__(self) -> None:
        if self.fold_cpus <= 0:
            raise ConfigError(f"Resources.fold_cpus must be > 0, got {self.fold_cpus}")
        if self.fold_gpus is not None and self.fold_gpus < 0:
            raise ConfigError(f"Resources.fold_gpus must be >= 0, got {self.fold_gpus}")
        if self.fold_gpus is not None and (
            self.fold_gpus > 1 and not float(self.fold_gpus).is_integer()
        ):
            raise ConfigError(f"Resources.fold_gpus above 1 must be whole, got {self.fold_gpus}")
        for name in ("fold_parallelism", "concurrency"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"Resources.{name} must be >= 1, got {value}")
        if (
            not isinstance(self.fold_batch, int)
            or isinstance(self.fold_batch, bool)
            or (self.fold_batch < 0)
        ):
            raise ConfigError(
                f"Resources.fold_batch must be a whole number >= 0 (0: all folds in one task), "
                f"got {self.fold_batch!r}"
            )
        if self.fold_group not in FOLD_GROUPS:
            raise ConfigError(
                f"Resources.fold_group must be one of {', '.join(FOLD_GROUPS)}, "
                f"got {self.fold_group!r}"
            )
        if self.trial_cpus < 0:
            raise ConfigError(f"Resources.trial_cpus must be >= 0, got {self.trial_cpus}")
        for name in ("cluster_cpus", "cluster_gpus"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not value >= 0):
                raise ConfigError(f"Resources.{name} must be >= 0, got {value!r}")
        for name, per_fold in (("cpus", self.fold_cpus), ("gpus", self.fold_gpus)):
            most = getattr(self, f"cluster_{name}")
            if most is not None and per_fold and most < per_fold:
                raise ConfigError(
                    f"Resources.cluster_{name}: the declared cluster ({most:g} {name[0].upper()}"
                    f"{name[1:-1].upper()}s) cannot hold one fold task ({per_fold:g}, "
                    f"--fold-{name})"
                )

    def resolved(self, cluster_gpus: float) -> Resources:
        """These resources on a cluster with `cluster_gpus` GPUs: an unset fold_gpus becomes
        AUTO_FOLD_GPUS where there are GPUs (folds train on them, four to a GPU) and 0 where
        there are none. A set value is kept."""
        if self.fold_gpus is not None:
            return self
        return dataclasses.replace(self, fold_gpus=AUTO_FOLD_GPUS if cluster_gpus > 0 else 0.0)


def default_train() -> TrainConfig:
    """The base training recipe of a search: the published one, with a budget a CPU demo can
    afford (every field can be overridden or searched)."""
    return TrainConfig(epochs=12, batch_size=16, weight_decay=0.05)


NESTED_NAME_MAX = 90  # a nested search's name; its inner searches are <name>-outer<k>


def outer_fold_problem(subjects: int, outer_folds: int | None, val_subjects: int = 0) -> str:
    """Why a nested search cannot split `subjects` subjects into `outer_folds` outer folds
    (None: one per subject) whose inner searches each run a LOSO with `val_subjects` inner
    validation subjects; "" when it can. Every inner LOSO fold needs a training subject
    besides the held-out one and the validation ones, so each outer-training part needs at
    least 2 + val_subjects subjects."""
    k = subjects if outer_folds is None else outer_folds
    if subjects < 3:
        return (
            f"the data has {subjects} subject(s); a nested LOSO needs at least 3 (an outer "
            "test subject and 2 for the inner LOSO)"
        )
    if k > subjects:
        return f"--outer-folds {k} is more than the {subjects} subjects of the data"
    largest = -(-subjects // k)  # the biggest outer test group (numpy.array_split sizes)
    need = 2 + val_subjects
    if subjects - largest < need:
        return (
            f"{k} outer folds of {subjects} subjects leave {subjects - largest} subject(s) for "
            f"an inner search, which needs at least {need} (2"
            + (f" + {val_subjects} inner validation" if val_subjects else "")
            + "); use fewer outer folds or more subjects"
        )
    return ""


@dataclass(frozen=True)
class SearchConfig:
    name: str  # the search's name: Tune experiment folder, MLflow tag, --resume handle
    data: DataSpec = field(default_factory=DataSpec)
    preset: str = "tiny"  # base model; the space's parameters override its fields
    space: SearchSpace = DEFAULT_SPACE
    train: TrainConfig = field(default_factory=default_train)  # base training recipe
    # where the folds run and how (device, precision, compile): never sampled
    machine: MachineConfig = field(default_factory=MachineConfig)
    trials: int = 4
    sampler: Sampler = "tpe"
    scheduler: Scheduler = "none"  # "asha" stops weak trials after some folds (then PRUNED)
    resources: Resources = field(default_factory=Resources)
    time_budget_s: float | None = None  # stop launching trials after this long
    storage_path: str = DEFAULT_STORAGE  # Tune results (shared storage on a multi-node cluster)
    tracking_uri: str = DEFAULT_TRACKING_URI
    # the Optuna study's database (search.study); None: optuna.db beside a local MLflow store,
    # else under storage_path (a search pins the resolved URL in its saved settings)
    optuna_storage: str | None = None
    seed: int = 0  # sampler seed and base training seed
    eval_mode: EvalMode = "final"  # which evaluation mode the objective reads
    objective: Score = "uf1"  # maximised
    register: bool = True  # refit the best configuration and register it afterwards
    ray_address: str | None = None  # None: a local Ray; "auto" or host:port for a cluster
    fold_retries: int = 2  # retries of a fold task whose worker died
    trial_retries: int = 1  # retries of a failed trial
    bootstrap: int = 1000  # subject-bootstrap replicates for the intervals
    # Nested LOSO (search.nested, docs/search.md): the whole search redone inside each outer
    # fold on the outer-training subjects, its champion refitted and scored on the held-out
    # ones. outer_folds: groups of subjects (None: one subject each, a true nested LOSO).
    nested: bool = False
    outer_folds: int | None = None

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, message: str) -> None:
            if not ok:
                raise ConfigError(f"SearchConfig.{name}: {message}, got {getattr(self, name)!r}")

        need(
            bool(NAME_PATTERN.match(self.name)),
            "name",
            "letters, digits, '.', '_' and '-' only (at most 100)",
        )
        object.__setattr__(self, "storage_path", local_storage_path(self.storage_path))
        need(bool(str(self.tracking_uri).strip()), "tracking_uri", "must not be empty")
        need(
            self.optuna_storage is None or bool(str(self.optuna_storage).strip()),
            "optuna_storage",
            "must not be empty (leave it unset for the default)",
        )
        need(self.preset in PRESETS, "preset", f"must be one of {', '.join(PRESETS)}")
        need(self.trials >= 1, "trials", "must be >= 1")
        need(self.sampler in get_args(Sampler), "sampler", f"one of {get_args(Sampler)}")
        need(self.scheduler in get_args(Scheduler), "scheduler", f"one of {get_args(Scheduler)}")
        need(self.eval_mode in EVAL_MODES, "eval_mode", f"one of {EVAL_MODES}")
        need(self.objective in SCORES, "objective", f"one of {SCORES}")
        need(
            self.time_budget_s is None or self.time_budget_s > 0,
            "time_budget_s",
            "must be positive",
        )
        need(
            self.fold_retries >= 0 and self.trial_retries >= 0,
            "fold_retries",
            "retries must be >= 0",
        )
        need(
            self.eval_mode != "val"
            or self.train.val_subjects > 0
            or any(p.name == "val_subjects" for p in self.space.params)
            or dict(self.space.constants).get("val_subjects", 0) > 0,
            "eval_mode",
            "'val' needs train.val_subjects > 0",
        )
        if self.sampler == "grid":
            self.space.grid()  # raises if a parameter has no finite grid
        if self.ray_address is None and (
            self.resources.cluster_cpus is not None or self.resources.cluster_gpus is not None
        ):
            raise ConfigError(
                "SearchConfig.resources: cluster_cpus and cluster_gpus (--cluster-cpus, "
                "--cluster-gpus) size a search for a cluster that grows; a local Ray never "
                "does: give --ray-address or leave them out"
            )
        need(
            self.outer_folds is None or self.nested,
            "outer_folds",
            "is for a nested search only (--nested)",
        )
        need(
            self.outer_folds is None or self.outer_folds >= 2,
            "outer_folds",
            "must be at least 2 (or unset: one outer fold per subject)",
        )
        if self.nested:
            need(
                len(self.name) <= NESTED_NAME_MAX,
                "name",
                f"of a nested search has at most {NESTED_NAME_MAX} characters (its inner "
                "searches add -outerN)",
            )
            known = self.data.known_subjects()
            problem = known is not None and outer_fold_problem(
                known, self.outer_folds, self.max_val_subjects()
            )
            if problem:
                raise ConfigError(f"SearchConfig.nested: {problem}")

    def max_val_subjects(self) -> int:
        """The most inner-validation subjects any trial can ask for (base recipe, a constant
        or the top of a searched range)."""
        values = [self.train.val_subjects, dict(self.space.constants).get("val_subjects", 0)]
        for p in self.space.params:
            if p.name == "val_subjects":
                values += list(p.choices) if p.type == "categorical" else [p.high]
        return int(max(int(v or 0) for v in values))

    def optuna_url(self) -> str:
        """The database of the search's Optuna study (search.study.default_storage unless
        set)."""
        from search.study import default_storage

        return self.optuna_storage or default_storage(self.tracking_uri, self.storage_path)

    def replace(self, **changes: Any) -> SearchConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the space as its YAML form)."""
        out = dataclasses.asdict(self)
        out["space"] = self.space.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        values = dict(data)
        values["data"] = DataSpec(**values.get("data", {}))
        values["resources"] = Resources(**values.get("resources", {}))
        # settings written before the recipe/machine split hold the machine fields in "train"
        train, moved = split_train_record(values.get("train", default_train().to_dict()))
        values["train"] = train
        values["machine"] = MachineConfig.from_dict(
            {**moved.to_dict(), **(values.get("machine") or {})}
        )
        values["space"] = (
            SearchSpace.from_dict(values["space"]) if "space" in values else (DEFAULT_SPACE)
        )
        return cls(**values)
