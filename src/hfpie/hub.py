"""Pretrained weights: manifest -> local file / bundled copy / Hub download -> sha256 -> strict load.

Where weights come from, in order:

1. an explicit local ``.safetensors`` file, or a folder holding ``model.safetensors`` (and optionally
   the ``config.json`` written by ``hfpie hub-export``);
2. the copy bundled inside the package (``hfpie/weights/``): the offline default;
3. the Hugging Face Hub via :func:`huggingface_hub.hf_hub_download`, at the revision pinned in the
   manifest. ``HF_ENDPOINT``, ``HF_HOME`` / ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` are read at call
   time, so they can be changed after import.

Manifest entries are always checked against their sha256 before loading; a downloaded file that does
not match is deleted from the cache. Weights are read with safetensors only (never pickle) and
loaded with ``strict=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from .errors import ModelNotFoundError, NoPretrainedWeightsError, WeightsIntegrityError
from .models import HFPIEConfig, HFPIENet, optimize_for_inference

__all__ = [
    "TASKS",
    "ModelEntry",
    "bundled_path",
    "download_weights",
    "find_entry",
    "list_models",
    "load_manifest",
    "load_model",
    "load_network",
    "sha256_of",
]

TASKS = ("denoise", "deblur", "sr")
_WEIGHTS_PACKAGE = "hfpie.weights"


@dataclass(frozen=True)
class ModelEntry:
    """One checkpoint of ``weights_manifest.json``."""

    name: str
    task: str
    scale: int
    preset: str
    config: dict[str, Any]
    repo_id: str
    filename: str
    revision: str
    sha256: str
    size: int
    license: str = "MIT"
    default: bool = False
    description: str = ""
    training_data: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    """Every other manifest field (training command, steps, wall time, metrics ...)."""

    @classmethod
    def from_json(cls, name: str, values: dict[str, Any]) -> ModelEntry:
        known = {"task", "scale", "preset", "config", "repo_id", "filename", "revision", "sha256", "size",
                 "license", "default", "description", "training_data"}
        missing = {"task", "scale", "repo_id", "filename", "revision", "sha256", "size"} - set(values)
        if missing:
            raise ValueError(f"manifest entry {name!r} lacks {sorted(missing)}")
        return cls(
            name=name,
            preset=values.get("preset", ""),
            config=values.get("config", {}),
            extra={k: v for k, v in values.items() if k not in known},
            **{k: v for k, v in values.items() if k in known - {"preset", "config"}},
        )


def load_manifest() -> dict[str, ModelEntry]:
    """Every checkpoint listed in the packaged ``weights_manifest.json``, by name."""
    text = resources.files("hfpie").joinpath("weights_manifest.json").read_text(encoding="utf-8")
    data = json.loads(text)
    return {name: ModelEntry.from_json(name, values) for name, values in data.get("models", {}).items()}


def list_models() -> list[ModelEntry]:
    """The checkpoints of the manifest, sorted by task then name (task "hpf" is the training loss network)."""
    return sorted(load_manifest().values(), key=lambda entry: (entry.task, entry.scale, entry.name))


def find_entry(name_or_task: str, scale: int | None = None) -> ModelEntry:
    """The manifest entry called ``name_or_task``, or the default model of that task (and scale)."""
    manifest = load_manifest()
    if name_or_task in manifest:
        return manifest[name_or_task]
    if name_or_task in TASKS:
        candidates = [e for e in manifest.values() if e.task == name_or_task and (scale is None or e.scale == scale)]
        defaults = [e for e in candidates if e.default] or candidates
        if defaults:
            return defaults[0]
        wanted = f"task {name_or_task!r}" + (f" at scale {scale}" if scale else "")
        raise NoPretrainedWeightsError(
            f"No pretrained weights are installed for {wanted}: the weights manifest lists "
            f"{', '.join(sorted(manifest)) or 'no models yet'}. Train one (`hfpie train`) and pass its "
            "file with model=PATH, or upgrade hfpie to a release that ships this model."
        )
    raise ModelNotFoundError(
        f"Unknown model {name_or_task!r}. Known models: {', '.join(sorted(manifest)) or 'none'}; tasks: "
        f"{', '.join(TASKS)}; or pass the path of a .safetensors file or of a folder holding model.safetensors."
    )


def sha256_of(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(path: Path, entry: ModelEntry, *, delete_on_mismatch: bool) -> None:
    actual = sha256_of(path)
    if actual == entry.sha256:
        return
    removed = ""
    if delete_on_mismatch:
        target = path.resolve()
        for item in {path, target}:
            try:
                item.unlink()
            except FileNotFoundError:
                pass
        removed = " The corrupted download was deleted from the cache."
    raise WeightsIntegrityError(
        f"Weights file {path} of model {entry.name!r} is corrupted or not the expected version: "
        f"sha256 expected {entry.sha256}, got {actual}.{removed} Run `hfpie download {entry.name}` again "
        "(or reinstall hfpie for the bundled copy); if it keeps failing, report it."
    )


def _hub_cache_dir() -> str:
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")), "huggingface"
    )
    return os.path.join(home, "hub")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def bundled_path(entry: ModelEntry) -> Path | None:
    candidate = resources.files(_WEIGHTS_PACKAGE).joinpath(f"{entry.name}.safetensors")
    path = Path(str(candidate))
    return path if path.is_file() else None


def download_weights(entry: ModelEntry, *, use_bundled: bool = True, force: bool = False) -> Path:
    """Path of the verified weights of ``entry``: the bundled copy, else a Hub download (cached)."""
    if use_bundled and not force:
        bundled = bundled_path(entry)
        if bundled is not None:
            _verify(bundled, entry, delete_on_mismatch=False)
            return bundled
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        downloaded = hf_hub_download(
            repo_id=entry.repo_id,
            filename=entry.filename,
            revision=entry.revision,
            cache_dir=_hub_cache_dir(),
            endpoint=os.environ.get("HF_ENDPOINT") or None,
            local_files_only=_offline(),
            force_download=force,
            library_name="hfpie",
        )
    except LocalEntryNotFoundError as error:
        raise NoPretrainedWeightsError(
            f"Weights of model {entry.name!r} ({entry.repo_id}/{entry.filename}@{entry.revision[:12]}) are not "
            f"in the local cache {_hub_cache_dir()} and cannot be downloaded"
            + (" because HF_HUB_OFFLINE is set" if _offline() else f" ({error})")
            + ". Connect to the network and run `hfpie download "
            f"{entry.name}`, or pass a local file with model=PATH."
        ) from None
    path = Path(str(downloaded))
    _verify(path, entry, delete_on_mismatch=True)
    return path


def _read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
        return load_file(str(path)), metadata
    except Exception as error:  # safetensors raises several types for a bad header
        raise WeightsIntegrityError(
            f"Cannot read {path} as a safetensors checkpoint ({error}). hfpie loads .safetensors files only; "
            "re-export the model with `hfpie train` or re-download it."
        ) from None


def _resolve_local(path: Path) -> tuple[Path, dict[str, Any] | None]:
    if path.is_dir():
        weights = path / "model.safetensors"
        if not weights.is_file():
            raise ModelNotFoundError(f"Folder {path} holds no model.safetensors; point to the weights file itself.")
        config_file = path / "config.json"
        config = json.loads(config_file.read_text()).get("config") if config_file.is_file() else None
        return weights, config
    return path, None


def load_network(
    weights: str | os.PathLike[str], config: HFPIEConfig | dict[str, Any] | None = None
) -> HFPIENet:
    """Build an :class:`HFPIENet` from a safetensors file (or an exported folder), ``strict=True``.

    The config comes from ``config``, else from the folder's ``config.json``, else from the
    checkpoint's metadata (``hfpie.training`` exports store it there).
    """
    path, folder_config = _resolve_local(Path(weights))
    if not path.is_file():
        raise ModelNotFoundError(f"Weights file {path} does not exist.")
    state, metadata = _read_checkpoint(path)
    if config is None:
        config = folder_config
    if config is None and "config" in metadata:
        config = json.loads(metadata["config"])
    if config is None:
        raise WeightsIntegrityError(
            f"{path} carries no network config in its metadata; pass config=HFPIEConfig(...) explicitly."
        )
    if isinstance(config, dict):
        config = HFPIEConfig.from_dict(config)
    network = HFPIENet(config)
    expected = network.state_dict()
    problems = [k for k in expected if k not in state] + [k for k in state if k not in expected]
    problems += [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if problems:
        raise WeightsIntegrityError(
            f"{path} does not fit the network config {config}: {len(problems)} missing, unexpected or "
            f"mis-shaped tensors (first: {problems[:3]}). Check that the file and the config belong together."
        )
    network.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return network.eval()


_CACHE: dict[tuple[str, str, str], HFPIENet] = {}
_CACHE_LOCK = threading.Lock()


def load_model(
    name_or_task: str | os.PathLike[str],
    *,
    scale: int | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> HFPIENet:
    """A ready-to-run network (eval mode, on ``device``), cached per (name, device, dtype).

    Args:
        name_or_task: a model name of :func:`list_models`, a task (``"denoise"``, ``"deblur"``,
            ``"sr"``: its default model), or a path to a ``.safetensors`` file or exported folder.
        scale: with task ``"sr"``, which scale's default model.
        device: ``"cpu"``, ``"cuda"``, ``"mps"``... (default: the best available).
        dtype: parameter dtype (float32; inference in half precision uses autocast instead).

    The network is optimised for inference (:func:`hfpie.models.optimize_for_inference`: edge
    filters folded, channels-last). Thread-safe: concurrent calls build each model once. Do not
    modify the returned module.
    """
    from .api import default_device  # local import: api imports this module

    device = torch.device(device) if device is not None else default_device()
    path = Path(name_or_task)
    is_path = isinstance(name_or_task, os.PathLike) or path.suffix == ".safetensors" or path.exists()
    key = (str(path.resolve()) if is_path else f"{name_or_task}@{scale}", str(device), str(dtype))
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        if is_path:
            network = load_network(path)
        else:
            entry = find_entry(str(name_or_task), scale)
            network = load_network(download_weights(entry), entry.config or None)
        network = optimize_for_inference(
            network.to(device=device, dtype=dtype), channels_last=device.type in {"cpu", "cuda"}
        )
        _CACHE[key] = network
        return network
