"""One LOSO fold's training, written once: the split, the seeding, the schedule, the step,
the per-epoch statistics and the prediction.

`train_fold` trains a fresh model with one subject held out and records the model's
predictions on that subject (and on the inner validation subjects, if any) after *every*
epoch, so that every evaluation mode (`tsfmicro.training.evaluation`) comes from one run.
The runners (`tsfmicro.training.runners`) decide how many folds train at once and where; the
stacked runner (`tsfmicro.training.stacked`) trains several folds' models as one, using the
same split, seeds, schedule and statistics from here.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from tsfmicro import metrics as M
from tsfmicro.config import DEFAULT_MACHINE, MachineConfig, ModelConfig, TrainConfig
from tsfmicro.errors import ConfigError, InputError
from tsfmicro.models import TSFmicro, build_model
from tsfmicro.models.layers import drop_path_calls
from tsfmicro.training.augment import AugmentParams, augment_pair, draw_params
from tsfmicro.training.data import PairSet, normalize, to_unit_float


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
    host: str = ""  # the host name of the machine it ran on, when a runner records it
    started: float = 0.0  # Unix time its training started (0: not recorded)
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
    """Hold out `test_subject` (and draw the inner validation subjects, if any): a subject,
    or the fold key of a set with `folds` (a held-out dataset), whose samples are the test
    set and whose model trains on every other sample."""
    subjects, keys = data.subjects, data.fold_keys
    test_index = np.flatnonzero(keys == test_subject)
    if len(test_index) == 0 or not test_subject:
        what = "subject" if data.folds is None else "fold"
        raise InputError(f"{what} {test_subject!r} has no samples in {data.name!r}")
    seed = fold_seed(train_cfg.seed, test_subject)
    generator = torch.Generator().manual_seed(seed)
    # the training subjects (every other subject in LOSO; those of the other folds and of
    # the train-only samples where folds are datasets), sorted
    others = sorted(set(subjects[keys != test_subject].tolist()))
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
        train_index=np.flatnonzero((keys != test_subject) & ~val_mask),
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
    machine: MachineConfig = DEFAULT_MACHINE,
    *,
    on_epoch: Callable[[EpochStats], None] | None = None,
    keep_model: bool = False,
    init_lock: contextlib.AbstractContextManager | None = None,
    stream: Any = None,
) -> FoldResult:
    """Train a fresh model on every subject but `test_subject` (and any inner validation
    subjects), recording test (and validation) probabilities after every epoch, on the device
    and with the settings of `machine`.

    The hooks of folds trained at once in threads (tsfmicro.training.streams): `init_lock` is
    held while the model is initialised from torch's global RNG (seeded per fold, so two
    threads must not interleave there), and the training runs on the CUDA `stream` when one is
    given. Training itself draws only from the fold's own generator."""
    check_compatible(data, model_cfg)
    split = fold_split(data, test_subject, train_cfg)
    seed, generator = split.seed, split.generator
    train_index, test_index, val_index = split.train_index, split.test_index, split.val_index
    val_subjects = split.val_subjects
    device = resolve_device(machine.device)
    started, start = time.time(), time.perf_counter()
    with init_lock or contextlib.nullcontext(), seeded(seed, device):
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
            machine,
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
        state_dict=cpu_state(model) if keep_model else None,
        started=started,
    )


def train_full(
    data: PairSet,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    machine: MachineConfig = DEFAULT_MACHINE,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> TSFmicro:
    """Train one model on every sample (the refit of a chosen configuration)."""
    check_compatible(data, model_cfg)
    seed = fold_seed(train_cfg.seed, "__all__")
    generator = torch.Generator().manual_seed(seed)
    device = resolve_device(machine.device)
    everything = np.arange(len(data))
    empty = np.zeros(0, dtype=np.int64)
    with seeded(seed, device):
        model = build_model(model_cfg).to(device)
        _fit(
            model,
            data,
            everything,
            empty,
            empty,
            train_cfg,
            machine,
            generator,
            device,
            "__all__",
            on_epoch,
            time.perf_counter(),
        )
    return model.eval()


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
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
    machine: MachineConfig,
    generator: torch.Generator,
    device: torch.device,
    subject: str,
    on_epoch: Callable[[EpochStats], None] | None,
    start: float,
) -> dict[str, np.ndarray]:
    k = data.num_classes
    if machine.channels_last:
        model.to(memory_format=torch.channels_last)
    labels = data.labels.to(device)
    onset_frames, apex_frames = data.training_frames(cfg.train_pairs)
    train_onset = onset_frames[train_index].to(device)  # uint8 on the device, once per fold
    train_apex = apex_frames[train_index].to(device)
    train_labels = labels[torch.as_tensor(train_index, device=device)]
    weight = class_weights(train_labels, k, cfg.class_weighting)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    autocast = autocast_for(device, machine.amp)
    forward = step_forward(model, machine, device)
    graphs = machine.compile == "cudagraphs"
    n = len(train_index)
    drop_calls = drop_path_calls(model)
    history: dict[str, list] = {"test": [], "val": [], "loss": [], "acc": []}
    for epoch in range(cfg.epochs):
        lr = learning_rate(cfg, epoch)
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
                onset, apex = augment_pair(
                    onset,
                    apex,
                    params,
                    fill=cfg.augment_fill,
                    interpolation=cfg.augment_interpolation,
                )
            target = train_labels[idx]
            if graphs:  # the previous step's graph outputs are no longer read
                torch.compiler.cudagraph_mark_step_begin()
            with autocast:
                logits = forward(
                    _layout(normalize(onset), machine),
                    _layout(normalize(apex), machine),
                    drop_noise=noise.to(device),
                )
            loss = F.cross_entropy(logits.float(), target, weight=weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(idx)
            correct += (logits.detach().argmax(1) == target).sum()
        test_probs = predict_probs(model, data, test_index, device, machine)
        val_probs = predict_probs(model, data, val_index, device, machine)
        history["test"].append(test_probs)
        history["val"].append(val_probs)
        history["loss"].append(float(loss_sum) / max(n, 1))
        history["acc"].append(int(correct) / max(n, 1))
        if on_epoch is not None:
            on_epoch(
                epoch_stats(
                    data,
                    subject,
                    test_index,
                    val_index,
                    cfg,
                    epoch,
                    lr,
                    test_probs,
                    val_probs,
                    history["loss"][-1],
                    history["acc"][-1],
                    start,
                )
            )
    return {
        "test": np.stack(history["test"]).astype(np.float32),
        "val": np.stack(history["val"]).astype(np.float32),
        "loss": np.asarray(history["loss"]),
        "acc": np.asarray(history["acc"]),
    }


def learning_rate(cfg: TrainConfig, epoch: int) -> float:
    """The learning rate of 0-based `epoch`: ExponentialLR's factor applied for the first
    `lr_decay_epochs` epochs, then held (the published schedule)."""
    return cfg.lr * cfg.lr_gamma ** min(epoch, cfg.lr_decay_epochs)


def epoch_stats(
    data: PairSet,
    subject: str,
    test_index: np.ndarray,
    val_index: np.ndarray,
    cfg: TrainConfig,
    epoch: int,
    lr: float,
    test_probs: np.ndarray,
    val_probs: np.ndarray,
    train_loss: float,
    train_acc: float,
    start: float,
) -> EpochStats:
    """What a fold reports after 0-based `epoch`, from its predictions of that epoch."""
    labels = data.labels.numpy()
    val_score = None
    if len(val_index):
        cm = M.confusion_matrix(labels[val_index], val_probs.argmax(1), data.num_classes)
        val_score = float(M.scores(cm)[cfg.val_metric])
    y_test = labels[test_index]
    return EpochStats(
        subject=subject,
        epoch=epoch + 1,
        epochs=cfg.epochs,
        train_loss=train_loss,
        train_acc=train_acc,
        lr=lr,
        test_acc=float((test_probs.argmax(1) == y_test).mean()) if len(y_test) else math.nan,
        val_score=val_score,
        seconds=time.perf_counter() - start,
    )


def predict_probs(
    model: TSFmicro,
    data: PairSet,
    index: np.ndarray,
    device: torch.device,
    machine: MachineConfig,
) -> np.ndarray:
    """Softmax probabilities (n, K) of the samples at `index`, in eval mode."""
    k = data.num_classes
    if len(index) == 0:
        return np.zeros((0, k), dtype=np.float32)
    model.eval()
    out = []
    with torch.inference_mode(), autocast_for(device, machine.amp):
        for begin in range(0, len(index), machine.eval_batch_size):
            idx = torch.as_tensor(index[begin : begin + machine.eval_batch_size])
            onset = _layout(normalize(to_unit_float(data.onset[idx].to(device))), machine)
            apex = _layout(normalize(to_unit_float(data.apex[idx].to(device))), machine)
            out.append(torch.softmax(model(onset, apex).float(), dim=1).cpu())
    return torch.cat(out).numpy()


_COMPILE_OPTIONS: dict[str, dict[str, str]] = {
    "inductor": {},
    "cudagraphs": {"mode": "reduce-overhead"},
    "aot_eager": {"backend": "aot_eager"},
}


def step_forward(
    model: torch.nn.Module, machine: MachineConfig, device: torch.device
) -> Callable[..., Tensor]:
    """What the training step calls for the logits: the model itself, or the model under
    torch.compile (`MachineConfig.compile`). The compiled module shares the model's parameters,
    and a new model of the same architecture reuses the compiled code (its parameters are
    graph inputs), so only the first fold of a process pays for compilation; a last batch of
    another size compiles once more, with a dynamic batch dimension. Evaluation stays eager."""
    if machine.compile == "off":
        return model
    if machine.compile == "cudagraphs" and device.type != "cuda":
        raise ConfigError(
            f"MachineConfig.compile='cudagraphs' needs a CUDA device; this fold runs on {device}"
        )
    return torch.compile(model, **_COMPILE_OPTIONS[machine.compile])


def class_weights(labels: torch.Tensor, k: int, mode: str) -> torch.Tensor | None:
    """None, or "balanced" weights n / (K n_c) (zero for a class absent from training)."""
    if mode == "none":
        return None
    counts = torch.bincount(labels, minlength=k).to(torch.float32)
    weight = torch.where(counts > 0, len(labels) / (k * counts.clamp(min=1)), 0.0)
    return weight.to(labels.device)


def _layout(images: torch.Tensor, machine: MachineConfig) -> torch.Tensor:
    """(B, 3, S, S) images in the memory layout the model was put in."""
    if machine.channels_last:
        return images.contiguous(memory_format=torch.channels_last)
    return images


def autocast_for(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
