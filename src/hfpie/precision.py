"""Which floating-point precision a forward (or training) pass runs in, per device.

``"auto"`` picks bfloat16 autocast on a CPU whose instruction set runs it natively (AMX or
AVX-512 BF16; detected at run time), float16 autocast on CUDA, and float32 everywhere else. The
weights always stay float32 (autocast casts per operation), so training keeps fp32 master weights.
"""

from __future__ import annotations

import functools
from contextlib import nullcontext
from typing import Literal

import torch

__all__ = ["PRECISIONS", "Precision", "autocast", "cpu_bf16_flags", "cpu_has_fast_bf16", "resolve_precision"]

Precision = Literal["auto", "fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")

_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.cache
def cpu_bf16_flags() -> tuple[str, ...]:
    """The CPU flags (of ``amx_bf16``, ``avx512_bf16``) that this machine reports; () if none or unknown."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return tuple(flag for flag in _BF16_FLAGS if flag in flags)
    except OSError:
        pass
    return ()


def cpu_has_fast_bf16() -> bool:
    """True when the CPU runs bfloat16 natively (AMX or AVX-512 BF16) and torch's oneDNN can use it."""
    if not cpu_bf16_flags():
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # older or non-oneDNN builds
        return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``"fp32"``, ``"bf16"`` or ``"fp16"`` for ``precision`` on ``device``; raises ValueError when unusable."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device_type = torch.device(device).type
    if precision == "auto":
        if device_type == "cuda":
            return "fp16"
        if device_type == "cpu" and cpu_has_fast_bf16():
            return "bf16"
        return "fp32"
    if precision == "fp16" and device_type == "cpu":
        raise ValueError("precision 'fp16' is for CUDA; on the CPU use 'bf16' or 'fp32'")
    return precision


def autocast(precision: str, device: torch.device | str):
    """A context manager running the enclosed ops in ``precision`` (a resolved one) on ``device``."""
    device_type = torch.device(device).type
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device_type, dtype=dtype)
