"""Training that continues across sessions, one model and one planned campaign at a time.

    python scripts/continual_training.py plan sr-x4 --blocks 6 4 8 --peak-lr 5e-4 --schedule-steps 80000 \
        --why "full-resolution RCABs won the 30-minute arms"     # once per campaign
    nohup python scripts/continual_training.py run --models sr-x4 --hours 2.3 &   # early in a session
    python scripts/continual_training.py finish --models sr-x4   # score, promote, save the state
    python scripts/continual_training.py curves                  # docs/training-curves.png + tables

A **campaign** is a model's training over several sessions under one plan: a shape (RCABs per scale;
the weights it starts from are grown into it, hfpie.training.grow), a cosine learning-rate
schedule from a peak rate down to about 1e-6 over ``schedule_steps``, the campaign's planned length,
and any changes to the training recipe the arms chose (``plan --set patch_size=96``, or an L2 finish
``--set l1_weight=0 mse_weight=1``).
Its position on that curve (``position``, steps done) lives in the committed state, so a resumed
session continues the same curve and a decayed rate is never carried into a new plan. A new plan
(``plan --replan``, e.g. after growing the network again) closes the running campaign and starts a
new curve; both stay in the state and in docs/training.md.

State (committed, small): ``training_state/<model>.json`` holds the model's history (steps, CPU
seconds, the campaigns, and per session the steps, rates, shape, validation and promotion scores) and
names the weights the next session starts from: the bundled weights when they were promoted, else
``training_state/<model>.safetensors`` (the EMA weights of the last session). Optimiser moments are
not kept (they would triple the size); each session restarts Adam, entering the curve through the
campaign's warm-up.

``run`` trains the named models (one, normally: the whole CPU on one model) in slices of
``--slice-minutes`` (so a session cut short still leaves a checkpoint), each slice resuming the
session's run folder (``--runs``, outside the repository) with its optimiser. The data seed is the
model's total step count at the start of the session, so every session sees new patches.

``finish`` scores each model's latest EMA weights and the bundled ones on the full promotion protocol
(below; for ``denoise-real`` the clean-photo check may not fall by more than 0.3 dB), copies the
better into ``src/hfpie/weights/`` and the manifest, advances the campaign and writes the state.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / "training_state"
CONFIGS = ROOT / "configs" / "continual"
WEIGHTS = ROOT / "src" / "hfpie" / "weights"
DATA = ROOT.parent / "shared" / "data"
MODELS = ("denoise", "sr-x4", "sr-x2", "deblur", "denoise-real")

# name -> (label, folder, task, kwargs, manifest dataset, manifest condition) whose mean PSNR decides
# promotion; the manifest's PSNR/SSIM rows of the same dataset and condition are replaced when promoted.
PROTOCOL = {
    "denoise": [(f"CBSD68 sigma {s}", "val/cbsd68", "denoise", {"sigma": s}, "CBSD68", f"AWGN sigma {s}")
                for s in (15, 25, 50)],
    "sr-x4": [(f"{n} x4 Y", f"val/{n.lower()}", "sr", {"scale": 4}, n, "x4 bicubic") for n in ("Set5", "Set14")],
    "sr-x2": [(f"{n} x2 Y", f"val/{n.lower()}", "sr", {"scale": 2}, n, "x2 bicubic") for n in ("Set5", "Set14")],
    "deblur": [("CBSD68 Gaussian 21x21 + sigma 2", "val/cbsd68", "deblur", {}, "CBSD68", "Gaussian 21x21 + sigma 2")],
    "denoise-real": [("PolyU real noise", "val/polyu_real_noise", "denoise-real", {}, "PolyU", "real camera noise")],
}
# name -> checks that must not fall by more than GUARD_DB (same fields).
GUARDS = {
    "denoise-real": [("CBSD68 clean photos (output vs input)", "val/cbsd68", "denoise", {"sigma": 0}, "CBSD68",
                      "clean input (no noise)")],
}
GUARD_DB = 0.3
CONTINUED = "; continued on the CPU on all of its training folders"
"""What a promoted model's training_data gains; its training_folders gain the continual config's folders
(the model cards list them: python scripts/model_cards.py)."""


def promotes(name: str, before: dict[str, float], after: dict[str, float]) -> bool:
    """Whether scores ``after`` replace ``before``: a higher mean, no set of the protocol lower (the weights
    issue: a promoted model never scores lower on the full protocol), no guard down by more than GUARD_DB."""
    return (after["mean"] > before["mean"]
            and all(after[label] >= before[label] for label, *_ in PROTOCOL[name])
            and all(after[label] >= before[label] - GUARD_DB for label, *_ in GUARDS.get(name, [])))


def load_state(name: str) -> dict:
    path = STATE / f"{name}.json"
    if path.exists():
        return json.loads(path.read_text())
    return {"model": name, "weights": f"src/hfpie/weights/{name}.safetensors", "steps": 0, "cpu_seconds": 0.0,
            "sessions": []}


def base_config(name: str, state: dict, minutes: float, threads: int | None):
    """The model's continual config starting from the state's weights, this session's data seed, no plan."""
    from hfpie.training.config import load_train_config

    return load_train_config(CONFIGS / f"{name}.toml").replace(
        init_weights=str(ROOT / state["weights"]), init_grow=True, seed=int(state["steps"]), steps=10_000_000,
        time_limit_s=minutes * 60.0, threads=threads)


def _session_config(name: str, state: dict, minutes: float, threads: int | None):
    """This session's training config: the model's continual config under its campaign's plan."""
    campaign = state.get("campaign")
    if not campaign:
        sys.exit(f"{name} has no campaign planned; plan one first, e.g. `python scripts/continual_training.py "
                 f"plan {name} --blocks 6 4 8 --peak-lr 5e-4 --schedule-steps 80000 --why ...`")
    left = campaign["schedule_steps"] - campaign["position"]
    if left <= 0:
        sys.exit(f"{name}: campaign {campaign['number']} has run its whole schedule ({campaign['schedule_steps']} "
                 f"steps); plan the next one with `python scripts/continual_training.py plan {name} ... --why ...`")
    config = base_config(name, state, minutes, threads)
    return config.replace(  # the run stops at the schedule's end: no steps at the floor rate after it
        model={**config.model, "num_blocks": tuple(campaign["blocks"]),
               **({"num_features": campaign["features"]} if "features" in campaign else {}),
               **campaign.get("network", {})},
        **_training_fields(campaign.get("train", {})),
        steps=left, lr_schedule="cosine",
        learning_rate=campaign["peak_lr"], min_learning_rate=campaign["min_lr"],
        warmup_steps=campaign["warmup_steps"], schedule_steps=campaign["schedule_steps"],
        schedule_start=campaign["position"])


# Fields a campaign sets itself (its shape, schedule and data seed): not open to ``plan --set``.
PLANNED_FIELDS = {"model", "preset", "task", "scale", "steps", "seed", "init_weights", "init_grow", "init_strict",
                  "time_limit_s", "threads", "lr_schedule", "learning_rate", "min_learning_rate", "warmup_steps",
                  "schedule_steps", "schedule_start", "lr_decay", "lr_decay_every"}


def _training_fields(train: dict) -> dict:
    """A campaign's training-recipe changes (``plan --set``, e.g. patch_size=96) as TrainConfig fields."""
    from hfpie.training.config import TrainConfig

    known = {field.name for field in dataclasses.fields(TrainConfig)} - PLANNED_FIELDS
    unknown = sorted(set(train) - known)
    if unknown:
        sys.exit(f"campaign training fields {unknown} are not open to `plan --set` (the plan's own options set the "
                 f"shape and schedule); open ones: {sorted(known)}")
    return {key: tuple(value) if isinstance(value, list) else value for key, value in train.items()}


def _schedule_done(name: str, run_dir: Path) -> bool:
    """Whether this session's run of ``name`` has reached the end of its campaign's schedule."""
    campaign = load_state(name).get("campaign")
    if not campaign or not (run_dir / "log.jsonl").exists():
        return False
    return _session_log(run_dir)["steps"] >= campaign["schedule_steps"] - campaign["position"]


def plan(args: argparse.Namespace) -> None:
    """Start a model's campaign (a new cosine from ``--peak-lr``, the shape ``--blocks`` / ``--features``)."""
    from hfpie.training.config import _parse_override

    (name,) = args.models
    state = load_state(name)
    train = dict(_parse_override(text) for text in args.set)
    base_config(name, state, 1.0, None).replace(**_training_fields(train))  # fails here, not in the first slice
    running = state.get("campaign")
    complete = running and running["position"] >= running["schedule_steps"]
    if running and not complete and not args.replan:
        sys.exit(f"{name} is in campaign {running['number']} (step {running['position']} of "
                 f"{running['schedule_steps']}); pass --replan to close it and start a new schedule")
    if running:
        state.setdefault("campaigns", []).append({**running, "ended": datetime.date.today().isoformat(),
                                                  "end": "schedule complete" if complete else "replanned: " + args.why})
    number = 1 + len(state.get("campaigns", []))
    state["campaign"] = {"number": number, "planned": datetime.date.today().isoformat(), "why": args.why,
                         "blocks": list(args.blocks), **({"features": args.features} if args.features else {}),
                         **({"network": dict(_parse_override(text) for text in args.network)} if args.network else {}),
                         **({"train": train} if train else {}),
                         "peak_lr": args.peak_lr, "min_lr": args.min_lr,
                         "warmup_steps": args.warmup_steps, "schedule_steps": args.schedule_steps,
                         "position": 0, "start_total_steps": int(state["steps"])}
    state.pop("learning_rate", None)  # a decayed rate is never carried into a new schedule
    STATE.mkdir(exist_ok=True)
    (STATE / f"{name}.json").write_text(json.dumps(state, indent=2) + "\n")
    print(f"{name}: campaign {number} planned: blocks {tuple(args.blocks)}"
          f"{f', {args.features} features' if args.features else ''}, cosine {args.peak_lr:g} -> "
          f"{args.min_lr:g} over {args.schedule_steps} steps (warm-up {args.warmup_steps})")


FAILURES_IN_A_ROW = 2  # a model whose slices fail this often in a row is dropped from the session


def run(args: argparse.Namespace) -> None:
    deadline = time.time() + args.hours * 3600
    names = list(args.models or MODELS)
    for name in names:  # a run folder left by an earlier session would be resumed, with its old optimiser
        saved, steps = args.runs / name / "config.json", int(load_state(name)["steps"])
        if saved.exists() and json.loads(saved.read_text()).get("seed") != steps:
            sys.exit(f"{saved.parent} holds a run of an earlier session (its seed is not the state's step count "
                     f"{steps}); move it away or pass another --runs folder")
    print(f"continual training of {', '.join(names)} until {time.ctime(deadline)}", flush=True)
    failed_in_a_row, given_up = dict.fromkeys(names, 0), []
    while names and time.time() + 60 < deadline:
        for name in list(names):
            if _schedule_done(name, args.runs / name):
                print(f"{name}: campaign schedule complete; `finish`, then plan the next campaign", flush=True)
                names.remove(name)
                continue
            left_min = (deadline - time.time()) / 60
            if left_min < 1:
                break
            minutes = min(args.slice_minutes, left_min)
            print(f"{time.strftime('%H:%M:%S')} {name}: slice of {minutes:.1f} min", flush=True)
            # One process per slice: a slice picks up code changed since the session started, and a
            # failed slice (logged) does not stop the other models.
            done = subprocess.run([sys.executable, __file__, "slice", "--runs", str(args.runs), "--models", name,
                                   "--minutes", str(minutes), "--threads", str(args.threads)])
            if not done.returncode:
                failed_in_a_row[name] = 0
                continue
            failed_in_a_row[name] += 1
            print(f"{name}: slice failed with exit status {done.returncode}", flush=True)
            if failed_in_a_row[name] >= FAILURES_IN_A_ROW:  # a broken setup: never spin through the session
                print(f"{name}: {FAILURES_IN_A_ROW} slices in a row failed; giving up on it", flush=True)
                names.remove(name)
                given_up.append(name)
    if given_up:
        sys.exit(f"slices of {', '.join(given_up)} failed {FAILURES_IN_A_ROW} times in a row (see the error above); "
                 "fix it and rerun `run` with the same --runs folder")


def train_slice(args: argparse.Namespace) -> None:
    from hfpie.training.trainer import train

    (name,) = args.models
    config = _session_config(name, load_state(name), args.minutes, args.threads)
    train(config, args.runs / name, resume=True, progress=False)


def _session_log(run_dir: Path) -> dict:
    """Steps, CPU seconds (sum of step times), last learning rate and validation of one session's run."""
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]
    steps_logged = [r for r in records if "step_time" in r]
    last_step = max((r["step"] for r in records), default=0)
    seconds, previous = 0.0, 0
    for record in steps_logged:
        seconds += record["step_time"] * (record["step"] - previous)
        previous = record["step"]
    val = [{"step": r["step"], "val_psnr": r["val_psnr"]} for r in records if "val_psnr" in r]
    return {"steps": last_step, "cpu_seconds": seconds, "val": val,
            "first_lr": steps_logged[0]["lr"] if steps_logged else None,
            "learning_rate": steps_logged[-1]["lr"] if steps_logged else None}


def score(name: str, weights: Path) -> dict[str, float]:
    from hfpie.hub import load_network
    from hfpie.training.evaluation import evaluate_folder, summarize

    network = load_network(weights).eval()
    result, ssim = {}, {}
    for label, folder, task, kwargs, *_ in PROTOCOL[name] + GUARDS.get(name, []):
        summary = summarize(evaluate_folder(network, DATA / folder, task, **kwargs))
        space = "y" if task == "sr" else "rgb"
        result[label], ssim[label] = summary[f"psnr_{space}"], summary[f"ssim_{space}"]
    result["mean"] = float(np.mean([result[label] for label, *_ in PROTOCOL[name]]))
    result["ssim"] = ssim
    return result


def updated_metrics(name: str, metrics: list[dict], psnr: dict, ssim: dict, *, same_shape: bool = True) -> list[dict]:
    """The manifest's metric rows with the PSNR/SSIM of the promotion protocol replaced by new scores;
    rows that depend on the weights but were not measured again (perceptual extras, other kernels) are
    dropped rather than left stale; speed rows stay only when the network keeps its shape."""
    measured = {(dataset, condition): label for label, _, _, _, dataset, condition in PROTOCOL[name] + GUARDS.get(name, [])}
    kept = []
    for row in metrics:
        label = measured.get((row.get("dataset"), row.get("condition")))
        if label is not None and row.get("metric", "").startswith("PSNR"):
            kept.append({**row, "value": round(psnr[label], 2)})
        elif label is not None and row.get("metric", "").startswith("SSIM"):
            kept.append({**row, "value": round(ssim[label], 4)})
        elif row.get("metric", "").startswith("s/MP") and same_shape:
            kept.append(row)
    return kept


def preset_of(weights: Path) -> str:
    """The name of the preset the network of ``weights`` is (any scale), or "custom"."""
    import dataclasses

    from hfpie.checkpoint import read_config
    from hfpie.models import PRESETS, HFPIEConfig

    config = HFPIEConfig.from_dict(read_config(weights)[1])
    return next((name for name, preset in PRESETS.items() if dataclasses.replace(preset, scale=config.scale) == config),
                "custom")


def finish(args: argparse.Namespace) -> None:
    import torch

    from release import add_to_manifest

    from hfpie.hub import load_network
    from hfpie.models import HFPIEConfig

    torch.set_num_threads(args.threads)

    STATE.mkdir(exist_ok=True)
    today = datetime.date.today().isoformat()
    for name in args.models or MODELS:
        run_dir = args.runs / name
        candidate = run_dir / "final.safetensors"
        if not candidate.exists():
            print(f"{name}: no run this session ({candidate} missing)")
            continue
        state = load_state(name)
        if not state.get("campaign"):
            sys.exit(f"{name}: no campaign planned, so the run cannot be placed on one; plan it first "
                     f"(`python scripts/continual_training.py plan {name} --blocks ... --peak-lr ... "
                     f"--schedule-steps ... --why ...`), then finish again")
        session = _session_log(run_dir)
        shipped = WEIGHTS / f"{name}.safetensors"
        before, after = score(name, shipped), score(name, candidate)
        promoted = promotes(name, before, after)
        before.pop("ssim")
        after_ssim = after.pop("ssim")  # the state keeps PSNR only; the manifest gets both
        campaign = state["campaign"]
        device = json.loads((run_dir / "config.json").read_text()).get("device", "cpu") if (run_dir / "config.json").exists() else "cpu"
        clock = "gpu_seconds" if str(device).startswith("cuda") else "cpu_seconds"  # a GPU loan's time is no CPU time
        state["steps"] += session["steps"]
        state[clock] = state.get(clock, 0.0) + session["cpu_seconds"]
        campaign["position"] += session["steps"]
        state["sessions"].append({"date": today, "steps": session["steps"], clock: round(session["cpu_seconds"]),
                                  **({"device": device} if clock == "gpu_seconds" else {}),
                                  "campaign": campaign["number"], "blocks": campaign["blocks"],
                                  **({"features": campaign["features"]} if "features" in campaign else {}),
                                  **({"network": campaign["network"]} if "network" in campaign else {}),
                                  **({"train": campaign["train"]} if "train" in campaign else {}),
                                  "position": campaign["position"], "lr_start": session["first_lr"],
                                  "lr_end": session["learning_rate"],
                                  "total_steps": state["steps"], "total_cpu_hours": round(state["cpu_seconds"] / 3600, 3),
                                  "val_during_training": session["val"], "bundled_before": before,
                                  "candidate": after, "promoted": promoted})
        if promoted:
            entry = json.loads((ROOT / "weights_manifest.json").read_text())["models"][name]
            steps = {**entry.get("steps", {}), "continued on the CPU (total)": state["steps"]}
            wall = {**entry.get("wall_time", {}), "continued_cpu_hours": round(state["cpu_seconds"] / 3600, 2)}
            extra = {k: v for k, v in entry.items() if k not in {"task", "scale", "default", "preset", "config", "repo_id",
                                                                 "filename", "revision", "sha256", "size", "license",
                                                                 "training_data"}}
            same_shape = load_network(candidate).config == HFPIEConfig.from_dict(entry["config"])  # defaults filled in
            extra.update(steps=steps, wall_time=wall, metrics=updated_metrics(name, entry.get("metrics", []), after,
                                                                               after_ssim, same_shape=same_shape))
            folders = [Path(folder).name for folder in base_config(name, state, 1, None).train_folders]
            extra["training_folders"] = list(dict.fromkeys([*entry.get("training_folders", []), *folders]))
            add_to_manifest(name, candidate, task=entry["task"], default=entry["default"], preset=preset_of(candidate),
                            training_data=entry["training_data"] if entry["training_data"].endswith(CONTINUED)
                            else entry["training_data"] + CONTINUED,
                            extra=extra)
            state["weights"] = f"src/hfpie/weights/{name}.safetensors"
            (STATE / f"{name}.safetensors").unlink(missing_ok=True)
        else:
            shutil.copyfile(candidate, STATE / f"{name}.safetensors")
            state["weights"] = f"training_state/{name}.safetensors"
        (STATE / f"{name}.json").write_text(json.dumps(state, indent=2) + "\n")
        print(f"{name}: bundled {before['mean']:.3f} dB, candidate {after['mean']:.3f} dB -> "
              f"{'promoted' if promoted else 'kept the bundled weights'}; {session['steps']} steps, "
              f"{session['cpu_seconds'] / 3600:.2f} {clock[:3].upper()} h", flush=True)


def _shape(record: dict) -> str:
    """RCABs per scale, the width when the campaign changed it, other network and training changes:
    ``(10, 4, 8)``, ``(10, 4, 8) x 48`` or ``(4, 4, 8) patch_size=96``."""
    network = " ".join(f"{key}={value}" for key, value in {**record.get("network", {}), **record.get("train", {})}.items())
    return (f"{tuple(record['blocks'])}" + (f" x {record['features']}" if "features" in record else "")
            + (f" {network}" if network else ""))


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:.2g}"


def curve_tables() -> str:
    """The markdown of docs/training.md's curves section: a campaign table and a session table."""
    campaigns = ["| model | campaign | shape (RCABs per scale) | schedule | steps done / planned | rate now | "
                 "protocol PSNR per session (dB) |", "|---|---|---|---|---|---|---|"]
    sessions = ["| model | session | campaign | shape | steps | total steps | total CPU h | rate start -> end | "
                "bundled before (dB) | candidate (dB) | promoted |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    from hfpie.training.config import TrainConfig
    from hfpie.training.schedule import rate_at

    for name in MODELS:
        state = load_state(name)
        plans = state.get("campaigns", []) + ([state["campaign"]] if state.get("campaign") else [])
        for plan in plans:
            scored = [s for s in state["sessions"] if s.get("campaign") == plan["number"]]
            schedule = TrainConfig(lr_schedule="cosine", learning_rate=plan["peak_lr"], min_learning_rate=plan["min_lr"],
                                   schedule_steps=plan["schedule_steps"])
            history = " -> ".join(f"{s['candidate']['mean']:.3f}" for s in scored) or "(none yet)"
            if scored:
                history = f"{scored[0]['bundled_before']['mean']:.3f} (start) -> " + history
            campaigns.append(f"| {name} | {plan['number']}{' (' + plan['end'].split(':')[0] + ')' if plan.get('end') else ''} | "
                             f"{_shape(plan)} | cosine {plan['peak_lr']:g} -> {plan['min_lr']:g}, warm-up "
                             f"{plan['warmup_steps']} | {plan['position']} / {plan['schedule_steps']} | "
                             f"{_rate(rate_at(plan['position'], schedule))} | {history} |")
        for number, s in enumerate(state["sessions"], 1):
            sessions.append(
                f"| {name} | {number} ({s['date']}) | {s.get('campaign', 'before campaigns')} | "
                f"{_shape(s) if 'blocks' in s else 'small'} | {s['steps']} | {s['total_steps']} | "
                f"{s['total_cpu_hours']:.2f} | {_rate(s['lr_start']) + ' -> ' + _rate(s['lr_end']) if 'lr_start' in s else 'step decay (x0.85 / 1000 steps), not logged'} | "
                f"{s['bundled_before']['mean']:.3f} | {s['candidate']['mean']:.3f} | {'yes' if s['promoted'] else 'no'} |")
    return "\n".join(campaigns) + "\n\n" + "\n".join(sessions) + "\n"


CURVES_START, CURVES_END = "<!-- curves: start (scripts/continual_training.py curves) -->", "<!-- curves: end -->"


def curves(args: argparse.Namespace) -> None:
    """Per model: validation PSNR against total steps (top) and CPU hours (bottom), with the shape and
    the rate of each session; the campaign and session tables replace docs/training.md's curves section."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, len(MODELS), figsize=(4.2 * len(MODELS), 6.4), squeeze=False)
    for column, name in enumerate(MODELS):
        state = load_state(name)
        steps_axis, hours_axis = axes[0][column], axes[1][column]
        # the validation during training (on fewer images) has its own right-hand axis
        twin = steps_axis.twinx() if any(s.get("campaign") for s in state["sessions"]) else None
        if state["sessions"]:
            before = state["sessions"][0]["bundled_before"]["mean"]
            steps_axis.plot([0], [before], "ks")
            hours_axis.plot([0.0], [before], "ks")
        for s in state["sessions"]:
            label = (f"{_shape(s)}, lr {_rate(s['lr_start'])}->{_rate(s['lr_end'])}" if "blocks" in s
                     else "small, step decay")
            marker = "o" if s["promoted"] else "x"
            steps_axis.plot([s["total_steps"]], [s["candidate"]["mean"]], marker, label=label)
            hours_axis.plot([s["total_cpu_hours"]], [s["candidate"]["mean"]], marker, label=label)
            if twin is not None and s.get("campaign"):
                start = s["total_steps"] - s["steps"]
                twin.plot([start + v["step"] for v in s["val_during_training"]],
                          [v["val_psnr"] for v in s["val_during_training"]], "-", color="0.6", linewidth=0.8)
                twin.set_ylabel("val during training (dB)", color="0.5")
        steps_axis.set_title(name)
        steps_axis.set_xlabel("total training steps")
        hours_axis.set_xlabel("total CPU hours of continued training")
        for axis in (steps_axis, hours_axis):
            axis.set_ylabel("protocol PSNR (dB)")
        if state["sessions"]:
            hours_axis.legend(fontsize=6, loc="lower right")
    figure.tight_layout()
    figure.savefig(args.output, dpi=110)
    tables = curve_tables()
    docs = ROOT / "docs" / "training.md"
    text = docs.read_text()
    if CURVES_START in text and CURVES_END in text:
        head, rest = text.split(CURVES_START, 1)
        text = head + CURVES_START + "\n" + tables + CURVES_END + rest.split(CURVES_END, 1)[1]
        docs.write_text(text)
    print(tables)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("plan", "run", "slice", "finish", "curves"):
        p = sub.add_parser(command)
        p.add_argument("--runs", type=Path, default=ROOT.parent / "runs" / "continual")
        if command == "plan":
            p.add_argument("models", nargs=1, choices=MODELS, metavar="MODEL")
            p.add_argument("--blocks", nargs="+", type=int, required=True, help="RCABs per scale, e.g. 6 4 8")
            p.add_argument("--features", type=int, default=None,
                           help="feature channels (grown exactly from the current width; default: unchanged)")
            p.add_argument("--peak-lr", type=float, required=True)
            p.add_argument("--min-lr", type=float, default=1e-6)
            p.add_argument("--warmup-steps", type=int, default=300)
            p.add_argument("--schedule-steps", type=int, required=True, help="the campaign's planned length")
            p.add_argument("--network", nargs="*", default=[], metavar="KEY=VALUE",
                           help="other network fields of the campaign, e.g. sr_tail=direct sr_tail_kernel=5")
            p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                           help="training-recipe fields of the campaign, e.g. patch_size=96 or l1_weight=0 mse_weight=1")
            p.add_argument("--why", required=True, help="the measurement the plan rests on")
            p.add_argument("--replan", action="store_true", help="close the running campaign first")
        else:
            p.add_argument("--models", nargs="*", default=None, choices=MODELS)
        if command == "run":
            p.add_argument("--hours", type=float, default=2.3)
            p.add_argument("--slice-minutes", type=float, default=12.0)
        if command in ("run", "slice", "finish"):
            p.add_argument("--threads", type=int, default=2)
        if command == "slice":
            p.add_argument("--minutes", type=float, required=True)
        if command == "curves":
            p.add_argument("--output", type=Path, default=ROOT / "docs" / "training-curves.png")
    args = parser.parse_args()
    {"plan": plan, "run": run, "slice": train_slice, "finish": finish, "curves": curves}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
