"""``hfpie demo``: the page in a real browser (headless Chromium + Selenium), its API through the Gradio
client, and the parts that need neither (the enhance step, the missing-extra message, a fast --help).

The server runs as ``python -m hfpie.cli demo --port <free port>`` in a child process, is shared by
the tests of this module and is stopped at the end. The bundled ``denoise`` and ``sr-x4`` models run
on small images, so a whole run takes seconds after the server has started. Outside CI the browser
and server tests skip when Chromium, Gradio or Selenium are missing; in CI (``CI`` set, as in
``.ci/run``, which installs them) they fail instead, so a broken install cannot pass as a skip.
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import hfpie
from hfpie import enhance
from hfpie.cli import app
from hfpie.demo import DEMO_INSTALL_HINT, enhance_upload, models_for_task

IN_CI = bool(os.environ.get("CI"))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _missing(reason: str) -> None:
    """Skip outside CI; fail in CI, where .ci/run installs everything these tests need."""
    if IN_CI:
        pytest.fail(f"{reason} (CI installs it in .ci/run; the install step must have failed)")
    pytest.skip(reason)


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        _missing(f'{module} is not installed: pip install "hfpie[demo]" selenium')


def find_chromium() -> tuple[str, str] | None:
    """(browser, chromedriver) paths of a Chromium install (Debian: apt-get install chromium chromium-driver)."""
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver") or next(
        (p for p in ("/usr/lib/chromium/chromedriver", "/usr/lib/chromium-browser/chromedriver") if os.path.exists(p)),
        None,
    )
    return (browser, driver) if browser and driver else None


def _noisy_image(path: Path, size: tuple[int, int] = (48, 64), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : size[0], 0 : size[1]]
    clean = np.stack([128 + 80 * np.sin(x / 7 + c) * np.cos(y / 9 - c) for c in range(3)], axis=-1)
    pixels = np.clip(np.round(clean + rng.normal(0, 25, clean.shape)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def _png_pixels(data: bytes) -> np.ndarray:
    assert data.startswith(PNG_SIGNATURE), f"expected a PNG, got {data[:8]!r}"
    return np.asarray(Image.open(io.BytesIO(data)))


def _assert_close_to(actual: np.ndarray, expected: np.ndarray) -> None:
    """Same image up to float rounding: the server may run with other thread counts than the test."""
    assert actual.shape == expected.shape
    difference = np.abs(actual.astype(int) - expected.astype(int))
    assert difference.max() <= 1 and difference.mean() < 0.01, np.bincount(difference.ravel())


# --- without a browser or Gradio -------------------------------------------------------------------


def test_enhance_upload_writes_before_and_result_as_png(tmp_path: Path) -> None:
    source = tmp_path / "photo.png"
    pixels = _noisy_image(source)
    before, result, summary = enhance_upload(source, "denoise", "denoise", 0.5, tmp_path)
    np.testing.assert_array_equal(_png_pixels(before.read_bytes()), pixels)
    np.testing.assert_array_equal(_png_pixels(result.read_bytes()), enhance(pixels, strength=0.5, device="cpu"))
    assert result.name == "photo_denoise_strength0.5.png"
    assert summary.startswith("denoise with `denoise`, strength 0.5: 64x48 -> 64x48")

    jpeg = tmp_path / "small.jpg"
    Image.fromarray(pixels[:20, :24]).save(jpeg, quality=90)
    before, result, _ = enhance_upload(jpeg, "sr", "sr-x4", 1.0, tmp_path)
    assert _png_pixels(before.read_bytes()).shape == _png_pixels(result.read_bytes()).shape == (80, 96, 3)


def test_enhance_upload_refuses_a_model_of_another_task(tmp_path: Path) -> None:
    source = tmp_path / "photo.png"
    _noisy_image(source, size=(8, 8))
    with pytest.raises(ValueError, match="model 'denoise' is a denoise model; for sr choose one of sr-x2"):
        enhance_upload(source, "sr", "denoise", 1.0, tmp_path)
    with pytest.raises(ValueError, match="between 0"):
        enhance_upload(source, "deblur", "deblur", 2.0, tmp_path)
    assert models_for_task("sr")[1] == "sr-x4"


def test_old_request_folders_are_removed(tmp_path: Path) -> None:
    from hfpie.demo import _remove_older_than

    old, new = tmp_path / "old", tmp_path / "new"
    for folder in (old, new):
        folder.mkdir()
        (folder / "result.png").write_bytes(PNG_SIGNATURE)
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    _remove_older_than(tmp_path, 3600)
    assert not old.exists() and (new / "result.png").exists()


def test_demo_without_gradio_says_how_to_install_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {DEMO_INSTALL_HINT}"
    assert DEMO_INSTALL_HINT == 'the demo needs Gradio: pip install "hfpie[demo]"'


def test_cli_help_does_not_import_gradio() -> None:
    code = "import sys, hfpie.cli, hfpie.demo; print('gradio' in sys.modules, 'selenium' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env=_child_env()).stdout
    assert output.split() == ["False", "False"]


# --- the server, its API and the page ---------------------------------------------------------------


def _child_env(**extra: str) -> dict[str, str]:
    """The test's environment, with this checkout's hfpie first on the path."""
    source = str(Path(hfpie.__file__).resolve().parents[1])
    path = os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **extra}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running ``hfpie demo`` on a free local port; stopped (and checked stopped) afterwards."""
    _require("gradio")
    folder = tmp_path_factory.mktemp("demo-server")
    port = _free_port()
    log = open(folder / "server.log", "w+")
    env = _child_env(GRADIO_TEMP_DIR=str(folder / "gradio"), GRADIO_ANALYTICS_ENABLED="False",
                     HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    server = subprocess.Popen([sys.executable, "-m", "hfpie.cli", "demo", "--host", "127.0.0.1", "--port", str(port)],
                              stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                log.seek(0)
                pytest.fail(f"hfpie demo exited with {server.returncode}:\n{log.read()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"hfpie demo did not answer on {url} within 120 s:\n{log.read()}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=20)
        log.close()
        with socket.socket() as probe:  # the port is free again: nothing is left listening
            assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_demo_api_through_the_gradio_client(demo_url: str, tmp_path: Path) -> None:
    _require("gradio_client")
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    source = tmp_path / "noisy.png"
    pixels = _noisy_image(source)
    client = Client(demo_url, verbose=False, download_files=str(tmp_path / "downloads"))
    (before, result), download, summary = client.predict(handle_file(str(source)), "denoise", "denoise", 0.5,
                                                         api_name="/enhance")
    np.testing.assert_array_equal(_png_pixels(Path(before).read_bytes()), pixels)
    _assert_close_to(_png_pixels(Path(result).read_bytes()), enhance(pixels, strength=0.5, device="cpu"))
    assert Path(download["value"]).read_bytes() == Path(result).read_bytes()
    assert "strength 0.5" in summary
    with pytest.raises(AppError, match="strength for 'deblur' must be between 0"):
        client.predict(handle_file(str(source)), "deblur", "deblur", 1.5, api_name="/enhance")


@pytest.fixture(scope="module")  # module scope, listed first: runs before the module-scoped server
def chromium() -> tuple[str, str]:
    """Chromium and chromedriver paths, and Selenium (checked before the server starts)."""
    _require("selenium")
    found = find_chromium()
    if found is None:
        _missing("Chromium and chromedriver not found (Debian: apt-get install chromium chromium-driver)")
    return found


def test_demo_page_in_headless_chromium(chromium: tuple[str, str], demo_url: str, tmp_path: Path) -> None:
    """Upload, run denoise at strength 0.5 and SR x4, check the slider's images and the downloaded file."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    source = tmp_path / "noisy.png"
    pixels = _noisy_image(source)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium[0]
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1000"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    # An explicit driver path: Selenium does not try to download one (there is no network in CI).
    driver = webdriver.Chrome(service=Service(chromium[1]), options=options)
    wait = WebDriverWait(driver, 90, poll_frequency=0.25)

    def slider_sources(suffix: str, previous: tuple[str, ...] = ()) -> list[str]:
        """The before and after image URLs, once the after image is named ``...suffix`` and neither is
        one of ``previous`` (the two images are swapped one after the other)."""
        def ready(_) -> list[str] | bool:
            sources = [img.get_attribute("src") or "" for img in driver.find_elements(By.CSS_SELECTOR, "#before-after img")]
            fresh = len(sources) == 2 and not set(sources) & set(previous)
            return sources if fresh and sources[1].endswith(suffix) else False
        return wait.until(ready)

    def fetch(url: str) -> bytes:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.read()

    try:
        driver.get(demo_url)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#input-image input[type=file]"))
        driver.find_element(By.CSS_SELECTOR, "#input-image input[type=file]").send_keys(str(source))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#input-image img"))  # the upload is shown
        number = driver.find_element(By.CSS_SELECTOR, "#strength input[type=number]")
        number.clear()
        number.send_keys("0.5", Keys.TAB)
        driver.find_element(By.CSS_SELECTOR, "#enhance").click()

        before_url, after_url = slider_sources("noisy_denoise_strength0.5.png")
        np.testing.assert_array_equal(_png_pixels(fetch(before_url)), pixels)
        after = fetch(after_url)
        _assert_close_to(_png_pixels(after), enhance(pixels, strength=0.5, device="cpu"))
        assert "strength 0.5: 64x48 -> 64x48" in driver.find_element(By.CSS_SELECTOR, "#status").text.replace("\n", " ")

        driver.find_element(By.CSS_SELECTOR, "#download").click()  # the browser saves the result
        target = downloads / "noisy_denoise_strength0.5.png"
        wait.until(lambda _: target.exists() and target.read_bytes() == after)

        # Switching the task offers that task's models (sr-x4 preselected); the slider's sides line up.
        driver.find_element(By.XPATH, "//*[@id='task']//label[normalize-space()='sr']").click()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#model input").get_attribute("value") == "sr-x4")
        driver.find_element(By.CSS_SELECTOR, "#enhance").click()
        before_url, after_url = slider_sources("noisy_sr-x4_strength0.5.png", previous=(before_url, after_url))
        assert _png_pixels(fetch(before_url)).shape == _png_pixels(fetch(after_url)).shape == (192, 256, 3)
    except Exception:
        driver.save_screenshot(str(tmp_path / "failure.png"))
        raise
    finally:
        driver.quit()
