"""One device call that trains every model, for the sessions that are lent a GPU.

    python scripts/gpu_plan.py pack --out gpu_data               # here: a <= 56 MB copy of the data
    # device tool: run(command="PYTHONUNBUFFERED=1 python3 scripts/gpu_plan.py run --data-root gpu_data
    #                           --minutes 9 --out $OUT", carry=["gpu_data"], timeout_s=600)
    python scripts/gpu_plan.py unpack FILES_AT/results.tar --runs ../runs/gpu   # here, afterwards
    python scripts/continual_training.py finish --runs ../runs/gpu              # score and promote

``pack`` copies a share of every training folder (whole files, round robin over the folders, so
every kind of content is there) and the validation images the runs check, under a size budget: the
device call carries at most 64 MiB and ``../shared`` does not travel.

``run`` trains the models of ``configs/continual/`` one after another, each for an equal share of
``--minutes``, from the weights of ``training_state/`` (what the CPU sessions continue from), with
the images held on the GPU and degraded there (``data_pipeline = "tensor"``), larger batches and
patches, and bfloat16 autocast. It logs samples/s and the GPU's utilisation per model and writes
``$OUT/results.tar`` (each run's ``final.safetensors``, ``log.jsonl`` and ``config.json``: about
13 MB for five models; at most 8 files of 16 MiB come back from a call) and ``$OUT/plan.json``.
It runs on the CPU too (``--device cpu``), which is how it is tested.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from continual_training import MODELS, ROOT, _session_config, base_config, load_state  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
# Validation images the runs check during training (the first few of each set, as the configs ask).
VAL_SETS = {"cbsd68": 8, "set5": 5, "polyu_real_noise": 16}
# GPU overrides per model: batch and patch (HR pixels).
GPU_SHAPES = {"denoise": (32, 128), "denoise-real": (32, 128), "deblur": (32, 128), "sr-x2": (32, 192),
              "sr-x4": (32, 256)}


def pack(args: argparse.Namespace) -> None:
    budget = args.max_mb * 1e6
    out = args.out
    if out.exists():
        shutil.rmtree(out)
    used = 0
    for name, count in VAL_SETS.items():
        files = sorted(p for p in (SHARED / "val" / name).iterdir() if p.is_file())[:count]
        for file in files:
            target = out / "val" / name / file.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target)
            used += file.stat().st_size
    folders = sorted(p for p in (SHARED / "train").iterdir() if p.is_dir())
    queues = {folder: sorted(p for p in folder.rglob("*") if p.is_file()) for folder in folders}
    copied = {folder.name: 0 for folder in folders}
    while any(queues.values()):
        for folder, queue in queues.items():
            if not queue:
                continue
            file = queue.pop(0)
            size = file.stat().st_size
            if used + size > budget:
                queue.clear()
                continue
            target = out / "train" / folder.name / file.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target)
            used += size
            copied[folder.name] += 1
    print(json.dumps({"megabytes": round(used / 1e6, 1), "train_files": copied}, indent=1))


def _gpu_utilisation(device: str, samples: list[float], stop: threading.Event) -> None:
    """Sample the GPU's utilisation (percent) every second until ``stop`` is set."""
    import torch

    while not stop.wait(1.0):
        try:
            samples.append(float(torch.cuda.utilization(device)))
        except Exception:  # no pynvml: ask nvidia-smi
            try:
                text = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                      capture_output=True, text=True, timeout=5).stdout
                samples.append(float(text.split()[0]))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                return


def _config(name: str, data_root: Path, device: str, seconds: float, small: bool):
    state = load_state(name)
    # the CPU session's config (under the model's campaign: same shape, same cosine, GPU steps count on the
    # same curve), then the GPU's changes; a model with no campaign gets the paper's step schedule at 2e-4
    campaign = state.get("campaign")
    planned = bool(campaign) and campaign["position"] < campaign["schedule_steps"]  # a finished one: as unplanned
    config = (_session_config if planned else base_config)(name, state, seconds / 60, threads=None)

    def moved(folder: str) -> str:
        return str(data_root / Path(folder).relative_to("../shared/data"))

    batch, patch = (4, 32 * (config.scale if config.scale > 1 else 2)) if small else GPU_SHAPES[name]
    present = [moved(f) for f in config.train_folders if Path(moved(f)).is_dir()]
    overrides = {
        "train_folders": tuple(present), "val_folder": moved(config.val_folder), "device": device,
        "data_pipeline": "tensor", "batch_size": batch, "patch_size": patch,
        "seed": 1_000_000 + int(state["steps"]), "val_every": 10_000_000, "checkpoint_every": 500, "log_every": 20, "num_workers": 0, "threads": None,
    }
    if not planned:
        overrides.update(learning_rate=2e-4 if name != "denoise-real" else 1e-4, lr_decay_every=2000)
    return config.replace(**overrides)


def run(args: argparse.Namespace) -> None:
    import torch

    from hfpie.training.trainer import train

    runs = args.out / "runs"
    names = args.models or list(MODELS)
    seconds = args.minutes * 60 / len(names)
    summary = {"device": args.device, "models": {}}
    if args.device.startswith("cuda"):
        summary["gpu"] = torch.cuda.get_device_name(args.device)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    for name in names:
        config = _config(name, args.data_root, args.device, seconds, small=args.device == "cpu")
        samples: list[float] = []
        stop = threading.Event()
        watcher = None
        if args.device.startswith("cuda"):
            watcher = threading.Thread(target=_gpu_utilisation, args=(args.device, samples, stop), daemon=True)
            watcher.start()
        started = time.perf_counter()
        try:
            train(config, runs / name, progress=False)
            error = None
        except Exception as failure:  # one model failing must not cost the others their share
            error = f"{type(failure).__name__}: {failure}"
        wall = time.perf_counter() - started
        stop.set()
        records = [json.loads(line) for line in (runs / name / "log.jsonl").read_text().splitlines()] \
            if (runs / name / "log.jsonl").exists() else []
        timed = [r for r in records if "step_time" in r]
        steps = max((r["step"] for r in records), default=0)
        step_time = sum(r["step_time"] for r in timed) / len(timed) if timed else None
        summary["models"][name] = {
            "steps": steps, "wall_seconds": round(wall, 1), "batch": config.batch_size, "patch": config.patch_size,
            "samples_per_second": round(config.batch_size / step_time, 1) if step_time else None,
            "data_share": round(sum(r["data_time"] for r in timed) / max(sum(r["step_time"] for r in timed), 1e-9), 3)
            if timed else None,
            "gpu_utilisation_mean": round(sum(samples) / len(samples), 1) if samples else None,
            "val_psnr": [r["val_psnr"] for r in records if "val_psnr" in r], "error": error,
        }
        print(name, json.dumps(summary["models"][name]), flush=True)
    (args.out / "plan.json").write_text(json.dumps(summary, indent=2) + "\n")
    with tarfile.open(args.out / "results.tar", "w") as archive:
        for name in names:
            for file in ("final.safetensors", "log.jsonl", "config.json"):  # 16 MiB per file come back
                if (runs / name / file).exists():
                    archive.add(runs / name / file, arcname=f"{name}/{file}")
    shutil.rmtree(runs)  # only results.tar and plan.json come back


def unpack(args: argparse.Namespace) -> None:
    with tarfile.open(args.archive) as archive:
        archive.extractall(args.runs, filter="data")
    print(f"unpacked into {args.runs}; next: python scripts/continual_training.py finish --runs {args.runs}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--out", type=Path, default=ROOT / "gpu_data")
    p.add_argument("--max-mb", type=float, default=56.0)
    p = sub.add_parser("run")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data-root", type=Path, default=ROOT / "gpu_data")
    p.add_argument("--minutes", type=float, default=9.0)
    p.add_argument("--device", default="cuda")
    p.add_argument("--models", nargs="*", default=None, choices=MODELS)
    p = sub.add_parser("unpack")
    p.add_argument("archive", type=Path)
    p.add_argument("--runs", type=Path, default=ROOT.parent / "runs" / "gpu")
    args = parser.parse_args()
    {"pack": pack, "run": run, "unpack": unpack}[args.command](args)


if __name__ == "__main__":
    main()
