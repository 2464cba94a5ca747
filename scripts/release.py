"""Ship a trained checkpoint: bundle it in the package and list it in ``weights_manifest.json``.

    python scripts/release.py denoise ../runs/denoise/best.safetensors --task denoise \
        --training-data "..." --training-command "..." --steps 7000 --wall-time "2.0 h" --metrics metrics.json

The weights are re-saved (float32, config and name in the metadata) to
``src/hfpie/weights/<name>.safetensors``; the manifest entry gets its sha256 and size. The Hub copy is
``hfpie/<name>`` / ``model.safetensors`` at ``revision`` ("main" until the repository is published,
then the pinned commit).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import torch

from hfpie.hub import load_network, sha256_of
from hfpie.training.trainer import export_weights

__all__ = ["add_to_manifest"]

ROOT = Path(__file__).resolve().parents[1]


def _same_weights(path: Path, network: Any, metadata: dict[str, str]) -> bool:
    """Whether ``path`` already holds exactly these tensors, config and metadata."""
    if not path.exists():
        return False
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        stored = dict(handle.metadata() or {})
        names = set(handle.keys())
        state = network.state_dict()
        if names != set(state) or any(stored.get(k) != v for k, v in metadata.items()):
            return False
        if json.loads(stored.get("config", "{}")) != json.loads(json.dumps(network.config.to_dict())):
            return False
        return all(torch.equal(handle.get_tensor(k), state[k].detach().cpu().float()) for k in names)


def add_to_manifest(name: str, weights: str | Path, *, task: str, default: bool = True, preset: str = "",
                    training_data: str = "", extra: dict[str, Any] | None = None, revision: str = "main",
                    root: Path = ROOT) -> dict[str, Any]:
    """Bundle ``weights`` as model ``name`` and write (or replace) its manifest entry.

    ``task="hpf"`` bundles the high-pass filtering loss network (a training asset, never picked by
    ``enhance``) as it is.
    """
    target = root / "src" / "hfpie" / "weights" / f"{name}.safetensors"
    if task == "hpf":
        from hfpie.training.highpass import load_highpass_net

        shutil.copyfile(weights, target)
        scale, config = 1, load_highpass_net(target).config.to_dict()
    else:
        network = load_network(weights)
        metadata = {"name": name, "task": task}
        if not _same_weights(target, network, metadata):  # safetensors' header order varies per run:
            export_weights(network, target, metadata)     # keep identical files byte for byte
        scale, config = network.config.scale, network.config.to_dict()
    manifest_path = root / "weights_manifest.json"
    manifest = json.loads(manifest_path.read_text())
    entry: dict[str, Any] = {
        "task": task,
        "scale": scale,
        "default": default and task != "hpf",
        "preset": preset,
        "config": config,
        "repo_id": f"hfpie/{name}",
        "filename": "model.safetensors",
        "revision": revision,
        "sha256": sha256_of(target),
        "size": target.stat().st_size,
        "license": "MIT",
        "training_data": training_data,
        **(extra or {}),
    }
    manifest.setdefault("models", {})[name] = entry
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    parser.add_argument("weights")
    parser.add_argument("--task", required=True)
    parser.add_argument("--preset", default="")
    parser.add_argument("--training-data", default="")
    parser.add_argument("--extra", help="JSON file of further fields (metrics, steps, wall_time, training_command...)")
    parser.add_argument("--not-default", action="store_true")
    args = parser.parse_args()
    extra = json.loads(Path(args.extra).read_text()) if args.extra else {}
    entry = add_to_manifest(args.name, args.weights, task=args.task, default=not args.not_default,
                            preset=args.preset, training_data=args.training_data, extra=extra)
    print(json.dumps({k: v for k, v in entry.items() if k != "config"}, indent=2))


if __name__ == "__main__":
    main()
