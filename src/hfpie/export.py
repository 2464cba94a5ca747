"""``hfpie hub-export``: an upload-ready Hugging Face Hub folder with a model card."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from safetensors import safe_open

from .hub import ModelEntry, download_weights, find_entry, load_network

__all__ = ["export_hub_folder", "model_card"]

_TASK_TEXT = {
    "denoise": "blind colour image denoising",
    "deblur": "blind image deblurring",
    "sr": "single-image super-resolution",
    "hpf": "high-pass filtering loss network (training asset)",
}


def model_card(name: str, task: str, scale: int, config: dict[str, Any], entry: ModelEntry | None) -> str:
    """README.md text of a Hub repository: YAML metadata (with model-index) and a description."""
    from huggingface_hub import EvalResult, ModelCardData

    extra = entry.extra if entry is not None else {}
    metrics = extra.get("metrics", [])
    eval_results = [
        EvalResult(
            task_type="image-to-image",
            task_name=_TASK_TEXT.get(task, task),
            dataset_type=m["dataset"].lower().replace(" ", "-"),
            dataset_name=m["dataset"],
            dataset_config=m.get("condition"),
            metric_type=m["metric"].lower(),
            metric_name=m["metric"] + (f" ({m['condition']})" if m.get("condition") else ""),
            metric_value=m["value"],
        )
        for m in metrics
    ]
    data = ModelCardData(
        license=(entry.license if entry else "mit").lower(),
        library_name="hfpie",
        pipeline_tag="image-to-image",
        tags=["image-restoration", task, "hfpie", "pytorch", "safetensors"],
        model_name=f"hfpie-{name}",
        eval_results=eval_results or None,
    )
    rows = "\n".join(
        f"| {m['dataset']} | {m.get('condition', '')} | {m['metric']} | {m['value']} |" for m in metrics
    ) or "| - | - | - | not measured yet |"
    usage_task = f'task="sr", scale={scale}' if task == "sr" else f'task="{task}"'
    command = f"hfpie sr input.png --scale {scale} -o output.png" if task == "sr" else f"hfpie {task} input.png -o output.png"
    if task == "hpf":
        usage = ("```python\nfrom hfpie.hub import download_weights, find_entry\n"
                 "from hfpie.training.highpass import HighPassLoss, load_highpass_net\n\n"
                 f'loss_fn = HighPassLoss(load_highpass_net(download_weights(find_entry("{name}"))))\n'
                 "loss = loss_fn(output, target)  # (N, 3, H, W) in [0, 1]\n```\n\n"
                 "or in a training config: `hpf_weight = 1.0` with `hpf_checkpoint` set to this file.")
    else:
        usage = (f'```python\nfrom hfpie import enhance\noutput = enhance("input.png", {usage_task}, model="{name}")\n```'
                 f"\n\nor on the command line: `{command}`")
    body = f"""
# hfpie-{name}

{_TASK_TEXT.get(task, task).capitalize()}{f" (x{scale})" if task == "sr" else ""} with the HFPIE network
(High-Frequency aware Perceptual Image Enhancement, Roh & Kang, arXiv 2105.11711), as implemented by the
[hfpie](https://pypi.org/project/hfpie/) library.

## Usage

{usage}

## Training

- Data: {entry.training_data if entry and entry.training_data else "see the hfpie repository"}
- Degradation: {extra.get("degradation", "see the hfpie repository")}
- Command: `{extra.get("training_command", "n/a")}`
- Steps: {extra.get("steps", "n/a")}; wall time: {extra.get("wall_time", "n/a")}

## Metrics

| data set | condition | metric | value |
|---|---|---|---|
{rows}

Protocol: 8-bit inputs; PSNR on RGB for restoration, on Y with `crop_border = scale` for SR
(see hfpie's docs/model-zoo.md).

## Network

```json
{json.dumps(config, indent=2)}
```

## Intended use

{extra.get("intended_use", "Restoring natural photographs with the degradation it was trained on (see Training).")}

## Limitations
{"".join(chr(10) + "- " + item for item in extra.get("limitations", []))}
- Trained on a small set of natural photographs on a CPU budget: expect weaker results on
  degradations outside the training distribution (other noise types, motion blur, heavy JPEG).
- Restoration models do not hallucinate missing detail; the output can look smooth at high noise.
- Not for medical, forensic or evidential use.
"""
    return f"---\n{data.to_yaml()}\n---\n{body}"


def export_hub_folder(model: str | os.PathLike[str], folder: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``model.safetensors``, ``config.json`` and ``README.md`` for the Hub into ``folder``.

    ``model`` is a manifest name (its verified weights are copied) or a ``.safetensors`` path whose
    metadata holds the config. The card is parsed back with :class:`huggingface_hub.ModelCard`.
    """
    from huggingface_hub import ModelCard

    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"{folder} is not empty; pass --overwrite to replace its files")
    entry: ModelEntry | None = None
    if Path(model).exists():
        weights = Path(model)
        with safe_open(str(weights), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
        network = load_network(weights)
        name = metadata.get("name", weights.stem)
        task = metadata.get("task", "sr" if network.config.scale > 1 else "denoise")
    else:
        entry = find_entry(str(model))
        weights = download_weights(entry)
        name, task = entry.name, entry.task
        if task == "hpf":  # the high-pass loss network: a training asset with its own config
            from .training.highpass import load_highpass_net

            config = load_highpass_net(weights).config.to_dict()
            return _write_folder(folder, weights, name, task, 1, config, model_card(name, task, 1, config, entry))
        network = load_network(weights, entry.config or None)
    config = network.config.to_dict()
    card = model_card(name, task, network.config.scale, config, entry)
    return _write_folder(folder, weights, name, task, network.config.scale, config, card)


def _write_folder(folder: Path, weights: Path, name: str, task: str, scale: int, config: dict[str, Any],
                  card: str) -> Path:
    from huggingface_hub import ModelCard

    ModelCard(card)  # raises if the YAML metadata or model-index is malformed
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights, folder / "model.safetensors")
    (folder / "config.json").write_text(
        json.dumps({"library_name": "hfpie", "name": name, "task": task, "scale": scale,
                    "config": config}, indent=2) + "\n"
    )
    (folder / "README.md").write_text(card)
    return folder
