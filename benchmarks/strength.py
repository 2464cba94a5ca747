"""PSNR against ``strength``: which way of weakening or strengthening a model measures best.

    python benchmarks/strength.py --images 8 --sigmas 15 50 75 --no-network --output docs/strength.json \\
        --figure docs/figures/strength.png
    python benchmarks/strength.py --denoise-only --sigmas --real 4 --output docs/strength.json

Candidates (``f`` is the network, ``x`` the input, ``s`` the strength):

* ``blend``: ``x + s * (f(x) - x)``; for ``s > 1`` it extrapolates past the model's output.
* ``network``: network interpolation towards the identity. The networks have a global residual
  (``output = x + tail(...)``), so scaling the last convolution's weight and bias by ``s`` is the
  same as ``blend`` except that the clamp to [0, 1] comes after the mix instead of before it.
* ``reapply`` (``s > 1`` only): ``f(x) + (s - 1) * (f(f(x)) - f(x))``: a second pass for ``s = 2``.
* ``amplify`` (``s > 1`` only): ``f(f(x) + s * (x - f(x)))``: the noise the network removed is
  amplified by ``s`` and the result denoised again, a stand-in for a noise-level input that the
  blind networks lack.

Denoising uses the evaluation protocol (``ImageFolderPairs``: Gaussian noise seeded by sigma and
image index, 8-bit inputs, PSNR on RGB); SR x4 and deblurring are measured with ``blend`` too (for
SR, ``x`` is the bicubic upscaling of the input). Outputs are rounded to 8 bits before scoring.
``enhance`` rows are the library itself (``hfpie.enhance(..., strength=s)``): ``blend`` up to 1 and
``reapply`` above, the choice these measurements support (docs/usage.md).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from hfpie import enhance, load_model  # noqa: E402
from hfpie.api import MAX_STRENGTH, run_network  # noqa: E402
from hfpie.training.datasets import ImageFolderPairs  # noqa: E402
from hfpie.training.metrics import psnr  # noqa: E402

STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)


def _tensor(image_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image_u8.astype(np.float32) / 255.0).permute(2, 0, 1)[None]


def _u8(x: torch.Tensor) -> np.ndarray:
    return np.round(x.clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255.0).astype(np.uint8)


def _scaled_tail(network: torch.nn.Module, factor: float) -> torch.nn.Module:
    """A copy of ``network`` whose last convolution (before the global residual) is scaled by ``factor``."""
    scaled = copy.deepcopy(network)
    last = scaled.scales[0].tail[-1]
    with torch.no_grad():
        last.weight.mul_(factor)
        last.bias.mul_(factor)
    return scaled


def denoise_rows(data: Path, sigma: int, images: int, with_network: bool) -> dict[str, dict[str, float]]:
    network = load_model("denoise", device="cpu")
    run = lambda net, x: run_network(net, x, device="cpu", half=False)  # noqa: E731
    scaled = {s: _scaled_tail(network, s) for s in STRENGTHS if with_network and s not in (0.0, 1.0)}
    scores: dict[str, dict[str, list[float]]] = {}

    def add(method: str, strength: float, output: np.ndarray, clean: np.ndarray) -> None:
        scores.setdefault(method, {}).setdefault(f"{strength:g}", []).append(psnr(output, clean))

    pairs = ImageFolderPairs(data / "cbsd68", "denoise", sigma=sigma)
    for index in range(images):
        name, noisy, clean = pairs[index]
        x = _tensor(noisy)
        fx = run(network, x)
        ffx = run(network, fx)
        for s in STRENGTHS:
            add("blend", s, _u8(x + s * (fx - x)), clean)
            if with_network and s not in (0.0, 1.0):
                add("network", s, _u8(run(scaled[s], x)), clean)
            if s > 1:
                add("reapply", s, _u8(fx + (s - 1) * (ffx - fx)), clean)
                add("amplify", s, _u8(run(network, fx + s * (x - fx))), clean)
            if s <= MAX_STRENGTH["denoise"]:  # the library's own implementation: which one it matches
                add("enhance", s, enhance(noisy, "denoise", model=network, device="cpu", half=False, strength=s), clean)
        print(f"sigma {sigma} {name}: input {psnr(noisy, clean):.2f} dB, model {psnr(_u8(fx), clean):.2f} dB",
              file=sys.stderr)
    return {method: {s: float(np.mean(v)) for s, v in by_strength.items()} for method, by_strength in scores.items()}


def real_noise_rows(data: Path, pairs_wanted: int) -> dict[str, dict[str, float]]:
    """The Gaussian ``denoise`` model on PolyU real noise (evenly spaced pairs): above 1, where the
    model leaves noise in, ``enhance`` (second pass) against ``amplify``."""
    network = load_model("denoise", device="cpu")
    pairs = ImageFolderPairs(data / "polyu_real_noise", "denoise-real")
    scores: dict[str, dict[str, list[float]]] = {}
    for index in range(0, len(pairs), max(1, len(pairs) // pairs_wanted))[:pairs_wanted]:
        _, noisy, clean = pairs[index]
        for s in (0.0, 0.5, 1.0, 1.5, 2.0):
            out = enhance(noisy, "denoise", model=network, device="cpu", half=False, strength=s)
            scores.setdefault("enhance", {}).setdefault(f"{s:g}", []).append(psnr(out, clean))
        x = _tensor(noisy)
        fx = run_network(network, x, device="cpu", half=False)
        for s in (1.5, 2.0):
            amplified = _u8(run_network(network, fx + s * (x - fx), device="cpu", half=False))
            scores.setdefault("amplify", {}).setdefault(f"{s:g}", []).append(psnr(amplified, clean))
    return {method: {s: float(np.mean(v)) for s, v in by_strength.items()} for method, by_strength in scores.items()}


def blend_rows(data: Path, task: str, images: int) -> dict[str, dict[str, float]]:
    """``blend`` for deblur (CBSD68) or SR x4 (Set14, Y channel, border 4), and ``enhance`` where allowed."""
    if task == "sr":
        pairs = ImageFolderPairs(data / "set14", "sr", scale=4)
        network = load_model("sr", scale=4, device="cpu")
    else:
        pairs = ImageFolderPairs(data / "cbsd68", "deblur")
        network = load_model("deblur", device="cpu")
    border = 4 if task == "sr" else 0
    scores: dict[str, dict[str, list[float]]] = {}
    for index in range(images):
        _, degraded, clean = pairs[index]
        x = _tensor(degraded)
        fx = run_network(network, x, device="cpu", half=False)
        base = F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1) if task == "sr" else x
        for s in STRENGTHS:
            score = lambda out: psnr(out, clean, crop_border=border, y_channel=task == "sr")  # noqa: E731
            scores.setdefault("blend", {}).setdefault(f"{s:g}", []).append(score(_u8(base + s * (fx - base))))
            if s <= MAX_STRENGTH[task]:
                out = enhance(degraded, task, scale=4, model=network, device="cpu", half=False, strength=s)
                scores.setdefault("enhance", {}).setdefault(f"{s:g}", []).append(score(out))
    return {method: {s: float(np.mean(v)) for s, v in by_strength.items()} for method, by_strength in scores.items()}


def crop_strip(data: Path, sigma: int, index: int, box: tuple[int, int, int], strengths: tuple[float, ...],
               path: Path) -> None:
    """One crop of a CBSD68 image across strengths (``enhance``), each labelled with the crop's PSNR;
    saved as a 256-colour PNG to keep the file small."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    network = load_model("denoise", device="cpu")
    _, noisy, clean = ImageFolderPairs(data / "cbsd68", "denoise", sigma=sigma)[index]
    top, left, side = box
    reference = clean[top:top + side, left:left + side]
    fig, axes = plt.subplots(1, len(strengths) + 1, figsize=(1.5 * (len(strengths) + 1), 1.95), dpi=100)
    for axis, s in zip(axes, strengths):
        crop = enhance(noisy, "denoise", model=network, device="cpu", half=False, strength=s)[top:top + side, left:left + side]
        axis.imshow(crop, interpolation="nearest")
        axis.set_title(f"strength {s:g}\n{psnr(crop, reference):.2f} dB", fontsize=8)
    axes[-1].imshow(reference, interpolation="nearest")
    axes[-1].set_title("clean\n(reference)", fontsize=8)
    for axis in axes:
        axis.axis("off")
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.78, wspace=0.04)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.open(buffer).convert("RGB").quantize(256).save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "val")
    parser.add_argument("--images", type=int, default=8, help="first N images of each set")
    parser.add_argument("--sigmas", type=int, nargs="*", default=[15, 50])
    parser.add_argument("--real", type=int, default=0, help="also N PolyU real-noise pairs")
    parser.add_argument("--no-network", action="store_true", help="skip network interpolation (slow)")
    parser.add_argument("--denoise-only", action="store_true", help="skip the deblur and SR rows")
    parser.add_argument("--figure-only", action="store_true", help="only write --figure")
    parser.add_argument("--output", type=Path, help="write the means as JSON (sections already there are kept)")
    parser.add_argument("--figure", type=Path, help="write a crop strip across strengths (sigma 50)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.figure_only:
        crop_strip(args.data, 50, 0, (100, 180, 96), (0.0, 0.25, 0.5, 0.75, 1.0, 2.0), args.figure)
        return
    start = time.perf_counter()
    results: dict[str, object] = {}
    if args.output and args.output.exists():
        results = json.loads(args.output.read_text())
    results.update({"images": args.images, "strengths": list(STRENGTHS)})

    def save() -> None:  # after every section, so a long run keeps what it measured
        results["seconds"] = round(time.perf_counter() - start, 1)
        if args.output:
            args.output.write_text(json.dumps(results, indent=1) + "\n")

    for task in () if args.denoise_only else ("deblur", "sr"):
        results[task] = blend_rows(args.data, task, min(args.images, 4))
        save()
    for sigma in args.sigmas:
        results[f"denoise_sigma{sigma}"] = denoise_rows(args.data, sigma, args.images, not args.no_network)
        save()
    if args.real:
        results[f"denoise_polyu_{args.real}_pairs"] = real_noise_rows(args.data, args.real)
        save()
    print(json.dumps(results, indent=1))
    if args.figure:
        crop_strip(args.data, 50, 0, (100, 180, 96), (0.0, 0.25, 0.5, 0.75, 1.0, 2.0), args.figure)


if __name__ == "__main__":
    main()
