"""``hfpie eval``: PSNR / SSIM (and timing) of a model on a validation folder, per image and mean.

Protocol (the same for every method; see ``../shared/peers/README.md``): 8-bit inputs made with the
``protocol_*`` degradations; restoration is scored on RGB, super-resolution on Y with
``crop_border = scale``. Both RGB and Y numbers are reported. LPIPS is added when the optional
``lpips`` package and its weights are available, else reported as not available.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..models import HFPIENet
from ..runner import run_network
from .datasets import ImageFolderPairs
from .metrics import lpips_distance, psnr, ssim

__all__ = ["ImageScore", "evaluate", "evaluate_folder", "format_report", "summarize", "uint8_restorer"]


@dataclass(frozen=True)
class ImageScore:
    name: str
    psnr_rgb: float
    ssim_rgb: float
    psnr_y: float
    ssim_y: float
    lpips: float | None
    seconds: float
    megapixels: float
    """Output megapixels."""


def uint8_restorer(network: HFPIENet, device: torch.device | str = "cpu", tile: int | None = None,
                   precision: str = "fp32") -> Callable[[np.ndarray], np.ndarray]:
    """``HxWx3`` uint8 in -> uint8 out through :func:`hfpie.runner.run_network` (the evaluation
    protocol: float32 unless asked, output rounded); shared by validation, ``hfpie eval`` and the
    benchmark runner."""
    def restore(degraded: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(degraded.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        y = run_network(network, x, device=device, tile=tile, precision=precision)
        return np.round(y[0].permute(1, 2, 0).numpy() * 255.0).astype(np.uint8)

    return restore


def evaluate(network: HFPIENet, pairs: ImageFolderPairs, *, crop_border: int = 0, y_channel: bool = False,
             max_images: int = 0, device: torch.device | str = "cpu") -> dict[str, float]:
    """Mean PSNR/SSIM of ``network`` on the first ``max_images`` validation pairs (0: all); what a
    training run validates with."""
    restore = uint8_restorer(network, device)
    scores_psnr, scores_ssim = [], []
    network.eval()
    for index, (_, degraded, clean) in enumerate(pairs):
        if max_images and index >= max_images:
            break
        output = restore(degraded)
        scores_psnr.append(psnr(output, clean, crop_border=crop_border, y_channel=y_channel))
        scores_ssim.append(ssim(output, clean, crop_border=crop_border, y_channel=y_channel))
    return {"psnr": float(np.mean(scores_psnr)), "ssim": float(np.mean(scores_ssim)), "images": len(scores_psnr)}


def evaluate_folder(
    model: HFPIENet | Callable[[np.ndarray], np.ndarray] | None,
    folder: str | Path,
    task: str,
    *,
    sigma: float | None = None,
    scale: int | None = None,
    max_images: int = 0,
    device: torch.device | str = "cpu",
    tile: int | None = None,
) -> list[ImageScore]:
    """Score ``model`` (a network, a uint8 -> uint8 callable, or None for the degraded input itself).

    For SR with ``model=None`` the input is upscaled with PIL bicubic (the usual baseline).
    """
    pairs = ImageFolderPairs(folder, task, sigma=sigma, scale=scale)
    border = scale if task == "sr" and scale else 0
    if isinstance(model, HFPIENet):
        restore = uint8_restorer(model, device, tile)
    elif model is None:
        restore = _identity_or_bicubic(task, scale)
    else:
        restore = model
    scores = []
    for index, (name, degraded, clean) in enumerate(pairs):
        if max_images and index >= max_images:
            break
        start = time.perf_counter()
        output = restore(degraded)
        seconds = time.perf_counter() - start
        if output.shape != clean.shape:
            raise ValueError(f"{name}: output shape {output.shape} differs from the reference {clean.shape}")
        scores.append(ImageScore(
            name=name,
            psnr_rgb=psnr(output, clean, crop_border=border),
            ssim_rgb=ssim(output, clean, crop_border=border),
            psnr_y=psnr(output, clean, crop_border=border, y_channel=True),
            ssim_y=ssim(output, clean, crop_border=border, y_channel=True),
            lpips=lpips_distance(output, clean),
            seconds=seconds,
            megapixels=output.shape[0] * output.shape[1] / 1e6,
        ))
    return scores


def _identity_or_bicubic(task: str, scale: int | None) -> Callable[[np.ndarray], np.ndarray]:
    if task != "sr":
        return lambda degraded: degraded
    from PIL import Image

    def bicubic(degraded: np.ndarray) -> np.ndarray:
        height, width = degraded.shape[:2]
        return np.asarray(Image.fromarray(degraded).resize((width * scale, height * scale), Image.BICUBIC))

    return bicubic


def summarize(scores: list[ImageScore]) -> dict[str, float | None]:
    """Means over images; seconds per megapixel = total seconds / total output megapixels."""
    if not scores:
        raise ValueError("no images were evaluated")
    lpips_values = [s.lpips for s in scores if s.lpips is not None]
    return {
        "images": len(scores),
        "psnr_rgb": float(np.mean([s.psnr_rgb for s in scores])),
        "ssim_rgb": float(np.mean([s.ssim_rgb for s in scores])),
        "psnr_y": float(np.mean([s.psnr_y for s in scores])),
        "ssim_y": float(np.mean([s.ssim_y for s in scores])),
        "lpips": float(np.mean(lpips_values)) if len(lpips_values) == len(scores) else None,
        "seconds_per_megapixel": sum(s.seconds for s in scores) / sum(s.megapixels for s in scores),
    }


def format_report(scores: list[ImageScore], kind: str = "markdown") -> str:
    """Per-image rows plus a mean row, as ``"markdown"`` or ``"csv"``; LPIPS 'n/a' when unavailable."""
    summary = summarize(scores)
    fields = list(asdict(scores[0]))
    rows = [asdict(s) for s in scores]
    rows.append({"name": "MEAN", **{k: v for k, v in summary.items() if k != "images"},
                 "seconds": sum(s.seconds for s in scores), "megapixels": sum(s.megapixels for s in scores)})

    def cell(value: object) -> str:
        if value is None:
            return "n/a"
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    if kind == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(fields)
        for row in rows:
            writer.writerow([cell(row.get(f)) for f in fields])
        return buffer.getvalue()
    lines = ["| " + " | ".join(fields) + " |", "|" + "---|" * len(fields)]
    lines += ["| " + " | ".join(cell(row.get(f)) for f in fields) + " |" for row in rows]
    return "\n".join(lines) + "\n"
