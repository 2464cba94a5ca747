"""The method table: what runs on each case besides the degraded input, and how it is started.

``CLASSICAL`` and ``PEERS``: one ``Method`` per classical or learned peer method, with the cases it
applies to, its arguments, its script (``classical_runner.py`` or a runner under the peers folder)
and the modules it needs; ``method_command`` is its command line, ``probe_modules`` checks which of
the needed modules a Python imports. ``hfpie_models`` and ``hfpie_command``: the hfpie rows of a case
(the installed default model and the user's checkpoints) and how ``hfpie_runner.py`` runs them.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cases import Case, Prepared

HERE = Path(__file__).resolve().parent


# --------------------------------------------------------------------------------------------------
# Classical and learned peer methods
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
    """A method that cannot run on a case here (missing input or script); the message is the note."""


def method_command(method: Method, prepared: Prepared, out: Path, timings: Path, peers_dir: Path,
                   peers_python: str | None) -> list[str]:
    """The command that runs ``method`` on ``prepared`` into ``out`` (a peer's script under ``peers_dir``,
    run with ``peers_python``); MethodSkipped when it cannot run here."""
    if method.kind == "classical":
        command = [sys.executable, str(HERE / "classical_runner.py"), method.script]
    else:
        script = peers_dir / method.script
        if not script.is_file():
            raise MethodSkipped(f"{script} not found")
        command = [peers_python, str(script)]
    command += [str(prepared.inputs), str(out), *method.args(prepared), "--timings", str(timings)]
    return command


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
# Which modules a Python imports
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
