"""Image quality metrics of the evaluation protocol, in numpy float64.

Images are ``(H, W, C)`` RGB (or ``(H, W)`` / ``(H, W, 1)`` grey) arrays, ``uint8`` or floating
point, in ``0..data_range`` (255 by default; pass ``data_range=1.0`` for [0, 1] floats). The
conventions are BasicSR's (``calculate_psnr`` / ``calculate_ssim``), which most restoration papers
report:

* luma ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` with ``R, G, B`` in 0..255, unrounded;
* ``crop_border`` pixels are removed from every side before measuring (usually the SR scale);
* SSIM (Wang et al. 2004): 11x11 Gaussian window of sigma 1.5, ``K1 = 0.01``, ``K2 = 0.03``,
  ``L = 255``, only window positions fully inside the image, mean of the SSIM map; the SSIM of an
  RGB image is the mean of its three per-channel SSIMs.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import cv2
import numpy as np

__all__ = [
    "flat_region_noise",
    "lpips_distance",
    "psnr",
    "radial_power_spectrum",
    "rgb_to_y",
    "spectrum_error",
    "ssim",
]

_SSIM_WINDOW_SIZE = 11
_SSIM_SIGMA = 1.5
_SSIM_C1 = (0.01 * 255.0) ** 2
_SSIM_C2 = (0.03 * 255.0) ** 2
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966], dtype=np.float64)


def _as_float64(image: np.ndarray, name: str) -> np.ndarray:
    """``(H, W, C)`` float64 copy of an ``(H, W)`` or ``(H, W, C)`` array."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array of shape (H, W, C) or (H, W), got {type(image).__name__}")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise ValueError(f"{name} must have shape (H, W, C) or (H, W), got shape {image.shape}")
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise TypeError(f"{name} must be an integer or floating point array, got dtype {image.dtype}")
    return image.astype(np.float64)


def _check_data_range(data_range: float) -> float:
    if not data_range > 0.0:
        raise ValueError(f"data_range must be > 0 (255 for 8-bit values, 1.0 for [0, 1] floats), got {data_range!r}")
    return float(data_range)


def rgb_to_y(image: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """Luma of the ITU-R BT.601 "studio swing" YCbCr, as MATLAB's ``rgb2ycbcr`` (unrounded).

    Args:
        image: ``(H, W, 3)`` RGB array in ``0..data_range``.
        data_range: Value of white (255 for 8-bit values).

    Returns:
        ``(H, W)`` float64 luma in the same units: 16..235 for ``data_range=255``.
    """
    data_range = _check_data_range(data_range)
    rgb = _as_float64(image, "image")
    if rgb.shape[2] != 3:
        raise ValueError(f"rgb_to_y needs an RGB image of shape (H, W, 3), got shape {image.shape}")
    if data_range != 255.0:
        rgb *= 255.0 / data_range
    luma = 16.0 + (rgb @ _Y_WEIGHTS) / 255.0
    return luma if data_range == 255.0 else luma * (data_range / 255.0)


def _prepare_pair(
    a: np.ndarray, b: np.ndarray, crop_border: int, y_channel: bool, data_range: float
) -> tuple[np.ndarray, np.ndarray]:
    """Both images as float64 ``(H, W, C)``, converted to luma and cropped as asked."""
    first, second = _as_float64(a, "a"), _as_float64(b, "b")
    if first.shape != second.shape:
        raise ValueError(f"the images must have the same shape, got {np.shape(a)} and {np.shape(b)}")
    if isinstance(crop_border, bool) or not isinstance(crop_border, (int, np.integer)) or crop_border < 0:
        raise ValueError(f"crop_border must be a non-negative integer (pixels per side), got {crop_border!r}")
    if y_channel:
        if first.shape[2] != 3:
            raise ValueError(f"y_channel=True needs RGB images of shape (H, W, 3), got shape {np.shape(a)}")
        first = rgb_to_y(first, data_range)[..., None]
        second = rgb_to_y(second, data_range)[..., None]
    if crop_border:
        height, width = first.shape[:2]
        if height <= 2 * crop_border or width <= 2 * crop_border:
            raise ValueError(f"crop_border {crop_border} removes all of an image of size {height}x{width}")
        first = first[crop_border:-crop_border, crop_border:-crop_border]
        second = second[crop_border:-crop_border, crop_border:-crop_border]
    return first, second


def psnr(
    a: np.ndarray,
    b: np.ndarray,
    data_range: float = 255.0,
    crop_border: int = 0,
    y_channel: bool = False,
) -> float:
    """Peak signal-to-noise ratio ``10 log10(data_range^2 / MSE)`` in dB.

    The MSE is the mean over every pixel and channel (after the crop and the optional luma
    conversion). Identical images give ``math.inf``.

    Args:
        a: ``(H, W, C)`` or ``(H, W)`` image in ``0..data_range``.
        b: Image of the same shape.
        data_range: Peak value (255 for 8-bit images, 1.0 for [0, 1] floats).
        crop_border: Pixels removed from every side first.
        y_channel: Measure on the luma of RGB images (:func:`rgb_to_y`).

    Returns:
        PSNR in dB (``inf`` for identical images).
    """
    data_range = _check_data_range(data_range)
    first, second = _prepare_pair(a, b, crop_border, y_channel, data_range)
    mse = float(np.mean((first - second) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def _ssim_window_1d() -> np.ndarray:
    return cv2.getGaussianKernel(_SSIM_WINDOW_SIZE, _SSIM_SIGMA).astype(np.float64)


def _ssim_map(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """SSIM map of two 2-D float64 images in 0..255, at the window positions inside the image."""
    window = _ssim_window_1d()
    radius = _SSIM_WINDOW_SIZE // 2

    def local_mean(values: np.ndarray) -> np.ndarray:
        filtered = cv2.sepFilter2D(values, cv2.CV_64F, window, window, borderType=cv2.BORDER_REFLECT)
        return filtered[radius:-radius, radius:-radius]

    mean_first, mean_second = local_mean(first), local_mean(second)
    mean_first_sq, mean_second_sq = mean_first**2, mean_second**2
    mean_product = mean_first * mean_second
    variance_first = local_mean(first * first) - mean_first_sq
    variance_second = local_mean(second * second) - mean_second_sq
    covariance = local_mean(first * second) - mean_product
    numerator = (2.0 * mean_product + _SSIM_C1) * (2.0 * covariance + _SSIM_C2)
    denominator = (mean_first_sq + mean_second_sq + _SSIM_C1) * (variance_first + variance_second + _SSIM_C2)
    return numerator / denominator


def ssim(
    a: np.ndarray,
    b: np.ndarray,
    crop_border: int = 0,
    y_channel: bool = False,
    data_range: float = 255.0,
) -> float:
    """Structural similarity (Wang et al. 2004) with BasicSR's conventions (see the module docstring).

    Values are rescaled to 0..255 first, so the constants are those of ``L = 255`` whatever
    ``data_range``. Each side of the (cropped) image must be at least 11 pixels.

    Args:
        a: ``(H, W, C)`` or ``(H, W)`` image in ``0..data_range``.
        b: Image of the same shape.
        crop_border: Pixels removed from every side first.
        y_channel: Measure on the luma of RGB images (:func:`rgb_to_y`).
        data_range: Value of white (255 for 8-bit images, 1.0 for [0, 1] floats).

    Returns:
        Mean SSIM, averaged over channels; 1.0 for identical images.
    """
    data_range = _check_data_range(data_range)
    first, second = _prepare_pair(a, b, crop_border, y_channel, data_range)
    height, width = first.shape[:2]
    if height < _SSIM_WINDOW_SIZE or width < _SSIM_WINDOW_SIZE:
        raise ValueError(
            f"SSIM needs images of at least {_SSIM_WINDOW_SIZE}x{_SSIM_WINDOW_SIZE} pixels after cropping, "
            f"got {height}x{width}"
        )
    if data_range != 255.0:
        first *= 255.0 / data_range
        second *= 255.0 / data_range
    values = [float(_ssim_map(first[..., c], second[..., c]).mean()) for c in range(first.shape[2])]
    return float(np.mean(values))


def radial_power_spectrum(image: np.ndarray, data_range: float = 255.0) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of an image's luma.

    The luma (:func:`rgb_to_y` for RGB, the single channel for grey) is divided by ``data_range``,
    its mean is removed, a 2-D Hann window limits leakage from the borders, and ``|FFT|^2`` divided
    by the window energy (so white noise of variance ``v`` has a flat spectrum ``v``) is averaged
    over rings of width ``1 / min(H, W)`` cycles per pixel.

    Args:
        image: ``(H, W, 3)`` RGB or ``(H, W)`` / ``(H, W, 1)`` grey image in ``0..data_range``, each
            side at least 8 pixels.
        data_range: Value of white.

    Returns:
        ``(frequencies, power)``: float64 arrays of length ``min(H, W) // 2 + 1``, the ring centres
        ``k / min(H, W)`` (0 to 0.5 cycles per pixel) and the mean power in each ring.
    """
    data_range = _check_data_range(data_range)
    pixels = _as_float64(image, "image")
    if pixels.shape[2] == 3:
        luma = rgb_to_y(pixels, data_range) / data_range
    elif pixels.shape[2] == 1:
        luma = pixels[..., 0] / data_range
    else:
        raise ValueError(f"image must be RGB (H, W, 3) or grey (H, W) / (H, W, 1), got shape {image.shape}")
    height, width = luma.shape
    if min(height, width) < 8:
        raise ValueError(f"image must be at least 8x8 pixels for a power spectrum, got {height}x{width}")
    window = np.outer(np.hanning(height), np.hanning(width))
    spectrum = np.fft.fft2((luma - luma.mean()) * window)
    power = (spectrum.real**2 + spectrum.imag**2) / np.sum(window**2)
    side = min(height, width)
    radius = np.hypot(np.fft.fftfreq(height)[:, None], np.fft.fftfreq(width)[None, :])
    ring = np.rint(radius * side).astype(np.int64).ravel()
    num_rings = side // 2 + 1
    inside = ring < num_rings
    totals = np.bincount(ring[inside], weights=power.ravel()[inside], minlength=num_rings)
    counts = np.bincount(ring[inside], minlength=num_rings)
    return np.arange(num_rings, dtype=np.float64) / side, totals / np.maximum(counts, 1)


def spectrum_error(output: np.ndarray, target: np.ndarray, data_range: float = 255.0) -> float:
    """Mean absolute difference of the log10 radial power spectra, excluding the DC ring.

    0 for identical spectra; an over-smoothed output (missing high frequencies) scores high. A value
    of 1 means the power is off by a factor of 10 on average.

    Args:
        output: ``(H, W, C)`` restored image in ``0..data_range``.
        target: Reference image of the same shape.
        data_range: Value of white.

    Returns:
        The mean absolute log10 power ratio over the rings from ``1 / min(H, W)`` to 0.5 cycles/pixel.
    """
    if np.shape(output) != np.shape(target):
        raise ValueError(f"output and target must have the same shape, got {np.shape(output)} and {np.shape(target)}")
    _, output_power = radial_power_spectrum(output, data_range)
    _, target_power = radial_power_spectrum(target, data_range)
    floor = 1e-20
    difference = np.log10(output_power[1:] + floor) - np.log10(target_power[1:] + floor)
    return float(np.mean(np.abs(difference)))


def flat_region_noise(
    output: np.ndarray, target: np.ndarray, data_range: float = 255.0, flat_std: float = 2.0, window: int = 9
) -> float | None:
    """High-frequency energy the output puts where the target is flat, relative to the target's own.

    A detector of hallucinated texture (the dot or grid patterns a GAN can paint on smooth areas):
    luma high-pass ``Y - GaussianBlur(Y, sigma=1)`` of both images, averaged as power over the pixels
    whose target luma has a local standard deviation (``window`` x ``window`` box) below ``flat_std``
    (on the 0..255 scale), output over target. 1 means as much fine detail in flat areas as the
    reference; below 1 smoother; well above 1 added texture or noise.

    Args:
        output: ``(H, W, C)`` restored image in ``0..data_range``.
        target: Reference image of the same shape.
        data_range: Value of white.
        flat_std: Local standard deviation (0..255 scale) under which a target pixel counts as flat.
        window: Side of the box of the local standard deviation.

    Returns:
        The power ratio, or ``None`` when the target has no flat pixel (the ratio is then undefined).
    """
    if np.shape(output) != np.shape(target):
        raise ValueError(f"output and target must have the same shape, got {np.shape(output)} and {np.shape(target)}")
    scale = 255.0 / data_range
    y_out = rgb_to_y(output, data_range) * scale
    y_target = rgb_to_y(target, data_range) * scale
    mean = cv2.blur(y_target, (window, window), borderType=cv2.BORDER_REFLECT)
    variance = cv2.blur(y_target * y_target, (window, window), borderType=cv2.BORDER_REFLECT) - mean * mean
    flat = np.sqrt(np.maximum(variance, 0.0)) < flat_std
    border = window // 2 + 3  # the box and the blur read outside the image there
    flat[:border] = flat[-border:] = False
    flat[:, :border] = flat[:, -border:] = False
    if not flat.any():
        return None

    def high_pass(y: np.ndarray) -> np.ndarray:
        return y - cv2.GaussianBlur(y, (0, 0), sigmaX=1.0, borderType=cv2.BORDER_REFLECT)

    target_power = float(np.mean(high_pass(y_target)[flat] ** 2))
    output_power = float(np.mean(high_pass(y_out)[flat] ** 2))
    return output_power / max(target_power, 1e-12)


@functools.lru_cache(maxsize=None)
def _load_lpips(net: str) -> Any | None:
    """The ``lpips.LPIPS`` model, or ``None`` when the package or its weights are unavailable."""
    try:
        import lpips  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        model = lpips.LPIPS(net=net, verbose=False)
    except Exception:  # the backbone download fails offline, a corrupt cache, ...
        return None
    return model.eval()


def lpips_distance(a: np.ndarray, b: np.ndarray, data_range: float = 255.0, net: str = "alex") -> float | None:
    """LPIPS perceptual distance (Zhang et al. 2018) with the optional ``lpips`` package.

    Returns ``None``, never an estimate, when ``lpips`` is not installed (``pip install lpips``) or
    its network weights cannot be loaded (its backbone is downloaded by torchvision on first use).
    The model is loaded once per ``net`` and kept; it runs on the CPU.

    Args:
        a: ``(H, W, 3)`` RGB image in ``0..data_range``.
        b: Image of the same shape.
        data_range: Value of white.
        net: Backbone, ``"alex"`` (the usual choice), ``"vgg"`` or ``"squeeze"``.

    Returns:
        The distance (lower is more similar), or ``None`` when LPIPS is unavailable.
    """
    data_range = _check_data_range(data_range)
    first, second = _as_float64(a, "a"), _as_float64(b, "b")
    if first.shape != second.shape or first.shape[2] != 3:
        raise ValueError(
            f"lpips_distance needs two RGB images of the same shape (H, W, 3), got {np.shape(a)} and {np.shape(b)}"
        )
    model = _load_lpips(net)
    if model is None:
        return None
    import torch

    def to_tensor(image: np.ndarray) -> torch.Tensor:
        scaled = image / data_range * 2.0 - 1.0
        return torch.from_numpy(np.ascontiguousarray(scaled.transpose(2, 0, 1), dtype=np.float32))[None]

    with torch.no_grad():
        distance = model(to_tensor(first), to_tensor(second))
    return float(distance.reshape(-1)[0])
