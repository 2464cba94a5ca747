"""Model size chosen by measurement: PSNR at equal CPU time against inference speed.

    python scripts/size_sweep.py sr-x4 --blocks 2,4,8 2,6,16 2,8,32 --minutes 20

Each variant starts from the model's continued-training weights (``training_state/<model>.json``),
deepened to ``--blocks`` RCABs per scale with new blocks that start as identities
(hfpie.training.grow), so every variant starts from the same outputs. Each then trains for the same
wall-clock minutes with the same data, seed and learning rate as ``continual_training.py``, on an
otherwise idle machine, one variant at a time. A variant whose run folder already holds
``final.safetensors`` is scored without training again (``--runs`` may point one variant at an
existing continual run). Per variant: steps, step time, the promotion protocol's PSNR, and the
inference speed (s/MP of output, ``precision="auto"``, whole 512x512 output, best of 3 as benchmarks/presets.py).

Results go to ``docs/size-sweep.json`` (merged by model) and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path, PureWindowsPath

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from continual_training import PROTOCOL, ROOT, _session_config, _session_log, base_config, load_state, score  # noqa: E402
from presets import seconds_per_megapixel as preset_speed  # noqa: E402  (benchmarks/presets.py)

from hfpie.checkpoint import read_config  # noqa: E402

OUTPUT = ROOT / "docs" / "size-sweep.json"


def seconds_per_megapixel(weights: Path) -> float:
    """Inference s/MP of output of ``weights`` as users get them (folded, channels-last), ``precision="auto"``."""
    from hfpie.hub import load_model

    return preset_speed(load_model(str(weights), device="cpu"), 512 // read_config(weights)[1]["scale"], "auto")


def _relative(path: str) -> str:
    """``path`` relative to the repository when inside it (as the state names weights), else as given."""
    resolved = (ROOT / path).resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else path


def _folder_part(override: str) -> str:
    """One ``--set KEY=VALUE`` as part of a run folder's name: a path value by its file name only, so
    ``init_weights=/abs/sr-x4.safetensors`` names one folder, not a tree of them."""
    key, _, value = override.partition("=")
    return f"{key}={PureWindowsPath(value).name}" if value else override  # splits at both / and \


def _folder_name(parts: list[str]) -> str:
    """The parts joined by ``-``; a name over 200 characters (file systems allow 255 bytes) is cut to 180 and
    ends with a hash of the whole, so long ``--set`` lists still name one folder each."""
    name = "-".join(parts)
    if len(name.encode()) <= 200:
        return name
    return name.encode()[:180].decode(errors="ignore") + "-" + hashlib.sha256(name.encode()).hexdigest()[:12]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=sorted(PROTOCOL))
    parser.add_argument("--blocks", nargs="+", required=True, help="RCABs per scale, e.g. 2,4,8")
    parser.add_argument("--features", type=int, default=None,
                        help="feature channels of every variant, grown exactly from the start's width")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=Path, default=ROOT.parent / "runs" / "sweep")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="training config overrides of every variant, e.g. learning_rate=2e-4, model.sr_tail=direct or "
                             "degradation.clean_probability=0.1 (one key of the degradation options) "
                             "(named in the run folder)")
    args = parser.parse_args()

    import torch

    from hfpie.training.trainer import train

    torch.set_num_threads(args.threads)
    state = load_state(args.model)
    results = []
    for text in args.blocks:
        blocks = tuple(int(n) for n in text.split(","))
        width = [f"x{args.features}"] if args.features else []
        run_dir = args.runs / args.model / _folder_name([*map(str, blocks), *width, *map(_folder_part, args.set)])
        final = run_dir / "final.safetensors"
        if not final.exists():
            # under the model's campaign while it has steps left, else the continual config with --set
            # (arms for the next campaign: e.g. --set lr_schedule=cosine learning_rate=5e-4 schedule_steps=80000)
            campaign = state.get("campaign")
            running = campaign and campaign["position"] < campaign["schedule_steps"]
            config = (_session_config if running else base_config)(args.model, state, args.minutes, args.threads)
            model = {**config.model, "num_blocks": blocks, **({"num_features": args.features} if args.features else {})}
            config = config.replace(model=model, init_grow=True).with_overrides(args.set)  # --set may start elsewhere:
            # init_weights=src/hfpie/weights/sr-x4.safetensors init_strict=false init_grow=false (an x4 body into x2)
            print(f"{time.strftime('%H:%M:%S')} {args.model} {blocks}: training {args.minutes} min", flush=True)
            train(config, run_dir, resume=True, progress=False)
        session = _session_log(run_dir)
        psnr = score(args.model, final)
        psnr.pop("ssim")
        speed = seconds_per_megapixel(final)
        network_config = json.loads((run_dir / "config.json").read_text())
        row = {"blocks": list(blocks), "features": read_config(final)[1]["num_features"], "overrides": args.set, "steps": session["steps"], "cpu_hours": round(session["cpu_seconds"] / 3600, 3),
               "step_time_s": round(session["cpu_seconds"] / max(session["steps"], 1), 4),
               "s_per_mp_auto": round(speed, 3), "psnr": {k: round(v, 4) for k, v in psnr.items()},
               "val_during_training": session["val"],
               "start": _relative(network_config.get("init_weights") or state["weights"]),
               "preset": network_config.get("preset")}
        results.append(row)
        print(json.dumps(row), flush=True)

    table = [f"| blocks | features | steps | CPU h | step (s) | s/MP (auto) | " + " | ".join(psnr) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(psnr)]
    for row in results:
        table.append(f"| {tuple(row['blocks'])} {' '.join(row['overrides'])} | {row['features']} | {row['steps']} | {row['cpu_hours']:.3f} | {row['step_time_s']:.3f} | "
                     f"{row['s_per_mp_auto']:.3f} | " + " | ".join(f"{v:.3f}" for v in row["psnr"].values()) + " |")
    print("\n".join(table))
    merged = json.loads(OUTPUT.read_text()) if OUTPUT.exists() else {}
    entry = merged.setdefault(args.model, {"variants": []})
    entry.update(date=time.strftime("%Y-%m-%d"), minutes_per_variant=args.minutes, threads=args.threads)
    def key(row: dict) -> tuple:
        return tuple(row["blocks"]), row.get("features"), tuple(row.get("overrides", []))

    ran = {key(row) for row in results}
    entry["variants"] = [row for row in entry["variants"] if key(row) not in ran] + results
    OUTPUT.write_text(json.dumps(merged, indent=2) + "\n")


if __name__ == "__main__":
    main()
