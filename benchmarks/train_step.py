#!/usr/bin/env python3
"""Where a training step's time goes on this machine: data, forward, loss, backward, optimiser, EMA.

    python benchmarks/train_step.py [--steps 10] [--threads 2] [--blocks 10,4,8] [--json out.json]

For the shipped presets' CPU recipes (``small`` denoise: batch 16 of 64 px; ``small`` sr x4: batch 16
of 128 px HR; ``--blocks`` / ``--features`` / ``--sr-tail`` for another shape) it times each phase of the trainer's
step in three variants: fp32 contiguous (as training ran before), fp32 channels-last (what the trainer
runs on CPUs without fast bf16) and bf16 autocast with channels-last (what ``precision = "auto"``
picks on CPUs with AMX / AVX-512 BF16), alternating them per step so all see the same machine load. Data is the NumPy pipeline of the trainer
(:class:`hfpie.training.datasets.PairedPatchDataset`) on synthetic images, so it runs anywhere.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time

import numpy as np
import torch

from hfpie.models import HFPIENet, config_from_preset
from hfpie.precision import autocast
from hfpie.training.datasets import PairedPatchDataset
from hfpie.training.degradations import make_degradation
from hfpie.training.losses import l1_loss

RECIPES = {"denoise": ("denoise", 1, 64), "sr-x4": ("sr", 4, 128)}


def _images(folder, count: int = 12) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):  # smooth colour fields with edges: not pure noise
        base = rng.integers(0, 255, (12, 16, 3)).astype(np.uint8)
        Image.fromarray(base).resize((384, 288), Image.BICUBIC).save(folder / f"{index}.png")


VARIANTS = {"fp32": ("fp32", torch.contiguous_format), "fp32-cl": ("fp32", torch.channels_last),
            "bf16": ("bf16", torch.channels_last)}


def profile(name: str, steps: int, data_folder, *, blocks: tuple[int, ...] | None = None,
            features: int | None = None, sr_tail: str | None = None, variants: tuple[str, ...] = tuple(VARIANTS)) -> dict:
    task, scale, patch = RECIPES[name]
    degradation = make_degradation(task, **({"scale": scale} if task == "sr" else {}))
    dataset = PairedPatchDataset([str(data_folder)], degradation, patch, seed=0, length=10**6)
    torch.manual_seed(0)
    overrides = {k: v for k, v in (("num_blocks", blocks), ("num_features", features), ("sr_tail", sr_tail))
                 if v is not None}
    base = HFPIENet(dataclasses.replace(config_from_preset("small", scale=scale), **overrides))
    setups = {}
    for variant in variants:
        precision, memory_format = VARIANTS[variant]
        network = copy.deepcopy(base).to(memory_format=memory_format)  # as the trainer: CL on the CPU
        optimizer = torch.optim.Adam(network.parameters(), lr=1e-4)
        ema = torch.optim.swa_utils.AveragedModel(
            network, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.999))
        setups[variant] = (precision, network, optimizer, ema, memory_format)
    phases = ("data", "forward", "loss", "backward", "optimizer", "ema")
    times = {variant: {phase: [] for phase in phases} for variant in variants}

    def step(variant: str, index: int) -> dict[str, float]:
        precision, network, optimizer, ema, memory_format = setups[variant]
        marks = [time.perf_counter()]
        items = [dataset[index * 16 + i] for i in range(16)]
        degraded = torch.stack([a for a, _ in items]).contiguous(memory_format=memory_format)
        clean = torch.stack([b for _, b in items]).contiguous(memory_format=memory_format)
        marks.append(time.perf_counter())
        with autocast(precision, "cpu"):
            output = network(degraded)
        marks.append(time.perf_counter())
        loss = l1_loss(output.float(), clean)
        marks.append(time.perf_counter())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        marks.append(time.perf_counter())
        torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimizer.step()
        marks.append(time.perf_counter())
        ema.update_parameters(network)
        marks.append(time.perf_counter())
        return dict(zip(phases, np.diff(marks)))

    names = list(variants)
    for index in range(len(names) * (steps + 2)):
        variant = names[index % len(names)]
        result = step(variant, index)
        if index >= 2 * len(names):  # two warm-up steps each
            for phase, seconds in result.items():
                times[variant][phase].append(seconds)
    report = {}
    for variant, by_phase in times.items():
        medians = {phase: float(np.median(values)) for phase, values in by_phase.items()}
        medians["total"] = sum(medians.values())
        medians["samples_per_second"] = 16 / medians["total"]
        report[variant] = medians
    return report


def main() -> None:
    import tempfile
    from pathlib import Path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--blocks", type=lambda text: tuple(int(n) for n in text.split(",")), default=None,
                        help="RCABs per scale, e.g. 10,4,8 (default: the small preset's)")
    parser.add_argument("--features", type=int, default=None, help="feature channels (default: the preset's)")
    parser.add_argument("--sr-tail", choices=("progressive", "direct"), default=None)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="fp32 (contiguous), fp32-cl (channels-last), bf16 (autocast, channels-last)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = Path(tempfile.mkdtemp()) / "images"
    _images(folder)
    results = {}
    print("| recipe | variant | data | forward | loss | backward | optimiser | EMA | step | samples/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        results[name] = profile(name, args.steps, folder, blocks=args.blocks, features=args.features, sr_tail=args.sr_tail,
                                variants=tuple(args.variants))
        for variant, row in results[name].items():
            cells = " | ".join(f"{row[p] * 1000:.0f} ms" for p in ("data", "forward", "loss", "backward", "optimizer",
                                                                     "ema", "total"))
            print(f"| {name} | {variant} | {cells} | {row['samples_per_second']:.1f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
