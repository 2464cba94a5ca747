"""Datasets: random degraded patches for training, fixed protocol pairs for validation.

Training (:class:`PairedPatchDataset`) decodes every image once into memory as ``uint8`` and cuts
random patches from it. Item ``i`` is a pure function of ``(seed, epoch, i)``: its generator is
``numpy.random.default_rng([seed, epoch, i])``, never global state, so items are reproducible and
identical whatever the number of ``DataLoader`` workers or their order. Call
:meth:`PairedPatchDataset.set_epoch` at the start of every epoch (and, when resuming, with the epoch
you resume at) to see new patches; with ``DataLoader(persistent_workers=True)`` the workers keep the
copy of the dataset they started with, so leave ``persistent_workers`` off or recreate the loader.

Validation (:class:`ImageFolderPairs`) builds the inputs of the evaluation protocol with the
``protocol_*`` helpers of :mod:`hfpie.training.degradations`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from ..errors import ImageReadError
from ..io import READ_SUFFIXES
from ..tasks import TRAINING_TASKS
from .degradations import (
    Degradation,
    crop_to_multiple,
    protocol_bicubic_lr,
    protocol_blur,
    protocol_gaussian_noise,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageFolderPairs",
    "PairedPatchDataset",
    "flip_rotate",
    "list_images",
    "measure_data_time",
    "read_image",
]

IMAGE_EXTENSIONS: tuple[str, ...] = tuple(sorted(READ_SUFFIXES))
"""File name extensions read as images (compared case-insensitively): :data:`hfpie.io.READ_SUFFIXES`."""

_JPEG_EXTENSIONS = (".jpeg", ".jpg")
_VALIDATION_TASKS = TRAINING_TASKS

PathLike = str | os.PathLike[str]


def list_images(folders: PathLike | Sequence[PathLike]) -> list[Path]:
    """Image files under one or more folders, recursively.

    Args:
        folders: A folder or a sequence of folders.

    Returns:
        The files whose extension is in :data:`IMAGE_EXTENSIONS`, folder by folder in the order
        given, each folder's files sorted by their path relative to it.
    """
    if isinstance(folders, (str, os.PathLike)):
        folders = [folders]
    files: list[Path] = []
    for folder in folders:
        root = Path(folder)
        if not root.is_dir():
            raise FileNotFoundError(f"image folder {str(root)!r} does not exist or is not a directory")
        found = [
            path for path in root.rglob("*") if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
        ]
        files.extend(sorted(found, key=lambda path: path.relative_to(root).as_posix()))
    return files


def read_image(path: PathLike, *, downscale: int = 1) -> np.ndarray:
    """Decode an image file to an RGB ``uint8`` array.

    Grey and palette images become RGB, alpha is dropped, 16-bit images are rounded to 8 bits. The
    stored pixel order is kept (no EXIF rotation). With ``downscale`` > 1 the image is cropped at the
    top left to a multiple of ``downscale`` and reduced by Pillow's antialiased bicubic filter, which
    also removes most JPEG artefacts (useful for clean super-resolution targets from photos).

    Args:
        path: Image file.
        downscale: Positive integer reduction factor.

    Returns:
        ``(H, W, 3)`` uint8 array (``H, W`` divided by ``downscale``).
    """
    if isinstance(downscale, bool) or not isinstance(downscale, int) or downscale < 1:
        raise ValueError(f"downscale must be a positive integer (1 keeps the size), got {downscale!r}")
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
                pixels = np.asarray(image, dtype=np.float64)
                maximum = 65535.0 if image.mode.startswith("I;16") or pixels.max() > 255 else 255.0
                pixels = np.clip(np.round(pixels * (255.0 / maximum)), 0, 255).astype(np.uint8)
                pixels = np.repeat(pixels[..., None], 3, axis=-1)
            else:
                pixels = np.asarray(image.convert("RGB"))
    except (FileNotFoundError, UnidentifiedImageError, OSError) as error:
        raise ImageReadError(
            f"cannot read image {str(path)!r} ({error}); check that it is a valid image file"
        ) from error
    if downscale > 1:
        pixels = crop_to_multiple(pixels, downscale)
        height, width = pixels.shape[:2]
        pixels = np.asarray(Image.fromarray(pixels).resize((width // downscale, height // downscale), Image.BICUBIC))
    return np.ascontiguousarray(pixels)


def flip_rotate(image: np.ndarray, code: int) -> np.ndarray:
    """One of the 8 flips and 90-degree rotations of an image (the dihedral group of the square).

    Args:
        image: ``(H, W, ...)`` array.
        code: Integer in 0..7: ``code % 4`` quarter turns counter-clockwise, then a left-right
            flip when ``code >= 4``. Code 0 is the identity.

    Returns:
        The transformed array (a view), ``(W, H, ...)`` for odd quarter turns.
    """
    if not 0 <= code <= 7:
        raise ValueError(f"code must be an integer in 0..7, got {code!r}")
    transformed = np.rot90(image, k=int(code) % 4, axes=(0, 1))
    return transformed[:, ::-1] if code >= 4 else transformed


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """``(H, W, C)`` float32 array to a contiguous ``(C, H, W)`` tensor."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))


def _image_size(path: Path, downscale: int) -> tuple[int, int]:
    """Height and width of an image file after :func:`read_image`'s ``downscale``, from its header."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (FileNotFoundError, UnidentifiedImageError, OSError) as error:
        raise ImageReadError(
            f"cannot read image {str(path)!r} ({error}); check that it is a valid image file"
        ) from error
    return height // downscale, width // downscale


class PairedPatchDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Random ``(degraded, clean)`` training patches cut from a folder of clean images.

    Each item draws, from ``numpy.random.default_rng([seed, epoch, index])``: an image (with
    probability proportional to its area, so every pixel is about equally likely, or uniformly), a
    ``patch_size`` crop, one of the 8 flips/rotations, then every random choice of the degradation.
    ``patch_size`` is the clean (high-resolution) side; for super-resolution it must be a multiple
    of ``degradation.scale`` and the degraded patch has side ``patch_size // scale``.

    Images are decoded once, at construction, and kept as ``uint8`` arrays (about 3 bytes per pixel:
    420 MB for 140 megapixels); forked ``DataLoader`` workers share them. With ``cache=False`` only
    the image sizes are read up front and every item decodes its image again (slow; for data sets
    that do not fit in memory).

    Args:
        folders: Folder or folders of clean images, searched recursively (:func:`list_images`).
        degradation: Callable ``(clean HxWx3 float32 in [0, 1], rng) -> degraded`` with a ``scale``
            attribute (1 when absent), e.g. from :func:`~hfpie.training.degradations.make_degradation`.
        patch_size: Side of the clean patches in pixels.
        length: Items per epoch; by default the number of ``patch_size`` squares the images hold.
        seed: Non-negative integer seed.
        cache: Decode every image once and keep it in memory.
        jpeg_downscale: Reduce JPEG sources by this integer factor when loading (e.g. 2 to get
            cleaner targets from phone photos); other formats are kept as they are.
        weighting: ``"area"`` to draw images in proportion to their number of pixels, ``"uniform"``
            to draw every image equally often.
        augment: Apply random flips and 90-degree rotations.

    Attributes:
        paths: The images used, in sampling order.
        skipped_paths: Images smaller than ``patch_size`` on a side, which are never sampled.
        epoch: The epoch mixed into every item's seed (see :meth:`set_epoch`).

    Items are ``(degraded, clean)`` float32 tensors of shapes ``(3, patch_size // scale,
    patch_size // scale)`` and ``(3, patch_size, patch_size)``, in [0, 1].
    """

    def __init__(
        self,
        folders: PathLike | Sequence[PathLike],
        degradation: Degradation,
        patch_size: int,
        *,
        length: int | None = None,
        seed: int = 0,
        cache: bool = True,
        jpeg_downscale: int = 1,
        weighting: Literal["area", "uniform"] = "area",
        augment: bool = True,
    ) -> None:
        scale = int(getattr(degradation, "scale", 1))
        if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
            raise ValueError(f"patch_size must be a positive integer such as 128, got {patch_size!r}")
        if scale < 1 or patch_size % scale:
            raise ValueError(
                f"patch_size {patch_size} must be a multiple of the degradation's scale {scale}; "
                f"use e.g. {max(scale, patch_size - patch_size % scale)}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if weighting not in ("area", "uniform"):
            raise ValueError(f"weighting must be 'area' or 'uniform', got {weighting!r}")
        if isinstance(jpeg_downscale, bool) or not isinstance(jpeg_downscale, int) or jpeg_downscale < 1:
            raise ValueError(f"jpeg_downscale must be a positive integer (1 keeps the size), got {jpeg_downscale!r}")

        self.degradation = degradation
        self.patch_size = patch_size
        self.scale = scale
        self.seed = seed
        self.cache = cache
        self.jpeg_downscale = jpeg_downscale
        self.weighting = weighting
        self.augment = augment
        self.epoch = 0

        files = list_images(folders)
        if not files:
            raise ValueError(
                f"no image files ({', '.join(IMAGE_EXTENSIONS)}) found under {folders!r}; check the folder paths"
            )
        factors = [self._downscale_of(path) for path in files]
        if cache:
            workers = max(1, min(8, os.cpu_count() or 1))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                decoded = list(pool.map(lambda item: read_image(item[0], downscale=item[1]), zip(files, factors)))
            sizes = [image.shape[:2] for image in decoded]
        else:
            decoded = [None] * len(files)
            sizes = [_image_size(path, factor) for path, factor in zip(files, factors)]

        keep = [i for i, (height, width) in enumerate(sizes) if height >= patch_size and width >= patch_size]
        kept = set(keep)
        self.skipped_paths: tuple[Path, ...] = tuple(path for i, path in enumerate(files) if i not in kept)
        if not keep:
            largest = max(sizes, key=lambda size: min(size))
            raise ValueError(
                f"every image is smaller than patch_size {patch_size} (largest {largest[0]}x{largest[1]}"
                f"{' after jpeg_downscale' if jpeg_downscale > 1 else ''}); lower patch_size or add larger images"
            )
        self.paths: tuple[Path, ...] = tuple(files[i] for i in keep)
        self._images: list[np.ndarray | None] = [decoded[i] for i in keep]
        self._sizes: list[tuple[int, int]] = [sizes[i] for i in keep]
        areas = np.array([height * width for height, width in self._sizes], dtype=np.float64)
        weights = areas if weighting == "area" else np.ones_like(areas)
        self._cumulative_weights = np.cumsum(weights / weights.sum())
        self._cumulative_weights[-1] = 1.0
        if length is None:
            length = max(1, int(areas.sum()) // (patch_size * patch_size))
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ValueError(f"length must be a positive integer (items per epoch), got {length!r}")
        self.length = length

    def _downscale_of(self, path: Path) -> int:
        return self.jpeg_downscale if path.suffix.lower() in _JPEG_EXTENSIONS else 1

    def __len__(self) -> int:
        """Items per epoch."""
        return self.length

    def set_epoch(self, epoch: int) -> None:
        """Mix ``epoch`` into every item's seed so that each epoch sees new patches.

        Call it before iterating a ``DataLoader`` each epoch (workers copy the dataset when the
        iteration starts); a resumed run calls it with the epoch it resumes at and gets the same
        items as an uninterrupted run.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        self.epoch = epoch

    def item_generator(self, index: int) -> np.random.Generator:
        """The generator item ``index`` of the current epoch draws from."""
        return np.random.default_rng([self.seed, self.epoch, index])

    def image(self, image_index: int) -> np.ndarray:
        """The ``(H, W, 3)`` uint8 image number ``image_index`` of :attr:`paths`."""
        cached = self._images[image_index]
        if cached is not None:
            return cached
        path = self.paths[image_index]
        return read_image(path, downscale=self._downscale_of(path))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Item ``index`` of the current epoch: ``(degraded, clean)`` float32 CxHxW tensors in [0, 1]."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} is out of range for a dataset of length {self.length}")
        rng = self.item_generator(int(index))
        image_index = int(np.searchsorted(self._cumulative_weights, rng.random(), side="right"))
        image_index = min(image_index, len(self._sizes) - 1)
        image = self.image(image_index)
        height, width = image.shape[:2]
        size = self.patch_size
        top = int(rng.integers(0, height - size + 1))
        left = int(rng.integers(0, width - size + 1))
        patch = image[top : top + size, left : left + size]
        if self.augment:
            patch = flip_rotate(patch, int(rng.integers(8)))
        clean = patch.astype(np.float32) * np.float32(1.0 / 255.0)
        degraded = self.degradation(clean, rng)
        expected = (size // self.scale, size // self.scale, clean.shape[2])
        if degraded.shape != expected:
            raise ValueError(
                f"the degradation returned shape {degraded.shape} for a clean patch of shape {clean.shape}; "
                f"expected {expected} (its scale attribute is {self.scale})"
            )
        return _to_tensor(degraded), _to_tensor(clean)


class ImageFolderPairs(Sequence[tuple[str, np.ndarray, np.ndarray]]):
    """Validation pairs of the evaluation protocol, built deterministically from a folder.

    Images are listed with :func:`list_images` (recursive, sorted by relative path); the position of
    a file in that list is the ``index`` seeding the protocol. Items are
    ``(name, degraded_u8, clean_u8)`` with ``name`` the relative path without its extension:

    * ``"denoise"``: :func:`~hfpie.training.degradations.protocol_gaussian_noise` with ``sigma``;
    * ``"deblur"``: :func:`~hfpie.training.degradations.protocol_blur`;
    * ``"sr"``: :func:`~hfpie.training.degradations.protocol_bicubic_lr` with ``scale``; the
      degraded image is the low-resolution one and the clean one is the cropped HR image;
    * ``"denoise-real"``: the folder's own pairs, ``<name>_real.<ext>`` (noisy) with
      ``<name>_mean.<ext>`` (clean), as in the PolyU real-noise set; ``name`` is the common prefix.

    Args:
        folder: Folder of clean images (or of real/mean pairs).
        task: One of ``"denoise"``, ``"denoise-real"``, ``"deblur"``, ``"sr"``.
        sigma: Integer noise level in 0..255 units, required for ``"denoise"``.
        scale: Integer factor, required for ``"sr"``.
        cache: Keep every built pair in memory after its first use.
    """

    def __init__(
        self,
        folder: PathLike,
        task: str,
        *,
        sigma: int | None = None,
        scale: int | None = None,
        cache: bool = True,
    ) -> None:
        if task not in _VALIDATION_TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of {', '.join(_VALIDATION_TASKS)}")
        if task == "denoise" and sigma is None:
            raise ValueError("task 'denoise' needs the noise level: pass sigma=15, 25 or 50 (0..255 units)")
        if task == "sr" and scale is None:
            raise ValueError("task 'sr' needs the factor: pass scale=2, 3 or 4")
        self.folder = Path(folder)
        self.task = task
        self.sigma = sigma
        self.scale = scale
        self.cache = cache
        files = list_images(self.folder)
        self._sources: list[tuple[str, Path, Path | None]] = []
        if task == "denoise-real":
            self._sources = self._real_pairs(files)
        else:
            for path in files:
                name = path.relative_to(self.folder).with_suffix("").as_posix()
                self._sources.append((name, path, None))
        if not self._sources:
            what = "<name>_real / <name>_mean image pairs" if task == "denoise-real" else "image files"
            raise ValueError(f"no {what} found under {str(self.folder)!r}; check the folder path")
        self._cached: dict[int, tuple[str, np.ndarray, np.ndarray]] = {}

    def _real_pairs(self, files: list[Path]) -> list[tuple[str, Path, Path | None]]:
        noisy: dict[str, Path] = {}
        clean: dict[str, Path] = {}
        for path in files:
            stem = path.relative_to(self.folder).with_suffix("").as_posix()
            lowered = stem.lower()
            if lowered.endswith("_real"):
                noisy[stem[: -len("_real")]] = path
            elif lowered.endswith("_mean"):
                clean[stem[: -len("_mean")]] = path
        unpaired = sorted(set(noisy) ^ set(clean))
        if unpaired:
            raise ValueError(
                f"real-noise images without their counterpart under {str(self.folder)!r}: {', '.join(unpaired[:5])}"
                f"{' ...' if len(unpaired) > 5 else ''}; every <name>_real file needs a <name>_mean file"
            )
        return [(name, noisy[name], clean[name]) for name in sorted(noisy)]

    def __len__(self) -> int:
        """Number of pairs."""
        return len(self._sources)

    def names(self) -> list[str]:
        """The item names, in order."""
        return [name for name, _, _ in self._sources]

    def __getitem__(self, index: int) -> tuple[str, np.ndarray, np.ndarray]:  # type: ignore[override]
        """``(name, degraded_u8, clean_u8)`` of pair ``index``, uint8 ``(H, W, 3)`` arrays."""
        if isinstance(index, slice):
            raise TypeError("ImageFolderPairs takes integer indices, not slices")
        if index < 0:
            index += len(self._sources)
        if not 0 <= index < len(self._sources):
            raise IndexError(f"index {index} is out of range for {len(self._sources)} pairs")
        if index in self._cached:
            return self._cached[index]
        name, path, partner = self._sources[index]
        clean = read_image(path if partner is None else partner)
        if self.task == "denoise":
            assert self.sigma is not None
            degraded = protocol_gaussian_noise(clean, self.sigma, index)
        elif self.task == "deblur":
            degraded, _ = protocol_blur(clean, index)
        elif self.task == "sr":
            assert self.scale is not None
            clean, degraded = protocol_bicubic_lr(clean, self.scale)
        else:
            degraded = read_image(path)
            if degraded.shape != clean.shape:
                raise ValueError(
                    f"real-noise pair {name!r} has noisy shape {degraded.shape} but clean shape {clean.shape}"
                )
        item = (name, degraded, clean)
        if self.cache:
            self._cached[index] = item
        return item

    def __iter__(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """Pairs in order."""
        for index in range(len(self)):
            yield self[index]


def measure_data_time(
    dataset: Dataset[tuple[torch.Tensor, torch.Tensor]],
    batch_size: int,
    num_batches: int,
    *,
    num_workers: int = 0,
    warmup_batches: int = 1,
) -> float:
    """Seconds the data pipeline takes to produce one batch, to split training time into data and compute.

    Batches are drawn through a ``DataLoader`` (shuffled, as in training); the first
    ``warmup_batches`` are not timed (worker start-up). The dataset is iterated again if it is
    shorter than the number of batches asked for.

    Args:
        dataset: A map-style dataset, e.g. :class:`PairedPatchDataset`.
        batch_size: Items per batch.
        num_batches: Batches timed, >= 1.
        num_workers: ``DataLoader`` worker processes (0 loads in this process).
        warmup_batches: Untimed batches first.

    Returns:
        Mean wall-clock seconds per batch.
    """
    if batch_size < 1 or num_batches < 1 or warmup_batches < 0:
        raise ValueError(
            f"batch_size and num_batches must be >= 1 and warmup_batches >= 0, got {batch_size}, {num_batches}, "
            f"{warmup_batches}"
        )
    available = len(dataset)  # type: ignore[arg-type]
    if available < batch_size:
        raise ValueError(f"the dataset has {available} items, fewer than batch_size {batch_size}; lower batch_size")
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(0),
    )

    def batches() -> Iterator[object]:
        while True:
            yield from loader

    stream = batches()
    for _ in range(warmup_batches):
        next(stream)
    start = time.perf_counter()
    for _ in range(num_batches):
        next(stream)
    return (time.perf_counter() - start) / num_batches
