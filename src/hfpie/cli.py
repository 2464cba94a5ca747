"""The ``hfpie`` command line: a thin typer wrapper over :mod:`hfpie.api`, :mod:`hfpie.io` and :mod:`hfpie.hub`.

Examples::

    hfpie denoise noisy.png -o clean.png
    hfpie sr photos/ --recursive --scale 4 -o upscaled/
    hfpie deblur "shots/*.jpg" -o sharp/ --tile 512
    hfpie denoise noisy.png -o softer.png --strength 0.5
    hfpie models
    hfpie demo
"""

from __future__ import annotations

import glob
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .api import resolve_network
from .errors import HfpieError

app = typer.Typer(
    name="hfpie",
    help="Denoise, deblur and super-resolve images with HFPIE networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"}

# Reusable option types.
InputsArg = Annotated[list[str], typer.Argument(help="Image files, folders or glob patterns.", show_default=False)]
OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Output file (one input) or folder.")]
ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="Model name or .safetensors path (default: the task's model).")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, cuda:1, mps (default: best available).")]
TileOpt = Annotated[Optional[int], typer.Option("--tile", help="Tile core size in pixels (default: fit device memory).")]
Fp32Opt = Annotated[bool, typer.Option("--fp32", help="Disable float16 autocast on CUDA.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace existing output files (even an input).")]
RecursiveOpt = Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders of input folders.")]
StrengthOpt = Annotated[float, typer.Option("--strength", help="0 = the input (sr: upscaled), 1 = the model as trained; denoise takes up to 2 for stronger denoising.")]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def collect_inputs(patterns: list[str], recursive: bool) -> list[tuple[Path, Path]]:
    """(file, path relative to its input root) for every image named by files, folders or globs.

    Files named explicitly are kept even if their suffix is unusual (reading them reports problems);
    folders contribute files with image suffixes only.
    """
    found: list[tuple[Path, Path]] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            walker = path.rglob("*") if recursive else path.glob("*")
            for item in sorted(walker):
                if item.is_file() and item.suffix.lower() in IMAGE_SUFFIXES:
                    found.append((item, item.relative_to(path)))
        elif not path.exists() and glob.has_magic(pattern):
            for match in sorted(glob.glob(pattern, recursive=recursive)):
                if Path(match).is_file():
                    found.append((Path(match), Path(Path(match).name)))
        else:
            found.append((path, Path(path.name)))  # missing files are reported when read
    return found


def _plan_outputs(inputs: list[tuple[Path, Path]], output: Path) -> list[tuple[Path, Path]]:
    single_file = len(inputs) == 1 and output.suffix.lower() in IMAGE_SUFFIXES and not output.is_dir()
    if single_file:
        return [(inputs[0][0], output)]
    if output.exists() and not output.is_dir():
        raise _fail(f"{output} is a file, but {len(inputs)} inputs need an output folder")
    return [(source, output / relative) for source, relative in inputs]


def _restore(task: str, inputs: list[str], output: Path, *, scale: int, model: str | None, device: str | None,
             tile: int | None, fp32: bool, overwrite: bool, recursive: bool, strength: float = 1.0) -> None:
    import torch

    from .api import _progress_callback, check_strength, enhance_image_file
    from .io import read_image, write_image

    try:
        strength = check_strength(task, strength)
    except ValueError as error:
        raise _fail(str(error)) from None
    jobs = _plan_outputs(collect_inputs(inputs, recursive), output)
    if not jobs:
        raise _fail("no input images found (give files, folders or glob patterns)")
    try:
        network = resolve_network(task, scale, model, device)
    except (HfpieError, ValueError) as error:
        raise _fail(str(error)) from None
    half = False if fp32 else None
    if device is not None:
        torch_device = torch.device(device)
    else:
        torch_device = next(network.parameters()).device
    failures = 0
    show_progress = sys.stderr.isatty()
    for index, (source, target) in enumerate(jobs, start=1):
        try:
            if target.exists() and not overwrite:
                same = source.exists() and target.resolve() == source.resolve()
                raise HfpieError(
                    f"{target}: {'is the input itself' if same else 'already exists'}; pass --overwrite to replace it"
                )
            image = read_image(source)
            if show_progress:
                typer.echo(f"[{index}/{len(jobs)}] {source}", err=True)
            result = enhance_image_file(
                image, network, device=torch_device, tile=tile, half=half, halo=None,
                progress=_progress_callback(show_progress), strength=strength,
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            write_image(target, result)
        except (HfpieError, OSError, ValueError) as error:
            failures += 1
            typer.echo(f"error: {error}", err=True)
    done = len(jobs) - failures
    typer.echo(f"{task}: wrote {done} of {len(jobs)} image(s)" + (f", {failures} failed" if failures else ""), err=True)
    if failures:
        raise typer.Exit(1)


@app.command()
def denoise(inputs: InputsArg, output: OutputOpt, model: ModelOpt = None, device: DeviceOpt = None,
            tile: TileOpt = None, fp32: Fp32Opt = False, overwrite: OverwriteOpt = False,
            recursive: RecursiveOpt = False, strength: StrengthOpt = 1.0) -> None:
    """Remove noise. Example: hfpie denoise noisy.png -o clean.png"""
    _restore("denoise", inputs, output, scale=1, model=model, device=device, tile=tile, fp32=fp32,
             overwrite=overwrite, recursive=recursive, strength=strength)


@app.command()
def deblur(inputs: InputsArg, output: OutputOpt, model: ModelOpt = None, device: DeviceOpt = None,
           tile: TileOpt = None, fp32: Fp32Opt = False, overwrite: OverwriteOpt = False,
           recursive: RecursiveOpt = False, strength: StrengthOpt = 1.0) -> None:
    """Remove blur (blind). Example: hfpie deblur blurry.jpg -o sharp.jpg"""
    _restore("deblur", inputs, output, scale=1, model=model, device=device, tile=tile, fp32=fp32,
             overwrite=overwrite, recursive=recursive, strength=strength)


@app.command()
def sr(inputs: InputsArg, output: OutputOpt,
       scale: Annotated[int, typer.Option("--scale", "-s", help="Upscaling factor.")] = 4,
       model: ModelOpt = None, device: DeviceOpt = None, tile: TileOpt = None, fp32: Fp32Opt = False,
       overwrite: OverwriteOpt = False, recursive: RecursiveOpt = False, strength: StrengthOpt = 1.0) -> None:
    """Super-resolve (upscale). Example: hfpie sr small.png --scale 4 -o large.png"""
    _restore("sr", inputs, output, scale=scale, model=model, device=device, tile=tile, fp32=fp32,
             overwrite=overwrite, recursive=recursive, strength=strength)


@app.command()
def demo(host: Annotated[str, typer.Option("--host", help="Address to serve on (0.0.0.0: reachable from other machines).")] = "127.0.0.1",
         port: Annotated[Optional[int], typer.Option("--port", help="Port (default: 7860, or the next free one).")] = None,
         device: Annotated[str, typer.Option("--device", help="Where the models run: cpu, cuda, mps.")] = "cpu") -> None:
    """Open a web page to try the models (needs `pip install "hfpie\\[demo]"`). Example: hfpie demo --port 7860"""
    from .demo import launch_demo

    try:
        launch_demo(host=host, port=port, device=device)
    except HfpieError as error:  # Gradio missing
        raise _fail(str(error)) from None


@app.command("models")
def models_command() -> None:
    """List the pretrained models and where their weights are."""
    from .hub import bundled_path, list_models

    entries = list_models()
    if not entries:
        typer.echo("No pretrained models are listed in this installation's weights manifest.")
        return
    typer.echo(f"{'name':<14} {'task':<8} {'scale':>5} {'default':>7} {'size':>9}  source")
    for entry in entries:
        source = "bundled" if bundled_path(entry) else f"hub: {entry.repo_id}"
        typer.echo(f"{entry.name:<14} {entry.task:<8} {entry.scale:>5} {'yes' if entry.default else '':>7} "
                   f"{entry.size / 1e6:>7.2f}MB  {source}")


@app.command()
def download(model: Annotated[str, typer.Argument(help="Model name (see `hfpie models`).")],
             force: Annotated[bool, typer.Option("--force", help="Download again even if cached.")] = False) -> None:
    """Download a model's weights from the Hugging Face Hub into the local cache and verify them."""
    from .hub import download_weights, find_entry

    try:
        path = download_weights(find_entry(model), use_bundled=False, force=force)
    except HfpieError as error:
        raise _fail(str(error)) from None
    typer.echo(str(path))


@app.command("hub-export")
def hub_export(model: Annotated[str, typer.Argument(help="Model name or .safetensors path.")],
               folder: Annotated[Path, typer.Argument(help="Folder to write the Hub repository into.")],
               overwrite: OverwriteOpt = False) -> None:
    """Write an upload-ready Hub folder: model.safetensors, config.json and a README.md model card."""
    from .export import export_hub_folder

    try:
        export_hub_folder(model, folder, overwrite=overwrite)
    except (HfpieError, ValueError, FileExistsError) as error:
        raise _fail(str(error)) from None
    typer.echo(f"wrote {folder}")


@app.command()
def train(config: Annotated[Optional[str], typer.Argument(help="TOML or YAML training config (optional).")] = None,
          overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides (JSON values).")] = None,
          run_dir: Annotated[Path, typer.Option("--run-dir", help="Folder for checkpoints and logs.")] = Path("runs/latest"),
          resume: Annotated[bool, typer.Option("--resume", help="Continue from RUN_DIR/last.pt.")] = False) -> None:
    """Train a model (needs `pip install hfpie[train]`). Example: hfpie train configs/denoise.toml steps=2000"""
    from .training.config import load_train_config
    from .training.trainer import train as run_training

    overrides = list(overrides or [])
    if config is not None and "=" in config and not Path(config).exists():
        config, overrides = None, [config, *overrides]  # no config file, only overrides
    try:
        settings = load_train_config(config, overrides)
    except (ValueError, OSError) as error:
        raise _fail(str(error)) from None
    run_training(settings, run_dir, resume=resume)
    typer.echo(f"done: {run_dir / 'final.safetensors'}")


@app.command("train-hpf")
def train_hpf(folders: Annotated[list[Path], typer.Argument(help="Folders of clean training images.")],
              output: OutputOpt,
              steps: Annotated[int, typer.Option(help="Training steps.")] = 3000,
              patch_size: Annotated[int, typer.Option(help="Patch side.")] = 64,
              val_folder: Annotated[Optional[Path], typer.Option(help="Clean images to report the fit on.")] = None,
              seed: Annotated[int, typer.Option(help="Random seed.")] = 0) -> None:
    """Train the high-pass filtering loss network on FFT high-pass targets and report its fit."""
    from .training.hpf_training import train_hpf_network

    report = train_hpf_network([str(f) for f in folders], output, steps=steps, patch_size=patch_size,
                               val_folder=None if val_folder is None else str(val_folder), seed=seed)
    typer.echo(f"wrote {output}: " + ", ".join(f"{k} {v:.4f}" for k, v in report.items() if isinstance(v, float)))


@app.command("eval")
def eval_command(model: Annotated[str, typer.Argument(help="Model name, .safetensors path, or 'input' for the degraded input / bicubic.")],
                 data: Annotated[Path, typer.Argument(help="Folder of clean validation images (or noisy/clean pairs).")],
                 task: Annotated[str, typer.Option(help="denoise, denoise-real, deblur or sr.")] = "denoise",
                 sigma: Annotated[Optional[int], typer.Option(help="AWGN sigma (denoise).")] = None,
                 scale: Annotated[int, typer.Option(help="SR factor.")] = 4,
                 report: Annotated[Optional[Path], typer.Option("--report", help="Write a .csv or .md table.")] = None,
                 max_images: Annotated[int, typer.Option(help="Only the first N images (0 = all).")] = 0,
                 device: DeviceOpt = None) -> None:
    """PSNR/SSIM (RGB and Y), LPIPS when available and seconds per megapixel on a validation folder."""
    from .training.evaluation import evaluate_folder, format_report, summarize

    network = None
    if model != "input":
        try:
            network = resolve_network("sr" if task == "sr" else "denoise", scale, model, device)
        except (HfpieError, ValueError) as error:
            raise _fail(str(error)) from None
    scores = evaluate_folder(network, data, task if task != "denoise-real" else "denoise-real", sigma=sigma,
                             scale=scale if task == "sr" else None, max_images=max_images,
                             device=device or "cpu")
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(format_report(scores, "csv" if report.suffix == ".csv" else "markdown"))
    summary = summarize(scores)
    typer.echo(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v if v is not None else 'n/a'}"
                        for k, v in summary.items()))


@app.command("export-onnx")
def export_onnx_command(
        model: Annotated[str, typer.Argument(help="Model name, task name or .safetensors path.")],
        out: Annotated[Path, typer.Argument(help="The .onnx file to write.")],
        task: Annotated[Optional[str], typer.Option(help="denoise, deblur or sr (default: sr for models of scale > 1, else denoise).")] = None,
        scale: Annotated[int, typer.Option(help="SR factor, for a task name as MODEL.")] = 4,
        opset: Annotated[int, typer.Option(help="ONNX opset version.")] = 17,
        check: Annotated[Optional[bool], typer.Option("--check/--no-check", help="Compare with PyTorch in onnxruntime (default: when onnxruntime is installed).")] = None,
        overwrite: OverwriteOpt = False) -> None:
    """Export a model to ONNX (dynamic batch, height and width; height and width multiples of the model's multiple_of)."""
    import importlib.util

    from .hub import TASKS, load_model
    from .onnx_export import check_onnx, default_check_sizes, export_onnx

    if out.exists() and not overwrite:
        raise _fail(f"{out} already exists; pass --overwrite to replace it")
    if check is None:
        check = importlib.util.find_spec("onnxruntime") is not None
    try:
        if task is None:
            if model in TASKS:
                task = model
            else:
                task = "sr" if load_model(model, device="cpu").config.scale > 1 else "denoise"
        if task == "sr" and model not in TASKS:
            scale = load_model(model, device="cpu").config.scale
        network = resolve_network(task, scale, None if model in TASKS else model, "cpu")
        export_onnx(network, out, opset=opset)
    except (HfpieError, ValueError, ImportError) as error:
        raise _fail(str(error)) from None
    config = network.config
    factor = "" if config.scale == 1 else str(config.scale)
    typer.echo(f"wrote {out}: input 'image' (N, 3, H, W) float32 in [0, 1], H and W multiples of "
               f"{config.multiple_of}; output 'output' (N, 3, {factor}H, {factor}W), not clamped")
    if check:
        sizes = default_check_sizes(network)
        try:
            difference = check_onnx(network, out, sizes=sizes)
        except ImportError as error:
            raise _fail(str(error)) from None
        except HfpieError as error:
            raise _fail(str(error), code=1) from None
        typer.echo(f"onnxruntime vs PyTorch max abs diff: {difference:.3g} "
                   f"(inputs {', '.join(f'{h}x{w}' for h, w in sizes)})")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:  # nothing half-written: every write is atomic
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
