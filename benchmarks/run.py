#!/usr/bin/env python3
"""hfpie against peer methods: same images, same degradations, same scores, speed and memory.

    python benchmarks/run.py                                   # every set, every method found
    python benchmarks/run.py --output docs/benchmarks.md       # also write the table (and docs/benchmark.png)
    python benchmarks/run.py --sets 'cbsd68-denoise*' --max-images 10
    python benchmarks/run.py --hfpie-model denoise=/work/runs/denoise/best.safetensors --hfpie-model sr4=...
    python benchmarks/run.py --quick                           # 2 images per set, a few cheap methods

Protocol (``../shared/peers/README.md``, implemented by :mod:`hfpie.training.degradations` and
:class:`hfpie.training.datasets.ImageFolderPairs`): the degraded 8-bit inputs of every set are written
once to a temporary folder (with the true blur kernels and noise levels as ``.npy`` / JSON files) and
every method reads the same files. Every method runs as its own process in folder mode (model loaded
once), in turn, with torch's default threads; it reports the seconds of each restoration call
(``--timings``), and its peak memory is the high-water mark of its resident set (``ru_maxrss`` of
that process from ``os.wait4``, in a small launcher process so that the benchmark's own memory is not
inherited). Outputs are scored here with :mod:`hfpie.training.metrics`: PSNR/SSIM
on RGB for denoising and deblurring, on Y with ``crop_border = scale`` for super-resolution.

Methods:
  * hfpie: per task the installed default model (``hfpie.hub.find_entry``) -- a row saying "no
    pretrained model" when there is none -- plus every ``--hfpie-model KEY=PATH`` (KEY: denoise,
    deblur, sr2, sr4, denoise-real; repeatable). The first hfpie row with numbers is the reference of
    the "time / hfpie" and "dPSNR" columns of its task and set.
  * classical (always; ``benchmarks/classical_runner.py``, the parameters of ``peers/classical``):
    bicubic and Lanczos (PIL); OpenCV NLM (h = 0.6 sigma); scikit-image NLM, wavelet (BayesShrink),
    TV (Chambolle); scikit-image Wiener and Richardson-Lucy with the true kernel; BM3D if ``bm3d``
    imports. Rows whose package is missing say so.
  * learned peers (when ``--peers-dir`` exists): their own ``run.py`` in folder mode, with
    ``PEERS/.venv/bin/python`` if present, else ``--peers-python``, else this Python. A runner whose
    imports fail, or that fails, gets a row with the error instead of numbers.

``--methods`` selects classical and peer methods by id (glob patterns; ``--list-methods`` shows them);
the hfpie rows and the degraded-input rows are always there.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import fnmatch
import importlib.util
import json
import math
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_DATA_ROOT = REPO.parent / "shared" / "data" / "val"
DEFAULT_PEERS_DIR = REPO.parent / "shared" / "peers"
QUICK_IMAGES = 2


# --------------------------------------------------------------------------------------------------
# Benchmark cases: task x data set x degradation parameter
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    id: str
    label: str
    kind: str  # classical | peer
    applies: Callable[[Case], bool]
    args: Callable[[Prepared], list[str]]
    script: str  # classical: the method name of classical_runner.py; peer: path under the peers dir
    needs: tuple[str, ...] = ("numpy", "PIL")
    quick: bool = False
    label_for: Callable[[Case], str] | None = None

    def label_of(self, case: Case) -> str:
        return self.label_for(case) if self.label_for else self.label


def _is(task: str, scales: Sequence[int] = ()) -> Callable[[Case], bool]:
    return lambda case: case.task == task and (not scales or case.scale in scales)


def _denoising(case: Case) -> bool:
    return case.task in ("denoise", "denoise-real")


def _sigma_args(prepared: Prepared) -> list[str]:
    if prepared.case.task == "denoise":
        return ["--sigma", str(prepared.case.sigma)]
    if prepared.sigma_file is None:
        raise MethodSkipped("needs the estimated noise levels (scikit-image estimate_sigma)")
    return ["--sigma", str(prepared.sigma_file)]


def _scale_args(prepared: Prepared) -> list[str]:
    return ["--scale", str(prepared.case.scale)]


def _deblur_args(prepared: Prepared) -> list[str]:
    return ["--psf", str(prepared.kernels), "--sigma", "2", "--boundary", "symmetric"]


def _sigma_label(base: str) -> Callable[[Case], str]:
    return lambda case: f"{base} ({'estimated' if case.task == 'denoise-real' else 'true'} σ)"


SKIMAGE = ("numpy", "PIL", "skimage")
CLASSICAL: tuple[Method, ...] = (
    Method("bicubic", "bicubic (PIL)", "classical", _is("sr"), _scale_args, "bicubic_pil", quick=True),
    Method("lanczos", "Lanczos (PIL)", "classical", _is("sr"), _scale_args, "lanczos_pil", quick=True),
    Method("nlm-opencv", "NLM OpenCV", "classical", _denoising, _sigma_args, "nlm_opencv", ("numpy", "PIL", "cv2"),
           quick=True, label_for=_sigma_label("NLM OpenCV, h=0.6σ")),
    Method("nlm-skimage", "NLM scikit-image", "classical", _denoising, _sigma_args, "nlm_skimage", SKIMAGE,
           label_for=_sigma_label("NLM scikit-image")),
    Method("wavelet", "wavelet BayesShrink", "classical", _is("denoise"), _sigma_args, "wavelet",
           SKIMAGE + ("pywt",), quick=True, label_for=_sigma_label("wavelet BayesShrink, scikit-image")),
    Method("tv", "TV Chambolle (scikit-image, weight 0.08)", "classical", _is("denoise"), lambda p: [],
           "tv_chambolle", SKIMAGE, quick=True),
    Method("bm3d", "BM3D", "classical", _is("denoise"), _sigma_args, "bm3d", ("numpy", "PIL", "bm3d"),
           label_for=_sigma_label("BM3D")),
    Method("wiener", "Wiener (scikit-image, true kernel)", "classical", _is("deblur"), _deblur_args, "wiener",
           SKIMAGE, quick=True),
    Method("richardson-lucy", "Richardson-Lucy (scikit-image, true kernel, 30 it.)", "classical", _is("deblur"),
           _deblur_args, "richardson_lucy", SKIMAGE, quick=True),
)
TORCH_MAT = ("numpy", "PIL", "torch", "h5py")
TORCH = ("numpy", "PIL", "torch")
PEERS: tuple[Method, ...] = (
    Method("cdncnn-b", "CDnCNN-B (blind)", "peer", _is("denoise"), lambda p: ["--model", "cdncnn-b"],
           "dncnn/run.py", TORCH_MAT, quick=True),
    Method("ffdnet-clip", "FFDNet-Clip", "peer", _denoising, lambda p: ["--clip", *_sigma_args(p)],
           "ffdnet/run.py", TORCH_MAT, quick=True, label_for=_sigma_label("FFDNet-Clip")),
    Method("imdn", "IMDN", "peer", _is("sr", (2, 3, 4)), _scale_args, "imdn/run.py", TORCH, quick=True),
    Method("rfdn", "RFDN", "peer", _is("sr", (4,)), lambda p: [], "rfdn/run.py", TORCH, quick=True),
    Method("carn-m", "CARN-M", "peer", _is("sr", (2, 3, 4)), _scale_args, "carn_m/run.py", TORCH),
    Method("lesrcnn", "LESRCNN", "peer", _is("sr", (2, 3, 4)), _scale_args, "lesrcnn/run.py", TORCH),
    Method("espcn", "ESPCN (OpenCV dnn)", "peer", _is("sr", (2, 3, 4)), lambda p: ["--model", "espcn", *_scale_args(p)],
           "opencv_dnn_superres/run.py", ("numpy", "PIL", "cv2.dnn_superres")),
    Method("fsrcnn", "FSRCNN (OpenCV dnn)", "peer", _is("sr", (2, 3, 4)),
           lambda p: ["--model", "fsrcnn", *_scale_args(p)], "opencv_dnn_superres/run.py",
           ("numpy", "PIL", "cv2.dnn_superres")),
    Method("dmphn", "DMPHN (blind, GoPro-trained)", "peer", _is("deblur"), lambda p: [], "dmphn/run.py", TORCH),
    Method("pnp-ffdnet", "PnP-FFDNet (true kernel)", "peer", _is("deblur"), _deblur_args,
           "pnp_ffdnet_deblur/run.py", ("numpy", "PIL", "torch", "h5py", "scipy")),
)


class MethodSkipped(Exception):
    """A method that cannot run on a case here (missing input or package); the message is the note."""


# --------------------------------------------------------------------------------------------------
# Running one method: a child process, its timings, its peak memory
# --------------------------------------------------------------------------------------------------


@dataclass
class Result:
    case: str
    task: str
    dataset: str
    metric: str
    method: str
    kind: str  # hfpie | classical | peer | input
    psnr: float | None = None
    ssim: float | None = None
    seconds_per_megapixel: float | None = None
    peak_rss_mb: float | None = None
    images: int = 0
    note: str = ""
    time_ratio: float | None = None
    psnr_delta: float | None = None
    reference: bool = False
    command: str = ""


# The benchmark process itself holds torch and the test images. A child forked from it starts with
# its resident set, which Linux counts in the child's ru_maxrss; so every method is started by this
# small launcher (about 14 MB), which reports the ru_maxrss of its own child: the method's process.
_LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
child.returncode = code = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], 'w') as handle:
    handle.write(str(usage.ru_maxrss))
sys.exit(code if code >= 0 else 128 - code)
"""


def run_child(command: list[str], log: Path, timeout: float, env: dict[str, str]) -> tuple[int, float | None]:
    """Run ``command``; its exit code (-9: timed out) and peak resident memory in MB (None if unknown)."""
    rss_file = log.with_suffix(".maxrss")
    with open(log, "wb") as output:
        process = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(rss_file), *command], stdout=output,
                                   stderr=subprocess.STDOUT, env=env, cwd=str(REPO), start_new_session=True)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the launcher's own process group: it and the method
            process.wait()
            code = -9
    try:
        peak = int(rss_file.read_text()) / 1024.0  # Linux reports kilobytes
    except (OSError, ValueError):
        peak = None
    return code, peak


def _tail(log: Path, lines: int = 2) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " / ".join(line.strip() for line in text[-lines:])[-240:]


def score(prepared: Prepared, outputs: dict[str, np.ndarray]) -> tuple[float, float]:
    from hfpie.training.metrics import psnr, ssim

    case = prepared.case
    y_channel = case.task == "sr"
    values = []
    for name in prepared.names:
        output, clean = outputs[name], prepared.clean[name]
        if output.shape != clean.shape:
            raise ValueError(f"{name}: output shape {output.shape}, reference {clean.shape}")
        values.append((psnr(output, clean, crop_border=case.border, y_channel=y_channel),
                       ssim(output, clean, crop_border=case.border, y_channel=y_channel)))
    return float(np.mean([v[0] for v in values])), float(np.mean([v[1] for v in values]))


def run_method(prepared: Prepared, label: str, kind: str, command: list[str], out: Path, timings: Path,
               timeout: float, env: dict[str, str]) -> Result:
    case = prepared.case
    result = Result(case.id, case.task_label, case.dataset, case.metric, label, kind,
                    command=" ".join(shlex.quote(part) for part in command))
    log = out.with_suffix(".log")
    print(f"[{case.id}] {label}: {result.command}", file=sys.stderr, flush=True)
    code, peak = run_child(command, log, timeout, env)
    if code != 0:
        what = f"timed out after {timeout:.0f} s" if code == -9 else f"failed (exit {code})"
        result.note = f"{what}: {_tail(log)}"
        print(f"  {result.note}", file=sys.stderr, flush=True)
        return result
    try:
        report = json.loads(timings.read_text())
        seconds = {Path(row["file"]).stem: float(row["seconds"]) for row in report["images"]}
        outputs = {}
        for name in prepared.names:
            with Image.open(out / f"{name}.png") as image:
                outputs[name] = np.asarray(image.convert("RGB"))
        missing = [name for name in prepared.names if name not in seconds]
        if missing:
            raise ValueError(f"no timing for {', '.join(missing[:3])}")
        result.psnr, result.ssim = score(prepared, outputs)
    except (OSError, ValueError, KeyError) as error:
        result.note = f"bad output: {error}"
        print(f"  {result.note}", file=sys.stderr, flush=True)
        return result
    result.images = len(prepared.names)
    result.peak_rss_mb = peak
    result.seconds_per_megapixel = sum(seconds[n] for n in prepared.names) / prepared.output_megapixels
    print(f"  PSNR {result.psnr:.2f} SSIM {result.ssim:.4f} {result.seconds_per_megapixel:.3g} s/MP "
          f"{_number(peak, 0)} MB", file=sys.stderr, flush=True)
    return result


def input_result(prepared: Prepared) -> Result:
    case = prepared.case
    result = Result(case.id, case.task_label, case.dataset, case.metric,
                    "blurry input" if case.task == "deblur" else "noisy input", "input")
    result.psnr, result.ssim = score(prepared, prepared.degraded)
    result.images = len(prepared.names)
    return result


# --------------------------------------------------------------------------------------------------
# hfpie models
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HfpieModel:
    label: str
    spec: str | None  # model name or path; None: no pretrained model
    note: str = ""
    precision: str = "fp32"


def _model_label(spec: str) -> str:
    path = Path(spec)
    if path.suffix == ".safetensors" or path.exists():
        return f"{path.parent.name}/{path.stem}" if path.parent.name else path.stem
    return spec


def hfpie_models(case: Case, user_models: dict[str, list[str]],
                 precisions: Sequence[str] = ("fp32",)) -> list[HfpieModel]:
    """The default model of the case's task (or a 'no pretrained model' row) and the user's models,
    one row per precision (labelled with it when there are several)."""
    rows = _hfpie_models(case, user_models)
    if len(precisions) == 1:
        return [dataclasses.replace(row, precision=precisions[0]) for row in rows]
    return [dataclasses.replace(row, label=f"{row.label} ({precision})" if row.spec else row.label, precision=precision)
            for row in rows for precision in precisions if row.spec is not None or precision == precisions[0]]


def _hfpie_models(case: Case, user_models: dict[str, list[str]]) -> list[HfpieModel]:
    from hfpie.errors import HfpieError
    from hfpie.hub import find_entry, load_manifest

    models: list[HfpieModel] = []
    try:
        if case.task == "denoise-real":
            real = [e for e in load_manifest().values() if e.task == "denoise" and "real" in e.name.lower()]
            entry = real[0] if real else find_entry("denoise")
            note = "" if real else "AWGN-trained default denoiser"
        else:
            entry = find_entry(case.task, case.scale if case.task == "sr" else None)
            note = ""
        models.append(HfpieModel(f"hfpie {entry.name}", entry.name, note))
    except HfpieError:
        models.append(HfpieModel("hfpie (default)", None, "no pretrained model"))
    for spec in user_models.get(case.hfpie_key, []):
        models.append(HfpieModel(f"hfpie {_model_label(spec)}", spec))
    return models


def hfpie_command(model: HfpieModel, prepared: Prepared, out: Path, timings: Path) -> list[str]:
    case = prepared.case
    command = [sys.executable, str(HERE / "hfpie_runner.py"), str(prepared.inputs), str(out), "--model", str(model.spec),
               "--task", case.task, "--timings", str(timings), "--precision", model.precision]
    if case.task == "sr":
        command += ["--scale", str(case.scale)]
    return command


# --------------------------------------------------------------------------------------------------
# Environment checks
# --------------------------------------------------------------------------------------------------

_PROBE = """
import importlib, json, sys
found = {}
for name in sys.argv[1:]:
    try:
        module = importlib.import_module(name.split('.')[0])
        for part in name.split('.')[1:]:
            getattr(module, part)
        found[name] = ''
    except Exception as error:
        found[name] = f'{type(error).__name__}: {error}'[:160]
print(json.dumps(found))
"""


def probe_modules(python: str, modules: Sequence[str], env: dict[str, str]) -> dict[str, str]:
    """{module: '' if it imports with ``python``, else the error}."""
    try:
        completed = subprocess.run([python, "-c", _PROBE, *modules], capture_output=True, text=True, timeout=300,
                                   env=env, check=False)
        return json.loads(completed.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as error:
        return {name: f"cannot run {python}: {error}" for name in modules}


def machine_description() -> dict[str, str]:
    import torch

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=False).stdout.strip()
        commit = (commit + (" (uncommitted changes)" if dirty else "")) if commit else "unknown"
    except OSError:
        commit = "unknown"
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": str(torch.get_num_threads()),
        "commit": commit,
    }


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def add_ratios(results: list[Result]) -> None:
    """time / hfpie and dPSNR against the first hfpie row with numbers of each case."""
    for case_id in dict.fromkeys(r.case for r in results):
        rows = [r for r in results if r.case == case_id]
        reference = next((r for r in rows if r.kind == "hfpie" and r.psnr is not None), None)
        if reference is None:
            continue
        reference.reference = True
        for row in rows:
            if row.psnr is not None:
                row.psnr_delta = row.psnr - reference.psnr
            if row.seconds_per_megapixel is not None and reference.seconds_per_megapixel:
                row.time_ratio = row.seconds_per_megapixel / reference.seconds_per_megapixel


def _number(value: float | None, digits: int) -> str:
    if value is None:
        return ""
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def _speed(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(results: list[Result]) -> str:
    header = ("| task | set | scored on | method | PSNR (dB) | SSIM | s/MP | peak RSS (MB) | time / hfpie | "
              "ΔPSNR vs hfpie (dB) | note |")
    lines = [header, "|" + "---|" * 11]
    for r in results:
        if r.reference:
            ratio, delta = "1 (ref.)", "0 (ref.)"
        else:
            ratio = "" if r.time_ratio is None else f"{r.time_ratio:.3g}×"
            delta = "" if r.psnr_delta is None else f"{r.psnr_delta:+.2f}"
        cells = [r.task, r.dataset, r.metric, r.method, _number(r.psnr, 2), _number(r.ssim, 4),
                 _speed(r.seconds_per_megapixel), _number(r.peak_rss_mb, 0), ratio, delta, r.note]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def markdown_report(results: list[Result], machine: dict[str, str], options: argparse.Namespace,
                    peers_line: str, plot: Path | None, output: Path | None, notes: list[str]) -> str:
    parts = ["# hfpie vs peer methods\n"]
    if getattr(options, "synthetic_from", None) is not None:
        parts.append(f"> **Synthetic images**: `{options.synthetic_from}` does not exist, so every set is made of "
                     f"{SYNTHETIC_IMAGES} generated scenes (`make_synthetic_sets`; no real-noise pairs). The numbers "
                     "compare the methods with each other only; they are not comparable with published results.\n")
    if options.max_images:
        parts.append(f"> **Partial run: only the first {options.max_images} image(s) of each set"
                     f"{' (--quick: a subset of the methods)' if options.quick else ''}.** These numbers are a "
                     "smoke test, not comparable with full-set results.\n")
    if options.threads:
        threads = (f"torch {machine['torch']}, {options.threads} thread(s) per method (`--threads`: OMP_NUM_THREADS "
                   "and MKL_NUM_THREADS set for every method's process)")
    else:
        threads = f"torch {machine['torch']} with {machine['threads']} threads (the default, kept by every method)"
    parts.append(
        f"Generated {machine['date']} by `python benchmarks/run.py {' '.join(shlex.quote(a) for a in options.argv)}`"
        f" at hfpie commit {machine['commit']}.\n\n"
        f"Machine: {machine['platform']}; CPU {machine['cpu']}, {machine['cores']} cores; Python {machine['python']}, "
        f"{threads}. Load average at the start {options.load_start}, at the end {options.load_end} (1/5/15 min): "
        "numbers are only comparable within a run on an otherwise idle machine.\n\n"
        f"{peers_line}\n"
    )
    parts.append(
        "Protocol: `../shared/peers/README.md` (inputs from `hfpie.training.degradations.protocol_*` via "
        "`ImageFolderPairs`, written once per set and fed to every method). PSNR/SSIM: mean over the images, "
        "RGB for denoising and deblurring, Y (BT.601) with `scale` border pixels cropped for SR. s/MP: restoration "
        "seconds reported by each runner, summed over the set, divided by the summed output megapixels (loading "
        "and warm-up excluded). Peak RSS: high-water mark of the resident memory of the method's process "
        "(interpreter and libraries included; `ru_maxrss` of that process, started by a small launcher so that "
        "the benchmark's own memory is not counted: about 14 MB is the floor). time / hfpie: s/MP divided by the "
        "reference hfpie row's (> 1 is slower than hfpie); ΔPSNR: PSNR minus the reference hfpie row's.\n"
    )
    for note in notes:
        parts.append(f"* {note}")
    if notes:
        parts.append("")
    parts.append(markdown_table(results))
    if plot is not None and plot.exists():
        target = os.path.relpath(plot, output.parent) if output is not None else str(plot)
        parts.append(f"\n![PSNR against seconds per megapixel, one panel per task and set]({target})\n")
    return "\n".join(parts)


def make_plot(results: list[Result], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib import ticker
        from matplotlib.lines import Line2D
    except ImportError:
        return False
    cases = [c for c in dict.fromkeys(r.case for r in results)]
    panels = [c for c in cases if any(r.case == c and r.psnr is not None for r in results)]
    if not panels:
        return False
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 4.2 * rows), squeeze=False)
    colours = {"hfpie": "tab:red", "peer": "tab:blue", "classical": "tab:green"}
    for axis, case_id in zip(axes.flat, panels):
        rows_of_case = [r for r in results if r.case == case_id and r.psnr is not None and not math.isinf(r.psnr)]
        first = rows_of_case[0]
        for r in rows_of_case:
            if r.seconds_per_megapixel is None or r.seconds_per_megapixel <= 0:
                axis.axhline(r.psnr, color="grey", linestyle="--", linewidth=0.8)
                axis.annotate(r.method, (0.01, r.psnr), xycoords=("axes fraction", "data"), fontsize=7,
                              color="grey", va="bottom")
                continue
            axis.scatter(r.seconds_per_megapixel, r.psnr, color=colours.get(r.kind, "black"),
                         marker="*" if r.kind == "hfpie" else "o", s=90 if r.kind == "hfpie" else 30, zorder=3)
            axis.annotate(r.method, (r.seconds_per_megapixel, r.psnr), fontsize=7, xytext=(3, 3),
                          textcoords="offset points")
        axis.set_xscale("log")
        timed = [r.seconds_per_megapixel for r in rows_of_case if r.seconds_per_megapixel]
        if timed:
            axis.set_xlim(min(timed) / 2, max(timed) * 6)  # room for the labels on the right
        axis.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        axis.xaxis.set_minor_formatter(ticker.NullFormatter())
        axis.set_xlabel("seconds per megapixel (log)")
        axis.set_ylabel(f"PSNR {first.metric} (dB)")
        axis.set_title(f"{first.task} — {first.dataset}", fontsize=10)
        axis.grid(True, which="both", alpha=0.3)
    for axis in list(axes.flat)[len(panels):]:
        axis.axis("off")
    handles = [Line2D([], [], linestyle="", marker="*" if kind == "hfpie" else "o", color=colour, label=kind)
               for kind, colour in colours.items()]
    handles.append(Line2D([], [], linestyle="--", color="grey", label="degraded input"))
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    figure.tight_layout(rect=(0, 0.06 / rows, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=["*"], metavar="ID",
                        help="cases to run, by id or glob: " + ", ".join(c.id for c in CASES) + " (default: all)")
    parser.add_argument("--methods", nargs="+", default=None, metavar="ID",
                        help="classical/peer methods by id or glob (default: all; see --list-methods)")
    parser.add_argument("--max-images", type=int, default=0, help="first N images of each set (0: all)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_IMAGES} images per set (unless --max-images) and only the cheap methods")
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT,
                        help="folder holding cbsd68/, set5/, set14/, polyu_real_noise/ (default: %(default)s)")
    parser.add_argument("--peers-dir", type=Path, default=DEFAULT_PEERS_DIR, help="default: %(default)s")
    parser.add_argument("--peers-python", default=None,
                        help="python for the peer runners (default: PEERS/.venv/bin/python if present, else this one)")
    parser.add_argument("--hfpie-model", action="append", default=[], metavar="KEY=PATH",
                        help="also benchmark a local checkpoint; KEY: " + ", ".join(HFPIE_KEYS) + " (repeatable)")
    parser.add_argument("--output", type=Path, default=None, help="write the Markdown report here")
    parser.add_argument("--plot", type=Path, default=None,
                        help="PSNR vs s/MP plot (default with --output: benchmark.png next to it)")
    parser.add_argument("--json", type=Path, default=None, help="also write every result as JSON")
    parser.add_argument("--threads", type=int, default=None,
                        help="set OMP_NUM_THREADS / MKL_NUM_THREADS for every method (default: torch's default)")
    parser.add_argument("--hfpie-precision", nargs="+", default=["auto"], choices=["fp32", "bf16", "auto"],
                        help="run every hfpie model in each of these precisions, labelled when several (default: "
                             "auto, what users get: bf16 on CPUs with AMX / AVX-512 BF16, else fp32)")
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="seconds per method and set")
    parser.add_argument("--workdir", type=Path, default=None, help="keep inputs, outputs and logs here")
    parser.add_argument("--list-methods", action="store_true", help="list the method ids and exit")
    options = parser.parse_args(argv)
    options.argv = list(sys.argv[1:] if argv is None else argv)
    if options.quick and not options.max_images:
        options.max_images = QUICK_IMAGES
    if options.max_images < 0:
        parser.error("--max-images must be >= 0")
    options.user_models = {}
    for item in options.hfpie_model:
        key, _, spec = item.partition("=")
        if key not in HFPIE_KEYS or not spec:
            parser.error(f"--hfpie-model {item!r}: expected KEY=PATH with KEY in {', '.join(HFPIE_KEYS)}")
        options.user_models.setdefault(key, []).append(spec)
    return options


def _matches(identifier: str, patterns: Sequence[str] | None) -> bool:
    return patterns is None or any(fnmatch.fnmatchcase(identifier, p) for p in patterns)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    if options.list_methods:
        for method in CLASSICAL + PEERS:
            print(f"{method.id:<16} {method.kind:<10} {'quick' if method.quick else '':<6} {method.label}")
        return 0
    cases = [c for c in CASES if _matches(c.id, options.sets)]
    if not cases:
        print(f"no case matches --sets {' '.join(options.sets)}; cases: {', '.join(c.id for c in CASES)}",
              file=sys.stderr)
        return 2
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if options.threads is not None:
        if options.threads < 1:
            print("--threads must be >= 1", file=sys.stderr)
            return 2
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(options.threads)

    def selected(method: Method) -> bool:
        return _matches(method.id, options.methods) and (method.quick or not options.quick)

    notes: list[str] = []
    # Which packages the classical runner (this Python) has.
    classical_modules = sorted({m for method in CLASSICAL for m in method.needs})
    classical_found = probe_modules(sys.executable, classical_modules, env)
    # The peers, their Python, and what it imports.
    peers_dir = options.peers_dir.resolve()
    peer_methods: list[Method] = []
    peers_python = options.peers_python
    if peers_dir.is_dir():
        if peers_python is None:
            venv = peers_dir / ".venv" / "bin" / "python"
            peers_python = str(venv) if venv.exists() else sys.executable
        peer_methods = [m for m in PEERS if selected(m)]
        peer_modules = sorted({m for method in peer_methods for m in method.needs})
        peers_found = probe_modules(peers_python, peer_modules, env) if peer_modules else {}
        peers_line = f"Learned peers: `{peers_dir}`, run with `{peers_python}`."
    else:
        peers_found = {}
        peers_line = f"Learned peers: not found (`{peers_dir}` does not exist); only hfpie and classical methods ran."

    options.load_start = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="hfpie-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if not options.data_root.is_dir():
        options.synthetic_from = options.data_root
        options.data_root = make_synthetic_sets(workdir / "synthetic-data")
        print(f"no validation images at {options.synthetic_from}: benchmarking on synthetic images "
              f"({options.data_root})", file=sys.stderr)
    results: list[Result] = []
    try:
        for case in cases:
            try:
                prepared = prepare_case(case, options.data_root, options.max_images, workdir)
            except (OSError, ValueError, ImportError) as error:
                results.append(Result(case.id, case.task_label, case.dataset, case.metric, "(data)", "input",
                                      note=f"cannot build the inputs: {error}"))
                print(f"[{case.id}] cannot build the inputs: {error}", file=sys.stderr)
                continue
            notes.extend(f"{case.id}: {note}" for note in prepared.notes)
            print(f"[{case.id}] {len(prepared.names)} images, {prepared.output_megapixels:.3f} output MP",
                  file=sys.stderr, flush=True)
            if case.task != "sr":
                results.append(input_result(prepared))
            for index, model in enumerate(hfpie_models(case, options.user_models, options.hfpie_precision)):
                if model.spec is None:
                    results.append(Result(case.id, case.task_label, case.dataset, case.metric, model.label, "hfpie",
                                          note=model.note))
                    continue
                out = prepared.root / f"hfpie-{index}"
                result = run_method(prepared, model.label, "hfpie", hfpie_command(model, prepared, out,
                                    out.with_suffix(".json")), out, out.with_suffix(".json"), options.timeout, env)
                if model.note:
                    result.note = "; ".join(filter(None, [model.note, result.note]))
                results.append(result)
            for method in [m for m in CLASSICAL if selected(m)] + peer_methods:
                if not method.applies(case):
                    continue
                label = method.label_of(case)
                base = Result(case.id, case.task_label, case.dataset, case.metric, label, method.kind)
                found = classical_found if method.kind == "classical" else peers_found
                missing = [f"{m} ({found.get(m, 'not checked')})" for m in method.needs if found.get(m, "?") != ""]
                if method.id == "bm3d" and missing:  # optional: only when the package is installed
                    bm3d_note = "BM3D skipped: the bm3d package is not installed (optional)"
                    if bm3d_note not in notes:
                        notes.append(bm3d_note)
                    continue
                if missing:
                    base.note = "skipped: cannot import " + "; ".join(missing)
                    results.append(base)
                    continue
                out = prepared.root / method.id
                timings = out.with_suffix(".json")
                try:
                    if method.kind == "classical":
                        command = [sys.executable, str(HERE / "classical_runner.py"), method.script]
                    else:
                        script = peers_dir / method.script
                        if not script.is_file():
                            base.note = f"skipped: {script} not found"
                            results.append(base)
                            continue
                        command = [peers_python, str(script)]
                    command += [str(prepared.inputs), str(out), *method.args(prepared), "--timings", str(timings)]
                except MethodSkipped as skipped:
                    base.note = f"skipped: {skipped}"
                    results.append(base)
                    continue
                results.append(run_method(prepared, label, method.kind, command, out, timings, options.timeout, env))
    finally:
        if options.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    options.load_end = " / ".join(f"{v:.2f}" for v in os.getloadavg())

    add_ratios(results)
    plot = options.plot
    if plot is None and options.output is not None:
        plot = options.output.parent / "benchmark.png"
    if plot is not None and not make_plot(results, plot):
        notes.append("no plot: matplotlib is not installed (pip install matplotlib)")
        plot = None
    report = markdown_report(results, machine_description(), options, peers_line, plot, options.output, notes)
    print(report)
    if options.output is not None:
        options.output.parent.mkdir(parents=True, exist_ok=True)
        options.output.write_text(report)
    if options.json is not None:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
