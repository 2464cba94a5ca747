"""The tasks hfpie knows, and the task -> output scale rule, in one place.

``enhance()``, the CLI and the weight manifest speak of :data:`TASKS`; training and evaluation also
know ``"denoise-real"`` (a denoising model trained on camera noise, run as task ``"denoise"``).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["TASKS", "TRAINING_TASKS", "Task", "TrainingTask", "check_task", "output_scale"]

Task = Literal["denoise", "deblur", "sr"]
TrainingTask = Literal["denoise", "denoise-real", "deblur", "sr"]

TASKS: tuple[str, ...] = ("denoise", "deblur", "sr")
"""What :func:`hfpie.enhance` and ``hfpie denoise | deblur | sr`` run."""

TRAINING_TASKS: tuple[str, ...] = ("deblur", "denoise", "denoise-real", "sr")
"""What a training config, a degradation and a validation protocol can be for."""


def check_task(task: str, known: tuple[str, ...] = TASKS) -> str:
    """``task`` if it is one of ``known``, else a ValueError naming them."""
    if task not in known:
        raise ValueError(f"task must be one of {', '.join(known)}, got {task!r}")
    return task


def output_scale(task: str, scale: int | None) -> int:
    """Output size / input size of ``task``: ``scale`` for super-resolution, 1 for every other task."""
    if task != "sr":
        return 1
    if scale is None:
        raise ValueError("task 'sr' needs a scale (2, 3 or 4)")
    return scale
