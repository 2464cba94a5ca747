"""Inference precision: auto / fp32 / bf16 / fp16, the fp32 layers against their formulas, the bf16 quality bound."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from hfpie import api, enhance, hub, precision, runner
from hfpie.cli import app
from hfpie.models import HFPIENet
from hfpie.models.layers import RCAB, FeatureAttention, _like_layout, expand_to_pixels, local_average

from conftest import make_network

ROOT = Path(__file__).resolve().parents[1]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


@pytest.mark.parametrize(("fast", "device", "expected"), [
    (True, "cpu", "bf16"), (False, "cpu", "fp32"), (False, "cuda", "fp16"), (False, "mps", "fp32"),
])
def test_auto_precision_follows_the_device(monkeypatch: pytest.MonkeyPatch, fast: bool, device: str,
                                           expected: str) -> None:
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: fast)
    assert precision.resolve_precision("auto", device) == expected
    assert precision.resolve_precision("fp32", device) == "fp32"


def test_unknown_or_unusable_precisions_are_refused() -> None:
    with pytest.raises(ValueError, match="auto, fp32, bf16, fp16"):
        precision.resolve_precision("int4", "cpu")
    with pytest.raises(ValueError, match="CUDA"):
        precision.resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="not both"):
        api.run_network(make_network(), torch.rand(1, 3, 16, 16), device="cpu", precision="fp32", half=True)


def _reference_feature_attention(module: FeatureAttention, inputs: list[torch.Tensor]) -> torch.Tensor:
    """The formula as first written: every weight map expanded, then sum_i w_i * x_i."""
    pooled = torch.stack([local_average(x, module.window) for x in inputs], dim=1)
    n, k, c, h, w = pooled.shape
    logits = module.conv(pooled.reshape(n, 1, k, c * h * w)).reshape(n, k, c, h, w)
    weights = torch.softmax(logits, dim=1).reshape(n, k * c, h, w)
    weights = expand_to_pixels(weights, module.window, inputs[0].shape[-2:])
    weights = weights.reshape(n, k, c, *weights.shape[-2:])
    output = weights[:, 0] * inputs[0]
    for index in range(1, k):
        output = output + weights[:, index] * inputs[index]
    return output


@pytest.mark.parametrize("channels_last", [False, True])
def test_float32_layers_give_the_original_formulas_within_float_rounding(channels_last: bool) -> None:
    torch.manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    attention = FeatureAttention(3, window=16)
    torch.nn.init.normal_(attention.conv.weight)
    inputs = [torch.randn(1, 8, 40, 24).contiguous(memory_format=layout) for _ in range(3)]
    with torch.no_grad():
        torch.testing.assert_close(attention(inputs), _reference_feature_attention(attention, inputs),
                                   rtol=1e-6, atol=1e-6)
        block = RCAB(8, reduction=2, window=16).to(memory_format=layout)
        x = inputs[0]
        features = block.conv2(F.relu(block.conv1(x)))
        torch.testing.assert_close(block(x), x + block.attention(features), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_attention_weights_take_the_layout_of_the_features_in_every_precision(dtype: torch.dtype) -> None:
    """Mixed layouts run several times slower on the CPU (docs/speed.md), float32 included."""
    features = torch.randn(1, 8, 32, 32, dtype=dtype).contiguous(memory_format=torch.channels_last)
    weights = torch.rand(1, 8, 4, 4, dtype=dtype)  # contiguous, as a reshaped softmax leaves them
    assert _like_layout(weights, features).is_contiguous(memory_format=torch.channels_last)
    assert _like_layout(weights.contiguous(memory_format=torch.channels_last), features.contiguous()).is_contiguous()


def test_auto_without_fast_bf16_is_the_float32_path_bit_for_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: False)
    network = make_network(gain=2.0)
    image = np.random.default_rng(0).integers(0, 256, (64, 72, 3), dtype=np.uint8)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        direct = network(F.pad(x, (0, 0, 0, 0)))  # 64 x 72: a multiple of the tiny preset's 4, no side under MIN_WORKING_SIDE
    assert torch.equal(api.run_network(network, x, device="cpu"), direct.clamp(0, 1))
    assert np.array_equal(enhance(image, model=network, device="cpu"),
                          enhance(image, model=network, device="cpu", precision="fp32"))


def test_bf16_stays_within_the_quality_bound_on_a_shipped_model() -> None:
    if "denoise" not in hub.load_manifest():
        pytest.skip("denoise is not shipped in this build")
    noisy = np.asarray(Image.open(ROOT / "examples" / "noisy.png").convert("RGB"))[:128, :128]
    fp32 = enhance(noisy, task="denoise", device="cpu", precision="fp32")
    bf16 = enhance(noisy, task="denoise", device="cpu", precision="bf16")
    assert _psnr(bf16, fp32) >= 50.0
    assert np.abs(bf16.astype(int) - fp32.astype(int)).max() <= 3


@pytest.mark.parametrize(("array", "expected"), [
    (np.zeros((24, 24, 3), np.uint8), "bf16"),
    (np.zeros((24, 24, 3), np.uint16), "fp32"),
    (np.zeros((24, 24, 3), np.float32), "fp32"),
])
def test_auto_keeps_float32_for_16_bit_and_float_inputs_on_the_cpu(
        monkeypatch: pytest.MonkeyPatch, array: np.ndarray, expected: str) -> None:
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    seen: list[str] = []
    original = runner.tiled_forward

    def spy(*args, **kwargs):
        seen.append(kwargs["precision"])
        return original(*args, **kwargs)

    monkeypatch.setattr(runner, "tiled_forward", spy)
    enhance(array, model=make_network(), device="cpu")
    assert seen == [expected]


def test_the_cli_takes_a_precision_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    Image.fromarray(np.full((16, 16, 3), 100, np.uint8)).save(source)
    runner = CliRunner()
    result = runner.invoke(app, ["denoise", str(source), "-o", str(tmp_path / "out.png"), "--precision", "int4"])
    assert result.exit_code == 2 and "--precision must be one of" in result.output
    info = runner.invoke(app, ["info"])
    assert info.exit_code == 0 and "precision auto =" in info.output


def test_the_network_class_is_unchanged_by_precision() -> None:
    """Precision is a property of a call (autocast), never of the weights: they stay float32."""
    network = make_network()
    api.run_network(network, torch.rand(1, 3, 16, 16), device="cpu", precision="bf16")
    assert isinstance(network, HFPIENet)
    assert all(p.dtype == torch.float32 for p in network.parameters())
