"""The HFPIE network: a three-scale RCAN-style restorer with edge filtering and feature attention.

Data flow (scale 0 = full resolution, scale ``s`` = 1 / 2**s; paper sizes in brackets)::

    image_s = average-pool(image, 2**s)                         # the input at each scale
    low_s   = head_s(image_s)                                    # one convolution per scale
    edge_s  = EdgeFilterBank(image_s)                            # multi-scale edge filtering
    for s = coarsest .. 0:
        body_in_s = FA(low_s, low_t resampled to s for t != s, [up(tail of s+1)])
        high_s    = body_in_s + body_s(body_in_s)                # RCABs [64 / 16 / 4 blocks]
        tail_in_s = FA(high_s, low_s, edge_s)                    # feature attention before each tail
        tail_s    = pixel-shuffle up to scale s-1  (s > 0)      # feeds the next finer body
    output = tail_0(tail_in_0) + input (restoration) or + bilinear upsample of input (SR)

``FA`` is :class:`~hfpie.models.layers.FeatureAttention`; strided convolutions send features down a
scale and pixel shuffle sends them up. Build it as ``HFPIENet(HFPIEConfig(...))`` or from a preset
with :func:`config_from_preset`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .layers import RCAB, Downsample, EdgeFilterBank, FeatureAttention, Upsample, attention_cell

__all__ = ["PRESETS", "HFPIEConfig", "HFPIENet", "config_from_preset"]


@dataclass(frozen=True)
class HFPIEConfig:
    """Every setting of :class:`HFPIENet`. Frozen: derive variants with ``dataclasses.replace``."""

    scale: int = 1
    """Output size / input size: 1 for restoration (denoise, deblur), 2, 3 or 4 for super-resolution."""
    in_channels: int = 3
    """Channels of the input image (3 for RGB)."""
    out_channels: int = 3
    """Channels of the output image."""
    num_features: int = 64
    """Feature channels at every scale (the paper: 64)."""
    num_blocks: tuple[int, ...] = (4, 16, 64)
    """RCABs in the body of each scale, from full resolution to the smallest scale (paper: 4/16/64).
    Its length is the number of scales."""
    reduction: int = 16
    """Channel-attention squeeze ratio (RCAN: 16)."""
    attention_window: int | None = 64
    """Side of the square pooling window of channel and feature attention, in full-resolution input
    pixels (divided by 2**s at scale s). ``None`` pools globally as the paper does, which makes tiled
    inference approximate; a window makes it exact (see :mod:`hfpie.models.layers`)."""
    edge_filtering: bool = True
    """Multi-scale edge filtering (the paper's ablation "w/o Edge" sets this to False)."""
    edge_kernel_sizes: tuple[int, ...] = (3, 5)
    """Sizes of the derivative filters that initialise the edge filter bank."""
    feature_attention: bool = True
    """Feature attention merges (ablation "w/o FeaAtt": False, inputs are averaged instead)."""
    feature_attention_kernel: int = 3
    """Kernel size of the convolution along the feature axis."""
    global_residual: bool = True
    """Add the input (upsampled bilinearly for SR) to the output."""
    sr_tail: str = "progressive"
    """How the full-resolution tail upsamples for SR: ``"progressive"`` (a 3x3 convolution to 4x the
    features and a pixel shuffle per doubling, then a 3x3 convolution to RGB at the output size), or
    ``"direct"`` (one 3x3 convolution to ``out_channels * scale**2`` at the input size and one pixel
    shuffle, as ESPCN, IMDN and RFDN end; far cheaper: the progressive x4 tail is about half of the
    ``sr-x4`` forward pass on the CPU, docs/training.md). No effect at scale 1."""
    sr_tail_kernel: int = 3
    """Kernel size of the ``"direct"`` tail's convolution (odd). 5 covers the receptive field of the
    progressive x2 and x4 tails, which are linear, so a trained progressive tail converts into a 5x5
    direct one that computes the same output away from the image border (hfpie.training.grow)."""

    def __post_init__(self) -> None:
        if self.scale not in (1, 2, 3, 4, 8):
            raise ValueError(f"scale must be 1 (restoration), 2, 3, 4 or 8, got {self.scale}")
        if not 1 <= len(self.num_blocks) <= 4 or min(self.num_blocks) < 0:
            raise ValueError(f"num_blocks needs one non-negative count per scale (1-4 scales), got {self.num_blocks}")
        if self.num_features < 4 or self.reduction < 1:
            raise ValueError("num_features must be >= 4 and reduction >= 1")
        if self.attention_window is not None and self.attention_window < 1:
            raise ValueError("attention_window must be a positive number of pixels or None (global pooling)")
        if self.sr_tail not in ("progressive", "direct"):
            raise ValueError(f"sr_tail must be 'progressive' or 'direct', got {self.sr_tail!r}")
        if self.sr_tail_kernel < 1 or self.sr_tail_kernel % 2 == 0:
            raise ValueError(f"sr_tail_kernel must be a positive odd kernel size, got {self.sr_tail_kernel}")

    @property
    def num_scales(self) -> int:
        return len(self.num_blocks)

    @property
    def multiple_of(self) -> int:
        """Input height and width must be multiples of this (the caller pads; see hfpie.tiling)."""
        return 2 ** (self.num_scales - 1)

    @property
    def alignment(self) -> int:
        """Tile offsets that are multiples of this keep every scale's pixel and attention grids aligned."""
        steps = [self.multiple_of]
        for level in range(self.num_scales):
            cell = attention_cell(self.window_at(level))
            if cell is not None:
                steps.append(cell * 2**level)
        return math.lcm(*steps)

    def window_at(self, level: int) -> int | None:
        """Pooling window in the pixels of scale ``level``."""
        if self.attention_window is None:
            return None
        return max(self.attention_window // 2**level, 1)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> HFPIEConfig:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown HFPIEConfig fields {sorted(unknown)}; known fields: {sorted(known)}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**values)

    def receptive_radius(self) -> int:
        """Upper bound, in input pixels, on how far an output pixel's inputs can lie from it.

        Derived layer by layer along the forward pass; tiles aligned to :attr:`alignment` with a halo
        of this size give the same output as the whole image. With global pooling the radius is
        unbounded and this raises ValueError.
        """
        if self.attention_window is None:
            raise ValueError("with global pooling (attention_window=None) every pixel depends on the whole image")

        def conv(level: int, kernel: int = 3) -> int:
            return (kernel // 2) * 2**level

        def pool(level: int) -> int:
            # Cell alignment, 5 x 5 cell smoothing and bilinear interpolation: within 4 cells.
            return 4 * attention_cell(self.window_at(level)) * 2**level  # type: ignore[operator]

        levels = range(self.num_scales)
        images = [2**level - 1 for level in levels]  # average pooling of the input to each scale
        low = [images[level] + conv(level) for level in levels]
        edge = [images[level] + conv(level, max(self.edge_kernel_sizes)) for level in levels]
        merge = pool  # feature attention pools its inputs

        def resample(radius: int, source: int, target: int) -> int:
            if target > source:  # strided 3x3 convolutions, one per halving
                return radius + sum(conv(level) + 2**level for level in range(source, target))
            if target < source:  # conv then pixel shuffle, one per doubling
                return radius + sum(conv(level) + 2**level for level in range(target + 1, source + 1))
            return radius

        upper = 0
        tail_radius = 0
        for level in reversed(levels):
            parts = [resample(low[t], t, level) for t in levels]
            if level < self.num_scales - 1:
                parts.append(resample(tail_radius, level + 1, level))
            radius = max(parts) + (merge(level) if self.feature_attention else 0)
            radius += self.num_blocks[level] * (2 * conv(level) + pool(level)) + conv(level)
            tail_parts = [radius, low[level]] + ([edge[level]] if self.edge_filtering else [])
            tail_radius = max(tail_parts) + (merge(level) if self.feature_attention else 0)
            upper = tail_radius
        if self.scale == 1:
            return upper + conv(0)
        tail = self.sr_tail_kernel if self.sr_tail == "direct" else 3
        return upper + conv(0, tail) + 1  # SR tail convs run at input resolution; +1 for bilinear residual


PRESETS: dict[str, HFPIEConfig] = {
    # The paper's network: 64 features, 4 / 16 / 64 RCABs.
    "paper": HFPIEConfig(num_features=64, num_blocks=(4, 16, 64), attention_window=64),
    # CPU-trainable sizes (chosen by measured step time; docs/training.md).
    "small": HFPIEConfig(num_features=32, num_blocks=(2, 4, 8), reduction=8, attention_window=32),
    "tiny": HFPIEConfig(num_features=16, num_blocks=(1, 2, 2), reduction=4, attention_window=16),
}


def config_from_preset(preset: str, **overrides: Any) -> HFPIEConfig:
    """The config of a named preset, with any field overridden (``scale=4`` for SR)."""
    try:
        base = PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}") from None
    return dataclasses.replace(base, **overrides)


class _Merge(nn.Module):
    """Feature attention, or its ablation (plain average of the inputs)."""

    def __init__(self, num_inputs: int, config: HFPIEConfig, level: int) -> None:
        super().__init__()
        self.attention = (
            FeatureAttention(num_inputs, kernel_size=config.feature_attention_kernel, window=config.window_at(level))
            if config.feature_attention
            else None
        )

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        if self.attention is not None:
            return self.attention(inputs)
        return torch.stack(inputs).mean(dim=0)


class _Scale(nn.Module):
    """Everything that runs at one scale: head, edge filters, merges, body and tail."""

    def __init__(self, config: HFPIEConfig, level: int) -> None:
        super().__init__()
        features = config.num_features
        window = config.window_at(level)
        num_scales = config.num_scales
        self.head = nn.Conv2d(config.in_channels, features, 3, padding=1)
        self.edges = (
            EdgeFilterBank(config.in_channels, features, sizes=config.edge_kernel_sizes)
            if config.edge_filtering
            else None
        )
        # Low-level features of every other scale, brought to this scale.
        self.resample = nn.ModuleDict(
            {
                str(source): Downsample(features, level - source) if source < level else Upsample(features, 2 ** (source - level))
                for source in range(num_scales)
                if source != level
            }
        )
        has_coarser = level < num_scales - 1
        self.merge_input = _Merge(num_scales + int(has_coarser), config, level)
        self.body = nn.Sequential(
            *[RCAB(features, reduction=config.reduction, window=window) for _ in range(config.num_blocks[level])],
            nn.Conv2d(features, features, 3, padding=1),
        )
        self.merge_tail = _Merge(3 if config.edge_filtering else 2, config, level)
        if level > 0:
            self.tail: nn.Module = Upsample(features, 2)  # up to the next finer scale
        elif config.sr_tail == "direct" and config.scale > 1:
            self.tail = nn.Sequential(
                nn.Conv2d(features, config.out_channels * config.scale**2, config.sr_tail_kernel,
                          padding=config.sr_tail_kernel // 2),
                nn.PixelShuffle(config.scale),
            )
        else:
            self.tail = nn.Sequential(
                Upsample(features, config.scale), nn.Conv2d(features, config.out_channels, 3, padding=1)
            )


class HFPIENet(nn.Module):
    """High-Frequency aware Perceptual Image Enhancement network.

    Args:
        config: sizes and switches; see :class:`HFPIEConfig`.

    Shape:
        x: (N, in_channels, H, W), values in [0, 1], H and W multiples of ``config.multiple_of``
        -> (N, out_channels, H * scale, W * scale)

    Example:
        >>> net = HFPIENet(config_from_preset("tiny", scale=2))
        >>> net(torch.rand(1, 3, 16, 20)).shape
        torch.Size([1, 3, 32, 40])
    """

    def __init__(self, config: HFPIEConfig) -> None:
        super().__init__()
        self.config = config
        self.scales = nn.ModuleList([_Scale(config, level) for level in range(config.num_scales)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        config = self.config
        if x.ndim != 4 or x.shape[1] != config.in_channels:
            raise ValueError(f"expected input of shape (N, {config.in_channels}, H, W), got {tuple(x.shape)}")
        multiple = config.multiple_of
        if x.shape[-2] % multiple or x.shape[-1] % multiple:
            raise ValueError(
                f"height and width must be multiples of {multiple}, got {tuple(x.shape[-2:])}; "
                "pad the input first (hfpie.tiling.pad_to_multiple) or use hfpie.enhance"
            )
        images = [x]
        for _ in range(1, config.num_scales):
            images.append(F.avg_pool2d(images[-1], 2))
        low = [scale.head(image) for scale, image in zip(self.scales, images)]

        upsampled_tail: torch.Tensor | None = None
        for level in reversed(range(config.num_scales)):
            scale = self.scales[level]
            parts = [low[level]] + [scale.resample[str(s)](low[s]) for s in range(config.num_scales) if s != level]
            if upsampled_tail is not None:
                parts.append(upsampled_tail)
            body_input = scale.merge_input(parts)
            high = body_input + scale.body(body_input)
            tail_parts = [high, low[level]]
            if scale.edges is not None:
                tail_parts.append(scale.edges(images[level]))
            upsampled_tail = scale.tail(scale.merge_tail(tail_parts))
        output = upsampled_tail
        assert output is not None
        if config.global_residual:
            if config.scale == 1:
                output = output + x
            else:
                output = output + F.interpolate(x, scale_factor=config.scale, mode="bilinear", align_corners=False)
        return output
