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

from release import add_to_manifest

DATA = "BSDS400, Sun-Hays 80, LIVE1 and T91 (the GPU stages without LIVE1)"
FOLDERS = ["bsds400", "sun_hays80", "live1", "t91"]
"""The folders of ../shared/data/train these stages used (described on the cards: hfpie.export.TRAINING_FOLDERS)."""
H200 = "one NVIDIA H200 shared by 9 concurrent runs (round 1) / 3 runs (round 2) / 5 runs (round 3)"
ROUND3 = ("RUNS/gpu3 (scripts/train_gpu.sh, configs/gpu/*.toml with ../shared paths pointed at a data copy): "
          "hfpie train configs/gpu/{config} time_limit_s=420 {overrides} --run-dir RUNS/gpu3/{name}")

MODELS = {
    "denoise": dict(
        intended_use='Blind removal of white Gaussian-like noise (sigma 0-50 on the 0-255 scale) from 8-bit colour photos; the default of enhance(task="denoise").',
        limitations=['On CBSD68 it is 0.46/0.51/0.57 dB below FFDNet-Clip (which is told the true sigma) at sigma 15/25/50, and level with CDnCNN-B at sigma 25; see docs/model-zoo.md.', 'Real camera noise is spatially correlated and signal dependent: use denoise-real for phone and camera photos.'],
        task="denoise", weights="gpu3/denoise/final.safetensors",
        training_command=["hfpie train configs/denoise.toml --run-dir RUNS/denoise",
                          "hfpie train configs/gpu/denoise.toml time_limit_s=360 --run-dir RUNS/gpu1/denoise",
                          "hfpie train configs/gpu/denoise.toml time_limit_s=270 learning_rate=2e-4 "
                          "init_weights=RUNS/gpu1/denoise/final.safetensors --run-dir RUNS/gpu2/denoise",
                          ROUND3.format(config="denoise.toml", name="denoise", overrides=(
                              "init_weights=RUNS/gpu2/denoise/final.safetensors learning_rate=1e-4 lr_decay=0.5 "
                              "lr_decay_every=1000"))],
        steps={"cpu (batch 16, 64 px)": 7000, "gpu round 1 (batch 32, 96 px)": 1262, "gpu round 2": 2590,
               "gpu round 3": 2740},
        wall_time={"cpu_hours": 2.10, "cpu": "2-core CPU, 1 thread, beside another training run",
                   "gpu_seconds": 360 + 270 + 420, "gpu": H200}),
    "denoise-real": dict(
        intended_use='Camera noise in photos (phones, high-ISO shots, JPEG-compressed noisy images).',
        limitations=['It still changes clean photos a little: the clean CBSD68 images passed through it come out at 43.97 dB PSNR against the input (the AWGN model: 47.73 dB; the previous release: 37.82). It is the 50/50 blend of two fine-tunes: more of the clean-aware one (48.44 dB on clean photos) lowers PolyU to 36.78 dB, below the +1 dB bar.', 'Selected on 8 PolyU pairs during training and the blend weight chosen on all 100 pairs, so the reported PolyU number is not a fully independent test.'],
        task="denoise", default=False, weights="denoise-real-clean/blend-0.5.safetensors",
        training_command=["(from the CPU stage of denoise) hfpie train configs/gpu/denoise-real.toml "
                          "time_limit_s=360 --run-dir RUNS/gpu1/denoise-real",
                          "hfpie train configs/denoise-real-clean.toml "
                          "init_weights=RUNS/gpu1/denoise-real/best.safetensors --run-dir RUNS/denoise-real-clean",
                          "python scripts/blend_weights.py RUNS/gpu1/denoise-real/best.safetensors "
                          "RUNS/denoise-real-clean/final.safetensors --alpha 0.5 "
                          "-o RUNS/denoise-real-clean/blend-0.5.safetensors"],
        steps={"from denoise cpu stage": 7000, "gpu round 1 (batch 32, 96 px; best validation)": 1000,
               "cpu fine-tune, 25% clean samples (batch 16, 64 px)": 2573, "blend": "0.5 x each"},
        wall_time={"gpu_seconds": 360, "gpu": H200, "cpu_seconds": 2700,
                   "cpu": "2-core CPU, 1 thread, beside an evaluation job"}),
    "deblur": dict(
        intended_use='Mild to moderate Gaussian-like (defocus/optical) blur with small noise; the default of enhance(task="deblur").',
        limitations=["Misses the project's bar: +0.31 dB over a Wiener filter that is given the true kernel, 1.44 dB below PnP-FFDNet with the true kernel.", 'Camera-shake (motion) blur: its last stage saw synthetic shake kernels (35% of samples), but on the Levin et al. motion kernels it still lowers PSNR slightly (21.63 dB against 21.78 for the blurry input; see the metrics).'],
        task="deblur", weights="gpu3/deblur-motion/final.safetensors",
        training_command=["(from the CPU stage of denoise) hfpie train configs/gpu/deblur.toml time_limit_s=360 "
                          "--run-dir RUNS/gpu1/deblur",
                          "hfpie train configs/gpu/deblur.toml time_limit_s=270 learning_rate=2e-4 "
                          "init_weights=RUNS/gpu1/deblur/final.safetensors --run-dir RUNS/gpu2/deblur",
                          ROUND3.format(config="deblur.toml", name="deblur-motion", overrides=(
                              "init_weights=RUNS/gpu2/deblur/final.safetensors learning_rate=1e-4 lr_decay=0.7 "
                              "lr_decay_every=1000 degradation.motion_probability=0.35"))],
        steps={"from denoise cpu stage": 7000, "gpu round 1 (batch 32, 96 px)": 1256, "gpu round 2": 2563,
               "gpu round 3 (35% camera-shake kernels)": 2730},
        wall_time={"gpu_seconds": 360 + 270 + 420, "gpu": H200}),
    "sr-x4": dict(
        intended_use='x4 upscaling of clean (bicubic-like) low-resolution images, PSNR-oriented; the default of enhance(task="sr", scale=4).',
        limitations=["1.17 dB (Set5) / 0.77 dB (Set14) below CARN-M; faster than RFDN and IMDN on the project's CPU.", 'Expects clean input: denoise noisy or JPEG-compressed low-resolution images first.'],
        task="sr", weights="gpu3/sr-x4/final.safetensors",
        training_command=["hfpie train configs/sr-x4.toml --run-dir RUNS/sr-x4",
                          "hfpie train configs/gpu/sr-x4.toml time_limit_s=360 --run-dir RUNS/gpu1/sr-x4",
                          ROUND3.format(config="sr-x4.toml", name="sr-x4", overrides=(
                              "init_weights=RUNS/gpu1/sr-x4/final.safetensors learning_rate=1e-4 lr_decay=0.5 "
                              "lr_decay_every=1000"))],
        steps={"cpu (batch 16, 128 px HR)": 12000, "gpu round 1 (batch 32, 192 px HR)": 1696, "gpu round 3": 3741},
        wall_time={"cpu_hours": 2.25, "cpu": "2-core CPU, 1 thread, beside another training run",
                   "gpu_seconds": 360 + 420, "gpu": H200}),
    "sr-x2": dict(
        intended_use='x2 upscaling of clean (bicubic-like) low-resolution images; the default of enhance(task="sr", scale=2).',
        limitations=['0.56 dB (Set5) / 0.54 dB (Set14) below CARN-M; trained for about 10 minutes on a shared GPU.'],
        task="sr", weights="gpu2/sr-x2/final.safetensors",
        training_command=["(body from the CPU stage of sr-x4) hfpie train configs/gpu/sr-x2.toml time_limit_s=360 "
                          "--run-dir RUNS/gpu1/sr-x2",
                          "hfpie train configs/gpu/sr-x2.toml time_limit_s=270 learning_rate=2e-4 init_strict=true "
                          "init_weights=RUNS/gpu1/sr-x2/final.safetensors --run-dir RUNS/gpu2/sr-x2"],
        steps={"gpu round 1 (batch 32, 128 px HR)": 1637, "gpu round 2": 3275},
        wall_time={"gpu_seconds": 360 + 270, "gpu": H200}),
    "sr-x4-gan": dict(
        intended_use='Perceptual x4 upscaling (sharper textures than sr-x4 at a lower PSNR). Experimental.',
        limitations=['A short GAN fine-tune (2457 steps): sharper than sr-x4 (radial spectrum closer to the original) but far from the texture synthesis of long-trained perceptual models; on Set14 it still adds about twice the fine detail the original has in flat areas (flat_region_noise 2.2, original 1.0). Prefer sr-x4 where fidelity matters.', "LPIPS could not be computed on the project's machine (the lpips package and its weights are not installed)."],
        task="sr", default=False, weights="gpu3/gan-ema-low/final.safetensors",
        training_command=[ROUND3.format(config="sr-x4-gan.toml", name="gan-ema-low", overrides=(
            "init_weights=RUNS/gpu1/sr-x4/final.safetensors hpf_checkpoint=RUNS/hpf.safetensors learning_rate=5e-5 "
            "discriminator_learning_rate=5e-5 lr_decay=1.0 ema_decay=0.999 gan_weight=0.0025"))],
        steps={"gpu round 3 (batch 16, 128 px HR; L1 + HPF + soft GMS + relativistic GAN 0.0025; EMA 0.999)": 2457},
        wall_time={"gpu_seconds": 420, "gpu": H200}),
    "hpf": dict(
        intended_use='A training asset: the network of the high-pass filtering loss (hfpie.training.highpass), not an image restorer.',
        limitations=[],
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
        extra = {**spec, "training_folders": FOLDERS, "metrics": metrics.get(name, {})}
        entry = add_to_manifest(name, weights, task=task, default=default, preset="small" if task != "hpf" else "",
                                training_data=DATA, extra=extra)
        print(name, entry["sha256"][:12], entry["size"])


if __name__ == "__main__":
    main()
