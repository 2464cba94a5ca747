"""``hfpie demo``: a local web page to try the models (needs ``pip install "hfpie[demo]"``, Gradio).

Upload an image, pick the task, model and strength, compare before and after with a slider and
download the result. Images travel as PNG both ways (never a lossy format), at the input's bit depth.
Gradio is imported only by :func:`build_demo`, so ``import hfpie.demo`` and ``hfpie --help`` work
without it.

    >>> from hfpie.demo import launch_demo    # doctest: +SKIP
    >>> launch_demo(port=7860)                # doctest: +SKIP
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from .api import MAX_STRENGTH, check_strength, enhance_image_file, resolve_network
from .errors import HfpieError
from .hub import TASKS, find_entry, list_models
from .io import read_image, write_image

__all__ = ["DEMO_INSTALL_HINT", "build_demo", "enhance_upload", "launch_demo", "models_for_task"]

DEMO_INSTALL_HINT = 'the demo needs Gradio: pip install "hfpie[demo]"'
KEEP_SECONDS = 3600
"""Uploads and results older than this are deleted (ours and Gradio's cache)."""


def _import_gradio() -> Any:
    try:
        import gradio
    except ImportError:
        raise HfpieError(DEMO_INSTALL_HINT) from None
    return gradio


def models_for_task(task: str) -> tuple[list[str], str | None]:
    """The manifest's model names for ``task`` and the one to preselect (the task's default)."""
    names = [entry.name for entry in list_models() if entry.task == task]
    try:
        default = find_entry(task, scale=4 if task == "sr" else None).name  # enhance()'s default
    except HfpieError:
        default = names[0] if names else None
    return names, default


def enhance_upload(path: str | Path, task: str, model: str, strength: float, folder: str | Path, *,
                   device: str = "cpu") -> tuple[Path, Path, str]:
    """Enhance the image file at ``path``; write ``before.png`` and the result as PNGs into ``folder``.

    "Before" is the input (for SR upscaled bicubically to the result's size, so the slider lines up).

    Returns:
        (before PNG, result PNG, one line saying what ran).
    """
    strength = check_strength(task, strength)
    entry = find_entry(model)
    if entry.task != task:
        raise ValueError(f"model {model!r} is a {entry.task} model; for {task} choose one of "
                         f"{', '.join(models_for_task(task)[0])}")
    network = resolve_network(task, entry.scale, model, device)
    image = read_image(path)
    start = time.perf_counter()
    result = enhance_image_file(image, network, strength=strength, device=device)
    seconds = time.perf_counter() - start
    before = enhance_image_file(image, network, strength=0.0, device=device)
    folder = Path(folder)
    before_path = folder / "before.png"
    suffix = "" if strength == 1 else f"_strength{strength:g}"
    result_path = folder / f"{Path(path).stem}_{model}{suffix}.png"
    write_image(before_path, before)
    write_image(result_path, result)
    height, width = image.pixels.shape[:2]
    out_height, out_width = result.pixels.shape[:2]
    summary = (f"{task} with `{model}`, strength {strength:g}: {width}x{height} -> {out_width}x{out_height}, "
               f"{seconds:.2f} s on {device}")
    return before_path, result_path, summary


def build_demo(*, device: str = "cpu") -> Any:
    """The Gradio app (a ``gradio.Blocks``); raises :class:`HfpieError` when Gradio is missing."""
    gr = _import_gradio()
    workspace = tempfile.TemporaryDirectory(prefix="hfpie-demo-")  # removed with the app

    def run(path: str | None, task: str, model: str, strength: float) -> tuple[Any, Any, str]:
        if not path:
            raise gr.Error("Upload an image first.")
        _remove_older_than(Path(workspace.name), KEEP_SECONDS)  # Gradio has its own copies by then
        try:
            before, result, summary = enhance_upload(
                path, task, model, strength, tempfile.mkdtemp(dir=workspace.name), device=device
            )
        except (HfpieError, ValueError) as error:
            raise gr.Error(str(error)) from None
        return (str(before), str(result)), gr.DownloadButton(value=str(result), interactive=True), summary

    def switch_task(task: str, strength: float) -> tuple[Any, Any]:
        names, default = models_for_task(task)
        maximum = MAX_STRENGTH[task]
        return (gr.Dropdown(choices=names, value=default),
                gr.Slider(maximum=maximum, value=min(strength, maximum), info=_strength_info(task)))

    _, default = models_for_task("denoise")
    # Every model is a valid value (API calls are checked against these choices); the page narrows
    # the list to the chosen task's models.
    everything = [name for task_name in TASKS for name in models_for_task(task_name)[0]]
    with gr.Blocks(title="hfpie demo", analytics_enabled=False, delete_cache=(KEEP_SECONDS, KEEP_SECONDS)) as app:
        gr.Markdown("# hfpie: denoise, deblur, super-resolve\nUpload an image, choose a task, press **Enhance**.")
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.Image(label="Input image", type="filepath", image_mode=None, format="png", height=320,
                                  sources=["upload", "clipboard"], elem_id="input-image")
                task = gr.Radio(list(TASKS), value="denoise", label="Task", elem_id="task")
                model = gr.Dropdown(everything, value=default, label="Model", elem_id="model")
                strength = gr.Slider(0.0, MAX_STRENGTH["denoise"], value=1.0, step=0.05, label="Strength",
                                     info=_strength_info("denoise"), elem_id="strength")
                button = gr.Button("Enhance", variant="primary", elem_id="enhance")
            with gr.Column(scale=2):
                slider = gr.ImageSlider(label="Before / after", type="filepath", format="png",
                                        interactive=False, buttons=["fullscreen"], elem_id="before-after")
                download = gr.DownloadButton("Download result (PNG)", interactive=False, elem_id="download")
                status = gr.Markdown(elem_id="status")
        task.change(switch_task, [task, strength], [model, strength], api_name=False)
        app.load(switch_task, [task, strength], [model, strength], api_name=False)
        button.click(run, [upload, task, model, strength], [slider, download, status], api_name="enhance")
    return app


def _remove_older_than(folder: Path, seconds: float) -> None:
    """Delete the request folders under ``folder`` last changed more than ``seconds`` ago."""
    limit = time.time() - seconds
    for request in folder.iterdir():
        if request.is_dir() and request.stat().st_mtime < limit:
            shutil.rmtree(request, ignore_errors=True)


def _strength_info(task: str) -> str:
    zero = "the input upscaled" if task == "sr" else "the input"
    more = ", above 1 stronger" if MAX_STRENGTH[task] > 1 else ""
    return f"0 = {zero}, 1 = the model as trained{more}"


def launch_demo(*, host: str = "127.0.0.1", port: int | None = None, device: str = "cpu") -> None:
    """Serve the demo until interrupted (Ctrl-C)."""
    app = build_demo(device=device)
    app.queue(default_concurrency_limit=1).launch(server_name=host, server_port=port, share=False,
                                                  inbrowser=False, show_error=True, ssr_mode=False)
