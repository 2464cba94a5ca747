"""ONNX export: dynamic batch/height/width really work (onnxruntime vs PyTorch), and the CLI command."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import make_network, save_checkpoint
from hfpie.cli import app
from hfpie.onnx_export import check_onnx, export_onnx

needs_onnx = pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="exporting needs the onnx package")


@needs_onnx
@pytest.mark.parametrize("scale", [1, 2])
def test_export_runs_in_onnxruntime_at_several_sizes(tmp_path: Path, scale: int) -> None:
    pytest.importorskip("onnxruntime")
    # attention_window=32: cells of 8 input pixels, so 36x44 has partial cells at the border.
    network = make_network(scale, attention_window=32)
    path = export_onnx(network, tmp_path / "model.onnx")
    assert path.is_file() and path.stat().st_size > 0
    difference = check_onnx(network, path, sizes=((32, 48), (36, 44), (8, 12)))
    assert difference < 1e-3
    assert check_onnx(network, path, sizes=((20, 16),), batch=2) < 1e-3  # dynamic batch


@needs_onnx
def test_graph_has_named_dynamic_axes(tmp_path: Path) -> None:
    import onnx

    path = export_onnx(make_network(1), tmp_path / "model.onnx")
    graph = onnx.load(str(path)).graph
    (image,), (output,) = graph.input, graph.output
    assert image.name == "image" and output.name == "output"
    dims = [d.dim_param or d.dim_value for d in image.type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]


def test_check_rejects_sizes_that_are_not_multiples(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    network = make_network(1)
    with pytest.raises(ValueError, match="multiples of 4"):
        check_onnx(network, tmp_path / "missing.onnx", sizes=((30, 32),))


@needs_onnx
def test_cli_export_onnx(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    checkpoint = save_checkpoint(make_network(2), tmp_path / "sr2.safetensors")
    runner = CliRunner()
    out = tmp_path / "out" / "sr2.onnx"
    result = runner.invoke(app, ["export-onnx", str(checkpoint), str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file()
    assert "(N, 3, 2H, 2W)" in result.output
    assert "max abs diff" in result.output
    difference = float(result.output.split("max abs diff:")[1].split()[0])
    assert difference < 1e-3

    again = runner.invoke(app, ["export-onnx", str(checkpoint), str(out)])
    assert again.exit_code == 2 and "already exists" in again.output
    wrong_task = runner.invoke(app, ["export-onnx", str(checkpoint), str(out), "--task", "denoise", "--overwrite"])
    assert wrong_task.exit_code == 2 and "scale" in wrong_task.output


@needs_onnx
def test_cli_export_without_check(tmp_path: Path) -> None:
    checkpoint = save_checkpoint(make_network(1), tmp_path / "denoise.safetensors")
    result = CliRunner().invoke(app, ["export-onnx", str(checkpoint), str(tmp_path / "d.onnx"), "--no-check"])
    assert result.exit_code == 0, result.output
    assert "max abs diff" not in result.output
    assert (tmp_path / "d.onnx").is_file()
