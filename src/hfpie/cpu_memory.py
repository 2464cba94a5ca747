"""Faster CPU inference on Linux: keep freed feature maps in the heap while a call runs.

glibc serves every allocation above its mmap threshold (at most 32 MB by default) with a fresh
``mmap``, and returns it to the system on ``free``. A 32-channel float32 feature map of a
0.25-megapixel image is already 32 MB, so for larger images every layer of the network page-faults a
new buffer in, and the cost per pixel grows with the image (measured in docs/speed.md). While
:func:`heap_reuse` is active, allocations below 1 GB come from the heap and freed ones are reused;
on exit the settings go back to glibc's defaults and ``malloc_trim`` hands the memory back, unless
at most :data:`HEAP_KEEP_BYTES` of it is free: then it stays for the next call, so a series of small
images does not page-fault its buffers in again on every call (:func:`release_heap` hands it back at
once). Other C libraries (macOS, musl) are left alone. Set ``HFPIE_HEAP_REUSE=0`` to switch it off.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["HEAP_KEEP_BYTES", "HEAP_REUSE_MEMORY_FACTOR", "heap_reuse", "heap_reuse_enabled", "release_heap"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_DEFAULT_THRESHOLD = 128 * 1024  # glibc's initial value of both settings
HEAP_REUSE_MEMORY_FACTOR = 1.5
"""Peak memory with heap reuse over peak memory without it: 12155 / 7876 MB for a 16 MP denoise call
(docs/speed.md); the CPU tile budget is divided by it so that tiles still fit the same memory."""
HEAP_KEEP_BYTES = 512 * 1024**2
"""Free heap memory a call may leave in the process for the next one (a 0.15 MP denoise call leaves
about 235 MB); above it everything free is trimmed. On a series of 0.15 MP denoise calls (one
thread) keeping it measured 5.27 / 5.38 / 5.49 s/MP against 5.55 / 5.65 / 5.67 when trimming after
every call (three alternating runs; docs/speed.md)."""


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


_lock = threading.Lock()
_active = 0
_libc: ctypes.CDLL | None | bool = False  # False: not looked up yet


def _glibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is False:
        _libc = None
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(None)
                libc.gnu_get_libc_version  # only glibc has it  # noqa: B018
                libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
                libc.malloc_trim.argtypes = [ctypes.c_size_t]
                if hasattr(libc, "mallinfo2"):  # glibc >= 2.33
                    libc.mallinfo2.restype = _MallInfo2
                _libc = libc
            except (OSError, AttributeError):
                _libc = None
    return _libc  # type: ignore[return-value]


def heap_reuse_enabled() -> bool:
    """Whether :func:`heap_reuse` takes effect here (glibc, and not switched off by the environment)."""
    return os.environ.get("HFPIE_HEAP_REUSE", "1") != "0" and _glibc() is not None


@contextmanager
def heap_reuse() -> Iterator[bool]:
    """Keep large freed buffers for reuse inside the ``with`` block; yields whether it is active."""
    global _active
    libc = _glibc() if heap_reuse_enabled() else None
    if libc is None:
        yield False
        return
    with _lock:
        if _active == 0:
            libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)
            libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1)
        _active += 1
    try:
        yield True
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                libc.mallopt(_M_MMAP_THRESHOLD, _DEFAULT_THRESHOLD)
                libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_THRESHOLD)
                _trim_unless_small(libc)


def _trim_unless_small(libc: ctypes.CDLL) -> None:
    """``malloc_trim(0)`` unless the free heap is at most :data:`HEAP_KEEP_BYTES` (kept for reuse)."""
    free = libc.mallinfo2().fordblks if hasattr(libc, "mallinfo2") else None
    if free is None or free > HEAP_KEEP_BYTES:
        libc.malloc_trim(0)


def release_heap() -> None:
    """Hand every free byte of the heap back to the system now (glibc only; otherwise nothing)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
