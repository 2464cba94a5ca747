"""CPU speed of the shipped models against image size, tiling and threads.

    python benchmarks/scaling.py --output docs/scaling.json [--megapixels 0.25 1 4 16]

Every measurement runs in a fresh process (so its peak resident memory, ``ru_maxrss``, is its own):
the model is loaded, warmed up on a 64x64 image, then ``hfpie.enhance`` runs once on a synthetic
photo-like image of the given *output* size (the SR input is scale^2 smaller) and the seconds of
that call are reported. ``enhance`` picks the tile size from the free memory (``tile=None``), so the
largest sizes are tiled and the others run whole; ``--tile`` rows force tiling to measure its
overhead and its difference from the whole-image output (default halo, and ``halo="exact"``).
``deblur`` and ``denoise-real`` share ``denoise``'s architecture, hence its speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _synthetic(height: int, width: int, seed: int = 0) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(seed)
    image = np.stack([128 + 80 * np.sin(x / 23 + c) * np.cos(y / 31 - c) for c in range(3)], axis=-1)
    image += rng.normal(0, 12, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def child(spec: dict) -> dict:
    """One measurement (runs in its own process)."""
    import torch

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    from hfpie import enhance
    from hfpie.hub import load_model

    network = load_model(spec["model"], device="cpu")
    scale = network.config.scale
    task = "sr" if scale > 1 else "denoise"
    side = int((spec["megapixels"] * 1e6) ** 0.5) // scale // 4 * 4
    image = _synthetic(side, side)
    precision = spec.get("precision", "auto")
    enhance(image[:64, :64], task=task, scale=scale, model=network, precision=precision)  # warm-up
    start = time.perf_counter()
    output = enhance(image, task=task, scale=scale, model=network, tile=spec.get("tile"), halo=spec.get("halo"),
                     precision=precision)
    seconds = time.perf_counter() - start
    result = {**spec, "input": f"{side}x{side}", "output_megapixels": (side * scale) ** 2 / 1e6,
              "seconds": seconds, "seconds_per_megapixel": seconds / ((side * scale) ** 2 / 1e6),
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "threads": torch.get_num_threads()}
    if spec.get("compare_whole"):
        whole = enhance(image, task=task, scale=scale, model=network, tile=max(image.shape) + 8, precision=precision)
        difference = np.abs(output.astype(np.int16) - whole.astype(np.int16))
        mse = float(np.mean(difference.astype(np.float64) ** 2))
        result["max_abs_diff_8bit"] = int(difference.max())
        result["psnr_vs_whole"] = float("inf") if mse == 0 else float(10 * np.log10(255**2 / mse))
    return result


def _run(spec: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    completed = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True,
                               text=True, env=env, check=False)
    if completed.returncode != 0:
        return {**spec, "error": completed.stderr.strip().splitlines()[-1] if completed.stderr else "failed"}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--models", nargs="*", default=["denoise", "sr-x2", "sr-x4"])
    parser.add_argument("--megapixels", nargs="*", type=float, default=[0.25, 1.0, 4.0, 16.0])
    parser.add_argument("--tile", type=int, default=256, help="forced tile side for the tiling rows")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="inference precision of every row (default: auto, what users get)")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None, help="PNG of s/MP and peak memory against size")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
               "python": platform.python_version(), "rows": []}

    def record(spec: dict) -> None:
        row = _run({**spec, "precision": args.precision})
        results["rows"].append(row)
        print(json.dumps(row), flush=True)
        if args.output:
            args.output.write_text(json.dumps(results, indent=2) + "\n")

    for model in args.models:
        for megapixels in args.megapixels:
            record({"kind": "size", "model": model, "megapixels": megapixels})
        record({"kind": "tiled", "model": model, "megapixels": 1.0, "tile": args.tile, "compare_whole": True})
        record({"kind": "tiled-exact", "model": model, "megapixels": 1.0, "tile": args.tile, "halo": "exact",
                "compare_whole": True})
    for threads in (1, 2):
        record({"kind": "threads", "model": args.models[0], "megapixels": 1.0, "threads": threads})
    if args.plot:
        plot(results["rows"], args.plot)


def plot(rows: list[dict], path: Path) -> None:
    """Two panels: seconds per megapixel and peak memory against output megapixels, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for model in dict.fromkeys(r["model"] for r in rows):
        sizes = [r for r in rows if r["model"] == model and r.get("kind") == "size" and "seconds" in r]
        x = [r["output_megapixels"] for r in sizes]
        left.plot(x, [r["seconds_per_megapixel"] for r in sizes], marker="o", label=model)
        right.plot(x, [r["peak_rss_mb"] for r in sizes], marker="o", label=model)
    for axis, label in ((left, "seconds per output megapixel"), (right, "peak resident memory (MB)")):
        axis.set_xscale("log")
        axis.set_xlabel("output megapixels")
        axis.set_ylabel(label)
        axis.grid(True, alpha=0.3)
        axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
