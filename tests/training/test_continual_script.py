"""scripts/continual_training.py: the preset a checkpoint is, and no resuming an earlier session's run."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import pytest

from hfpie.models import HFPIENet, config_from_preset
from hfpie.training.trainer import export_weights

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import continual_training  # noqa: E402  (a repository script, not part of the package)


def test_preset_of_names_presets_at_any_scale_and_custom_otherwise(tmp_path: Path) -> None:
    tiny = export_weights(HFPIENet(config_from_preset("tiny", scale=2)), tmp_path / "tiny.safetensors")
    deeper = dataclasses.replace(config_from_preset("tiny"), num_blocks=(1, 2, 4))
    custom = export_weights(HFPIENet(deeper), tmp_path / "custom.safetensors")
    assert continual_training.preset_of(tiny) == "tiny"
    assert continual_training.preset_of(custom) == "custom"


def test_run_refuses_a_run_folder_of_an_earlier_session(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(continual_training, "load_state", lambda name: {"steps": 500})
    (tmp_path / "denoise").mkdir()
    (tmp_path / "denoise" / "config.json").write_text(json.dumps({"seed": 120}))
    args = argparse.Namespace(models=["denoise"], runs=tmp_path, hours=0.0, slice_minutes=1.0, threads=1)
    with pytest.raises(SystemExit, match="earlier session"):
        continual_training.run(args)
    (tmp_path / "denoise" / "config.json").write_text(json.dumps({"seed": 500}))  # this session's run: resumed
    continual_training.run(args)  # hours=0: nothing to train, no error


def test_run_gives_up_on_a_model_whose_slices_keep_failing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(continual_training, "load_state", lambda name: {"steps": 500})
    monkeypatch.setattr(continual_training, "_schedule_done", lambda name, run_dir: False)
    calls = []

    def failing_slice(command, **kwargs):
        calls.append(command)
        return continual_training.subprocess.CompletedProcess(command, 1)

    monkeypatch.setattr(continual_training.subprocess, "run", failing_slice)
    args = argparse.Namespace(models=["denoise"], runs=tmp_path, hours=1.0, slice_minutes=20.0, threads=1)
    with pytest.raises(SystemExit, match="failed 2 times in a row"):
        continual_training.run(args)
    assert len(calls) == continual_training.FAILURES_IN_A_ROW, "a broken setup must not spin for the whole session"


def _plan_args(**overrides) -> argparse.Namespace:
    values = dict(models=["sr-x4"], blocks=[6, 4, 8], peak_lr=5e-4, min_lr=1e-6, warmup_steps=300,
                  schedule_steps=80000, why="arms", replan=False, features=None, network=[], set=[])
    values.update(overrides)
    return argparse.Namespace(**values)


def test_a_campaign_is_planned_once_and_sessions_continue_its_curve(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(continual_training, "STATE", tmp_path)
    (tmp_path / "sr-x4.json").write_text(json.dumps(
        {"model": "sr-x4", "weights": "src/hfpie/weights/sr-x4.safetensors", "steps": 18741, "cpu_seconds": 4000.0,
         "learning_rate": 6.3e-6, "sessions": []}))
    with pytest.raises(SystemExit, match="no campaign planned"):
        continual_training._session_config("sr-x4", continual_training.load_state("sr-x4"), 1.0, 1)
    continual_training.plan(_plan_args())
    state = continual_training.load_state("sr-x4")
    assert "learning_rate" not in state, "a decayed rate is never carried into a new schedule"
    assert state["campaign"]["position"] == 0 and state["campaign"]["start_total_steps"] == 18741

    state["campaign"]["position"] = 25000  # after a session's finish
    config = continual_training._session_config("sr-x4", state, 1.0, 1)
    assert (config.lr_schedule, config.learning_rate, config.schedule_steps) == ("cosine", 5e-4, 80000)
    assert config.schedule_start == 25000 and config.network_config().num_blocks == (6, 4, 8)
    assert config.init_grow and config.seed == 18741
    assert config.steps == 55000, "the run stops at the end of the campaign's schedule"
    (tmp_path / "sr-x4.json").write_text(json.dumps(state))

    with pytest.raises(SystemExit, match="--replan"):
        continual_training.plan(_plan_args(blocks=[8, 4, 8]))
    continual_training.plan(_plan_args(blocks=[8, 4, 8], peak_lr=2e-4, replan=True, why="grown again",
                                       network=["sr_tail=direct", "sr_tail_kernel=5"]))
    state = continual_training.load_state("sr-x4")
    assert state["campaign"]["number"] == 2 and state["campaign"]["position"] == 0
    assert state["campaigns"][0]["position"] == 25000 and state["campaigns"][0]["end"].startswith("replanned")
    network = continual_training._session_config("sr-x4", state, 1.0, 1).network_config()
    assert (network.num_blocks, network.sr_tail, network.sr_tail_kernel) == ((8, 4, 8), "direct", 5)
    assert continual_training._shape(state["campaign"]) == "(8, 4, 8) sr_tail=direct sr_tail_kernel=5"


def test_a_campaign_ends_with_its_schedule(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(continual_training, "STATE", tmp_path)
    (tmp_path / "sr-x4.json").write_text(json.dumps(
        {"model": "sr-x4", "weights": "src/hfpie/weights/sr-x4.safetensors", "steps": 18741, "cpu_seconds": 4000.0,
         "sessions": []}))
    continual_training.plan(_plan_args(schedule_steps=1000))
    run_dir = tmp_path / "runs" / "sr-x4"
    run_dir.mkdir(parents=True)
    (run_dir / "log.jsonl").write_text(json.dumps({"step": 999, "lr": 1e-6, "step_time": 0.1}) + "\n")
    assert not continual_training._schedule_done("sr-x4", run_dir)
    (run_dir / "log.jsonl").write_text(json.dumps({"step": 1000, "lr": 1e-6, "step_time": 0.1}) + "\n")
    assert continual_training._schedule_done("sr-x4", run_dir)

    state = continual_training.load_state("sr-x4")
    state["campaign"]["position"] = 1000  # finish after the last session of the campaign
    (tmp_path / "sr-x4.json").write_text(json.dumps(state))
    with pytest.raises(SystemExit, match="whole schedule"):
        continual_training._session_config("sr-x4", state, 1.0, 1)
    continual_training.plan(_plan_args(blocks=[14, 4, 8], features=48, why="next"))  # no --replan: it ended
    state = continual_training.load_state("sr-x4")
    assert state["campaign"]["number"] == 2 and state["campaigns"][0]["end"] == "schedule complete"
    config = continual_training._session_config("sr-x4", state, 1.0, 1)
    assert config.network_config().num_blocks == (14, 4, 8) and config.network_config().num_features == 48
    assert continual_training._shape(state["campaign"]) == "(14, 4, 8) x 48"


def test_a_candidate_is_promoted_only_when_no_set_of_the_protocol_falls() -> None:
    before = {"Set5 x4 Y": 31.673, "Set14 x4 Y": 28.219, "mean": 29.946}
    mixed = {"Set5 x4 Y": 31.686, "Set14 x4 Y": 28.210, "mean": 29.948}  # 2026-12-04: higher mean, Set14 lower
    assert not continual_training.promotes("sr-x4", before, mixed)
    assert continual_training.promotes("sr-x4", before, {"Set5 x4 Y": 31.686, "Set14 x4 Y": 28.219, "mean": 29.952})
    assert not continual_training.promotes("sr-x4", before, dict(before))
    clean = continual_training.GUARDS["denoise-real"][0][0]
    label = continual_training.PROTOCOL["denoise-real"][0][0]
    real = {label: 37.0, clean: 46.0, "mean": 37.0}
    assert continual_training.promotes("denoise-real", real, {label: 37.1, clean: 45.8, "mean": 37.1})
    assert not continual_training.promotes("denoise-real", real, {label: 37.1, clean: 45.6, "mean": 37.1})


def test_a_campaign_carries_its_training_recipe_into_every_session(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(continual_training, "STATE", tmp_path)
    (tmp_path / "denoise.json").write_text(json.dumps(
        {"model": "denoise", "weights": "src/hfpie/weights/denoise.safetensors", "steps": 900, "sessions": []}))
    with pytest.raises(SystemExit, match="not open to `plan --set`"):  # the plan's own options set the schedule
        continual_training.plan(_plan_args(models=["denoise"], set=["learning_rate=1e-3"]))
    with pytest.raises(SystemExit, match="not open"):
        continual_training.plan(_plan_args(models=["denoise"], set=["patch_sise=96"]))
    with pytest.raises(ValueError, match="multiple of 4"):  # a bad value fails at plan time, not in a slice
        continual_training.plan(_plan_args(models=["denoise"], set=["patch_size=90"]))
    assert "campaign" not in continual_training.load_state("denoise")

    continual_training.plan(_plan_args(models=["denoise"], blocks=[4, 4, 8], set=["patch_size=96", "l1_weight=0",
                                                                                  "mse_weight=1"]))
    state = continual_training.load_state("denoise")
    config = continual_training._session_config("denoise", state, 1.0, 1)
    assert (config.patch_size, config.l1_weight, config.mse_weight) == (96, 0, 1)
    assert config.learning_rate == 5e-4 and config.network_config().num_blocks == (4, 4, 8)
    assert continual_training._shape(state["campaign"]) == "(4, 4, 8) patch_size=96 l1_weight=0 mse_weight=1"


def test_size_sweep_names_one_run_folder_for_a_path_override():
    """``--set init_weights=/abs/path.safetensors`` must name one folder, not nest a tree of them."""
    import size_sweep

    assert size_sweep._folder_part("init_weights=/work/x/sr-x4.safetensors") == "init_weights=sr-x4.safetensors"
    assert size_sweep._folder_part(r"init_weights=C:\w\sr-x4.safetensors") == "init_weights=sr-x4.safetensors"
    assert size_sweep._folder_part("learning_rate=5e-4") == "learning_rate=5e-4"
