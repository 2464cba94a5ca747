"""The command line, in-process with typer's CliRunner: outputs, batches, bad inputs, atomic writes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import make_network, save_checkpoint
from hfpie.cli import app

runner = CliRunner()


def _write_rgb(path: Path, seed: int = 0, size=(20, 24)) -> np.ndarray:
    array = np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)
    Image.fromarray(array).save(path)
    return array


def _run(*args: str):
    return runner.invoke(app, list(args))


def test_denoise_one_file_keeps_pixels_format_and_metadata(identity_checkpoint: Path, tmp_path: Path) -> None:
    source = tmp_path / "noisy.png"
    pixels = np.random.default_rng(0).integers(0, 65535, (18, 22, 4), dtype=np.uint16)
    cv2.imwrite(str(source), pixels)
    before = source.read_bytes()
    result = _run("denoise", str(source), "-o", str(tmp_path / "clean.png"), "--model", str(identity_checkpoint))
    assert result.exit_code == 0, result.output
    written = cv2.imread(str(tmp_path / "clean.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(written, pixels)  # 16-bit RGBA in, 16-bit RGBA out, identical
    assert source.read_bytes() == before


def test_folder_batch_with_recursion_and_formats(identity_checkpoint: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    first = _write_rgb(inputs / "a.png", 1)
    Image.fromarray(_write_rgb(inputs / "tmp.png", 2)).save(inputs / "sub" / "b.jpg", quality=95)
    (inputs / "tmp.png").unlink()
    (inputs / "notes.txt").write_text("ignored: not an image suffix")
    result = _run("denoise", str(inputs), "-o", str(tmp_path / "out"), "--recursive", "--model", str(identity_checkpoint))
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "a.png")), first)
    with Image.open(tmp_path / "out" / "sub" / "b.jpg") as jpeg:
        assert jpeg.format == "JPEG"
    assert "wrote 2 of 2" in result.output


def test_glob_patterns_and_sr(tmp_path: Path) -> None:
    checkpoint = save_checkpoint(make_network(2), tmp_path / "sr2.safetensors")
    for index in range(2):
        _write_rgb(tmp_path / f"img{index}.png", index, size=(9, 7))
    result = _run("sr", str(tmp_path / "img*.png"), "--scale", "2", "-o", str(tmp_path / "up"), "--model", str(checkpoint))
    assert result.exit_code == 0, result.output
    for index in range(2):
        assert Image.open(tmp_path / "up" / f"img{index}.png").size == (14, 18)
    wrong = _run("sr", str(tmp_path / "img0.png"), "--scale", "4", "-o", str(tmp_path / "x.png"), "--model", str(checkpoint))
    assert wrong.exit_code == 2 and "needs a x4 model" in wrong.output


def test_bad_inputs_fail_alone_and_set_the_exit_code(identity_checkpoint: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    _write_rgb(good)
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "truncated.png").write_bytes(good.read_bytes()[:100])
    Image.new("CMYK", (4, 4)).save(tmp_path / "cmyk.jpg")
    names = ["missing.png", "text.png", "truncated.png", "cmyk.jpg", "good.png"]
    out = tmp_path / "out"
    result = _run("denoise", *[str(tmp_path / n) for n in names], "-o", str(out), "--model", str(identity_checkpoint))
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 4
    for name, line in zip(names, errors):
        assert name in line
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]  # nothing half-written, the good one done
    assert "wrote 1 of 5" in result.output


def test_outputs_and_inputs_are_never_overwritten_unless_asked(identity_checkpoint: Path, tmp_path: Path) -> None:
    source = tmp_path / "photo.png"
    _write_rgb(source)
    before = source.read_bytes()
    result = _run("denoise", str(source), "-o", str(source), "--model", str(identity_checkpoint))
    assert result.exit_code == 1 and "is the input itself" in result.output and "--overwrite" in result.output
    assert source.read_bytes() == before
    existing = tmp_path / "existing.png"
    existing.write_bytes(b"keep me")
    result = _run("denoise", str(source), "-o", str(existing), "--model", str(identity_checkpoint))
    assert result.exit_code == 1 and existing.read_bytes() == b"keep me"
    result = _run("denoise", str(source), "-o", str(existing), "--model", str(identity_checkpoint), "--overwrite")
    assert result.exit_code == 0 and existing.read_bytes() != b"keep me"


def test_a_crash_during_the_write_leaves_no_partial_output(identity_checkpoint: Path, tmp_path: Path, monkeypatch) -> None:
    source = tmp_path / "in.png"
    _write_rgb(source)
    out = tmp_path / "out"
    out.mkdir()

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr("hfpie.io.os.replace", crash)
    result = _run("denoise", str(source), "-o", str(out), "--model", str(identity_checkpoint))
    assert result.exit_code == 1 and "disk full" in result.output
    assert list(out.iterdir()) == []


def test_missing_weights_and_no_inputs_are_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hfpie.hub

    monkeypatch.setattr(hfpie.hub, "load_manifest", dict)  # an install without pretrained weights
    _write_rgb(tmp_path / "a.png")
    result = _run("deblur", str(tmp_path / "a.png"), "-o", str(tmp_path / "b.png"))
    assert result.exit_code == 2 and "No pretrained weights are installed for task 'deblur'" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _run("denoise", str(empty), "-o", str(tmp_path / "o"))
    assert result.exit_code == 2 and "no input images found" in result.output
    assert not (tmp_path / "b.png").exists()


def test_models_download_and_hub_export(identity_checkpoint: Path, tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    assert _run("models").exit_code == 0
    result = _run("download", "no-such-model")
    assert result.exit_code == 2 and "Unknown model 'no-such-model'" in result.output
    folder = tmp_path / "hub"
    result = _run("hub-export", str(identity_checkpoint), str(folder))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "hfpie" and card.data.pipeline_tag == "image-to-image"
    assert card.data.license == "mit"
    again = _run("hub-export", str(identity_checkpoint), str(folder))
    assert again.exit_code == 2 and "not empty" in again.output


@pytest.mark.parametrize("command", ["denoise", "deblur", "sr", "models", "download", "hub-export"])
def test_help_works(command: str) -> None:
    result = _run(command, "--help")
    assert result.exit_code == 0 and "Usage" in result.output


def test_hub_export_of_every_shipped_model(tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    import hfpie.hub

    names = sorted(hfpie.hub.load_manifest())
    if not names:
        pytest.skip("no weights shipped in this build")
    for name in names:
        folder = tmp_path / name
        result = _run("hub-export", name, str(folder))
        assert result.exit_code == 0, result.output
        card = ModelCard.load(folder / "README.md")
        assert card.data.library_name == "hfpie" and "## Limitations" in card.text
        assert (folder / "model.safetensors").read_bytes() == hfpie.hub.bundled_path(hfpie.hub.find_entry(name)).read_bytes()
