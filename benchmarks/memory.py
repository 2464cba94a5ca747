"""Peak resident memory of ``hfpie sr`` (or ``denoise`` / ``deblur``) against the output's size (the CLI,
file in, file out).

    python benchmarks/memory.py --output docs/memory.json [--megapixels 1 4 16 64 256] [--model sr-x4]
    python benchmarks/memory.py --task denoise --model denoise --megapixels 16 64 --label denoise ...
    python benchmarks/memory.py --src /tmp/old-hfpie/src --label before ...   # another copy of the code
    python benchmarks/memory.py --tile 256 --label "tile 256" ...             # CLI settings to compare

Every size runs in a fresh process, ``hfpie sr IN.png --scale S -o OUT.png`` through the CLI's own
entry point; its peak resident set (``VmHWM``, read by the child itself: see ``_run``) and wall time are
reported, with the same for a process that only imports hfpie and loads the model (the floor every
call pays). The input is a synthetic photo-like PNG of the given *output* megapixels / scale^2
(sinusoids plus noise, as in benchmarks/scaling.py). ``--src`` puts another source tree first on
the child's path (to measure an older version the same way); the JSON records which one ran.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from scaling import _synthetic

ROOT = Path(__file__).resolve().parents[1]
Image.MAX_IMAGE_PIXELS = None  # the outputs are large on purpose

_CHILD = """
import json, sys, time
start = time.perf_counter()
if sys.argv[1] == "floor":
    import hfpie
    from hfpie.hub import load_model
    load_model(sys.argv[2], device="cpu")
else:
    import hfpie
    from hfpie.cli import main
    sys.argv = ["hfpie", *sys.argv[1:]]
    try:
        main()
    except SystemExit as stop:
        if stop.code:
            raise
with open("/proc/self/status") as status:  # this process's own high-water mark (see _run)
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
print(json.dumps({"module": hfpie.__file__, "seconds": time.perf_counter() - start, "peak_rss_mb": peak}))
"""


def _run(arguments: list[str], env: dict[str, str]) -> dict:
    """Run the child with ``arguments``; its JSON line, with its peak RSS in MB (``VmHWM``, read by the
    child itself). Not ``ru_maxrss`` from ``wait4``: Linux starts a spawned child's maximum at the
    parent's resident set (the exec happens in the parent's memory), so a parent that has just built a
    64 MP test image made every child read about 3.4 GB."""
    process = subprocess.run([sys.executable, "-c", _CHILD, *arguments], env=env, stdout=subprocess.PIPE)
    if process.returncode:
        raise RuntimeError(f"{arguments} failed with exit code {process.returncode}")
    return json.loads(process.stdout.decode().strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megapixels", nargs="+", type=float, default=[1, 4, 16, 64, 256],
                        help="output sizes in megapixels")
    parser.add_argument("--task", default="sr", choices=["sr", "denoise", "deblur"])
    parser.add_argument("--model", default="sr-x4")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--src", type=Path, default=None, help="source tree to import hfpie from (default: installed)")
    parser.add_argument("--label", default="", help="name of this code version / setting in the JSON")
    parser.add_argument("--tile", type=int, default=None, help="pass --tile to hfpie sr (default: automatic)")
    parser.add_argument("--no-heap-reuse", action="store_true", help="run with HFPIE_HEAP_REUSE=0")
    parser.add_argument("--output", type=Path, default=None, help="JSON to write (rows of other labels are kept)")
    args = parser.parse_args()

    if args.task != "sr":
        args.scale = 1
    env = dict(os.environ)
    if args.no_heap_reuse:
        env["HFPIE_HEAP_REUSE"] = "0"
    settings = (["--tile", str(args.tile)] if args.tile else [])
    if args.src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(args.src.resolve()), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    floor = _run(["floor", args.model], env)
    print(f"floor (import + load {args.model}): {floor['peak_rss_mb']:.0f} MB  [{floor['module']}]", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for megapixels in args.megapixels:
            side = int((megapixels * 1e6) ** 0.5) // args.scale
            source, target = Path(folder) / "in.png", Path(folder) / "out.png"
            Image.fromarray(_synthetic(side, side)).save(source, compress_level=1)
            scale = ["--scale", str(args.scale)] if args.task == "sr" else []
            result = _run([args.task, str(source), *scale, "-m", args.model, "-o", str(target),
                           "--quiet", "--overwrite", *settings], env)
            with Image.open(target) as written:
                width, height = written.size
            output_megapixels = width * height / 1e6
            output_mb = width * height * 3 / 2**20  # the uint8 RGB result itself
            row = {"label": args.label, "task": args.task, "model": args.model, "scale": args.scale, "tile": args.tile,
                   "heap_reuse": not args.no_heap_reuse, "input": f"{side}x{side}",
                   "output": f"{width}x{height}", "output_megapixels": output_megapixels,
                   "peak_rss_mb": round(result["peak_rss_mb"], 1), "floor_mb": round(floor["peak_rss_mb"], 1),
                   "output_mb": round(output_mb, 1),
                   "bytes_per_output_pixel": round(result["peak_rss_mb"] * 2**20 / (width * height), 2),
                   "above_floor_per_output_pixel": round(
                       (result["peak_rss_mb"] - floor["peak_rss_mb"]) * 2**20 / (width * height), 2),
                   "seconds": round(result["seconds"], 2), "module": result["module"]}
            rows.append(row)
            print(f"{row['output']} ({output_megapixels:.1f} MP): peak {row['peak_rss_mb']:.0f} MB, "
                  f"{row['bytes_per_output_pixel']} B/output px ({row['above_floor_per_output_pixel']} above the "
                  f"floor; the uint8 output is 3), {row['seconds']} s", flush=True)
            source.unlink()
            target.unlink()
    if args.output is not None:
        previous = json.loads(args.output.read_text()) if args.output.exists() else {}
        kept = [row for row in previous.get("rows", []) if row.get("label") != args.label]
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        runs = {**previous.get("runs", {}), args.label or "default": {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]), "commit": commit,
            "source": str(args.src) if args.src else "installed", "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "peak_measure": "VmHWM of the child"}}
        args.output.write_text(json.dumps({"runs": runs, "rows": kept + rows}, indent=2) + "\n")
        print(f"wrote {args.output}")


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"{time.perf_counter() - start:.0f} s in all", file=sys.stderr)
