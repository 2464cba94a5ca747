"""Bundle the trained weights of this release and write their manifest entries (provenance + metrics).

    python scripts/release_models.py RUNS [--metrics docs/benchmarks.json]

RUNS is the folder holding the run folders below (CPU runs at RUNS/<name>, the two GPU rounds at
RUNS/gpu1/<name> and RUNS/gpu2/<name>). ``--metrics`` takes the JSON that ``benchmarks/run.py --json``
wrote and copies each model's measured PSNR/SSIM and seconds per megapixel into its entry.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hfpie.training.release import add_to_manifest

DATA = ("../shared/data/train: BSDS400 (BSDS500 train+val minus the 100 BSD100 test images, so no CBSD68), "
        "Sun-Hays 80, LIVE1 (29), T91; GPU stages without LIVE1")
H200 = "one NVIDIA H200 shared by 9 concurrent runs (round 1) / 3 runs (round 2)"

MODELS = {
    "denoise": dict(
        task="denoise", weights="gpu2/denoise/final.safetensors",
        training_command=["hfpie train configs/denoise.toml --run-dir RUNS/denoise",
                          "hfpie train configs/gpu/denoise.toml time_limit_s=360 --run-dir RUNS/gpu1/denoise",
                          "hfpie train configs/gpu/denoise.toml time_limit_s=270 learning_rate=2e-4 "
                          "init_weights=RUNS/gpu1/denoise/final.safetensors --run-dir RUNS/gpu2/denoise"],
        steps={"cpu (batch 16, 64 px)": 7000, "gpu round 1 (batch 32, 96 px)": 1262, "gpu round 2": 2590},
        wall_time={"cpu_hours": 2.10, "cpu": "2-core CPU, 1 thread, beside another training run",
                   "gpu_seconds": 360 + 270, "gpu": H200}),
    "denoise-real": dict(
        task="denoise", default=False, weights="gpu1/denoise-real/best.safetensors",
        training_command=["(from the CPU stage of denoise) hfpie train configs/gpu/denoise-real.toml "
                          "time_limit_s=360 --run-dir RUNS/gpu1/denoise-real"],
        steps={"from denoise cpu stage": 7000, "gpu round 1 (batch 32, 96 px; best validation)": 1000},
        wall_time={"gpu_seconds": 360, "gpu": H200}),
    "deblur": dict(
        task="deblur", weights="gpu2/deblur/final.safetensors",
        training_command=["(from the CPU stage of denoise) hfpie train configs/gpu/deblur.toml time_limit_s=360 "
                          "--run-dir RUNS/gpu1/deblur",
                          "hfpie train configs/gpu/deblur.toml time_limit_s=270 learning_rate=2e-4 "
                          "init_weights=RUNS/gpu1/deblur/final.safetensors --run-dir RUNS/gpu2/deblur"],
        steps={"from denoise cpu stage": 7000, "gpu round 1 (batch 32, 96 px)": 1256, "gpu round 2": 2563},
        wall_time={"gpu_seconds": 360 + 270, "gpu": H200}),
    "sr-x4": dict(
        task="sr", weights="gpu1/sr-x4/final.safetensors",
        training_command=["hfpie train configs/sr-x4.toml --run-dir RUNS/sr-x4",
                          "hfpie train configs/gpu/sr-x4.toml time_limit_s=360 --run-dir RUNS/gpu1/sr-x4"],
        steps={"cpu (batch 16, 128 px HR)": 12000, "gpu round 1 (batch 32, 192 px HR)": 1696},
        wall_time={"cpu_hours": 2.25, "cpu": "2-core CPU, 1 thread, beside another training run",
                   "gpu_seconds": 360, "gpu": H200}),
    "sr-x2": dict(
        task="sr", weights="gpu2/sr-x2/final.safetensors",
        training_command=["(body from the CPU stage of sr-x4) hfpie train configs/gpu/sr-x2.toml time_limit_s=360 "
                          "--run-dir RUNS/gpu1/sr-x2",
                          "hfpie train configs/gpu/sr-x2.toml time_limit_s=270 learning_rate=2e-4 init_strict=true "
                          "init_weights=RUNS/gpu1/sr-x2/final.safetensors --run-dir RUNS/gpu2/sr-x2"],
        steps={"gpu round 1 (batch 32, 128 px HR)": 1637, "gpu round 2": 3275},
        wall_time={"gpu_seconds": 360 + 270, "gpu": H200}),
    "sr-x4-gan": dict(
        task="sr", default=False, weights="gpu1/sr-x4-gan/final.safetensors",
        training_command=["(from the CPU stage of sr-x4) hfpie train configs/gpu/sr-x4-gan.toml time_limit_s=360 "
                          "--run-dir RUNS/gpu1/sr-x4-gan"],
        steps={"gpu round 1 (batch 16, 128 px HR; L1 + HPF + soft GMS + relativistic GAN 0.005)": 1135},
        wall_time={"gpu_seconds": 360, "gpu": H200}),
    "hpf": dict(
        task="hpf", weights="hpf.safetensors",
        training_command=["hfpie train-hpf ../shared/data/train/bsds400 ... -o RUNS/hpf.safetensors --steps 3000"],
        steps={"cpu": 3000}, wall_time={"cpu_seconds": 1102}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path)
    parser.add_argument("--metrics", type=Path, default=None)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    metrics = json.loads(args.metrics.read_text()) if args.metrics else {}
    for name, spec in MODELS.items():
        if args.only and name not in args.only:
            continue
        spec = dict(spec)
        weights = args.runs / spec.pop("weights")
        task, default = spec.pop("task"), spec.pop("default", True)
        extra = {**spec, "metrics": metrics.get(name, {})}
        entry = add_to_manifest(name, weights, task=task, default=default, preset="small" if task != "hpf" else "",
                                training_data=DATA, extra=extra)
        print(name, entry["sha256"][:12], entry["size"])


if __name__ == "__main__":
    main()
