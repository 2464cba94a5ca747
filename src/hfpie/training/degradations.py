"""Synthetic degradations for training, and the fixed degradations of the evaluation protocol.

Conventions:
    * Images are numpy arrays of shape ``(H, W, C)`` (RGB, or ``C == 1`` for grey). Unless a
      function says otherwise it takes ``uint8`` (divided by 255 first) or floating point images
      in ``[0, 1]`` and returns ``float32`` images in ``[0, 1]``.
    * Gaussian noise levels ``sigma`` are in **0..255 units** (``sigma=25`` adds noise of standard
      deviation ``25 / 255`` to an image in ``[0, 1]``), as in the denoising literature.
    * "Quantize" means what saving an 8-bit image does: ``round(x * 255)``, clipped to ``0..255``,
      divided by 255 again. Every training sampler quantizes its output by default because the
      evaluation inputs are 8-bit images.

Three families of functions:
    * ``add_*`` (and ``gaussian_kernel``, ``downscale_bicubic``) apply a degradation whose
      parameters are all given. Those that add noise also take a ``numpy.random.Generator``, used
      only to draw the noise field, so their output is a deterministic function of the arguments
      and the generator's state.
    * ``random_*`` draw the parameters from the generator (blur width, noise level, JPEG quality,
      ...), then call the matching ``add_*`` with the same generator. Same seed, same output.
    * ``protocol_*`` reproduce the evaluation protocol bit for bit on ``uint8`` images; their
      randomness is seeded from the image index, never from a generator you pass.

The trainer uses the :class:`Degradation` objects (one frozen dataclass per task, built by
:func:`make_degradation`): ``degradation(clean, rng) -> degraded``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
from PIL import Image

from ..tasks import TRAINING_TASKS

__all__ = [
    "DeblurDegradation",
    "Degradation",
    "DenoiseDegradation",
    "RealNoiseDegradation",
    "SuperResolutionDegradation",
    "TASKS",
    "add_blur",
    "add_gaussian_noise",
    "add_jpeg",
    "add_poisson_gaussian_noise",
    "bayer_masks",
    "crop_to_multiple",
    "demosaic_noise",
    "downscale_bicubic",
    "gaussian_kernel",
    "make_degradation",
    "protocol_bicubic_lr",
    "protocol_blur",
    "protocol_gaussian_noise",
    "quantize_to_8bit",
    "random_blur_kernel",
    "random_downscale",
    "random_gaussian_noise",
    "random_jpeg",
    "random_motion_kernel",
    "random_real_noise",
]

TASKS: tuple[str, ...] = TRAINING_TASKS
"""Task names understood by :func:`make_degradation`."""

PROTOCOL_KERNEL_SIZE = 21
"""Side of the blur kernels of the evaluation protocol."""


# --------------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------------


def _as_float_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Return ``image`` as a float32 ``(H, W, C)`` array in [0, 1] (uint8 is divided by 255)."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array of shape (H, W, C), got {type(image).__name__}")
    if image.ndim != 3 or image.shape[0] == 0 or image.shape[1] == 0 or image.shape[2] == 0:
        raise ValueError(
            f"{name} must have shape (H, W, C) with C = 3 (RGB) or 1 (grey), got shape {image.shape}; "
            "add a channel axis to 2-D images with image[..., None]"
        )
    if image.dtype == np.uint8:
        return image.astype(np.float32) * np.float32(1.0 / 255.0)
    if np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float32, copy=False)
    raise TypeError(f"{name} must be uint8 (0..255) or floating point (0..1), got dtype {image.dtype}")


def _check_uint8_image(image: np.ndarray, name: str = "image") -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise TypeError(f"{name} must be a uint8 array of shape (H, W, C), got dtype {dtype} and shape {shape}")


def _check_range(name: str, value_range: tuple[float, float], low: float, high: float) -> tuple[float, float]:
    if len(value_range) != 2:
        raise ValueError(f"{name} must be a (low, high) pair, got {value_range!r}")
    start, stop = float(value_range[0]), float(value_range[1])
    if not (low <= start <= stop <= high):
        raise ValueError(f"{name} must satisfy {low} <= low <= high <= {high}, got {value_range!r}")
    return start, stop


def _check_probability(name: str, probability: float) -> float:
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {probability!r}")
    return float(probability)


def _check_scale(scale: int) -> int:
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale must be a positive integer such as 2, 3 or 4, got {scale!r}")
    return int(scale)


def _check_integer_seed_part(name: str, value: int | float) -> int:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer (it seeds the protocol), got {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------------------
# Basic operations
# --------------------------------------------------------------------------------------------------


def quantize_to_8bit(image: np.ndarray) -> np.ndarray:
    """Round a [0, 1] image to the 8-bit grid, as saving it to an 8-bit file would.

    Args:
        image: ``(H, W, C)`` float image; values outside [0, 1] are clipped.

    Returns:
        ``(H, W, C)`` float32 image whose values are multiples of 1/255 in [0, 1].
    """
    image = _as_float_image(image)
    return np.clip(np.round(image * np.float32(255.0)), 0.0, 255.0) * np.float32(1.0 / 255.0)


def crop_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
    """Crop the bottom and right of an image so that its height and width divide by ``multiple``.

    Args:
        image: ``(H, W, ...)`` array of any dtype.
        multiple: Positive integer, typically the super-resolution scale.

    Returns:
        A view of shape ``(H - H % multiple, W - W % multiple, ...)``.
    """
    multiple = _check_scale(multiple)
    height, width = image.shape[:2]
    if height < multiple or width < multiple:
        raise ValueError(f"image of size {height}x{width} is smaller than the multiple {multiple}; use a larger image")
    return image[: height - height % multiple, : width - width % multiple]


# --------------------------------------------------------------------------------------------------
# Additive white Gaussian noise
# --------------------------------------------------------------------------------------------------


def add_gaussian_noise(
    image: np.ndarray, sigma: float, rng: np.random.Generator, *, quantize: bool = True
) -> np.ndarray:
    """Add white Gaussian noise of standard deviation ``sigma`` (0..255 units).

    The noise is added in floating point; the result is clipped to [0, 1] and, with ``quantize``,
    rounded to the 8-bit grid (the evaluation protocol's "add in float, round, clip").

    Args:
        image: ``(H, W, C)`` clean image, uint8 or float in [0, 1].
        sigma: Noise standard deviation in 0..255 units, >= 0.
        rng: Generator that draws the ``(H, W, C)`` standard normal noise field.
        quantize: Round the result to multiples of 1/255.

    Returns:
        ``(H, W, C)`` float32 noisy image in [0, 1].
    """
    image = _as_float_image(image)
    if not sigma >= 0.0:
        raise ValueError(f"sigma must be >= 0 in 0..255 units (25 is a typical value), got {sigma!r}")
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    noisy = image + np.float32(sigma / 255.0) * noise
    return quantize_to_8bit(noisy) if quantize else np.clip(noisy, 0.0, 1.0)


def random_gaussian_noise(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    sigma_range: tuple[float, float] = (0.0, 50.0),
    quantize: bool = True,
) -> np.ndarray:
    """Add white Gaussian noise with ``sigma`` drawn uniformly from ``sigma_range`` (0..255 units).

    Args:
        image: ``(H, W, C)`` clean image, uint8 or float in [0, 1].
        rng: Generator for the noise level and the noise field.
        sigma_range: ``(low, high)`` noise standard deviations in 0..255 units; the default covers
            the blind-denoising range 0-50.
        quantize: Round the result to the 8-bit grid.

    Returns:
        ``(H, W, C)`` float32 noisy image in [0, 1].
    """
    low, high = _check_range("sigma_range", sigma_range, 0.0, math.inf)
    sigma = float(rng.uniform(low, high))
    return add_gaussian_noise(image, sigma, rng, quantize=quantize)


# --------------------------------------------------------------------------------------------------
# Real (camera) noise
# --------------------------------------------------------------------------------------------------


# Bilinear demosaicing of one colour plane of an RGGB Bayer mosaic (zero where the plane has no sample).
BAYER_RB_KERNEL = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float32) / 4
BAYER_G_KERNEL = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], dtype=np.float32) / 4


def bayer_masks(height: int, width: int) -> np.ndarray:
    """``(H, W, 3)`` float32 masks of an RGGB Bayer mosaic: 1 where the sensor samples that colour."""
    masks = np.zeros((height, width, 3), dtype=np.float32)
    masks[0::2, 0::2, 0] = 1.0
    masks[0::2, 1::2, 1] = 1.0
    masks[1::2, 0::2, 1] = 1.0
    masks[1::2, 1::2, 2] = 1.0
    return masks


def demosaic_noise(noise: np.ndarray) -> np.ndarray:
    """Keep one colour of ``(H, W, 3)`` noise per pixel (an RGGB mosaic) and interpolate the rest bilinearly.

    The result is the noise a camera's bilinear demosaicing leaves: correlated across neighbouring
    pixels and channels, with lower variance where a colour was interpolated.
    """
    sampled = noise * bayer_masks(*noise.shape[:2])
    planes = [cv2.filter2D(np.ascontiguousarray(sampled[..., c]), -1, kernel, borderType=cv2.BORDER_REFLECT_101)
              for c, kernel in enumerate((BAYER_RB_KERNEL, BAYER_G_KERNEL, BAYER_RB_KERNEL))]
    return np.stack(planes, axis=-1)


def add_poisson_gaussian_noise(
    image: np.ndarray,
    shot_noise: float,
    read_noise: float,
    rng: np.random.Generator,
    *,
    gamma: float = 2.2,
    quantize: bool = True,
    demosaic: bool = False,
) -> np.ndarray:
    """Add signal-dependent camera noise in linear light, through a simple gamma pipeline.

    The image is taken to linear light with ``x ** gamma``, noise of variance
    ``shot_noise * x + read_noise ** 2`` is added (the heteroscedastic Gaussian approximation of
    Poisson shot noise plus Gaussian read noise; ``x`` in [0, 1] is the linear intensity), the result
    is clipped to [0, 1] as a sensor saturates, and taken back with ``x ** (1 / gamma)``.

    Args:
        image: ``(H, W, C)`` clean sRGB-like image, uint8 or float in [0, 1].
        shot_noise: Shot noise gain ``a`` >= 0 (variance per unit of linear signal).
        read_noise: Read noise standard deviation ``sqrt(b)`` >= 0, in linear [0, 1] units.
        rng: Generator that draws the noise field.
        gamma: Display gamma, > 0; 1.0 adds the noise directly to the given values.
        quantize: Round the result to the 8-bit grid.
        demosaic: Pass the noise through an RGGB mosaic and bilinear demosaicing
            (:func:`demosaic_noise`; RGB images only), as a camera's raw noise reaches its photos.

    Returns:
        ``(H, W, C)`` float32 noisy image in [0, 1].
    """
    image = _as_float_image(image)
    if not (shot_noise >= 0.0 and read_noise >= 0.0):
        raise ValueError(f"shot_noise and read_noise must be >= 0, got {shot_noise!r} and {read_noise!r}")
    if not gamma > 0.0:
        raise ValueError(f"gamma must be > 0 (2.2 for sRGB-like images), got {gamma!r}")
    linear = np.power(np.clip(image, 0.0, 1.0), np.float32(gamma))
    standard_deviation = np.sqrt(np.float32(shot_noise) * linear + np.float32(read_noise) ** 2)
    noise = standard_deviation * rng.standard_normal(image.shape, dtype=np.float32)
    if demosaic:
        if image.shape[2] != 3:
            raise ValueError(f"demosaic needs an RGB image, got {image.shape[2]} channels")
        noise = demosaic_noise(noise)
    noisy = np.power(np.clip(linear + noise, 0.0, 1.0), np.float32(1.0 / gamma))
    return quantize_to_8bit(noisy) if quantize else noisy.astype(np.float32, copy=False)


def random_real_noise(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    shot_noise_range: tuple[float, float] = (1e-4, 1e-2),
    read_noise_range: tuple[float, float] = (1e-3, 2e-2),
    gamma: float = 2.2,
    jpeg_probability: float = 0.5,
    jpeg_quality_range: tuple[int, int] = (60, 95),
    demosaic_probability: float = 0.0,
) -> np.ndarray:
    """Simulate a phone photo's noise: Poisson-Gaussian noise in linear light, gamma, JPEG, 8 bits.

    ``shot_noise`` and ``read_noise`` are drawn log-uniformly from their ranges (the defaults span
    low to high ISO phone sensors, as in Brooks et al. 2019, "Unprocessing images"); with
    probability ``jpeg_probability`` the result is JPEG-compressed at a quality drawn uniformly
    from ``jpeg_quality_range``. The output is always on the 8-bit grid.

    Args:
        image: ``(H, W, C)`` clean image, uint8 or float in [0, 1].
        rng: Generator for every random quantity.
        shot_noise_range: ``(low, high)`` of the shot noise gain, both > 0.
        read_noise_range: ``(low, high)`` of the read noise standard deviation, both > 0.
        gamma: Display gamma of the pipeline.
        jpeg_probability: Probability of JPEG compression.
        jpeg_quality_range: Inclusive ``(low, high)`` JPEG quality, within 1..100.
        demosaic_probability: Probability that the noise is demosaiced (spatially correlated, see
            :func:`demosaic_noise`); drawn after the noise levels, and only when > 0, so that 0 keeps
            the random stream of earlier versions.

    Returns:
        ``(H, W, C)`` float32 noisy image in [0, 1].
    """
    shot_low, shot_high = _check_range("shot_noise_range", shot_noise_range, 1e-12, math.inf)
    read_low, read_high = _check_range("read_noise_range", read_noise_range, 1e-12, math.inf)
    jpeg_probability = _check_probability("jpeg_probability", jpeg_probability)
    shot_noise = math.exp(rng.uniform(math.log(shot_low), math.log(shot_high)))
    read_noise = math.exp(rng.uniform(math.log(read_low), math.log(read_high)))
    demosaic = _check_probability("demosaic_probability", demosaic_probability) > 0 and rng.random() < demosaic_probability
    noisy = add_poisson_gaussian_noise(image, shot_noise, read_noise, rng, gamma=gamma, quantize=False,
                                       demosaic=demosaic)
    if rng.random() < jpeg_probability:
        return random_jpeg(noisy, rng, quality_range=jpeg_quality_range)
    return quantize_to_8bit(noisy)


# --------------------------------------------------------------------------------------------------
# Blur
# --------------------------------------------------------------------------------------------------


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float | None = None, angle: float = 0.0) -> np.ndarray:
    """A rotated anisotropic Gaussian blur kernel, normalised to sum to 1.

    With ``y, x`` the integer offsets from the centre, ``u = cos(angle) x + sin(angle) y`` and
    ``v = -sin(angle) x + cos(angle) y``, the kernel is ``exp(-(u^2 / sigma_x^2 + v^2 / sigma_y^2) / 2)``
    divided by its sum (the evaluation protocol's formula, bit for bit, for ``size=21``).

    Args:
        size: Odd side length of the kernel.
        sigma_x: Standard deviation along the rotated x axis, in pixels, > 0.
        sigma_y: Standard deviation along the rotated y axis; ``None`` for ``sigma_x`` (isotropic).
        angle: Rotation in radians.

    Returns:
        ``(size, size)`` float64 kernel summing to 1.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1 or size % 2 == 0:
        raise ValueError(f"size must be an odd positive integer such as 21, got {size!r}")
    if sigma_y is None:
        sigma_y = sigma_x
    if not (sigma_x > 0.0 and sigma_y > 0.0):
        raise ValueError(f"sigma_x and sigma_y must be > 0 pixels, got {sigma_x!r} and {sigma_y!r}")
    radius = int(size) // 2
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1].astype(np.float64)
    u = np.cos(angle) * x + np.sin(angle) * y
    v = -np.sin(angle) * x + np.cos(angle) * y
    kernel = np.exp(-0.5 * (u**2 / sigma_x**2 + v**2 / sigma_y**2))
    kernel /= kernel.sum()
    return kernel


def add_blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve every channel with ``kernel``, extending the image by symmetric reflection.

    The border rule is ``scipy.ndimage.convolve(..., mode="reflect")`` ("dcba|abcd", OpenCV's
    ``BORDER_REFLECT``), and this is a true convolution (the kernel is flipped; ``cv2.filter2D``
    alone computes a correlation). A non-negative kernel summing to 1 keeps values in [0, 1].

    Args:
        image: ``(H, W, C)`` image, uint8 or float in [0, 1].
        kernel: ``(kh, kw)`` kernel with odd sides.

    Returns:
        ``(H, W, C)`` float32 blurred image.
    """
    image = _as_float_image(image)
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
        raise ValueError(f"kernel must be a 2-D array with odd sides such as (21, 21), got shape {kernel.shape}")
    flipped = np.ascontiguousarray(kernel[::-1, ::-1])
    blurred = cv2.filter2D(image, -1, flipped, borderType=cv2.BORDER_REFLECT)
    return blurred.reshape(image.shape)


def random_blur_kernel(
    rng: np.random.Generator,
    *,
    size_range: tuple[int, int] = (7, 21),
    sigma_range: tuple[float, float] = (0.6, 3.0),
    isotropic_probability: float = 0.5,
) -> np.ndarray:
    """Draw a Gaussian blur kernel of random odd size, width and orientation.

    The size is uniform over the odd integers in ``size_range``; with probability
    ``isotropic_probability`` one sigma is drawn (angle 0), otherwise ``sigma_x`` and ``sigma_y``
    are drawn independently from ``sigma_range`` and the angle uniformly from [0, pi).

    Args:
        rng: Generator.
        size_range: Inclusive ``(low, high)`` kernel sides; must contain an odd integer.
        sigma_range: ``(low, high)`` standard deviations in pixels, low > 0.
        isotropic_probability: Probability of an isotropic kernel.

    Returns:
        ``(size, size)`` float64 kernel summing to 1.
    """
    size_low, size_high = _check_range("size_range", size_range, 1, math.inf)
    sigma_low, sigma_high = _check_range("sigma_range", sigma_range, 1e-12, math.inf)
    isotropic_probability = _check_probability("isotropic_probability", isotropic_probability)
    sizes = [size for size in range(int(math.ceil(size_low)), int(size_high) + 1) if size % 2 == 1]
    if not sizes:
        raise ValueError(f"size_range must contain an odd integer, got {size_range!r}")
    size = sizes[int(rng.integers(len(sizes)))]
    if rng.random() < isotropic_probability:
        sigma = float(rng.uniform(sigma_low, sigma_high))
        return gaussian_kernel(size, sigma, sigma, 0.0)
    sigma_x = float(rng.uniform(sigma_low, sigma_high))
    sigma_y = float(rng.uniform(sigma_low, sigma_high))
    angle = float(rng.uniform(0.0, math.pi))
    return gaussian_kernel(size, sigma_x, sigma_y, angle)


def random_motion_kernel(
    rng: np.random.Generator,
    *,
    size: int = 25,
    length_range: tuple[float, float] = (4.0, 20.0),
    points: int = 64,
) -> np.ndarray:
    """Draw a camera-shake blur kernel: a smooth random 2-D trajectory rasterised on a grid.

    The trajectory is a random walk with momentum (velocity changes by Gaussian accelerations, with
    a random mix of straight and curved paths), scaled so that its largest extent is a length drawn
    from ``length_range``, centred on its centroid and splatted bilinearly onto a ``size x size``
    grid (points that would fall outside are dropped), then thickened by a Gaussian of sigma
    0.3-1 pixel.

    Args:
        rng: Generator.
        size: Odd kernel side in pixels.
        length_range: ``(low, high)`` extent of the trajectory in pixels; ``high < size``.
        points: Samples along the trajectory.

    Returns:
        ``(size, size)`` float64 kernel summing to 1.
    """
    if size < 3 or size % 2 == 0:
        raise ValueError(f"size must be an odd integer >= 3, got {size!r}")
    low, high = _check_range("length_range", length_range, 0.0, size - 1)
    length = float(rng.uniform(low, high))
    curviness = float(rng.uniform(0.0, 1.0))
    angle = float(rng.uniform(0.0, 2 * math.pi))
    velocity = np.array([math.cos(angle), math.sin(angle)])
    position = np.zeros(2)
    trajectory = np.empty((points, 2))
    for i in range(points):
        trajectory[i] = position
        velocity = velocity + curviness * rng.standard_normal(2) * 0.5
        velocity /= max(np.linalg.norm(velocity), 1e-8)
        position = position + velocity
    trajectory -= trajectory.mean(axis=0)
    extent = float(np.max(np.ptp(trajectory, axis=0)))
    trajectory *= length / max(extent, 1e-8)
    kernel = np.zeros((size, size))
    centre = size // 2
    for y, x in trajectory[:, ::-1] + centre:
        top, left = int(math.floor(y)), int(math.floor(x))
        fy, fx = y - top, x - left
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                if 0 <= top + dy < size and 0 <= left + dx < size:
                    kernel[top + dy, left + dx] += wy * wx
    if kernel.sum() <= 0:  # pragma: no cover - the centred trajectory always lands on the grid
        kernel[centre, centre] = 1.0
    thickness = float(rng.uniform(0.3, 1.0))  # exposure jitter / optics: a slightly thick path
    kernel = cv2.GaussianBlur(kernel, (0, 0), thickness, borderType=cv2.BORDER_CONSTANT)
    return kernel / kernel.sum()


# --------------------------------------------------------------------------------------------------
# JPEG
# --------------------------------------------------------------------------------------------------


def add_jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """JPEG-compress and decode an image with OpenCV (libjpeg, 4:2:0 chroma subsampling).

    Args:
        image: ``(H, W, 3)`` RGB or ``(H, W, 1)`` grey image, uint8 or float in [0, 1] (quantized
            to 8 bits before encoding).
        quality: JPEG quality, an integer in 1..100.

    Returns:
        ``(H, W, C)`` float32 decoded image on the 8-bit grid.
    """
    image = _as_float_image(image)
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an integer in 1..100 (90 is typical), got {quality!r}")
    channels = image.shape[2]
    if channels not in (1, 3):
        raise ValueError(f"add_jpeg needs an RGB (H, W, 3) or grey (H, W, 1) image, got shape {image.shape}")
    pixels = np.clip(np.round(image * np.float32(255.0)), 0, 255).astype(np.uint8)
    if channels == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    else:
        pixels = pixels[..., 0]
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"OpenCV failed to JPEG-encode an image of shape {image.shape}")
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR if channels == 3 else cv2.IMREAD_GRAYSCALE)
    if channels == 3:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    return decoded.reshape(image.shape).astype(np.float32) * np.float32(1.0 / 255.0)


def random_jpeg(
    image: np.ndarray, rng: np.random.Generator, *, quality_range: tuple[int, int] = (60, 95)
) -> np.ndarray:
    """JPEG-compress with a quality drawn uniformly from the inclusive ``quality_range``.

    Args:
        image: ``(H, W, 3)`` or ``(H, W, 1)`` image, uint8 or float in [0, 1].
        rng: Generator.
        quality_range: Inclusive ``(low, high)`` qualities within 1..100.

    Returns:
        ``(H, W, C)`` float32 decoded image on the 8-bit grid.
    """
    low, high = _check_range("quality_range", quality_range, 1, 100)
    quality = int(rng.integers(int(low), int(high) + 1))
    return add_jpeg(image, quality)


# --------------------------------------------------------------------------------------------------
# Downscaling
# --------------------------------------------------------------------------------------------------


def downscale_bicubic(image: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic, antialiased downscaling by an integer factor with Pillow (MATLAB-like ``imresize``).

    The image is first cropped at the top left to a multiple of ``scale`` (:func:`crop_to_multiple`).
    ``uint8`` images go through ``Image.resize(..., Image.BICUBIC)`` exactly as the evaluation
    protocol does and stay ``uint8``. Floating point images are resized channel by channel in
    Pillow's 32-bit float mode ``"F"`` (same filter, no intermediate rounding) and clipped to [0, 1].

    Args:
        image: ``(H, W, C)`` image, uint8 or float in [0, 1].
        scale: Positive integer factor.

    Returns:
        ``(H // scale, W // scale, C)`` image: uint8 for uint8 input, float32 otherwise.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3:
        raise ValueError(f"image must be an array of shape (H, W, C), got shape {getattr(image, 'shape', None)}")
    image = crop_to_multiple(image, scale)
    height, width, channels = image.shape
    size = (width // scale, height // scale)
    if image.dtype == np.uint8:
        if channels in (3, 4):
            return np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))
        planes = [np.asarray(Image.fromarray(image[..., c]).resize(size, Image.BICUBIC)) for c in range(channels)]
        return np.stack(planes, axis=-1)
    image = _as_float_image(image)
    planes = [
        np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c])).resize(size, Image.BICUBIC))
        for c in range(channels)
    ]
    return np.clip(np.stack(planes, axis=-1), 0.0, 1.0).astype(np.float32, copy=False)


def random_downscale(
    image: np.ndarray,
    scale: int,
    rng: np.random.Generator,
    *,
    blur_probability: float = 0.0,
    blur_sigma_range: tuple[float, float] = (0.2, 0.8),
    quantize: bool = True,
) -> np.ndarray:
    """Make a low-resolution image: optional mild Gaussian blur, then bicubic downscaling.

    With probability ``blur_probability`` an isotropic Gaussian of sigma drawn from
    ``blur_sigma_range`` (kernel side ``2 * ceil(3 sigma) + 1``) is applied first, which makes the
    model robust to slightly soft inputs; the default 0 gives the pure bicubic degradation of the
    evaluation protocol.

    Args:
        image: ``(H, W, C)`` high-resolution image, uint8 or float in [0, 1]; cropped at the top left
            to a multiple of ``scale``.
        scale: Positive integer downscaling factor.
        rng: Generator.
        blur_probability: Probability of the pre-blur.
        blur_sigma_range: ``(low, high)`` sigma of the pre-blur in high-resolution pixels, low > 0.
        quantize: Round the result to the 8-bit grid (evaluation inputs are 8-bit).

    Returns:
        ``(H // scale, W // scale, C)`` float32 image in [0, 1].
    """
    blur_probability = _check_probability("blur_probability", blur_probability)
    sigma_low, sigma_high = _check_range("blur_sigma_range", blur_sigma_range, 1e-12, math.inf)
    image = crop_to_multiple(_as_float_image(image), scale)
    if rng.random() < blur_probability:
        sigma = float(rng.uniform(sigma_low, sigma_high))
        image = add_blur(image, gaussian_kernel(2 * math.ceil(3.0 * sigma) + 1, sigma))
    low_resolution = downscale_bicubic(image, scale)
    return quantize_to_8bit(low_resolution) if quantize else low_resolution


# --------------------------------------------------------------------------------------------------
# Evaluation protocol (bit-exact, uint8 in and out)
# --------------------------------------------------------------------------------------------------


def protocol_gaussian_noise(clean_u8: np.ndarray, sigma: int, index: int) -> np.ndarray:
    """The evaluation protocol's Gaussian denoising input.

    Noise of standard deviation ``sigma`` (0..255 units) from
    ``numpy.random.default_rng(10_000 * sigma + index)`` is added in float64, then the result is
    rounded and clipped to 0..255.

    Args:
        clean_u8: ``(H, W, C)`` uint8 clean image.
        sigma: Integer noise level in 0..255 units (15, 25 or 50 in the benchmarks).
        index: Position of the image in the sorted list of the test set's files.

    Returns:
        ``(H, W, C)`` uint8 noisy image.
    """
    _check_uint8_image(clean_u8, "clean_u8")
    sigma = _check_integer_seed_part("sigma", sigma)
    index = _check_integer_seed_part("index", index)
    rng = np.random.default_rng(10_000 * sigma + index)
    noisy = clean_u8.astype(np.float64) + sigma * rng.standard_normal(clean_u8.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def protocol_blur(clean_u8: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
    """The evaluation protocol's deblurring input: a random 21x21 Gaussian blur plus noise of sigma 2.

    From ``numpy.random.default_rng(20_000 + index)``: ``sigma_x, sigma_y ~ U(0.6, 3.0)``,
    ``angle ~ U(0, pi)``; the kernel is :func:`gaussian_kernel` of size 21; every channel is
    convolved in float64 with ``scipy.ndimage.convolve(mode="reflect")``; noise of standard deviation
    2 (0..255 units) is added and the result is rounded and clipped to 0..255. Needs scipy (part of
    the ``train`` extra).

    Args:
        clean_u8: ``(H, W, C)`` uint8 clean image.
        index: Position of the image in the sorted list of the test set's files.

    Returns:
        ``(degraded_u8, kernel)``: the ``(H, W, C)`` uint8 blurred noisy image and the ``(21, 21)``
        float64 kernel.
    """
    try:
        from scipy import ndimage
    except ImportError as error:  # pragma: no cover - scipy is a dependency of the train extra
        raise ImportError("protocol_blur needs scipy: pip install 'hfpie[train]'") from error
    _check_uint8_image(clean_u8, "clean_u8")
    index = _check_integer_seed_part("index", index)
    rng = np.random.default_rng(20_000 + index)
    sigma_x, sigma_y, angle = rng.uniform(0.6, 3.0), rng.uniform(0.6, 3.0), rng.uniform(0.0, np.pi)
    kernel = gaussian_kernel(PROTOCOL_KERNEL_SIZE, sigma_x, sigma_y, angle)
    channels = range(clean_u8.shape[2])
    blurred = np.stack(
        [ndimage.convolve(clean_u8[..., c].astype(np.float64), kernel, mode="reflect") for c in channels], axis=-1
    )
    noisy = np.clip(np.round(blurred + 2.0 * rng.standard_normal(blurred.shape)), 0, 255).astype(np.uint8)
    return noisy, kernel


def protocol_bicubic_lr(hr_u8: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """The evaluation protocol's super-resolution pair: HR cropped to a multiple of ``scale``, and its
    Pillow bicubic downscaling.

    Args:
        hr_u8: ``(H, W, C)`` uint8 high-resolution image.
        scale: Integer factor (2, 3 or 4 in the benchmarks).

    Returns:
        ``(hr_cropped, lr)``: uint8 arrays of shapes ``(H - H % s, W - W % s, C)`` and
        ``(H // s, W // s, C)``.
    """
    _check_uint8_image(hr_u8, "hr_u8")
    hr_cropped = crop_to_multiple(hr_u8, scale)
    return hr_cropped, downscale_bicubic(hr_cropped, scale)


# --------------------------------------------------------------------------------------------------
# Degradation objects for the trainer
# --------------------------------------------------------------------------------------------------


class Degradation(Protocol):
    """What the training dataset needs: a callable from a clean image and a generator to its input.

    ``clean`` is an ``(H, W, 3)`` float32 image in [0, 1] with ``H`` and ``W`` multiples of
    ``scale``; the result is the float32 ``(H // scale, W // scale, 3)`` degraded image in [0, 1].
    """

    @property
    def scale(self) -> int:
        """Input pixels per output pixel along each axis: 1 for restoration, the factor for SR."""
        ...

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Degrade ``clean`` using ``rng`` for every random choice."""
        ...


@dataclass(frozen=True)
class DenoiseDegradation:
    """Blind Gaussian denoising: white noise with sigma uniform in ``sigma_range`` (0..255 units)."""

    sigma_range: tuple[float, float] = (0.0, 50.0)
    quantize: bool = True

    def __post_init__(self) -> None:
        _check_range("sigma_range", self.sigma_range, 0.0, math.inf)

    @property
    def scale(self) -> int:
        """Always 1."""
        return 1

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Return the noisy ``(H, W, C)`` float32 image; see :func:`random_gaussian_noise`."""
        return random_gaussian_noise(clean, rng, sigma_range=self.sigma_range, quantize=self.quantize)


@dataclass(frozen=True)
class RealNoiseDegradation:
    """Camera-like noise: Poisson-Gaussian in linear light, gamma, optional JPEG; see :func:`random_real_noise`.

    With probability ``clean_probability`` a sample is left clean (the 8-bit image itself, target
    equal to input), which teaches the model to leave photos without noise alone.
    """

    shot_noise_range: tuple[float, float] = (1e-4, 1e-2)
    read_noise_range: tuple[float, float] = (1e-3, 2e-2)
    gamma: float = 2.2
    jpeg_probability: float = 0.5
    jpeg_quality_range: tuple[int, int] = (60, 95)
    clean_probability: float = 0.0
    demosaic_probability: float = 0.0
    """Share of samples whose noise goes through a Bayer mosaic and bilinear demosaicing (correlated noise)."""

    def __post_init__(self) -> None:
        _check_probability("clean_probability", self.clean_probability)
        _check_probability("demosaic_probability", self.demosaic_probability)
        _check_range("shot_noise_range", self.shot_noise_range, 1e-12, math.inf)
        _check_range("read_noise_range", self.read_noise_range, 1e-12, math.inf)
        _check_probability("jpeg_probability", self.jpeg_probability)
        _check_range("jpeg_quality_range", self.jpeg_quality_range, 1, 100)
        if not self.gamma > 0.0:
            raise ValueError(f"gamma must be > 0 (2.2 for sRGB-like images), got {self.gamma!r}")

    @property
    def scale(self) -> int:
        """Always 1."""
        return 1

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Return the noisy ``(H, W, C)`` float32 image on the 8-bit grid."""
        if self.clean_probability > 0 and rng.random() < self.clean_probability:
            return quantize_to_8bit(clean)
        return random_real_noise(
            clean,
            rng,
            shot_noise_range=self.shot_noise_range,
            read_noise_range=self.read_noise_range,
            gamma=self.gamma,
            jpeg_probability=self.jpeg_probability,
            jpeg_quality_range=self.jpeg_quality_range,
            demosaic_probability=self.demosaic_probability,
        )


@dataclass(frozen=True)
class DeblurDegradation:
    """Deblurring: random Gaussian blur, small white noise, optional JPEG, 8-bit quantization.

    The defaults bracket the evaluation protocol (21x21 Gaussian kernels with sigmas in 0.6-3.0 and
    noise of sigma 2, no JPEG). Set ``jpeg_probability`` > 0 for JPEG-compressed blurry inputs
    (as in the REDS deblurring track of the paper).
    """

    kernel_size_range: tuple[int, int] = (7, 21)
    kernel_sigma_range: tuple[float, float] = (0.6, 3.0)
    isotropic_probability: float = 0.5
    noise_sigma_range: tuple[float, float] = (0.0, 3.0)
    jpeg_probability: float = 0.0
    jpeg_quality_range: tuple[int, int] = (60, 95)
    motion_probability: float = 0.0
    """Probability of a camera-shake kernel (:func:`random_motion_kernel`) instead of a Gaussian one."""
    motion_length_range: tuple[float, float] = (4.0, 20.0)

    def __post_init__(self) -> None:
        _check_range("kernel_size_range", self.kernel_size_range, 1, math.inf)
        _check_probability("motion_probability", self.motion_probability)
        _check_range("motion_length_range", self.motion_length_range, 0.0, 24.0)
        _check_range("kernel_sigma_range", self.kernel_sigma_range, 1e-12, math.inf)
        _check_probability("isotropic_probability", self.isotropic_probability)
        _check_range("noise_sigma_range", self.noise_sigma_range, 0.0, math.inf)
        _check_probability("jpeg_probability", self.jpeg_probability)
        _check_range("jpeg_quality_range", self.jpeg_quality_range, 1, 100)

    @property
    def scale(self) -> int:
        """Always 1."""
        return 1

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Return the blurred, noisy ``(H, W, C)`` float32 image on the 8-bit grid."""
        if self.motion_probability > 0 and rng.random() < self.motion_probability:
            kernel = random_motion_kernel(rng, length_range=self.motion_length_range)
        else:
            kernel = random_blur_kernel(
                rng,
                size_range=self.kernel_size_range,
                sigma_range=self.kernel_sigma_range,
                isotropic_probability=self.isotropic_probability,
            )
        degraded = add_blur(clean, kernel)
        degraded = random_gaussian_noise(degraded, rng, sigma_range=self.noise_sigma_range, quantize=False)
        if rng.random() < self.jpeg_probability:
            return random_jpeg(degraded, rng, quality_range=self.jpeg_quality_range)
        return quantize_to_8bit(degraded)


@dataclass(frozen=True)
class SuperResolutionDegradation:
    """Super-resolution: optional mild blur then bicubic downscaling by ``scale``; see :func:`random_downscale`.

    ``clean`` must already have a height and width divisible by ``scale`` (the training dataset
    crops patches whose side is a multiple of the scale; use :func:`crop_to_multiple` otherwise), so
    that the returned low-resolution image is exactly ``scale`` times smaller than ``clean``.
    """

    scale: int = 4
    blur_probability: float = 0.0
    blur_sigma_range: tuple[float, float] = (0.2, 0.8)
    quantize: bool = True

    def __post_init__(self) -> None:
        _check_scale(self.scale)
        _check_probability("blur_probability", self.blur_probability)
        _check_range("blur_sigma_range", self.blur_sigma_range, 1e-12, math.inf)

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Return the ``(H // scale, W // scale, C)`` float32 low-resolution image."""
        height, width = clean.shape[:2]
        if height % self.scale or width % self.scale:
            raise ValueError(
                f"clean image of size {height}x{width} is not a multiple of scale {self.scale}; "
                "crop it first with crop_to_multiple(clean, scale)"
            )
        return random_downscale(
            clean,
            self.scale,
            rng,
            blur_probability=self.blur_probability,
            blur_sigma_range=self.blur_sigma_range,
            quantize=self.quantize,
        )


_DEGRADATION_CLASSES: dict[str, type] = {
    "deblur": DeblurDegradation,
    "denoise": DenoiseDegradation,
    "denoise-real": RealNoiseDegradation,
    "sr": SuperResolutionDegradation,
}


def make_degradation(task: str, **options: object) -> Degradation:
    """Build the training degradation of a task.

    Args:
        task: One of ``"denoise"`` (:class:`DenoiseDegradation`), ``"denoise-real"``
            (:class:`RealNoiseDegradation`), ``"deblur"`` (:class:`DeblurDegradation`) or ``"sr"``
            (:class:`SuperResolutionDegradation`, which takes ``scale``, 4 by default).
        **options: Fields of that class, e.g. ``make_degradation("sr", scale=2)`` or
            ``make_degradation("denoise", sigma_range=(0, 55))``.

    Returns:
        The frozen degradation object.
    """
    if task not in _DEGRADATION_CLASSES:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    cls = _DEGRADATION_CLASSES[task]
    valid = [field.name for field in dataclasses.fields(cls)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)} for task {task!r}; valid options: {', '.join(valid)}")
    return cls(**options)
