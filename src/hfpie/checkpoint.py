"""The one checkpoint format of hfpie: safetensors with a JSON header naming what the file holds.

Both network families are saved and read here:

- image models (:class:`hfpie.models.HFPIENet`): header ``format = "hfpie"``, ``config`` (the
  :class:`~hfpie.models.HFPIEConfig` as JSON) and optional ``name``, ``task``, ``step``...;
- the high-pass filtering loss network (``hfpie.training.highpass.HighPassNet``): header
  ``format = "hfpie.highpass_net"``, ``format_version``, ``config`` and ``metadata`` (JSON).

Files are written atomically (:func:`hfpie.io.atomic_write_bytes`) and read with safetensors only:
a pickled PyTorch checkpoint is refused with advice, never unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from .errors import WeightsIntegrityError
from .io import atomic_write_bytes

__all__ = ["HFPIE_FORMAT", "HIGHPASS_FORMAT", "checkpoint_format", "read_checkpoint", "read_config",
           "read_metadata", "save_checkpoint"]

HFPIE_FORMAT = "hfpie"
"""``format`` of an image model's checkpoint."""
HIGHPASS_FORMAT = "hfpie.highpass_net"
"""``format`` of the high-pass filtering loss network's checkpoint."""

_PICKLE_SUFFIXES = {".pth", ".pt", ".bin", ".ckpt", ".pkl"}


def _unreadable(path: Path, error: BaseException) -> WeightsIntegrityError:
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        advice = ("hfpie never unpickles PyTorch checkpoints (loading a pickle can run code): save the state dict "
                  "with safetensors.torch.save_file(state, 'model.safetensors', metadata={'config': json.dumps(config)})")
    else:
        advice = "re-export the model with `hfpie train` or re-download it"
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return WeightsIntegrityError(
        f"Cannot read {path} as a safetensors checkpoint ({first_line}). hfpie loads .safetensors files only; {advice}."
    )


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The header of a safetensors checkpoint (without reading its tensors)."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as error:  # safetensors raises several types for a bad header
        raise _unreadable(path, error) from None


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, header) of a safetensors checkpoint."""
    from safetensors.torch import load_file

    path = Path(path)
    metadata = read_metadata(path)
    try:
        return load_file(str(path)), metadata
    except Exception as error:
        raise _unreadable(path, error) from None


def checkpoint_format(metadata: dict[str, str]) -> str:
    """What a header describes: :data:`HFPIE_FORMAT`, :data:`HIGHPASS_FORMAT`, or ``""`` if unknown.

    Image-model files written before the ``format`` field existed carry just a ``config``.
    """
    declared = metadata.get("format", "")
    if declared:
        return declared
    return HFPIE_FORMAT if "config" in metadata else ""


def read_config(path: str | os.PathLike[str]) -> tuple[str, dict[str, Any]]:
    """(format, network config as a dict) stored in a checkpoint's header."""
    metadata = read_metadata(path)
    kind = checkpoint_format(metadata)
    try:
        return kind, json.loads(metadata["config"])
    except (KeyError, ValueError) as error:
        raise WeightsIntegrityError(f"{path} carries no valid network config in its header ({error}).") from None


def save_checkpoint(tensors: dict[str, torch.Tensor], path: str | os.PathLike[str], *, kind: str,
                    config: dict[str, Any], metadata: dict[str, str] | None = None) -> Path:
    """Write ``tensors`` (moved to the CPU, contiguous) with ``format = kind``, the JSON ``config`` and
    string ``metadata`` in the header; atomically."""
    from safetensors.torch import save

    state = {name: value.detach().to("cpu").contiguous() for name, value in tensors.items()}
    header = {**(metadata or {}), "format": kind, "config": json.dumps(config)}
    path = Path(path)
    atomic_write_bytes(path, save(state, metadata=header))
    return path
