"""How a loaded network runs on an image: device, precision, tile plan, then the tiled forward pass.

:func:`run_network` is the one entry point (``enhance()``, the CLI, evaluation and the benchmarks
all go through it). It resolves every setting of a call once into a :class:`RunPlan` - the device,
the precision (:mod:`hfpie.precision`), the tile side, halo and tiles per forward pass - and hands
that plan to :func:`hfpie.tiling.tiled_forward`, inside the CPU heap policy of
:mod:`hfpie.cpu_memory`. The policies that pick those settings live here and nowhere else:

- :func:`default_device`: CUDA, else MPS, else the CPU;
- :func:`suggest_tile_size`: the largest tile that fits the device's memory budget, at most
  :data:`CPU_TILE` on the CPU; an image that fits in one window runs whole (exact);
- :data:`DEFAULT_MAX_HALO`: the cap of the default halo;
- :func:`suggest_tile_batch`: tiles per forward pass (several on CUDA, one on the CPU).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from .cpu_memory import HEAP_REUSE_MEMORY_FACTOR, heap_reuse, heap_reuse_enabled
from .errors import DeviceNotAvailableError, NonFiniteOutputError
from .models import HFPIENet
from .precision import resolve_precision
from .tiling import TileSpec, TileWriter, pad_to_working_size, tiled_forward

__all__ = [
    "CPU_TILE",
    "DEFAULT_MAX_HALO",
    "MIN_WORKING_SIDE",
    "RunPlan",
    "available_devices",
    "default_device",
    "plan_run",
    "resolve_device",
    "run_network",
    "suggest_tile_batch",
    "suggest_tile_size",
]

DEFAULT_MAX_HALO = 64
"""Cap of the default tile halo, in input pixels (see :func:`run_network`). Measured on every shipped
model (1 MP photo, 256 px tiles): at most 0.001 of an 8-bit level from the whole-image output."""

CPU_TILE = 512
"""Core side (input pixels) of the default tiles on the CPU. Windows of about 640 x 640 keep each
layer's working set small and reuse the same heap memory tile after tile; whole-image passes over
larger images page-fault gigabytes of fresh memory and run up to 2x slower per pixel (docs/speed.md).
Networks of scale 3 and more take cores of ``2 * CPU_TILE // scale`` (256 for x4): a 640 px window
becomes 2560 px feature maps in the x4 upsampler, which kept `hfpie sr --scale 4` at a 3.1 GB peak for
64 MP of output; 384 px windows peak at 1.5 GB for 10% more time (docs/speed.md)."""

MIN_WORKING_SIDE = 64
"""Images are padded (their edge pixels repeated, :func:`hfpie.tiling.pad_to_working_size`) to at least
this many pixels a side before the network runs, and cropped after: a tiny image or a thin strip would
otherwise lie all within reach of the network's zero-padded borders, and come out shifted in colour (a
flat 1 x 1 image by up to 25 levels) or noisier than it went in. Checked on the shipped models by
tests/test_shipped_models.py (flat images 1x1 to 8x8, strips 1 to 16 px)."""


def default_device() -> torch.device:
    """CUDA if available, else Apple MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def available_devices() -> list[str]:
    """The devices present here: ``cpu``, then ``cuda:0``, ``cuda:1``... and ``mps`` where they exist."""
    devices = ["cpu"] + [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def resolve_device(device: torch.device | str | None) -> torch.device:
    """``device`` as a torch.device (None: :func:`default_device`), checked to exist on this machine.

    Raises:
        DeviceNotAvailableError: a name torch does not know (``"gpu"``), or a device absent here
            (``"cuda"`` without CUDA, ``"cuda:1"`` with one GPU, ``"mps"`` off Apple silicon).
    """
    if device is None:
        return default_device()
    present = available_devices()
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise DeviceNotAvailableError(f"unknown device {device!r}; devices here: {', '.join(present)}") from None
    if resolved.type in {"cuda", "mps"}:
        name = f"cuda:{resolved.index or 0}" if resolved.type == "cuda" else "mps"
        if name not in present:
            raise DeviceNotAvailableError(f"device {device!r} is not available; devices here: {', '.join(present)}")
    return resolved


def _bytes_per_pixel(network: HFPIENet, half: bool) -> float:
    """Peak activation memory per input pixel of a forward pass, with a margin; ``half``: 16-bit
    activations (bf16 or fp16).

    Measured on the CPU: the ``small`` preset (32 features) peaks at about 1.8 GB per megapixel.
    """
    config = network.config
    element = 2 if half else 4
    return config.num_features * element * (16 + 4 * config.scale**2)


def _memory_budget(device: torch.device) -> float:
    """Bytes one forward pass may use on ``device``: a share of what is free there."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return 0.6 * free
    if device.type == "mps":
        return 2 * 1024**3
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        available = 8 * 1024**3
    budget = min(0.4 * available, 12 * 1024**3)
    if heap_reuse_enabled():
        budget /= HEAP_REUSE_MEMORY_FACTOR  # reused heap memory raises the peak (docs/speed.md)
    return budget


def suggest_tile_size(network: HFPIENet, device: torch.device, *, half: bool, halo: int) -> int:
    """Largest core side whose tile (core plus halo on both sides) fits the device's free memory;
    at most :data:`CPU_TILE` on the CPU (less for scales past 2), where smaller windows run faster per pixel."""
    side = int((_memory_budget(device) / _bytes_per_pixel(network, half)) ** 0.5) - 2 * halo
    if device.type == "cpu":
        scale = network.config.scale
        side = min(side, CPU_TILE if scale <= 2 else 2 * CPU_TILE // scale)
    alignment = network.config.alignment
    return max(side // alignment * alignment, 4 * alignment, 64)


def suggest_tile_batch(network: HFPIENet, device: torch.device, *, half: bool, window: int) -> int:
    """Tiles of side ``window`` to run at once: what fits the CUDA memory budget (<= 16); 1 elsewhere."""
    if device.type != "cuda":
        return 1
    fitting = _memory_budget(device) // (_bytes_per_pixel(network, half) * window * window)
    return int(max(1, min(16, fitting)))


def _requested_precision(precision: str | None, half: bool | None, device: torch.device) -> str:
    """The resolved precision of a call: ``precision`` if given, else the old ``half`` flag, else auto."""
    if precision is None:
        if half is None:
            precision = "auto"
        elif half:
            precision = "fp16" if device.type == "cuda" else "bf16"
        else:
            precision = "fp32"
    elif half is not None:
        raise ValueError("pass precision= or the older half=, not both")
    return resolve_precision(precision, device)


@dataclass(frozen=True)
class RunPlan:
    """Every setting of one :func:`run_network` call, resolved."""

    device: torch.device
    precision: str
    """"fp32", "bf16" or "fp16"."""
    spec: TileSpec
    """The network's scale, size multiple, tile alignment, and the halo in input pixels."""
    tile: int
    """Core side of the tiles in input pixels (the padded image's longer side: one whole pass)."""
    tile_batch: int
    """Tiles of one shape per forward pass."""


def plan_run(network: HFPIENet, padded_size: tuple[int, int], *, device: torch.device | str | None = None,
             tile: int | None = None, halo: int | str | None = None, precision: str | None = None,
             half: bool | None = None, tile_batch: int | None = None) -> RunPlan:
    """Resolve the settings of :func:`run_network` (None: automatic) for an image of ``padded_size``."""
    config = network.config
    device = torch.device(device) if device is not None else next(network.parameters()).device
    precision = _requested_precision(precision, half, device)
    reduced = precision != "fp32"
    if halo is None or halo == "exact":
        radius = 10**9 if config.attention_window is None else config.receptive_radius()
        halo = radius if halo == "exact" else min(radius, DEFAULT_MAX_HALO)
    if not isinstance(halo, int) or halo < 0:
        raise ValueError(f"halo must be None, 'exact' or a number of pixels >= 0, got {halo!r}")
    if tile is None:
        tile = suggest_tile_size(network, device, half=reduced, halo=halo)
        if padded_size[0] * padded_size[1] <= (tile + 2 * halo) ** 2:
            tile = max(padded_size)  # the whole image fits in memory: no tiling, exact
    if tile_batch is None:
        tile_batch = suggest_tile_batch(network, device, half=reduced, window=tile + 2 * halo)
    spec = TileSpec(scale=config.scale, multiple_of=config.multiple_of, alignment=config.alignment, halo=halo)
    return RunPlan(device=device, precision=precision, spec=spec, tile=tile, tile_batch=tile_batch)


def run_network(
    network: HFPIENet,
    image: torch.Tensor,
    *,
    device: torch.device | str | None = None,
    tile: int | None = None,
    halo: int | str | None = None,
    half: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
    tile_batch: int | None = None,
    precision: str | None = None,
    batch: int | None = None,
    write: TileWriter | None = None,
) -> torch.Tensor | None:
    """Run ``network`` on an (N, C, H, W) image of any size, float in [0, 1] or uint8 (0-255, converted
    to float window by window, so no float copy of the whole input is made); output on the CPU.

    Pads to the network's ``multiple_of`` once (sides under :data:`MIN_WORKING_SIDE` to that size),
    tiles when the image does not fit in memory (or when ``tile`` is given), and crops the padding off
    the output.

    Tile: ``None`` (automatic) runs the whole image when it fits in one window of the memory budget
    (at most :data:`CPU_TILE` plus halos on the CPU), else tiles of the largest side that fits.

    Halo: ``"exact"`` reads the network's full receptive radius around every tile, so tiled output
    equals whole-image output (to float rounding), but that radius is hundreds of pixels for the
    multi-scale presets. ``None`` (the default) caps it at :data:`DEFAULT_MAX_HALO`; the remaining
    difference is measured for the shipped models in docs/speed.md. An int sets it directly.
    Images that fit in memory run whole and are exact either way.

    Tile batch: tiles of one shape run this many at a time. ``None`` picks as many as fit in the
    memory budget on CUDA (at most 16; batched tiles keep a GPU busy) and 1 on the CPU, where
    batching does not pay (measured in docs/speed.md). ``batch`` is its older name.

    Precision: ``"auto"`` (the default) runs bfloat16 autocast on a CPU with AMX / AVX-512 BF16,
    float16 autocast on CUDA and float32 elsewhere (:func:`hfpie.precision.resolve_precision`);
    ``"fp32"``, ``"bf16"`` or ``"fp16"`` force one. 16-bit tiles with non-finite values are redone in
    float32. ``half`` is the old flag: True means the device's 16-bit type, False "fp32".

    Write: None (the default) returns the whole output as one float32 tensor. A callback instead gets
    each piece of the output as soon as its tile is done, ``write((top, bottom, left, right), piece)``:
    the box in output pixels of the (unpadded) image and the (N, C', h, w) float32 values, clamped to
    [0, 1] and checked finite, exactly the values of the whole tensor there; nothing is returned.
    ``enhance()`` converts each piece to the output's dtype on the spot (no full-size float copy).

    Raises:
        NonFiniteOutputError: the output holds NaN or inf even in float32 (damaged weights).
    """
    if batch is not None:
        if tile_batch is not None and tile_batch != batch:
            raise ValueError("batch is the older name of tile_batch: pass one of them")
        tile_batch = batch
    config = network.config
    height, width = image.shape[-2:]
    pixels = image.cpu() if image.dtype == torch.uint8 else image.float().cpu()  # uint8: converted per window
    padded, (top, left) = pad_to_working_size(pixels, config.multiple_of, MIN_WORKING_SIDE)
    plan = plan_run(network, tuple(padded.shape[-2:]), device=device, tile=tile, halo=halo, precision=precision,
                    half=half, tile_batch=tile_batch)
    scale = config.scale
    first_row, first_column = top * scale, left * scale
    out_height, out_width = height * scale, width * scale
    output: torch.Tensor | None = None
    if write is None:
        output = torch.empty((image.shape[0], config.out_channels, out_height, out_width), dtype=torch.float32)

    def keep(box: tuple[int, int, int, int], core: torch.Tensor) -> None:
        """The part of a core (box in padded output pixels) that lies in the image, checked and clamped."""
        core_top, core_bottom, core_left, core_right = box
        rows = max(core_top, first_row), min(core_bottom, first_row + out_height)
        columns = max(core_left, first_column), min(core_right, first_column + out_width)
        if rows[0] >= rows[1] or columns[0] >= columns[1]:
            return  # all padding
        piece = core[..., rows[0] - core_top : rows[1] - core_top, columns[0] - core_left : columns[1] - core_left]
        if not bool(torch.isfinite(piece).all()):
            raise NonFiniteOutputError(
                "the network gave NaN or infinite values"
                + (f" in {plan.precision} and again in float32" if plan.precision != "fp32" else "")
                + "; its weights are probably damaged: load the model file again (or retrain)"
            )
        piece = piece.clamp(0.0, 1.0)  # a new tensor: the core is an inference tensor
        place = (rows[0] - first_row, rows[1] - first_row, columns[0] - first_column, columns[1] - first_column)
        if write is not None:
            write(place, piece)
        else:
            assert output is not None
            output[..., place[0] : place[1], place[2] : place[3]] = piece

    with heap_reuse() if plan.device.type == "cpu" else nullcontext():
        tiled_forward(network, padded, plan.spec, tile=plan.tile, device=plan.device, precision=plan.precision,
                      progress=progress, tile_batch=plan.tile_batch, write=keep)
    return output
