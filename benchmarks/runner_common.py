"""Folder-mode input/output shared by ``hfpie_runner.py`` and ``classical_runner.py``.

Both runners follow the calling convention of the peer runners (``../shared/peers/README.md``):
``run.py INPUT_FOLDER OUTPUT_FOLDER [options] --timings T.json``; every image of INPUT (sorted by
file name) is processed once, its output keeps the input's stem and is written as an 8-bit PNG, and
the timings file is ``{"runner", "images": [{"file", "seconds", "height", "width"}], "total_seconds"}``
with the seconds of the restoration call only (reading, writing, imports, model loading and a
warm-up are not timed). ``--sigma`` is a number or a JSON file ``{stem: sigma}``; ``--psf`` is a
``.npy`` kernel or a folder of ``<stem>.npy`` kernels.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def io_pairs(input_folder: str, output_folder: str) -> list[tuple[Path, Path]]:
    source = Path(input_folder)
    if not source.is_dir():
        raise SystemExit(f"{source} is not a folder (these runners work in folder mode only)")
    names = sorted(p.name for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not names:
        raise SystemExit(f"no images in {source}")
    target = Path(output_folder)
    target.mkdir(parents=True, exist_ok=True)
    return [(source / name, target / (Path(name).stem + ".png")) for name in names]


def read_u8(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def write_u8(path: Path, pixels: np.ndarray) -> None:
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(path)


def to_u8(unit: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(unit, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def parse_sigma(spec: str | None) -> float | dict[str, float] | None:
    if spec is None:
        return None
    try:
        return float(spec)
    except ValueError:
        pass
    with open(spec) as handle:
        return {key: float(value) for key, value in json.load(handle).items()}


def sigma_for(sigma: float | dict[str, float] | None, source: Path) -> float | None:
    if sigma is None or isinstance(sigma, float):
        return sigma
    for key in (source.name, source.stem):
        if key in sigma:
            return sigma[key]
    raise SystemExit(f"the sigma file has no entry for {source.name}")


def psf_for(spec: str | None, source: Path) -> np.ndarray:
    if spec is None:
        raise SystemExit("--psf is required for this method")
    path = Path(spec)
    if path.is_dir():
        path = path / f"{source.stem}.npy"
    kernel = np.load(path).astype(np.float64)
    return kernel / kernel.sum()


class Timings:
    def __init__(self, runner: str, path: str | None) -> None:
        self.runner, self.path, self.rows = runner, path, []

    def add(self, source: Path, seconds: float, shape: tuple[int, ...]) -> None:
        self.rows.append({"file": source.name, "seconds": round(seconds, 6), "height": int(shape[0]),
                          "width": int(shape[1])})
        print(f"{self.runner} [{source.name}]: {seconds:.3f} s", flush=True)

    def finish(self) -> None:
        total = sum(row["seconds"] for row in self.rows)
        print(f"{self.runner}: {total:.2f} s in total for {len(self.rows)} images", flush=True)
        if self.path:
            if os.path.dirname(self.path):
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with open(self.path, "w") as handle:
                json.dump({"runner": self.runner, "images": self.rows, "total_seconds": round(total, 6)}, handle, indent=1)
