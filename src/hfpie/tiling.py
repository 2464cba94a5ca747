"""Tiled inference: run a model on an image of any size, one tile at a time, with no seams.

Geometry (as in Real-ESRGAN's tiler): the image is split into *cores* on a grid; each core is read
with a *halo* of context around it, clipped to the image, and only the core of the output is written
back (coordinates times the scale). Core and halo edges are multiples of the model's ``alignment``,
so every internal grid of the network (downsampling, attention cells) lines up with the whole image's.
When the halo is at least the network's receptive radius, every output pixel sees exactly the inputs
it would see in a whole-image pass, so the tiled result equals the untiled one up to float rounding.

Only one batch of tiles is ever on the device; the image and the output stay on the CPU. With a
``write`` callback each output core goes to the caller as soon as it is computed, so no float32 copy
of the whole output is ever made (``enhance()`` assembles it in its final dtype that way).
On CUDA out-of-memory, the failing core is split in four and retried (down to ``min_tile``); past
that the error is raised. Half precision tiles whose output is not finite are redone in float32.

Everything here is a pure function: no state is kept between calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .precision import autocast

__all__ = ["UINT8_TO_UNIT", "TileSpec", "TileWriter", "as_unit", "forward_tile", "pad_to_multiple",
           "pad_to_working_size", "tile_cores", "tiled_forward"]


TileWriter = Callable[[tuple[int, int, int, int], torch.Tensor], None]
"""Receives each output core of :func:`tiled_forward`: its (top, bottom, left, right) box in output
pixels and its (N, C, h, w) float32 values on the CPU."""


@dataclass(frozen=True)
class TileSpec:
    """How a model must be tiled: its output scale and the geometry it needs."""

    scale: int = 1
    """Output pixels per input pixel along each axis."""
    multiple_of: int = 1
    """Inputs must have height and width divisible by this."""
    alignment: int = 1
    """Tile offsets must be multiples of this for exact results (a multiple of ``multiple_of``)."""
    halo: int = 0
    """Context read around each core, in input pixels; the receptive radius for exact results."""


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the bottom and right of NCHW ``x`` by reflection so that H and W divide by ``multiple``.

    Images too small to reflect (a side of 1 pixel) are padded by replication.

    Returns:
        The padded tensor and the (bottom, right) padding added.
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h == 0 and pad_w == 0:
        return x, (0, 0)
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode), (pad_h, pad_w)


def _padding_indices(size: int, before: int, after: int, reflect: bool) -> torch.Tensor:
    """Indices that pad ``size`` samples by ``before`` and ``after``: by reflection ("dcb|abcd|cba",
    needs ``before``, ``after`` < ``size``) or by repeating the edge sample ("aaa|abcd|ddd")."""
    positions = torch.arange(-before, size + after)
    if not reflect:
        return positions.clamp(0, size - 1)
    return torch.where(positions < 0, -positions, torch.where(positions < size, positions, 2 * (size - 1) - positions))


def pad_to_working_size(x: torch.Tensor, multiple: int, minimum: int = 1) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad NCHW ``x`` so that H and W divide by ``multiple`` and are at least ``minimum``.

    A side of ``minimum`` pixels or more is padded at its end (bottom, right) to the multiple by
    reflection, as :func:`pad_to_multiple` does. A shorter side (tiny images, thin strips) is padded
    on both sides to ``minimum`` rounded up to the multiple, the image in the middle, by repeating its
    edge pixels: a network's zero-padded borders then lie away from every pixel of it. Repeating the
    edge measured better than reflection there: a reflected 2-row strip is a pattern at the highest
    frequency, which a denoiser keeps as texture (a strip of clean.png with σ=12 noise: -6.7 dB against
    the input with reflection, -2.5 dB with the edge repeated, -2.9 dB for the same rows denoised
    inside the whole image).

    Returns:
        The padded tensor and the (top, left) padding: ``x`` is ``padded[..., top:top + H, left:left + W]``.
    """
    height, width = x.shape[-2:]

    def indices(size: int) -> tuple[torch.Tensor, int]:
        total = max(_round_up(size, multiple), _round_up(minimum, multiple)) - size
        short = size < minimum
        before = total // 2 if short else 0
        reflect = not short and total < size  # reflection needs the samples: a side past the minimum has them
        return _padding_indices(size, before, total - before, reflect), before

    (rows, top), (columns, left) = indices(height), indices(width)
    if len(rows) == height and len(columns) == width:
        return x, (0, 0)
    return x[..., rows[:, None], columns], (top, left)


def tile_cores(height: int, width: int, tile: int) -> list[tuple[int, int, int, int]]:
    """Cores ``(top, bottom, left, right)`` of side at most ``tile`` that cover the image exactly."""
    return [
        (top, min(top + tile, height), left, min(left + tile, width))
        for top in range(0, height, tile)
        for left in range(0, width, tile)
    ]


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _precision_of(precision: str | None, half: bool | None) -> str:
    """``precision``, or the deprecated ``half`` flag (True: "fp16") when it is not given."""
    if precision is not None:
        if half is not None and (precision != "fp32") != half:
            raise ValueError(f"half={half} contradicts precision={precision!r}; pass precision only")
        return precision
    return "fp16" if half else "fp32"


def forward_tile(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, precision: str | None = None,
                 half: bool | None = None) -> torch.Tensor:
    """One forward pass in inference mode, in ``precision`` ("fp32", "bf16" or "fp16" autocast).

    A 16-bit output that holds NaN or inf (overflow) is recomputed in float32, so the caller always
    receives finite values when the float32 model gives them. ``half=True`` is the old spelling of
    ``precision="fp16"``.
    """
    precision = _precision_of(precision, half)
    with torch.inference_mode():
        if precision != "fp32":
            with autocast(precision, x.device):
                output = model(x)
            output = output.float()
            if bool(torch.isfinite(output).all()):
                return output
        return model(x.float()).float()


def _is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


UINT8_TO_UNIT = torch.from_numpy(np.arange(256, dtype=np.float32) / 255.0)
"""The float in [0, 1] of each 8-bit level, as NumPy's ``array.astype(np.float32) / 255.0`` gives it
(a table, so every device converts to the same bits: CUDA divides by a scalar through its reciprocal)."""


def as_unit(x: torch.Tensor) -> torch.Tensor:
    """Float pixels in [0, 1]: a float tensor as it is, a uint8 one (0-255) as :data:`UINT8_TO_UNIT` has it."""
    if x.dtype != torch.uint8:
        return x
    if x.device.type == "cpu":  # NumPy's division, in place: the table's values without an index array
        unit = x.numpy().astype(np.float32)
        return torch.from_numpy(np.divide(unit, 255.0, out=unit))
    return UINT8_TO_UNIT.to(x.device)[x.int()]


def tiled_forward(
    model: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    spec: TileSpec,
    *,
    tile: int,
    device: torch.device | str = "cpu",
    precision: str | None = None,
    half: bool | None = None,
    min_tile: int = 64,
    progress: Callable[[int, int], None] | None = None,
    tile_batch: int = 1,
    batch: int | None = None,
    write: TileWriter | None = None,
) -> torch.Tensor | None:
    """Run ``model`` over ``image`` tile by tile and stitch the output cores.

    Args:
        model: maps (N, C, h, w) on ``device`` to (N, C', h * scale, w * scale).
        image: (N, C, H, W) tensor on the CPU, float in [0, 1] or uint8 (0-255, converted window by
            window on the device: no float copy of the whole image); H and W multiples of
            ``spec.multiple_of`` (use :func:`pad_to_multiple` first).
        spec: scale, multiple_of, alignment and halo of the model.
        tile: core side in input pixels (rounded up to ``spec.alignment``); the image's longer side
            runs it whole. (The automatic choice is :func:`hfpie.runner.plan_run`'s.)
        device: where the model runs; windows are copied there one batch at a time.
        precision: "fp32" (default), or "bf16" / "fp16" autocast with a float32 retry of non-finite
            tiles (see :func:`forward_tile`); ``half=True`` is the old spelling of "fp16".
        min_tile: smallest core side tried after out-of-memory errors before giving up.
        progress: called as ``progress(done_pixels, total_pixels)`` after each core.
        tile_batch: run up to this many tiles of the same window shape in one forward pass (the
            interior tiles of an image all share one shape). Out-of-memory errors halve it before
            they shrink the tiles. ``batch`` is its older name.
        write: where each output core goes instead of a float32 copy of the whole output: called as
            ``write((top, bottom, left, right), core)`` with the core's box in output pixels and its
            (N, C', h, w) float32 values on the CPU, once per core, as soon as it is computed (the
            caller assembles the output, for instance in its final dtype; nothing is kept here).

    Returns:
        (N, C', H * scale, W * scale) float32 tensor on the CPU; None when ``write`` is given.

    Raises:
        torch.OutOfMemoryError: when even ``min_tile`` cores do not fit on the device.
    """
    if image.ndim != 4:
        raise ValueError(f"expected an (N, C, H, W) image, got shape {tuple(image.shape)}")
    height, width = image.shape[-2:]
    if height % spec.multiple_of or width % spec.multiple_of:
        raise ValueError(f"image size {height}x{width} is not a multiple of {spec.multiple_of}; use pad_to_multiple")
    device = torch.device(device)
    precision = _precision_of(precision, half)
    scale = spec.scale
    halo = _round_up(spec.halo, spec.alignment)
    total = height * width
    done = 0
    output: torch.Tensor | None = None
    current_tile = _round_up(max(tile, 1), spec.alignment)
    min_tile = _round_up(min_tile, spec.alignment)

    batch = tile_batch if batch is None else batch
    if batch < 1:
        raise ValueError(f"tile_batch must be >= 1 tile, got {batch}")

    def window_of(core: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        top, bottom, left, right = core
        return max(top - halo, 0), min(bottom + halo, height), max(left - halo, 0), min(right + halo, width)

    def shape_of(core: tuple[int, int, int, int]) -> tuple[int, int]:
        read_top, read_bottom, read_left, read_right = window_of(core)
        return read_bottom - read_top, read_right - read_left

    pending = tile_cores(height, width, current_tile)
    while pending:
        group = [pending.pop(0)]
        while pending and len(group) < batch and shape_of(pending[0]) == shape_of(group[0]):
            group.append(pending.pop(0))
        windows = [window_of(core) for core in group]
        try:
            views = [image[..., rt:rb, rl:rr] for rt, rb, rl, rr in windows]
            stacked = views[0] if len(views) == 1 else torch.cat(views)  # one window: no host copy
            result = forward_tile(model, as_unit(stacked.to(device, non_blocking=True)), precision=precision)
        except RuntimeError as error:
            if not _is_out_of_memory(error):
                raise
            del error
            if device.type == "cuda":
                torch.cuda.empty_cache()
            if len(group) > 1:  # fewer tiles at once before smaller tiles
                batch = max(1, len(group) // 2)
                pending = group + pending
                continue
            top, bottom, left, right = group[0]
            side = max(bottom - top, right - left)
            if side <= min_tile:
                raise
            current_tile = max(_round_up(math.ceil(side / 2), spec.alignment), min_tile)
            # Split this core in four; later cores take the smaller size too.
            pending = [core for old in [group[0], *pending] for core in _split(old, current_tile)]
            continue
        if output is None and write is None:
            output = torch.empty(
                (image.shape[0], result.shape[1], height * scale, width * scale), dtype=torch.float32
            )
        count = image.shape[0]
        for index, ((top, bottom, left, right), (read_top, _, read_left, _)) in enumerate(zip(group, windows)):
            core = result[
                index * count : (index + 1) * count,
                :,
                (top - read_top) * scale : (bottom - read_top) * scale,
                (left - read_left) * scale : (right - read_left) * scale,
            ]
            core = core.to("cpu", torch.float32)
            if write is not None:
                write((top * scale, bottom * scale, left * scale, right * scale), core)
            else:
                assert output is not None
                output[..., top * scale : bottom * scale, left * scale : right * scale] = core
            done += (bottom - top) * (right - left)
            if progress is not None:
                progress(done, total)
    return output


def _split(core: tuple[int, int, int, int], tile: int) -> list[tuple[int, int, int, int]]:
    top, bottom, left, right = core
    return [(top + t, top + b, left + l, left + r) for t, b, l, r in tile_cores(bottom - top, right - left, tile)]
