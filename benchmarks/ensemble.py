"""Gain and cost of the geometric self-ensemble (``enhance(..., ensemble=N)``) for every shipped model.

    python benchmarks/ensemble.py --max-images 10 --output docs/ensemble.json

On each model's validation set (the protocol of :class:`hfpie.training.datasets.ImageFolderPairs`:
CBSD68 with sigma 25 noise for ``denoise``, CBSD68 Gaussian blur for ``deblur``, PolyU for
``denoise-real``, Set5 and Set14 bicubic LR for ``sr-x2`` / ``sr-x4``) the first ``--max-images``
images go through ``enhance`` (uint8 in, uint8 out, default settings: what a user gets) once per
ensemble size 1, 2, 4 and 8. PSNR is scored as ``hfpie eval`` does (RGB for restoration, Y with a
``scale``-pixel border for SR); the time factor is the total seconds over those of one pass.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path

import torch

from hfpie import enhance
from hfpie.hub import load_model
from hfpie.precision import resolve_precision
from hfpie.training.evaluation import evaluate_folder, summarize

ROOT = Path(__file__).resolve().parents[1]
SIZES = (1, 2, 4, 8)
# label -> (model, task for enhance, validation folder, ImageFolderPairs task, its arguments)
CASES = {
    "denoise, CBSD68 sigma 25": ("denoise", "denoise", "cbsd68", "denoise", {"sigma": 25}),
    "denoise-real, PolyU": ("denoise-real", "denoise", "polyu_real_noise", "denoise-real", {}),
    "deblur, CBSD68 Gaussian": ("deblur", "deblur", "cbsd68", "deblur", {}),
    "sr-x2, Set5": ("sr-x2", "sr", "set5", "sr", {"scale": 2}),
    "sr-x2, Set14": ("sr-x2", "sr", "set14", "sr", {"scale": 2}),
    "sr-x4, Set5": ("sr-x4", "sr", "set5", "sr", {"scale": 4}),
    "sr-x4, Set14": ("sr-x4", "sr", "set14", "sr", {"scale": 4}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "val")
    parser.add_argument("--max-images", type=int, default=10, help="first images of each set (0: all)")
    parser.add_argument("--cases", nargs="*", default=None, help="labels of CASES to run (default: all)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for label, (name, task, folder, pairs_task, options) in CASES.items():
        if args.cases and label not in args.cases:
            continue
        network = load_model(name, device="cpu")
        scale = network.config.scale
        space = "y" if pairs_task == "sr" else "rgb"
        row: dict = {"case": label, "model": name, "scored_on": "Y, border" if space == "y" else "RGB"}
        for size in SIZES:
            def restore(degraded, size=size):
                return enhance(degraded, task=task, scale=scale, model=network, ensemble=size)

            restore(torch.zeros(32, 32, 3, dtype=torch.uint8).numpy())  # warm-up (oneDNN set-up)
            start = time.perf_counter()
            scores = evaluate_folder(restore, args.data / folder, pairs_task, max_images=args.max_images, **options)
            seconds = time.perf_counter() - start
            summary = summarize(scores)
            row[f"psnr_x{size}"] = summary[f"psnr_{space}"]
            row[f"seconds_x{size}"] = sum(score.seconds for score in scores)
            row["images"] = summary["images"]
            print(f"{label}: ensemble {size}: {summary[f'psnr_{space}']:.3f} dB, "
                  f"{row[f'seconds_x{size}']:.2f} s of enhance ({seconds:.1f} s with scoring)", flush=True)
        for size in SIZES[1:]:
            row[f"gain_x{size}_db"] = row[f"psnr_x{size}"] - row["psnr_x1"]
            row[f"time_factor_x{size}"] = row[f"seconds_x{size}"] / row["seconds_x1"]
        rows.append(row)
    print("\n| model, set (images) | one pass | x2 | x4 | x8 | time x2 / x4 / x8 |\n|---|---|---|---|---|---|")
    for row in rows:
        gains = " | ".join(f"{row[f'psnr_x{s}']:.2f} ({row[f'gain_x{s}_db']:+.2f})" for s in SIZES[1:])
        factors = " / ".join(f"{row[f'time_factor_x{s}']:.1f}" for s in SIZES[1:])
        print(f"| {row['case']} ({row['images']}) | {row['psnr_x1']:.2f} | {gains} | {factors} |")
    if args.output is not None:
        meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                "max_images": args.max_images, "precision": resolve_precision("auto", torch.device("cpu")),
                "threads": torch.get_num_threads(), "cpus": os.cpu_count()}
        args.output.write_text(json.dumps({"run": meta, "rows": rows}, indent=2) + "\n")
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
