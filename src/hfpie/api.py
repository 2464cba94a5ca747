"""``enhance()``: image in, enhanced image out, of the same type, dtype and value range."""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .ensemble import check_ensemble, self_ensemble
from .errors import HfpieError, UnsupportedImageError
from .hub import list_models, load_model
from .io import ImageFile, image_file_from_pil, read_image, to_pil
from .models import HFPIENet
from .tasks import check_task, output_scale
from .runner import CPU_TILE, DEFAULT_MAX_HALO, available_devices, default_device, resolve_device, run_network, suggest_tile_size
from .tiling import TileWriter, as_unit

__all__ = [
    "CPU_TILE",
    "DEFAULT_MAX_HALO",
    "available_devices",
    "MAX_STRENGTH",
    "check_strength",
    "default_device",
    "enhance",
    "enhance_image_file",
    "load_checked_network",
    "resolve_device",
    "resolve_network",
    "run_network",
    "sr_scale",
    "suggest_tile_size",
]

ImageLike = TypeVar("ImageLike", Image.Image, np.ndarray, torch.Tensor)
MAX_STRENGTH = {"denoise": 2.0, "deblur": 1.0, "sr": 1.0}
"""Largest ``strength`` per task (see :func:`enhance`)."""


# --- conversions between the caller's image type and (N, 3, H, W) float tensors ---------------------

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


@dataclass(frozen=True)
class Settings:
    """How :func:`enhance` runs the network (each field as in :func:`hfpie.runner.run_network`;
    ``ensemble``: transforms averaged, as in :func:`hfpie.ensemble.self_ensemble`, 1 = one pass)."""

    device: torch.device | str | None = None
    tile: int | None = None
    halo: int | str | None = None
    tile_batch: int | None = None
    precision: str | None = None
    half: bool | None = None
    progress: Callable[[int, int], None] | None = None
    ensemble: int = 1

    def run_into(self, network: HFPIENet, image: torch.Tensor, write: TileWriter,
                 progress: Callable[[int, int], None] | None = None) -> None:
        """One pass of :func:`~hfpie.runner.run_network` with these settings, each output piece handed
        to ``write`` (``progress`` overrides the field; ``ensemble`` is not applied here)."""
        run_network(network, image, device=self.device, tile=self.tile, halo=self.halo, half=self.half,
                    tile_batch=self.tile_batch, precision=self.precision,
                    progress=progress if progress is not None else self.progress, write=write)

    def run(self, network: HFPIENet, image: torch.Tensor,
            progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """The float32 output with these settings: one pass of :func:`~hfpie.runner.run_network`, or
        the mean of ``ensemble`` transformed passes (``progress`` overrides the field)."""
        progress = progress if progress is not None else self.progress
        if self.ensemble == 1:
            output = run_network(network, image, device=self.device, tile=self.tile, halo=self.halo, half=self.half,
                                 tile_batch=self.tile_batch, precision=self.precision, progress=progress)
            assert output is not None
            return output
        scale = network.config.scale
        shape = (image.shape[0], network.config.out_channels, image.shape[-2] * scale, image.shape[-1] * scale)
        return self_ensemble(lambda x, write, progress: self.run_into(network, x, write, progress), image,
                             self.ensemble, shape, progress)

    def for_input(self, network: HFPIENet, high_depth: bool) -> Settings:
        """These settings with fp32 chosen for 16-bit and float inputs on the CPU when the precision is
        automatic: bfloat16 keeps 8 significant bits, enough for 8-bit images (>= 56 dB against fp32,
        docs/speed.md), not for 16-bit or float data."""
        if not high_depth or self.precision not in (None, "auto") or self.half is not None:
            return self
        device = torch.device(self.device) if self.device is not None else next(network.parameters()).device
        return dataclasses.replace(self, precision="fp32") if device.type == "cpu" else self


def _restore_colour(network: HFPIENet, colour: torch.Tensor, strength: float, settings: Settings) -> torch.Tensor:
    """The network's output at ``strength`` (measured against the alternatives in docs/usage.md).

    Below 1: a pixel-wise mix of :func:`_baseline` and the output. Above 1 (restoration only): a mix
    of the output and a second pass of the network over it (2: two passes).
    """
    if strength == 1:
        return settings.run(network, colour)
    if strength < 1:
        baseline = _baseline(colour, network.config.scale)
        if strength == 0:
            return baseline
        return torch.lerp(baseline, settings.run(network, colour), strength).clamp_(0.0, 1.0)
    if network.config.scale != 1:
        raise ValueError(f"strength above 1 needs a restoration (scale 1) model, got strength {strength:g} "
                         f"for a x{network.config.scale} model")
    progress = settings.progress
    halves = [None, None] if progress is None else [
        lambda done, total, first=first: progress(done + (0 if first else total), 2 * total) for first in (True, False)
    ]
    restored = settings.run(network, colour, progress=halves[0])
    again = settings.run(network, restored, progress=halves[1])
    return torch.lerp(restored, again, strength - 1).clamp_(0.0, 1.0)


def _enhance_tensor(x: torch.Tensor, network: HFPIENet, strength: float, settings: Settings) -> torch.Tensor:
    if strength == 0 and network.config.scale == 1:
        return x.clone()  # the input, bit for bit (dtype, grey and alpha untouched)
    colour, alpha, grey = _split_channels(x)
    restored = _restore_colour(network, colour, strength, settings)
    return _merge_channels(restored, None if alpha is None else alpha.float().cpu(), grey, network.config.scale)


_UNIT_TOLERANCE = 0.5 / 255
"""Float images may stray this far outside [0, 1] (half an 8-bit level: rounding) without being refused."""


def _check_unit_range(low: float, high: float, kind: str) -> None:
    """Refuse float pixels outside [0, 1] (or NaN): clipping them would silently give a white or black image."""
    if not (-_UNIT_TOLERANCE <= low and high <= 1 + _UNIT_TOLERANCE):  # false for NaN too
        raise UnsupportedImageError(
            f"{kind} images must hold values in [0, 1], got {low:g} to {high:g}; "
            "divide 0-255 data by 255 (0-65535 data by 65535) first"
        )


def _to_tensor(array: np.ndarray) -> tuple[torch.Tensor, np.dtype]:
    """The pixels as a tensor, uint8 as they are (read as float tile by tile) and anything else as float
    in [0, 1], and the dtype to give back (any byte order: ``>u2`` holds uint16 values)."""
    native = array.dtype.newbyteorder("=")
    if native == np.uint8:  # never written to; a read-only array is copied only because torch asks
        return torch.from_numpy(array if array.flags.writeable else array.copy()), array.dtype
    if native == np.uint16:
        return torch.from_numpy(array.astype(np.float32) / 65535.0), array.dtype
    if np.issubdtype(array.dtype, np.floating):
        _check_unit_range(float(array.min()), float(array.max()), "numpy float")
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)), array.dtype
    raise UnsupportedImageError(f"numpy images must be uint8, uint16 or float in [0, 1], got {array.dtype}")


_STRIP_ROWS = 128
"""Rows of a whole float result converted to the output dtype at a time (small temporaries)."""


def _converting_writer(target: np.ndarray, grey: bool) -> TileWriter:
    """A ``write`` callback that stores each (1, C, h, w) float piece in [0, 1] (averaged to one channel
    when ``grey``) in HxWxC ``target`` at its box, converted to ``target``'s dtype by :func:`_from_unit`:
    bit for bit what converting the whole float image at once gives."""

    def write(box: tuple[int, int, int, int], piece: torch.Tensor) -> None:
        top, bottom, left, right = box
        if grey:
            piece = piece.mean(dim=1, keepdim=True)
        target[top:bottom, left:right] = _from_unit(piece[0].permute(1, 2, 0).numpy(), target.dtype)

    return write


def _write_in_strips(values: torch.Tensor, write: TileWriter) -> None:
    """Hand a whole (1, C, H, W) result (float in [0, 1], or uint8) to ``write`` as float,
    :data:`_STRIP_ROWS` rows at a time."""
    height, width = values.shape[-2:]
    for top in range(0, height, _STRIP_ROWS):
        bottom = min(top + _STRIP_ROWS, height)
        write((top, bottom, 0, width), as_unit(values[..., top:bottom, :]))


def _enhance_into(x: torch.Tensor, network: HFPIENet, strength: float, settings: Settings, colour_out: np.ndarray,
                  alpha_out: np.ndarray | None) -> None:
    """:func:`_enhance_tensor` of a (1, C, H, W) image (float in [0, 1], or uint8), written into
    ``colour_out`` (HxWx1 for grey, HxWx3) and ``alpha_out`` (HxW; when the image has alpha) in their dtype.

    One pass at strength 1 reads a uint8 input as float one tile at a time and converts each tile as it
    comes out of the network, so neither the input nor the output exists in float32 as a whole (peak
    memory: the image in 8 bits plus a working set, docs/speed.md); other strengths and ensembles work
    on the whole image in float and convert their result a few rows at a time."""
    colour, alpha, grey = _split_channels(x)
    scale = network.config.scale
    write = _converting_writer(colour_out, grey)
    if strength == 0 and scale == 1:
        _write_in_strips(x[:, : colour_out.shape[2]], _converting_writer(colour_out, False))  # the input as it is
    elif strength == 1 and settings.ensemble == 1:
        settings.run_into(network, colour, write)
    else:
        _write_in_strips(_restore_colour(network, as_unit(colour), strength, settings), write)
    if alpha is not None and alpha_out is not None:
        alpha = as_unit(alpha.cpu()).float()
        if scale != 1:
            alpha = F.interpolate(alpha, scale_factor=scale, mode="bicubic", align_corners=False).clamp_(0, 1)
        _write_in_strips(alpha, _converting_writer(alpha_out[..., None], False))


def _from_unit(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``x`` in [0, 1] as ``dtype`` (its byte order too)."""
    native = dtype.newbyteorder("=")
    if native == np.uint8:
        return np.round(np.clip(x, 0, 1) * 255.0).astype(dtype)
    if native == np.uint16:
        return np.round(np.clip(x, 0, 1) * 65535.0).astype(dtype)
    return x.astype(dtype)


def enhance_image_file(image: ImageFile, network: HFPIENet, *, strength: float = 1.0,
                       device: torch.device | str | None = None, tile: int | None = None,
                       halo: int | str | None = None, tile_batch: int | None = None, precision: str | None = None,
                       half: bool | None = None, progress: Callable[[int, int], None] | None = None,
                       ensemble: bool | int = False) -> ImageFile:
    """Enhance decoded file pixels (see :func:`hfpie.io.read_image`); keeps bit depth and metadata.

    ``strength`` as in :func:`enhance`, not range-checked here (see :func:`check_strength`);
    ``ensemble`` as in :func:`enhance`; the other settings as in :func:`hfpie.runner.run_network`.
    """
    settings = Settings(device, tile, halo, tile_batch, precision, half, progress, check_ensemble(ensemble))
    return _enhance_file(image, network, strength, settings)


def _enhance_file(image: ImageFile, network: HFPIENet, strength: float, settings: Settings) -> ImageFile:
    settings = settings.for_input(network, high_depth=image.bit_depth == 16)
    stack = [image.pixels] + ([image.alpha[..., None]] if image.alpha is not None else [])
    array = np.concatenate(stack, axis=2)  # 8 bits stay 8 bits: converted to float tile by tile
    if image.bit_depth == 16:
        array = array.astype(np.float32) / 65535.0
    x = torch.from_numpy(array).permute(2, 0, 1)[None]
    scale = network.config.scale
    height, width, channels = image.pixels.shape
    pixels = np.empty((height * scale, width * scale, channels), image.pixels.dtype)
    alpha = None if image.alpha is None else np.empty((height * scale, width * scale), image.pixels.dtype)
    _enhance_into(x, network, strength, settings, pixels, alpha)
    return image.with_pixels(pixels, alpha)


def resolve_network(task: str, scale: int, model: str | os.PathLike[str] | HFPIENet | None,
                    device: torch.device | str | None, *, revision: str | None = None) -> HFPIENet:
    """The network for ``task`` (a given module, a model name, path or Hub id, or the task's default)."""
    check_task(task)
    device = resolve_device(device)
    if isinstance(model, HFPIENet):
        network = model
    else:
        network = load_model(model if model is not None else task, scale=scale if task == "sr" else None,
                             device=device, revision=revision)
    expected = output_scale(task, scale)
    if network.config.scale != expected:
        raise ValueError(
            f"model {model or task!r} has scale {network.config.scale}, but task {task!r} "
            + (f"with scale={scale} needs a x{scale} model" if task == "sr" else "needs a scale-1 model")
        )
    return network


def sr_scale(scale: int | None, model: str | os.PathLike[str] | None, device: torch.device | str | None) -> int:
    """The SR factor of a batch: ``scale``, else the model's own, else 4; a pretrained scale that does not
    exist is refused (HfpieError naming the scales there are)."""
    if scale is None:
        return 4 if model is None else load_model(model, device=device).config.scale
    scales = sorted({entry.scale for entry in list_models() if entry.task == "sr"})
    if model is None and scales and scale not in scales:
        raise HfpieError(
            f"there is no pretrained x{scale} super-resolution model; the scales there are: "
            f"{', '.join(map(str, scales))} (or pass --model with a x{scale} checkpoint)"
        )
    return scale


def load_checked_network(task: str, scale: int | None, model: str | os.PathLike[str] | None,
                         device: torch.device | str | None) -> tuple[HFPIENet, torch.device]:
    """The network of a batch (the CLI's, Ray's) and the device to run it on, checked before any image
    is read: the scale as :func:`sr_scale` gives it, and weights holding NaN or inf refused as damaged."""
    resolved = resolve_device(device)
    network = resolve_network(task, sr_scale(scale, model, device) if task == "sr" else 1, model, device)
    if not all(bool(torch.isfinite(value).all()) for value in network.state_dict().values() if value.is_floating_point()):
        raise HfpieError(f"{model or task}: the weights hold NaN or infinite values, the file is damaged; "
                         "get or export it again")
    return network, next(network.parameters()).device if device is None else resolved


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
    precision: str | None = None,
    revision: str | None = None,
    strength: float = 1.0,
    ensemble: bool | int = False,
) -> Any:
    """Denoise, deblur or super-resolve an image.

    Args:
        image: a file path, a PIL image, a numpy array (HxW or HxWxC with C = 1, 2, 3 or 4; uint8,
            uint16 or float in [0, 1]) or a torch tensor (CxHxW or NxCxHxW, float in [0, 1]).
            Grey images are processed as RGB and returned grey; alpha is kept (resized for ``sr``);
            CMYK is converted to RGB (through its ICC profile when it has one). PIL mode ``I`` is
            taken only as opened from a file (16-bit); convert others to ``L`` or ``I;16`` first.
        task: ``"denoise"``, ``"deblur"`` or ``"sr"``.
        scale: super-resolution factor (``sr`` only).
        model: a bundled model name (``hfpie models``), a path to a ``.safetensors`` file / exported
            folder, a Hugging Face Hub repository ``"owner/repo"`` or ``"owner/repo@revision"``
            written by ``hfpie hub-export``, or an :class:`~hfpie.models.HFPIENet`; default: the
            task's default pretrained model.
        device: ``"cpu"``, ``"cuda"``, ``"mps"``...; default: the best available.
        tile: core side of tiles in input pixels; default: as large as the device's memory allows.
        half: the older switch for 16-bit inference (True: the device's 16-bit type, False: fp32);
            use ``precision``.
        progress: show a progress bar over tiles, or a callback ``f(done_pixels, total_pixels)``.
        halo: context around each tile: ``"exact"`` (the receptive radius: tiles give exactly the
            whole-image result), pixels, or None for the default cap (see :func:`run_network`).
        tile_batch: tiles run at once; default: as many as fit on CUDA, 1 on the CPU.
        precision: ``"auto"`` (default: bfloat16 on CPUs with AMX / AVX-512 BF16, float16 on CUDA,
            float32 elsewhere; 16-bit and float inputs stay float32 on the CPU), ``"fp32"``,
            ``"bf16"`` or ``"fp16"``.
        revision: branch, tag or commit of a Hub ``model`` (default: ``main``).
        strength: how much of the model's change to apply: 0 returns the input (bit for bit for
            8-bit, 16-bit and float32 images; for ``sr`` the input upscaled bicubically), 1 the
            model as trained, values between mix the two pixel by pixel. ``denoise`` takes up to 2
            for stronger denoising: the output mixed with a second pass over it (2: two passes, twice
            the time). :data:`MAX_STRENGTH` has each task's limit; measurements in docs/usage.md.
        ensemble: geometric self-ensemble (the "+" of EDSR+): ``True`` or 8 averages the outputs of
            the eight flips and rotations of the image, 4 of the four flips, 2 of the image and its
            mirror; ``False`` or 1 (the default) is one pass. Costs that many passes (and a float32
            copy of the output); gain per model in docs/usage.md (:mod:`hfpie.ensemble`).

    Returns:
        The same type as ``image``, same dtype and value range; for a path, a PIL image, except for
        16-bit colour files (and 16-bit grey with alpha), which no PIL mode holds: those give an
        HxWxC uint16 numpy array (RGB(A) order) so no bit is lost. ``sr`` output is exactly
        ``scale`` times the input size, restoration output the input size.

    Raises:
        UnsupportedImageError: float pixels outside [0, 1] (for instance 0-255 floats), NaN, or a
            layout or mode that cannot be kept.
        ValueError: a ``strength`` or ``ensemble`` out of range.
        DeviceNotAvailableError: a device that does not exist on this machine.
        NonFiniteOutputError: the network gave NaN or inf (damaged weights): nothing is returned.

    Example:
        >>> from hfpie import enhance                      # doctest: +SKIP
        >>> clean = enhance("noisy.png", task="denoise")  # doctest: +SKIP
        >>> clean.save("clean.png")                         # doctest: +SKIP
    """
    network = resolve_network(task, scale, model, device, revision=revision)
    strength = check_strength(task, strength)
    count = check_ensemble(ensemble)
    settings = Settings(device=device, tile=tile, halo=halo, tile_batch=tile_batch, precision=precision, half=half,
                        progress=_progress_callback(progress), ensemble=count)
    if isinstance(image, (str, os.PathLike)):
        return to_pil(_enhance_file(read_image(image), network, strength, settings))
    if isinstance(image, Image.Image):
        # Mode I is 8-bit data converted with .convert("I") or a 16-bit file: only a file's own image
        # (straight from Image.open, its format set) is known to be 16-bit; others are refused.
        depth = 16 if image.mode == "I" and image.format else None
        output = to_pil(_enhance_file(image_file_from_pil(image, "PIL image", bit_depth=depth), network, strength,
                                      settings))
        return output.convert("I") if image.mode == "I" else output
    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
            raise UnsupportedImageError(f"numpy images must be HxW or HxWxC with pixels, got shape {image.shape}")
        if image.ndim == 3 and image.shape[2] > 4 and image.shape[0] <= 4:
            raise UnsupportedImageError(f"numpy images are HxWxC, got shape {image.shape}, which looks channels-first "
                                        "(CxHxW); pass np.moveaxis(image, 0, -1)")
        pixels, dtype = _to_tensor(image)
        x = (pixels[..., None] if image.ndim == 2 else pixels).permute(2, 0, 1)[None]
        scale, channels = network.config.scale, x.shape[1]
        out = np.empty((x.shape[2] * scale, x.shape[3] * scale, channels), dtype)
        colour_channels = 1 if channels in (1, 2) else 3
        _enhance_into(x, network, strength, settings.for_input(network, high_depth=dtype != np.uint8),
                      out[..., :colour_channels], out[..., colour_channels] if channels in (2, 4) else None)
        return out[..., 0] if image.ndim == 2 else out
    if isinstance(image, torch.Tensor):
        if image.ndim not in (3, 4) or not image.is_floating_point() or image.numel() == 0:
            raise UnsupportedImageError(
                f"tensors must be float CxHxW or NxCxHxW in [0, 1] with pixels, got shape {tuple(image.shape)} "
                f"of {image.dtype}"
            )
        low, high = torch.aminmax(image.detach())
        _check_unit_range(float(low), float(high), "tensor")
        x = image[None] if image.ndim == 3 else image
        y = _enhance_tensor(x.detach(), network, strength, settings.for_input(network, high_depth=True))
        y = y.to(device=image.device, dtype=image.dtype)
        return y[0] if image.ndim == 3 else y
    raise TypeError(
        f"enhance() takes a path, PIL image, numpy array or torch tensor, not {type(image).__name__}"
    )
