"""Smoke test of benchmarks/run.py: classical methods and a tiny hfpie checkpoint on generated images.

No ../shared data and no peers: the data sets are made here, the peers folder does not exist.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_network, save_checkpoint

pytest.importorskip("scipy")  # protocol_blur

ROOT = Path(__file__).resolve().parents[1]


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("hfpie_benchmark_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _image(seed: int, height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    smooth = np.stack([128 + 90 * np.sin(x / (5 + seed)), 128 + 90 * np.cos(y / 7), 64 + (x + y) * 1.5], -1)
    texture = np.random.default_rng(seed).normal(0, 8, (height, width, 3))
    return np.clip(smooth + texture, 0, 255).astype(np.uint8)


def _table(report: str) -> dict[tuple[str, str], list[str]]:
    rows = {}
    for line in report.splitlines():
        if line.startswith("| ") and not line.startswith("| task"):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            rows[(cells[0], cells[3])] = cells
    return rows


def test_quick_benchmark_without_peers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hfpie.hub

    monkeypatch.setattr(hfpie.hub, "load_manifest", dict)  # no installed pretrained model, whatever ships
    data = tmp_path / "val"
    for folder, size in (("cbsd68", (40, 48)), ("set5", (48, 40))):
        (data / folder).mkdir(parents=True)
        for index in range(3):
            Image.fromarray(_image(index, *size)).save(data / folder / f"img{index}.png")
    (tmp_path / "denoise").mkdir()
    checkpoint = save_checkpoint(make_network(1), tmp_path / "denoise" / "tiny.safetensors")
    output = tmp_path / "docs" / "benchmarks.md"

    benchmark = _load_benchmark()
    code = benchmark.main([
        "--quick", "--threads", "1", "--data-root", str(data), "--peers-dir", str(tmp_path / "no-peers"),
        "--sets", "cbsd68-denoise25", "set5-sr4", "cbsd68-deblur",
        "--hfpie-model", f"denoise={checkpoint}", "--output", str(output), "--json", str(tmp_path / "r.json"),
    ])
    assert code == 0
    report = output.read_text()
    rows = _table(report)

    assert "Partial run: only the first 2 image(s)" in report
    assert "Learned peers: not found" in report
    expected = {
        ("denoise σ=25", "noisy input"), ("denoise σ=25", "hfpie denoise/tiny"),
        ("denoise σ=25", "NLM OpenCV, h=0.6σ (true σ)"), ("denoise σ=25", "TV Chambolle (scikit-image, weight 0.08)"),
        ("SR x4", "bicubic (PIL)"), ("SR x4", "Lanczos (PIL)"),
        ("deblur (Gaussian 21×21 + σ=2)", "blurry input"),
        ("deblur (Gaussian 21×21 + σ=2)", "Wiener (scikit-image, true kernel)"),
        ("deblur (Gaussian 21×21 + σ=2)", "Richardson-Lucy (scikit-image, true kernel, 30 it.)"),
    }
    assert expected <= set(rows), sorted(rows)
    for key in expected:
        psnr, ssim = float(rows[key][4]), float(rows[key][5])
        assert 5.0 < psnr < 80.0 and 0.0 < ssim <= 1.0, rows[key]
        if "input" not in key[1]:
            assert float(rows[key][6]) > 0.0 and float(rows[key][7]) > 10.0  # s/MP, peak RSS (MB)
    wavelet = rows[("denoise σ=25", "wavelet BayesShrink, scikit-image (true σ)")]
    assert wavelet[4] or wavelet[-1].startswith("skipped: cannot import pywt")  # needs PyWavelets
    # The learned peers' rows are absent (no peers folder) and no method is scored twice.
    assert not any("FFDNet" in method or "IMDN" in method for _, method in rows)

    # hfpie: the missing pretrained models say so, never a number; the local checkpoint is the reference.
    for task in ("SR x4", "denoise σ=25", "deblur (Gaussian 21×21 + σ=2)"):
        missing = rows[(task, "hfpie (default)")]
        assert missing[4] == "" and missing[-1] == "no pretrained model"
    assert rows[("denoise σ=25", "hfpie denoise/tiny")][8] == "1 (ref.)"
    nlm = rows[("denoise σ=25", "NLM OpenCV, h=0.6σ (true σ)")]
    assert nlm[8].endswith("×") and nlm[9].startswith(("+", "-"))

    results = json.loads((tmp_path / "r.json").read_text())
    assert {r["kind"] for r in results} >= {"hfpie", "classical", "input"}
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "docs" / "benchmark.png").stat().st_size > 0
        assert "](benchmark.png)" in report


def test_synthetic_sets_stand_in_for_missing_data(tmp_path: Path) -> None:
    benchmark = _load_benchmark()
    root = benchmark.make_synthetic_sets(tmp_path / "synthetic")
    for folder in ("cbsd68", "set5", "set14"):
        images = sorted((root / folder).glob("*.png"))
        assert len(images) == benchmark.SYNTHETIC_IMAGES
        pixels = np.asarray(Image.open(images[0]))
        assert pixels.shape == (192, 256, 3) and pixels.std() > 20  # a scene, not a flat image
    first = np.asarray(Image.open(root / "set5" / "synthetic00.png"))
    again = np.asarray(Image.open(benchmark.make_synthetic_sets(tmp_path / "again") / "set5" / "synthetic00.png"))
    assert np.array_equal(first, again)  # deterministic
