"""``hfpie hub-export``: the folder's files and a model card that follows the Hub's metadata specification."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from huggingface_hub import ModelCard, ModelCardData

from conftest import make_network, save_checkpoint
from hfpie import hub
from hfpie.export import TRAINING_FOLDERS, _public, export_hub_folder, manifest_model_card
from hfpie.hub import load_network, sha256_of

ROOT = Path(__file__).resolve().parents[1]
_DANGLING = re.compile(r"(?:\b(?:of|on|in|at|to|from|with|and|or|the|a|an|by|for|than)|[,;(])$", re.IGNORECASE)


def _truncated_lines(text: str) -> list[str]:
    """Lines of a card's prose that end mid-sentence ("continued on all of", a trailing comma, a colon
    with nothing after it); code blocks and tables are left out."""
    if text.startswith("---\n"):
        text = text.split("\n---\n", 1)[1]  # the YAML metadata is not prose
    lines, found, code = text.splitlines(), [], False
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("```"):
            code = not code
            continue
        if code or not stripped or stripped.startswith("|"):
            continue
        following = next((later.strip() for later in lines[index + 1:] if later.strip()), "")
        if _DANGLING.search(stripped) or (stripped.endswith(":") and not following.startswith(("-", "```", "|"))):
            found.append(stripped)
    return found

_LOCAL_PATHS = re.compile(r"\.\./|~/|RUNS/|/work/|/tmp/|/home/|/root/|shared/data")
_PYTHON_REPRS = re.compile(r"[\[{(]'|\bNone\b|\bTrue\b|\bFalse\b")


def _card(folder: Path) -> ModelCard:
    card = ModelCard.load(folder / "README.md")  # parses the YAML and the model-index (raises if malformed)
    ModelCardData(**card.data.to_dict())  # the metadata round-trips
    return card


def _assert_public_text(card: ModelCard) -> None:
    assert not _LOCAL_PATHS.search(card.text), _LOCAL_PATHS.search(card.text)
    assert not _PYTHON_REPRS.search(card.text), _PYTHON_REPRS.search(card.text)


@pytest.mark.parametrize("name", sorted(hub.load_manifest()))
def test_cards_of_shipped_models_follow_the_hub_metadata(name: str, tmp_path: Path) -> None:
    entry = hub.find_entry(name)
    folder = export_hub_folder(name, tmp_path / name)
    card = _card(folder)
    data = card.data
    assert data.library_name == "hfpie" and data.license == "mit" and data.model_name == f"hfpie-{name}"
    folders = [TRAINING_FOLDERS[folder] for folder in entry.extra["training_folders"]]
    assert data.datasets == [folder.dataset_id for folder in folders]  # the training data, as ids
    _assert_public_text(card)
    assert f"- Data: {len(folders)} folders of training images:" in card.text
    config = json.loads((folder / "config.json").read_text())
    assert config["sha256"] == sha256_of(folder / "model.safetensors") == entry.sha256
    assert (config["name"], config["task"], config["scale"]) == (name, entry.task, entry.scale)
    if entry.task == "hpf":  # the loss network: no image-to-image pipeline and no image-quality results
        assert data.pipeline_tag is None and data.eval_results is None and "loss-network" in data.tags
        assert "not an image model" in card.text
        return
    assert data.pipeline_tag == "image-to-image"
    quality = [m for m in entry.extra["metrics"] if m["metric"].split()[0] in {"PSNR", "SSIM"}]
    assert data.metrics == sorted({m["metric"].split()[0].lower() for m in quality})
    results = data.eval_results
    assert len(results) == len(quality) > 0
    assert {r.metric_type for r in results} <= {"psnr", "ssim"}  # speed is not an evaluation metric
    assert sorted((r.dataset_name, r.dataset_config, r.metric_value) for r in results) == sorted(
        (m["dataset"], m["condition"], m["value"]) for m in quality)
    for result in results:
        assert result.task_type == "image-to-image" and result.dataset_type == result.dataset_name.lower()
        assert result.metric_args == {"channel": "Y" if entry.task == "sr" else "RGB",
                                      "crop_border": entry.scale if entry.task == "sr" else 0}
    if any(m["metric"].startswith("s/MP") for m in entry.extra["metrics"]):
        assert "## Speed" in card.text and "seconds per megapixel" in card.text
    assert f'model="{entry.repo_id}"' in card.text and f"-m {entry.repo_id}" in card.text  # usage by Hub id


def test_card_of_a_trained_checkpoint_and_re_export_of_a_folder(tmp_path: Path) -> None:
    checkpoint = save_checkpoint(make_network(4, seed=1), tmp_path / "final.safetensors", task="sr")
    folder = export_hub_folder(checkpoint, tmp_path / "out", repo_id="me/hfpie-sr")
    card = _card(folder)
    _assert_public_text(card)
    assert card.data.datasets is None and card.data.eval_results is None  # nothing measured or recorded
    assert 'model="me/hfpie-sr"' in card.text and "scale=4" in card.text
    assert load_network(folder).config == load_network(checkpoint).config
    again = export_hub_folder(folder, tmp_path / "again")  # an exported folder exports again
    assert json.loads((again / "config.json").read_text()) == json.loads((folder / "config.json").read_text())
    assert (again / "model.safetensors").read_bytes() == checkpoint.read_bytes()


@pytest.mark.parametrize("name", sorted(hub.load_manifest()))
def test_a_card_lists_every_training_folder_of_its_model_and_ends_no_sentence_early(name: str) -> None:
    entry = hub.find_entry(name)
    text = manifest_model_card(name)
    folders = entry.extra["training_folders"]
    assert folders and len(set(folders)) == len(folders)
    data = text.split("- Data:", 1)[1].split("\n- ", 1)[0]  # the Data item and its sub-list
    for folder in folders:
        described = TRAINING_FOLDERS[folder]
        assert f"  - {described.name}: {described.content.rstrip('.')}." in data, folder
        assert f"  - {described.name}: {described.licence.rstrip('.')}." in text, folder
    assert data.count("\n  - ") == len(folders)  # no folder more
    assert _truncated_lines(text) == []
    if {"urban_stitching", "strecha_architecture"} & set(folders):
        assert "research use only" in text and "Urban stitching" in text.split("## Limitations", 1)[1]
    if "debian_wallpapers" in folders:
        assert "per-file licences (Debian wallpapers" in text
    speeds = [m for m in entry.extra.get("metrics", []) if m["metric"].startswith("s/MP")]
    for row in speeds:  # every speed row, with its machine and precision
        assert f"| {row['dataset']} | {row['condition']} | {row['metric'][len('s/MP'):].strip(' ()')} | {row['value']} |" in text


def test_the_truncation_check_finds_the_old_data_line() -> None:
    old = ("- Data: BSDS400 (BSDS500 train+val minus the 100 BSD100 test images, so no CBSD68), Sun-Hays 80, LIVE1 "
           "(29), T91; GPU stages without LIVE1; continued on all of ../shared/data/train")
    assert _truncated_lines(_public(old)) == [_public(old)]
    assert _truncated_lines("- Data: 2 folders:\n  - A: one.\n  - B: two.") == []


def test_the_committed_model_cards_are_the_manifest_s() -> None:
    cards = {path.name: path.read_text() for path in (ROOT / "docs" / "model-cards").glob("*.md")}
    expected = {f"{name}.md": manifest_model_card(name) for name in hub.load_manifest()}
    stale = sorted(name for name in set(cards) | set(expected) if cards.get(name) != expected.get(name))
    assert not stale, f"model cards out of date: {stale}; run python scripts/model_cards.py"


def test_every_training_folder_there_is_described() -> None:
    train = ROOT.parent / "shared" / "data" / "train"
    if not train.is_dir():
        pytest.skip("../shared/data/train is not on this machine")
    present = {path.name for path in train.iterdir() if path.is_dir()}
    assert present <= set(TRAINING_FOLDERS), present - set(TRAINING_FOLDERS)
    for entry in hub.load_manifest().values():
        assert set(entry.extra["training_folders"]) <= present, entry.name


def test_local_paths_are_taken_out_of_card_text() -> None:
    assert _public("../shared/data/train: BSDS400, T91") == "BSDS400, T91"
    assert _public("1.17 dB (Set5) / 0.77 dB (Set14)") == "1.17 dB (Set5) / 0.77 dB (Set14)"
    assert _public("copied to /tmp/x/y.png and ~/data") == "copied to and"
    assert _public("s/MP on train+val") == "s/MP on train+val"
