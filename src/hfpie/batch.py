"""Batches of image files for the command line: which files, where each result goes, and progress.

A batch never loses a result: outputs keep the inputs' folder structure, two inputs that would write
the same output are refused before any work, and an output counts as written only once it is on disk
(writes are atomic, :mod:`hfpie.io`). Checks that need no network run before it: the output's name
and folder here, the image and its output format in the command.

Imports no torch, so the command line stays quick to start.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TextIO

import typer
from PIL import Image

from .errors import HfpieError, ImageWriteError, UnsupportedImageError
from .io import READ_SUFFIXES, WRITABLE_SUFFIXES, is_stdio

__all__ = ["READ_SUFFIXES", "BatchProgress", "Interrupted", "Job", "check_output_folder", "collect_inputs",
           "describe_failure", "plan_jobs", "stop_cleanly_on_signals"]

"""Files that folders contribute (files named or matched by a pattern are read whatever their suffix)."""

# Suffixes that name an image file (formats hfpie cannot write included), so `-o NAME` is a file, not a folder.
_OTHER_IMAGE_SUFFIXES = frozenset({".avif", ".heic", ".heif", ".jxl", ".jp2", ".j2k", ".jpx", ".gif", ".ico"})


@dataclass(frozen=True)
class Job:
    """One input file and the output it is written to."""

    source: Path
    target: Path


def _glob_root(pattern: str) -> Path:
    """The folder a glob pattern starts from: its leading parts without wildcards."""
    parts = Path(pattern).parts[:-1]
    fixed = []
    for part in parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _strictly_inside(path: Path, folder: Path) -> bool:
    return path != folder and path.is_relative_to(folder)


def _walk(root: Path, items: list[Path], exclude: Path | None, *, images_only: bool) -> list[tuple[Path, Path]]:
    """(file, path relative to ``root``) of the files among ``items`` (with an image suffix only, if asked),
    leaving out those in ``exclude`` when that folder lies inside ``root`` (earlier outputs in the input tree)."""
    skip = exclude if exclude is not None and _strictly_inside(exclude, root.resolve()) else None
    return [
        (item, item.relative_to(root))
        for item in items
        if item.is_file() and (not images_only or item.suffix.lower() in READ_SUFFIXES)
        and not (skip is not None and item.resolve().is_relative_to(skip))
    ]


def collect_inputs(patterns: list[str], *, recursive: bool, exclude: Path | None = None) -> list[tuple[Path, Path]]:
    """(file, path relative to its input root) for every image named by files, folders or glob patterns.

    Folders contribute their image files (sub-folders with ``recursive``), glob patterns every file
    they match (``**`` descends; a pattern that matches nothing is an error), both relative to the folder they start from; files named explicitly or
    matched by a pattern are kept whatever their suffix (reading them reports problems). Files inside ``exclude`` (the output folder)
    are left out of folders and patterns that contain it. A file named twice is read once: its real path
    decides, and of its names the shortest is kept (a ``**`` through a symlink loop meets a file again
    under ``loop/loop/...``). ``-`` is standard input.
    """
    found: dict[Path, tuple[Path, Path]] = {}
    resolved_exclude = exclude.resolve() if exclude is not None else None
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            walker = path.rglob("*") if recursive else path.glob("*")
            items = _walk(path, sorted(walker), resolved_exclude, images_only=True)
        elif not path.exists() and glob.has_magic(pattern):
            matches = [Path(match) for match in sorted(glob.glob(pattern, recursive=True))]
            if not matches:  # a mistyped pattern among others would otherwise drop its images without a word
                raise HfpieError(f"{pattern}: no file matches this pattern; check its spelling, or leave it out")
            items = _walk(_glob_root(pattern), matches, resolved_exclude, images_only=False)
        else:
            items = [(path, Path(path.name))]  # missing files are reported when read
        for source, relative in items:
            real = source.resolve()
            if real not in found or len(relative.parts) < len(found[real][1].parts):
                found[real] = (source, relative)
    return list(found.values())


def _names_a_file(output: Path) -> bool:
    """Whether ``-o`` names one image file (its suffix is an image format's) rather than a folder."""
    if output.is_dir():
        return False
    suffix = output.suffix.lower()
    return suffix in WRITABLE_SUFFIXES or suffix in _OTHER_IMAGE_SUFFIXES or suffix in Image.registered_extensions()


def _output_name(relative: Path) -> Path:
    """The output path for an input path: the same, or with ``.png`` for a suffix hfpie cannot write (GIF...)."""
    suffix = relative.suffix.lower()
    return relative if not suffix or suffix in WRITABLE_SUFFIXES else relative.with_suffix(".png")


def plan_jobs(patterns: list[str], output: Path, *, recursive: bool) -> list[Job]:
    """Every input with its output; raises HfpieError for a plan that would fail or lose results.

    ``output`` is a file when it has an image suffix (one input only), ``-`` for standard output (one
    input), else a folder where outputs keep their path relative to the input folder or pattern.
    """
    if is_stdio(output):
        inputs = collect_inputs(patterns, recursive=recursive)
        if len(inputs) > 1:
            raise HfpieError(f"-o - writes one image to standard output, but there are {len(inputs)} inputs; "
                             "give an output folder")
        return [Job(inputs[0][0], output)] if inputs else []
    if _names_a_file(output):
        if output.suffix.lower() not in WRITABLE_SUFFIXES:
            raise UnsupportedImageError(
                f"{output}: cannot write {output.suffix} files; name the output {', '.join(WRITABLE_SUFFIXES)}"
            )
        inputs = collect_inputs(patterns, recursive=recursive)
        if len(inputs) > 1:
            raise HfpieError(
                f"{output} names one file, but there are {len(inputs)} inputs; give an output folder "
                "(a name without an image suffix)"
            )
        return [Job(inputs[0][0], output)] if inputs else []
    if output.exists() and not output.is_dir():
        raise HfpieError(f"{output} is a file, but the outputs need a folder; give a folder name")
    inputs = collect_inputs(patterns, recursive=recursive, exclude=output)
    if any(is_stdio(source) for source, _ in inputs):
        raise HfpieError("standard input (-) has no name to write under a folder; give an output file "
                         "(e.g. -o out.png) or -o - for standard output")
    jobs = [Job(source, output / _output_name(relative)) for source, relative in inputs]
    _refuse_collisions(jobs)
    return jobs


def _refuse_collisions(jobs: list[Job]) -> None:
    seen: dict[Path, Job] = {}
    clashes = []
    for job in jobs:
        # A URI target (str, from hfpie.ray's plans) is compared as written; a path by the file it names.
        key = job.target if isinstance(job.target, str) else Path(os.path.normcase(job.target.resolve()))
        if key in seen:
            clashes.append((seen[key], job))
        seen.setdefault(key, job)
    if clashes:
        first, second = clashes[0]
        more = f" (and {len(clashes) - 1} more such pairs)" if len(clashes) > 1 else ""
        raise HfpieError(
            f"{first.source} and {second.source} would both be written to {first.target}{more}; "
            "nothing was done: run them separately or into different output folders"
        )


def check_output_folder(target: Path) -> None:
    """Raise ImageWriteError unless a file can be made in ``target``'s folder, or in the nearest folder above
    it that exists (where the missing ones will be created). A real (nameless, at once removed) file is
    made, so read-only mounts and folders like /proc, which pass a permission check, are found too."""
    existing = target.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ImageWriteError(f"{target}: cannot create its folder, {existing} is a file")
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".hfpie-probe-"):
            pass
    except OSError as error:
        raise ImageWriteError(f"{target}: cannot create files in {existing} ({_why_not_writable(error)}); "
                              "give an output folder you can write to") from None


def _why_not_writable(error: OSError) -> str:
    if error.errno == errno.EROFS:
        return "read-only file system"
    if error.errno in {errno.EACCES, errno.EPERM}:
        return "permission denied"
    return (error.strerror or str(error)).lower()


def describe_failure(error: BaseException, job: Job) -> str:
    """One line naming the input, the intended output and the reason (without repeating either path)."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    for path in (job.source, job.target):
        if reason.startswith(f"{path}: "):
            reason = reason[len(f"{path}: "):]
    return f"{job.source} -> {job.target}: {reason}"


class BatchProgress:
    """Progress of a batch on stderr: one bar over the batch in a terminal (moving with each image's
    tiles), else one line per finished image with its count and the time left; nothing when ``quiet``.
    Messages (errors) always show."""

    def __init__(self, total: int, *, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.total = total
        self.quiet = quiet
        self.stream = stream if stream is not None else sys.stderr
        self.busy_seconds = 0.0
        self.processed = 0
        self.bar = None
        if not quiet and self.stream.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, file=self.stream, dynamic_ncols=True, desc=f"0/{total} images",
                            bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

    def echo(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message, file=self.stream)
        else:
            typer.echo(message, file=self.stream)

    def tiles(self, position: int) -> Callable[[int, int], None] | None:
        """A tile callback moving the bar through image ``position`` (1-based); None outside a terminal."""
        bar = self.bar
        if bar is None:
            return None

        def update(done: int, total: int) -> None:
            bar.n = position - 1 + done / total
            bar.refresh()

        return update

    def finished(self, position: int, job: Job, seconds: float) -> None:
        """Image ``position`` (1-based) was written in ``seconds``."""
        self.processed += 1
        self.busy_seconds += seconds
        if self.bar is not None:
            self.bar.n = position
            self.bar.set_description_str(f"{position}/{self.total} images")
        elif not self.quiet:
            left = self.busy_seconds / self.processed * (self.total - position)
            self.echo(f"[{position}/{self.total}] {job.source} -> {job.target} "
                      f"({seconds:.1f} s, ETA {timedelta(seconds=round(left))})")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Ctrl-C raises KeyboardInterrupt, so that a batch stops the same clean way."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def stop_cleanly_on_signals() -> Iterator[None]:
    """Within: SIGTERM and SIGHUP (``kill``, a closed terminal) raise :class:`Interrupted`, as SIGINT raises
    KeyboardInterrupt, so a write in progress removes its temporary file and the batch says what it wrote.
    Their earlier handlers come back after. Outside the main thread (where Python takes no handlers), nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            number = getattr(signal, name)
            previous[number] = signal.signal(number, interrupt)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
