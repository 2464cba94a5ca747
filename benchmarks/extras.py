"""Measurements of the model zoo beyond the main benchmark table (``benchmarks/run.py``).

    python benchmarks/extras.py --output docs/extras.json --figures docs/figures

* ``perceptual``: bicubic, ``sr-x4`` and ``sr-x4-gan`` on Set5 + Set14 (x4, bicubic LR of the
  protocol): Y PSNR/SSIM, the radial power spectrum error against HR (``spectrum_error``: mean
  absolute log10 difference of the radially averaged power spectra; over-smoothing shows as missing
  high frequencies), the flat-region noise (``flat_region_noise``: fine detail added where the
  original is flat, output over original; 1 for HR, well above 1 for hallucinated dots or grids),
  and LPIPS when the ``lpips`` package and its weights are available (else reported as
  unavailable); plus the crop figure LR | bicubic | sr-x4 | sr-x4-gan | HR.
* ``motion``: ``deblur`` on the 8 Levin et al. motion kernels of ``val/blur_kernels`` (image i of
  CBSD68 gets kernel i mod 8, reflect padding, AWGN sigma 2 from ``default_rng(30000 + i)``, rounded
  to 8 bits), against the blurry input and scikit-image's Wiener filter given the true kernel.
* ``clean``: ``denoise-real`` (and ``denoise``) on clean photos (CBSD68 without noise): the PSNR of
  the output against the input, i.e. how much a model changes an image that has nothing to remove.
* ``figures``: one before/after crop per task (denoise sigma 25, deblur, PolyU real noise, x4 SR).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from hfpie import enhance  # noqa: E402
from hfpie.training.degradations import protocol_bicubic_lr, protocol_blur, protocol_gaussian_noise  # noqa: E402
from hfpie.training.metrics import (  # noqa: E402
    flat_region_noise,
    lpips_distance,
    psnr,
    rgb_to_y,
    spectrum_error,
    ssim,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "val"


def _images(folder: Path, limit: int = 0) -> list[tuple[str, np.ndarray]]:
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".bmp", ".tif"})
    paths = paths[:limit] if limit else paths
    return [(p.name, np.asarray(Image.open(p).convert("RGB"))) for p in paths]


def _mean(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) or not values else float(np.mean(values))


def perceptual(limit: int = 0) -> dict:
    """Bicubic vs sr-x4 vs sr-x4-gan on Set5 and Set14."""
    results: dict = {}
    for name in ("set5", "set14"):
        rows: dict[str, dict[str, list]] = {}
        for file, hr_full in _images(DATA / name, limit):
            hr, lr = protocol_bicubic_lr(hr_full, 4)
            outputs = {
                "bicubic": np.asarray(Image.fromarray(lr).resize((hr.shape[1], hr.shape[0]), Image.BICUBIC)),
                "sr-x4": enhance(lr, task="sr", scale=4, model="sr-x4"),
                "sr-x4-gan": enhance(lr, task="sr", scale=4, model="sr-x4-gan"),
            }
            for method, out in outputs.items():
                scores = rows.setdefault(method, {"psnr_y": [], "ssim_y": [], "spectrum_error": [],
                                                  "flat_region_noise": [], "lpips": []})
                y_out, y_hr = rgb_to_y(out)[4:-4, 4:-4], rgb_to_y(hr)[4:-4, 4:-4]
                scores["psnr_y"].append(psnr(y_out, y_hr))
                scores["ssim_y"].append(ssim(y_out, y_hr))
                scores["spectrum_error"].append(spectrum_error(out, hr))
                flat = flat_region_noise(out, hr)
                if flat is not None:  # images without flat areas do not count
                    scores["flat_region_noise"].append(flat)
                scores["lpips"].append(lpips_distance(out, hr))
        results[name] = {method: {k: _mean(v) for k, v in scores.items()} for method, scores in rows.items()}
    return results


def motion(limit: int = 0, model: str | None = None) -> dict:
    """deblur (or ``model``) on motion kernels vs the input and Wiener with the true kernel."""
    from skimage.restoration import wiener

    kernels = np.load(DATA / "blur_kernels" / "Levin09_kernels.npz")
    kernels = [kernels[k].astype(np.float64) for k in sorted(kernels.files)]
    from scipy import ndimage

    scores: dict[str, list[float]] = {"input": [], "hfpie deblur": [], "wiener (true kernel)": []}
    for index, (_, clean) in enumerate(_images(DATA / "cbsd68", limit)):
        kernel = kernels[index % len(kernels)]
        kernel = kernel / kernel.sum()
        rng = np.random.default_rng(30_000 + index)
        blurred = np.stack([ndimage.convolve(clean[..., c].astype(np.float64), kernel, mode="reflect")
                            for c in range(3)], axis=-1)
        degraded = np.clip(np.round(blurred + 2.0 * rng.standard_normal(blurred.shape)), 0, 255).astype(np.uint8)
        restored = enhance(degraded, task="deblur", model=model)
        wiener_out = np.stack([wiener(degraded[..., c] / 255.0, kernel, balance=0.01, clip=True)
                               for c in range(3)], axis=-1)
        scores["input"].append(psnr(degraded, clean))
        scores["hfpie deblur"].append(psnr(restored, clean))
        scores["wiener (true kernel)"].append(psnr(np.round(wiener_out * 255).astype(np.uint8), clean))
    return {"images": len(scores["input"]), **{k: float(np.mean(v)) for k, v in scores.items()}}


def clean(limit: int = 0) -> dict:
    """How much each denoiser changes clean photos (PSNR of output vs input; higher = less change)."""
    images = _images(DATA / "cbsd68", limit)
    return {model: float(np.mean([psnr(enhance(image, task="denoise", model=model), image) for _, image in images]))
            for model in ("denoise-real", "denoise")} | {"images": len(images)}


def _crop(image: np.ndarray, box: tuple[int, int, int]) -> Image.Image:
    top, left, size = box
    return Image.fromarray(image[top : top + size, left : left + size]).resize((192, 192), Image.NEAREST)


def _strip(tiles: list[Image.Image], path: Path) -> None:
    strip = Image.new("RGB", (192 * len(tiles) + 4 * (len(tiles) - 1), 192), "white")
    for i, tile in enumerate(tiles):
        strip.paste(tile, (i * 196, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    strip.save(path)


def figures(folder: Path) -> list[str]:
    """Before/after crops per task (PNG strips; the column order is in each file name's docs entry)."""
    written = []
    name, clean_image = _images(DATA / "cbsd68")[2]
    box = (100, 200, 96)
    noisy = protocol_gaussian_noise(clean_image, 25, 2)
    _strip([_crop(noisy, box), _crop(enhance(noisy, task="denoise"), box), _crop(clean_image, box)],
           folder / "denoise.png")
    blurry, _ = protocol_blur(clean_image, 2)
    _strip([_crop(blurry, box), _crop(enhance(blurry, task="deblur"), box), _crop(clean_image, box)],
           folder / "deblur.png")
    polyu = sorted((DATA / "polyu_real_noise").glob("*_real.JPG"))[0]
    real = np.asarray(Image.open(polyu).convert("RGB"))
    mean = np.asarray(Image.open(polyu.with_name(polyu.name.replace("_real", "_mean"))).convert("RGB"))
    box_r = (200, 200, 128)
    _strip([_crop(real, box_r), _crop(enhance(real, task="denoise", model="denoise-real"), box_r), _crop(mean, box_r)],
           folder / "denoise-real.png")
    hr_full = _images(DATA / "set14")[10][1]
    hr, lr = protocol_bicubic_lr(hr_full, 4)
    box_s = (hr.shape[0] // 2 - 48, hr.shape[1] // 2 - 48, 96)
    up = np.asarray(Image.fromarray(lr).resize((hr.shape[1], hr.shape[0]), Image.NEAREST))
    bicubic = np.asarray(Image.fromarray(lr).resize((hr.shape[1], hr.shape[0]), Image.BICUBIC))
    _strip([_crop(up, box_s), _crop(bicubic, box_s), _crop(enhance(lr, task="sr", scale=4, model="sr-x4"), box_s),
            _crop(enhance(lr, task="sr", scale=4, model="sr-x4-gan"), box_s), _crop(hr, box_s)],
           folder / "sr-x4.png")
    written += ["denoise.png", "deblur.png", "denoise-real.png", "sr-x4.png"]
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True, help="JSON file of the measurements")
    parser.add_argument("--figures", type=Path, default=None, help="folder for the crop figures")
    parser.add_argument("--limit", type=int, default=0, help="first N images of each set (0: all)")
    parser.add_argument("--only", nargs="*", default=["perceptual", "motion", "clean"])
    parser.add_argument("--deblur-model", default=None, help="model name or path for the motion part")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    results = {}
    for part in args.only:
        if part == "motion":
            results[part] = motion(args.limit, args.deblur_model)
        else:
            results[part] = {"perceptual": perceptual, "clean": clean}[part](args.limit)
        print(part, json.dumps(results[part], indent=1), flush=True)
    if args.figures:
        results["figures"] = figures(args.figures)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
