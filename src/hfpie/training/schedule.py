"""Learning-rate schedules: the paper's step decay, and a cosine over a planned campaign.

A campaign is a model's training across several sessions. Its cosine is planned once
(``schedule_steps``, the campaign's length) and each session starts where the last one stopped
(``schedule_start``), so the rate falls smoothly over the whole campaign and a decayed rate is never
carried into a new plan. Every run (so every session) begins with a linear warm-up of
``warmup_steps`` towards the curve, because Adam's moments start afresh in each session (they are
not kept between sessions).

    rate = rate_at(run_step, config)                # the rate of a run's step
    scheduler = make_scheduler(optimizer, config)   # torch LambdaLR / StepLR for the trainer
"""

from __future__ import annotations

import math

import torch

from .config import TrainConfig

__all__ = ["cosine_factor", "make_scheduler", "rate_at"]


def cosine_factor(position: int, config: TrainConfig) -> float:
    """The cosine's factor of ``config.learning_rate`` at campaign step ``position``: 1 at 0, then down
    to ``min_learning_rate / learning_rate`` at ``schedule_steps`` and flat after it."""
    floor = config.min_learning_rate / config.learning_rate
    progress = min(1.0, max(0, position) / config.schedule_steps)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _factor(step: int, config: TrainConfig) -> float:
    warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    return warm * cosine_factor(config.schedule_start + step, config)


def rate_at(step: int, config: TrainConfig) -> float:
    """The learning rate of the run's step ``step`` (0-based) under ``config``'s schedule."""
    if config.lr_schedule == "cosine":
        return config.learning_rate * _factor(step, config)
    return config.learning_rate * config.lr_decay ** (step // config.lr_decay_every)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """The scheduler the trainer steps once per step; its ``last_epoch`` is the run's step."""
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _factor(step, config))
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_decay_every, gamma=config.lr_decay)
