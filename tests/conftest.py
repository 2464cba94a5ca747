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


def png_bytes(width: int, height: int, rows: bytes, *, depth: int = 8, colour_type: int = 2, interlace: int = 0) -> bytes:
    """A PNG file whose IDAT holds ``rows`` (filtered scanlines) as one complete zlib stream.

    The chunks and the zlib stream are valid whatever ``rows`` holds, so a short ``rows`` makes a
    file that only a decoder counting the rows can tell from a complete one.
    """
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, interlace)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))
