"""Small building blocks shared by the branches.

Feature maps in the temporal branch are channels-last, (B, H, W, C), as in RMT;
the convolution helpers here take and return that layout.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LN_EPS = 1e-6


class StepInputs:
    """The training-only inputs of one forward pass, held by the model that owns the layers for
    the length of that pass (TSFmicro.forward's `drop_noise` and `sample_mask`):

    - `noise` (calls, B), uniform in [0, 1): DropPath takes one row per call, in call order,
      instead of drawing from torch's global RNG. Training draws these rows from the fold's own
      generator, so folds trained one by one and folds trained stacked drop the same residual
      branches.
    - `mask` (B,): BatchNorm in training mode computes its batch statistics over the rows whose
      mask is 1 only, so the padded rows of a stacked step do not exist for it.

    One holder is shared by every DropPath and BatchNorm of a model (`attach_step_inputs`);
    each model has its own, so folds trained at once in threads never share one."""

    def __init__(self) -> None:
        self.noise: Tensor | None = None
        self.used = 0
        self.mask: Tensor | None = None

    def hold(self, noise: Tensor | None, mask: Tensor | None) -> tuple:
        """Hold `noise` and `mask` for one forward pass; returns what to `release` after."""
        previous = (self.noise, self.used, self.mask)
        self.noise, self.used, self.mask = noise, 0, mask
        return previous

    def release(self, previous: tuple) -> None:
        self.noise, self.used, self.mask = previous

    @contextlib.contextmanager
    def holding(self, noise: Tensor | None = None, mask: Tensor | None = None) -> Iterator[None]:
        """`hold` inside, `release` after (for layers used on their own, as in tests)."""
        previous = self.hold(noise, mask)
        try:
            yield
        finally:
            self.release(previous)

    def next_noise(self) -> Tensor | None:
        """The next DropPath row, or None when no noise is held."""
        if self.noise is None:
            return None
        if self.used >= self.noise.shape[0]:
            raise RuntimeError(
                f"the forward pass made more than {self.noise.shape[0]} DropPath draws; "
                "size the noise with drop_path_calls(model)"
            )
        row = self.noise[self.used]
        self.used += 1
        return row


def attach_step_inputs(module: nn.Module, step: StepInputs | None = None) -> StepInputs:
    """Give every DropPath and BatchNorm of `module` the same StepInputs holder (a new one by
    default) and return it."""
    step = step or StepInputs()
    for m in module.modules():
        if isinstance(m, DropPath | _MaskableBatchNorm):
            m.step = step
    return step


def drop_path_calls(model: nn.Module) -> int:
    """How many DropPath draws one training forward pass of `model` makes (at most)."""
    return sum(m.calls for m in model.modules() if isinstance(m, DropPath) and m.p > 0)


class DropPath(nn.Module):
    """Stochastic depth: zero a whole residual branch per sample with probability p.

    `calls` is how many times the owner calls it per forward pass (for `drop_path_calls`).
    Its randomness comes from the StepInputs noise when the model holds one, else from torch's
    global RNG."""

    step: StepInputs | None = None  # set by attach_step_inputs

    def __init__(self, p: float = 0.0, calls: int = 1) -> None:
        super().__init__()
        self.p = p
        self.calls = calls

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        noise = self.step.next_noise() if self.step is not None else None
        if noise is None:
            mask = x.new_empty(shape).bernoulli_(keep)
        else:
            mask = (noise < keep).to(x.dtype).reshape(shape)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class DWConv2d(nn.Module):
    """Depthwise k x k convolution on a channels-last map (B, H, W, C)."""

    def __init__(self, dim: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 3, 1, 2)  # (B, C, H, W)
        x = self.conv(x)
        return x.permute(0, 2, 3, 1)  # (B, H, W, C)


class ConvFFN(nn.Module):
    """RMT's feed-forward: Linear(d -> h), GELU, h + DWConv3x3(h), Linear(h -> d)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DWConv2d(hidden, 3)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        h = F.gelu(self.fc1(x))  # (B, H, W, hidden)
        h = h + self.dwconv(h)
        return self.fc2(h)


class _MaskableBatchNorm:
    """BatchNorm that, given a sample mask (StepInputs.mask), normalises with the statistics
    of the unmasked samples and updates its running statistics from them alone (torch's maths:
    biased variance to normalise, unbiased variance in the running average). A step in which
    no sample is unmasked leaves the running statistics as they were. Same parameters and
    state-dict keys as torch's BatchNorm."""

    step: StepInputs | None = None  # set by attach_step_inputs

    def forward(self, x: Tensor) -> Tensor:
        mask = self.step.mask if self.step is not None else None
        if mask is None or not self.training:
            return super().forward(x)
        return _masked_batch_norm(self, x, mask)


class BatchNorm1d(_MaskableBatchNorm, nn.BatchNorm1d):
    pass


class BatchNorm2d(_MaskableBatchNorm, nn.BatchNorm2d):
    pass


def _masked_batch_norm(bn: nn.modules.batchnorm._BatchNorm, x: Tensor, mask: Tensor) -> Tensor:
    dims = [0] + list(range(2, x.ndim))
    shape = [1, -1] + [1] * (x.ndim - 2)
    xf = x.float()
    m = mask.to(xf.dtype).reshape([-1] + [1] * (x.ndim - 1))
    count = mask.to(xf.dtype).sum() * math.prod(x.shape[2:])
    safe = count.clamp(min=1.0)
    mean = (xf * m).sum(dims) / safe
    centred = xf - mean.reshape(shape)
    var = (centred * centred * m).sum(dims) / safe
    y = centred * torch.rsqrt(var + bn.eps).reshape(shape)
    if bn.affine:
        y = y * bn.weight.reshape(shape) + bn.bias.reshape(shape)
    if bn.track_running_stats and bn.running_mean is not None:
        with torch.no_grad():
            momentum = bn.momentum if bn.momentum is not None else 0.1
            active = count > 0
            unbiased = var.detach() * safe / (safe - 1).clamp(min=1.0)
            new_mean = bn.running_mean * (1 - momentum) + mean.detach() * momentum
            new_var = bn.running_var * (1 - momentum) + unbiased * momentum
            bn.running_mean.copy_(torch.where(active, new_mean, bn.running_mean))
            bn.running_var.copy_(torch.where(active, new_var, bn.running_var))
            bn.num_batches_tracked.add_(active.to(bn.num_batches_tracked.dtype))
    return y.to(x.dtype)


def conv_bn(c_in: int, c_out: int, stride: int, act: bool) -> nn.Sequential:
    """conv3x3 -> BatchNorm (-> GELU), channels-first."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1),
        BatchNorm2d(c_out),
    ]
    if act:
        layers.append(nn.GELU())
    return nn.Sequential(*layers)


class ConvStem(nn.Module):
    """Four 3x3 convs, the first with stride 2: (B, 3, S, S) -> (B, S/2, S/2, width).

    Channels 3 -> width/2 -> width/2 -> width -> width, BN after each, GELU after
    all but the last (at 224 px: 3 -> 32 -> 32 -> 64 -> 64, output 112x112x64).
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        half = width // 2
        self.body = nn.Sequential(
            conv_bn(3, half, 2, act=True),
            conv_bn(half, half, 1, act=True),
            conv_bn(half, width, 1, act=True),
            conv_bn(width, width, 1, act=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x).permute(0, 2, 3, 1)  # (B, S/2, S/2, width)


class Downsample(nn.Module):
    """Between stages: conv3x3 stride 2 + BatchNorm, channels-last in and out."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.body = conv_bn(c_in, c_out, 2, act=False)

    def forward(self, x: Tensor) -> Tensor:
        x = self.body(x.permute(0, 3, 1, 2))  # (B, C_out, H/2, W/2)
        return x.permute(0, 2, 3, 1)


class Attention(nn.Module):
    """Multi-head softmax self-attention over tokens (B, N, C), with qkv bias."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, N, d)
        if q.is_cuda:
            out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, d)
        else:  # written out on the CPU: faster there, and vmap (fold-batched training) has a
            # batching rule for every op of it but none for SDPA's CPU kernel
            scale = q.shape[-1] ** -0.5
            out = torch.softmax((q * scale) @ k.transpose(-1, -2), dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class ViTBlock(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return x


def init_weights(module: nn.Module) -> None:
    """Truncated-normal (std 0.02) linear weights with zero bias; LayerNorm to identity."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
