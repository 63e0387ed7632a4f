"""Stacked LOSO training: several folds' models stacked and trained together as one.

One LOSO fold of a small model leaves a GPU mostly idle at batch 32. Here the K folds' models
are stacked along a leading fold dimension (`torch.func.stack_module_state`) and run with
`torch.func.vmap` over `functional_call`, so one step is one batched forward and backward of
all K models: K x 32 samples of work per kernel launch instead of 32.

The result is meant to be the one `tsfmicro.training.fold.train_fold` gives for each fold,
with the same seeds:

- each fold's model is initialised from its own seed, exactly as `train_fold` does;
- each fold draws its epoch order, augmentation and DropPath noise from its own generator, in
  the same order as `train_fold`;
- folds have different training-set sizes, so a step's batch is padded to the batch size; the
  padded rows are masked out of the loss, the accuracy and BatchNorm's statistics
  (TSFmicro.forward's `sample_mask`, `tsfmicro.models.layers.StepInputs`);
- a fold whose epoch has fewer steps than the longest fold's sits the extra steps out: its
  parameters, optimiser moments and running statistics stay as they are;
- the optimiser is AdamW applied per fold with each fold's own step count.

What differs is floating-point rounding (grouped kernels, masked BatchNorm sums, the optimiser's
operation order), so predictions agree to a tolerance, not bit for bit;
tests/tsfmicro/training/test_stacked.py states it. channels_last is not applied to the
stacked weights (the layout of a 5-D stack).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, stack_module_state, vmap

from tsfmicro.config import DEFAULT_MACHINE, MachineConfig, ModelConfig, TrainConfig
from tsfmicro.errors import ConfigError
from tsfmicro.models import build_model
from tsfmicro.models.layers import drop_path_calls
from tsfmicro.training.augment import AugmentParams, augment_pair
from tsfmicro.training.data import PairSet, normalize, to_unit_float
from tsfmicro.training.fold import (
    EpochStats,
    FoldResult,
    FoldSplit,
    autocast_for,
    check_compatible,
    class_weights,
    draw_step,
    epoch_stats,
    fold_split,
    group_subjects,
    learning_rate,
    resolve_device,
    seeded,
    train_fold,
)

BETAS = (0.9, 0.999)  # torch.optim.AdamW's defaults, which train_fold uses
ADAM_EPS = 1e-8


def train_stacked(
    data: PairSet,
    subjects: Sequence[str],
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    machine: MachineConfig = DEFAULT_MACHINE,
    *,
    on_epoch: Callable[[EpochStats], None] | None = None,
    keep_model: bool = False,
) -> list[FoldResult]:
    """Train the LOSO folds holding out each of `subjects`, all at once, stacked on one device.
    Returns one FoldResult per subject, in the given order; `seconds` of each is the wall time
    of the whole group (they ran together)."""
    check_compatible(data, model_cfg)
    subjects = group_subjects(subjects, "train_stacked")
    if len(subjects) == 1:
        return [
            train_fold(
                data,
                subjects[0],
                model_cfg,
                train_cfg,
                machine,
                on_epoch=on_epoch,
                keep_model=keep_model,
            )
        ]
    if machine.compile != "off":
        raise ConfigError(
            f"MachineConfig.compile={machine.compile!r} applies to folds trained one by one; "
            f"stacked training ({len(subjects)} folds stacked) runs eager: set compile "
            "to 'off' or train one fold at a time"
        )
    device = resolve_device(machine.device)
    started, start = time.time(), time.perf_counter()
    splits = [fold_split(data, s, train_cfg) for s in subjects]
    models = []
    for split in splits:
        with seeded(split.seed, device):
            models.append(build_model(model_cfg).to(device))
    trainer = _Stack(models, data, splits, train_cfg, machine, device)
    history = trainer.fit(on_epoch, start)
    seconds = time.perf_counter() - start
    states = trainer.state_dicts() if keep_model else [None] * len(splits)
    return [
        FoldResult(
            subject=split.subject,
            seed=split.seed,
            train_index=split.train_index,
            test_index=split.test_index,
            val_index=split.val_index,
            val_subjects=split.val_subjects,
            test_probs=history["test"][f],
            val_probs=history["val"][f],
            train_loss=history["loss"][f],
            train_acc=history["acc"][f],
            seconds=seconds,
            train_samples=len(split.train_index),
            device=str(device),
            state_dict=states[f],
            started=started,
        )
        for f, split in enumerate(splits)
    ]


class StackedAdamW:
    """AdamW over the folds' parameters laid out as one (F, P) tensor (fold first) with its
    gradient in another, with a step count per fold and an `active` mask: an inactive fold's
    parameters and moments are left exactly as they are. Per fold, the update of
    torch.optim.AdamW (amsgrad off); for all folds and every parameter, a handful of kernels."""

    def __init__(self, param: Tensor, grad: Tensor, weight_decay: float) -> None:
        if param.ndim != 2 or grad.shape != param.shape:
            raise ValueError(f"expected (folds, P) parameter and gradient, got {param.shape}")
        self.param, self.grad = param, grad
        self.weight_decay = weight_decay
        self.exp_avg = torch.zeros_like(param)
        self.exp_avg_sq = torch.zeros_like(param)
        self.steps = np.zeros(len(param), dtype=np.int64)

    @torch.no_grad()
    def step(self, lr: float, active: np.ndarray) -> None:
        beta1, beta2 = BETAS
        self.steps += active.astype(np.int64)
        t = np.maximum(self.steps, 1).astype(np.float64)
        a = active.astype(np.float64)
        # Per-fold factors, (6, F, 1); an inactive fold gets the identity (decay 1, moments
        # kept, no step).
        decay, w1, b2, w2, step_size, bc2 = torch.tensor(
            np.stack(
                [
                    1.0 - lr * self.weight_decay * a,  # decoupled weight decay
                    (1.0 - beta1) * a,  # lerp weight of the first moment
                    np.where(active, beta2, 1.0),  # decay of the second moment
                    (1.0 - beta2) * a,
                    a * lr / (1.0 - beta1**t),  # step size
                    np.sqrt(1.0 - beta2**t),  # sqrt of the second bias correction
                ]
            )[:, :, None],
            dtype=torch.float32,
        ).to(self.param.device)
        p, g, m, v = self.param, self.grad, self.exp_avg, self.exp_avg_sq
        p.mul_(decay)
        m.lerp_(g, w1)
        v.mul_(b2).add_(g * g * w2)
        denom = (v.sqrt() / bc2).add_(ADAM_EPS)
        p.sub_(step_size * m / denom)

    def zero_grad(self) -> None:
        self.grad.zero_()


class _Stack:
    """The stacked models of a fold group and their training loop."""

    def __init__(
        self,
        models: list[torch.nn.Module],
        data: PairSet,
        splits: list[FoldSplit],
        cfg: TrainConfig,
        machine: MachineConfig,
        device: torch.device,
    ) -> None:
        self.template = models[0]
        self.names = list(self.template.state_dict().keys())
        stacked, self.buffers = stack_module_state(models)
        self.params, self.flat, flat_grad = _flat_params(stacked)
        self.data, self.splits, self.cfg, self.device = data, splits, cfg, device
        self.machine = machine
        self.drop_calls = drop_path_calls(self.template)
        self.k = data.num_classes
        self.optimizer = StackedAdamW(self.flat, flat_grad, cfg.weight_decay)
        self.onset = data.onset.to(device)  # uint8, the whole set once for every fold
        self.apex = data.apex.to(device)
        train_onset, train_apex = data.training_frames(cfg.train_pairs)
        self.train_onset = self.onset if train_onset is data.onset else train_onset.to(device)
        self.train_apex = self.apex if train_apex is data.apex else train_apex.to(device)
        self.labels = data.labels.to(device)

        def forward(params, buffers, onset, apex, noise, mask):  # one fold, inside vmap
            step = {"drop_noise": noise, "sample_mask": mask}
            return functional_call(self.template, (params, buffers), (onset, apex), step)

        def evaluate(params, buffers, onset, apex):
            return functional_call(self.template, (params, buffers), (onset, apex))

        self._forward = vmap(forward, randomness="error")
        self._evaluate = vmap(evaluate, randomness="error")

    def fit(
        self, on_epoch: Callable[[EpochStats], None] | None, start: float
    ) -> dict[str, list[np.ndarray]]:
        cfg, splits, n_folds = self.cfg, self.splits, len(self.splits)
        batch = cfg.batch_size
        sizes = np.array([len(s.train_index) for s in splits])
        steps = -(-sizes // batch)
        weight = self._weights()
        autocast = autocast_for(self.device, self.machine.amp)
        history: dict[str, list] = {"test": [], "val": [], "loss": [], "acc": []}
        per_fold: dict[str, list[list]] = {key: [[] for _ in splits] for key in history}
        for epoch in range(cfg.epochs):
            lr = learning_rate(cfg, epoch)
            self.template.train()
            orders = [
                torch.randperm(int(n), generator=s.generator)
                for n, s in zip(sizes, splits, strict=True)
            ]
            loss_sum = torch.zeros(n_folds, device=self.device)
            correct = torch.zeros(n_folds, dtype=torch.long, device=self.device)
            for step in range(int(steps.max())):
                active = steps > step
                index, mask, params, noise = self._draw(step, orders, active)
                onset, apex = self._images(index, params, train=True)
                target = self.labels[index]
                mask_f = mask.to(torch.float32)
                with autocast:
                    logits = self._forward(self.params, self.buffers, onset, apex, noise, mask_f)
                loss = _masked_loss(logits.float(), target, mask_f, weight)
                self.optimizer.zero_grad()
                with warnings.catch_warnings():  # the views below are not dense, on purpose
                    warnings.filterwarnings("ignore", message=".*gradient layout contract")
                    loss.sum().backward()
                if epoch == 0 and step == 0:
                    _check_grads_in_place(self.params, self.optimizer.grad)
                self.optimizer.step(lr, active)
                loss_sum += loss.detach() * mask_f.sum(1)
                correct += ((logits.detach().argmax(2) == target) & mask).sum(1)
            test = self._predict([s.test_index for s in splits])
            val = self._predict([s.val_index for s in splits])
            losses = (loss_sum / torch.as_tensor(sizes, device=self.device)).tolist()
            accs = (correct.cpu().numpy() / sizes).tolist()
            for f, split in enumerate(splits):
                per_fold["test"][f].append(test[f])
                per_fold["val"][f].append(val[f])
                per_fold["loss"][f].append(losses[f])
                per_fold["acc"][f].append(accs[f])
                if on_epoch is not None:
                    on_epoch(
                        epoch_stats(
                            self.data,
                            split.subject,
                            split.test_index,
                            split.val_index,
                            cfg,
                            epoch,
                            lr,
                            test[f],
                            val[f],
                            losses[f],
                            accs[f],
                            start,
                        )
                    )
        return {
            "test": [np.stack(x).astype(np.float32) for x in per_fold["test"]],
            "val": [np.stack(x).astype(np.float32) for x in per_fold["val"]],
            "loss": [np.asarray(x) for x in per_fold["loss"]],
            "acc": [np.asarray(x) for x in per_fold["acc"]],
        }

    def _weights(self) -> Tensor | None:
        if self.cfg.class_weighting == "none":
            return None
        return torch.stack(
            [
                class_weights(
                    self.labels[torch.as_tensor(s.train_index, device=self.device)],
                    self.k,
                    self.cfg.class_weighting,
                )
                for s in self.splits
            ]
        )

    def _draw(
        self, step: int, orders: list[Tensor], active: np.ndarray
    ) -> tuple[Tensor, Tensor, AugmentParams | None, Tensor]:
        """Indices (F, B) into the whole set, the mask of real rows, and every fold's random
        draws for this step, each from the fold's own generator as train_fold draws them."""
        cfg, batch, n_folds = self.cfg, self.cfg.batch_size, len(self.splits)
        index = torch.zeros(n_folds, batch, dtype=torch.long)
        mask = torch.zeros(n_folds, batch, dtype=torch.bool)
        noise = torch.ones(n_folds, self.drop_calls, batch)
        flip = torch.zeros(n_folds, batch, dtype=torch.bool)
        angle = torch.zeros(n_folds, batch)
        shift = torch.zeros(n_folds, batch, 2)
        for f, split in enumerate(self.splits):
            if not active[f]:
                continue
            chosen = orders[f][step * batch : (step + 1) * batch]
            b = len(chosen)
            index[f, :b] = torch.as_tensor(split.train_index)[chosen]
            mask[f, :b] = True
            params, noise[f, :, :b] = draw_step(
                b, self.data.image_size, split.generator, cfg, self.drop_calls
            )
            if params is not None:
                flip[f, :b], angle[f, :b], shift[f, :b] = params.flip, params.angle, params.shift
        params = None
        if cfg.augment:
            params = AugmentParams(
                flip=flip.reshape(-1), angle=angle.reshape(-1), shift=shift.reshape(-1, 2)
            )
        return (
            index.to(self.device),
            mask.to(self.device),
            params,
            noise.to(self.device),
        )

    def _images(
        self, index: Tensor, params: AugmentParams | None, *, train: bool
    ) -> tuple[Tensor, Tensor]:
        """Augmented, normalised (F, B, 3, S, S) onset and apex frames (the training pair when
        `train`)."""
        shape = tuple(index.shape) + tuple(self.onset.shape[1:])
        flat = index.reshape(-1)
        onsets, apexes = (self.train_onset, self.train_apex) if train else (self.onset, self.apex)
        onset, apex = to_unit_float(onsets[flat]), to_unit_float(apexes[flat])
        if params is not None:
            onset, apex = augment_pair(
                onset,
                apex,
                params,
                fill=self.cfg.augment_fill,
                interpolation=self.cfg.augment_interpolation,
            )
        return normalize(onset).reshape(shape), normalize(apex).reshape(shape)

    @torch.inference_mode()
    def _predict(self, indices: list[np.ndarray]) -> list[np.ndarray]:
        """Each fold's softmax probabilities on its own samples (eval mode), (n_f, K) each."""
        lengths = [len(i) for i in indices]
        longest = max(lengths)
        out = [np.zeros((n, self.k), dtype=np.float32) for n in lengths]
        if longest == 0:
            return out
        self.template.eval()
        padded = torch.zeros(len(indices), longest, dtype=torch.long)
        for f, idx in enumerate(indices):
            padded[f, : len(idx)] = torch.as_tensor(idx, dtype=torch.long)
        chunk = max(1, self.machine.eval_batch_size // len(indices))
        probs = []
        with autocast_for(self.device, self.machine.amp):
            for begin in range(0, longest, chunk):
                index = padded[:, begin : begin + chunk].to(self.device)
                onset, apex = self._images(index, None, train=False)
                logits = self._evaluate(self.params, self.buffers, onset, apex)
                probs.append(torch.softmax(logits.float(), dim=2).cpu())
        stacked = torch.cat(probs, dim=1).numpy()
        for f, n in enumerate(lengths):
            out[f][:] = stacked[f, :n]
        return out

    def state_dicts(self) -> list[dict[str, Tensor]]:
        """Each fold's model as a CPU state dict, keys in the model's own order."""
        stacked = {**self.params, **self.buffers}
        return [
            {name: stacked[name][f].detach().cpu().clone() for name in self.names}
            for f in range(len(self.splits))
        ]


def _flat_params(stacked: dict[str, Tensor]) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """Lay the stacked parameters out as views of one (F, P) tensor, each with its gradient a
    view of one (F, P) gradient tensor, so the optimiser updates every parameter of every fold
    in a few kernels. Autograd adds each step's gradient into the existing .grad in place
    (checked by _check_grads_in_place)."""
    first = next(iter(stacked.values()))
    n_folds = first.shape[0]
    flat = torch.cat([p.detach().reshape(n_folds, -1) for p in stacked.values()], dim=1)
    grad = torch.zeros_like(flat)
    params, offset = {}, 0
    for name, p in stacked.items():
        size = p[0].numel()
        view = flat[:, offset : offset + size].view(p.shape)
        view.requires_grad_(True)
        view.grad = grad[:, offset : offset + size].view(p.shape)
        params[name] = view
        offset += size
    return params, flat, grad


def _check_grads_in_place(params: dict[str, Tensor], grad: Tensor) -> None:
    base = grad.untyped_storage().data_ptr()
    for name, p in params.items():
        if p.grad is None or p.grad.untyped_storage().data_ptr() != base:
            raise RuntimeError(
                f"the gradient of {name} was not accumulated into the flat gradient buffer; "
                "fold-batched training cannot update it"
            )


def _masked_loss(logits: Tensor, target: Tensor, mask: Tensor, weight: Tensor | None) -> Tensor:
    """Each fold's cross-entropy (F,) over its real rows: the mean, or with class weights the
    weighted mean sum(w l) / sum(w), as F.cross_entropy computes it."""
    n_folds, batch, k = logits.shape
    ce = F.cross_entropy(logits.reshape(-1, k), target.reshape(-1), reduction="none")
    ce = ce.reshape(n_folds, batch)
    w = mask if weight is None else mask * torch.gather(weight, 1, target)
    return (ce * w).sum(1) / w.sum(1).clamp(min=torch.finfo(w.dtype).tiny)
