"""Pixel losses and the paper's soft gradient-magnitude-similarity (GMS) mask.

* :func:`l1_loss`, :func:`charbonnier_loss` and :func:`masked_loss` - pixel losses, optionally masked.
* :func:`rgb_to_luma` and :func:`prewitt_gradient_magnitude` - the gradient magnitude of GMSD.
* :func:`gms_map` - gradient magnitude similarity between an output and its target.
* :func:`hard_gms_mask` / :func:`soft_gms_mask` - where the output is badly reconstructed.
* :func:`gms_weighted_l1_loss` - L1 plus an extra L1 on the badly reconstructed regions.
* :func:`erode`, :func:`dilate`, :func:`open_morphologically`, :func:`gaussian_blur` - the helpers.

Every function has a thin :class:`torch.nn.Module` wrapper.

Gradient magnitude similarity (Xue et al., "Gradient Magnitude Similarity Deviation", 2014). The
gray image is the BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` of the RGB input (a one-channel input is
used as it is). Its gradient magnitude is ``m = sqrt((x * hx)^2 + (x * hy)^2)`` with the Prewitt
filters ``hx = [[1, 0, -1], [1, 0, -1], [1, 0, -1]] / 3`` and ``hy = hx^T``, applied as a
cross-correlation with replicate padding, so the map has the size of the image and an edge of the image
is not mistaken for an intensity step. GMSD first averages 2 x 2 blocks and subsamples; this module
does not, because the mask is needed at full resolution. The similarity of the target (reference)
magnitude ``m_r`` and the output (distorted) magnitude ``m_d`` is::

    GMS = (2 m_r m_d + c) / (m_r^2 + m_d^2 + c)

It lies in (0, 1] and equals 1 exactly where both magnitudes are equal. GMSD uses ``c = 170`` for
images in [0, 255]. The magnitude is linear in the intensity: scaling an image by ``s`` scales ``m``
by ``s`` and every term of the fraction by ``s^2``, so images in [0, 1] (``s = 1 / 255``) need
``c = 170 / 255^2`` (about 0.0026, i.e. a magnitude of about 0.05) to give the same map. That is the
default, :data:`GMS_CONSTANT`.

Masks. The hard mask is 1 where ``GMS < threshold`` (the badly reconstructed pixels), cleaned by a
morphological opening that removes specks smaller than the structuring element. The soft mask starts
from the hard mask and applies ``iterations`` times a Gaussian blur followed by another opening, which
gives a map in [0, 1] that fades out around the bad regions and is exactly 0 far from them. Both are
computed under ``torch.no_grad`` from detached tensors: the mask is a weight, not a path for gradients.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DEFAULT_BLUR_KERNEL_SIZE",
    "DEFAULT_BLUR_SIGMA",
    "DEFAULT_GMS_THRESHOLD",
    "DEFAULT_OPENING_SIZE",
    "DEFAULT_SOFT_MASK_ITERATIONS",
    "GMSWeightedL1Loss",
    "GMS_CONSTANT",
    "GradientMagnitudeSimilarity",
    "HardGMSMask",
    "L1Loss",
    "SoftGMSMask",
    "charbonnier_loss",
    "dilate",
    "erode",
    "gaussian_blur",
    "gms_map",
    "gms_weighted_l1_loss",
    "hard_gms_mask",
    "l1_loss",
    "masked_loss",
    "open_morphologically",
    "prewitt_gradient_magnitude",
    "rgb_to_luma",
    "soft_gms_mask",
]

GMS_CONSTANT: float = 170.0 / 255.0**2
"""GMSD's stability constant ``c = 170`` for [0, 255] images, rescaled to images in [0, 1]."""

DEFAULT_GMS_THRESHOLD: float = 0.9
"""Pixels with ``GMS < 0.9`` are badly reconstructed: for magnitudes well above ``sqrt(c)`` this is a
ratio of gradient magnitudes below about 0.63 (or above 1.6), while noise-level gradients in flat
regions stay close to GMS = 1 thanks to ``c``."""

DEFAULT_OPENING_SIZE: int = 2
"""Side of the square structuring element of the opening. Two pixels, because a sharp step edge has a
Prewitt response two pixels wide: a 3 x 3 opening would erase exactly the edges the mask is for, while a
2 x 2 opening still removes isolated pixels and one-pixel-wide lines."""

DEFAULT_BLUR_KERNEL_SIZE: int = 5
"""Side of the Gaussian kernel of the soft mask (truncated at about 2 sigma for sigma = 1)."""

DEFAULT_BLUR_SIGMA: float = 1.0
"""Standard deviation, in pixels, of each Gaussian blur of the soft mask."""

DEFAULT_SOFT_MASK_ITERATIONS: int = 2
"""Blur-then-open rounds of the soft mask: the mask spreads by at most ``2 * (5 - 1) / 2 = 4`` pixels
around a bad region and a two-pixel-wide edge keeps a peak weight of about 0.5."""

_BT601_WEIGHTS = (0.299, 0.587, 0.114)
_PREWITT_X = ((1.0, 0.0, -1.0), (1.0, 0.0, -1.0), (1.0, 0.0, -1.0))


# --------------------------------------------------------------------------------------------------
# Input checks


def _check_images(images: torch.Tensor, name: str) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, C, H, W), got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor of shape (N, C, H, W), got {images.dtype}")


def _check_pair(output: torch.Tensor, target: torch.Tensor) -> None:
    _check_images(output, "output")
    _check_images(target, "target")
    if output.shape != target.shape:
        raise ValueError(
            f"output and target must have the same shape (N, C, H, W), "
            f"got {tuple(output.shape)} and {tuple(target.shape)}"
        )


def _check_mask(mask: torch.Tensor, images: torch.Tensor) -> None:
    n, c, h, w = images.shape
    if not isinstance(mask, torch.Tensor) or mask.ndim != 4:
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask must have shape (N, 1, H, W) or (N, C, H, W) = {(n, c, h, w)}, got {shape}")
    if mask.shape[0] != n or mask.shape[1] not in (1, c) or mask.shape[2:] != images.shape[2:]:
        raise ValueError(
            f"mask must have shape (N, 1, H, W) or (N, C, H, W) = {(n, c, h, w)}, got {tuple(mask.shape)}"
        )


def _check_positive_size(size: int, name: str) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"{name} must be a positive integer, got {size!r}")


# --------------------------------------------------------------------------------------------------
# Pixel losses


def l1_loss(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error, optionally on masked images.

    With a mask ``M`` the loss is the paper's ``L1(M * output, M * target)``: both images are multiplied
    by the mask and the mean runs over all pixels, not only the masked ones, so a small bad region gives
    a small loss (it is added to the plain L1, see :func:`gms_weighted_l1_loss`).

    Args:
        output: restored images.
        target: reference images.
        mask: optional weights in [0, 1], one per pixel (broadcast over channels) or per value.

    Returns:
        The scalar loss.

    Shape:
        output, target: (N, C, H, W); mask: (N, 1, H, W) or (N, C, H, W) -> ().
    """
    return masked_loss(output, target, mask, base="l1")


def charbonnier_loss(
    output: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    epsilon: float = 1e-3,
) -> torch.Tensor:
    """Charbonnier (smooth L1) loss ``mean(sqrt((output - target)^2 + epsilon^2))``, optionally masked.

    Args:
        output: restored images.
        target: reference images.
        mask: optional weights multiplied into both images first, as in :func:`l1_loss`.
        epsilon: smoothing constant, in image units.

    Returns:
        The scalar loss.

    Shape:
        output, target: (N, C, H, W); mask: (N, 1, H, W) or (N, C, H, W) -> ().
    """
    if epsilon <= 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    _check_pair(output, target)
    if mask is not None:
        _check_mask(mask, output)
        output, target = output * mask, target * mask
    return torch.sqrt((output - target) ** 2 + epsilon**2).mean()


def masked_loss(
    output: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None,
    base: Literal["l1", "mse", "charbonnier"] = "l1",
) -> torch.Tensor:
    """A pixel loss between ``mask * output`` and ``mask * target`` (the paper's masked loss).

    Args:
        output: restored images.
        target: reference images.
        mask: weights in [0, 1], per pixel or per value; None for no mask. It is used as it is: pass a
            detached mask (as :func:`soft_gms_mask` returns) unless gradients should reach it.
        base: ``"l1"`` (mean absolute error), ``"mse"`` (mean squared error) or ``"charbonnier"``.

    Returns:
        The scalar loss, a mean over all values.

    Shape:
        output, target: (N, C, H, W); mask: (N, 1, H, W) or (N, C, H, W) -> ().
    """
    _check_pair(output, target)
    if base == "charbonnier":
        return charbonnier_loss(output, target, mask)
    if mask is not None:
        _check_mask(mask, output)
        output, target = output * mask, target * mask
    if base == "l1":
        return F.l1_loss(output, target)
    if base == "mse":
        return F.mse_loss(output, target)
    raise ValueError(f"base must be 'l1', 'mse' or 'charbonnier', got {base!r}")


# --------------------------------------------------------------------------------------------------
# Gradient magnitude similarity


def rgb_to_luma(images: torch.Tensor) -> torch.Tensor:
    """BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` of RGB images; one-channel images pass through.

    Shape:
        images: (N, 3, H, W) or (N, 1, H, W) -> (N, 1, H, W).
    """
    _check_images(images, "images")
    if images.shape[1] == 1:
        return images
    if images.shape[1] != 3:
        raise ValueError(f"images must have shape (N, 3, H, W) or (N, 1, H, W), got {tuple(images.shape)}")
    weights = images.new_tensor(_BT601_WEIGHTS).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def prewitt_gradient_magnitude(gray: torch.Tensor) -> torch.Tensor:
    """Prewitt gradient magnitude ``sqrt((x * hx)^2 + (x * hy)^2)`` of GMSD, with replicate padding.

    ``hx = [[1, 0, -1], [1, 0, -1], [1, 0, -1]] / 3`` and ``hy = hx^T``, applied as cross-correlation.
    A step of height ``h`` between two columns gives ``m = |h|`` on the two pixels next to the step.

    Args:
        gray: gray images, e.g. from :func:`rgb_to_luma`.

    Returns:
        The gradient magnitude, in the units of ``gray``.

    Shape:
        gray: (N, 1, H, W) -> (N, 1, H, W).
    """
    _check_images(gray, "gray")
    if gray.shape[1] != 1:
        raise ValueError(f"gray must have shape (N, 1, H, W), got {tuple(gray.shape)}; see rgb_to_luma")
    hx = gray.new_tensor(_PREWITT_X) / 3.0
    kernels = torch.stack([hx, hx.t()]).unsqueeze(1)  # (2, 1, 3, 3)
    gradients = F.conv2d(F.pad(gray, (1, 1, 1, 1), mode="replicate"), kernels)
    return torch.sqrt(gradients.pow(2).sum(dim=1, keepdim=True))


def gms_map(output: torch.Tensor, target: torch.Tensor, c: float = GMS_CONSTANT) -> torch.Tensor:
    """Gradient magnitude similarity ``(2 m_r m_d + c) / (m_r^2 + m_d^2 + c)`` of output and target.

    ``m_r`` is the Prewitt gradient magnitude of the target's luma, ``m_d`` that of the output's (see
    the module docstring). The default ``c = 170 / 255^2`` is GMSD's constant for images in [0, 1];
    use ``c = 170`` for images in [0, 255], which gives the same map.

    Args:
        output: restored (distorted) images, RGB or gray.
        target: reference images, RGB or gray.
        c: positive stability constant, in squared intensity units.

    Returns:
        The similarity map, in (0, 1], equal to 1 where the gradient magnitudes agree.

    Shape:
        output, target: (N, 3, H, W) or (N, 1, H, W) -> (N, 1, H, W).
    """
    _check_pair(output, target)
    if c <= 0:
        raise ValueError(f"c must be positive (170 / 255**2 for images in [0, 1]), got {c}")
    magnitude_reference = prewitt_gradient_magnitude(rgb_to_luma(target))
    magnitude_distorted = prewitt_gradient_magnitude(rgb_to_luma(output))
    numerator = 2.0 * magnitude_reference * magnitude_distorted + c
    denominator = magnitude_reference.pow(2) + magnitude_distorted.pow(2) + c
    return numerator / denominator


# --------------------------------------------------------------------------------------------------
# Morphology and blur


def _window_padding(size: int, reflected: bool) -> tuple[int, int, int, int]:
    """Padding (left, right, top, bottom) that makes a ``size`` window 'same' size.

    For an even size the window cannot be centred; the erosion takes the window starting at the pixel
    (more padding after) and the dilation the reflected window (more padding before), so that their
    composition, the opening, is the union of the translates of the square that fit in the map.
    """
    before, after = (size - 1) // 2, size // 2
    if reflected:
        before, after = after, before
    return before, after, before, after


def erode(maps: torch.Tensor, size: int) -> torch.Tensor:
    """Grayscale erosion by a ``size`` x ``size`` square: the minimum over each window.

    Computed as ``-max_pool(-x)``. Borders are padded with ``+inf`` (the outside never erodes).
    For even sizes the window spans ``size // 2`` pixels after and ``(size - 1) // 2`` before.

    Shape:
        maps: (N, C, H, W) -> (N, C, H, W).
    """
    _check_images(maps, "maps")
    _check_positive_size(size, "size")
    if size == 1:
        return maps
    padded = F.pad(-maps, _window_padding(size, reflected=False), value=-math.inf)
    return -F.max_pool2d(padded, size, stride=1)


def dilate(maps: torch.Tensor, size: int) -> torch.Tensor:
    """Grayscale dilation by a ``size`` x ``size`` square: the maximum over each window (``max_pool``).

    Borders are padded with ``-inf``. For even sizes the window is the reflection of :func:`erode`'s,
    so that ``dilate(erode(x, k), k)`` is a proper opening.

    Shape:
        maps: (N, C, H, W) -> (N, C, H, W).
    """
    _check_images(maps, "maps")
    _check_positive_size(size, "size")
    if size == 1:
        return maps
    padded = F.pad(maps, _window_padding(size, reflected=True), value=-math.inf)
    return F.max_pool2d(padded, size, stride=1)


def open_morphologically(maps: torch.Tensor, size: int) -> torch.Tensor:
    """Morphological opening (erosion then dilation) by a ``size`` x ``size`` square.

    Removes every bright structure that no ``size`` x ``size`` square fits in (isolated pixels, thin
    lines) and keeps the others unchanged. ``size = 1`` is the identity.

    Shape:
        maps: (N, C, H, W) -> (N, C, H, W).
    """
    return dilate(erode(maps, size), size)


def _gaussian_kernel_1d(kernel_size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    coordinates = torch.arange(kernel_size, dtype=like.dtype, device=like.device) - (kernel_size - 1) / 2
    kernel = torch.exp(-(coordinates**2) / (2.0 * sigma**2))
    return kernel / kernel.sum()


def gaussian_blur(maps: torch.Tensor, kernel_size: int, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of each channel with a normalised, truncated kernel, replicate padding.

    The kernel is normalised to sum to 1, so maps in [0, 1] stay in [0, 1], and it is truncated to
    ``kernel_size`` taps, so a map that is 0 on a region stays exactly 0 more than
    ``kernel_size // 2`` pixels inside it.

    Args:
        maps: maps to blur.
        kernel_size: odd number of taps.
        sigma: positive standard deviation, in pixels.

    Shape:
        maps: (N, C, H, W) -> (N, C, H, W).
    """
    _check_images(maps, "maps")
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    if kernel_size == 1:
        return maps
    channels = maps.shape[1]
    kernel = _gaussian_kernel_1d(kernel_size, sigma, maps)
    half = kernel_size // 2
    horizontal = kernel.view(1, 1, 1, kernel_size).expand(channels, 1, 1, kernel_size)
    vertical = kernel.view(1, 1, kernel_size, 1).expand(channels, 1, kernel_size, 1)
    blurred = F.conv2d(F.pad(maps, (half, half, 0, 0), mode="replicate"), horizontal, groups=channels)
    return F.conv2d(F.pad(blurred, (0, 0, half, half), mode="replicate"), vertical, groups=channels)


# --------------------------------------------------------------------------------------------------
# GMS masks


def hard_gms_mask(
    output: torch.Tensor,
    target: torch.Tensor,
    threshold: float = DEFAULT_GMS_THRESHOLD,
    opening_size: int = DEFAULT_OPENING_SIZE,
    c: float = GMS_CONSTANT,
) -> torch.Tensor:
    """Binary mask of the badly reconstructed pixels: ``GMS < threshold``, then an opening.

    Identical images give GMS = 1 everywhere and an all-zero mask; an edge of the target that is
    missing from the output gives a low GMS, hence 1, along it. Computed under ``torch.no_grad``.

    Args:
        output: restored images (detached internally).
        target: reference images (detached internally).
        threshold: GMS below which a pixel is bad, in (0, 1].
        opening_size: side of the square structuring element of the opening; 1 disables it.
        c: GMS stability constant (see :func:`gms_map`).

    Returns:
        A float mask of 0 and 1, without gradient.

    Shape:
        output, target: (N, 3, H, W) or (N, 1, H, W) -> (N, 1, H, W).
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    _check_positive_size(opening_size, "opening_size")
    with torch.no_grad():
        similarity = gms_map(output.detach(), target.detach(), c=c)
        mask = (similarity < threshold).to(similarity.dtype)
        return open_morphologically(mask, opening_size)


def soft_gms_mask(
    output: torch.Tensor,
    target: torch.Tensor,
    threshold: float = DEFAULT_GMS_THRESHOLD,
    kernel_size: int = DEFAULT_BLUR_KERNEL_SIZE,
    sigma: float = DEFAULT_BLUR_SIGMA,
    iterations: int = DEFAULT_SOFT_MASK_ITERATIONS,
    opening_size: int = DEFAULT_OPENING_SIZE,
    c: float = GMS_CONSTANT,
) -> torch.Tensor:
    """Soft mask of the badly reconstructed regions, in [0, 1].

    Starts from :func:`hard_gms_mask` and repeats ``iterations`` times: a Gaussian blur
    (:func:`gaussian_blur` with ``kernel_size`` and ``sigma``) followed by a grayscale opening with an
    ``opening_size`` square. The blur turns the binary borders into smooth ramps; the opening removes
    the thin spurs the blur leaves and keeps the map from spreading into isolated low bumps. The result
    is 0 more than ``iterations * (kernel_size // 2)`` pixels away from any bad region, strictly
    between 0 and 1 on the ramps, and close to 1 inside bad regions wider than the blur (thin regions
    such as a two-pixel edge keep a lower peak). ``iterations = 0`` returns the hard mask. Computed
    under ``torch.no_grad`` from detached tensors: use it as a weight.

    Args:
        output: restored images.
        target: reference images.
        threshold: GMS below which a pixel is bad (see :func:`hard_gms_mask`).
        kernel_size: odd number of taps of the Gaussian kernel.
        sigma: standard deviation of the Gaussian, in pixels.
        iterations: number of blur-then-open rounds, >= 0.
        opening_size: side of the square structuring element of every opening.
        c: GMS stability constant (see :func:`gms_map`).

    Returns:
        The soft mask, without gradient.

    Shape:
        output, target: (N, 3, H, W) or (N, 1, H, W) -> (N, 1, H, W).
    """
    if not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"iterations must be a non-negative integer, got {iterations!r}")
    with torch.no_grad():
        mask = hard_gms_mask(output, target, threshold=threshold, opening_size=opening_size, c=c)
        for _ in range(iterations):
            mask = open_morphologically(gaussian_blur(mask, kernel_size, sigma), opening_size)
        return mask.clamp_(0.0, 1.0)


def gms_weighted_l1_loss(
    output: torch.Tensor,
    target: torch.Tensor,
    weight: float = 1.0,
    threshold: float = DEFAULT_GMS_THRESHOLD,
    kernel_size: int = DEFAULT_BLUR_KERNEL_SIZE,
    sigma: float = DEFAULT_BLUR_SIGMA,
    iterations: int = DEFAULT_SOFT_MASK_ITERATIONS,
    opening_size: int = DEFAULT_OPENING_SIZE,
    c: float = GMS_CONSTANT,
) -> torch.Tensor:
    """``L1(output, target) + weight * L1(M * output, M * target)`` with ``M`` the soft GMS mask.

    The second term puts extra weight on the regions whose gradients the output gets wrong (mostly
    edges and textures), as the paper does. ``M`` is computed from detached tensors, so gradients reach
    ``output`` only through the two L1 terms. ``weight = 0`` is the plain L1 loss.

    Args:
        output: restored images.
        target: reference images.
        weight: non-negative weight of the masked term.
        threshold, kernel_size, sigma, iterations, opening_size, c: see :func:`soft_gms_mask`.

    Returns:
        The scalar loss.

    Shape:
        output, target: (N, C, H, W), C = 3 or 1 -> ().
    """
    if weight < 0:
        raise ValueError(f"weight must be non-negative, got {weight}")
    loss = l1_loss(output, target)
    if weight == 0:
        return loss
    mask = soft_gms_mask(
        output,
        target,
        threshold=threshold,
        kernel_size=kernel_size,
        sigma=sigma,
        iterations=iterations,
        opening_size=opening_size,
        c=c,
    )
    return loss + weight * l1_loss(output, target, mask)


# --------------------------------------------------------------------------------------------------
# Module wrappers


class L1Loss(nn.Module):
    """Module form of :func:`l1_loss`.

    Shape:
        output, target: (N, C, H, W); mask: (N, 1, H, W) or (N, C, H, W) -> ().
    """

    def forward(
        self, output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return l1_loss(output, target, mask)


class GradientMagnitudeSimilarity(nn.Module):
    """Module form of :func:`gms_map`.

    Args:
        c: stability constant; ``170 / 255**2`` for images in [0, 1], 170 for images in [0, 255].

    Shape:
        output, target: (N, 3, H, W) or (N, 1, H, W) -> (N, 1, H, W).
    """

    def __init__(self, c: float = GMS_CONSTANT) -> None:
        super().__init__()
        if c <= 0:
            raise ValueError(f"c must be positive, got {c}")
        self.c = c

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return gms_map(output, target, c=self.c)

    def extra_repr(self) -> str:
        return f"c={self.c:.6g}"


class HardGMSMask(nn.Module):
    """Module form of :func:`hard_gms_mask`.

    Shape:
        output, target: (N, 3, H, W) or (N, 1, H, W) -> (N, 1, H, W).
    """

    def __init__(
        self,
        threshold: float = DEFAULT_GMS_THRESHOLD,
        opening_size: int = DEFAULT_OPENING_SIZE,
        c: float = GMS_CONSTANT,
    ) -> None:
        super().__init__()
        self.threshold = threshold
        self.opening_size = opening_size
        self.c = c

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return hard_gms_mask(output, target, threshold=self.threshold, opening_size=self.opening_size, c=self.c)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, opening_size={self.opening_size}, c={self.c:.6g}"


class SoftGMSMask(nn.Module):
    """Module form of :func:`soft_gms_mask`.

    Shape:
        output, target: (N, 3, H, W) or (N, 1, H, W) -> (N, 1, H, W).
    """

    def __init__(
        self,
        threshold: float = DEFAULT_GMS_THRESHOLD,
        kernel_size: int = DEFAULT_BLUR_KERNEL_SIZE,
        sigma: float = DEFAULT_BLUR_SIGMA,
        iterations: int = DEFAULT_SOFT_MASK_ITERATIONS,
        opening_size: int = DEFAULT_OPENING_SIZE,
        c: float = GMS_CONSTANT,
    ) -> None:
        super().__init__()
        self.threshold = threshold
        self.kernel_size = kernel_size
        self.sigma = sigma
        self.iterations = iterations
        self.opening_size = opening_size
        self.c = c

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return soft_gms_mask(
            output,
            target,
            threshold=self.threshold,
            kernel_size=self.kernel_size,
            sigma=self.sigma,
            iterations=self.iterations,
            opening_size=self.opening_size,
            c=self.c,
        )

    def extra_repr(self) -> str:
        return (
            f"threshold={self.threshold}, kernel_size={self.kernel_size}, sigma={self.sigma}, "
            f"iterations={self.iterations}, opening_size={self.opening_size}, c={self.c:.6g}"
        )


class GMSWeightedL1Loss(nn.Module):
    """Module form of :func:`gms_weighted_l1_loss`.

    Args:
        weight: weight of the masked L1 term.
        threshold, kernel_size, sigma, iterations, opening_size, c: see :func:`soft_gms_mask`.

    Shape:
        output, target: (N, C, H, W), C = 3 or 1 -> ().
    """

    def __init__(
        self,
        weight: float = 1.0,
        threshold: float = DEFAULT_GMS_THRESHOLD,
        kernel_size: int = DEFAULT_BLUR_KERNEL_SIZE,
        sigma: float = DEFAULT_BLUR_SIGMA,
        iterations: int = DEFAULT_SOFT_MASK_ITERATIONS,
        opening_size: int = DEFAULT_OPENING_SIZE,
        c: float = GMS_CONSTANT,
    ) -> None:
        super().__init__()
        if weight < 0:
            raise ValueError(f"weight must be non-negative, got {weight}")
        self.weight = weight
        self.mask = SoftGMSMask(threshold, kernel_size, sigma, iterations, opening_size, c)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = l1_loss(output, target)
        if self.weight == 0:
            return loss
        return loss + self.weight * l1_loss(output, target, self.mask(output, target))

    def extra_repr(self) -> str:
        return f"weight={self.weight}"
