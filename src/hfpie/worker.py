"""Enhance image files one at a time for any engine: encoded bytes in, encoded bytes and a result row out.

:class:`FileWorker` loads its model once and turns each input file into a result row (see
:data:`COLUMNS`); a file that fails to read, decode, run, encode or write gives a row with its error
and never raises, so a batch engine loses no other file. It decodes and encodes with hfpie's own
:mod:`hfpie.io` (bit depth, alpha, ICC and EXIF kept) and writes local files atomically, so its outputs
are byte for byte those of the command line. :class:`hfpie.ray.Enhancer` wraps it for Ray Data;
Spark or Dask call it the same way (docs/scale.md).

Paths may be local or any URI that pyarrow's filesystems read (``s3://``, ``gs://``, ``hdfs://``,
``file://``). Imports no Ray, and pyarrow only for URIs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import HfpieError, ImageReadError, ImageWriteError, OutputExistsError

if TYPE_CHECKING:
    from .models import HFPIENet

__all__ = ["COLUMNS", "FileWorker", "exists", "is_uri", "read_bytes", "write_bytes"]

COLUMNS = ("source", "output", "status", "error", "seconds", "megapixels")
"""A result row: the input and output path (or URI), ``written``, ``skipped`` or ``failed``, the error
(one line) or None, seconds spent on the file and the input's megapixels (None when not decoded)."""


def is_uri(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` is a URI (``scheme://...``) rather than a local path."""
    return "://" in os.fspath(location)


def _filesystem(uri: str) -> tuple[Any, str]:
    """(pyarrow filesystem, path in it) of ``uri``; a ``file://`` URI gives the local filesystem."""
    from pyarrow import fs

    return fs.FileSystem.from_uri(uri)


def _local_path(location: str | os.PathLike[str]) -> Path | None:
    """The local path ``location`` names (a plain path or a ``file://`` URI), else None."""
    if not is_uri(location):
        return Path(location)
    text = os.fspath(location)
    return Path(_filesystem(text)[1]) if text.startswith("file://") else None


def read_bytes(location: str | os.PathLike[str]) -> bytes:
    """The bytes of a local file or URI; ImageReadError naming it when it cannot be read."""
    from .io import _read_bytes

    local = _local_path(location)
    if local is not None:
        return _read_bytes(local)
    try:
        filesystem, path = _filesystem(os.fspath(location))
        with filesystem.open_input_stream(path) as stream:
            return stream.readall()
    except FileNotFoundError:
        raise ImageReadError(f"{location}: no such file") from None
    except (OSError, ValueError) as error:  # pyarrow's IO errors are OSErrors, its invalid URIs ValueErrors
        raise ImageReadError(f"{location}: cannot read the file ({error})") from None


def exists(location: str | os.PathLike[str]) -> bool:
    """Whether a file (or folder) is at a local path or URI."""
    local = _local_path(location)
    if local is not None:
        return local.exists()
    from pyarrow import fs

    filesystem, path = _filesystem(os.fspath(location))
    return filesystem.get_file_info(path).type != fs.FileType.NotFound


def write_bytes(location: str | os.PathLike[str], data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to a local path or URI, creating its folders.

    Local files are written atomically by :func:`hfpie.io.atomic_write_bytes` (never replacing an
    existing file unless ``overwrite``). Object stores (S3, GCS, Azure) publish an object only when
    its upload completes, so a reader never sees half a file; there ``overwrite=False`` checks for
    the object just before the upload (another writer in between is not detected).
    """
    from .io import atomic_write_bytes

    local = _local_path(location)
    if local is not None:
        try:
            local.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ImageWriteError(f"{location}: cannot create its folder ({error.strerror or error})") from None
        atomic_write_bytes(local, data, overwrite=overwrite)
        return
    try:
        if not overwrite and exists(location):
            raise OutputExistsError(f"{location}: already exists (another run may have written it meanwhile); it was kept")
        filesystem, path = _filesystem(os.fspath(location))
        parent = path.rsplit("/", 1)[0]
        if parent and parent != path:
            filesystem.create_dir(parent, recursive=True)
        with filesystem.open_output_stream(path) as stream:
            stream.write(data)
    except (OSError, ValueError) as error:
        if isinstance(error, ImageWriteError):
            raise
        raise ImageWriteError(f"{location}: cannot write the file ({error})") from None


def exists_message(source: str, target: str) -> str:
    """The command line's refusal of an existing output (cli._exists_error), for a path or URI."""
    same = not is_uri(source) and not is_uri(target) and Path(source).exists() and Path(target).resolve() == Path(source).resolve()
    return (f"{'is the input itself' if same else 'already exists'}; pass --overwrite to replace it"
            + ("" if same else " or --skip-existing to keep it"))


def reason(error: BaseException, *locations: str) -> str:
    """One line for ``error`` without a leading ``location: `` (the row names the files); the exception's
    type name in front of errors hfpie did not raise on purpose (a bug, not a bad file)."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    for location in locations:
        if line.startswith(f"{location}: "):
            line = line[len(f"{location}: "):]
    if not isinstance(error, (HfpieError, OSError, ValueError)) and text:
        line = f"{type(error).__name__}: {line}"
    return line


class FileWorker:
    """A model loaded once, and a call that enhances one file: ``worker(source, target) -> row``.

    Args:
        task: ``"denoise"``, ``"deblur"`` or ``"sr"``.
        scale: SR factor (default: the model's own, 4 for the default model); ignored for restoration.
        model: a bundled model name, a ``.safetensors`` path or exported folder, a Hub id
            ``owner/repo[@revision]``, or an :class:`~hfpie.models.HFPIENet` (default: the task's model).
        revision: a Hub ``model``'s branch, tag or commit.
        strength, ensemble: as in :func:`hfpie.enhance`.
        precision, tile: as in :func:`hfpie.enhance` (``"auto"``: bf16 on CPUs that have it, fp16 on CUDA;
            16-bit files stay fp32 on the CPU). The same settings give the command line's bytes.
        quality: JPEG / WebP outputs' quality, 1-100 (default 95; a lossless WebP input stays lossless).
        overwrite: replace existing outputs (else such a file fails, and the output is kept).
        skip_existing: an output that exists, or that another run writes while this one works on the file,
            is kept and the file's row says ``skipped`` (resume a stopped batch; two batches at once).
        device: ``"cpu"``, ``"cuda"``... (default: the best available).
        threads: torch's CPU threads in this process (default: torch's own).
    """

    def __init__(self, task: str = "denoise", *, scale: int | None = None, model: str | HFPIENet | None = None,
                 revision: str | None = None, strength: float = 1.0, precision: str = "auto", tile: int | None = None,
                 ensemble: int = 1, quality: int | None = None, overwrite: bool = False, skip_existing: bool = False,
                 device: str | None = None, threads: int | None = None) -> None:
        import torch

        from .api import check_strength, resolve_device, resolve_network
        from .api import sr_scale
        from .ensemble import check_ensemble
        from .io import check_quality
        from .models import HFPIENet
        from .precision import resolve_precision

        if threads is not None:
            torch.set_num_threads(threads)
        self.device = resolve_device(device)
        if isinstance(model, HFPIENet):
            network = model.to(self.device)
            scale = network.config.scale
        else:
            if revision is not None and model is not None:
                model = f"{model}@{revision}"
            scale = sr_scale(scale, model, str(self.device)) if task == "sr" else 1
            network = model
        self.network = resolve_network(task, scale, network, self.device)
        self.strength = check_strength(task, strength)
        self.ensemble = check_ensemble(ensemble)
        self.quality = check_quality(quality)
        resolve_precision(precision, self.device)  # fp16 on the CPU: refused here, not once per file
        if overwrite and skip_existing:
            raise ValueError("overwrite and skip_existing contradict each other; pass one of them")
        self.precision, self.tile, self.overwrite, self.skip_existing = precision, tile, overwrite, skip_existing

    def enhance(self, data: bytes, name: str, output_name: str | None = None) -> tuple[bytes, float]:
        """(encoded output, input megapixels) of the encoded file ``data``; ``name`` (its path or URI)
        starts error messages, ``output_name``'s suffix gives the output format (default: the input's).
        Raises HfpieError (and others) for a file that cannot be done."""
        from .api import enhance_image_file
        from .io import check_can_encode, decode_image, encode_image, format_for

        image = decode_image(data, name)
        self._megapixels = image.pixels.shape[0] * image.pixels.shape[1] / 1e6
        image_format = format_for(output_name, image.format) if output_name else image.format
        check_can_encode(image, image_format)
        result = enhance_image_file(image, self.network, device=self.device, tile=self.tile, precision=self.precision,
                                    halo=None, strength=self.strength, ensemble=self.ensemble)
        return encode_image(result, image_format, quality=self.quality), self._megapixels

    def enhance_row(self, data: bytes, name: str, output_name: str | None = None) -> dict[str, Any]:
        """A result row whose ``output`` is the encoded result (bytes; None when the file failed), written nowhere."""
        start, self._megapixels = time.perf_counter(), None
        try:
            output, _ = self.enhance(data, name, output_name)
        except Exception as error:  # noqa: BLE001 - one file's failure is its row, never the batch's
            return self._row(name, None, "failed", reason(error, name), start)
        return self._row(name, output, "written", None, start)

    def __call__(self, source: str, target: str, data: bytes | None = None) -> dict[str, Any]:
        """Read ``source`` (unless its bytes are given), enhance it and write ``target``; the result row."""
        start, self._megapixels = time.perf_counter(), None
        try:
            if not self.overwrite and exists(target):
                raise OutputExistsError(exists_message(source, target))
            output, _ = self.enhance(read_bytes(source) if data is None else data, source, target)
            write_bytes(target, output, overwrite=self.overwrite)
        except OutputExistsError as error:
            if self.skip_existing:  # there already, or written by another run meanwhile: kept, as asked
                return self._row(source, target, "skipped", None, start)
            return self._row(source, target, "failed", reason(error, source, target), start)
        except Exception as error:  # noqa: BLE001 - one file's failure is its row, never the batch's
            return self._row(source, target, "failed", reason(error, source, target), start)
        return self._row(source, target, "written", None, start)

    def _row(self, source: str, output: Any, status: str, error: str | None, start: float) -> dict[str, Any]:
        return {"source": source, "output": output, "status": status, "error": error,
                "seconds": round(time.perf_counter() - start, 4), "megapixels": self._megapixels}
