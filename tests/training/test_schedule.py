"""Learning-rate schedules: the cosine of a planned campaign, continued across sessions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from hfpie.training.config import TrainConfig
import torch

from hfpie.training.schedule import cosine_factor, make_scheduler, rate_at
from hfpie.training.trainer import train

from test_trainer import _config, _images, _records


def _cosine(**overrides) -> TrainConfig:
    values = dict(lr_schedule="cosine", learning_rate=5e-4, min_learning_rate=1e-6, schedule_steps=1000,
                  warmup_steps=0)
    values.update(overrides)
    return TrainConfig(**values)


def test_cosine_runs_from_the_peak_to_the_floor_over_the_planned_steps() -> None:
    config = _cosine()
    assert rate_at(0, config) == pytest.approx(5e-4)
    assert rate_at(500, config) == pytest.approx(1e-6 + (5e-4 - 1e-6) / 2)
    assert rate_at(1000, config) == pytest.approx(1e-6)
    assert rate_at(5000, config) == pytest.approx(1e-6), "after the plan the rate stays at the floor"
    rates = [rate_at(step, config) for step in range(0, 1001, 50)]
    assert all(a > b for a, b in zip(rates, rates[1:])), "the cosine falls monotonically"


def test_each_run_warms_up_into_the_curve_where_the_campaign_stands() -> None:
    config = _cosine(warmup_steps=10, schedule_start=400)
    assert rate_at(0, config) == pytest.approx(0.1 * 5e-4 * cosine_factor(400, config))
    assert rate_at(9, config) == pytest.approx(5e-4 * cosine_factor(409, config))
    whole = _cosine()
    assert rate_at(100, config) == pytest.approx(rate_at(500, whole)), "a later session continues the same curve"


def test_the_step_schedule_is_the_papers() -> None:
    config = TrainConfig(learning_rate=1e-4, lr_decay=0.5, lr_decay_every=10)
    assert [rate_at(step, config) for step in (0, 9, 10, 25)] == pytest.approx([1e-4, 1e-4, 5e-5, 2.5e-5])


@pytest.mark.parametrize("bad, message", [(dict(schedule_steps=0), "schedule_steps"),
                                          (dict(min_learning_rate=1e-3), "min_learning_rate"),
                                          (dict(lr_schedule="linear"), "step, cosine or cosine-time"),
                                          (dict(lr_schedule="cosine-time"), "time_limit_s")])
def test_bad_schedules_are_refused_with_what_to_do(bad: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _cosine(**bad)


def test_two_sessions_of_a_campaign_log_the_rates_of_one_curve(tmp_path: Path) -> None:
    folder = _images(tmp_path / "data")
    plan = dict(lr_schedule="cosine", learning_rate=1e-3, min_learning_rate=1e-5, schedule_steps=12, steps=6)
    train(_config(folder, **plan), tmp_path / "s1", progress=False)
    first = [r["lr"] for r in _records(tmp_path / "s1") if "lr" in r]
    train(_config(folder, **plan, schedule_start=6, init_weights=str(tmp_path / "s1" / "final.safetensors")),
          tmp_path / "s2", progress=False)
    second = [r["lr"] for r in _records(tmp_path / "s2") if "lr" in r]
    whole = _config(folder, **plan)
    # the log records the rate of the next step: after step k it is the rate of step k (0-based)
    assert first + second == pytest.approx([rate_at(step, whole) for step in range(1, 13)])
    assert second[-1] == pytest.approx(1e-5)
    assert json.loads((tmp_path / "s2" / "config.json").read_text())["schedule_start"] == 6
    assert not math.isclose(first[0], second[0])


def test_the_time_cosine_follows_the_clock_from_the_peak_to_the_floor_at_the_time_limit() -> None:
    config = _cosine(lr_schedule="cosine-time", time_limit_s=100.0, warmup_steps=4)
    now = [0.0]
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config.learning_rate)
    scheduler = make_scheduler(optimizer, config, clock=lambda: now[0])
    rates = []
    for seconds in (0.0, 0.0, 0.0, 50.0, 100.0, 250.0):
        now[0] = seconds
        optimizer.step()
        scheduler.step()
        rates.append(scheduler.get_last_lr()[0])
    # steps 1-3 warm up at the peak time; halfway through the time the cosine is halfway; then the floor
    assert rates == pytest.approx([2.5e-4, 3.75e-4, 5e-4, 1e-6 + (5e-4 - 1e-6) / 2, 1e-6, 1e-6])
    with pytest.raises(ValueError, match="clock"):
        make_scheduler(optimizer, config)


def test_a_time_cosine_run_ends_at_the_floor_rate(tmp_path: Path) -> None:
    folder = _images(tmp_path / "data")
    train(_config(folder, lr_schedule="cosine-time", learning_rate=1e-3, min_learning_rate=1e-5, time_limit_s=3.0,
                  steps=100_000), tmp_path / "run", progress=False)
    rates = [r["lr"] for r in _records(tmp_path / "run") if "lr" in r]
    assert rates[0] > 5e-4 and rates[-1] < 1e-4, rates
