"""Batches on Ray Data (hfpie.ray), on one local Ray instance (2 CPUs, no network) for the whole module:
the same bytes as the local command line, every input in the manifest, failures kept to their file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms
from typer.testing import CliRunner

from conftest import make_network, save_checkpoint
from hfpie.cli import app

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from hfpie.ray import MANIFEST_NAME, Enhancer, plan_files  # noqa: E402
from hfpie.worker import FileWorker  # noqa: E402

runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the faulty worker below, for the actors
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight small inputs: 8-bit, 16-bit, RGBA, grey, ICC, an EXIF-rotated JPEG, a corrupt file, one nested."""
    root = tmp_path_factory.mktemp("ray") / "in"
    (root / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(root / "rgb.png")
    cv2.imwrite(str(root / "deep.png"), rng.integers(0, 65535, (18, 22, 3), dtype=np.uint16))
    Image.fromarray(rng.integers(0, 255, (16, 20, 4), dtype=np.uint8)).save(root / "rgba.png")
    Image.fromarray(rng.integers(0, 255, (17, 19), dtype=np.uint8)).save(root / "grey.png")
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / "icc.png", icc_profile=icc)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: read upright, written upright with the orientation reset
    Image.fromarray(rng.integers(0, 255, (16, 24, 3), dtype=np.uint8)).save(root / "photo.jpg", exif=exif, quality=90)
    (root / "broken.png").write_bytes((root / "rgb.png").read_bytes()[:60])
    Image.fromarray(rng.integers(0, 255, (15, 21, 3), dtype=np.uint8)).save(root / "sub" / "nested.tif")
    return root


@pytest.fixture(scope="module")
def checkpoint(folder: Path) -> Path:
    return save_checkpoint(make_network(2, seed=3), folder.parent / "sr2.safetensors")


def _files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*"))
            if path.is_file() and path.name != MANIFEST_NAME}


def _manifest(root: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (root / MANIFEST_NAME).read_text().splitlines()]
    return {Path(row["source"]).name: row for row in rows}


def test_ray_batches_equal_the_local_cli_and_every_input_is_in_the_manifest(folder: Path, checkpoint: Path) -> None:
    base = folder.parent
    common = ["sr", str(folder), "--recursive", "--scale", "2", "-m", str(checkpoint)]
    local = runner.invoke(app, [*common, "-o", str(base / "local")])
    assert local.exit_code == 1, local.output  # the corrupt file
    result = runner.invoke(app, [*common, "-o", str(base / "out"), "--ray", "--workers", "2"])
    assert result.exit_code == 1, result.output
    written = _files(base / "out")
    assert written == _files(base / "local") and len(written) == 7  # byte for byte; nothing for broken.png
    rows = _manifest(base / "out")
    assert len(rows) == 8
    assert rows["broken.png"]["status"] == "failed" and "truncated" in rows["broken.png"]["error"]
    assert f"error: {folder / 'broken.png'} -> {base / 'out' / 'broken.png'}:" in result.output
    assert {row["status"] for name, row in rows.items() if name != "broken.png"} == {"written"}
    assert rows["nested.tif"]["output"] == str(base / "out" / "sub" / "nested.tif")
    assert rows["rgb.png"]["megapixels"] == pytest.approx(20 * 24 / 1e6) and rows["rgb.png"]["seconds"] > 0
    assert "wrote 7 of 8 image(s), 1 failed; manifest:" in result.output

    times = {path: path.stat().st_mtime_ns for path in (base / "out").rglob("*.*") if path.name != MANIFEST_NAME}
    again = runner.invoke(app, [*common, "-o", str(base / "out"), "--ray", "--skip-existing", "--quiet"])
    assert again.exit_code == 1  # broken.png is tried again, and fails again
    rows = _manifest(base / "out")
    assert sorted(row["status"] for row in rows.values()) == ["failed"] + ["skipped"] * 7
    assert {path: path.stat().st_mtime_ns for path in times} == times

    refused = runner.invoke(app, [*common, "-o", str(base / "out"), "--ray", "--quiet"])
    assert refused.exit_code == 1
    rows = _manifest(base / "out")
    assert all("already exists; pass --overwrite" in rows[name]["error"] for name in rows if name != "broken.png")
    assert {path: path.stat().st_mtime_ns for path in times} == times and _files(base / "out") == written


def _failing_on_grey(fail) -> type[Enhancer]:
    """An Enhancer that calls ``fail()`` instead of enhancing any file whose name holds "grey"."""

    class FailingOnGrey(Enhancer):
        def __init__(self, **options) -> None:
            super().__init__(**options)
            enhance = self.worker.enhance

            def failing(data, name, output_name=None):
                if "grey" in name:
                    fail()
                return enhance(data, name, output_name)

            self.worker.enhance = failing

    return FailingOnGrey


def _raise_a_bug() -> None:
    raise ZeroDivisionError("a bug, on purpose")


Faulty = _failing_on_grey(_raise_a_bug)
"""An Enhancer whose work raises an unexpected error on one file of a batch."""


def test_a_worker_that_raises_inside_a_batch_loses_no_other_file(folder: Path, checkpoint: Path) -> None:
    names = ["rgb.png", "grey.png", "rgba.png", "deep.png"]
    dataset = ray.data.read_binary_files([str(folder / name) for name in names], include_paths=True)
    rows = dataset.map_batches(Faulty, fn_constructor_kwargs={"task": "sr", "model": str(checkpoint)},
                               batch_size=4, concurrency=1).take_all()
    by_name = {Path(row["path" if "path" in row else "source"]).name: row for row in rows}
    assert sorted(by_name) == sorted(names)
    assert by_name["grey.png"]["status"] == "failed" and by_name["grey.png"]["error"] == "ZeroDivisionError: a bug, on purpose"
    assert by_name["grey.png"]["output"] is None
    local = FileWorker("sr", model=str(checkpoint), device="cpu")  # the bytes the command line writes
    for name in ("rgb.png", "rgba.png", "deep.png"):
        assert by_name[name]["status"] == "written"
        assert by_name[name]["output"] == local.enhance((folder / name).read_bytes(), name, name)[0]


Dying = _failing_on_grey(lambda: os._exit(1))
"""An Enhancer whose process dies (as if killed for memory) on one file."""


def test_an_input_whose_worker_dies_is_in_the_manifest_and_the_others_are_written(
        folder: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hfpie.ray

    names = ["rgb.png", "grey.png", "rgba.png"]
    (tmp_path / "in").mkdir()
    for name in names:
        (tmp_path / "in" / name).write_bytes((folder / name).read_bytes())
    monkeypatch.setattr(hfpie.ray, "Enhancer", Dying)
    rows = hfpie.ray.enhance_files([str(tmp_path / "in")], tmp_path / "out", "sr", model=str(checkpoint),
                                   workers=1, progress=False)
    by_name = {Path(row["source"]).name: row for row in rows}
    assert sorted(by_name) == sorted(names)
    assert by_name["grey.png"]["status"] == "failed" and "worker died" in by_name["grey.png"]["error"]
    assert by_name["rgb.png"]["status"] == by_name["rgba.png"]["status"] == "written"
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == sorted([MANIFEST_NAME, "rgb.png", "rgba.png"])


def test_uris_plan_like_local_paths_and_collisions_are_refused(folder: Path, tmp_path: Path) -> None:
    local = plan_files([str(folder)], tmp_path / "out", recursive=True)
    uri = plan_files([f"file://{folder}"], f"file://{tmp_path}/out", recursive=True)
    assert sorted((str(job.source), str(job.target)) for job in local) == \
        sorted((str(job.source)[len("file://"):], str(job.target)[len("file://"):]) for job in uri)
    assert len(local) == 8
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "a.gif").write_bytes(b"")
    from hfpie.errors import HfpieError

    with pytest.raises(HfpieError, match="would both be written to"):
        plan_files([f"file://{tmp_path}"], f"file://{tmp_path}/o")
    result = runner.invoke(app, ["denoise", str(tmp_path), "-o", str(tmp_path / "o"), "--ray"])
    assert result.exit_code == 2 and "would both be written to" in result.output and not (tmp_path / "o").exists()


def test_file_worker_reads_and_writes_uris(folder: Path, checkpoint: Path, tmp_path: Path) -> None:
    worker = FileWorker("sr", model=str(checkpoint), device="cpu")
    row = worker(f"file://{folder}/rgba.png", f"file://{tmp_path}/o/rgba.png")
    assert row["status"] == "written", row
    assert (tmp_path / "o" / "rgba.png").read_bytes() == worker.enhance((folder / "rgba.png").read_bytes(), "x.png")[0]
    again = worker(f"file://{folder}/rgba.png", f"file://{tmp_path}/o/rgba.png")
    assert again["status"] == "failed" and "already exists" in again["error"]
    missing = worker(f"file://{folder}/nope.png", str(tmp_path / "nope.png"))
    assert missing["status"] == "failed" and "no such file" in missing["error"]


def test_a_file_worker_with_skip_existing_skips_an_output_written_meanwhile(folder: Path, checkpoint: Path,
                                                                            tmp_path: Path) -> None:
    worker = FileWorker("sr", model=str(checkpoint), device="cpu", skip_existing=True)
    target = tmp_path / "o" / "rgba.png"
    real = worker.enhance

    def the_other_run_finishes_first(*args, **kwargs):
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(b"the other run's result")
        return real(*args, **kwargs)

    worker.enhance = the_other_run_finishes_first  # type: ignore[method-assign]
    row = worker(str(folder / "rgba.png"), str(target))
    assert row["status"] == "skipped" and row["error"] is None, row
    assert target.read_bytes() == b"the other run's result"
    with pytest.raises(ValueError, match="contradict"):
        FileWorker("sr", model=str(checkpoint), device="cpu", skip_existing=True, overwrite=True)


def test_import_hfpie_imports_no_ray() -> None:
    code = "import sys, hfpie, hfpie.ray, hfpie.cli, hfpie.worker; sys.exit('ray' in sys.modules or 'pyarrow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_a_file_worker_writes_jpegs_at_the_quality_asked(checkpoint: Path, tmp_path: Path) -> None:
    source = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(source)
    default = FileWorker("sr", model=str(checkpoint), device="cpu")
    low = FileWorker("sr", model=str(checkpoint), device="cpu", quality=30)
    assert low(str(source), str(tmp_path / "low.jpg"))["status"] == "written"
    assert default(str(source), str(tmp_path / "default.jpg"))["status"] == "written"
    assert (tmp_path / "low.jpg").stat().st_size < (tmp_path / "default.jpg").stat().st_size
    assert low.enhance(source.read_bytes(), str(source), "x.jpg")[0] == (tmp_path / "low.jpg").read_bytes()
    with pytest.raises(ValueError, match="quality must be an integer"):
        FileWorker("sr", model=str(checkpoint), device="cpu", quality=0)
