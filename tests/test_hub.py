"""Weights from the Hub: real huggingface_hub downloads against a local server speaking its protocol."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import make_network, save_checkpoint
from hfpie import ModelNotFoundError, NoPretrainedWeightsError, WeightsIntegrityError, hub, load_model
from hfpie.hub import ModelEntry, download_weights, find_entry, load_network, sha256_of
from hub_server import FakeHub

REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    return save_checkpoint(make_network(seed=3), tmp_path / "upload.safetensors", name="toy", task="denoise")


@pytest.fixture
def manifest(monkeypatch: pytest.MonkeyPatch, checkpoint: Path) -> dict[str, ModelEntry]:
    entry = ModelEntry(
        name="toy-denoise", task="denoise", scale=1, preset="tiny", config={}, repo_id="hfpie-test/toy-denoise",
        filename="model.safetensors", revision=REVISION, sha256=sha256_of(checkpoint),
        size=checkpoint.stat().st_size, default=True,
    )
    entries = {entry.name: entry}
    monkeypatch.setattr(hub, "load_manifest", lambda: entries)
    return entries


@pytest.fixture
def hub_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hub._CACHE.clear()
    with FakeHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        yield server
    hub._CACHE.clear()


def _serve(server: FakeHub, data: bytes) -> None:
    server.files[("hfpie-test/toy-denoise", REVISION, "model.safetensors")] = data


def test_download_verifies_and_loads(hub_env: FakeHub, manifest, checkpoint: Path, tmp_path: Path) -> None:
    _serve(hub_env, checkpoint.read_bytes())
    path = download_weights(manifest["toy-denoise"])
    assert str(path).startswith(str(tmp_path / "hf_home" / "hub"))  # HF_HOME honoured
    assert any(method == "GET" for method, _ in hub_env.requests)
    network = load_model("denoise", device="cpu")  # the task's default model
    expected = load_network(checkpoint)
    x = torch.rand(1, 3, 16, 16)
    with torch.inference_mode():
        assert (network(x) - expected(x)).abs().max() < 1e-4  # the same weights (inference-optimised)
    assert load_model("toy-denoise", device="cpu") is load_model("toy-denoise", device="cpu")  # cached


def test_hash_mismatch_is_a_clear_error_and_the_bad_file_is_not_kept(hub_env: FakeHub, manifest, checkpoint: Path,
                                                                       tmp_path: Path) -> None:
    data = bytearray(checkpoint.read_bytes())
    data[-1] ^= 0xFF
    _serve(hub_env, bytes(data))
    entry = manifest["toy-denoise"]
    with pytest.raises(WeightsIntegrityError) as error:
        download_weights(entry)
    message = str(error.value)
    assert entry.sha256 in message and "model.safetensors" in message and "hfpie download toy-denoise" in message
    assert "deleted" in message
    cached = [p for p in (tmp_path / "hf_home").rglob("*") if p.is_file() or p.is_symlink()]
    assert not any(p.name == "model.safetensors" or len(p.name) == 64 for p in cached), cached
    _serve(hub_env, checkpoint.read_bytes())  # a fixed upload downloads cleanly afterwards
    assert sha256_of(download_weights(entry)) == entry.sha256


def test_offline_cache_hit_and_miss(hub_env: FakeHub, manifest, checkpoint: Path, monkeypatch) -> None:
    entry = manifest["toy-denoise"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(NoPretrainedWeightsError, match="not in the local cache.*HF_HUB_OFFLINE"):
        download_weights(entry)
    assert not hub_env.requests, "offline mode must not touch the network"
    monkeypatch.delenv("HF_HUB_OFFLINE")
    _serve(hub_env, checkpoint.read_bytes())
    online = download_weights(entry)
    hub_env.files.clear()
    hub_env.requests.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert download_weights(entry) == online  # served from the cache
    assert not hub_env.requests


def test_bundled_copy_is_preferred_and_verified(monkeypatch, manifest, checkpoint: Path, tmp_path: Path) -> None:
    entry = manifest["toy-denoise"]
    monkeypatch.setattr(hub, "bundled_path", lambda e: checkpoint)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    assert download_weights(entry) == checkpoint
    corrupted = tmp_path / "corrupted.safetensors"
    corrupted.write_bytes(checkpoint.read_bytes()[:-1] + b"\x00")
    monkeypatch.setattr(hub, "bundled_path", lambda e: corrupted)
    with pytest.raises(WeightsIntegrityError, match="reinstall hfpie"):
        download_weights(entry)
    assert corrupted.exists(), "a bundled file is reported, never deleted"


def test_local_files_and_folders(checkpoint: Path, tmp_path: Path) -> None:
    network = load_network(checkpoint)
    assert network.config.num_blocks == (1, 2, 2)
    folder = tmp_path / "exported"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(checkpoint.read_bytes())
    (folder / "config.json").write_text(json.dumps({"config": network.config.to_dict()}))
    assert load_network(folder).config == network.config
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotFoundError, match="holds no model.safetensors"):
        load_network(empty)


def test_strict_loading_rejects_a_mismatched_or_pickled_file(checkpoint: Path, tmp_path: Path) -> None:
    other = make_network(2).config
    with pytest.raises(WeightsIntegrityError, match="does not fit the network config"):
        load_network(checkpoint, other)
    pickled = tmp_path / "weights.safetensors"
    torch.save({"a": torch.zeros(1)}, pickled)
    with pytest.raises(WeightsIntegrityError, match="safetensors files only"):
        load_network(pickled)


def test_unknown_names_and_missing_tasks(manifest) -> None:
    with pytest.raises(ModelNotFoundError, match="Unknown model 'nope'.*toy-denoise"):
        find_entry("nope")
    with pytest.raises(NoPretrainedWeightsError, match="task 'sr' at scale 4"):
        find_entry("sr", 4)


def test_shipped_manifest_is_consistent() -> None:
    root = Path(__file__).resolve().parents[1]
    top = json.loads((root / "weights_manifest.json").read_text())
    packaged = json.loads((root / "src" / "hfpie" / "weights_manifest.json").read_text())
    assert top == packaged
    for entry in hub.list_models():
        bundled = hub.bundled_path(entry)
        assert bundled is not None, f"{entry.name} is listed but not bundled"
        assert sha256_of(bundled) == entry.sha256 and bundled.stat().st_size == entry.size
        if entry.task == "hpf":  # the high-pass loss network of the training extra
            from hfpie.training.highpass import load_highpass_net

            load_highpass_net(bundled)
        else:
            load_network(bundled, entry.config or None)  # strict load succeeds
