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
