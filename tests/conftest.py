"""Shared fixtures: tiny networks built in the test (no pretrained weights, no network, no GPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from hfpie.models import HFPIEConfig, HFPIENet, config_from_preset

# Tiny test tensors run much faster on one thread than split over this machine's two cores.
torch.set_num_threads(1)


def make_network(scale: int = 1, *, seed: int = 0, gain: float = 1.0, **overrides) -> HFPIENet:
    """A tiny random network; ``gain`` > 1 scales every weight so the output really depends on context."""
    torch.manual_seed(seed)
    config = config_from_preset("tiny", scale=scale, **overrides)
    network = HFPIENet(config).eval()
    if gain != 1.0:
        with torch.no_grad():
            for name, parameter in network.named_parameters():
                if parameter.ndim == 4 and "filters" not in name:
                    parameter.mul_(gain)
    return network


def make_identity(scale: int = 1) -> HFPIENet:
    """A restoration network whose output is exactly its input (last conv zeroed; global residual)."""
    network = make_network(scale)
    tail_conv = network.scales[0].tail[-1]
    with torch.no_grad():
        tail_conv.weight.zero_()
        tail_conv.bias.zero_()
    return network


def save_checkpoint(network: HFPIENet, path: Path, **metadata: str) -> Path:
    state = {k: v.contiguous() for k, v in network.state_dict().items()}
    save_file(state, str(path), metadata={"config": json.dumps(network.config.to_dict()), **metadata})
    return path


@pytest.fixture
def identity_checkpoint(tmp_path: Path) -> Path:
    return save_checkpoint(make_identity(), tmp_path / "identity.safetensors", name="identity", task="denoise")


@pytest.fixture
def tiny_config() -> HFPIEConfig:
    return config_from_preset("tiny")
