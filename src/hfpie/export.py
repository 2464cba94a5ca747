"""``hfpie hub-export``: an upload-ready Hugging Face Hub folder with a model card.

The folder holds ``model.safetensors`` (the weights, byte for byte), ``config.json`` (the network
config, the task and the sha256 of the weights, checked when the model is loaded) and ``README.md``,
a model card whose YAML metadata follows the Hub's specification: ``license``, ``library_name``,
``pipeline_tag``, ``tags``, ``datasets`` (training data), ``metrics`` and a ``model-index`` of the
PSNR / SSIM evaluations. Speed and other measurements go in the card's text only.

Everything on a card comes from the weights manifest: the training data is the entry's
``training_folders`` (folders of ``../shared/data/train``, described with their provenance and
licence in :data:`TRAINING_FOLDERS`) plus its ``training_data`` note on the stages, then its metrics
and speeds. ``python scripts/model_cards.py`` writes the card of every shipped model to
``docs/model-cards/`` (run it after the manifest changes; a test checks that they match).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoint import HIGHPASS_FORMAT, checkpoint_format, read_config, read_metadata
from .errors import ModelNotFoundError
from .hub import LOSS_NETWORK_TASK, ModelEntry, download_weights, find_entry, load_network, sha256_of

__all__ = ["TRAINING_FOLDERS", "TrainingFolder", "export_hub_folder", "manifest_model_card", "model_card"]

_TASK_TEXT = {
    "denoise": "blind colour image denoising",
    "deblur": "blind image deblurring",
    "sr": "single-image super-resolution",
    LOSS_NETWORK_TASK: "high-pass filtering loss network (a training asset, not an image model)",
}
_TASK_TAG = {"denoise": "image-denoising", "deblur": "image-deblurring", "sr": "super-resolution",
             LOSS_NETWORK_TASK: "loss-network"}
_EVALUATION_METRICS = ("psnr", "ssim")
"""Metric types of the model-index: image quality against the ground truth (speed is not one)."""


@dataclass(frozen=True)
class TrainingFolder:
    """One folder of training images, as a model card describes it."""

    name: str
    dataset_id: str
    """Its id in the card's ``datasets`` metadata."""
    content: str
    licence: str
    """The terms the images come with."""
    research_only: bool = False
    """Published for research use only: the card says so."""
    per_file_licence: bool = False
    """Each image under its own licence: the card says so."""


_RESEARCH = "research use only (published with a benchmark, no licence beyond research use)"
_UNRECORDED = "a public research image set; no licence is recorded with the project's copy"
TRAINING_FOLDERS = {
    "bsds400": TrainingFolder(
        "BSDS400", "bsds500", "400 photos of the Berkeley Segmentation Dataset (BSDS500 train+val minus the 100 "
        "BSD100 test images, so no CBSD68)", "research use (like BSDS500)", research_only=True),
    "sun_hays80": TrainingFolder("Sun-Hays 80", "sun-hays-80", "80 scene photos of Sun & Hays", _UNRECORDED),
    "live1": TrainingFolder("LIVE1", "live1", "the 29 lossless LIVE1 reference images", _UNRECORDED),
    "t91": TrainingFolder("T91", "t91", "the 91-image super-resolution training set of Yang et al.", _UNRECORDED),
    "urban_stitching": TrainingFolder(
        "Urban stitching", "urban-stitching", "97 photos from public image-stitching benchmarks (APAP, ANAP, SPHP, "
        "NISwGSP, CAVE, DFW, REW): cathedrals, frescos, piazzas, campus buildings, streets and bridges, camera JPEGs "
        "box-downscaled by 4", _RESEARCH, research_only=True),
    "strecha_architecture": TrainingFolder(
        "Strecha architecture", "strecha-architecture", "14 photos of the Strecha et al. multi-view benchmark (EPFL, "
        "2008): facades with repeated windows and arches and a fountain, box-downscaled by 2", _RESEARCH,
        research_only=True),
    "debian_wallpapers": TrainingFolder(
        "Debian wallpapers", "debian-wallpapers", "35 photographs from Debian's lomiri, MATE and Plasma wallpaper "
        "packages (flowers, objects, landscapes, strong colour), box-downscaled by 5",
        "each file under its own licence (CC-BY, CC-BY-SA, CC0 or GPL-2+, as its Debian package states)",
        per_file_licence=True),
}
"""Every folder of ``../shared/data/train`` a shipped model may be trained on (its provenance and
licence from ``../shared/data/README.md``), by folder name as the manifest's ``training_folders`` lists it."""
_LOCAL_PATH = re.compile(r"(?<![\w.])(?:\.{1,2}/|~/|/(?=[\w.]))[^\s,;()]*:?\s*")
_CONFIG_FILE = re.compile(r"(?<![\w./])configs/[\w./-]+\.toml")


def _public(text: str) -> str:
    """``text`` without local paths (``../shared/data/train: BSDS400`` -> ``BSDS400``)."""
    return _LOCAL_PATH.sub("", str(text)).strip()


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _metric_kind(metric: dict[str, Any]) -> str:
    """``"evaluation"`` (PSNR / SSIM with a number), ``"speed"`` (seconds per megapixel) or ``"other"``."""
    name = str(metric["metric"])
    if name.startswith("s/MP"):
        return "speed"
    head = name.split()[0].lower() if name.split() else ""
    if head in _EVALUATION_METRICS and isinstance(metric["value"], (int, float)):
        return "evaluation"
    return "other"


def _channel(metric_name: str) -> str:
    words = metric_name.split()
    return "Y" if "Y" in words[1:] else "RGB"


def _metric_label(metric_name: str) -> str:
    """``"PSNR RGB"`` -> ``"PSNR (RGB)"``; other names unchanged."""
    words = metric_name.split()
    if len(words) == 2 and words[1] in {"RGB", "Y"}:
        return f"{words[0]} ({words[1]})"
    return metric_name


def _eval_results(task: str, scale: int, metrics: list[dict[str, Any]]) -> list[Any]:
    from huggingface_hub import EvalResult

    border = scale if task == "sr" else 0
    return [
        EvalResult(
            task_type="image-to-image",
            task_name=_TASK_TEXT.get(task, task).capitalize(),
            dataset_type=_slug(m["dataset"]),
            dataset_name=m["dataset"],
            dataset_config=m.get("condition"),
            dataset_split="test",
            metric_type=str(m["metric"]).split()[0].lower(),
            metric_name=_metric_label(str(m["metric"])),
            metric_value=m["value"],
            metric_args={"channel": _channel(str(m["metric"])), "crop_border": border},
        )
        for m in metrics if _metric_kind(m) == "evaluation"
    ]


def _training_folders(entry: ModelEntry | None) -> list[TrainingFolder]:
    """The folders ``entry`` lists in ``training_folders``; an unknown one is an error (describe it first)."""
    names = list(entry.extra.get("training_folders", [])) if entry is not None else []
    unknown = [name for name in names if name not in TRAINING_FOLDERS]
    if unknown:
        raise ValueError(f"training folders {unknown} of {entry.name if entry else 'the model'} are not described "
                         "in hfpie.export.TRAINING_FOLDERS")
    return [TRAINING_FOLDERS[name] for name in names]


def _sentence(text: str) -> str:
    return text if text.endswith(".") else text + "."


def _data_lines(folders: list[TrainingFolder], note: str) -> list[tuple[str, str]]:
    """The Training section's lines about data: the folders, the stages note and the licences."""
    if not folders:
        return [("Data", note or "not recorded for this checkpoint")]
    listing = "".join(f"\n  - {folder.name}: {_sentence(folder.content)}" for folder in folders)
    lines = [("Data", f"{len(folders)} folders of training images:{listing}")]
    if note:
        lines.append(("Stages", note))
    licences = "".join(f"\n  - {folder.name}: {_sentence(folder.licence)}" for folder in folders)
    lines.append(("Licences of the training images", "the MIT licence covers the weights and hfpie's code, not the "
                  f"images they were trained on, which keep their own terms:{licences}"))
    return lines


def _data_terms(folders: list[TrainingFolder]) -> list[str]:
    """Limitations that the training images' terms bring (research-only photos, per-file licences)."""
    research = [folder.name for folder in folders if folder.research_only]
    per_file = [folder.name for folder in folders if folder.per_file_licence]
    terms = []
    if research:
        terms.append(f"Trained in part on photos published for research use only ({', '.join(research)}): check "
                     "whether that matters for your use of the weights.")
    if per_file:
        terms.append(f"Trained in part on images under per-file licences ({', '.join(per_file)}: CC-BY, CC-BY-SA, "
                     "CC0 or GPL-2+); their attributions are in the Debian packages they come from.")
    return terms


def _as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _format_steps(steps: Any) -> str:
    if isinstance(steps, dict):
        total = sum(v for v in steps.values() if isinstance(v, int))
        stages = "; ".join(f"{_public(stage)}: {count}" for stage, count in steps.items())
        return f"{total} in all ({stages})"
    return _public(steps)


def _format_compute(wall_time: Any) -> str:
    if not isinstance(wall_time, dict):
        return _public(wall_time)
    parts = []
    for device in ("cpu", "gpu"):
        amount = ""
        if f"{device}_hours" in wall_time:
            amount = f"{wall_time[f'{device}_hours']} h"
        elif f"{device}_seconds" in wall_time:
            amount = f"{wall_time[f'{device}_seconds']} s"
        if amount:
            where = f" on {_public(wall_time[device])}" if device in wall_time else ""
            parts.append(f"{device.upper()}: {amount}{where}")
    if "continued_cpu_hours" in wall_time:
        parts.append(f"continued on the CPU: {wall_time['continued_cpu_hours']} h")
    known = {"cpu", "gpu", "cpu_hours", "gpu_hours", "cpu_seconds", "gpu_seconds", "continued_cpu_hours"}
    parts += [f"{key}: {_public(value)}" for key, value in wall_time.items() if key not in known]
    return "; ".join(parts)


def _format_recipe(commands: Any) -> str:
    commands = [str(c) for c in _as_list(commands)]
    configs = list(dict.fromkeys(match for c in commands for match in _CONFIG_FILE.findall(c)))
    tools = list(dict.fromkeys(m.group(0) for c in commands if (m := re.search(r"hfpie [\w-]+", c))))
    if not commands:
        return ""
    described = ", ".join(f"`{tool}`" for tool in tools) or "hfpie's trainer"
    if configs:
        described += " with the configs " + ", ".join(f"`{c}`" for c in configs) + " of the hfpie repository"
    return f"{len(commands)} stage(s) of {described}; the exact commands are recorded in hfpie's weights manifest."


def _introduction(task: str, scale: int) -> str:
    paper = "(High-Frequency aware Perceptual Image Enhancement, Roh & Kang, arXiv 2105.11711)"
    library = "the [hfpie](https://pypi.org/project/hfpie/) library"
    if task == LOSS_NETWORK_TASK:
        return (f"The high-pass filtering loss network of HFPIE {paper}, as trained by {library}: a small CNN that "
                "reproduces an FFT high-pass filter, whose features serve as a loss when training hfpie's image "
                "models. A training asset, not an image model.")
    return (f"{_TASK_TEXT.get(task, task).capitalize()}{f' (x{scale})' if task == 'sr' else ''} with the HFPIE "
            f"network {paper}, as implemented by {library}.")


def _protocol(task: str, scale: int) -> str:
    if task == LOSS_NETWORK_TASK:
        return "Measured on held-out patches against the FFT high-pass target the network was trained to match."
    if task == "sr":
        return (f"Protocol (as `hfpie eval` computes it): 8-bit inputs; PSNR and SSIM on the Y channel with {scale} "
                "pixels cropped at each border.")
    return "Protocol (as `hfpie eval` computes it): 8-bit inputs; PSNR and SSIM on RGB over the whole image."


def _table(rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _usage(name: str, task: str, scale: int, repo_id: str, bundled: bool) -> str:
    if task == LOSS_NETWORK_TASK:
        return ("```python\nfrom huggingface_hub import hf_hub_download\n"
                "from hfpie.training.highpass import HighPassLoss, load_highpass_net\n\n"
                f'loss_fn = HighPassLoss(load_highpass_net(hf_hub_download("{repo_id}", "model.safetensors")))\n'
                "loss = loss_fn(output, target)  # (N, 3, H, W) in [0, 1]\n```\n\n"
                "or in a training config (`pip install hfpie[train]`): `hpf_weight = 1.0` with `hpf_checkpoint` "
                "set to the downloaded file.")
    arguments = f'task="sr", scale={scale}' if task == "sr" else f'task="{task}"'
    command = f"hfpie sr input.png --scale {scale}" if task == "sr" else f"hfpie {task} input.png"
    text = (f'```python\nfrom hfpie import enhance\n\noutput = enhance("input.png", {arguments}, model="{repo_id}")\n```'
            f"\n\nor on the command line: `{command} -m {repo_id} -o output.png`. Add `@revision` to the id "
            "(a branch, tag or commit) to pin a version.")
    if bundled:
        text += f' `pip install hfpie` also bundles these weights offline as `model="{name}"`.'
    return text


def model_card(name: str, task: str, scale: int, config: dict[str, Any], entry: ModelEntry | None,
               repo_id: str | None = None) -> str:
    """README.md text of a Hub repository: YAML metadata (with model-index) and a description.

    Args:
        name: the model's name; ``task`` and ``scale`` as in the manifest; ``config`` the network config.
        entry: the manifest entry (training data, metrics, limitations), or None for another checkpoint.
        repo_id: the Hub repository the folder goes to (default: the entry's, else ``your-name/hfpie-NAME``),
            used in the usage example.
    """
    from huggingface_hub import ModelCardData

    extra = entry.extra if entry is not None else {}
    repo_id = repo_id or (entry.repo_id if entry is not None else f"your-name/hfpie-{name}")
    metrics = list(extra.get("metrics", []))
    training_data = _public(entry.training_data) if entry is not None and entry.training_data else ""
    folders = _training_folders(entry)
    image_model = task != LOSS_NETWORK_TASK
    eval_results = _eval_results(task, scale, metrics) if image_model else []
    data = ModelCardData(
        license=(entry.license if entry else "mit").lower(),
        library_name="hfpie",
        pipeline_tag="image-to-image" if image_model else None,
        tags=["hfpie", "image-restoration" if image_model else "training-asset", _TASK_TAG.get(task, task),
              "pytorch", "safetensors"],
        datasets=[folder.dataset_id for folder in folders] or None,
        metrics=sorted({result.metric_type for result in eval_results}) or None,
        model_name=f"hfpie-{name}",
        eval_results=eval_results or None,
    )

    evaluation = [(m["dataset"], m.get("condition", ""), _metric_label(str(m["metric"])), m["value"])
                  for m in metrics if _metric_kind(m) == "evaluation"]
    speed = [(m["dataset"], m.get("condition", ""), str(m["metric"])[len("s/MP"):].strip(" ()"), m["value"])
             for m in metrics if _metric_kind(m) == "speed"]
    other = [(m["dataset"], m.get("condition", ""), m["metric"], m["value"]) for m in metrics
             if _metric_kind(m) == "other"]
    sections = [
        f"# hfpie-{name}",
        _introduction(task, scale),
        "## Usage",
        _usage(name, task, scale, repo_id, bundled=entry is not None),
        "## Training",
        "\n".join(f"- {label}: {value}" for label, value in [
            *_data_lines(folders, training_data),
            ("Steps", _format_steps(extra["steps"]) if "steps" in extra else ""),
            ("Compute", _format_compute(extra["wall_time"]) if "wall_time" in extra else ""),
            ("Recipe", _format_recipe(extra.get("training_command"))),
        ] if value),
        "## Evaluation",
        (_table(evaluation, ("data set", "condition", "metric", "value")) if evaluation else "Not measured yet.")
        + "\n\n" + _protocol(task, scale),
    ]
    if speed:
        sections += ["## Speed", _table(speed, ("data set", "condition", "machine, precision", "seconds per megapixel"))
                     + "\n\nSeconds per megapixel of output on the CPU named, measured with the benchmarks of the "
                     'hfpie repository. bf16 (bfloat16 autocast) is what `precision="auto"` picks on CPUs with AMX / '
                     "AVX-512 BF16; fp32 elsewhere."]
    if other:
        sections += ["## Other measurements", _table(other, ("data set", "condition", "measure", "value"))]
    limitations = [_public(item) for item in _as_list(extra.get("limitations"))] + _data_terms(folders)
    limitations += [
        "Trained on a small set of natural photographs on a small compute budget: expect weaker results on "
        "degradations outside the training distribution (other noise types, motion blur, heavy JPEG).",
        "Restoration models do not hallucinate missing detail; the output can look smooth at high noise.",
        "Not for medical, forensic or evidential use.",
    ] if image_model else []
    sections += [
        "## Network",
        "The network config (also in `config.json`):\n\n```json\n" + json.dumps(config, indent=2) + "\n```",
        "## Intended use",
        _public(extra.get("intended_use", "Restoring natural photographs with the degradation it was trained on "
                                          "(see Training).")),
        "## Limitations",
        "\n".join(f"- {item}" for item in limitations) or "- A training asset: not meant to restore images.",
    ]
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n"


def _read_local(path: Path) -> tuple[Path, str, str, int, dict[str, Any]]:
    """(weights file, name, task, scale, config) of a local ``.safetensors`` file or exported folder."""
    from .hub import _read_folder_config

    if path.is_dir():
        network = load_network(path)  # checks the folder, its config.json and the sha256 it records
        info = _read_folder_config(path) or {}
        name = info.get("name", path.name)
        task = info.get("task", "sr" if network.config.scale > 1 else "denoise")
        return path / "model.safetensors", name, task, network.config.scale, network.config.to_dict()
    metadata = read_metadata(path)  # a one-line error for pickles and other non-safetensors files
    if checkpoint_format(metadata) == HIGHPASS_FORMAT:
        return path, path.stem, LOSS_NETWORK_TASK, 1, read_config(path)[1]
    network = load_network(path)
    task = metadata.get("task", "sr" if network.config.scale > 1 else "denoise")
    return path, metadata.get("name", path.stem), task, network.config.scale, network.config.to_dict()


def _from_manifest(name: str) -> tuple[ModelEntry, Path, dict[str, Any], int]:
    """(entry, verified weights file, network config, scale) of the manifest model ``name``."""
    entry = find_entry(name)
    weights = download_weights(entry)
    if entry.task == LOSS_NETWORK_TASK:  # the high-pass loss network: a training asset with its own config
        return entry, weights, read_config(weights)[1], entry.scale
    network = load_network(weights, entry.config or None)
    return entry, weights, network.config.to_dict(), network.config.scale


def manifest_model_card(name: str, repo_id: str | None = None) -> str:
    """The card of manifest model ``name``: what ``hfpie hub-export NAME`` writes as README.md."""
    entry, _, config, scale = _from_manifest(name)
    return model_card(entry.name, entry.task, scale, config, entry, repo_id)


def export_hub_folder(model: str | os.PathLike[str], folder: str | os.PathLike[str], *, overwrite: bool = False,
                      repo_id: str | None = None) -> Path:
    """Write ``model.safetensors``, ``config.json`` and ``README.md`` for the Hub into ``folder``.

    ``model`` is a manifest name (its verified weights are copied), a ``.safetensors`` path whose
    metadata holds the config, or a folder written by this function. ``repo_id`` is the repository
    the folder will be uploaded to (for the card's usage example). Upload with
    ``hf upload OWNER/REPO FOLDER``; then ``enhance(..., model="OWNER/REPO")`` loads it.
    """
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"{folder} is not empty; pass --overwrite to replace its files")
    entry: ModelEntry | None = None
    if isinstance(model, os.PathLike) or Path(model).exists():
        weights, name, task, scale, config = _read_local(Path(model))
    elif str(model).endswith((".safetensors", ".pth", ".pt", ".bin", ".ckpt")):
        raise ModelNotFoundError(f"{model} does not exist; give an existing weights file, exported folder or model name.")
    else:
        entry, weights, config, scale = _from_manifest(str(model))
        name, task = entry.name, entry.task
    card = model_card(name, task, scale, config, entry, repo_id)
    return _write_folder(folder, weights, name, task, scale, config, card)


def _write_folder(folder: Path, weights: Path, name: str, task: str, scale: int, config: dict[str, Any],
                  card: str) -> Path:
    from huggingface_hub import ModelCard

    ModelCard(card)  # raises if the YAML metadata or model-index is malformed
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "model.safetensors"
    if not (target.exists() and target.resolve() == weights.resolve()):  # re-exporting a folder in place
        shutil.copyfile(weights, target)
    (folder / "config.json").write_text(
        json.dumps({"library_name": "hfpie", "name": name, "task": task, "scale": scale,
                    "sha256": sha256_of(target), "config": config}, indent=2) + "\n"
    )
    (folder / "README.md").write_text(card)
    return folder
