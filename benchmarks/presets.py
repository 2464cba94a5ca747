#!/usr/bin/env python3
"""Seconds per output megapixel of every network preset on this CPU, fp32 and ``auto`` (bf16 where the
CPU has it), for choosing model sizes against the speed bars (random weights: speed does not depend on
the values).

    python benchmarks/presets.py [--megapixels 0.5] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from hfpie.models import PRESETS, HFPIENet, config_from_preset, optimize_for_inference
from hfpie.runner import run_network


def seconds_per_megapixel(network: HFPIENet, side: int, precision: str, repeats: int = 3) -> float:
    image = torch.rand(1, 3, side, side)
    run_network(network, image, device="cpu", precision=precision)  # warm-up: oneDNN set-up for this size
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run_network(network, image, device="cpu", precision=precision)
        best = min(best, time.perf_counter() - start)
    return best / ((side * network.config.scale) ** 2 / 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megapixels", type=float, default=0.5, help="output size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| preset | scale | parameters | s/MP fp32 | s/MP auto | speed-up |\n|---|---|---|---|---|---|")
    for preset in args.presets:
        for scale in (1, 2, 4):
            network = optimize_for_inference(HFPIENet(config_from_preset(preset, scale=scale)).eval())
            side = int((args.megapixels * 1e6) ** 0.5) // scale // 8 * 8
            fp32 = seconds_per_megapixel(network, side, "fp32")
            auto = seconds_per_megapixel(network, side, "auto")
            parameters = sum(p.numel() for p in network.parameters()) / 1e6
            print(f"| {preset} | x{scale} | {parameters:.2f} M | {fp32:.3f} | {auto:.3f} | {fp32 / auto:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
