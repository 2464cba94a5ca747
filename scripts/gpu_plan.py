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
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from continual_training import MODELS, ROOT, _session_config, base_config, load_state  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
# Validation images the runs check during training (the first few of each set, as the configs ask).
VAL_SETS = {"cbsd68": 8, "set5": 5, "polyu_real_noise": 16}
# What one device call carries (the working tree with the pack), and what the pack leaves spare.
CALL_LIMIT, MARGIN = 64 * 2**20, 3e6
# The jobs of the next GPU call (`run --plan` reads another).
PLAN = ROOT / "configs" / "gpu_plan.toml"
# GPU overrides per model: batch and patch (HR pixels).
GPU_SHAPES = {"denoise": (32, 128), "denoise-real": (32, 128), "deblur": (32, 128), "sr-x2": (32, 192),
              "sr-x4": (32, 256)}


def _travelling_bytes() -> int:
    """Bytes of the working tree that a device call sends besides the pack (tracked and untracked,
    not ignored, files)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.split(b"\0")
    return sum((ROOT / name.decode()).stat().st_size for name in listed if name and (ROOT / name.decode()).is_file())


def pack(args: argparse.Namespace) -> None:
    """A share of every training folder: the same bytes for each (its files in order, whole), so small
    images of one folder are not crowded out by a few large ones of another; what a folder leaves of
    its share goes to the others."""
    budget = (args.max_mb * 1e6) if args.max_mb else CALL_LIMIT - _travelling_bytes() - MARGIN
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
    chosen: dict[Path, list[Path]] = {folder: [] for folder in folders}
    left = budget - used
    open_folders = list(folders)
    while open_folders and left > 0:
        share = left / len(open_folders)
        for folder in list(open_folders):
            taken = 0
            queue = queues[folder]
            while queue and taken + queue[0].stat().st_size <= share:
                file = queue.pop(0)
                taken += file.stat().st_size
                chosen[folder].append(file)
            left -= taken
            if not queue or taken == 0:  # done, or its next file is larger than a share
                open_folders.remove(folder)
    for folder, files in chosen.items():
        for file in files:
            target = out / "train" / folder.name / file.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target)
            used += file.stat().st_size
    print(json.dumps({"megabytes": round(used / 1e6, 1), "budget_megabytes": round((budget) / 1e6, 1),
                      "train_files": {folder.name: len(files) for folder, files in chosen.items()}}, indent=1))


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


def _config(job: dict, data_root: Path, device: str, seconds: float, small: bool):
    """The training config of one job of the plan: the model's continual config from the weights of
    ``training_state/``, moved to the packed data and the device, then the job's schedule and changes.

    A job with ``campaign = true`` continues the model's CPU campaign (same shape, same cosine: the GPU
    steps count on the same curve). Any other job anneals within the call: a cosine from its
    ``learning_rate`` to 1e-6 over the call's training time (``lr_schedule = "cosine-time"``), so it ends
    annealed whatever the GPU's step rate turns out to be."""
    name = job["model"]
    state = load_state(name)
    campaign = state.get("campaign")
    planned = job.get("campaign", False)
    if planned and not (campaign and campaign["position"] < campaign["schedule_steps"]):
        raise SystemExit(f"job {job['name']}: {name} has no campaign with steps left to continue")
    config = (_session_config if planned else base_config)(name, state, seconds / 60, threads=None)

    def moved(folder: str) -> str:
        return str(data_root / Path(folder).relative_to("../shared/data"))

    batch, patch = (4, 32 * (config.scale if config.scale > 1 else 2)) if small else GPU_SHAPES[name]
    present = [moved(f) for f in config.train_folders if Path(moved(f)).is_dir()]
    overrides = {
        "train_folders": tuple(present), "val_folder": moved(config.val_folder), "device": device,
        "data_pipeline": "tensor", "batch_size": job.get("batch_size", batch), "patch_size": job.get("patch_size", patch),
        "seed": 1_000_000 + int(state["steps"]), "val_every": 10_000_000, "checkpoint_every": 500, "log_every": 20,
        "num_workers": 0, "threads": None,
    }
    if not planned:
        overrides.update(lr_schedule="cosine-time", learning_rate=job["learning_rate"], min_learning_rate=1e-6,
                         warmup_steps=job.get("warmup_steps", 100))
    # the shape of the weights it starts from (the continual config names the preset), then the job's changes
    from hfpie.checkpoint import read_config

    start = read_config(ROOT / state["weights"])[1]
    shape = {} if planned else {k: start[k] for k in ("num_blocks", "num_features", "sr_tail", "sr_tail_kernel")
                                if k in start}
    overrides["model"] = {**config.model, **shape, **job.get("network", {})}
    return config.replace(**overrides)


def _train(config, run_dir: Path) -> None:
    """One job, in its own process (spawned: CUDA does not survive a fork). Should the GPU-side data
    pipeline fail, the job goes on with the NumPy one for the time it has left, and says so."""
    import traceback

    import torch

    from hfpie.training.trainer import train

    torch.set_num_threads(2)  # the jobs share the host's cores; their work is on the device
    started = time.perf_counter()
    try:
        train(config, run_dir, progress=False)
    except Exception:
        traceback.print_exc()
        left = config.time_limit_s - (time.perf_counter() - started)
        if config.data_pipeline != "tensor" or left < 60:
            raise
        print(f"{run_dir.name}: retrying with data_pipeline=numpy for {left:.0f} s", flush=True)
        shutil.rmtree(run_dir, ignore_errors=True)
        train(config.replace(data_pipeline="numpy", num_workers=4, time_limit_s=left), run_dir, progress=False)


def _summary(model: str, config, run_dir: Path, wall: float, exit_code: int | None) -> dict:
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()] \
        if (run_dir / "log.jsonl").exists() else []
    timed = [r for r in records if "step_time" in r]
    steps = max((r["step"] for r in records), default=0)
    step_time = sum(r["step_time"] for r in timed) / len(timed) if timed else None
    return {
        "model": model, "steps": steps,
        "wall_seconds": round(wall, 1), "batch": config.batch_size, "patch": config.patch_size,
        "network": config.model, "peak_lr": config.learning_rate, "schedule": config.lr_schedule,
        "last_lr": timed[-1]["lr"] if timed else None,
        "samples_per_second": round(config.batch_size / step_time, 1) if step_time else None,
        "data_share": round(sum(r["data_time"] for r in timed) / max(sum(r["step_time"] for r in timed), 1e-9), 3)
        if timed else None,
        "val_psnr": [r["val_psnr"] for r in records if "val_psnr" in r],
        "error": None if exit_code == 0 else f"exit code {exit_code}",
    }


def load_plan(path: Path, models: list[str] | None = None) -> list[dict]:
    """The jobs of a plan (TOML), only those of ``models`` when given; their names must differ."""
    jobs = [job for job in tomllib.loads(path.read_text())["job"] if not models or job["model"] in models]
    names = [job["name"] for job in jobs]
    if len(set(names)) != len(names):
        raise SystemExit(f"{path}: two jobs share a name: {names}")
    return jobs


def run(args: argparse.Namespace) -> None:
    """Every job of the plan at once, one process each, on one device, for the same training time."""
    import multiprocessing

    import torch

    jobs = load_plan(args.plan, args.models)
    names = [job["name"] for job in jobs]
    seconds = args.minutes * 60
    runs = args.out / "runs"
    summary = {"device": args.device, "plan": str(args.plan), "training_seconds_per_job": seconds, "jobs": {}}
    if args.device.startswith("cuda"):
        summary["gpu"] = torch.cuda.get_device_name(args.device)
    configs = {job["name"]: _config(job, args.data_root, args.device, seconds, small=args.device == "cpu")
               for job in jobs}
    models = {job["name"]: job["model"] for job in jobs}
    context = multiprocessing.get_context("spawn")
    samples: list[float] = []
    stop = threading.Event()
    if args.device.startswith("cuda"):
        threading.Thread(target=_gpu_utilisation, args=(args.device, samples, stop), daemon=True).start()
    started = time.perf_counter()
    processes = {name: context.Process(target=_train, args=(config, runs / name)) for name, config in configs.items()}
    for process in processes.values():
        process.start()
    for name, process in processes.items():
        process.join()
        summary["jobs"][name] = _summary(models[name], configs[name], runs / name, time.perf_counter() - started, process.exitcode)
        print(name, json.dumps(summary["jobs"][name]), flush=True)
    stop.set()
    summary["gpu_utilisation_mean"] = round(sum(samples) / len(samples), 1) if samples else None
    (args.out / "plan.json").write_text(json.dumps(summary, indent=2) + "\n")
    # at most 8 files of 16 MiB come back from a device call: the runs go in archives of at most 15 MB
    archives: list[list[Path]] = []
    size = 0.0
    for name in names:
        files = [runs / name / f for f in ("final.safetensors", "log.jsonl", "config.json") if (runs / name / f).exists()]
        job_size = sum(f.stat().st_size for f in files)
        if not archives or size + job_size > 15e6:
            archives.append([])
            size = 0.0
        archives[-1].extend(files)
        size += job_size
    if len(archives) > 7:
        print(f"warning: {len(archives)} archives; only 7 come back with plan.json", flush=True)
    for index, group in enumerate(archives):
        with tarfile.open(args.out / f"results-{index}.tar", "w") as archive:
            for file in group:
                archive.add(file, arcname=file.relative_to(runs).as_posix())
    shutil.rmtree(runs)  # only the archives and plan.json come back


def unpack(args: argparse.Namespace) -> None:
    for path in args.archives:
        with tarfile.open(path) as archive:
            archive.extractall(args.runs, filter="data")
    print(f"unpacked into {args.runs}; next: score the jobs, then `continual_training.py finish` on the chosen ones")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--out", type=Path, default=ROOT / "gpu_data")
    p.add_argument("--max-mb", type=float, default=None,
                   help="size of the pack; by default what a device call carries less the working tree")
    p = sub.add_parser("run")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--plan", type=Path, default=PLAN, help="the jobs (TOML)")
    p.add_argument("--data-root", type=Path, default=ROOT / "gpu_data")
    p.add_argument("--minutes", type=float, default=7.0, help="training minutes of every job (all run at once)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--models", nargs="*", default=None, choices=MODELS, help="only the jobs of these models")
    p = sub.add_parser("unpack")
    p.add_argument("archives", type=Path, nargs="+")
    p.add_argument("--runs", type=Path, default=ROOT.parent / "runs" / "gpu")
    args = parser.parse_args()
    {"pack": pack, "run": run, "unpack": unpack}[args.command](args)


if __name__ == "__main__":
    main()
