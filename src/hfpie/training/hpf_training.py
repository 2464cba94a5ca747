"""``hfpie train-hpf``: train the high-pass filtering loss network on clean image folders."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .datasets import PairedPatchDataset, list_images, read_image
from .highpass import DEFAULT_HIGHPASS_RADIUS, evaluate_highpass_net, save_highpass_net, train_highpass_net

__all__ = ["train_hpf_network"]


def _identity(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return clean


def train_hpf_network(folders: list[str], output: str | Path, *, steps: int = 3000, patch_size: int = 64,
                      batch_size: int = 16, val_folder: str | None = None, val_images: int = 8,
                      radius: float = DEFAULT_HIGHPASS_RADIUS, seed: int = 0) -> dict[str, Any]:
    """Train on random clean patches of ``folders``, report the fit on ``val_folder``, save safetensors.

    Returns the report (also stored in the checkpoint's metadata): training losses, and the PSNR
    and correlation of the network's output against the FFT high-pass target on validation images.
    """
    dataset = PairedPatchDataset(folders, _identity, patch_size, seed=seed, length=steps * batch_size)
    counter = iter(range(steps * batch_size * 4))

    def batch() -> torch.Tensor:
        return torch.stack([dataset[next(counter)][1] for _ in range(batch_size)])

    started = time.perf_counter()
    network, report = train_highpass_net(batch, steps=steps, radius=radius, seed=seed, batch_size=batch_size)
    report = {k: v for k, v in report.items() if isinstance(v, (int, float, str))}
    report["train_seconds"] = time.perf_counter() - started
    if val_folder:
        images = [torch.from_numpy(read_image(p).astype(np.float32) / 255.0).permute(2, 0, 1)[None]
                  for p in list_images(val_folder)[:val_images]]
        fits = [evaluate_highpass_net(network, image, radius=radius) for image in images]
        for key in fits[0]:
            report[f"val_{key}"] = float(np.mean([fit[key] for fit in fits]))
    save_highpass_net(network, output, {"report": report, "radius": radius, "steps": steps,
                                        "train_folders": [str(f) for f in folders]})
    return report
