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


# --- models by Hub id: owner/repo[@revision], as `hfpie hub-export` writes them ------------------------------

COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


def _publish(server: FakeHub, repo_id: str, folder: Path, commit: str, *refs: str) -> None:
    """Serve every file of ``folder`` as commit ``commit`` of ``repo_id``; ``refs`` (branches, tags) point at it."""
    for path in folder.iterdir():
        server.files[(repo_id, commit, path.name)] = path.read_bytes()
    for ref in refs:
        server.refs[(repo_id, ref)] = commit


@pytest.fixture
def hub_repo(hub_env: FakeHub, tmp_path: Path) -> dict[str, Path]:
    """someone/toy: commit A (tag v1) holds one network, commit B (main) another; both from `hfpie hub-export`."""
    from hfpie.export import export_hub_folder

    checkpoints = {}
    for commit, seed in [(COMMIT_A, 3), (COMMIT_B, 4)]:
        checkpoint = save_checkpoint(make_network(seed=seed), tmp_path / f"{seed}.safetensors", name="toy", task="denoise")
        folder = export_hub_folder(checkpoint, tmp_path / f"export-{seed}", repo_id="someone/toy")
        _publish(hub_env, "someone/toy", folder, commit, "v1" if commit == COMMIT_A else "main")
        checkpoints[commit] = checkpoint
    return checkpoints


def _same_weights(network: torch.nn.Module, checkpoint: Path) -> bool:
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        return bool((network(x) - load_network(checkpoint)(x)).abs().max() < 1e-4)


def test_a_hub_id_loads_the_exported_repository_through_the_hub_cache(hub_env: FakeHub, hub_repo, tmp_path: Path) -> None:
    import numpy as np

    from hfpie import enhance

    network = load_model("someone/toy", device="cpu")
    assert _same_weights(network, hub_repo[COMMIT_B]) and not _same_weights(network, hub_repo[COMMIT_A])
    snapshot = tmp_path / "hf_home" / "hub" / "models--someone--toy" / "snapshots" / COMMIT_B
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json", "model.safetensors"]  # no README needed
    # the branch is resolved once: the weights are fetched at the commit the config came from
    weights_requests = [path for _, path in hub_env.requests if path.endswith("/model.safetensors")]
    assert weights_requests and all(f"/resolve/{COMMIT_B}/" in path for path in weights_requests)
    hub_env.requests.clear()
    image = np.random.default_rng(0).integers(0, 255, (12, 10, 3), dtype=np.uint8)
    expected = enhance(image, model=load_network(hub_repo[COMMIT_B]), precision="fp32")
    np.testing.assert_array_equal(enhance(image, model="someone/toy", device="cpu", precision="fp32"), expected)
    assert not hub_env.requests, "a loaded Hub model is cached per id: no new request"


def test_revision_in_the_id_or_as_an_argument(hub_env: FakeHub, hub_repo) -> None:
    assert _same_weights(load_model(f"someone/toy@{COMMIT_A}", device="cpu"), hub_repo[COMMIT_A])
    assert _same_weights(load_model("someone/toy@v1", device="cpu"), hub_repo[COMMIT_A])  # a tag
    assert _same_weights(load_model("someone/toy", revision="v1", device="cpu"), hub_repo[COMMIT_A])
    assert _same_weights(load_model("someone/toy@main", device="cpu"), hub_repo[COMMIT_B])
    with pytest.raises(ValueError, match="Two revisions"):
        load_model("someone/toy@v1", revision="main")
    with pytest.raises(ValueError, match="applies to Hub repositories"):
        load_model("denoise", revision="v1")


def test_missing_repository_revision_or_hfpie_files_are_one_line_errors(hub_env: FakeHub, hub_repo,
                                                                           tmp_path: Path) -> None:
    cases = [
        ("someone/missing", "Hub repository 'someone/missing' was not found"),
        ("someone/toy@nope", "Hub repository 'someone/toy' has no revision 'nope'"),
    ]
    hub_env.files[("someone/raw", COMMIT_A, "model.safetensors")] = hub_repo[COMMIT_A].read_bytes()
    hub_env.refs[("someone/raw", "main")] = COMMIT_A
    cases.append(("someone/raw", "has no config.json: it is not an hfpie model repository.*hfpie hub-export"))
    for model, message in cases:
        with pytest.raises(ModelNotFoundError, match=message) as error:
            load_model(model, device="cpu")
        assert "\n" not in str(error.value)
    from safetensors.torch import save_file  # another library's repository: config.json, weights without metadata

    save_file({"weight": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    hub_env.files[("someone/other", COMMIT_A, "config.json")] = b'{"model_type": "bert"}'
    hub_env.files[("someone/other", COMMIT_A, "model.safetensors")] = (tmp_path / "other.safetensors").read_bytes()
    hub_env.refs[("someone/other", "main")] = COMMIT_A
    with pytest.raises(WeightsIntegrityError, match="carries no network config.*not an hfpie model"):
        load_model("someone/other", device="cpu")
    assert not list((tmp_path / "hf_home" / "hub").glob("models--someone--raw/snapshots/*/model.safetensors"))


def test_hub_ids_offline_use_the_cache_only(hub_env: FakeHub, hub_repo, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(NoPretrainedWeightsError, match="not in the local cache.*HF_HUB_OFFLINE.*hfpie download someone/toy"):
        load_model("someone/toy", device="cpu")
    assert not hub_env.requests
    monkeypatch.delenv("HF_HUB_OFFLINE")
    hub.download_repo("someone/toy", "v1")
    hub._CACHE.clear()
    hub_env.requests.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert _same_weights(load_model("someone/toy@v1", device="cpu"), hub_repo[COMMIT_A])
    assert not hub_env.requests


def test_the_sha256_recorded_in_config_json_is_checked(hub_env: FakeHub, hub_repo) -> None:
    hub_env.files[("someone/toy", COMMIT_B, "model.safetensors")] = hub_repo[COMMIT_A].read_bytes()
    with pytest.raises(WeightsIntegrityError, match="does not match the sha256 in its config.json.*--force"):
        load_model("someone/toy", device="cpu")


def test_model_source_tells_names_paths_and_hub_ids_apart(manifest, tmp_path: Path, monkeypatch) -> None:
    from hfpie.hub import ModelSource, model_source

    monkeypatch.chdir(tmp_path)
    (tmp_path / "local" / "model").mkdir(parents=True)
    assert model_source("toy-denoise") == ModelSource("manifest", "toy-denoise")
    assert model_source("sr") == ModelSource("manifest", "sr")
    assert model_source("runs/x/final.safetensors") == ModelSource("path", "runs/x/final.safetensors")
    assert model_source(tmp_path / "x") == ModelSource("path", str(tmp_path / "x"))
    assert model_source("local/model") == ModelSource("path", "local/model")  # an existing folder wins
    assert model_source("someone/toy") == ModelSource("hub", "someone/toy")
    assert model_source("some-one/toy.v2@refs/pr/1") == ModelSource("hub", "some-one/toy.v2", "refs/pr/1")
    assert model_source("someone/toy", revision="v1") == ModelSource("hub", "someone/toy", "v1")
    for wrong in ["nope", "a/b/c", "someone/to--y", "/abs/missing"]:
        with pytest.raises(ModelNotFoundError, match="Unknown model.*owner/repo"):
            model_source(wrong)


def test_the_loss_network_is_not_an_image_model(tmp_path: Path) -> None:
    from hfpie.export import export_hub_folder

    with pytest.raises(ModelNotFoundError, match="'hpf' is the high-pass filtering loss network"):
        load_model("hpf", device="cpu")
    folder = export_hub_folder("hpf", tmp_path / "hpf")
    with pytest.raises(ModelNotFoundError, match="loss network"):
        load_model(folder, device="cpu")


# --- the Hub commands of the CLI ------------------------------------------------------------------------------

def _cli(*args: str):
    from typer.testing import CliRunner

    from hfpie.cli import app

    return CliRunner().invoke(app, list(args))


def _one_line_error(result, exit_code: int = 2) -> str:
    assert result.exit_code == exit_code, result.output
    assert isinstance(result.exception, SystemExit), f"traceback: {result.exception!r}"
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_cli_downloads_and_uses_hub_ids(hub_env: FakeHub, hub_repo, tmp_path: Path) -> None:
    from PIL import Image

    result = _cli("download", "someone/toy@v1")
    assert result.exit_code == 0, result.output
    folder = Path(result.output.strip())
    assert folder.name == COMMIT_A and (folder / "model.safetensors").read_bytes() == hub_env.files[
        ("someone/toy", COMMIT_A, "model.safetensors")]
    Image.new("RGB", (10, 8), (120, 60, 30)).save(tmp_path / "in.png")
    result = _cli("denoise", str(tmp_path / "in.png"), "-m", "someone/toy@v1", "-o", str(tmp_path / "out.png"),
                  "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out.png").size == (10, 8)
    line = _one_line_error(_cli("denoise", str(tmp_path / "in.png"), "-m", "someone/missing", "-o",
                                str(tmp_path / "x.png")))
    assert "'someone/missing' was not found" in line and not (tmp_path / "x.png").exists()
    assert "has no revision 'nope'" in _one_line_error(_cli("download", "someone/toy@nope"))


def test_cli_download_force_while_offline_is_a_one_line_error(hub_env: FakeHub, manifest, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for model in ["toy-denoise", "someone/toy"]:
        line = _one_line_error(_cli("download", model, "--force"))
        assert "HF_HUB_OFFLINE is set" in line and "leave out --force" in line
    assert not hub_env.requests
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    line = _one_line_error(_cli("download", "someone/toy", "--force"))
    assert "downloading it again failed" in line and "hfpie download someone/toy --force" in line


def test_cli_hub_export_of_a_pickle_or_missing_file_is_a_one_line_error(tmp_path: Path) -> None:
    pickled = tmp_path / "model.pth"
    torch.save(make_network().state_dict(), pickled)
    line = _one_line_error(_cli("hub-export", str(pickled), str(tmp_path / "out")))
    assert "model.pth" in line and "never unpickles" in line and "save_file" in line
    line = _one_line_error(_cli("hub-export", str(tmp_path / "missing.pth"), str(tmp_path / "out")))
    assert "does not exist" in line
    assert not (tmp_path / "out").exists()


def test_cli_models_shows_where_each_model_comes_from() -> None:
    result = _cli("models")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for entry in hub.list_models():
        row = next(line for line in lines if line.split()[:1] == [entry.name])
        assert f"{entry.repo_id}@{entry.revision[:12]}" in row and entry.license in row
        assert str(hub.bundled_path(entry)) in row
        assert ("loss-net*" in row) == (entry.task == "hpf")
    assert any(line.startswith("* task 'hpf': the high-pass filtering loss network") for line in lines)


def test_an_unreachable_hub_fails_fast_and_says_what_to_do(manifest, monkeypatch, tmp_path: Path) -> None:
    import time

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    hub._CACHE.clear()
    start = time.monotonic()
    with pytest.raises(NoPretrainedWeightsError) as error:
        download_weights(manifest["toy-denoise"])
    assert time.monotonic() - start < 10  # huggingface_hub alone retries for ~25 s
    message = str(error.value)
    assert "cannot be reached" in message and "not in the local cache" in message and "\n" not in message
    assert "hfpie models" in message and "--model PATH" in message and "hfpie download toy-denoise" in message
    start = time.monotonic()
    line = _one_line_error(_cli("download", "someone/toy"))
    assert "cannot be reached" in line and time.monotonic() - start < 10
