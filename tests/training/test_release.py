"""Shipping a checkpoint: bundled copy + manifest entry with sha256, size and config."""

from __future__ import annotations

import json
from pathlib import Path

import sys

from conftest import make_network, save_checkpoint
from hfpie.hub import load_network, sha256_of
from hfpie.training.highpass import HighPassNet, save_highpass_net

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from release import add_to_manifest  # noqa: E402  (a repository script, not part of the package)


def test_add_to_manifest_bundles_and_describes_the_weights(tmp_path: Path) -> None:
    (tmp_path / "src" / "hfpie" / "weights").mkdir(parents=True)
    (tmp_path / "weights_manifest.json").write_text(json.dumps({"format": 1, "models": {}}))
    checkpoint = save_checkpoint(make_network(2), tmp_path / "run.safetensors")
    entry = add_to_manifest("sr-x2", checkpoint, task="sr", preset="tiny", training_data="generated",
                            extra={"steps": 10, "metrics": [{"dataset": "Set5", "metric": "PSNR", "value": 30.0}]},
                            root=tmp_path)
    bundled = tmp_path / "src" / "hfpie" / "weights" / "sr-x2.safetensors"
    assert entry["sha256"] == sha256_of(bundled) and entry["size"] == bundled.stat().st_size
    assert entry["scale"] == 2 and entry["default"] and entry["steps"] == 10
    manifest = json.loads((tmp_path / "weights_manifest.json").read_text())
    assert manifest["models"]["sr-x2"]["config"]["scale"] == 2
    assert load_network(bundled).config == make_network(2).config
    hpf = tmp_path / "hpf_run.safetensors"
    save_highpass_net(HighPassNet(), hpf, {"report": {}})
    hpf_entry = add_to_manifest("hpf", hpf, task="hpf", root=tmp_path)
    assert hpf_entry["default"] is False and hpf_entry["config"]["widths"] == [32, 32]
