"""scripts/gpu_plan.py: a plan's jobs train at once and come back annealed, in archives that fit a device call."""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from hfpie.checkpoint import read_config

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import gpu_plan  # noqa: E402  (a repository script, not part of the package)


def _data(root: Path) -> Path:
    """Random images where the continual configs' folders land in a pack: train/<folder>, val/set5."""
    rng = np.random.default_rng(0)
    for folder in ("train/t91", "train/live1", "val/set5"):
        (root / folder).mkdir(parents=True)
        for index in range(2):
            image = rng.integers(0, 256, (72, 88, 3), dtype=np.uint8)
            Image.fromarray(image).save(root / folder / f"img{index}.png")
    return root


def test_the_jobs_of_a_plan_train_at_once_and_end_annealed(tmp_path: Path, monkeypatch) -> None:
    """Two jobs anneal within the call; a third continues the model's campaign on its curve."""
    state = gpu_plan.load_state("sr-x2")
    shipped = read_config(gpu_plan.ROOT / state["weights"])[1]["num_blocks"]
    deeper = [shipped[0] + 1, *shipped[1:]]  # one RCAB more at scale 0 than the weights it starts from
    grown = [*shipped[:2], shipped[2] + 1]  # the campaign's shape: one more at scale 2
    campaign = {"number": 1, "blocks": grown, "network": {"sr_tail": "direct", "sr_tail_kernel": 5},
                "peak_lr": 2e-4, "min_lr": 1e-6, "warmup_steps": 0, "schedule_steps": 60000, "position": 30000}
    monkeypatch.setattr(gpu_plan, "load_state", lambda name: {**state, "campaign": campaign})
    plan = tmp_path / "plan.toml"
    plan.write_text('[[job]]\nname = "as-shipped"\nmodel = "sr-x2"\nlearning_rate = 1e-3\n\n'
                    '[[job]]\nname = "deeper"\nmodel = "sr-x2"\nlearning_rate = 1e-3\nwarmup_steps = 2\n'
                    f'network = {{ num_blocks = {deeper} }}\n\n'
                    '[[job]]\nname = "campaign"\nmodel = "sr-x2"\ncampaign = true\n')
    out = tmp_path / "out"
    out.mkdir()
    args = argparse.Namespace(out=out, plan=plan, data_root=_data(tmp_path / "data"), minutes=0.05, device="cpu",
                              models=None)
    gpu_plan.run(args)
    summary = json.loads((out / "plan.json").read_text())
    assert set(summary["jobs"]) == {"as-shipped", "deeper", "campaign"}
    for name, job in summary["jobs"].items():
        assert job["error"] is None and job["steps"] > 0
        assert job["schedule"] == ("cosine" if name == "campaign" else "cosine-time")
    assert sorted(p.name for p in out.iterdir()) == ["plan.json", "results-0.tar"]  # the runs themselves stay there
    unpacked = tmp_path / "runs"
    gpu_plan.unpack(argparse.Namespace(archives=[out / "results-0.tar"], runs=unpacked))
    assert read_config(unpacked / "deeper" / "final.safetensors")[1]["num_blocks"] == deeper
    records = [json.loads(line) for line in (unpacked / "deeper" / "log.jsonl").read_text().splitlines()]
    rates = [r["lr"] for r in records if "lr" in r]
    assert rates[-1] < 1e-3 * 0.5, "a job's cosine runs over its training time: it ends far below its peak"
    continued = read_config(unpacked / "campaign" / "final.safetensors")[1]
    assert (continued["num_blocks"], continued["sr_tail"], continued["sr_tail_kernel"]) == (grown, "direct", 5)
    logged = [json.loads(line) for line in (unpacked / "campaign" / "log.jsonl").read_text().splitlines()]
    rate = next(r["lr"] for r in logged if "lr" in r)
    assert 0.49 * 2e-4 < rate < 0.51 * 2e-4, "the campaign's curve at position 30000 of 60000: half the peak"


def test_every_job_of_the_committed_plan_starts_from_the_committed_state(tmp_path: Path) -> None:
    """configs/gpu_plan.toml against training_state/: a job that cannot start (a campaign run to its end,
    a shape its weights cannot grow into) stops the whole call before it trains, so a stale plan would
    spend a GPU loan on nothing. Each job's network is built and grown from its start weights here."""
    import torch

    from hfpie.models import HFPIENet
    from hfpie.training.trainer import _load_init_weights

    for job in gpu_plan.load_plan(gpu_plan.PLAN):
        config = gpu_plan._config(job, tmp_path, "cpu", 60.0, small=True)
        network = HFPIENet(config.network_config())
        before = {name: value.clone() for name, value in network.state_dict().items()}
        _load_init_weights(network, config.init_weights, strict=config.init_strict, grow=config.init_grow,
                           seed=config.seed)
        changed = sum(not torch.equal(before[name], value) for name, value in network.state_dict().items())
        assert changed > len(before) // 2, f"job {job['name']}: its start weights were not loaded"
        for field, value in job.get("network", {}).items():
            built = config.network_config().to_dict()[field]
            assert (list(built) if isinstance(built, tuple) else built) == value, f"job {job['name']}: {field}"
