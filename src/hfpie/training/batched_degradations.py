"""The training degradations of :mod:`hfpie.training.degradations`, batched as tensor operations.

Every function here works on a whole batch on the tensor's device (CPU or CUDA, one code path), so
that a GPU is fed without per-sample NumPy. The NumPy module stays the reference: the same
degradation dataclasses (:class:`~hfpie.training.degradations.DenoiseDegradation`, ...) hold the
parameters, and the tests compare the statistics of both pipelines.

Conventions:
    * Images are float32 tensors of shape ``(B, 3, H, W)`` in [0, 1]; every sample of a batch gets
      its own random parameters (noise level, kernel, JPEG quality, ...).
    * Noise levels ``sigma`` are in 0..255 units, as in the NumPy module.
    * Random functions take a ``torch.Generator`` on the images' device; the same generator state
      gives the same output. The streams differ from NumPy's: only the distributions match.
    * "Quantize" rounds to the 8-bit grid (``round(x * 255) / 255``, clipped), as saving an 8-bit
      image does.

Differences from the NumPy reference (measured in ``docs/training.md``, "Batched degradations"):
    * :func:`downscale_bicubic` follows the evaluation protocol (Pillow's ``BICUBIC`` resize of uint8
      images, which rounds to 8 bits between its horizontal and vertical passes) more closely than
      the NumPy training reference, which resizes in Pillow's float mode without that rounding.
    * :func:`add_jpeg` is a tensor re-implementation of baseline JPEG as libjpeg does it with the
      settings of ``cv2.imencode`` (4:2:0 chroma, libjpeg's quality-scaled tables, its chroma
      downsampling and "fancy" upsampling) with a floating point DCT instead of libjpeg's integer
      one, so a few coefficients per image land in a neighbouring quantization bin.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .degradations import (
    BAYER_G_KERNEL,
    BAYER_RB_KERNEL,
    DeblurDegradation,
    Degradation,
    DenoiseDegradation,
    RealNoiseDegradation,
    SuperResolutionDegradation,
    bayer_masks,
)

__all__ = [
    "add_blur",
    "add_gaussian_noise",
    "add_jpeg",
    "add_poisson_gaussian_noise",
    "degrade_batch",
    "demosaic_noise",
    "downscale_bicubic",
    "gaussian_kernels",
    "jpeg_quantization_tables",
    "quantize_to_8bit",
    "random_blur_kernels",
    "random_motion_kernels",
]

MOTION_KERNEL_SIZE = 25
"""Side of the camera-shake kernels, as :func:`~hfpie.training.degradations.random_motion_kernel`."""

_MOTION_POINTS = 64

# libjpeg's tables (ITU T.81 Annex K), in natural (row-major) order.
_LUMA_TABLE = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip
_CHROMA_TABLE = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
) + (99,) * 32  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Checks and small helpers
# --------------------------------------------------------------------------------------------------


def _check_images(images: Tensor, name: str = "images") -> None:
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        dtype = images.dtype if isinstance(images, Tensor) else None
        raise ValueError(
            f"{name} must be a float tensor of shape (B, 3, H, W) in [0, 1], got shape {shape} and dtype {dtype}; "
            "convert uint8 batches with images.float() / 255"
        )


def _check_generator(generator: torch.Generator, images: Tensor) -> None:
    if generator.device.type != images.device.type:
        raise ValueError(
            f"the generator is on {generator.device} but the images are on {images.device}; "
            f"create it with torch.Generator(device=images.device)"
        )


def _uniform(count: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    """``count`` float32 values uniform in [low, high) on the generator's device."""
    return low + (high - low) * torch.rand(count, generator=generator, device=generator.device)


def _log_uniform(count: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    return torch.exp(_uniform(count, math.log(low), math.log(high), generator))


def _bernoulli(count: int, probability: float, generator: torch.Generator) -> Tensor:
    """``count`` booleans, each true with ``probability``."""
    return torch.rand(count, generator=generator, device=generator.device) < probability


def _per_sample(values: Tensor) -> Tensor:
    """``(B,)`` values shaped ``(B, 1, 1, 1)`` to broadcast over a batch of images."""
    return values.view(-1, 1, 1, 1)


def quantize_to_8bit(images: Tensor) -> Tensor:
    """Round images to the 8-bit grid, clipping to [0, 1]: what saving them as 8-bit files does.

    Args:
        images: Float tensor of any shape.

    Returns:
        Tensor of the same shape and dtype whose values are multiples of 1/255 in [0, 1].
    """
    return torch.round(images * 255.0).clamp_(0.0, 255.0) / 255.0


# --------------------------------------------------------------------------------------------------
# Noise
# --------------------------------------------------------------------------------------------------


def add_gaussian_noise(images: Tensor, sigmas: Tensor, generator: torch.Generator, *, quantize: bool = True) -> Tensor:
    """Add white Gaussian noise with a standard deviation per sample (0..255 units).

    Args:
        images: ``(B, 3, H, W)`` clean images in [0, 1].
        sigmas: ``(B,)`` noise standard deviations in 0..255 units, >= 0.
        generator: Draws the noise field.
        quantize: Round the result to the 8-bit grid; otherwise only clip it to [0, 1].

    Returns:
        ``(B, 3, H, W)`` noisy images in [0, 1].
    """
    _check_images(images)
    _check_generator(generator, images)
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    noisy = images + _per_sample(sigmas.to(images) / 255.0) * noise
    return quantize_to_8bit(noisy) if quantize else noisy.clamp_(0.0, 1.0)


def demosaic_noise(noise: Tensor) -> Tensor:
    """Keep one colour of ``(B, 3, H, W)`` noise per pixel (RGGB mosaic) and interpolate the rest bilinearly.

    The batched form of :func:`hfpie.training.degradations.demosaic_noise` (same kernels, same
    reflected borders).
    """
    masks = torch.from_numpy(bayer_masks(*noise.shape[-2:])).permute(2, 0, 1).to(noise)
    kernels = torch.stack([torch.from_numpy(k) for k in (BAYER_RB_KERNEL, BAYER_G_KERNEL, BAYER_RB_KERNEL)])
    kernels = kernels.to(noise)[:, None]
    return F.conv2d(F.pad(noise * masks, (1, 1, 1, 1), mode="reflect"), kernels, groups=3)


def add_poisson_gaussian_noise(
    images: Tensor, shot_noise: Tensor, read_noise: Tensor, generator: torch.Generator, *, gamma: float = 2.2,
    demosaic: Tensor | None = None,
) -> Tensor:
    """Camera noise in linear light: ``x ** gamma``, noise of variance ``shot * x + read ** 2``, clip, back.

    The batched form of :func:`hfpie.training.degradations.add_poisson_gaussian_noise` (without its
    quantization: the caller quantizes, or JPEG-compresses first).

    Args:
        images: ``(B, 3, H, W)`` clean images in [0, 1].
        shot_noise: ``(B,)`` shot noise gains, >= 0.
        read_noise: ``(B,)`` read noise standard deviations in linear [0, 1] units, >= 0.
        generator: Draws the noise field.
        gamma: Display gamma, > 0.
        demosaic: ``(B,)`` booleans: which samples' noise goes through :func:`demosaic_noise`.

    Returns:
        ``(B, 3, H, W)`` noisy images in [0, 1].
    """
    _check_images(images)
    _check_generator(generator, images)
    linear = images.clamp(0.0, 1.0).pow(gamma)
    deviation = torch.sqrt(_per_sample(shot_noise.to(images)) * linear + _per_sample(read_noise.to(images)) ** 2)
    noise = deviation * torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    if demosaic is not None:
        noise = torch.where(_per_sample(demosaic.to(images.device)), demosaic_noise(noise), noise)
    return (linear + noise).clamp_(0.0, 1.0).pow_(1.0 / gamma)


# --------------------------------------------------------------------------------------------------
# Blur
# --------------------------------------------------------------------------------------------------


def gaussian_kernels(sigma_x: Tensor, sigma_y: Tensor, angle: Tensor, radius: Tensor, size: int) -> Tensor:
    """Rotated anisotropic Gaussian kernels, one per sample, on a common ``size x size`` grid.

    Sample ``b`` is :func:`hfpie.training.degradations.gaussian_kernel` of side ``2 * radius[b] + 1``
    (zero outside that square), centred on the grid and normalised to sum to 1.

    Args:
        sigma_x: ``(B,)`` standard deviations along the rotated x axis, in pixels, > 0.
        sigma_y: ``(B,)`` standard deviations along the rotated y axis, > 0.
        angle: ``(B,)`` rotations in radians.
        radius: ``(B,)`` integer half sides, at most ``size // 2``.
        size: Odd side of the grid.

    Returns:
        ``(B, size, size)`` float32 kernels summing to 1.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"size must be an odd positive integer such as 21, got {size!r}")
    offsets = torch.arange(size, device=sigma_x.device, dtype=torch.float32) - size // 2
    y, x = offsets.view(1, -1, 1), offsets.view(1, 1, -1)
    cos, sin = torch.cos(angle).view(-1, 1, 1), torch.sin(angle).view(-1, 1, 1)
    u = cos * x + sin * y
    v = -sin * x + cos * y
    kernels = torch.exp(-0.5 * (u**2 / sigma_x.view(-1, 1, 1) ** 2 + v**2 / sigma_y.view(-1, 1, 1) ** 2))
    limit = radius.view(-1, 1, 1)
    kernels = kernels * ((x.abs() <= limit) & (y.abs() <= limit))
    return kernels / kernels.sum(dim=(1, 2), keepdim=True)


def _reflect_indices(length: int, pad: int, device: torch.device) -> Tensor:
    """Indices that extend ``range(length)`` by ``pad`` on both sides by symmetric reflection ("dcba|abcd")."""
    indices = torch.arange(-pad, length + pad, device=device)
    indices = torch.where(indices < 0, -indices - 1, indices)
    return torch.where(indices >= length, 2 * length - 1 - indices, indices)


def add_blur(images: Tensor, kernels: Tensor) -> Tensor:
    """Convolve every image with its own kernel, extending the images by symmetric reflection.

    The batched form of :func:`hfpie.training.degradations.add_blur`: a true convolution (the kernel
    is flipped) with scipy's ``mode="reflect"`` / OpenCV's ``BORDER_REFLECT`` border ("dcba|abcd";
    ``torch.nn.functional.pad(mode="reflect")`` would not repeat the edge pixel), done as one
    grouped ``conv2d``.

    Args:
        images: ``(B, 3, H, W)`` images.
        kernels: ``(B, k, k)`` kernels with an odd side ``k`` of at most ``2 * min(H, W) + 1``.

    Returns:
        ``(B, 3, H, W)`` blurred images.
    """
    _check_images(images)
    batch, channels, height, width = images.shape
    side = kernels.shape[-1]
    if kernels.ndim != 3 or kernels.shape[0] != batch or kernels.shape[1] != side or side % 2 == 0:
        raise ValueError(
            f"kernels must have shape (B, k, k) with B = {batch} and k odd, got {tuple(kernels.shape)}"
        )
    pad = side // 2
    if pad > min(height, width):
        raise ValueError(
            f"a kernel of side {side} is too large for {height}x{width} images; "
            f"use kernels of side at most {2 * min(height, width) + 1} or larger patches"
        )
    rows = _reflect_indices(height, pad, images.device)
    columns = _reflect_indices(width, pad, images.device)
    padded = images[:, :, rows][:, :, :, columns].reshape(1, batch * channels, height + 2 * pad, width + 2 * pad)
    weights = kernels.to(images).flip(-2, -1).repeat_interleave(channels, dim=0).unsqueeze(1)
    return F.conv2d(padded, weights, groups=batch * channels).view(batch, channels, height, width)


def random_blur_kernels(
    count: int,
    generator: torch.Generator,
    *,
    size_range: tuple[int, int] = (7, 21),
    sigma_range: tuple[float, float] = (0.6, 3.0),
    isotropic_probability: float = 0.5,
) -> Tensor:
    """Gaussian blur kernels of random odd size, width and orientation, one per sample.

    Drawn as :func:`hfpie.training.degradations.random_blur_kernel` draws one: the size uniform over
    the odd integers of ``size_range``; with probability ``isotropic_probability`` one sigma and angle
    0, otherwise ``sigma_x``, ``sigma_y`` from ``sigma_range`` and an angle uniform in [0, pi).

    Args:
        count: Number of kernels ``B``.
        generator: Generator on the device the kernels are made on.
        size_range: Inclusive ``(low, high)`` kernel sides; must contain an odd integer.
        sigma_range: ``(low, high)`` standard deviations in pixels, low > 0.
        isotropic_probability: Probability of an isotropic kernel.

    Returns:
        ``(B, k, k)`` float32 kernels summing to 1, zero-padded to the largest odd side ``k`` of
        ``size_range``.
    """
    sizes = [size for size in range(int(math.ceil(size_range[0])), int(size_range[1]) + 1) if size % 2 == 1]
    if not sizes:
        raise ValueError(f"size_range must contain an odd integer, got {size_range!r}")
    if not 0.0 < sigma_range[0] <= sigma_range[1]:
        raise ValueError(f"sigma_range must satisfy 0 < low <= high pixels, got {sigma_range!r}")
    device = generator.device
    choices = torch.randint(len(sizes), (count,), generator=generator, device=device)
    drawn_sizes = torch.tensor(sizes, device=device)[choices]
    isotropic = _bernoulli(count, isotropic_probability, generator)
    sigma_x = _uniform(count, *sigma_range, generator)
    sigma_y = torch.where(isotropic, sigma_x, _uniform(count, *sigma_range, generator))
    angle = torch.where(isotropic, 0.0, _uniform(count, 0.0, math.pi, generator))
    return gaussian_kernels(sigma_x, sigma_y, angle, drawn_sizes // 2, sizes[-1])


def random_motion_kernels(
    count: int, generator: torch.Generator, *, length_range: tuple[float, float] = (4.0, 20.0)
) -> Tensor:
    """Camera-shake kernels, one per sample, drawn as :func:`hfpie.training.degradations.random_motion_kernel`.

    Each is a random walk with momentum (64 points, a random share of curvature), scaled to an
    extent drawn from ``length_range``, centred on its centroid, splatted bilinearly on a 25x25 grid
    and thickened by a Gaussian of sigma 0.3-1 pixel (truncated as OpenCV's ``GaussianBlur`` does).
    The walk is a loop over its 64 points, each step vectorised over the batch.

    Args:
        count: Number of kernels ``B``.
        generator: Generator on the device the kernels are made on.
        length_range: ``(low, high)`` extent of the trajectory in pixels, ``high <= 24``.

    Returns:
        ``(B, 25, 25)`` float32 kernels summing to 1.
    """
    size, centre = MOTION_KERNEL_SIZE, MOTION_KERNEL_SIZE // 2
    if not 0.0 <= length_range[0] <= length_range[1] <= size - 1:
        raise ValueError(f"length_range must satisfy 0 <= low <= high <= {size - 1} pixels, got {length_range!r}")
    device = generator.device
    length = _uniform(count, *length_range, generator)
    curviness = _uniform(count, 0.0, 1.0, generator).view(-1, 1)
    heading = _uniform(count, 0.0, 2 * math.pi, generator)
    accelerations = torch.randn(_MOTION_POINTS, count, 2, generator=generator, device=device)
    velocity = torch.stack([torch.cos(heading), torch.sin(heading)], dim=1)
    position = torch.zeros(count, 2, device=device)
    points = []
    for acceleration in accelerations:
        points.append(position)
        velocity = velocity + 0.5 * curviness * acceleration
        velocity = velocity / velocity.norm(dim=1, keepdim=True).clamp_min(1e-8)
        position = position + velocity
    trajectory = torch.stack(points, dim=1)  # (B, points, (x, y))
    trajectory = trajectory - trajectory.mean(dim=1, keepdim=True)
    extent = (trajectory.amax(dim=1) - trajectory.amin(dim=1)).amax(dim=1).clamp_min(1e-8)
    trajectory = trajectory * (length / extent).view(-1, 1, 1) + centre
    x, y = trajectory.unbind(-1)
    top, left = torch.floor(y), torch.floor(x)
    kernels = torch.zeros(count, size * size, device=device)
    for row, row_weight in ((top, 1 - (y - top)), (top + 1, y - top)):
        for column, column_weight in ((left, 1 - (x - left)), (left + 1, x - left)):
            inside = (row >= 0) & (row < size) & (column >= 0) & (column < size)
            index = (row.clamp(0, size - 1) * size + column.clamp(0, size - 1)).long()
            kernels.scatter_add_(1, index, row_weight * column_weight * inside)
    thickness = _uniform(count, 0.3, 1.0, generator)
    # OpenCV's GaussianBlur(sigma) on float64 uses a kernel of side round(8 sigma + 1) | 1, zero border.
    radius = (torch.round(8.0 * thickness + 1.0).long() | 1) // 2
    offsets = torch.arange(-4, 5, device=device, dtype=torch.float32)
    profile = torch.exp(-0.5 * (offsets / thickness.view(-1, 1)) ** 2) * (offsets.abs() <= radius.view(-1, 1))
    profile = profile / profile.sum(dim=1, keepdim=True)
    kernels = kernels.view(1, count, size, size)
    kernels = F.conv2d(kernels, profile.view(count, 1, 1, 9), padding=(0, 4), groups=count)
    kernels = F.conv2d(kernels, profile.view(count, 1, 9, 1), padding=(4, 0), groups=count)[0]
    return kernels / kernels.sum(dim=(1, 2), keepdim=True)


def _centre_pad(kernels: Tensor, size: int) -> Tensor:
    """Zero-pad ``(B, k, k)`` kernels to ``(B, size, size)``, keeping them centred."""
    pad = (size - kernels.shape[-1]) // 2
    return F.pad(kernels, (pad, pad, pad, pad))


# --------------------------------------------------------------------------------------------------
# Bicubic downscaling
# --------------------------------------------------------------------------------------------------


def downscale_bicubic(images: Tensor, scale: int) -> Tensor:
    """Antialiased bicubic downscaling by an integer factor, as Pillow's ``BICUBIC`` resize of 8-bit images.

    ``torch.nn.functional.interpolate(mode="bicubic", antialias=True)`` uses Pillow's filter (cubic
    with a = -0.5, support widened by the factor). Like Pillow's uint8 mode (the evaluation
    protocol), the width is reduced first and the result rounded to 8 bits before the height is
    reduced; on 8-bit images this gives Pillow's values but for rare one-level differences.

    Args:
        images: ``(B, 3, H, W)`` images in [0, 1] with ``H`` and ``W`` multiples of ``scale``.
        scale: Positive integer factor.

    Returns:
        ``(B, 3, H // scale, W // scale)`` images clipped to [0, 1].
    """
    _check_images(images)
    height, width = images.shape[-2:]
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer such as 2, 3 or 4, got {scale!r}")
    if height % scale or width % scale:
        raise ValueError(
            f"images of size {height}x{width} are not a multiple of scale {scale}; use patches whose side divides by it"
        )
    narrow = F.interpolate(images, size=(height, width // scale), mode="bicubic", antialias=True)
    small = F.interpolate(quantize_to_8bit(narrow), size=(height // scale, width // scale), mode="bicubic",
                          antialias=True)
    return small.clamp_(0.0, 1.0)


# --------------------------------------------------------------------------------------------------
# JPEG
# --------------------------------------------------------------------------------------------------


def jpeg_quantization_tables(qualities: Tensor) -> tuple[Tensor, Tensor]:
    """libjpeg's luminance and chrominance quantization tables for each quality (baseline, 1..255).

    Args:
        qualities: ``(B,)`` integer qualities; values outside 1..100 are clamped, as libjpeg does.

    Returns:
        ``(luma, chroma)``: two ``(B, 8, 8)`` float32 tables.
    """
    qualities = qualities.long().clamp(1, 100)
    factors = torch.where(qualities < 50, 5000 // qualities, 200 - 2 * qualities).view(-1, 1, 1)
    tables = []
    for base in (_LUMA_TABLE, _CHROMA_TABLE):
        base_table = torch.tensor(base, device=qualities.device).view(1, 8, 8)
        tables.append(((base_table * factors + 50) // 100).clamp(1, 255).float())
    return tables[0], tables[1]


def _block_dct_matrix(device: torch.device) -> Tensor:
    """JPEG's 2-D DCT of an 8x8 block as one ``(64, 64)`` matrix acting on the row-major flattened block.

    It is the Kronecker product of the orthonormal 8-point DCT-II matrix with itself, so a batch of
    blocks is transformed by one matrix product (its transpose is the inverse).
    """
    index = torch.arange(8, device=device, dtype=torch.float32)
    matrix = torch.cos((2 * index.view(1, 8) + 1) * index.view(8, 1) * math.pi / 16)
    matrix[0] *= math.sqrt(1 / 8)
    matrix[1:] *= math.sqrt(2 / 8)
    return torch.kron(matrix, matrix)


def _quantize_blocks(planes: Tensor, tables: Tensor) -> Tensor:
    """Encode and decode 8-bit planes block by block: DCT, quantization, dequantization, inverse DCT.

    ``planes`` is ``(B, P, H, W)`` with ``H`` and ``W`` multiples of 8, ``tables`` is ``(B, 8, 8)``.
    """
    batch, count, height, width = planes.shape
    dct = _block_dct_matrix(planes.device)
    blocks = (planes - 128.0).reshape(batch, count, height // 8, 8, width // 8, 8).transpose(3, 4)
    steps = tables.view(batch, 1, 1, 1, 64)
    coefficients = blocks.reshape(batch, count, height // 8, width // 8, 64) @ dct.T
    # libjpeg's integer DCT yields eighths of a coefficient and rounds their quotient half away from zero.
    eighths = torch.round(coefficients * 8.0)
    quantized = torch.sign(eighths) * torch.floor((eighths.abs() + 4.0 * steps) / (8.0 * steps)) * steps
    decoded = (quantized @ dct).view(batch, count, height // 8, width // 8, 8, 8).transpose(3, 4)
    decoded = decoded.reshape(batch, count, height, width)
    return torch.round(decoded + 128.0).clamp_(0.0, 255.0)


def _pad_rows_to_blocks(planes: Tensor) -> Tensor:
    """Repeat the last row of ``(B, P, H, W)`` planes until ``H`` is a multiple of 8."""
    return F.pad(planes, (0, 0, 0, -planes.shape[-2] % 8), mode="replicate")


def _downsample_chroma(planes: Tensor) -> Tensor:
    """libjpeg's 2x2 chroma downsampling: the mean of each 2x2 block with the bias 1, 2, 1, 2, ... before the shift."""
    sums = planes[..., ::2, ::2] + planes[..., ::2, 1::2] + planes[..., 1::2, ::2] + planes[..., 1::2, 1::2]
    bias = 1.0 + (torch.arange(planes.shape[-1] // 2, device=planes.device) % 2)
    return torch.floor((sums + bias) / 4.0)


def _upsample_chroma(planes: Tensor) -> Tensor:
    """libjpeg's "fancy" 2x2 chroma upsampling: a triangle filter (9/16, 3/16, 3/16, 1/16), edges replicated."""
    above = torch.cat([planes[..., :1, :], planes[..., :-1, :]], dim=-2)
    below = torch.cat([planes[..., 1:, :], planes[..., -1:, :]], dim=-2)
    rows = torch.stack([3 * planes + above, 3 * planes + below], dim=-2).flatten(-3, -2)
    left = torch.cat([rows[..., :1], rows[..., :-1]], dim=-1)
    right = torch.cat([rows[..., 1:], rows[..., -1:]], dim=-1)
    columns = torch.stack([torch.floor((3 * rows + left + 8) / 16), torch.floor((3 * rows + right + 7) / 16)], dim=-1)
    return columns.flatten(-2, -1)


def add_jpeg(images: Tensor, qualities: Tensor) -> Tensor:
    """JPEG-compress and decode every image at its own quality, as tensor operations.

    Baseline JPEG as ``cv2.imencode`` / ``cv2.imdecode`` (libjpeg) do it: 8-bit RGB to YCbCr, 4:2:0
    chroma subsampling with libjpeg's rounding, the standard tables scaled by the quality, 8x8 DCT
    quantization, fancy chroma upsampling, back to RGB. The DCT is computed in floating point where
    libjpeg uses integer arithmetic, so the result is close to libjpeg's but not bit-exact (the
    figures are in ``docs/training.md``). Images of any size are extended by their edge pixels for
    coding as libjpeg does.

    Args:
        images: ``(B, 3, H, W)`` images in [0, 1] (rounded to 8 bits before coding).
        qualities: ``(B,)`` integer JPEG qualities in 1..100 (others are clamped, as libjpeg does).

    Returns:
        ``(B, 3, H, W)`` decoded images on the 8-bit grid.
    """
    _check_images(images)
    if qualities.shape != images.shape[:1]:
        raise ValueError(
            f"qualities must be a ({images.shape[0]},) tensor of integers in 1..100, got shape {tuple(qualities.shape)}"
        )
    height, width = images.shape[-2:]
    pixels = torch.round(images.clamp(0.0, 1.0) * 255.0)
    # libjpeg extends the image by its edge pixels: columns to whole 16-pixel MCUs before downsampling,
    # rows to an even count, then each plane's rows to whole blocks after downsampling.
    pixels = F.pad(pixels, (0, -width % 16, 0, height % 2), mode="replicate")
    red, green, blue = pixels.unbind(1)
    luma = torch.round(0.299 * red + 0.587 * green + 0.114 * blue)
    chroma_blue = torch.round(-0.168735892 * red - 0.331264108 * green + 0.5 * blue + 128.0)
    chroma_red = torch.round(0.5 * red - 0.418687589 * green - 0.081312411 * blue + 128.0)
    luma_tables, chroma_tables = jpeg_quantization_tables(qualities)
    luma = _quantize_blocks(_pad_rows_to_blocks(luma.unsqueeze(1)), luma_tables)[:, 0, :height, :width]
    chroma = _downsample_chroma(torch.stack([chroma_blue, chroma_red], dim=1))
    chroma = _quantize_blocks(_pad_rows_to_blocks(chroma), chroma_tables)
    chroma = _upsample_chroma(chroma[..., : (height + 1) // 2, : (width + 1) // 2])[..., :height, :width] - 128.0
    chroma_blue, chroma_red = chroma.unbind(1)
    rgb = torch.stack(
        [
            luma + 1.402 * chroma_red,
            luma - 0.344136286 * chroma_blue - 0.714136286 * chroma_red,
            luma + 1.772 * chroma_blue,
        ],
        dim=1,
    )
    return torch.round(rgb).clamp_(0.0, 255.0) / 255.0


def _maybe_jpeg(
    images: Tensor, generator: torch.Generator, probability: float, quality_range: tuple[int, int]
) -> Tensor:
    """JPEG with a quality uniform in ``quality_range`` for a ``probability`` share of the samples; 8-bit for all.

    The whole batch is compressed and the results are picked with ``torch.where``: no data-dependent
    shapes, so nothing waits for the device.
    """
    quantized = quantize_to_8bit(images)
    if probability <= 0.0:
        return quantized
    count = images.shape[0]
    compress = _bernoulli(count, probability, generator)
    low, high = int(quality_range[0]), int(quality_range[1])
    qualities = torch.randint(low, high + 1, (count,), generator=generator, device=generator.device)
    return torch.where(_per_sample(compress), add_jpeg(images, qualities), quantized)


# --------------------------------------------------------------------------------------------------
# One function per task, and the dispatcher
# --------------------------------------------------------------------------------------------------


def _denoise(degradation: DenoiseDegradation, clean: Tensor, generator: torch.Generator) -> Tensor:
    sigmas = _uniform(clean.shape[0], *degradation.sigma_range, generator)
    return add_gaussian_noise(clean, sigmas, generator, quantize=degradation.quantize)


def _real_noise(degradation: RealNoiseDegradation, clean: Tensor, generator: torch.Generator) -> Tensor:
    count = clean.shape[0]
    keep_clean = _bernoulli(count, degradation.clean_probability, generator)
    shot_noise = _log_uniform(count, *degradation.shot_noise_range, generator)
    read_noise = _log_uniform(count, *degradation.read_noise_range, generator)
    demosaic = _bernoulli(count, degradation.demosaic_probability, generator) if degradation.demosaic_probability else None
    noisy = add_poisson_gaussian_noise(clean, shot_noise, read_noise, generator, gamma=degradation.gamma,
                                       demosaic=demosaic)
    noisy = _maybe_jpeg(noisy, generator, degradation.jpeg_probability, degradation.jpeg_quality_range)
    return torch.where(_per_sample(keep_clean), quantize_to_8bit(clean), noisy)


def _deblur(degradation: DeblurDegradation, clean: Tensor, generator: torch.Generator) -> Tensor:
    count = clean.shape[0]
    kernels = random_blur_kernels(
        count,
        generator,
        size_range=degradation.kernel_size_range,
        sigma_range=degradation.kernel_sigma_range,
        isotropic_probability=degradation.isotropic_probability,
    )
    if degradation.motion_probability > 0:
        motion = random_motion_kernels(count, generator, length_range=degradation.motion_length_range)
        size = max(kernels.shape[-1], motion.shape[-1])
        use_motion = _bernoulli(count, degradation.motion_probability, generator).view(-1, 1, 1)
        kernels = torch.where(use_motion, _centre_pad(motion, size), _centre_pad(kernels, size))
    blurred = add_blur(clean, kernels)
    sigmas = _uniform(count, *degradation.noise_sigma_range, generator)
    noisy = add_gaussian_noise(blurred, sigmas, generator, quantize=False)
    return _maybe_jpeg(noisy, generator, degradation.jpeg_probability, degradation.jpeg_quality_range)


def _super_resolution(degradation: SuperResolutionDegradation, clean: Tensor, generator: torch.Generator) -> Tensor:
    images = clean
    if degradation.blur_probability > 0:
        count = clean.shape[0]
        low, high = degradation.blur_sigma_range
        sigma = _uniform(count, low, high, generator)
        radius = torch.ceil(3.0 * sigma).long()
        kernels = gaussian_kernels(sigma, sigma, torch.zeros_like(sigma), radius, 2 * math.ceil(3.0 * high) + 1)
        blur = _bernoulli(count, degradation.blur_probability, generator)
        images = torch.where(_per_sample(blur), add_blur(clean, kernels), clean)
    small = downscale_bicubic(images, degradation.scale)
    return quantize_to_8bit(small) if degradation.quantize else small


_BATCHED = {
    DenoiseDegradation: _denoise,
    RealNoiseDegradation: _real_noise,
    DeblurDegradation: _deblur,
    SuperResolutionDegradation: _super_resolution,
}


def degrade_batch(degradation: Degradation, clean: Tensor, generator: torch.Generator) -> Tensor:
    """Apply a task's training degradation to a batch, every sample with its own random parameters.

    The batched counterpart of calling ``degradation(clean, rng)`` on each sample: same parameters
    (the degradation dataclass from :func:`~hfpie.training.degradations.make_degradation`), same
    distributions, different random streams.

    Args:
        degradation: A :class:`~hfpie.training.degradations.DenoiseDegradation`,
            :class:`~hfpie.training.degradations.RealNoiseDegradation`,
            :class:`~hfpie.training.degradations.DeblurDegradation` or
            :class:`~hfpie.training.degradations.SuperResolutionDegradation`.
        clean: ``(B, 3, H, W)`` float images in [0, 1]; ``H`` and ``W`` multiples of the scale.
        generator: Generator on ``clean``'s device; it draws every random quantity.

    Returns:
        ``(B, 3, H // scale, W // scale)`` degraded images in [0, 1] (on the 8-bit grid unless the
        degradation turns quantization off).
    """
    batched = _BATCHED.get(type(degradation))
    if batched is None:
        names = ", ".join(cls.__name__ for cls in _BATCHED)
        raise TypeError(
            f"no batched version of {type(degradation).__name__}; use one of {names} "
            "(from make_degradation), or the NumPy pipeline (data_pipeline='numpy')"
        )
    _check_images(clean, "clean")
    _check_generator(generator, clean)
    return batched(degradation, clean, generator)
