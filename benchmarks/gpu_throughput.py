"""GPU throughput of hfpie models: megapixels per second, fp32 vs fp16 autocast, whole vs tiled.

Run on a machine with a CUDA GPU::

    python benchmarks/gpu_throughput.py --output gpu_throughput.json

Each model is loaded from the shipped weights when they exist (``--models denoise sr-x4``), else
built from a preset (``--presets small:1 small:4``) with random weights: speed does not depend on
the weight values. For every image size the script times ``hfpie.runner.run_network`` (the path
``enhance()`` takes: host image in, host image out, padding, tiling) after warm-up runs, with
``torch.cuda.synchronize`` around the timed region, and records the peak GPU memory. It also
reports the largest difference between the fp16 and fp32 outputs (on the 8-bit scale).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from hfpie.runner import run_network  # noqa: E402
from hfpie.models import HFPIENet, config_from_preset  # noqa: E402
from hfpie.models.inference import optimize_for_inference  # noqa: E402


def _networks(args: argparse.Namespace, device: torch.device) -> list[tuple[str, HFPIENet]]:
    found: list[tuple[str, HFPIENet]] = []
    for name in args.models:
        from hfpie.hub import load_model

        try:
            found.append((name, load_model(name, device=device)))
        except Exception as error:  # noqa: BLE001 - a missing model is reported and skipped
            print(f"skipping model {name}: {error}", file=sys.stderr)
    for spec in args.presets:
        preset, scale = spec.split(":")
        torch.manual_seed(0)
        network = HFPIENet(config_from_preset(preset, scale=int(scale))).eval()
        found.append((f"{preset} x{scale} (random weights)", optimize_for_inference(network).to(device)))
    return found


def _time(
    network: HFPIENet, image: torch.Tensor, *, half: bool, tile: int | None, batch: int | None, repeats: int
) -> tuple[float, int, torch.Tensor]:
    device = next(network.parameters()).device
    cuda = device.type == "cuda"
    output = run_network(network, image, device=device, half=half, tile=tile, batch=batch)  # warm-up (cuDNN autotune)
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(repeats):
        output = run_network(network, image, device=device, half=half, tile=tile, batch=batch)
    if cuda:
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - start) / repeats
    return seconds, torch.cuda.max_memory_allocated(device) if cuda else 0, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=[], help="shipped model names, e.g. denoise sr-x4")
    parser.add_argument("--presets", nargs="*", default=["small:1", "small:2", "small:4"],
                        help="preset:scale pairs built with random weights")
    parser.add_argument("--megapixels", nargs="*", type=float, default=[1.0, 4.0, 0.25],
                        help="output sizes (the SR input is scale^2 smaller)")
    parser.add_argument("--tile", type=int, default=512, help="tile side of the tiled runs")
    parser.add_argument("--tile-batch", nargs="*", type=int, default=[0],
                        help="tiles run at once in the tiled runs (0: run_network's default, as many as fit)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for a dry run")
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA GPU is visible; this benchmark measures the GPU path (--device cpu for a dry run)")
    torch.backends.cudnn.benchmark = True
    results = {"gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "torch": torch.__version__,
               "python": platform.python_version(), "rows": []}
    print(f"GPU: {results['gpu']}  torch {torch.__version__}")
    for name, network in _networks(args, device):
        scale = network.config.scale
        for megapixels in args.megapixels:
            side_in = int((megapixels * 1e6) ** 0.5) // 4 * 4
            side_in = max(side_in // scale // 4 * 4, 16) if scale > 1 else side_in
            generator = torch.Generator().manual_seed(0)
            image = torch.rand(1, 3, side_in, side_in, generator=generator)
            out_mp = (side_in * scale) ** 2 / 1e6
            reference = None
            for half in (False, True):
                runs = [(None, None)] + [(args.tile, batch or None) for batch in args.tile_batch]
                for tile, batch in runs:
                    seconds, peak, output = _time(network, image, half=half, tile=tile, batch=batch,
                                                  repeats=args.repeats)
                    row = {"model": name, "scale": scale, "input": f"{side_in}x{side_in}",
                           "output_megapixels": round(out_mp, 4), "dtype": "fp16" if half else "fp32",
                           "tile": tile, "tile_batch": None if tile is None else (batch or "auto"),
                           "seconds": seconds, "output_megapixels_per_second": out_mp / seconds,
                           "peak_gpu_memory_mib": peak / 2**20}
                    if reference is None:
                        reference = output
                    else:
                        row["max_abs_diff_vs_fp32_whole_8bit"] = float((output - reference).abs().max()) * 255
                    results["rows"].append(row)
                    print(json.dumps(row), flush=True)
                    if args.output:  # after every row, so a run cut short keeps what it measured
                        args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
