"""The local command line against ``--ray`` with 1 and 2 workers on one folder: MP/s, start-up apart.

    python benchmarks/ray_scale.py --output docs/ray_scale.json

Every configuration is the real command line in a fresh process (``hfpie sr IN -o OUT [--ray --workers N
--threads 1]``), run twice: once on a folder of one 64x64 image (its wall time is the start-up: Python,
torch, the model, and for Ray a local Ray instance and its actors, started and stopped), once on the
folder of ``--images`` images. MP/s counts output megapixels over the wall time less that start-up.
The Ray outputs are compared byte for byte with the local ones. Results (docs/scale.md) in JSON.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def make_folder(folder: Path, sources: list[str], side: int) -> None:
    folder.mkdir(parents=True)
    for index, source in enumerate(sources):
        with Image.open(source) as opened:
            image = opened.convert("RGB")
        edge = min(image.size)
        left, top = (image.width - edge) // 2, (image.height - edge) // 2
        image.crop((left, top, left + edge, top + edge)).resize((side, side), Image.BICUBIC).save(folder / f"{index:03d}.png")


def run(arguments: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "hfpie.cli", *arguments], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"hfpie {' '.join(arguments)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, done.stderr


def busy_seconds(stderr: str, output: Path) -> float:
    """Seconds spent on the images themselves: the manifest's (Ray) or the progress lines' (local, 0.1 s steps)."""
    manifest = output / "hfpie-manifest.jsonl"
    if manifest.exists():
        return sum(json.loads(line)["seconds"] for line in manifest.read_text().splitlines())
    return sum(float(value) for value in re.findall(r"\((\d+\.\d) s, ETA", stderr))


def files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*.png"))}


def io_seconds_per_mp(folder: Path, scale: int) -> dict[str, float]:
    """Seconds per output megapixel that one CPU thread spends decoding the inputs and encoding outputs of
    their upscaled size (PNG, and JPEG for comparison): the work a GPU actor does on its CPU around the network."""
    import numpy as np

    from hfpie.io import decode_image, encode_image, image_file_from_pil

    paths = sorted(folder.glob("*.png"))[:10]
    decode = png = jpeg = megapixels = 0.0
    for path in paths:
        data = path.read_bytes()
        start = time.perf_counter()
        image = decode_image(data, str(path))
        decode += time.perf_counter() - start
        with Image.open(path) as opened:
            upscaled = image_file_from_pil(opened.resize((opened.width * scale, opened.height * scale), Image.BICUBIC))
        megapixels += upscaled.pixels.shape[0] * upscaled.pixels.shape[1] / 1e6
        start = time.perf_counter()
        encode_image(upscaled, "PNG")
        png += time.perf_counter() - start
        start = time.perf_counter()
        encode_image(upscaled, "JPEG")
        jpeg += time.perf_counter() - start
        assert isinstance(image.pixels, np.ndarray)
    return {"decode_input_s_per_output_mp": round(decode / megapixels, 4), "encode_png_s_per_mp": round(png / megapixels, 4),
            "encode_jpeg_s_per_mp": round(jpeg / megapixels, 4), "images": len(paths)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--side", type=int, default=250, help="input side in pixels (x4: 1000x1000 = 1 MP out)")
    parser.add_argument("--model", default="sr-x4")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--source", default=str(ROOT.parent / "shared/data/train/bsds400"))
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()

    sources = sorted(glob.glob(os.path.join(args.source, "*.jpg")))[: args.images]
    if len(sources) < args.images:
        raise SystemExit(f"{args.source} has {len(sources)} JPEGs, not {args.images}")
    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        make_folder(work / "in", sources, args.side)
        make_folder(work / "one", sources[:1], 64)
        megapixels = args.images * (args.side * args.scale) ** 2 / 1e6
        common = ["-m", args.model, "--scale", str(args.scale)]
        configs = [("local CLI", 1, None, []), ("--ray", 1, 1, ["--ray", "--workers", "1", "--threads", "1"]),
                   ("--ray", 2, 1, ["--ray", "--workers", "2", "--threads", "1"])]
        outputs = {}
        for name, workers, threads, extra in configs:
            tag = f"{name} {workers}"
            startup, _ = run(["sr", str(work / "one"), "-o", str(work / f"one-{workers}-{bool(extra)}"), *common, *extra])
            output = work / f"out-{workers}-{bool(extra)}"
            wall, stderr = run(["sr", str(work / "in"), "-o", str(output), *common, *extra])
            busy = busy_seconds(stderr, output)
            outputs[tag] = files(output)
            rows.append({
                "config": name, "workers": workers, "threads_per_worker": threads or "torch default (2)",
                "images": args.images, "output_megapixels": megapixels, "startup_s": round(startup, 2),
                "wall_s": round(wall, 2), "mp_per_s_after_startup": round(megapixels / (wall - startup), 3),
                "mp_per_s_end_to_end": round(megapixels / wall, 3), "busy_s_summed": round(busy, 2),
                "mp_per_s_per_worker_busy": round(megapixels / busy, 3),
            })
            print(json.dumps(rows[-1]), flush=True)
        io_cost = io_seconds_per_mp(work / "in", args.scale)
        # The reference: the local CLI with the actors' one thread (untimed). The thread count changes
        # the order of oneDNN's float sums, so the 2-thread local run may differ from it by one level.
        run(["sr", str(work / "in"), "-o", str(work / "reference"), *common, "--threads", "1"])
        reference = files(work / "reference")
        identical = {tag: files_ == reference for tag, files_ in outputs.items()}
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "python": platform.python_version(),
              "model": args.model, "input": f"{args.images} images of {args.side}x{args.side} "
              f"(BSDS400 crops), {megapixels:g} MP of output", "identical_to_local_cli_with_threads_1": identical, "rows": rows,
              "cpu_io_one_thread": io_cost}
    try:
        import ray
        import torch

        result["ray"], result["torch"] = ray.__version__, torch.__version__
    except ImportError:
        pass
    print(json.dumps(result, indent=1))
    if args.output:
        args.output.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
