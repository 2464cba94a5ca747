"""``enhance()``: image in, enhanced image out, of the same type, dtype and value range."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .cpu_memory import HEAP_REUSE_MEMORY_FACTOR, heap_reuse, heap_reuse_enabled
from .errors import UnsupportedImageError
from .hub import TASKS, load_model
from .io import ImageFile, image_file_from_pil, read_image
from .models import HFPIENet
from .tiling import TileSpec, pad_to_multiple, tiled_forward

__all__ = [
    "CPU_TILE",
    "DEFAULT_MAX_HALO",
    "MAX_STRENGTH",
    "check_strength",
    "default_device",
    "enhance",
    "enhance_image_file",
    "resolve_network",
    "run_network",
    "suggest_tile_size",
]

ImageLike = TypeVar("ImageLike", Image.Image, np.ndarray, torch.Tensor)
DEFAULT_MAX_HALO = 64
"""Cap of the default tile halo, in input pixels (see :func:`run_network`). Measured on every shipped
model (1 MP photo, 256 px tiles): at most 0.001 of an 8-bit level from the whole-image output."""

CPU_TILE = 512
"""Core side (input pixels) of the default tiles on the CPU. Windows of about 640 x 640 keep each
layer's working set small and reuse the same heap memory tile after tile; whole-image passes over
larger images page-fault gigabytes of fresh memory and run up to 2x slower per pixel (docs/speed.md)."""


MAX_STRENGTH = {"denoise": 2.0, "deblur": 1.0, "sr": 1.0}
"""Largest ``strength`` per task (see :func:`enhance`)."""


def default_device() -> torch.device:
    """CUDA if available, else Apple MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _bytes_per_pixel(network: HFPIENet, half: bool) -> float:
    """Peak activation memory per input pixel of a forward pass, with a margin.

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
    at most :data:`CPU_TILE` on the CPU, where smaller windows run faster per pixel."""
    side = int((_memory_budget(device) / _bytes_per_pixel(network, half)) ** 0.5) - 2 * halo
    if device.type == "cpu":
        side = min(side, CPU_TILE)
    alignment = network.config.alignment
    return max(side // alignment * alignment, 4 * alignment, 64)


def suggest_tile_batch(network: HFPIENet, device: torch.device, *, half: bool, window: int) -> int:
    """Tiles of side ``window`` to run at once: what fits the CUDA memory budget (<= 16); 1 elsewhere."""
    if device.type != "cuda":
        return 1
    fitting = _memory_budget(device) // (_bytes_per_pixel(network, half) * window * window)
    return int(max(1, min(16, fitting)))


def run_network(
    network: HFPIENet,
    image: torch.Tensor,
    *,
    device: torch.device | str | None = None,
    tile: int | None = None,
    halo: int | str | None = None,
    half: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
    batch: int | None = None,
) -> torch.Tensor:
    """Run ``network`` on an (N, C, H, W) float image in [0, 1] of any size; output on the CPU.

    Pads to the network's ``multiple_of`` once, tiles when the image does not fit in memory (or when
    ``tile`` is given), and crops the padding off the output.

    Halo: ``"exact"`` reads the network's full receptive radius around every tile, so tiled output
    equals whole-image output (to float rounding), but that radius is hundreds of pixels for the
    multi-scale presets. ``None`` (the default) caps it at :data:`DEFAULT_MAX_HALO`; the remaining
    difference is measured for the shipped models in docs/benchmarks.md. An int sets it directly.
    Images that fit in memory run whole and are exact either way.

    Batch: tiles of one shape run this many at a time. ``None`` picks as many as fit in the memory
    budget on CUDA (at most 16; batched tiles keep a GPU busy) and 1 on the CPU, where batching
    does not pay (measured in docs/speed.md).
    """
    config = network.config
    device = torch.device(device) if device is not None else next(network.parameters()).device
    half = device.type == "cuda" if half is None else half
    if halo is None or halo == "exact":
        radius = 10**9 if config.attention_window is None else config.receptive_radius()
        halo = radius if halo == "exact" else min(radius, DEFAULT_MAX_HALO)
    if not isinstance(halo, int) or halo < 0:
        raise ValueError(f"halo must be None, 'exact' or a number of pixels >= 0, got {halo!r}")
    spec = TileSpec(scale=config.scale, multiple_of=config.multiple_of, alignment=config.alignment, halo=halo)
    height, width = image.shape[-2:]
    padded, _ = pad_to_multiple(image.float().cpu(), config.multiple_of)
    if tile is None:
        tile = suggest_tile_size(network, device, half=half, halo=halo)
        if padded.shape[-2] * padded.shape[-1] <= (tile + 2 * halo) ** 2:
            tile = max(padded.shape[-2:])  # the whole image fits in memory: no tiling, exact
    if batch is None:
        batch = suggest_tile_batch(network, device, half=half, window=tile + 2 * halo)
    with heap_reuse() if device.type == "cpu" else nullcontext():
        output = tiled_forward(network, padded, spec, tile=tile, device=device, half=half, progress=progress,
                               batch=batch)
    return output[..., : height * config.scale, : width * config.scale].clamp_(0.0, 1.0)


# --- conversions between the caller's image type and (N, 3, H, W) float tensors ---------------------

def _file_to_pil(image: ImageFile) -> Image.Image:
    if image.bit_depth == 16:
        if image.is_grey and image.alpha is None:
            return Image.fromarray(image.pixels[..., 0])
        image = ImageFile(
            pixels=np.round(image.pixels / 257.0).astype(np.uint8),
            alpha=None if image.alpha is None else np.round(image.alpha / 257.0).astype(np.uint8),
            format=image.format,
        )
    channels = [image.pixels] + ([image.alpha[..., None]] if image.alpha is not None else [])
    array = np.concatenate(channels, axis=2)
    pil = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
    if image.icc_profile:
        pil.info["icc_profile"] = image.icc_profile
    return pil


def _split_channels(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
    """(N, C, H, W) with C in 1-4 -> RGB (N, 3, H, W), alpha (N, 1, H, W) or None, was-grey."""
    channels = x.shape[1]
    if channels not in (1, 2, 3, 4):
        raise UnsupportedImageError(f"images need 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA) channels, got {channels}")
    grey = channels in (1, 2)
    colour = x[:, :1].expand(-1, 3, -1, -1) if grey else x[:, :3]
    alpha = x[:, -1:] if channels in (2, 4) else None
    return colour, alpha, grey


def _merge_channels(colour: torch.Tensor, alpha: torch.Tensor | None, grey: bool, scale: int) -> torch.Tensor:
    parts = [colour.mean(dim=1, keepdim=True) if grey else colour]
    if alpha is not None:
        if scale != 1:
            alpha = F.interpolate(alpha, scale_factor=scale, mode="bicubic", align_corners=False).clamp_(0, 1)
        parts.append(alpha)
    return torch.cat(parts, dim=1)


def check_strength(task: str, strength: float) -> float:
    """``strength`` as a float, or a ValueError that names the range allowed for ``task``."""
    maximum = MAX_STRENGTH[task]
    if (isinstance(strength, bool) or not isinstance(strength, numbers.Real) or not math.isfinite(strength)
            or not 0 <= strength <= maximum):
        zero = "the input upscaled bicubically" if task == "sr" else "the input unchanged"
        top = "the model as trained" if maximum == 1 else "1 = the model as trained, more = stronger"
        raise ValueError(f"strength for {task!r} must be between 0 ({zero}) and {maximum:g} ({top}), got {strength!r}")
    return float(strength)


def _baseline(colour: torch.Tensor, scale: int) -> torch.Tensor:
    """What strength 0 returns: the input, upscaled bicubically for SR."""
    colour = colour.float().cpu()
    if scale == 1:
        return colour
    return F.interpolate(colour, scale_factor=scale, mode="bicubic", align_corners=False).clamp_(0.0, 1.0)


def _restore_colour(network: HFPIENet, colour: torch.Tensor, strength: float, **options: Any) -> torch.Tensor:
    """The network's output at ``strength`` (measured against the alternatives in docs/usage.md).

    Below 1: a pixel-wise mix of :func:`_baseline` and the output. Above 1 (restoration only): a mix
    of the output and a second pass of the network over it (2: two passes).
    """
    if strength == 1:
        return run_network(network, colour, **options)
    if strength < 1:
        baseline = _baseline(colour, network.config.scale)
        if strength == 0:
            return baseline
        return torch.lerp(baseline, run_network(network, colour, **options), strength).clamp_(0.0, 1.0)
    if network.config.scale != 1:
        raise ValueError(f"strength above 1 needs a restoration (scale 1) model, got strength {strength:g} "
                         f"for a x{network.config.scale} model")
    progress = options.pop("progress", None)
    halves = [None, None] if progress is None else [
        lambda done, total, first=first: progress(done + (0 if first else total), 2 * total) for first in (True, False)
    ]
    restored = run_network(network, colour, progress=halves[0], **options)
    again = run_network(network, restored, progress=halves[1], **options)
    return torch.lerp(restored, again, strength - 1).clamp_(0.0, 1.0)


def _enhance_tensor(x: torch.Tensor, network: HFPIENet, strength: float = 1.0, **options: Any) -> torch.Tensor:
    if strength == 0 and network.config.scale == 1:
        return x.clone()  # the input, bit for bit (dtype, grey and alpha untouched)
    colour, alpha, grey = _split_channels(x)
    restored = _restore_colour(network, colour, strength, **options)
    return _merge_channels(restored, None if alpha is None else alpha.float().cpu(), grey, network.config.scale)


def _to_unit(array: np.ndarray) -> tuple[torch.Tensor, np.dtype]:
    if array.dtype == np.uint8:
        return torch.from_numpy(array.astype(np.float32) / 255.0), array.dtype
    if array.dtype == np.uint16:
        return torch.from_numpy(array.astype(np.float32) / 65535.0), array.dtype
    if np.issubdtype(array.dtype, np.floating):
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)), array.dtype
    raise UnsupportedImageError(f"numpy images must be uint8, uint16 or float in [0, 1], got {array.dtype}")


def _from_unit(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.uint8:
        return np.round(np.clip(x, 0, 1) * 255.0).astype(np.uint8)
    if dtype == np.uint16:
        return np.round(np.clip(x, 0, 1) * 65535.0).astype(np.uint16)
    return x.astype(dtype)


def enhance_image_file(image: ImageFile, network: HFPIENet, *, strength: float = 1.0, **options: Any) -> ImageFile:
    """Enhance decoded file pixels (see :func:`hfpie.io.read_image`); keeps bit depth and metadata.

    ``strength`` as in :func:`enhance`, not range-checked here (see :func:`check_strength`).
    """
    maximum = 65535.0 if image.bit_depth == 16 else 255.0
    stack = [image.pixels] + ([image.alpha[..., None]] if image.alpha is not None else [])
    array = np.concatenate(stack, axis=2).astype(np.float32) / maximum
    x = torch.from_numpy(array).permute(2, 0, 1)[None]
    y = _enhance_tensor(x, network, strength, **options)[0].permute(1, 2, 0).numpy()
    y = _from_unit(y, image.pixels.dtype)
    channels = image.pixels.shape[2]
    return ImageFile(
        pixels=np.ascontiguousarray(y[..., :channels]),
        alpha=np.ascontiguousarray(y[..., channels]) if image.alpha is not None else None,
        format=image.format,
        exif=image.exif,
        icc_profile=image.icc_profile,
    )


def resolve_network(task: str, scale: int, model: str | os.PathLike[str] | HFPIENet | None,
                    device: torch.device | str | None) -> HFPIENet:
    """The network for ``task`` (a given module, a model name or path, or the task's default)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if isinstance(model, HFPIENet):
        network = model
    else:
        network = load_model(model if model is not None else task, scale=scale if task == "sr" else None, device=device)
    expected = scale if task == "sr" else 1
    if network.config.scale != expected:
        raise ValueError(
            f"model {model or task!r} has scale {network.config.scale}, but task {task!r} "
            + (f"with scale={scale} needs a x{scale} model" if task == "sr" else "needs a scale-1 model")
        )
    return network


def _progress_callback(progress: bool | Callable[[int, int], None]) -> Callable[[int, int], None] | None:
    if callable(progress):
        return progress
    if not progress:
        return None
    from tqdm.auto import tqdm

    bar = tqdm(total=1.0, unit="img", bar_format="{l_bar}{bar}| {elapsed}<{remaining}")

    def update(done: int, total: int) -> None:
        bar.n = done / total
        bar.refresh()
        if done >= total:
            bar.close()

    return update


def enhance(
    image: str | os.PathLike[str] | ImageLike,
    task: str = "denoise",
    scale: int = 4,
    model: str | os.PathLike[str] | HFPIENet | None = None,
    device: str | torch.device | None = None,
    tile: int | None = None,
    half: bool | None = None,
    progress: bool | Callable[[int, int], None] = False,
    *,
    halo: int | str | None = None,
    tile_batch: int | None = None,
    strength: float = 1.0,
) -> Any:
    """Denoise, deblur or super-resolve an image.

    Args:
        image: a file path, a PIL image, a numpy array (HxW or HxWxC with C = 1, 2, 3 or 4; uint8,
            uint16 or float in [0, 1]) or a torch tensor (CxHxW or NxCxHxW, float in [0, 1]).
            Grey images are processed as RGB and returned grey; alpha is kept (resized for ``sr``).
        task: ``"denoise"``, ``"deblur"`` or ``"sr"``.
        scale: super-resolution factor (``sr`` only).
        model: a model name, a path to a ``.safetensors`` file / exported folder, or an
            :class:`~hfpie.models.HFPIENet`; default: the task's default pretrained model.
        device: ``"cpu"``, ``"cuda"``, ``"mps"``...; default: the best available.
        tile: core side of tiles in input pixels; default: as large as the device's memory allows.
        half: float16 autocast (non-finite tiles are redone in float32); default: on for CUDA only.
        progress: show a progress bar over tiles, or a callback ``f(done_pixels, total_pixels)``.
        halo: context around each tile: ``"exact"`` (the receptive radius: tiles give exactly the
            whole-image result), pixels, or None for the default cap (see :func:`run_network`).
        tile_batch: tiles run at once; default: as many as fit on CUDA, 1 on the CPU.
        strength: how much of the model's change to apply: 0 returns the input (bit for bit for
            8-bit, 16-bit and float32 images; for ``sr`` the input upscaled bicubically), 1 the
            model as trained, values between mix the two pixel by pixel. ``denoise`` takes up to 2
            for stronger denoising: the output mixed with a second pass over it (2: two passes, twice
            the time). :data:`MAX_STRENGTH` has each task's limit; measurements in docs/usage.md.

    Returns:
        The same type as ``image`` (a PIL image for a path), same dtype and value range; ``sr``
        output is exactly ``scale`` times the input size, restoration output the input size.

    Example:
        >>> from hfpie import enhance                      # doctest: +SKIP
        >>> clean = enhance("noisy.png", task="denoise")  # doctest: +SKIP
        >>> clean.save("clean.png")                         # doctest: +SKIP
    """
    network = resolve_network(task, scale, model, device)
    strength = check_strength(task, strength)
    options = dict(device=device, tile=tile, half=half, halo=halo, progress=_progress_callback(progress),
                   batch=tile_batch, strength=strength)
    if isinstance(image, (str, os.PathLike)):
        return _file_to_pil(enhance_image_file(read_image(image), network, **options))
    if isinstance(image, Image.Image):
        return _file_to_pil(enhance_image_file(image_file_from_pil(image, "PIL image"), network, **options))
    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
            raise UnsupportedImageError(f"numpy images must be HxW or HxWxC with pixels, got shape {image.shape}")
        unit, dtype = _to_unit(image)
        x = (unit[..., None] if image.ndim == 2 else unit).permute(2, 0, 1)[None]
        y = _enhance_tensor(x, network, **options)[0].permute(1, 2, 0).numpy()
        return _from_unit(y[..., 0] if image.ndim == 2 else y, dtype)
    if isinstance(image, torch.Tensor):
        if image.ndim not in (3, 4) or not image.is_floating_point():
            raise UnsupportedImageError(
                f"tensors must be float CxHxW or NxCxHxW in [0, 1], got shape {tuple(image.shape)} of {image.dtype}"
            )
        x = image[None] if image.ndim == 3 else image
        y = _enhance_tensor(x.detach(), network, **options).to(device=image.device, dtype=image.dtype)
        return y[0] if image.ndim == 3 else y
    raise TypeError(
        f"enhance() takes a path, PIL image, numpy array or torch tensor, not {type(image).__name__}"
    )
