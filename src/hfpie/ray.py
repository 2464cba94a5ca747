"""Batch enhancement on Ray Data: many machines, the command line's files, no lost results.

    >>> from hfpie.ray import enhance_files                                  # doctest: +SKIP
    >>> rows = enhance_files(["s3://bucket/in"], "s3://bucket/out", task="sr", recursive=True)  # doctest: +SKIP

or ``hfpie sr INPUTS -o OUT --ray [--ray-address ADDR] [--workers N] [--gpus-per-worker G]``.

:class:`Enhancer` is a stateful worker for ``Dataset.map_batches``: each actor loads the model once,
runs on its GPU when Ray gives it one (else the CPU, with as many torch threads as it has CPUs) and
turns rows of ``source``/``target`` paths, or rows of ``path``/``bytes`` from
``ray.data.read_binary_files(..., include_paths=True)``, into result rows through hfpie's own decoder
and encoder (Ray's ``read_images`` drops 16-bit, alpha, ICC and EXIF). The work itself is the
engine-agnostic :class:`hfpie.worker.FileWorker`. :func:`enhance_files` plans the outputs as the
command line does (:func:`hfpie.batch.plan_jobs`: layout, suffixes, collisions, existing outputs),
runs the actors and writes a manifest (JSON lines) with one row per input beside the outputs.

Needs ``pip install "hfpie[ray]"``; importing this module imports no Ray (that happens on first use).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .errors import HfpieError
from .worker import COLUMNS, FileWorker, exists, exists_message, is_uri, reason, write_bytes

if TYPE_CHECKING:
    import numpy as np

    from .batch import Job

__all__ = ["MANIFEST_NAME", "Enhancer", "Results", "enhance_files", "plan_files"]

MANIFEST_NAME = "hfpie-manifest.jsonl"
"""The results manifest's file name, in the output folder (or beside the output file)."""


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise HfpieError('Ray is not installed; pip install "hfpie[ray]" (or give no --ray to run here)') from None
    return ray


class Enhancer:
    """A callable class for ``Dataset.map_batches``: one model per actor, one result row per file.

    Rows in: ``source`` and ``target`` (paths or URIs: the actor reads, enhances and writes the file,
    so images never pass through the object store), or ``path`` and ``bytes`` (as
    ``read_binary_files(include_paths=True)`` gives: the encoded output comes back in the ``output``
    column, in the input's format or PNG for one hfpie cannot write). Rows out: :data:`hfpie.worker.COLUMNS`.
    No file's failure raises: it is its row's ``error``.

    Keyword options as in :class:`hfpie.worker.FileWorker` (task, scale, model, revision, strength,
    precision, tile, ensemble, quality, overwrite); the device and threads come from what Ray gave the actor::

        ds.map_batches(Enhancer, fn_constructor_kwargs={"task": "sr"}, batch_size=1, concurrency=4, num_gpus=1)
    """

    def __init__(self, task: str = "denoise", **options: Any) -> None:
        import ray

        context = ray.get_runtime_context()
        cpus = context.get_assigned_resources().get("CPU")
        device = "cuda" if ray.get_gpu_ids() else "cpu"  # Ray sets CUDA_VISIBLE_DEVICES to the actor's GPU
        threads = max(1, round(cpus)) if cpus else None
        self.worker = FileWorker(task, device=device, threads=threads, **options)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        if "target" in batch:
            rows = [self.worker(str(source), str(target)) for source, target in zip(batch["source"], batch["target"])]
        else:
            from .batch import _output_name

            rows = [self.worker.enhance_row(bytes(data), str(path), _output_name(PurePosixPath(str(path))).name)
                    for path, data in zip(batch["path"], batch["bytes"])]
        return {column: [row[column] for row in rows] for column in COLUMNS}


# --- planning: the command line's, for URIs too -------------------------------------------------

def _uri_files(uri: str, *, recursive: bool) -> list[tuple[str, PurePosixPath]]:
    """(file URI, path relative to ``uri``) of the image files in the folder ``uri``, or of the file ``uri``."""
    from pyarrow import fs

    from .io import READ_SUFFIXES
    from .worker import _filesystem

    try:
        filesystem, base = _filesystem(uri)
        info = filesystem.get_file_info(base)
        if info.type == fs.FileType.File:
            return [(uri, PurePosixPath(PurePosixPath(base).name))]
        if info.type == fs.FileType.NotFound:
            return [(uri, PurePosixPath(PurePosixPath(base).name))]  # reported as missing when read
        found = filesystem.get_file_info(fs.FileSelector(base, recursive=recursive))
    except (OSError, ValueError) as error:
        raise HfpieError(f"{uri}: cannot list it ({str(error).splitlines()[0]}); check the URI and its credentials") from None
    prefix = uri[: len(uri) - len(base.rstrip("/"))] if uri.rstrip("/").endswith(base.rstrip("/")) else ""
    files = []
    for item in sorted(found, key=lambda entry: entry.path):
        relative = PurePosixPath(item.path).relative_to(base.rstrip("/") or "/")
        if item.type == fs.FileType.File and relative.suffix.lower() in READ_SUFFIXES:
            files.append((prefix + item.path, relative))
    return files


def _join(output: str, relative: PurePosixPath) -> str:
    return f"{output.rstrip('/')}/{relative.as_posix()}"


def plan_files(inputs: Sequence[str], output: str | os.PathLike[str], *, recursive: bool = False) -> list[Job]:
    """Every input with its output, as the command line plans them (:func:`hfpie.batch.plan_jobs`), for
    local paths and URIs (``s3://``, ``gs://``...: folders or files, no glob patterns). Raises
    HfpieError for a plan that would fail or lose results (two inputs onto one output...)."""
    from .batch import (_OTHER_IMAGE_SUFFIXES, Job, _names_a_file, _output_name, _refuse_collisions, collect_inputs,
                        plan_jobs)
    from .io import WRITABLE_SUFFIXES, is_stdio

    output = os.fspath(output)
    if is_stdio(output):
        raise HfpieError("--ray writes files, not standard output; give an output folder")
    if not is_uri(output) and not any(is_uri(item) for item in inputs):
        return plan_jobs(list(inputs), Path(output), recursive=recursive)
    named: dict[str, tuple[str | Path, PurePosixPath]] = {}
    for item in inputs:
        if is_uri(item):
            if any(character in item.split("://", 1)[1] for character in "*?["):
                raise HfpieError(f"{item}: glob patterns are for local paths; give the folder's URI "
                                 "(--recursive descends)")
            items: list[tuple[str | Path, PurePosixPath]] = list(_uri_files(item, recursive=recursive))
        else:
            items = [(source, PurePosixPath(relative.as_posix()))
                     for source, relative in collect_inputs([item], recursive=recursive)]
        for source, relative in items:  # a file named twice is done once, under its shortest name (as collect_inputs)
            key = str(source) if is_uri(source) else str(Path(source).resolve())
            if key not in named or len(relative.parts) < len(named[key][1].parts):
                named[key] = (source, relative)
    found = list(named.values())
    suffix = PurePosixPath(output.split("://", 1)[-1]).suffix.lower()
    if _names_a_file(Path(output)) if not is_uri(output) else suffix in {*WRITABLE_SUFFIXES, *_OTHER_IMAGE_SUFFIXES}:
        if suffix not in WRITABLE_SUFFIXES:
            raise HfpieError(f"{output}: cannot write {suffix} files; name the output {', '.join(WRITABLE_SUFFIXES)}")
        if len(found) > 1:
            raise HfpieError(f"{output} names one file, but there are {len(found)} inputs; give an output folder "
                             "(a name without an image suffix)")
        return [Job(found[0][0], output if is_uri(output) else Path(output))] if found else []  # type: ignore[arg-type]
    jobs = [Job(source, _join(output, _output_name(relative)) if is_uri(output)  # type: ignore[arg-type]
                else Path(output) / _output_name(Path(relative)))
            for source, relative in found]
    _refuse_collisions(jobs)
    return jobs


def manifest_location(output: str | os.PathLike[str], jobs: Sequence[Job]) -> str:
    """Where the manifest goes: in the output folder, or beside the one output file."""
    text = os.fspath(output)
    names_file = len(jobs) == 1 and os.fspath(jobs[0].target) == text
    if names_file:
        return _join(text.rsplit("/", 1)[0], PurePosixPath(MANIFEST_NAME)) if is_uri(text) \
            else str(Path(text).parent / MANIFEST_NAME)
    return _join(text, PurePosixPath(MANIFEST_NAME)) if is_uri(text) else str(Path(text) / MANIFEST_NAME)


class Results(list):
    """The result rows of :func:`enhance_files` (dicts of :data:`hfpie.worker.COLUMNS`), in plan order;
    ``manifest`` is where they were written."""

    manifest: str = ""


# --- the run ---------------------------------------------------------------------------------------

def _row(source: Any, target: Any, status: str, error: str | None = None) -> dict[str, Any]:
    return {"source": str(source), "output": str(target), "status": status, "error": error,
            "seconds": 0.0, "megapixels": None}


def _plain(value: Any) -> Any:
    """A Python value for JSON (Ray may hand back numpy scalars)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


def _existing(targets: Iterable[str | Path]) -> set[str]:
    """The targets that exist, with one listing call per URI filesystem."""
    targets = [str(target) for target in targets]
    local = {target for target in targets if not is_uri(target) and Path(target).exists()}
    remote = [target for target in targets if is_uri(target)]
    if not remote:
        return local
    from pyarrow import fs

    from .worker import _filesystem

    found = set()
    filesystem, _ = _filesystem(remote[0])
    paths = [_filesystem(target)[1] for target in remote]
    try:
        for target, info in zip(remote, filesystem.get_file_info(paths)):
            if info.type != fs.FileType.NotFound:
                found.add(target)
    except (OSError, ValueError):  # several filesystems in one plan: ask one by one
        found = {target for target in remote if exists(target)}
    return local | found


def _unwritable_folders(jobs: Sequence[Job]) -> dict[str, str]:
    """For local targets whose folder cannot take files: the target and the reason (checked once per folder)."""
    from .batch import check_output_folder

    verdicts: dict[Path, str | None] = {}
    refused = {}
    for job in jobs:
        if is_uri(str(job.target)):
            continue
        target = Path(job.target)
        if target.parent not in verdicts:
            try:
                check_output_folder(target)
                verdicts[target.parent] = None
            except HfpieError as error:
                verdicts[target.parent] = reason(error, str(target))
        if verdicts[target.parent] is not None:
            refused[str(target)] = verdicts[target.parent]
    return refused


def _default_workers(ray: Any, cpus_per_worker: float, gpus_per_worker: float) -> int:
    resources = ray.cluster_resources()
    if gpus_per_worker:
        return max(1, int(resources.get("GPU", 0) // gpus_per_worker))
    return max(1, int(resources.get("CPU", 1) // cpus_per_worker))


def enhance_files(inputs: Sequence[str] | str, output: str | os.PathLike[str], task: str = "denoise", *,
                  scale: int | None = None, model: str | None = None, revision: str | None = None,
                  strength: float = 1.0, precision: str = "auto", tile: int | None = None, ensemble: int = 1,
                  quality: int | None = None, recursive: bool = False, overwrite: bool = False,
                  skip_existing: bool = False,
                  workers: int | None = None, gpus_per_worker: float = 0, cpus_per_worker: float = 1,
                  address: str | None = None, manifest: str | os.PathLike[str] | None = None,
                  progress: bool = True) -> Results:
    """Enhance files on a Ray cluster (or a local Ray started for the call) into ``output``, as ``hfpie TASK``
    does on one machine, and return one result row per input (:data:`hfpie.worker.COLUMNS`), in plan order.

    Args:
        inputs: files, folders or (local) glob patterns; local paths or URIs (``s3://bucket/photos``).
        output: a folder (outputs keep their path relative to their input folder) or one file; local or a URI.
        task, scale, model, revision, strength, precision, tile, ensemble: as in :func:`hfpie.enhance`;
            the same settings give the command line's bytes.
        quality: JPEG / WebP outputs' quality, 1-100 (default 95; a lossless WebP input stays lossless).
        recursive, overwrite, skip_existing: as on the command line. Existing outputs are found before any
            work: without ``overwrite`` they are refused (their row says so) unless ``skip_existing``.
        workers: actors (default: the cluster's GPUs / ``gpus_per_worker``, else its CPUs / ``cpus_per_worker``).
        gpus_per_worker: GPUs per actor (0: the actors run on CPUs); ``cpus_per_worker``: CPUs per actor,
            which are its torch threads.
        address: the Ray cluster (``ray://host:10001``, ``host:6379``, ``auto``; default: ``RAY_ADDRESS``,
            else a Ray started here for the call and stopped after it).
        manifest: where the JSON-lines manifest goes (default: :data:`MANIFEST_NAME` in the output folder).
        progress: Ray Data's progress bars.

    Raises:
        HfpieError or ValueError: a plan or setting that cannot work, before any work. A file that fails
        never raises: its row has status ``failed`` and its error, and no output is written for it.
    """
    from .api import check_strength
    from .api import load_checked_network
    from .ensemble import check_ensemble
    from .io import check_quality
    from .precision import PRECISIONS, resolve_precision

    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else [os.fspath(item) for item in inputs]
    check_strength(task, strength)
    check_ensemble(ensemble)
    check_quality(quality)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    resolve_precision(precision, "cuda" if gpus_per_worker else "cpu")
    if tile is not None and tile < 1:
        raise ValueError(f"tile must be a positive number of pixels (e.g. 512), got {tile}")
    if overwrite and skip_existing:
        raise ValueError("overwrite and skip_existing contradict each other; pass one of them")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    jobs = plan_files(inputs, output, recursive=recursive)
    if not jobs:
        raise HfpieError("no input images found (give files, folders or glob patterns)")
    model_spec = model if revision is None or model is None else f"{model}@{revision}"
    if task == "sr" and scale is None:
        from .api import sr_scale

        scale = sr_scale(None, model_spec, "cpu")
    load_checked_network(task, scale if task == "sr" else 1, model_spec, "cpu")  # a missing or damaged model: refused here

    results: dict[str, dict[str, Any]] = {}
    existing = _existing(job.target for job in jobs)
    refused = _unwritable_folders(jobs)
    queued = []
    for job in jobs:
        source, target = str(job.source), str(job.target)
        if target in existing and skip_existing:
            results[source] = _row(source, target, "skipped")
        elif target in existing and not overwrite:
            results[source] = _row(source, target, "failed", exists_message(source, target))
        elif target in refused:
            results[source] = _row(source, target, "failed", refused[target])
        else:
            queued.append({"source": source, "target": target})
    if queued:
        options = {"task": task, "scale": scale, "model": model_spec, "strength": strength, "precision": precision,
                   "tile": tile, "ensemble": ensemble, "quality": quality, "overwrite": overwrite,
                   "skip_existing": skip_existing}
        results.update(_run(queued, options, workers=workers, gpus_per_worker=gpus_per_worker,
                            cpus_per_worker=cpus_per_worker, address=address, progress=progress))
    rows = Results(results[str(job.source)] for job in jobs)
    lines = "".join(json.dumps(row) + "\n" for row in rows)
    rows.manifest = os.fspath(manifest) if manifest is not None else manifest_location(output, jobs)
    write_bytes(rows.manifest, lines.encode())
    return rows


def _run(queued: list[dict[str, str]], options: dict[str, Any], *, workers: int | None, gpus_per_worker: float,
         cpus_per_worker: float, address: str | None, progress: bool) -> dict[str, dict[str, Any]]:
    """The result rows of the queued files, by source: every one of them, whatever happens to the job."""
    ray = _import_ray()
    started = not ray.is_initialized()
    if started:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline clusters: no usage report
        local = address is None and not os.environ.get("RAY_ADDRESS")
        ray.init(address=address, **({"include_dashboard": False} if local else {}),
                 logging_level="ERROR", log_to_driver=True)
    if gpus_per_worker and not ray.cluster_resources().get("GPU"):
        if started:
            ray.shutdown()
        raise HfpieError("the Ray cluster has no GPUs (now); add GPU nodes, or leave out --gpus-per-worker "
                         "to run the actors on CPUs")
    from ray.data import DataContext

    context = DataContext.get_current()
    saved = context.enable_progress_bars, context.max_errored_blocks
    context.enable_progress_bars = progress
    context.max_errored_blocks = -1  # a block whose actor died is reported below, not fatal to the others
    results: dict[str, dict[str, Any]] = {}
    try:
        count = workers or _default_workers(ray, cpus_per_worker, gpus_per_worker)
        # One file in flight per actor: an actor that dies (a file that exhausts its memory) takes no other
        # file's task down with it; the actor works one file at a time anyway.
        pool = ray.data.ActorPoolStrategy(size=min(count, len(queued)), max_tasks_in_flight_per_actor=1)
        dataset = ray.data.from_items(queued, override_num_blocks=min(len(queued), 10_000)).map_batches(
            Enhancer, fn_constructor_kwargs=options, batch_size=1, compute=pool,
            num_cpus=cpus_per_worker, num_gpus=gpus_per_worker or None, max_task_retries=2)
        for row in dataset.iter_rows():
            results[str(row["source"])] = {column: _plain(row[column]) for column in COLUMNS}
        lost = "not processed: its worker died three times (out of memory?); run it again alone to see why"
    except Exception as error:  # noqa: BLE001 - the rows already back are kept; the others say why
        lost = f"not processed: the Ray job stopped ({reason(error)})"
    finally:
        context.enable_progress_bars, context.max_errored_blocks = saved
        if started:
            ray.shutdown()
    for item in queued:
        if item["source"] not in results:
            results[item["source"]] = _row(item["source"], item["target"], "failed", lost)
    return results


def run_from_cli(task: str, inputs: list[str], output: Path, *, quiet: bool, **options: Any) -> None:
    """``hfpie TASK ... --ray``: run :func:`enhance_files`, print failures and a summary, exit 1 when any failed."""
    import typer

    try:
        rows = enhance_files(inputs, output, task, progress=not quiet, **options)
    except (HfpieError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    failed = [row for row in rows if row["status"] == "failed"]
    for row in failed:
        typer.echo(f"error: {row['source']} -> {row['output']}: {row['error']}", err=True)
    if not quiet:
        written = sum(row["status"] == "written" for row in rows)
        skipped = sum(row["status"] == "skipped" for row in rows)
        typer.echo(f"{task}: wrote {written} of {len(rows)} image(s)"
                   + (f", {skipped} skipped (already there)" if skipped else "")
                   + (f", {len(failed)} failed" if failed else "") + f"; manifest: {rows.manifest}", err=True)
    if failed:
        raise typer.Exit(1)
