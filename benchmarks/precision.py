#!/usr/bin/env python3
"""bf16 against fp32 for every shipped model: output agreement, quality against the truth, speed.

    python benchmarks/precision.py [--max-images 20] [--json docs/precision.json]

For each model the validation protocol of docs/benchmarks.md is run twice through
:func:`hfpie.training.evaluation.uint8_restorer` on the CPU, once in ``fp32`` and once in ``bf16`` (the ``auto`` choice
on CPUs with AMX / AVX-512 BF16), alternating per image so that both see the same machine load.
Reported per model: PSNR of the 8-bit bf16 output against the 8-bit fp32 output (the bar: >= 50 dB),
the largest difference in 8-bit levels, the PSNR of each against the ground truth (bar: within
0.02 dB), and seconds per output megapixel of each (the sum over images; one warm-up first).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from hfpie.hub import load_manifest, load_model
from hfpie.precision import cpu_has_fast_bf16
from hfpie.training.datasets import ImageFolderPairs
from hfpie.training.evaluation import uint8_restorer
from hfpie.training.metrics import psnr

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "val"
CASES = {  # model -> (folder, task, protocol kwargs, label)
    "denoise": ("cbsd68", "denoise", {"sigma": 25}, "CBSD68 sigma 25"),
    "denoise-real": ("polyu_real_noise", "denoise-real", {}, "PolyU"),
    "deblur": ("cbsd68", "deblur", {}, "CBSD68 Gaussian blur"),
    "sr-x2": ("set14", "sr", {"scale": 2}, "Set14 x2"),
    "sr-x4": ("set14", "sr", {"scale": 4}, "Set14 x4"),
    "sr-x4-gan": ("set14", "sr", {"scale": 4}, "Set14 x4"),
}


def measure(name: str, max_images: int, data: Path) -> dict:
    folder, task, kwargs, label = CASES[name]
    pairs = ImageFolderPairs(data / folder, task, **kwargs)
    network = load_model(name, device="cpu")
    y_channel = task == "sr"
    border = kwargs.get("scale", 0)
    restorers = {precision: uint8_restorer(network, "cpu", precision=precision) for precision in ("fp32", "bf16")}
    for restore in restorers.values():  # warm-up
        restore(np.zeros((64, 64, 3), np.uint8))
    seconds = {"fp32": 0.0, "bf16": 0.0}
    truth = {"fp32": [], "bf16": []}
    agreement, worst, megapixels = [], 0, 0.0
    for index, (_, degraded, clean) in enumerate(pairs):
        if max_images and index >= max_images:
            break
        outputs = {}
        for precision in (("fp32", "bf16") if index % 2 == 0 else ("bf16", "fp32")):
            start = time.perf_counter()
            outputs[precision] = restorers[precision](degraded)
            seconds[precision] += time.perf_counter() - start
            truth[precision].append(psnr(outputs[precision], clean, crop_border=border, y_channel=y_channel))
        megapixels += clean.shape[0] * clean.shape[1] / 1e6
        agreement.append(psnr(outputs["bf16"], outputs["fp32"]))
        worst = max(worst, int(np.abs(outputs["bf16"].astype(int) - outputs["fp32"].astype(int)).max()))
    return {
        "model": name, "set": label, "images": len(agreement),
        "bf16_vs_fp32_psnr_min": float(np.min(agreement)), "bf16_vs_fp32_psnr_mean": float(np.mean(agreement)),
        "max_level_difference": worst,
        "psnr_fp32": float(np.mean(truth["fp32"])), "psnr_bf16": float(np.mean(truth["bf16"])),
        "s_per_mp_fp32": seconds["fp32"] / megapixels, "s_per_mp_bf16": seconds["bf16"] / megapixels,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--max-images", type=int, default=20)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    print(f"fast bf16 on this CPU: {cpu_has_fast_bf16()}, threads: {torch.get_num_threads()}")
    rows = []
    print("| model | set | images | bf16 vs fp32 PSNR (min / mean) | max diff (levels) | PSNR fp32 | PSNR bf16 | "
          "s/MP fp32 | s/MP bf16 | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        if name not in load_manifest():
            continue
        row = measure(name, args.max_images, args.data)
        rows.append(row)
        print(f"| {name} | {row['set']} | {row['images']} | {row['bf16_vs_fp32_psnr_min']:.2f} / "
              f"{row['bf16_vs_fp32_psnr_mean']:.2f} | {row['max_level_difference']} | {row['psnr_fp32']:.3f} | "
              f"{row['psnr_bf16']:.3f} | {row['s_per_mp_fp32']:.3f} | {row['s_per_mp_bf16']:.3f} | "
              f"{row['s_per_mp_fp32'] / row['s_per_mp_bf16']:.2f}x |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
