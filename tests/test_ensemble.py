"""Geometric self-ensemble (``ensemble=``): the mean of the transformed runs, exact with tiling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import make_identity, make_network, save_checkpoint
from hfpie.api import enhance, run_network
from hfpie.cli import app
from hfpie.ensemble import check_ensemble, ensemble_transforms

# The eight transforms and their inverses, written out by hand (independent of hfpie.ensemble).
_BY_HAND = [
    (lambda x: x, lambda y: y),
    (lambda x: x.flip(-1), lambda y: y.flip(-1)),
    (lambda x: x.flip(-2), lambda y: y.flip(-2)),
    (lambda x: x.flip(-2, -1), lambda y: y.flip(-2, -1)),
    (lambda x: x.transpose(-2, -1), lambda y: y.transpose(-2, -1)),
    (lambda x: x.transpose(-2, -1).flip(-1), lambda y: y.flip(-1).transpose(-2, -1)),
    (lambda x: x.transpose(-2, -1).flip(-2), lambda y: y.flip(-2).transpose(-2, -1)),
    (lambda x: x.transpose(-2, -1).flip(-2, -1), lambda y: y.flip(-2, -1).transpose(-2, -1)),
]


def _mean_by_hand(network, x: torch.Tensor, count: int, **settings) -> torch.Tensor:
    outputs = [inverse(run_network(network, forward(x).contiguous(), **settings))
               for forward, inverse in _BY_HAND[:count]]
    return sum(outputs) / count


@pytest.mark.parametrize("count", [2, 4, 8])
def test_ensemble_is_the_mean_of_the_transformed_runs(count: int) -> None:
    network = make_network(2, seed=2, gain=2.0)
    x = torch.rand(1, 3, 40, 28)  # not square: a transposition that is not undone shows
    expected = _mean_by_hand(network, x, count, device="cpu", precision="fp32")
    output = enhance(x, model=network, task="sr", scale=2, device="cpu", precision="fp32", ensemble=count)
    assert torch.equal(output, expected)
    assert not torch.equal(output, enhance(x, model=network, task="sr", scale=2, device="cpu", precision="fp32"))


def test_ensemble_true_is_eight_and_false_is_one_pass() -> None:
    network = make_network(1, seed=3, gain=2.0)
    x = torch.rand(1, 3, 24, 32)
    settings = dict(model=network, device="cpu", precision="fp32")
    assert torch.equal(enhance(x, ensemble=True, **settings), _mean_by_hand(network, x, 8, device="cpu", precision="fp32"))
    assert torch.equal(enhance(x, ensemble=False, **settings), enhance(x, **settings))
    assert torch.equal(enhance(x, ensemble=1, **settings), enhance(x, **settings))
    assert check_ensemble(True) == 8 and len(ensemble_transforms(8)) == len(set(ensemble_transforms(8))) == 8


def test_ensemble_of_an_equivariant_network_is_one_pass() -> None:
    network = make_identity()  # output = input: commutes with every flip and rotation
    array = np.random.default_rng(0).integers(0, 256, size=(30, 45, 3)).astype(np.uint8)
    one = enhance(array, model=network, device="cpu", precision="fp32")
    for count in (2, 4, 8):
        assert np.array_equal(enhance(array, model=network, device="cpu", precision="fp32", ensemble=count), one)


def test_ensemble_with_tiling_is_the_mean_of_tiled_runs_and_exact() -> None:
    network = make_network(2, seed=4, gain=2.0, attention_window=8)
    x = torch.rand(1, 3, 72, 56)
    tiled = dict(device="cpu", precision="fp32", tile=16, halo="exact")
    output = enhance(x, model=network, task="sr", scale=2, ensemble=8, **tiled)
    assert torch.equal(output, _mean_by_hand(network, x, 8, **tiled))  # each transform runs the tiled path
    whole = enhance(x, model=network, task="sr", scale=2, ensemble=8, device="cpu", precision="fp32")
    assert (output - whole).abs().max() < 1e-4  # and the exact halo keeps it the whole-image ensemble
    # uint8 in: the float mean is converted once, as one pass is.
    array = (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    mean = _mean_by_hand(network, torch.from_numpy(array.astype(np.float32) / 255.0).permute(2, 0, 1)[None], 4,
                         **tiled)
    expected = np.round(np.clip(mean[0].permute(1, 2, 0).numpy(), 0, 1) * 255.0).astype(np.uint8)
    assert np.array_equal(enhance(array, model=network, task="sr", scale=2, ensemble=4, **tiled), expected)


def test_ensemble_reports_progress_over_all_runs() -> None:
    seen: list[tuple[int, int]] = []
    enhance(torch.rand(1, 3, 40, 40), model=make_network(), device="cpu", tile=16, ensemble=4,
            progress=lambda done, total: seen.append((done, total)))
    assert seen[-1][0] == seen[-1][1] and len({total for _, total in seen}) == 1
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


@pytest.mark.parametrize("value", [3, 0, 16, -8, 2.0, "8", None])
def test_bad_ensemble_values_are_refused(value) -> None:
    with pytest.raises(ValueError, match="ensemble must be True"):
        enhance(torch.rand(1, 3, 16, 16), model=make_network(), device="cpu", ensemble=value)


def test_the_cli_takes_an_ensemble_and_refuses_a_bad_one(tmp_path: Path) -> None:
    checkpoint = save_checkpoint(make_network(), tmp_path / "model.safetensors", task="denoise")
    source = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (20, 24, 3)).astype(np.uint8)).save(source)
    runner = CliRunner()
    bad = runner.invoke(app, ["denoise", str(source), "-o", str(tmp_path / "bad.png"), "-m", str(checkpoint),
                              "--ensemble", "3"])
    assert bad.exit_code == 2 and "--ensemble must be 1 (one pass), 2, 4 or 8" in bad.output
    assert not (tmp_path / "bad.png").exists()
    good = runner.invoke(app, ["denoise", str(source), "-o", str(tmp_path / "out.png"), "-m", str(checkpoint),
                               "--ensemble", "8", "--precision", "fp32"])
    assert good.exit_code == 0, good.output
    expected = enhance(np.asarray(Image.open(source)), model=make_network(), device="cpu", precision="fp32", ensemble=8)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), expected)
