"""Training batches made on the training device: uint8 images held there, crops, flips, degradations.

:class:`DevicePatchBatches` is the tensor counterpart of
:class:`~hfpie.training.datasets.PairedPatchDataset` with a ``DataLoader``: the decoded images live
on the device as one flat ``uint8`` buffer, and each batch is cut, flipped, rotated and degraded
there by tensor operations (:func:`~hfpie.training.batched_degradations.degrade_batch`), with no
per-sample Python and no copy from the host. The trainer uses it with ``data_pipeline = "tensor"``.

Batch ``block`` is drawn from a ``torch.Generator`` on the device seeded from ``(seed, block)``, so it
is a pure function of those two numbers: a resumed run sees the batches of an uninterrupted one.
The trainer's block of step ``s`` on rank ``r`` of ``world_size`` is ``s * world_size + r``. The
random streams of CPU and CUDA generators differ, so the same seed gives other (equally
distributed) batches on another kind of device.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from .batched_degradations import degrade_batch
from .datasets import PairedPatchDataset
from .degradations import Degradation

__all__ = ["DevicePatchBatches"]


def _dihedral_source_pixels(size: int) -> Tensor:
    """For each of the 8 flips/rotations, the source pixel (``row * size + column``) of every output pixel.

    Code ``c`` is :func:`hfpie.training.datasets.flip_rotate`'s: ``c % 4`` quarter turns
    counter-clockwise, then a left-right flip when ``c >= 4``. Returns an ``(8, size, size)`` tensor.
    """
    grid = torch.arange(size * size).view(size, size)
    transforms = []
    for code in range(8):
        turned = torch.rot90(grid, k=code % 4, dims=(0, 1))
        transforms.append(turned.flip(1) if code >= 4 else turned)
    return torch.stack(transforms)


class DevicePatchBatches:
    """Batches of random ``(degraded, clean)`` patches, made on ``device`` from uint8 images kept there.

    Each sample draws an image (in proportion to its area, or uniformly), a ``patch_size`` crop and
    one of the 8 flips/rotations; the batch is then degraded with the degradation's batched form.
    Every step is vectorised over the batch: the crops are one gather from the image buffer.

    Memory: 3 bytes per pixel of the images on the device (420 MB for 140 megapixels) plus, per
    batch, an int64 index per patch pixel.

    Args:
        images: ``(H, W, 3)`` uint8 arrays, each at least ``patch_size`` on both sides.
        degradation: A degradation dataclass of :mod:`hfpie.training.degradations` (from
            :func:`~hfpie.training.degradations.make_degradation`); its ``scale`` sets the degraded size.
        patch_size: Side of the clean patches, a multiple of the degradation's scale.
        device: Where the images are kept and the batches are made.
        seed: Non-negative integer mixed into every batch's generator.
        weighting: ``"area"`` to draw images in proportion to their pixels, ``"uniform"`` for equally.
        augment: Apply random flips and 90-degree rotations.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        degradation: Degradation,
        patch_size: int,
        *,
        device: torch.device | str = "cpu",
        seed: int = 0,
        weighting: Literal["area", "uniform"] = "area",
        augment: bool = True,
    ) -> None:
        if not images:
            raise ValueError("no images given; pass the decoded training images (e.g. DevicePatchBatches.from_dataset)")
        scale = degradation.scale
        if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1 or patch_size % scale:
            raise ValueError(
                f"patch_size must be a positive multiple of the degradation's scale {scale}, got {patch_size!r}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if weighting not in ("area", "uniform"):
            raise ValueError(f"weighting must be 'area' or 'uniform', got {weighting!r}")
        for index, image in enumerate(images):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"image {index} must be a uint8 (H, W, 3) array, got {image.dtype} {image.shape}")
            if min(image.shape[:2]) < patch_size:
                raise ValueError(
                    f"image {index} of size {image.shape[0]}x{image.shape[1]} is smaller than patch_size {patch_size}; "
                    "leave it out or lower patch_size"
                )
        self.degradation = degradation
        self.patch_size = patch_size
        self.device = torch.device(device)
        self.seed = seed
        self.augment = augment

        areas = [image.shape[0] * image.shape[1] for image in images]
        self._pixels = torch.empty(sum(areas), 3, dtype=torch.uint8, device=self.device)
        offset = 0
        for image, area in zip(images, areas):
            pixels = torch.from_numpy(np.require(image, np.uint8, ["C", "W"]))  # a copy only if read-only
            self._pixels[offset : offset + area].copy_(pixels.view(area, 3))
            offset += area
        sizes = torch.tensor(areas)
        self._offsets = (torch.cumsum(sizes, dim=0) - sizes).to(self.device)
        self._heights = torch.tensor([image.shape[0] for image in images], device=self.device)
        self._widths = torch.tensor([image.shape[1] for image in images], device=self.device)
        weights = torch.tensor(areas if weighting == "area" else [1] * len(areas), dtype=torch.float64)
        cumulative = torch.cumsum(weights / weights.sum(), dim=0)
        cumulative[-1] = 1.0
        self._cumulative_weights = cumulative.to(self.device, torch.float32)
        source = _dihedral_source_pixels(patch_size).to(self.device)
        self._source_rows, self._source_columns = source // patch_size, source % patch_size

    @classmethod
    def from_dataset(cls, dataset: PairedPatchDataset, device: torch.device | str) -> DevicePatchBatches:
        """The batches of the same images, degradation, patch size, seed, weighting and augmentation as ``dataset``."""
        images = [dataset.image(index) for index in range(len(dataset.paths))]
        return cls(images, dataset.degradation, dataset.patch_size, device=device, seed=dataset.seed,
                   weighting=dataset.weighting, augment=dataset.augment)

    def generator(self, block: int) -> torch.Generator:
        """The generator batch ``block`` draws from: on the device, seeded from ``(seed, block)``."""
        if isinstance(block, bool) or not isinstance(block, int) or block < 0:
            raise ValueError(f"block must be a non-negative integer, got {block!r}")
        state = np.random.SeedSequence([self.seed, block]).generate_state(1, np.uint64)[0]
        return torch.Generator(device=self.device).manual_seed(int(state))

    def clean_patches(self, count: int, generator: torch.Generator) -> Tensor:
        """``count`` random crops, randomly flipped and rotated, as ``(count, 3, patch_size, patch_size)`` floats.

        Each sample draws its image, its position and its flip/rotation code from ``generator``; the
        crops are one gather from the image buffer. Values are in [0, 1] (uint8 / 255).
        """
        size, device = self.patch_size, self.device
        draw = torch.rand(count, generator=generator, device=device)
        image = torch.searchsorted(self._cumulative_weights, draw, right=True).clamp_(max=len(self._offsets) - 1)
        height, width = self._heights[image], self._widths[image]
        top = (torch.rand(count, generator=generator, device=device) * (height - size + 1)).long()
        left = (torch.rand(count, generator=generator, device=device) * (width - size + 1)).long()
        top = torch.minimum(top, height - size)  # a float32 draw may round up to the range's end
        left = torch.minimum(left, width - size)
        if self.augment:
            code = torch.randint(8, (count,), generator=generator, device=device)
        else:
            code = torch.zeros(count, dtype=torch.long, device=device)
        rows = top.view(-1, 1, 1) + self._source_rows[code]
        columns = left.view(-1, 1, 1) + self._source_columns[code]
        pixels = self._pixels[self._offsets[image].view(-1, 1, 1) + rows * width.view(-1, 1, 1) + columns]
        return pixels.permute(0, 3, 1, 2).float().div_(255.0).contiguous()

    def batch(self, block: int, batch_size: int) -> tuple[Tensor, Tensor]:
        """Batch ``block``: ``(degraded, clean)`` float32 tensors in [0, 1] on the device.

        Their shapes are ``(batch_size, 3, patch_size // scale, patch_size // scale)`` and
        ``(batch_size, 3, patch_size, patch_size)``.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        generator = self.generator(block)
        clean = self.clean_patches(batch_size, generator)
        return degrade_batch(self.degradation, clean, generator), clean

    def steps(self, start_step: int, end_step: int, batch_size: int, *, rank: int = 0, world_size: int = 1,
              repeat_first: bool = False) -> Iterator[tuple[Tensor, Tensor]]:
        """The batches of steps ``start_step .. end_step - 1`` for one rank (block ``step * world_size + rank``).

        With ``repeat_first`` every step gets step 0's batch (the trainer's ``overfit_batch``).
        """
        for step in range(start_step, end_step):
            yield self.batch((0 if repeat_first else step) * world_size + rank, batch_size)
