"""Geometric self-ensemble: the network run on flipped and rotated copies of the image, averaged.

The "+" of EDSR+ / RCAN+: each of ``count`` transforms of the dihedral group runs the ordinary
(tiled) path of :func:`hfpie.runner.run_network` on the transformed image; each output is transformed
back and added, as its tiles arrive, into one float32 sum over the output, which is divided by
``count`` at the end. So tiling stays exact (a transform's tiles are those of an ordinary run on the
transformed image), and the only full-size buffer is that sum.

``count`` 8 takes all eight (four rotations, each also mirrored), 4 the flips that keep the image's
orientation (none, left-right, top-bottom, both: no transposition), 2 none and left-right, 1 the
single ordinary pass. The gain and the cost per shipped model are measured in docs/usage.md.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import torch

from .tiling import TileWriter

__all__ = ["ENSEMBLE_SIZES", "Transform", "apply_transform", "check_ensemble", "ensemble_transforms", "self_ensemble"]

Transform = tuple[bool, bool, bool]
"""(transpose, flip rows, flip columns), applied in that order."""

_TRANSFORMS: tuple[Transform, ...] = (
    (False, False, False), (False, False, True), (False, True, False), (False, True, True),
    (True, False, False), (True, False, True), (True, True, False), (True, True, True),
)
ENSEMBLE_SIZES = (1, 2, 4, 8)
"""The transform counts :func:`check_ensemble` accepts (True means 8, False 1)."""


def check_ensemble(ensemble: bool | int) -> int:
    """``ensemble`` as a transform count (True: 8, False: 1), or a ValueError naming what is allowed."""
    if isinstance(ensemble, bool):
        return 8 if ensemble else 1
    if isinstance(ensemble, numbers.Integral) and int(ensemble) in ENSEMBLE_SIZES:
        return int(ensemble)
    raise ValueError(f"ensemble must be True (8 transforms), False or 1 (one pass), 2, 4 or 8, got {ensemble!r}")


def ensemble_transforms(count: int) -> tuple[Transform, ...]:
    """The first ``count`` transforms: 1 the identity, 2 adds the left-right mirror, 4 the other flips,
    8 the transposed four as well."""
    return _TRANSFORMS[: check_ensemble(count)]


def apply_transform(image: torch.Tensor, transform: Transform) -> torch.Tensor:
    """``image`` (..., H, W) transposed and flipped as ``transform`` says (a contiguous copy)."""
    transpose, flip_rows, flip_columns = transform
    if transpose:
        image = image.transpose(-2, -1)
    dims = [d for d, flip in ((-2, flip_rows), (-1, flip_columns)) if flip]
    return (image.flip(dims) if dims else image).contiguous()


def _adding_back(total: torch.Tensor, transform: Transform) -> TileWriter:
    """A ``write`` callback that transforms each output piece of a transformed run back and adds it to
    ``total`` (N, C, H, W) at its place."""
    transpose, flip_rows, flip_columns = transform
    height, width = total.shape[-2:]
    rows_out, columns_out = (width, height) if transpose else (height, width)  # the transformed output's size

    def add(box: tuple[int, int, int, int], piece: torch.Tensor) -> None:
        top, bottom, left, right = box
        if flip_rows:
            top, bottom, piece = rows_out - bottom, rows_out - top, piece.flip(-2)
        if flip_columns:
            left, right, piece = columns_out - right, columns_out - left, piece.flip(-1)
        if transpose:
            top, bottom, left, right, piece = left, right, top, bottom, piece.transpose(-2, -1)
        total[..., top:bottom, left:right] += piece

    return add


def self_ensemble(run: Callable[..., None], image: torch.Tensor, count: int, out_shape: tuple[int, ...],
                  progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """The mean over ``count`` transforms of ``run``'s output on the transformed ``image``.

    Args:
        run: ``run(transformed_image, write=..., progress=...)``, e.g. :func:`hfpie.runner.run_network`
            with the call's settings bound: it hands each output piece to ``write``.
        image: (N, C, H, W) float input.
        count: 1, 2, 4 or 8 (see :func:`ensemble_transforms`).
        out_shape: (N, C', H * scale, W * scale), the output's shape.
        progress: called as ``progress(done, total)`` over all the runs together.

    Returns:
        (N, C', H * scale, W * scale) float32: the sum of the back-transformed outputs divided by ``count``.
    """
    transforms = ensemble_transforms(count)
    total = torch.zeros(out_shape, dtype=torch.float32)
    for index, transform in enumerate(transforms):
        step = None if progress is None else (
            lambda done, whole, index=index: progress(done + index * whole, len(transforms) * whole))
        run(apply_transform(image, transform), write=_adding_back(total, transform), progress=step)
    return total.div_(len(transforms))
