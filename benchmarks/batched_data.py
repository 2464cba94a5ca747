#!/usr/bin/env python3
"""The tensor data pipeline (hfpie.training.batched) against the NumPy one: speed and fidelity.

    OMP_NUM_THREADS=1 python benchmarks/batched_data.py [--device cpu|cuda] [--batches 30] [--rounds 3]

1. Samples per second of training-data production, batch 16: ``PairedPatchDataset`` through
   ``measure_data_time`` (NumPy/OpenCV per sample, no workers) and ``DevicePatchBatches.batch``
   (tensor operations on ``--device``), alternated in ``--rounds`` rounds of ``--batches`` batches
   each so that both see the same machine load; the median round is reported. Images: one training
   folder, decoded once (not timed).
2. Bicubic: PSNR of ``batched_degradations.downscale_bicubic`` (rounded to 8 bits) against Pillow's
   ``BICUBIC`` resize in uint8 mode (the evaluation protocol) and in float mode (the NumPy training
   reference), and the largest difference in 8-bit levels, on the CBSD68, Set14 and Set5 images.
3. JPEG: PSNR of ``batched_degradations.add_jpeg`` against OpenCV's (``degradations.add_jpeg``), and
   the share of identical 8-bit values, on the CBSD68 images. Means leave out identical images (infinite PSNR).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from hfpie.training import batched_degradations as bd
from hfpie.training import degradations as deg
from hfpie.training.batched import DevicePatchBatches
from hfpie.training.datasets import PairedPatchDataset, list_images, measure_data_time, read_image
from hfpie.training.metrics import psnr

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TASKS = {  # name: (task, degradation options, patch size); deblur as configs/continual/deblur.toml
    "denoise": ("denoise", {"sigma_range": (0.0, 55.0)}, 64),
    "denoise-real": ("denoise-real", {"clean_probability": 0.25}, 64),
    "deblur": ("deblur", {"motion_probability": 0.35, "jpeg_probability": 0.2, "jpeg_quality_range": (70, 95)}, 96),
    "sr x4": ("sr", {"scale": 4}, 128),
}
BATCH_SIZE = 16


def mean_db(values: list[float]) -> float:
    """The mean of the finite PSNRs (identical images, at infinity, are left out)."""
    finite = [value for value in values if math.isfinite(value)]
    return float(np.mean(finite)) if finite else math.inf


def tensor_seconds_per_batch(batches: DevicePatchBatches, num_batches: int, first_block: int) -> float:
    batches.batch(first_block, BATCH_SIZE)  # warm-up
    synchronize = torch.cuda.synchronize if batches.device.type == "cuda" else (lambda: None)
    synchronize()
    start = time.perf_counter()
    for block in range(first_block + 1, first_block + 1 + num_batches):
        batches.batch(block, BATCH_SIZE)
    synchronize()
    return (time.perf_counter() - start) / num_batches


def measure_speed(folder: Path, device: str, num_batches: int, rounds: int) -> None:
    print(f"\nSamples/s, batch {BATCH_SIZE}, {torch.get_num_threads()} thread(s), images of {folder}, "
          f"tensor pipeline on {device}:\n")
    print("| task | patch (HR) | NumPy pipeline | tensor pipeline | tensor / NumPy |")
    print("|---|---|---|---|---|")
    for name, (task, options, patch) in TASKS.items():
        degradation = deg.make_degradation(task, **options)
        dataset = PairedPatchDataset(folder, degradation, patch, length=10**6)
        batches = DevicePatchBatches.from_dataset(dataset, device)
        numpy_rates, tensor_rates = [], []
        for round_index in range(rounds):
            numpy_rates.append(BATCH_SIZE / measure_data_time(dataset, BATCH_SIZE, num_batches))
            tensor_rates.append(
                BATCH_SIZE / tensor_seconds_per_batch(batches, num_batches, round_index * (num_batches + 1))
            )
        numpy_rate, tensor_rate = statistics.median(numpy_rates), statistics.median(tensor_rates)
        print(f"| {name} | {patch} | {numpy_rate:.0f} | {tensor_rate:.0f} | {tensor_rate / numpy_rate:.2f}x |",
              flush=True)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255.0


def to_uint8(image: torch.Tensor) -> np.ndarray:
    return np.round(image[0].permute(1, 2, 0).numpy() * 255.0).astype(np.uint8)


def measure_bicubic(folders: list[Path]) -> None:
    images = [read_image(path) for folder in folders for path in list_images(folder)]
    print(f"\nBicubic downscaling, {len(images)} images ({', '.join(folder.name for folder in folders)}): "
          "PSNR of the tensor version (8-bit) against Pillow:\n")
    print("| scale | vs Pillow uint8 (protocol): min / mean dB | identical values | largest difference "
          "| vs Pillow float (training): min / mean dB |")
    print("|---|---|---|---|---|")
    for scale in (2, 3, 4):
        protocol_psnr, identical, largest, training_psnr = [], [], 0, []
        for image in images:
            image = deg.crop_to_multiple(image, scale)
            result = to_uint8(bd.downscale_bicubic(to_tensor(image), scale))
            protocol = deg.downscale_bicubic(image, scale)
            training = deg.downscale_bicubic(image.astype(np.float32) / 255.0, scale)
            protocol_psnr.append(psnr(result, protocol))
            identical.append(np.mean(result == protocol))
            largest = max(largest, int(np.abs(result.astype(int) - protocol).max()))
            training_psnr.append(psnr(result, np.round(training * 255.0).astype(np.uint8)))
        print(f"| x{scale} | {min(protocol_psnr):.1f} / {mean_db(protocol_psnr):.1f} | "
              f"{100 * np.mean(identical):.2f} % | {largest} | "
              f"{min(training_psnr):.1f} / {mean_db(training_psnr):.1f} |", flush=True)


def measure_jpeg(folder: Path) -> None:
    images = [read_image(path) for path in list_images(folder)]
    print(f"\nJPEG, {len(images)} images of {folder.name}: the tensor version against OpenCV (libjpeg-turbo):\n")
    print("| quality | tensor vs OpenCV: min / mean dB | identical values | OpenCV vs original: mean dB |")
    print("|---|---|---|---|")
    for quality in (10, 30, 50, 70, 90, 95):
        agreement, identical, distortion = [], [], []
        for image in images:
            result = to_uint8(bd.add_jpeg(to_tensor(image), torch.tensor([quality])))
            reference = np.round(deg.add_jpeg(image, quality) * 255.0).astype(np.uint8)
            agreement.append(psnr(result, reference))
            identical.append(np.mean(result == reference))
            distortion.append(psnr(reference, image))
        print(f"| {quality} | {min(agreement):.1f} / {mean_db(agreement):.1f} | {100 * np.mean(identical):.1f} % | "
              f"{mean_db(distortion):.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--train-folder", type=Path, default=SHARED / "train" / "bsds400")
    parser.add_argument("--val", type=Path, default=SHARED / "val")
    parser.add_argument("--batches", type=int, default=30, help="batches per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["speed", "bicubic", "jpeg"], default=None)
    args = parser.parse_args()
    if args.only in (None, "speed"):
        measure_speed(args.train_folder, args.device, args.batches, args.rounds)
    if args.only in (None, "bicubic"):
        measure_bicubic([args.val / "cbsd68", args.val / "set14", args.val / "set5"])
    if args.only in (None, "jpeg"):
        measure_jpeg(args.val / "cbsd68")


if __name__ == "__main__":
    main()
