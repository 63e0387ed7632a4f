"""The search space: which ModelConfig/TrainConfig fields a search samples, and how.

A space is data. In YAML, each key names a field of `ModelConfig` or
`TrainConfig` (the model and the recipe; machine settings, `MachineConfig`, are
never part of a space); its value is either a constant or a distribution:

    temporal_depth: {type: int, low: 2, high: 8}
    spatial_depth: {type: int, low: 1, high: 4}
    fusion: {type: categorical, choices: [late, early, t2s, s2t]}
    lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
    epochs: 30                      # a constant, applied to every trial

Numbers may be spelled as YAML 1.1 reads them as strings (`1e-4`, `1E-4`, `1_000`): every
bound, step, choice and constant is read as its field takes it (a number, a whole number, true
or false, one of a fixed set of values), and a value the field cannot take is refused here,
naming it, before any search starts.

The default space is the product's: temporal ("RetNet") depth, spatial depth,
fusion type and learning rate.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tsfmicro.config import MACHINE_FIELDS, ModelConfig, TrainConfig
from tsfmicro.errors import ConfigError

ParamType = Literal["int", "float", "categorical"]

MODEL_FIELDS = frozenset(f.name for f in dataclasses.fields(ModelConfig))
TRAIN_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig))
# Fields a search must not sample: they describe the data or the run, not the model.
NOT_SEARCHABLE = frozenset({"num_classes", "image_size", "seed"})


@dataclass(frozen=True)
class Param:
    """One sampled field."""

    name: str
    type: ParamType
    low: float | None = None  # int/float bounds, inclusive
    high: float | None = None
    log: bool = False  # sample on a log scale (int/float)
    step: float | None = None  # int/float step (ints default to 1)
    choices: tuple[Any, ...] = ()  # categorical values

    def __post_init__(self) -> None:
        where = f"search space parameter {self.name!r}"
        _check_field(self.name)
        kind, accepted = field_kind(self.name)
        if self.type in ("int", "float"):
            if kind not in ("int", "float"):
                raise ConfigError(
                    f"{where}: {self.name} takes {_kind_words(kind, accepted)}, not a range; "
                    "search it with type categorical and a list of choices"
                )
            if kind == "int" and self.type == "float":
                raise ConfigError(f"{where}: {self.name} takes whole numbers: use type int")
            for key in ("low", "high", "step"):
                value = getattr(self, key)
                if value is not None:
                    value = to_number(value, f"{where} {key}", whole=self.type == "int")
                    object.__setattr__(self, key, value)
            if self.step is not None and self.step <= 0:
                raise ConfigError(f"{where}: step must be positive, got {self.step}")
            if self.low is None or self.high is None or not self.low <= self.high:
                raise ConfigError(
                    f"{where}: needs low <= high, got low={self.low} high={self.high}"
                )
            if self.log and self.low <= 0:
                raise ConfigError(f"{where}: a log scale needs low > 0, got {self.low}")
            if self.log and self.step is not None:
                raise ConfigError(f"{where}: log and step cannot be combined")
        elif self.type == "categorical":
            if not self.choices:
                raise ConfigError(f"{where}: categorical needs a non-empty 'choices' list")
            choices = tuple(field_value(self.name, c, where) for c in self.choices)
            object.__setattr__(self, "choices", choices)
        else:
            raise ConfigError(f"{where}: type must be int, float or categorical, got {self.type!r}")

    def suggest(self, trial: Any) -> Any:
        """Draw a value with an Optuna trial (define-by-run)."""
        if self.type == "int":
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        if self.type == "float":
            return trial.suggest_float(
                self.name, float(self.low), float(self.high), step=self.step, log=self.log
            )
        return trial.suggest_categorical(self.name, list(self.choices))

    def grid_values(self) -> list[Any]:
        """Every value, for grid search (floats need a step)."""
        if self.type == "categorical":
            return list(self.choices)
        step = self.step or (1 if self.type == "int" else None)
        if step is None or self.log:
            raise ConfigError(
                f"search space parameter {self.name!r}: grid search needs a categorical, an int "
                "range or a float range with a step (no log scale)"
            )
        count = int(math.floor((self.high - self.low) / step + 1e-9)) + 1
        values = [self.low + i * step for i in range(count)]
        return [int(v) for v in values] if self.type == "int" else values

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.type == "categorical":
            out["choices"] = list(self.choices)
        else:
            out.update(low=self.low, high=self.high)
            if self.log:
                out["log"] = True
            if self.step is not None:
                out["step"] = self.step
        return out


@dataclass(frozen=True)
class SearchSpace:
    params: tuple[Param, ...]
    constants: tuple[tuple[str, Any], ...] = ()  # fields fixed for every trial

    def __post_init__(self) -> None:
        names = [p.name for p in self.params] + [k for k, _ in self.constants]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError(f"search space names a field twice: {', '.join(repeated)}")
        for name, _ in self.constants:
            _check_field(name)
        constants = tuple(
            (name, field_value(name, value, f"search space constant {name!r}"))
            for name, value in self.constants
        )
        object.__setattr__(self, "constants", constants)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def define(self, trial: Any) -> dict[str, Any]:
        """Optuna define-by-run: sample every parameter; return the constants."""
        for param in self.params:
            param.suggest(trial)
        return dict(self.constants)

    def grid(self) -> dict[str, list[Any]]:
        return {p.name: p.grid_values() for p in self.params}

    def to_dict(self) -> dict[str, Any]:
        return {**{p.name: p.to_dict() for p in self.params}, **dict(self.constants)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "search space") -> SearchSpace:
        if not isinstance(data, dict) or not data:
            raise ConfigError(f"{source}: expected a mapping of field names to distributions")
        params, constants = [], []
        for name, spec in data.items():
            if isinstance(spec, dict):
                spec = dict(spec)
                unknown = set(spec) - {"type", "low", "high", "log", "step", "choices"}
                if unknown:
                    raise ConfigError(f"{source}: {name}: unknown key(s) {sorted(unknown)}")
                if "type" not in spec:
                    raise ConfigError(f"{source}: {name}: missing 'type' (int, float, categorical)")
                if "choices" in spec:
                    spec["choices"] = tuple(spec["choices"])
                params.append(Param(name=name, **spec))
            else:
                constants.append((name, spec))
        return cls(params=tuple(params), constants=tuple(constants))

    @classmethod
    def from_yaml(cls, path: str | Path) -> SearchSpace:
        import yaml

        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read search space {path}: {exc}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        return cls.from_dict(data, source=str(path))

    def extend(self, other: SearchSpace) -> SearchSpace:
        """This space with `other`'s parameters and constants added (other wins on a name)."""
        taken = set(other.names) | {k for k, _ in other.constants}
        return SearchSpace(
            params=tuple(p for p in self.params if p.name not in taken) + other.params,
            constants=tuple(c for c in self.constants if c[0] not in taken) + other.constants,
        )


def _check_field(name: str) -> None:
    if name in NOT_SEARCHABLE:
        raise ConfigError(f"search space: {name!r} is set by the data or the run, not searched")
    if name in MACHINE_FIELDS:
        raise ConfigError(
            f"search space: {name!r} is a machine setting (MachineConfig), not part of the "
            f"recipe or the model: fix it for the whole search with --set {name}=VALUE or in "
            "the settings' machine section"
        )
    if name not in MODEL_FIELDS | TRAIN_FIELDS:
        raise ConfigError(
            f"search space: unknown field {name!r}; fields are those of ModelConfig "
            f"({', '.join(sorted(MODEL_FIELDS - NOT_SEARCHABLE))}) and TrainConfig "
            f"({', '.join(sorted(TRAIN_FIELDS - NOT_SEARCHABLE))})"
        )


@functools.cache
def _field_kinds() -> dict[str, tuple[str, tuple[Any, ...]]]:
    kinds: dict[str, tuple[str, tuple[Any, ...]]] = {}
    for cls in (ModelConfig, TrainConfig):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            if typing.get_origin(hint) is Literal:
                kinds[f.name] = ("choice", typing.get_args(hint))
            elif hint in (bool, int, float):
                kinds[f.name] = (hint.__name__, ())
            elif typing.get_origin(hint) is tuple:
                kinds[f.name] = ("tuple", ())
            else:
                kinds[f.name] = ("other", ())
    return kinds


def field_kind(name: str) -> tuple[str, tuple[Any, ...]]:
    """What a ModelConfig/TrainConfig field takes, from its annotation: ("int", ()),
    ("float", ()), ("bool", ()), ("tuple", ()), ("choice", the accepted values) or
    ("other", ()). The accepted values of `fusion` are the fusion registry's names
    (tsfmicro.models.fusion checks that the two agree)."""
    return _field_kinds().get(name, ("other", ()))


def _kind_words(kind: str, accepted: tuple[Any, ...]) -> str:
    if kind == "choice":
        return "one of " + ", ".join(map(str, accepted))
    return {"bool": "true or false", "tuple": "a list of values"}.get(kind, "a value")


def to_number(value: Any, where: str, whole: bool = False) -> int | float:
    """`value` as a finite number: YAML 1.1 leaves `1e-4`, `1E-4` or `1_000` as strings, so
    a string that Python reads as a number counts as one. `whole`: it must be a whole
    number, returned as an int."""
    number = value
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        try:
            number = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise ConfigError(f"{where}: {value!r} is not a number") from None
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise ConfigError(f"{where}: {value!r} is not a number")
    if not math.isfinite(number):
        raise ConfigError(f"{where}: {value!r} is not a finite number")
    if whole:
        if not float(number).is_integer():
            raise ConfigError(f"{where}: {value!r} is not a whole number")
        return int(number)
    return number


def field_value(name: str, value: Any, where: str) -> Any:
    """`value` as field `name` takes it (numbers in any YAML spelling for numeric fields,
    lists as tuples); a value the field cannot take is a ConfigError that names it and, for a
    field with a fixed set of values, lists them."""
    kind, accepted = field_kind(name)
    if kind == "choice":
        if isinstance(value, str) and value in accepted:
            return value
        raise ConfigError(
            f"{where}: {value!r} is not a value {name} accepts; accepted: "
            + ", ".join(map(str, accepted))
        )
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: {name} takes true or false, got {value!r}")
    if kind in ("int", "float"):
        return to_number(value, where, whole=kind == "int")
    if kind == "tuple":
        if isinstance(value, list | tuple):
            return tuple(value)
        raise ConfigError(f"{where}: {name} takes a list of values, got {value!r}")
    return value


DEFAULT_SPACE = SearchSpace(
    params=(
        Param("temporal_depth", "int", low=2, high=8),
        Param("spatial_depth", "int", low=1, high=4),
        Param("fusion", "categorical", choices=("late", "early", "t2s", "s2t")),
        Param("lr", "float", low=1e-4, high=3e-3, log=True),
    )
)


def split_params(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split sampled values into ModelConfig and TrainConfig overrides."""
    model = {k: v for k, v in values.items() if k in MODEL_FIELDS}
    train = {k: v for k, v in values.items() if k in TRAIN_FIELDS}
    unknown = set(values) - set(model) - set(train)
    if unknown:
        raise ConfigError(f"unknown configuration field(s): {sorted(unknown)}")
    return model, train


def resolve_configs(
    base_model: ModelConfig, base_train: TrainConfig, values: dict[str, Any]
) -> tuple[ModelConfig, TrainConfig]:
    """The trial's configs: base configs with the sampled and constant values applied."""
    model, train = split_params(values)
    for name in ("temporal_widths", "temporal_heads"):
        if name in model:
            model[name] = tuple(model[name])
    return base_model.replace(**model), base_train.replace(**train)
