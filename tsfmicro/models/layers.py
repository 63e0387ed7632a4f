"""Small building blocks shared by the branches.

Feature maps in the temporal branch are channels-last, (B, H, W, C), as in RMT;
the convolution helpers here take and return that layout.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

LN_EPS = 1e-6


class DropPath(nn.Module):
    """Stochastic depth: zero a whole residual branch per sample with probability p."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
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


def conv_bn(c_in: int, c_out: int, stride: int, act: bool) -> nn.Sequential:
    """conv3x3 -> BatchNorm (-> GELU), channels-first."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1),
        nn.BatchNorm2d(c_out),
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
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, d)
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
