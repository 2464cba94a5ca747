"""The command line, in-process with typer's CliRunner: outputs, batches, bad inputs, atomic writes."""

from __future__ import annotations

import io
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import hfpie
from conftest import make_identity, make_network, png_bytes, save_checkpoint
from hfpie.cli import app

runner = CliRunner()


def _write_rgb(path: Path, seed: int = 0, size=(20, 24)) -> np.ndarray:
    array = np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)
    Image.fromarray(array).save(path)
    return array


def _run(*args: str):
    return runner.invoke(app, list(args))


def _errors(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("error:")]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def inference_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """Shapes of every network run, recorded so a test can assert that a problem was found before inference."""
    import hfpie.api

    calls: list[tuple[int, ...]] = []
    real = hfpie.api.run_network

    def recording(network, image, **options):
        calls.append(tuple(image.shape))
        return real(network, image, **options)

    monkeypatch.setattr(hfpie.api, "run_network", recording)
    return calls


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
    errors = _errors(result)
    assert len(errors) == 3
    for name, line in zip(names, errors):
        assert name in line and str(out / name) in line  # the input and the intended output
    assert sorted(p.name for p in out.iterdir()) == ["cmyk.jpg", "good.png"]  # nothing half-written
    with Image.open(out / "cmyk.jpg") as converted:
        assert converted.mode == "RGB"  # CMYK is converted, not refused
    assert "wrote 2 of 5" in result.output


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
    monkeypatch.setattr("hfpie.io.os.link", crash)  # a new output is published with a link (never replacing)
    result = _run("denoise", str(source), "-o", str(out), "--model", str(identity_checkpoint))
    assert result.exit_code == 1 and "disk full" in result.output
    assert list(out.iterdir()) == []
    (line,) = _errors(result)
    assert str(source) in line and str(out / "in.png") in line and ".tmp" not in line  # never the temporary file
    assert "wrote 0 of 1" in result.output


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


def _help_texts():
    import typer.main

    group = typer.main.get_command(app)
    yield "hfpie", group.help or ""
    for name, command in group.commands.items():
        yield name, command.help or ""
        for param in command.params:
            yield f"{name} {param.name}", getattr(param, "help", None) or ""


@pytest.mark.parametrize("where,text", [pytest.param(w, t, id=w) for w, t in _help_texts()])
def test_help_text_survives_rich_markup(where: str, text: str) -> None:
    """typer renders help through rich markup, which silently drops a bracketed word such as the
    ``[train]`` of ``pip install "hfpie[train]"`` or the ``[@revision]`` of ``owner/repo[@revision]``
    unless it is written ``\\[``."""
    from rich.text import Text

    assert Text.from_markup(text).plain == text.replace("\\[", "["), where


def test_help_shows_the_bracketed_parts() -> None:
    wide = {"COLUMNS": "400"}
    assert "owner/repo[@revision]" in runner.invoke(app, ["sr", "--help"], env=wide).output
    assert "owner/repo[@revision]" in runner.invoke(app, ["download", "--help"], env=wide).output
    assert 'pip install "hfpie[train]"' in runner.invoke(app, ["--help"], env=wide).output


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


def test_outputs_get_ordinary_permissions_and_an_overwrite_keeps_them(identity_checkpoint: Path, tmp_path: Path) -> None:
    source = tmp_path / "photo.png"
    _write_rgb(source)
    previous = os.umask(0o022)
    try:
        result = _run("denoise", str(source), "-o", str(tmp_path / "clean.png"), "--model", str(identity_checkpoint))
        assert result.exit_code == 0, result.output
        assert _mode(tmp_path / "clean.png") == 0o644  # as `cp` or any ordinary write would create it
        source.chmod(0o640)
        result = _run("denoise", str(source), "-o", str(source), "--overwrite", "--model", str(identity_checkpoint))
        assert result.exit_code == 0, result.output
        assert _mode(source) == 0o640  # replaced in place: keeps its mode
    finally:
        os.umask(previous)


def test_an_incomplete_png_is_refused_before_inference(identity_checkpoint: Path, tmp_path: Path,
                                                       inference_calls: list) -> None:
    array = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    rows = b"".join(b"\x00" + row.tobytes() for row in array[:16])
    (tmp_path / "short.png").write_bytes(png_bytes(64, 64, rows))
    (tmp_path / "huge.png").write_bytes(png_bytes(10_000, 10_000, b"\x00" * 30_001 * 10))  # 100 MP claimed, 370 bytes
    out = tmp_path / "out"
    result = _run("denoise", str(tmp_path / "short.png"), str(tmp_path / "huge.png"), "-o", str(out),
                  "--model", str(identity_checkpoint))
    assert result.exit_code == 1
    errors = _errors(result)
    assert len(errors) == 2 and all("incomplete" in line for line in errors)
    assert inference_calls == [] and not out.exists()


def test_batches_keep_the_input_tree_and_refuse_collisions_before_any_work(
        identity_checkpoint: Path, tmp_path: Path, inference_calls: list) -> None:
    shots = tmp_path / "shots"
    for seed, sub in enumerate(["a", "b", "b/deeper"]):
        (shots / sub).mkdir(parents=True)
        _write_rgb(shots / sub / "x.png", seed)
    out = tmp_path / "out"
    result = _run("denoise", str(shots / "**" / "*.png"), "-o", str(out), "--model", str(identity_checkpoint))
    assert result.exit_code == 0, result.output
    for sub in ["a", "b", "b/deeper"]:
        np.testing.assert_array_equal(np.asarray(Image.open(out / sub / "x.png")), np.asarray(Image.open(shots / sub / "x.png")))
    assert "wrote 3 of 3" in result.output
    inference_calls.clear()
    flat = tmp_path / "flat"
    for extra in ([], ["--overwrite"]):
        result = _run("denoise", str(shots / "a"), str(shots / "b"), "-o", str(flat), "--model",
                      str(identity_checkpoint), *extra)
        assert result.exit_code == 2
        (line,) = _errors(result)
        assert str(shots / "a" / "x.png") in line and str(shots / "b" / "x.png") in line and str(flat / "x.png") in line
        assert not flat.exists() and inference_calls == []


def test_an_output_folder_inside_the_input_folder_is_not_read_again(identity_checkpoint: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    _write_rgb(photos / "a.png")
    out = photos / "clean"
    for extra in ([], ["--overwrite"]):
        result = _run("denoise", str(photos), "-r", "-o", str(out), "--model", str(identity_checkpoint), *extra)
        assert result.exit_code == 0, result.output
        assert "wrote 1 of 1" in result.output
    result = _run("denoise", str(photos / "**" / "*.png"), "-o", str(out), "--overwrite", "--model", str(identity_checkpoint))
    assert result.exit_code == 0 and "wrote 1 of 1" in result.output
    assert sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*")) == ["a.png", "clean", "clean/a.png"]


@pytest.mark.parametrize("name", ["out.gif", "out.avif", "out.heic", "out.jp2", "OUT.PDF"])
def test_an_output_suffix_it_cannot_write_is_refused(identity_checkpoint: Path, tmp_path: Path, name: str) -> None:
    _write_rgb(tmp_path / "in.png")
    result = _run("denoise", str(tmp_path / "in.png"), "-o", str(tmp_path / name), "--model", str(identity_checkpoint))
    assert result.exit_code == 2
    (line,) = _errors(result)
    assert Path(name).suffix in line and ".png" in line and ".jpg" in line and ".tif" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["identity.safetensors", "in.png"]


def test_a_file_name_for_several_inputs_is_refused(identity_checkpoint: Path, tmp_path: Path) -> None:
    for index in range(2):
        _write_rgb(tmp_path / f"in{index}.png", index)
    result = _run("denoise", str(tmp_path / "in*.png"), "-o", str(tmp_path / "x.png"), "--model", str(identity_checkpoint))
    assert result.exit_code == 2 and "2 inputs" in result.output and len(_errors(result)) == 1
    assert not (tmp_path / "x.png").exists()


def test_an_absent_device_is_one_line_and_exit_2(identity_checkpoint: Path, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    _write_rgb(tmp_path / "in.png")
    for device in ["cuda", "gpu"]:
        result = _run("denoise", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--device", device,
                      "--model", str(identity_checkpoint))
        assert result.exit_code == 2
        assert result.output.strip().splitlines() == [f"error: device {device!r} is not available; devices here: cpu"] \
            or result.output.strip().splitlines() == [f"error: unknown device {device!r}; devices here: cpu"]
        assert not (tmp_path / "out.png").exists()


def test_nan_weights_never_give_an_image(tmp_path: Path) -> None:
    import torch

    network = make_identity()
    with torch.no_grad():
        network.scales[0].tail[-1].bias[0] = float("nan")
    checkpoint = save_checkpoint(network, tmp_path / "damaged.safetensors")
    _write_rgb(tmp_path / "in.png")
    result = _run("denoise", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--model", str(checkpoint))
    assert result.exit_code == 2
    (line,) = _errors(result)
    assert "damaged.safetensors" in line and "NaN" in line
    assert not (tmp_path / "out.png").exists()


def test_non_finite_output_fails_the_image_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hfpie.tiling

    checkpoint = save_checkpoint(make_identity(), tmp_path / "model.safetensors")  # finite weights
    _write_rgb(tmp_path / "in.png")
    real = hfpie.tiling.forward_tile

    def overflowing(*args, **kwargs):  # as a float32 overflow would: inf in one pixel, NaN in another
        output = real(*args, **kwargs).clone()  # a tile's output: an inference tensor, not to be changed in place
        middle = output.shape[-2] // 2, output.shape[-1] // 2  # inside the image, whatever padding surrounds it
        output[..., middle[0], middle[1]] = float("inf")
        output[..., middle[0] + 1, middle[1] + 1] = float("nan")
        return output

    monkeypatch.setattr(hfpie.tiling, "forward_tile", overflowing)
    result = _run("denoise", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--model", str(checkpoint))
    assert result.exit_code == 1 and "NaN" in result.output and "wrote 0 of 1" in result.output
    assert not (tmp_path / "out.png").exists()


def test_output_problems_are_found_before_inference_and_name_both_files(
        identity_checkpoint: Path, tmp_path: Path, inference_calls: list) -> None:
    logo = tmp_path / "logo.png"
    Image.new("RGBA", (8, 8), (10, 20, 30, 128)).save(logo)
    result = _run("denoise", str(logo), "-o", str(tmp_path / "logo.jpg"), "--model", str(identity_checkpoint))
    assert result.exit_code == 1
    (line,) = _errors(result)
    assert str(logo) in line and str(tmp_path / "logo.jpg") in line and "alpha" in line
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the output folder should go")
    result = _run("denoise", str(logo), "-o", str(blocker / "sub"), "--model", str(identity_checkpoint))
    assert result.exit_code == 1
    (line,) = _errors(result)
    assert str(logo) in line and str(blocker / "sub" / "logo.png") in line
    if os.geteuid() != 0:  # root writes into read-only folders
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        try:
            result = _run("denoise", str(logo), "-o", str(locked), "--model", str(identity_checkpoint))
        finally:
            locked.chmod(0o755)
        assert result.exit_code == 1 and str(locked / "logo.png") in result.output and list(locked.iterdir()) == []
    assert inference_calls == []


def test_folders_include_gifs_and_animations_are_refused_clearly(identity_checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    frames = [Image.fromarray(_write_rgb(tmp_path / f"f{seed}.png", seed)).quantize(64) for seed in range(3)]
    frames[0].save(folder / "still.gif")
    frames[0].save(folder / "moving.gif", save_all=True, append_images=frames[1:])
    out = tmp_path / "out"
    result = _run("denoise", str(folder), "-o", str(out), "--model", str(identity_checkpoint))
    assert result.exit_code == 1
    (line,) = _errors(result)
    assert "moving.gif" in line and "3 frames" in line
    assert sorted(p.name for p in out.iterdir()) == ["still.png"]  # GIF is not written: PNG keeps every colour
    np.testing.assert_array_equal(np.asarray(Image.open(out / "still.png")), np.asarray(frames[0].convert("RGB")))
    assert "wrote 1 of 2" in result.output


def test_progress_outside_a_terminal_is_a_line_per_image_and_quiet_is_quiet(identity_checkpoint: Path, tmp_path: Path) -> None:
    for index in range(2):
        _write_rgb(tmp_path / f"in{index}.png", index)
    result = _run("denoise", str(tmp_path / "in*.png"), "-o", str(tmp_path / "out"), "--model", str(identity_checkpoint))
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].startswith("[1/2] ") and "in0.png" in lines[0] and "ETA" in lines[0]
    assert lines[1].startswith("[2/2] ") and "in1.png" in lines[1]
    assert lines[2] == "denoise: wrote 2 of 2 image(s)"
    result = _run("denoise", str(tmp_path / "in*.png"), "-o", str(tmp_path / "out"), "--overwrite", "--quiet",
                  "--model", str(identity_checkpoint))
    assert result.exit_code == 0 and result.output == ""


def test_progress_in_a_terminal_is_one_bar_over_the_batch() -> None:
    from hfpie.batch import BatchProgress, Job

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    progress = BatchProgress(3, stream=stream)
    for position in range(1, 4):
        tiles = progress.tiles(position)
        tiles(50, 100)
        tiles(100, 100)
        progress.finished(position, Job(Path(f"in{position}.png"), Path(f"out{position}.png")), seconds=0.1)
    progress.close()
    text = stream.getvalue()
    assert "3/3" in text and "[1/3]" not in text  # one bar, not a line per image


def test_ctrl_c_stops_cleanly_and_says_what_was_written(identity_checkpoint: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import hfpie.api

    for index in range(3):
        _write_rgb(tmp_path / f"in{index}.png", index)
    real, calls = hfpie.api.run_network, []

    def interrupted_on_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(hfpie.api, "run_network", interrupted_on_the_second)
    out = tmp_path / "out"
    result = _run("denoise", str(tmp_path / "in*.png"), "-o", str(out), "--model", str(identity_checkpoint))
    assert result.exit_code == 130
    assert result.output.splitlines()[-1] == "interrupted: wrote 1 of 3 image(s)"
    assert sorted(p.name for p in out.iterdir()) == ["in0.png"]  # no half-written file, no temporary file


def test_skip_existing_resumes_a_stopped_batch(identity_checkpoint: Path, tmp_path: Path, inference_calls: list) -> None:
    for index in range(3):
        _write_rgb(tmp_path / f"in{index}.png", index)
    out = tmp_path / "out"
    out.mkdir()
    (out / "in1.png").write_bytes(b"written by the first run")
    result = _run("denoise", str(tmp_path / "in*.png"), "-o", str(out), "--skip-existing", "--model", str(identity_checkpoint))
    assert result.exit_code == 0, result.output
    assert (out / "in1.png").read_bytes() == b"written by the first run"
    assert sorted(p.name for p in out.iterdir()) == ["in0.png", "in1.png", "in2.png"] and len(inference_calls) == 2
    assert "wrote 2 of 3 image(s), 1 skipped (already there)" in result.output
    both = _run("denoise", str(tmp_path / "in*.png"), "-o", str(out), "--skip-existing", "--overwrite")
    assert both.exit_code == 2 and len(_errors(both)) == 1


def test_version_threads_and_a_help_without_torch(identity_checkpoint: Path, tmp_path: Path) -> None:
    import torch

    result = _run("--version")
    assert result.exit_code == 0 and result.output.strip() == f"hfpie {hfpie.__version__}"
    _write_rgb(tmp_path / "in.png")
    try:
        result = _run("denoise", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--threads", "2",
                      "--model", str(identity_checkpoint))
        assert result.exit_code == 0 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    source = Path(hfpie.__file__).parents[1]
    code = ("import sys\nfrom hfpie.cli import app\ntry:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch imported' if 'torch' in sys.modules else 'no torch')")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": str(source)})
    assert "denoise" in shown.stdout and shown.stdout.strip().endswith("no torch"), shown.stdout + shown.stderr


def test_sr_takes_its_scale_from_the_model_and_names_the_scales_there_are(tmp_path: Path) -> None:
    from hfpie.hub import list_models

    checkpoint = save_checkpoint(make_network(2), tmp_path / "x2.safetensors")
    _write_rgb(tmp_path / "in.png", size=(9, 7))
    result = _run("sr", str(tmp_path / "in.png"), "-o", str(tmp_path / "up.png"), "-m", str(checkpoint))
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "up.png").size == (14, 18)
    scales = sorted({entry.scale for entry in list_models() if entry.task == "sr"})
    if not scales:
        pytest.skip("no SR weights shipped in this build")
    result = _run("sr", str(tmp_path / "in.png"), "-o", str(tmp_path / "up3.png"), "--scale", "3")
    assert result.exit_code == 2
    (line,) = _errors(result)
    assert "x3" in line and ", ".join(map(str, scales)) in line and not (tmp_path / "up3.png").exists()


def _cli_process(*args: str, **options) -> subprocess.CompletedProcess:
    """``hfpie ARGS`` in a real process (pipes, signals), with the source tree first on the path."""
    source = Path(hfpie.__file__).parents[1]
    return subprocess.run([sys.executable, "-c", "from hfpie.cli import main; main()", *args], capture_output=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(source)}, **options)


def test_an_output_written_meanwhile_by_another_run_is_kept(identity_checkpoint: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import hfpie.api

    source = tmp_path / "big.png"
    _write_rgb(source)
    out = tmp_path / "out"
    out.mkdir()
    target = out / "x.png"
    real = hfpie.api.run_network

    def the_other_run_finishes_first(*args, **kwargs):
        target.write_bytes(b"the other run's result")  # after this run found no x.png, before it writes one
        return real(*args, **kwargs)

    monkeypatch.setattr(hfpie.api, "run_network", the_other_run_finishes_first)
    result = _run("denoise", str(source), "-o", str(target), "--model", str(identity_checkpoint))
    assert result.exit_code == 1, result.output
    (line,) = _errors(result)
    assert str(target) in line and "already exists" in line and "--overwrite" in line and ".tmp" not in line
    assert target.read_bytes() == b"the other run's result"
    assert sorted(p.name for p in out.iterdir()) == ["x.png"]  # its temporary file removed
    assert "wrote 0 of 1" in result.output


def test_skip_existing_keeps_an_output_another_run_writes_meanwhile(identity_checkpoint: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Two batches with --skip-existing over one folder: the image the other run finished first is
    skipped, not failed, and the batch exits 0."""
    import hfpie.api

    for index in range(2):
        _write_rgb(tmp_path / f"in{index}.png", index)
    out = tmp_path / "out"
    out.mkdir()
    real, calls = hfpie.api.run_network, []

    def the_other_run_finishes_in1_first(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # this run is making in1.png, having found none
            (out / "in1.png").write_bytes(b"the other run's result")
        return real(*args, **kwargs)

    monkeypatch.setattr(hfpie.api, "run_network", the_other_run_finishes_in1_first)
    result = _run("denoise", str(tmp_path / "in*.png"), "-o", str(out), "--skip-existing", "--model",
                  str(identity_checkpoint))
    assert result.exit_code == 0, result.output
    assert (out / "in1.png").read_bytes() == b"the other run's result"
    assert sorted(p.name for p in out.iterdir()) == ["in0.png", "in1.png"]
    assert "1 skipped" in result.output and not _errors(result)


def test_a_pattern_that_matches_nothing_is_an_error_even_beside_other_inputs(identity_checkpoint: Path,
                                                                             tmp_path: Path) -> None:
    _write_rgb(tmp_path / "a.png")
    result = _run("denoise", str(tmp_path / "a.png"), str(tmp_path / "tyop" / "*.png"), "-o", str(tmp_path / "out"),
                  "--model", str(identity_checkpoint))
    assert result.exit_code == 2 and "no file matches this pattern" in result.output
    assert str(tmp_path / "tyop" / "*.png") in result.output and not (tmp_path / "out").exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_sighup_mid_write_stop_the_batch_like_ctrl_c(identity_checkpoint: Path, tmp_path: Path,
                                                                signum: int) -> None:
    for index in range(3):
        _write_rgb(tmp_path / f"in{index}.png", index)
    out, marker = tmp_path / "out", tmp_path / "writing"
    code = ("import os, time\n"
            "real, calls = os.fsync, []\n"
            "def slow(fd):\n"
            "    real(fd)\n"
            "    calls.append(fd)\n"
            "    if len(calls) == 2:  # the second image's temporary file is written, not yet renamed\n"
            "        open(os.environ['MARKER'], 'w').close()\n"
            "        time.sleep(120)\n"
            "os.fsync = slow\n"
            "from hfpie.cli import main\n"
            "main()\n")
    source = Path(hfpie.__file__).parents[1]
    process = subprocess.Popen(
        [sys.executable, "-c", code, "denoise", str(tmp_path / "in*.png"), "-o", str(out), "--model",
         str(identity_checkpoint)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(source), "MARKER": str(marker)})
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
            time.sleep(0.05)
        assert len(list(out.glob(".in1.png.*.tmp"))) == 1  # caught in the middle of the write
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signum, stderr
    assert stderr.splitlines()[-1] == "interrupted: wrote 1 of 3 image(s)", stderr
    assert sorted(p.name for p in out.iterdir()) == ["in0.png"]  # no partial or temporary file


def test_images_piped_in_through_dev_stdin_and_a_named_pipe(identity_checkpoint: Path, tmp_path: Path) -> None:
    pixels = _write_rgb(tmp_path / "x.png")
    data = (tmp_path / "x.png").read_bytes()
    shown = _cli_process("denoise", "/dev/stdin", "-o", str(tmp_path / "o.png"), "--model", str(identity_checkpoint),
                         input=data)
    assert shown.returncode == 0, shown.stderr.decode()
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "o.png")), pixels)
    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)
    source = Path(hfpie.__file__).parents[1]
    process = subprocess.Popen([sys.executable, "-c", "from hfpie.cli import main; main()", "denoise", str(pipe),
                                "-o", str(tmp_path / "p.png"), "--model", str(identity_checkpoint)],
                               stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(source)})
    try:
        with open(pipe, "wb") as writer:  # waits for the reader to open it
            writer.write(data)
        _, stderr = process.communicate(timeout=120)  # it used to open the pipe again, and block for ever
    finally:
        process.kill()
    assert process.returncode == 0, stderr.decode()
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "p.png")), pixels)


def test_dash_is_stdin_and_stdout_and_stdout_holds_only_the_image(identity_checkpoint: Path, tmp_path: Path) -> None:
    pixels = _write_rgb(tmp_path / "x.png")
    shown = _cli_process("denoise", "-", "-o", "-", "--model", str(identity_checkpoint),
                         input=(tmp_path / "x.png").read_bytes())
    assert shown.returncode == 0, shown.stderr.decode()
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(shown.stdout), formats=["PNG"])), pixels)
    assert "wrote 1 of 1" in shown.stderr.decode()  # messages on stderr
    assert not (tmp_path / "-").exists() and not Path("-").exists()
    shown = _cli_process("denoise", str(tmp_path / "x.png"), "-o", "-", "--format", "jpg", "--quiet",
                         "--model", str(identity_checkpoint))
    assert shown.returncode == 0 and shown.stderr == b"", shown.stderr.decode()
    assert Image.open(io.BytesIO(shown.stdout)).format == "JPEG"


def test_stdin_and_stdout_misuse_is_one_line_before_any_work(identity_checkpoint: Path, tmp_path: Path,
                                                             inference_calls: list) -> None:
    _write_rgb(tmp_path / "a.png")
    _write_rgb(tmp_path / "b.png", 1)
    model = ["--model", str(identity_checkpoint)]
    cases = [
        (["denoise", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", "-"], "2 inputs"),
        (["denoise", "-", "-o", str(tmp_path / "out")], "-o -"),
        (["denoise", str(tmp_path / "a.png"), "-o", str(tmp_path / "c.png"), "--format", "jpg"], "-o out.jpg"),
        (["denoise", str(tmp_path / "a.png"), "-o", "-", "--format", "gif"], "--format must be one of"),
    ]
    for args, text in cases:
        result = _run(*args, *model)
        assert result.exit_code == 2, result.output
        (line,) = result.output.strip().splitlines()
        assert line.startswith("error: ") and text in line, line
    assert inference_calls == [] and sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "identity.safetensors"]


def test_fp16_on_the_cpu_is_refused_once_before_any_work(identity_checkpoint: Path, tmp_path: Path,
                                                         inference_calls: list) -> None:
    for index in range(3):
        _write_rgb(tmp_path / f"in{index}.png", index)
    out = tmp_path / "out"
    result = _run("denoise", str(tmp_path / "in*.png"), "-o", str(out), "--precision", "fp16", "--device", "cpu",
                  "--model", str(identity_checkpoint))
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: ") and "fp16" in line and "bf16" in line
    assert inference_calls == [] and not out.exists()


@pytest.mark.parametrize("tile", ["0", "-8"])
def test_a_tile_that_is_not_positive_is_refused(identity_checkpoint: Path, tmp_path: Path, tile: str,
                                                inference_calls: list) -> None:
    _write_rgb(tmp_path / "in.png")
    result = _run("denoise", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), f"--tile={tile}",
                  "--model", str(identity_checkpoint))
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: --tile") and tile in line
    assert inference_calls == [] and not (tmp_path / "out.png").exists()


def test_a_glob_through_a_symlink_loop_takes_each_file_once(identity_checkpoint: Path, tmp_path: Path) -> None:
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    _write_rgb(root / "sub" / "x.png")
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)  # in/sub/loop/sub/loop/... is in/
    out = tmp_path / "out"
    result = _run("denoise", str(root / "**" / "*.png"), "-o", str(out), "--model", str(identity_checkpoint))
    assert result.exit_code == 0, result.output
    assert [p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()] == ["sub/x.png"]
    assert "wrote 1 of 1 image(s)" in result.output


def test_an_output_where_no_file_can_be_made_is_found_before_inference(identity_checkpoint: Path, tmp_path: Path,
                                                                       inference_calls: list) -> None:
    if not Path("/proc/self").is_dir():
        pytest.skip("needs /proc")
    _write_rgb(tmp_path / "in.png")
    result = _run("denoise", str(tmp_path / "in.png"), "-o", "/proc/hfpie-out.png", "--model", str(identity_checkpoint))
    assert result.exit_code == 1
    (line,) = _errors(result)
    assert "/proc/hfpie-out.png" in line and "cannot create files in /proc" in line and "[Errno" not in line
    assert inference_calls == []


def test_a_read_only_file_system_is_called_that(identity_checkpoint: Path, tmp_path: Path, inference_calls: list,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import tempfile

    real = tempfile.TemporaryFile
    read_only = tmp_path / "mounted-read-only"
    read_only.mkdir()

    def on_a_read_only_mount(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == read_only:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))  # what the kernel answers there, root or not
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", on_a_read_only_mount)
    _write_rgb(tmp_path / "in.png")
    result = _run("denoise", str(tmp_path / "in.png"), "-o", str(read_only), "--model", str(identity_checkpoint))
    assert result.exit_code == 1
    (line,) = _errors(result)
    assert str(read_only / "in.png") in line and "read-only file system" in line and "permission" not in line
    assert inference_calls == []


def test_quality_sets_the_jpeg_and_webp_outputs(identity_checkpoint: Path, tmp_path: Path,
                                                inference_calls: list) -> None:
    from hfpie.io import encode_image, read_image

    source = tmp_path / "photo.png"
    _write_rgb(source, seed=4, size=(32, 40))
    model = ("--model", str(identity_checkpoint))
    for name, quality in (("default.jpg", ()), ("low.jpg", ("--quality", "35")), ("low.webp", ("--quality", "35"))):
        result = _run("denoise", str(source), "-o", str(tmp_path / name), *model, *quality)
        assert result.exit_code == 0, result.output
    image = read_image(source)  # the identity model: the output is the input's pixels, encoded as asked
    assert (tmp_path / "low.jpg").read_bytes() == encode_image(image, "JPEG", quality=35)
    assert (tmp_path / "low.webp").read_bytes() == encode_image(image, "WEBP", quality=35)
    assert (tmp_path / "default.jpg").read_bytes() == encode_image(image, "JPEG")
    assert (tmp_path / "low.jpg").stat().st_size < (tmp_path / "default.jpg").stat().st_size
    shown = _cli_process("denoise", str(source), "-o", "-", "--format", "jpg", "--quality", "35", *model)
    assert shown.returncode == 0 and shown.stdout == (tmp_path / "low.jpg").read_bytes(), shown.stderr.decode()

    calls = len(inference_calls)
    for bad in ("0", "101", "high"):
        result = _run("denoise", str(source), "-o", str(tmp_path / f"bad-{bad}.jpg"), *model, "--quality", bad)
        assert result.exit_code == 2 and not (tmp_path / f"bad-{bad}.jpg").exists()
    assert len(inference_calls) == calls  # refused before any work
