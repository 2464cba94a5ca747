#!/usr/bin/env python3
"""Run an hfpie model on a folder of 8-bit images, with the peer runners' calling convention.

usage: hfpie_runner.py INPUT_FOLDER OUTPUT_FOLDER --model NAME_OR_PATH --task {denoise,deblur,sr,denoise-real}
                       [--scale 4] [--tile N] [--precision fp32|bf16|auto] [--timings T.json]

Each image goes through :func:`hfpie.training.evaluation.uint8_restorer` (:func:`hfpie.runner.run_network`
on the CPU in ``--precision``, default fp32; ``auto`` is what users get: bf16 on CPUs with AMX /
AVX-512 BF16), exactly as ``hfpie eval`` and training validation do: pad to the network's multiple,
whole image when it fits in memory, else tiles with the default halo; output rounded to uint8. Only
that call (its conversions included) is timed; the model is loaded and warmed up first. torch keeps
its default number of threads.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import runner_common as io
from hfpie.runner import run_network
from hfpie.training.evaluation import uint8_restorer
from hfpie.hub import load_model
from hfpie.tasks import TRAINING_TASKS, output_scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--model", required=True, help="model name, task name or .safetensors path")
    parser.add_argument("--task", required=True, choices=TRAINING_TASKS)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--tile", type=int, default=None)
    parser.add_argument("--timings", default=None)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"])
    args = parser.parse_args()
    pairs = io.io_pairs(args.input, args.output)
    expected = output_scale(args.task, args.scale)
    network = load_model(args.model, scale=expected if args.model == "sr" else None, device="cpu")
    if network.config.scale != expected:
        raise SystemExit(f"model {args.model} has scale {network.config.scale}; task {args.task} needs {expected}")
    side = max(2 * network.config.alignment, 32)
    run_network(network, torch.rand(1, 3, side, side), device="cpu", precision=args.precision)  # warm-up
    restore = uint8_restorer(network, "cpu", args.tile, args.precision)
    timings = io.Timings(f"hfpie {args.model} ({args.precision})", args.timings)
    for source, target in pairs:
        pixels = io.read_u8(source)
        start = time.perf_counter()
        output = restore(pixels)
        seconds = time.perf_counter() - start
        io.write_u8(target, output)
        timings.add(source, seconds, output.shape)
    timings.finish()


if __name__ == "__main__":
    sys.exit(main())
