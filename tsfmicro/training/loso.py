"""Leave-one-subject-out (LOSO) training and its evaluation modes.

`train_fold` trains a fresh model with one subject held out and records the
model's predictions on that subject after *every* epoch. `run_loso` runs all
folds one after another (the search service runs the same `train_fold` as Ray
tasks and assembles the folds with `LosoResult`). From one run, three
evaluation modes are read without retraining:

- ``final`` (default, leak-free): the model at the end of the fixed epoch budget.
- ``val`` (leak-free, when ``TrainConfig.val_subjects > 0``): the epoch with the
  best score on an inner validation split drawn from the *training* subjects.
- ``oracle`` (optimistic, the published practice): for each held-out subject the
  epoch with the best accuracy *on that subject*. This selects on the test data
  and overstates what a model would do on a new subject; it is always labelled.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from tsfmicro import metrics as M
from tsfmicro.config import ModelConfig, TrainConfig
from tsfmicro.errors import ConfigError, InputError
from tsfmicro.models import TSFmicro, build_model
from tsfmicro.models.layers import drop_noise, drop_path_calls
from tsfmicro.training.augment import AugmentParams, augment_pair, draw_params
from tsfmicro.training.data import PairSet, normalize, to_unit_float

EvalMode = Literal["final", "val", "oracle"]
EVAL_MODES: tuple[str, ...] = ("final", "val", "oracle")
OPTIMISTIC_MODES = frozenset({"oracle"})
MODE_NOTES = {
    "final": "leak-free: model at the end of the fixed epoch budget",
    "val": "leak-free: epoch chosen on an inner validation split of training subjects",
    "oracle": "OPTIMISTIC: epoch chosen per subject on that test subject's accuracy "
    "(the published practice; selects on test data)",
}


@dataclass(frozen=True)
class EpochStats:
    """What a fold reports after each epoch (for progress bars, Ray reports, MLflow curves)."""

    subject: str
    epoch: int  # 1-based
    epochs: int
    train_loss: float
    train_acc: float  # on augmented training batches, in train mode
    lr: float
    test_acc: float  # on the held-out subject: a curve to look at, never used to select
    val_score: float | None  # TrainConfig.val_metric on the inner validation split, if any
    seconds: float  # since the fold started


@dataclass
class FoldResult:
    """One LOSO fold: indices into the PairSet and per-epoch probabilities."""

    subject: str
    seed: int
    train_index: np.ndarray  # (n_train,) int: the samples the model was trained on
    test_index: np.ndarray  # (n_test,) int
    val_index: np.ndarray  # (n_val,) int, empty without inner validation
    val_subjects: list[str]
    test_probs: np.ndarray  # (epochs, n_test, K) float32, softmax after each epoch
    val_probs: np.ndarray  # (epochs, n_val, K) float32
    train_loss: np.ndarray  # (epochs,)
    train_acc: np.ndarray  # (epochs,)
    seconds: float
    train_samples: int  # training samples per epoch
    device: str
    worker: str = ""  # where the fold ran, when a runner records it (e.g. a Ray node id)
    state_dict: dict[str, torch.Tensor] | None = None  # only with keep_model=True

    @property
    def epochs(self) -> int:
        return int(self.test_probs.shape[0])


def fold_seed(seed: int, subject: str) -> int:
    """A fold's seed from the run seed and the held-out subject: the same fold gets the same
    seed whatever order or machine the folds run on."""
    digest = hashlib.sha256(f"tsfmicro-fold:{seed}:{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"TrainConfig.device is {name!r} but CUDA is not available here")
    return device


def check_compatible(data: PairSet, model_cfg: ModelConfig) -> None:
    if data.num_classes != model_cfg.num_classes:
        raise ConfigError(
            f"class-count mismatch: data {data.name!r} has {data.num_classes} classes "
            f"{list(data.class_names)} but ModelConfig.num_classes is {model_cfg.num_classes}"
        )
    if data.image_size != model_cfg.image_size:
        raise InputError(
            f"frames of {data.name!r} are {data.image_size}x{data.image_size} but "
            f"ModelConfig.image_size is {model_cfg.image_size}; preprocess at that size"
        )


@dataclass
class FoldSplit:
    """A fold's seed, its random generator (after drawing the split) and its sample indices."""

    subject: str
    seed: int
    generator: torch.Generator  # the fold's own: split, epoch order, augmentation, DropPath
    train_index: np.ndarray
    test_index: np.ndarray
    val_index: np.ndarray
    val_subjects: list[str]


def group_subjects(subjects: Sequence[str], who: str) -> list[str]:
    """The held-out subjects of a group of folds trained together, checked: at least one,
    none twice (`who` names the trainer in the error)."""
    subjects = list(subjects)
    if not subjects:
        raise ConfigError(f"{who} needs at least one subject to hold out")
    if len(set(subjects)) != len(subjects):
        raise ConfigError(f"{who} got a subject twice: {subjects}")
    return subjects


def fold_split(data: PairSet, test_subject: str, train_cfg: TrainConfig) -> FoldSplit:
    """Hold out `test_subject` (and draw the inner validation subjects, if any)."""
    subjects = data.subjects
    test_index = np.flatnonzero(subjects == test_subject)
    if len(test_index) == 0:
        raise InputError(f"subject {test_subject!r} has no samples in {data.name!r}")
    seed = fold_seed(train_cfg.seed, test_subject)
    generator = torch.Generator().manual_seed(seed)
    others = [s for s in data.subject_ids() if s != test_subject]
    if train_cfg.val_subjects >= len(others):
        raise ConfigError(
            f"TrainConfig.val_subjects={train_cfg.val_subjects} leaves no training subject "
            f"({len(others)} subjects besides {test_subject!r})"
        )
    order = torch.randperm(len(others), generator=generator).tolist()
    val_subjects = sorted(others[i] for i in order[: train_cfg.val_subjects])
    val_mask = np.isin(subjects, val_subjects)
    return FoldSplit(
        subject=test_subject,
        seed=seed,
        generator=generator,
        train_index=np.flatnonzero((subjects != test_subject) & ~val_mask),
        test_index=test_index,
        val_index=np.flatnonzero(val_mask),
        val_subjects=val_subjects,
    )


def draw_step(
    batch: int, size: int, generator: torch.Generator, cfg: TrainConfig, drop_calls: int
) -> tuple[AugmentParams | None, Tensor]:
    """A training step's random draws from the fold's generator, in a fixed order: the
    augmentation of each sample, then the DropPath noise (drop_calls, batch)."""
    params = None
    if cfg.augment:
        params = draw_params(batch, size, generator, cfg.flip_p, cfg.rotation_deg, cfg.crop_padding)
    return params, torch.rand(drop_calls, batch, generator=generator)


def train_fold(
    data: PairSet,
    test_subject: str,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    *,
    on_epoch: Callable[[EpochStats], None] | None = None,
    keep_model: bool = False,
) -> FoldResult:
    """Train a fresh model on every subject but `test_subject` (and any inner validation
    subjects), recording test (and validation) probabilities after every epoch."""
    return _train_fold(
        data, test_subject, model_cfg, train_cfg, on_epoch=on_epoch, keep_model=keep_model
    )


def _train_fold(
    data: PairSet,
    test_subject: str,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    *,
    on_epoch: Callable[[EpochStats], None] | None = None,
    keep_model: bool = False,
    init_lock: contextlib.AbstractContextManager | None = None,
    stream: Any = None,
) -> FoldResult:
    """train_fold, with the hooks of folds trained at once in threads
    (tsfmicro.training.streams): `init_lock` is held while the model is initialised from
    torch's global RNG (seeded per fold, so two threads must not interleave there), and the
    training runs on the CUDA `stream` when one is given. Training itself draws only from the
    fold's own generator."""
    check_compatible(data, model_cfg)
    split = fold_split(data, test_subject, train_cfg)
    seed, generator = split.seed, split.generator
    train_index, test_index, val_index = split.train_index, split.test_index, split.val_index
    val_subjects = split.val_subjects
    device = resolve_device(train_cfg.device)
    start = time.perf_counter()
    with init_lock or contextlib.nullcontext(), _seeded(seed, device):
        model = build_model(model_cfg).to(device)
    on_stream: contextlib.AbstractContextManager = contextlib.nullcontext()
    if stream is not None:
        stream.wait_stream(torch.cuda.current_stream(device))  # the model's copy to the GPU
        on_stream = torch.cuda.stream(stream)
    with on_stream:
        history = _fit(
            model,
            data,
            train_index,
            test_index,
            val_index,
            train_cfg,
            generator,
            device,
            test_subject,
            on_epoch,
            start,
        )
    if stream is not None:
        stream.synchronize()  # the fold's work is done before its model is read or freed
    return FoldResult(
        subject=test_subject,
        seed=seed,
        train_index=train_index,
        test_index=test_index,
        val_index=val_index,
        val_subjects=val_subjects,
        test_probs=history["test"],
        val_probs=history["val"],
        train_loss=history["loss"],
        train_acc=history["acc"],
        seconds=time.perf_counter() - start,
        train_samples=len(train_index),
        device=str(device),
        state_dict=_cpu_state(model) if keep_model else None,
    )


def train_full(
    data: PairSet,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> TSFmicro:
    """Train one model on every sample (the refit of a chosen configuration)."""
    check_compatible(data, model_cfg)
    seed = fold_seed(train_cfg.seed, "__all__")
    generator = torch.Generator().manual_seed(seed)
    device = resolve_device(train_cfg.device)
    everything = np.arange(len(data))
    empty = np.zeros(0, dtype=np.int64)
    with _seeded(seed, device):
        model = build_model(model_cfg).to(device)
        _fit(
            model,
            data,
            everything,
            empty,
            empty,
            train_cfg,
            generator,
            device,
            "__all__",
            on_epoch,
            time.perf_counter(),
        )
    return model.eval()


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global RNGs (model init) inside, restore the caller's after."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _fit(
    model: TSFmicro,
    data: PairSet,
    train_index: np.ndarray,
    test_index: np.ndarray,
    val_index: np.ndarray,
    cfg: TrainConfig,
    generator: torch.Generator,
    device: torch.device,
    subject: str,
    on_epoch: Callable[[EpochStats], None] | None,
    start: float,
) -> dict[str, np.ndarray]:
    k = data.num_classes
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    labels = data.labels.to(device)
    onset_frames, apex_frames = data.training_frames(cfg.train_pairs)
    train_onset = onset_frames[train_index].to(device)  # uint8 on the device, once per fold
    train_apex = apex_frames[train_index].to(device)
    train_labels = labels[torch.as_tensor(train_index, device=device)]
    weight = _class_weights(train_labels, k, cfg.class_weighting)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    autocast = _autocast(device, cfg.amp)
    forward = step_forward(model, cfg, device)
    graphs = cfg.compile == "cudagraphs"
    n = len(train_index)
    drop_calls = drop_path_calls(model)
    history: dict[str, list] = {"test": [], "val": [], "loss": [], "acc": []}
    for epoch in range(cfg.epochs):
        lr = cfg.lr * cfg.lr_gamma ** min(epoch, cfg.lr_decay_epochs)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        order = torch.randperm(n, generator=generator)
        # Summed on the device and read once per epoch: a per-step .item() would make every
        # step wait for the GPU.
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        for begin in range(0, n, cfg.batch_size):
            idx = order[begin : begin + cfg.batch_size].to(device)
            onset, apex = to_unit_float(train_onset[idx]), to_unit_float(train_apex[idx])
            params, noise = draw_step(len(idx), data.image_size, generator, cfg, drop_calls)
            if params is not None:
                onset, apex = augment_pair(onset, apex, params)
            target = train_labels[idx]
            if graphs:  # the previous step's graph outputs are no longer read
                torch.compiler.cudagraph_mark_step_begin()
            with autocast, drop_noise(noise.to(device)):
                logits = forward(_layout(normalize(onset), cfg), _layout(normalize(apex), cfg))
            loss = F.cross_entropy(logits.float(), target, weight=weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(idx)
            correct += (logits.detach().argmax(1) == target).sum()
        test_probs = predict_probs(model, data, test_index, device, cfg)
        val_probs = predict_probs(model, data, val_index, device, cfg)
        history["test"].append(test_probs)
        history["val"].append(val_probs)
        history["loss"].append(float(loss_sum) / max(n, 1))
        history["acc"].append(int(correct) / max(n, 1))
        if on_epoch is not None:
            y_test = data.labels[test_index].numpy()
            val_score = None
            if len(val_index):
                y_val = data.labels[val_index].numpy()
                cm = M.confusion_matrix(y_val, val_probs.argmax(1), k)
                val_score = float(M.scores(cm)[cfg.val_metric])
            on_epoch(
                EpochStats(
                    subject=subject,
                    epoch=epoch + 1,
                    epochs=cfg.epochs,
                    train_loss=history["loss"][-1],
                    train_acc=history["acc"][-1],
                    lr=lr,
                    test_acc=float((test_probs.argmax(1) == y_test).mean())
                    if len(y_test)
                    else float("nan"),
                    val_score=val_score,
                    seconds=time.perf_counter() - start,
                )
            )
    return {
        "test": np.stack(history["test"]).astype(np.float32),
        "val": np.stack(history["val"]).astype(np.float32),
        "loss": np.asarray(history["loss"]),
        "acc": np.asarray(history["acc"]),
    }


def predict_probs(
    model: TSFmicro, data: PairSet, index: np.ndarray, device: torch.device, cfg: TrainConfig
) -> np.ndarray:
    """Softmax probabilities (n, K) of the samples at `index`, in eval mode."""
    k = data.num_classes
    if len(index) == 0:
        return np.zeros((0, k), dtype=np.float32)
    model.eval()
    out = []
    with torch.inference_mode(), _autocast(device, cfg.amp):
        for begin in range(0, len(index), cfg.eval_batch_size):
            idx = torch.as_tensor(index[begin : begin + cfg.eval_batch_size])
            onset = _layout(normalize(to_unit_float(data.onset[idx].to(device))), cfg)
            apex = _layout(normalize(to_unit_float(data.apex[idx].to(device))), cfg)
            out.append(torch.softmax(model(onset, apex).float(), dim=1).cpu())
    return torch.cat(out).numpy()


_COMPILE_OPTIONS: dict[str, dict[str, str]] = {
    "inductor": {},
    "cudagraphs": {"mode": "reduce-overhead"},
    "aot_eager": {"backend": "aot_eager"},
}


def step_forward(
    model: torch.nn.Module, cfg: TrainConfig, device: torch.device
) -> Callable[..., Tensor]:
    """What the training step calls for the logits: the model itself, or the model under
    torch.compile (`TrainConfig.compile`). The compiled module shares the model's parameters,
    and a new model of the same architecture reuses the compiled code (its parameters are
    graph inputs), so only the first fold of a process pays for compilation; a last batch of
    another size compiles once more, with a dynamic batch dimension. Evaluation stays eager."""
    if cfg.compile == "off":
        return model
    if cfg.compile == "cudagraphs" and device.type != "cuda":
        raise ConfigError(
            f"TrainConfig.compile='cudagraphs' needs a CUDA device; this fold runs on {device}"
        )
    return torch.compile(model, **_COMPILE_OPTIONS[cfg.compile])


def _class_weights(labels: torch.Tensor, k: int, mode: str) -> torch.Tensor | None:
    """None, or "balanced" weights n / (K n_c) (zero for a class absent from training)."""
    if mode == "none":
        return None
    counts = torch.bincount(labels, minlength=k).to(torch.float32)
    weight = torch.where(counts > 0, len(labels) / (k * counts.clamp(min=1)), 0.0)
    return weight.to(labels.device)


def _layout(images: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """(B, 3, S, S) images in the memory layout the model was put in."""
    if cfg.channels_last:
        return images.contiguous(memory_format=torch.channels_last)
    return images


def _autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def select_epoch(
    fold: FoldResult, mode: str, labels: np.ndarray, num_classes: int, val_metric: str = "uf1"
) -> int:
    """The 0-based epoch whose test predictions `fold` contributes in evaluation `mode`.

    final: the last epoch. val: the best `val_metric` on the fold's inner validation split.
    oracle: the best accuracy on the held-out subject itself (optimistic). Ties go to the
    later epoch. `labels` are the labels of the whole PairSet.
    """
    if mode == "final":
        return fold.epochs - 1
    if mode == "val":
        if len(fold.val_index) == 0:
            raise ConfigError(f"fold {fold.subject!r} has no validation split for mode 'val'")
        y_val = labels[fold.val_index]
        cms = np.stack(
            [M.confusion_matrix(y_val, p.argmax(1), num_classes) for p in fold.val_probs]
        )
        return _last_argmax(M.scores(cms)[val_metric])
    if mode == "oracle":
        y_test = labels[fold.test_index]
        return _last_argmax((fold.test_probs.argmax(2) == y_test[None]).mean(axis=1))
    raise ConfigError(f"unknown evaluation mode {mode!r}; choose from {', '.join(EVAL_MODES)}")


def pooled_scores(
    folds: list[FoldResult],
    mode: str,
    labels: np.ndarray,
    num_classes: int,
    val_metric: str = "uf1",
) -> dict[str, float]:
    """ACC, UF1 and UAR pooled over the given folds in `mode`: the figures of a LOSO run
    that is still going (the full run's are in LosoResult.evaluate)."""
    y_true, y_pred = [], []
    for fold in folds:
        epoch = select_epoch(fold, mode, labels, num_classes, val_metric)
        y_true.append(labels[fold.test_index])
        y_pred.append(fold.test_probs[epoch].argmax(1))
    cm = M.confusion_matrix(np.concatenate(y_true), np.concatenate(y_pred), num_classes)
    return M.scores(cm)


@dataclass
class LosoResult:
    """All folds of a LOSO run, with the data's labels and the configs; evaluates any mode."""

    folds: list[FoldResult]
    keys: np.ndarray
    subjects: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    dataset: str
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_folds(
        cls,
        data: PairSet,
        folds: list[FoldResult],
        model_cfg: ModelConfig,
        train_cfg: TrainConfig,
        seconds: float,
        info: dict[str, Any] | None = None,
    ) -> LosoResult:
        """Assemble folds trained anywhere (in this process or as Ray tasks) and check that
        together they predict every sample exactly once with no subject leaking."""
        result = cls(
            folds=sorted(folds, key=lambda f: f.subject),
            keys=data.keys,
            subjects=data.subjects,
            labels=data.labels.numpy(),
            class_names=data.class_names,
            dataset=data.name,
            model_cfg=model_cfg,
            train_cfg=train_cfg,
            seconds=seconds,
            info=dict(info or {}),
        )
        result.check()
        return result

    @property
    def modes(self) -> tuple[str, ...]:
        """Evaluation modes this run supports."""
        has_val = all(len(f.val_index) for f in self.folds)
        return tuple(m for m in EVAL_MODES if m != "val" or has_val)

    def check(self) -> None:
        """Every sample predicted exactly once; no fold trains or validates on its test subject."""
        counts = np.zeros(len(self.labels), dtype=np.int64)
        for fold in self.folds:
            np.add.at(counts, fold.test_index, 1)
            test_subjects = set(self.subjects[fold.test_index].tolist())
            if test_subjects != {fold.subject}:
                raise InputError(f"fold {fold.subject!r} tests on subjects {sorted(test_subjects)}")
            if fold.subject in set(self.subjects[fold.val_index].tolist()):
                raise InputError(f"fold {fold.subject!r} validates on its own test subject")
            if fold.subject in set(self.subjects[fold.train_index].tolist()):
                raise InputError(f"fold {fold.subject!r} trains on its own test subject")
            if np.intersect1d(fold.train_index, fold.val_index).size:
                raise InputError(f"fold {fold.subject!r} trains on its validation samples")
        if not np.all(counts == 1):
            missing = self.keys[counts == 0][:5].tolist()
            doubled = self.keys[counts > 1][:5].tolist()
            raise InputError(
                f"LOSO folds must predict every sample exactly once: {int((counts == 0).sum())} "
                f"never predicted (e.g. {missing}), {int((counts > 1).sum())} more than once "
                f"(e.g. {doubled})"
            )

    def selected_epochs(self, mode: str) -> dict[str, int]:
        """The 0-based epoch whose predictions each fold contributes in `mode`."""
        if mode not in self.modes:
            raise ConfigError(
                f"evaluation mode {mode!r} is not available; choose from {self.modes}"
            )
        chosen = {}
        for fold in self.folds:
            chosen[fold.subject] = select_epoch(
                fold, mode, self.labels, len(self.class_names), self.train_cfg.val_metric
            )
        return chosen

    def predictions(self, mode: str = "final") -> pd.DataFrame:
        """One row per sample: key, subject, label, prediction, epoch used, class probabilities."""
        epochs = self.selected_epochs(mode)
        frames = []
        for fold in self.folds:
            e = epochs[fold.subject]
            probs = fold.test_probs[e]
            frame = pd.DataFrame(
                {
                    "key": self.keys[fold.test_index],
                    "subject": self.subjects[fold.test_index],
                    "label": self.labels[fold.test_index],
                    "pred": probs.argmax(1),
                    "epoch": e + 1,
                }
            )
            for c, name in enumerate(self.class_names):
                frame[f"p_{name}"] = probs[:, c]
            frames.append(frame)
        out = pd.concat(frames, ignore_index=True)
        out.insert(0, "mode", mode)
        out.insert(4, "label_name", [self.class_names[i] for i in out["label"]])
        out.insert(6, "pred_name", [self.class_names[i] for i in out["pred"]])
        return out

    def evaluate(self, mode: str = "final", n_boot: int = 1000, seed: int = 0) -> M.MetricsReport:
        pred = self.predictions(mode)
        report = M.evaluate(
            pred["label"].to_numpy(),
            pred["pred"].to_numpy(),
            pred["subject"].to_numpy(),
            self.class_names,
            n_boot=n_boot,
            seed=seed,
        )
        report.extra.update(mode=mode, optimistic=mode in OPTIMISTIC_MODES, note=MODE_NOTES[mode])
        return report

    def evaluate_all(self, n_boot: int = 1000, seed: int = 0) -> dict[str, M.MetricsReport]:
        return {mode: self.evaluate(mode, n_boot=n_boot, seed=seed) for mode in self.modes}

    def curves(self) -> pd.DataFrame:
        """Per fold and epoch: training loss and accuracy, test-subject accuracy."""
        rows = []
        for fold in self.folds:
            y_test = self.labels[fold.test_index]
            test_acc = (fold.test_probs.argmax(2) == y_test[None]).mean(axis=1)
            for e in range(fold.epochs):
                rows.append(
                    {
                        "subject": fold.subject,
                        "epoch": e + 1,
                        "train_loss": float(fold.train_loss[e]),
                        "train_acc": float(fold.train_acc[e]),
                        "test_acc": float(test_acc[e]),
                    }
                )
        return pd.DataFrame(rows)

    def save(self, out_dir: str | Path, n_boot: int = 1000) -> dict[str, M.MetricsReport]:
        """Write config.json, metrics.json, predictions.parquet, curves.csv and
        epoch_probs.npz (enough to re-evaluate any mode later) to `out_dir`."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        reports = self.evaluate_all(n_boot=n_boot)
        config = {
            "model": self.model_cfg.to_dict(),
            "train": self.train_cfg.to_dict(),
            "dataset": self.dataset,
            "class_names": list(self.class_names),
            "n_samples": int(len(self.labels)),
            "subjects": sorted(set(self.subjects.tolist())),
            "seconds": self.seconds,
            **self.info,
        }
        _write_json(out / "config.json", config)
        _write_json(out / "metrics.json", {m: r.to_dict() for m, r in reports.items()})
        pd.concat([self.predictions(m) for m in self.modes], ignore_index=True).to_parquet(
            out / "predictions.parquet", index=False
        )
        self.curves().to_csv(out / "curves.csv", index=False)
        np.savez_compressed(
            out / "epoch_probs.npz",
            **{f"test_probs/{f.subject}": f.test_probs for f in self.folds},
            **{f"test_index/{f.subject}": f.test_index for f in self.folds},
        )
        return reports


def _last_argmax(values: np.ndarray) -> int:
    """Index of the maximum; ties go to the latest epoch (NaN counts as worst)."""
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=-np.inf)
    return int(len(v) - 1 - np.argmax(v[::-1]))


def _write_json(path: Path, payload: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_json_default))
    tmp.replace(path)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def run_loso(
    data: PairSet,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    *,
    on_epoch: Callable[[EpochStats], None] | None = None,
    on_fold: Callable[[FoldResult], None] | None = None,
    fold_batch: int = 1,
    fold_streams: int = 1,
) -> LosoResult:
    """Train every LOSO fold in this process: one after another (`fold_batch` and
    `fold_streams` 1); in groups of `fold_batch` folds whose models are stacked and trained
    together (`tsfmicro.training.batched.train_folds`; 0 puts every fold in one group); or
    `fold_streams` folds at a time, each in a thread of its own and on CUDA a stream of its own
    (`tsfmicro.training.streams.train_folds_streams`; 0: all at once)."""
    check_compatible(data, model_cfg)
    for name, value in (("fold_batch", fold_batch), ("fold_streams", fold_streams)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{name} must be a whole number >= 0, got {value!r}")
    start = time.perf_counter()
    subjects = data.subject_ids()
    group = fold_batch or len(subjects)
    streams = fold_streams or len(subjects)
    if group > 1 and streams > 1:
        raise ConfigError(
            f"fold_batch and fold_streams are two ways of training folds together; set one "
            f"of them (got fold_batch={fold_batch}, fold_streams={fold_streams})"
        )
    folds: list[FoldResult] = []
    if streams > 1:
        from tsfmicro.training.streams import train_folds_streams

        folds = train_folds_streams(
            data,
            subjects,
            model_cfg,
            train_cfg,
            concurrent=streams,
            on_epoch=on_epoch,
            on_fold=on_fold,
        )
    else:
        for begin in range(0, len(subjects), group):
            chosen = subjects[begin : begin + group]
            if group == 1:
                done = [train_fold(data, chosen[0], model_cfg, train_cfg, on_epoch=on_epoch)]
            else:
                from tsfmicro.training.batched import train_folds

                done = train_folds(data, chosen, model_cfg, train_cfg, on_epoch=on_epoch)
            for fold in done:
                folds.append(fold)
                if on_fold is not None:
                    on_fold(fold)
    info = {
        "fold_batch": group,
        "fold_streams": streams,
        "train_pairs_moved": data.moved_training_pairs() if train_cfg.train_pairs else 0,
    }
    return LosoResult.from_folds(
        data, folds, model_cfg, train_cfg, time.perf_counter() - start, info=info
    )
