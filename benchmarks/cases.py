"""The benchmark cases (task x data set x degradation) and their inputs.

``Case`` and ``CASES``: the rows of the benchmark, one per task, data set and degradation parameter.
``prepare_case`` writes the degraded 8-bit inputs of a case once (with the true blur kernels and
noise levels) and keeps the clean references to score against (``Prepared``).
``make_synthetic_sets`` stands in generated scenes for machines without the validation images.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Case:
    id: str
    task: str  # denoise | deblur | sr | denoise-real (ImageFolderPairs tasks)
    dataset: str  # folder under the data root
    sigma: int | None = None
    scale: int | None = None

    @property
    def hfpie_key(self) -> str:
        return f"sr{self.scale}" if self.task == "sr" else self.task

    @property
    def task_label(self) -> str:
        if self.task == "denoise":
            return f"denoise σ={self.sigma}"
        if self.task == "sr":
            return f"SR x{self.scale}"
        return {"deblur": "deblur (Gaussian 21×21 + σ=2)", "denoise-real": "real noise"}[self.task]

    @property
    def metric(self) -> str:
        return f"Y, border {self.scale}" if self.task == "sr" else "RGB"

    @property
    def border(self) -> int:
        return self.scale if self.task == "sr" and self.scale else 0


CASES: tuple[Case, ...] = (
    Case("cbsd68-denoise15", "denoise", "cbsd68", sigma=15),
    Case("cbsd68-denoise25", "denoise", "cbsd68", sigma=25),
    Case("cbsd68-denoise50", "denoise", "cbsd68", sigma=50),
    Case("set5-sr2", "sr", "set5", scale=2),
    Case("set5-sr4", "sr", "set5", scale=4),
    Case("set14-sr2", "sr", "set14", scale=2),
    Case("set14-sr4", "sr", "set14", scale=4),
    Case("cbsd68-deblur", "deblur", "cbsd68"),
    Case("polyu-real", "denoise-real", "polyu_real_noise"),
)
HFPIE_KEYS = ("denoise", "deblur", "sr2", "sr4", "denoise-real")


@dataclass
class Prepared:
    """The degraded inputs of one case, written once, and the references to score against."""

    case: Case
    root: Path
    inputs: Path
    names: list[str]
    clean: dict[str, np.ndarray]
    degraded: dict[str, np.ndarray]
    kernels: Path | None = None
    sigma_file: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def output_megapixels(self) -> float:
        return sum(image.shape[0] * image.shape[1] for image in self.clean.values()) / 1e6


def _safe_stem(name: str) -> str:
    return name.replace("/", "__").replace("\\", "__")


SYNTHETIC_IMAGES = 4


def make_synthetic_sets(root: Path, count: int = SYNTHETIC_IMAGES) -> Path:
    """Folders cbsd68/, set5/, set14/ of generated photo-like scenes, for machines without the data.

    Each scene mixes smooth gradients, sharp-edged shapes, fine stripes and a band-limited random
    texture (deterministic per index), 256x192 pixels; polyu_real_noise is not made (its noise is real).
    """
    from PIL import ImageDraw

    for folder in ("cbsd68", "set5", "set14"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for index in range(count):
        rng = np.random.default_rng(1000 + index)
        height, width = 192, 256
        y, x = np.mgrid[0:height, 0:width] / max(height, width)
        base = np.stack([0.3 + 0.5 * x, 0.25 + 0.5 * y, 0.7 - 0.4 * x * y], axis=-1)
        texture = rng.standard_normal((height // 8, width // 8, 3))
        texture = np.asarray(Image.fromarray(((texture * 0.5 + 0.5).clip(0, 1) * 255).astype(np.uint8))
                             .resize((width, height), Image.BICUBIC), dtype=np.float64) / 255 - 0.5
        image = Image.fromarray(((base + 0.25 * texture).clip(0, 1) * 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            left, top = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
            size = int(rng.integers(15, 60))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape((left, top, left + size, top + size), fill=colour, outline=(10, 10, 10), width=2)
        for stripe in range(10):
            left = 10 + stripe * (4 + stripe // 3)
            draw.rectangle((left, height - 60, left + 1 + stripe // 4, height - 10), fill=(20, 20, 20))
        for folder in ("cbsd68", "set5", "set14"):
            image.save(root / folder / f"synthetic{index:02d}.png")
    return root


def prepare_case(case: Case, data_root: Path, max_images: int, workdir: Path) -> Prepared:
    from hfpie.training.datasets import ImageFolderPairs
    from hfpie.training.degradations import protocol_blur

    pairs = ImageFolderPairs(data_root / case.dataset, case.task, sigma=case.sigma, scale=case.scale, cache=False)
    count = len(pairs) if not max_images else min(max_images, len(pairs))
    root = workdir / case.id
    inputs = root / "inputs"
    inputs.mkdir(parents=True)
    prepared = Prepared(case, root, inputs, [], {}, {})
    if case.task == "deblur":
        prepared.kernels = root / "kernels"
        prepared.kernels.mkdir()
    sigmas: dict[str, float] = {}
    for index in range(count):
        name, degraded, clean = pairs[index]
        stem = _safe_stem(name)
        Image.fromarray(degraded).save(inputs / f"{stem}.png")
        prepared.names.append(stem)
        prepared.clean[stem] = clean
        prepared.degraded[stem] = degraded
        if case.task == "deblur":
            same, kernel = protocol_blur(clean, index)
            if not np.array_equal(same, degraded):  # pragma: no cover - guards the protocol
                raise RuntimeError(f"protocol_blur is not deterministic for {name}")
            np.save(prepared.kernels / f"{stem}.npy", kernel)
            sigmas[stem] = 2.0
        elif case.task == "denoise":
            sigmas[stem] = float(case.sigma)
        elif case.task == "denoise-real":
            try:
                from skimage.restoration import estimate_sigma
            except ImportError:
                if not prepared.notes:
                    prepared.notes.append("scikit-image is missing: no estimated σ, non-blind denoisers skipped")
                continue
            sigmas[stem] = float(estimate_sigma(degraded / 255.0, average_sigmas=True, channel_axis=-1) * 255.0)
    if sigmas and len(sigmas) == count:
        prepared.sigma_file = root / "sigma.json"
        prepared.sigma_file.write_text(json.dumps(sigmas, indent=1))
    return prepared
