#!/usr/bin/env python3
"""How the real-noise training degradation compares with PolyU's camera noise: level and correlation.

    python benchmarks/noise_stats.py [--pairs 30] [--draws 10]

For PolyU (noisy minus the mean of many frames) and for ``RealNoiseDegradation`` drawn on a PolyU clean
image with and without demosaicing and JPEG: the noise's standard deviation (8-bit levels), the
correlation of horizontally adjacent values (spatial correlation, averaged over channels) and the
correlation between the R and G noise (cross-channel). Needs ``../shared/data/val/polyu_real_noise``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from hfpie.training.degradations import RealNoiseDegradation

POLYU = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "val" / "polyu_real_noise"


def statistics(noise: np.ndarray) -> tuple[float, float, float]:
    """(std in 8-bit levels, neighbour correlation, R-G correlation) of ``(H, W, 3)`` noise."""
    neighbour = np.mean([np.corrcoef(noise[:, :-1, c].ravel(), noise[:, 1:, c].ravel())[0, 1] for c in range(3)])
    cross = np.corrcoef(noise[..., 0].ravel(), noise[..., 1].ravel())[0, 1]
    return 255 * float(noise.std()), float(neighbour), float(cross)


def mean_of(noisy: Path) -> Path:
    """The clean image (mean of many frames) of a PolyU ``*_real.JPG``."""
    return noisy.with_name(noisy.name.replace("_real.JPG", "_mean.JPG"))


def read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--draws", type=int, default=10)
    args = parser.parse_args()
    noisy_files = sorted(POLYU.glob("*_real.JPG"))[: args.pairs]
    if not noisy_files:
        raise SystemExit(f"no PolyU pairs under {POLYU}")
    rows = [("PolyU camera noise", np.mean([statistics(read(f) - read(mean_of(f))) for f in noisy_files], axis=0))]
    clean = read(mean_of(noisy_files[0]))
    for demosaic in (0.0, 1.0):
        for jpeg in (0.0, 1.0):
            degradation = RealNoiseDegradation(demosaic_probability=demosaic, jpeg_probability=jpeg)
            values = [statistics(degradation(clean, np.random.default_rng(i)) - clean) for i in range(args.draws)]
            rows.append((f"synthetic, demosaic {demosaic:g}, JPEG {jpeg:g}", np.mean(values, axis=0)))
    print("| noise | std (8-bit levels) | neighbour correlation | R-G correlation |\n|---|---|---|---|")
    for name, (std, neighbour, cross) in rows:
        print(f"| {name} | {std:.2f} | {neighbour:.3f} | {cross:.3f} |")


if __name__ == "__main__":
    main()
