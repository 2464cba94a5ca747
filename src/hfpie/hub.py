"""Pretrained weights: model spec -> local file / bundled copy / Hub download -> sha256 -> strict load.

A model is named in one of three ways (:func:`model_source` tells them apart):

1. a **manifest name or task** (``"denoise"``, ``"sr-x4"``, ``"sr"``): the copy bundled inside the
   package (``hfpie/weights/``, the offline default), else a download of the repository and revision
   pinned in the manifest;
2. a **local path**: a ``.safetensors`` file, or a folder holding ``model.safetensors`` and the
   ``config.json`` written by ``hfpie hub-export``;
3. a **Hugging Face Hub repository** ``owner/repo`` or ``owner/repo@revision`` (a branch, tag or
   commit) holding what ``hfpie hub-export`` wrote: ``config.json`` and ``model.safetensors`` are
   fetched with :func:`huggingface_hub.hf_hub_download` into its cache, both at the same commit.

``HF_ENDPOINT``, ``HF_HOME`` / ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` are read at call time, so they
can be changed after import. Manifest entries are always checked against their sha256 before loading
(a downloaded file that does not match is deleted from the cache); an exported folder or Hub
repository is checked against the sha256 its ``config.json`` records. Weights are read with
safetensors only (never pickle) and loaded with ``strict=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import torch

from .checkpoint import HIGHPASS_FORMAT, checkpoint_format, read_checkpoint
from .errors import ModelNotFoundError, NoPretrainedWeightsError, WeightsIntegrityError
from .models import HFPIEConfig, HFPIENet, optimize_for_inference
from .runner import default_device
from .tasks import TASKS

__all__ = [
    "HUB_FILES",
    "LOSS_NETWORK_TASK",
    "TASKS",
    "ModelEntry",
    "ModelSource",
    "bundled_path",
    "download_repo",
    "download_weights",
    "find_entry",
    "list_models",
    "load_manifest",
    "load_model",
    "load_network",
    "model_source",
    "sha256_of",
]

LOSS_NETWORK_TASK = "hpf"
"""Task of the high-pass filtering loss network: a training asset, not an image model."""
HUB_FILES = ("config.json", "model.safetensors")
"""The files of an hfpie Hub repository that loading needs (``hfpie hub-export`` also writes README.md)."""
_WEIGHTS_PACKAGE = "hfpie.weights"
_HUB_ID = re.compile(r"(?P<repo_id>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<revision>[^@\s]+))?")


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
    raise _unknown_model(name_or_task, manifest)


def _unknown_model(name: str, manifest: dict[str, ModelEntry]) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"Unknown model {name!r}. Known models: {', '.join(sorted(manifest)) or 'none'}; tasks: "
        f"{', '.join(TASKS)}; or pass the path of a .safetensors file or of a folder holding model.safetensors, "
        "or a Hugging Face Hub repository id owner/repo[@revision]."
    )


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from (see :func:`model_source`)."""

    kind: Literal["manifest", "path", "hub"]
    """``"manifest"``: a bundled model's name or a task; ``"path"``: a local file or folder;
    ``"hub"``: a Hugging Face Hub repository."""
    name: str
    """The model name or task, the path, or the repository id ``owner/repo``."""
    revision: str | None = None
    """Hub only: a branch, tag or commit; None for the repository's ``main`` branch."""

    def __str__(self) -> str:
        return self.name if self.revision is None else f"{self.name}@{self.revision}"


def _valid_repo_id(repo_id: str) -> bool:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        return False
    return True


def model_source(model: str | os.PathLike[str], revision: str | None = None) -> ModelSource:
    """Tell a model name or task, a local path and a Hub repository id apart.

    Checked in this order: a name of :func:`list_models` or a task; an existing file or folder, or
    any name ending in ``.safetensors`` (so an existing folder ``owner/repo`` wins over the Hub:
    write ``./owner/repo`` to make a path plain); ``owner/repo`` or ``owner/repo@revision``.

    Args:
        model: the model as the user wrote it (``os.PathLike`` values are always paths).
        revision: a branch, tag or commit of a Hub repository (same as ``owner/repo@revision``).

    Raises:
        ModelNotFoundError: ``model`` is none of the three.
        ValueError: ``revision`` given for a name or path, or differing from the one in the id.
    """
    manifest = load_manifest()
    if isinstance(model, os.PathLike):
        source = ModelSource("path", os.fspath(model))
    elif model in TASKS or model in manifest:
        source = ModelSource("manifest", model)
    elif Path(model).exists() or model.endswith(".safetensors"):
        source = ModelSource("path", model)
    elif (match := _HUB_ID.fullmatch(model)) is not None and _valid_repo_id(match["repo_id"]):
        if match["revision"] and revision and match["revision"] != revision:
            raise ValueError(
                f"Two revisions for {match['repo_id']}: {match['revision']!r} in the id and revision={revision!r}; give one."
            )
        return ModelSource("hub", match["repo_id"], match["revision"] or revision)
    else:
        raise _unknown_model(model, manifest)
    if revision is not None:
        raise ValueError(
            f"revision={revision!r} applies to Hub repositories (owner/repo) only; {model!r} is "
            + ("a bundled model name or task." if source.kind == "manifest" else "a local path.")
        )
    return source


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


def _check_can_force(force: bool, spec: str) -> None:
    if force and _offline():
        raise NoPretrainedWeightsError(
            f"Cannot download {spec} again (force / --force) because HF_HUB_OFFLINE is set: unset HF_HUB_OFFLINE "
            "to download, or leave out --force to use the copy already in the cache."
        )


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _root_cause(error: BaseException) -> BaseException:
    """The innermost exception that ``error`` wraps (huggingface_hub wraps the network error)."""
    seen = {id(error)}
    while (inner := error.__cause__ or error.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        error = inner
    return error


_HUB_TIMEOUT = 5.0
"""Seconds to wait for the Hub to answer before it counts as unreachable (``HF_HUB_ETAG_TIMEOUT`` overrides it)."""


def _hub_timeout() -> float:
    return float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or _HUB_TIMEOUT)


def _refuse_unreachable_hub(repo_id: str, filename: str, revision: str, *, what: str, retry: str) -> None:
    """Raise NoPretrainedWeightsError at once when ``filename`` is not cached and the Hub does not answer.

    huggingface_hub, finding no cached copy after a failed request, retries with a back-off for about
    25 s; one request with a short timeout and no retries tells the same sooner. Any answer of the
    Hub (a missing repository included) is left to :func:`huggingface_hub.hf_hub_download` to report.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url, try_to_load_from_cache
    from huggingface_hub.errors import FileMetadataError, HfHubHTTPError

    if isinstance(try_to_load_from_cache(repo_id, filename, cache_dir=_hub_cache_dir(), revision=revision), str):
        return
    endpoint = os.environ.get("HF_ENDPOINT") or None
    try:
        get_hf_file_metadata(hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint), timeout=_hub_timeout(),
                             endpoint=endpoint, library_name="hfpie")
    except (HfHubHTTPError, FileMetadataError):
        return  # the Hub answered
    except Exception as error:  # no answer: huggingface_hub's HTTP client's connection and timeout errors
        raise NoPretrainedWeightsError(
            f"{what}: the Hugging Face Hub ({endpoint or 'https://huggingface.co'}) cannot be reached "
            f"({_first_line(_root_cause(error))}) and it is not in the local cache. Use a bundled model "
            f"(`hfpie models`) or a local file (--model PATH), or run `{retry}` once online "
            "(HF_HUB_OFFLINE=1 skips the Hub)."
        ) from None


def _hub_download(repo_id: str, filename: str, revision: str, *, force: bool, what: str, retry: str,
                  missing_file: str) -> Path:
    """:func:`huggingface_hub.hf_hub_download` with its errors turned into one-line hfpie errors.

    ``what`` names the files in messages, ``retry`` is the command that fetches them again and
    ``missing_file`` what to do when the repository lacks ``filename``.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if not force and not _offline():
        _refuse_unreachable_hub(repo_id, filename, revision, what=what, retry=retry)
    try:
        return Path(hf_hub_download(
            repo_id=repo_id,
            filename=filename,
            revision=revision,
            cache_dir=_hub_cache_dir(),
            endpoint=os.environ.get("HF_ENDPOINT") or None,
            local_files_only=_offline(),
            force_download=force,
            library_name="hfpie",
            etag_timeout=_hub_timeout(),
        ))
    except LocalEntryNotFoundError as error:  # before EntryNotFoundError: it is a subclass
        reason = "because HF_HUB_OFFLINE is set" if _offline() else f"({_first_line(_root_cause(error))})"
        raise NoPretrainedWeightsError(
            f"{what}: not in the local cache {_hub_cache_dir()}, and it cannot be downloaded {reason}. "
            f"Connect to the network and run `{retry}`, or pass a local file with model=PATH."
        ) from None
    except GatedRepoError:
        raise ModelNotFoundError(
            f"Hub repository {repo_id!r} is gated: accept its conditions on its Hub page and log in with "
            "`hf auth login`."
        ) from None
    except RepositoryNotFoundError:
        raise ModelNotFoundError(
            f"Hub repository {repo_id!r} was not found: it does not exist, or it is private (log in with "
            "`hf auth login`), and no local file or folder of that name exists. Check the id; "
            "`hfpie models` lists the bundled models."
        ) from None
    except RevisionNotFoundError:
        raise ModelNotFoundError(
            f"Hub repository {repo_id!r} has no revision {revision!r}: give an existing branch, tag or "
            f"commit, e.g. {repo_id}@main."
        ) from None
    except EntryNotFoundError:
        raise ModelNotFoundError(f"{repo_id}@{revision} has no {filename}: {missing_file}") from None
    except HfHubHTTPError as error:
        raise NoPretrainedWeightsError(
            f"{what}: the Hub could not serve it ({_first_line(error)}). "
            f"Try `{retry}` again later, or pass a local file with model=PATH."
        ) from None
    except ValueError as error:  # a forced download whose request failed
        if not force:
            raise
        raise NoPretrainedWeightsError(
            f"{what}: downloading it again failed ({_first_line(_root_cause(error))}). Check the connection and run "
            f"`{retry} --force` again; the copy already in the cache, if any, is still used without --force."
        ) from None


def download_weights(entry: ModelEntry, *, use_bundled: bool = True, force: bool = False) -> Path:
    """Path of the verified weights of ``entry``: the bundled copy, else a Hub download (cached).

    ``force`` downloads again even when the file is cached (not possible under ``HF_HUB_OFFLINE``).
    """
    if use_bundled and not force:
        bundled = bundled_path(entry)
        if bundled is not None:
            _verify(bundled, entry, delete_on_mismatch=False)
            return bundled
    _check_can_force(force, f"model {entry.name!r}")
    path = _hub_download(
        entry.repo_id, entry.filename, entry.revision, force=force,
        what=f"Weights of model {entry.name!r} ({entry.repo_id}/{entry.filename}@{entry.revision[:12]})",
        retry=f"hfpie download {entry.name}",
        missing_file="the repository pinned in hfpie's weights manifest lacks the file; reinstall hfpie or report it.",
    )
    _verify(path, entry, delete_on_mismatch=True)
    return path


def download_repo(repo_id: str, revision: str | None = None, *, force: bool = False) -> Path:
    """The local folder holding :data:`HUB_FILES` of the Hub repository ``repo_id`` at ``revision``.

    The files are fetched with :func:`huggingface_hub.hf_hub_download` into its cache (only read from
    there under ``HF_HUB_OFFLINE=1``); a branch or tag is resolved once, so both come from the same
    commit. ``revision`` defaults to ``main``; ``force`` downloads again even when cached.

    Raises:
        ModelNotFoundError: no such repository or revision, or not a repository of an hfpie model.
        NoPretrainedWeightsError: not cached and the Hub cannot be reached (or HF_HUB_OFFLINE is set).
    """
    spec = f"{repo_id}@{revision}" if revision else repo_id
    _check_can_force(force, spec)
    revision = revision or "main"
    folder: Path | None = None
    for filename in HUB_FILES:
        path = _hub_download(
            repo_id, filename, revision, force=force, what=f"Hub model {spec}", retry=f"hfpie download {spec}",
            missing_file="it is not an hfpie model repository. Write one with `hfpie hub-export MODEL FOLDER` "
            "and upload that folder.",
        )
        if folder is None:  # huggingface_hub's cache layout: .../snapshots/<commit>/config.json
            folder = path.parent
            if re.fullmatch(r"[0-9a-f]{40}", folder.name):
                revision = folder.name  # the next file from the same commit, even if the branch moves meanwhile
    assert folder is not None
    return folder


def _loss_network_error(what: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"{what} is the high-pass filtering loss network (task {LOSS_NETWORK_TASK!r}), a training asset, not an "
        "image model: use it through hfpie.training.highpass.load_highpass_net or `hpf_checkpoint` in a training "
        "config. `hfpie models` lists the image models."
    )


def _read_folder_config(folder: Path) -> dict[str, Any] | None:
    """The ``config.json`` that ``hfpie hub-export`` writes beside ``model.safetensors`` (None if absent)."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        return None
    try:
        info = json.loads(config_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise WeightsIntegrityError(f"{config_file} is not valid JSON ({error}); re-export or re-download it.") from None
    if not isinstance(info, dict):
        raise WeightsIntegrityError(f"{config_file} holds no JSON object; re-export or re-download it.")
    return info


def _resolve_local(path: Path) -> tuple[Path, dict[str, Any] | None]:
    if not path.is_dir():
        return path, None
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise ModelNotFoundError(f"Folder {path} holds no model.safetensors; point to the weights file itself.")
    info = _read_folder_config(path)
    if info is None:
        return weights, None
    if info.get("task") == LOSS_NETWORK_TASK:
        raise _loss_network_error(f"The model in {path}")
    expected = info.get("sha256")
    if expected is not None and sha256_of(weights) != expected:
        raise WeightsIntegrityError(
            f"{weights} does not match the sha256 in its config.json (expected {expected}): the file is corrupted or "
            "was replaced. Download it again (`hfpie download owner/repo --force` for a Hub model) or re-export it."
        )
    return weights, info.get("config")  # None: another library's config.json; the weights' metadata may hold it


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
    state, metadata = read_checkpoint(path)
    if checkpoint_format(metadata) == HIGHPASS_FORMAT:
        raise _loss_network_error(f"{path}")
    if config is None:
        config = folder_config
    if config is None and "config" in metadata:
        config = json.loads(metadata["config"])
    if config is None:
        raise WeightsIntegrityError(
            f"{path} carries no network config, neither in its metadata nor in a config.json written by "
            "`hfpie hub-export` beside it: it is not an hfpie model, or pass config=HFPIEConfig(...) explicitly."
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
    revision: str | None = None,
) -> HFPIENet:
    """A ready-to-run network (eval mode, on ``device``), cached per (model, device, dtype).

    Args:
        name_or_task: a model name of :func:`list_models` (``"denoise"``), a task (``"denoise"``,
            ``"deblur"``, ``"sr"``: its default model), a path to a ``.safetensors`` file or exported
            folder, or a Hugging Face Hub repository written by ``hfpie hub-export``: ``"owner/repo"``
            or ``"owner/repo@revision"`` (see :func:`model_source`).
        scale: with task ``"sr"``, which scale's default model.
        device: ``"cpu"``, ``"cuda"``, ``"mps"``... (default: the best available).
        dtype: parameter dtype (float32; inference in half precision uses autocast instead).
        revision: a branch, tag or commit of a Hub repository (default: ``main``).

    The network is optimised for inference (:func:`hfpie.models.optimize_for_inference`: edge
    filters folded, channels-last). Thread-safe: concurrent calls build each model once. Do not
    modify the returned module.

    Example:
        >>> network = load_model("denoise")                          # doctest: +SKIP
        >>> network = load_model("someone/hfpie-denoise@v1.0")       # doctest: +SKIP
    """
    device = torch.device(device) if device is not None else default_device()
    source = model_source(name_or_task, revision)
    if source.kind == "path":
        cache_name = str(Path(source.name).resolve())
    elif source.kind == "hub":
        cache_name = f"hub:{source}"
    else:
        cache_name = f"{source.name}@{scale}"
    key = (cache_name, str(device), str(dtype))
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        if source.kind == "path":
            network = load_network(source.name)
        elif source.kind == "hub":
            network = load_network(download_repo(source.name, source.revision))
        else:
            entry = find_entry(source.name, scale)
            if entry.task == LOSS_NETWORK_TASK:
                raise _loss_network_error(f"Model {entry.name!r}")
            network = load_network(download_weights(entry), entry.config or None)
        network = optimize_for_inference(
            network.to(device=device, dtype=dtype), channels_last=device.type in {"cpu", "cuda"}
        )
        _CACHE[key] = network
        return network
