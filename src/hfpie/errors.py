"""Exceptions raised by hfpie. Every message says what went wrong and what to do about it."""

from __future__ import annotations

__all__ = [
    "DeviceNotAvailableError",
    "HfpieError",
    "ImageReadError",
    "ImageWriteError",
    "ModelNotFoundError",
    "NoPretrainedWeightsError",
    "NonFiniteOutputError",
    "OutputExistsError",
    "UnsupportedImageError",
    "WeightsIntegrityError",
]


class HfpieError(Exception):
    """Base class of every error hfpie raises on purpose."""


class ModelNotFoundError(HfpieError, KeyError):
    """A model name that is not in the weights manifest."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class NoPretrainedWeightsError(HfpieError):
    """The manifest lists no trained checkpoint for a task."""


class WeightsIntegrityError(HfpieError):
    """A checkpoint file whose sha256 or tensors do not match the manifest."""


class ImageReadError(HfpieError):
    """A file that is missing, not an image, truncated or empty."""


class UnsupportedImageError(HfpieError):
    """An image whose mode or layout hfpie cannot process faithfully."""


class ImageWriteError(HfpieError, OSError):
    """An output file that could not be written (folder missing or read-only, disk full...)."""

    def __str__(self) -> str:  # OSError would add its errno fields
        return str(self.args[0]) if self.args else ""


class OutputExistsError(ImageWriteError):
    """An output file that exists and is not to be replaced (it may have appeared while the image was made)."""


class DeviceNotAvailableError(HfpieError, ValueError):
    """A device name that is not valid or not present on this machine."""


class NonFiniteOutputError(HfpieError):
    """A network output with NaN or infinite values (damaged weights, or an overflow in float32)."""
