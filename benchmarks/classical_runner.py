#!/usr/bin/env python3
"""Classical baselines from registry packages, with the peer runners' calling convention.

usage: classical_runner.py METHOD INPUT_FOLDER OUTPUT_FOLDER [--sigma 25 | --sigma sigmas.json] [--scale 4]
                           [--psf kernel.npy | --psf kernels/] [--boundary symmetric] [--timings T.json]

The library calls and parameters are those of ``../shared/peers/classical/run.py`` so that the numbers
compare with the peers README (x = the input as float64 RGB in [0, 1], s = sigma / 255):

Denoising (--sigma in 0..255 units, per image from a JSON file for real noise)
  nlm_opencv      cv2.fastNlMeansDenoisingColored(bgr_u8, None, h=0.6*sigma, hColor=0.6*sigma, 7, 21)
  nlm_skimage     skimage.restoration.denoise_nl_means(x, h=0.6*s, sigma=s, patch_size=5, patch_distance=6,
                                                       fast_mode=True, channel_axis=-1)
  wavelet         skimage.restoration.denoise_wavelet(x, sigma=s, wavelet='db1', mode='soft',
                      method='BayesShrink', convert2ycbcr=True, rescale_sigma=True, channel_axis=-1)  (needs PyWavelets)
  tv_chambolle    skimage.restoration.denoise_tv_chambolle(x, weight=0.08, channel_axis=-1)  (sigma not used)
  bm3d            bm3d.bm3d_rgb(x, sigma_psd=s)                              (only if the bm3d package is installed)
Non-blind deblurring (--psf: the true kernel; --boundary symmetric pads by the kernel size with numpy
'symmetric' padding (= scipy.ndimage 'reflect', the protocol's blur boundary), deblurs, crops)
  wiener          skimage.restoration.wiener(channel, psf, balance=0.01) per channel
  richardson_lucy skimage.restoration.richardson_lucy(channel, psf, num_iter=30) per channel
Upscaling (--scale s)
  bicubic_pil     PIL.Image.resize((W*s, H*s), Image.BICUBIC)
  lanczos_pil     PIL.Image.resize((W*s, H*s), Image.LANCZOS)
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from PIL import Image

import runner_common as io

if not hasattr(np, "trapz"):  # bm3d / bm4d call np.trapz, removed in NumPy 2.4
    np.trapz = np.trapezoid

DENOISERS = ("nlm_opencv", "nlm_skimage", "wavelet", "tv_chambolle", "bm3d")
DEBLURRERS = ("wiener", "richardson_lucy")
UPSCALERS = ("bicubic_pil", "lanczos_pil")


def preload(method: str) -> None:
    """Import the method's package before anything is timed."""
    if method == "bm3d":
        import bm3d  # noqa: F401
    elif method == "nlm_opencv":
        import cv2  # noqa: F401
    elif method == "wavelet":
        import pywt  # noqa: F401
        from skimage.restoration import denoise_wavelet  # noqa: F401
    elif method in DENOISERS + DEBLURRERS:
        import skimage.restoration  # noqa: F401


def deblur(method: str, x: np.ndarray, psf: np.ndarray, boundary: str) -> np.ndarray:
    from skimage.restoration import richardson_lucy, wiener

    pad = max(psf.shape)
    if boundary == "symmetric":
        x = np.pad(x, ((pad, pad), (pad, pad), (0, 0)), mode="symmetric")
    if method == "wiener":
        y = np.stack([wiener(x[..., c], psf, balance=0.01) for c in range(3)], -1)
    else:
        padded = np.pad(x, ((pad, pad), (pad, pad), (0, 0)), mode="wrap") if boundary == "circular" else x
        y = np.stack([richardson_lucy(padded[..., c], psf, num_iter=30) for c in range(3)], -1)
        if boundary == "circular":
            y = y[pad:-pad, pad:-pad]
    return y[pad:-pad, pad:-pad] if boundary == "symmetric" else y


def restore(method: str, x: np.ndarray, sigma: float | None, scale: int, psf: np.ndarray | None,
            boundary: str) -> np.ndarray:
    """x: float64 (H, W, 3) in [0, 1]; returns float (not yet clipped)."""
    if method in DENOISERS and method != "tv_chambolle" and sigma is None:
        raise SystemExit(f"{method} needs --sigma")
    s = (sigma or 0.0) / 255.0
    if method == "nlm_opencv":
        import cv2

        h = 0.6 * sigma
        bgr = cv2.cvtColor(io.to_u8(x), cv2.COLOR_RGB2BGR)
        out = cv2.fastNlMeansDenoisingColored(bgr, None, h, h, 7, 21)
        return cv2.cvtColor(out, cv2.COLOR_BGR2RGB).astype(np.float64) / 255.0
    if method == "nlm_skimage":
        from skimage.restoration import denoise_nl_means

        return denoise_nl_means(x, h=0.6 * s, sigma=s, patch_size=5, patch_distance=6, fast_mode=True, channel_axis=-1)
    if method == "wavelet":
        from skimage.restoration import denoise_wavelet

        return denoise_wavelet(x, sigma=s, wavelet="db1", mode="soft", method="BayesShrink", convert2ycbcr=True,
                               rescale_sigma=True, channel_axis=-1)
    if method == "tv_chambolle":
        from skimage.restoration import denoise_tv_chambolle

        return denoise_tv_chambolle(x, weight=0.08, channel_axis=-1)
    if method == "bm3d":
        import bm3d

        return bm3d.bm3d_rgb(x, sigma_psd=s)
    if method in DEBLURRERS:
        assert psf is not None
        return deblur(method, x, psf, boundary)
    height, width = x.shape[:2]
    image = Image.fromarray(io.to_u8(x))
    resample = Image.BICUBIC if method == "bicubic_pil" else Image.LANCZOS
    return np.asarray(image.resize((width * scale, height * scale), resample)).astype(np.float64) / 255.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("method", choices=DENOISERS + DEBLURRERS + UPSCALERS)
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--sigma", default=None, help="noise std in 0..255, or a JSON file {stem: sigma}")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--psf", default=None, help=".npy kernel or a folder of <stem>.npy kernels")
    parser.add_argument("--boundary", default="symmetric", choices=["symmetric", "circular"])
    parser.add_argument("--timings", default=None)
    args = parser.parse_args()
    pairs = io.io_pairs(args.input, args.output)
    sigma = io.parse_sigma(args.sigma)
    preload(args.method)
    timings = io.Timings(args.method, args.timings)
    for source, target in pairs:
        x = io.read_u8(source).astype(np.float64) / 255.0
        psf = io.psf_for(args.psf, source) if args.method in DEBLURRERS else None
        image_sigma = io.sigma_for(sigma, source)
        start = time.perf_counter()
        y = restore(args.method, x, image_sigma, args.scale, psf, args.boundary)
        seconds = time.perf_counter() - start
        io.write_u8(target, io.to_u8(np.clip(y, 0.0, 1.0)))
        timings.add(source, seconds, y.shape)
    timings.finish()


if __name__ == "__main__":
    sys.exit(main())
