"""Learning-rate schedules: the paper's step decay, and a cosine over a planned campaign.

A campaign is a model's training across several sessions. Its cosine is planned once
(``schedule_steps``, the campaign's length) and each session starts where the last one stopped
(``schedule_start``), so the rate falls smoothly over the whole campaign and a decayed rate is never
carried into a new plan. Every run (so every session) begins with a linear warm-up of
``warmup_steps`` towards the curve, because Adam's moments start afresh in each session (they are
not kept between sessions).

    rate = rate_at(run_step, config)                # the rate of a run's step
    scheduler = make_scheduler(optimizer, config)   # torch LambdaLR / StepLR for the trainer

``"cosine-time"`` is the same cosine over the run's wall-clock ``time_limit_s`` instead of a number of
steps: for a device loan of known length whose step rate is not known beforehand (scripts/gpu_plan.py),
so that the run ends annealed whatever its speed. The trainer's :class:`WallClock` tells it the time.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import torch

from .config import TrainConfig

__all__ = ["WallClock", "cosine_factor", "make_scheduler", "rate_at"]


class WallClock:
    """Seconds since :meth:`start` (0 before it): the trainer starts it when its first step begins."""

    def __init__(self) -> None:
        self.started: float | None = None

    def start(self) -> None:
        self.started = time.perf_counter()

    def __call__(self) -> float:
        return 0.0 if self.started is None else time.perf_counter() - self.started


def _cosine(progress: float, config: TrainConfig) -> float:
    floor = config.min_learning_rate / config.learning_rate
    progress = min(1.0, max(0.0, progress))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def cosine_factor(position: int, config: TrainConfig) -> float:
    """The cosine's factor of ``config.learning_rate`` at campaign step ``position``: 1 at 0, then down
    to ``min_learning_rate / learning_rate`` at ``schedule_steps`` and flat after it."""
    return _cosine(position / config.schedule_steps, config)


def _warm(step: int, config: TrainConfig) -> float:
    return min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0


def _factor(step: int, config: TrainConfig) -> float:
    return _warm(step, config) * cosine_factor(config.schedule_start + step, config)


def rate_at(step: int, config: TrainConfig) -> float:
    """The learning rate of the run's step ``step`` (0-based) under ``config``'s schedule."""
    if config.lr_schedule == "cosine":
        return config.learning_rate * _factor(step, config)
    if config.lr_schedule == "cosine-time":
        raise ValueError("a cosine-time rate depends on the run's clock, not on the step; see make_scheduler")
    return config.learning_rate * config.lr_decay ** (step // config.lr_decay_every)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig,
                   clock: Callable[[], float] | None = None) -> torch.optim.lr_scheduler.LRScheduler:
    """The scheduler the trainer steps once per step; its ``last_epoch`` is the run's step. ``clock``
    (seconds of training so far) drives ``"cosine-time"``."""
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _factor(step, config))
    if config.lr_schedule == "cosine-time":
        if clock is None:
            raise ValueError("lr_schedule = 'cosine-time' needs the run's clock (the trainer passes a WallClock)")
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: _warm(step, config) * _cosine(clock() / config.time_limit_s, config))
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_decay_every, gamma=config.lr_decay)
