"""The ``hfpie`` command line: a thin typer wrapper over :mod:`hfpie.api`, :mod:`hfpie.io` and :mod:`hfpie.hub`.

Examples::

    hfpie denoise noisy.png -o clean.png
    hfpie sr photos/ --recursive --scale 4 -o upscaled/
    hfpie deblur "shots/**/*.jpg" -o sharp/ --tile 512 --skip-existing
    hfpie denoise noisy.png -o softer.png --strength 0.5
    hfpie sr small.png --scale 4 -o large.png --ensemble 8
    hfpie models
    hfpie demo

torch is imported inside the commands that run a network, so ``hfpie --help`` starts quickly.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from .errors import HfpieError

if TYPE_CHECKING:
    import torch

    from .batch import Job
    from .models import HFPIENet

app = typer.Typer(
    name="hfpie",
    help="Denoise, deblur and super-resolve images with HFPIE networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Reusable option types.
InputsArg = Annotated[list[str], typer.Argument(help="Image files, folders or glob patterns (quote them; ** descends).", show_default=False)]
OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Output file (one input, a .png/.jpg/.tif/.webp/.bmp name) or folder.")]
ModelOpt = Annotated[Optional[str], typer.Option(
    "--model", "-m", help="Bundled model name (see `hfpie models`), .safetensors file or exported folder, or Hugging "
    "Face Hub repository owner/repo\\[@revision] (default: the task's model).")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, cuda:1, mps (default: best available).")]
TileOpt = Annotated[Optional[int], typer.Option("--tile", help="Tile core size in pixels (default: fit device memory).")]
Fp32Opt = Annotated[bool, typer.Option("--fp32", help="Same as --precision fp32 (older spelling).")]
PrecisionOpt = Annotated[str, typer.Option(
    "--precision", help="auto (bf16 on CPUs with AMX/AVX-512 BF16, fp16 on CUDA, else fp32; 16-bit files "
    "stay fp32 on the CPU), fp32, bf16 or fp16. See `hfpie info`.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace existing output files (even an input).")]
SkipExistingOpt = Annotated[bool, typer.Option("--skip-existing", help="Leave outputs that exist alone (resume a stopped batch).")]
RecursiveOpt = Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders of input folders.")]
StrengthOpt = Annotated[float, typer.Option("--strength", help="0 = the input (sr: upscaled), 1 = the model as trained; denoise takes up to 2 for stronger denoising.")]
EnsembleOpt = Annotated[int, typer.Option(
    "--ensemble", help="Geometric self-ensemble: average the outputs of 8 (all flips and rotations), 4 (the flips) "
    "or 2 (the mirror) transformed copies; that many times the time. 1 = one pass.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only: no progress, no summary.")]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads for inference (default: PyTorch's).")]
FormatOpt = Annotated[Optional[str], typer.Option(
    "--format", help="Format of the image written to standard output (-o -): png, jpg, tif, webp or bmp "
    "(default: the input's). Files take theirs from their name.")]
QualityOpt = Annotated[Optional[int], typer.Option(
    "--quality", min=1, max=100, help="JPEG / WebP output quality, 1 (smallest file) to 100 (default 95; a "
    "lossless WebP input is written lossless unless this is given). PNG, TIFF and BMP are lossless.")]
ImageOutputOpt = Annotated[str, typer.Option(
    "--output", "-o", help="Output file (one input, a .png/.jpg/.tif/.webp/.bmp name) or folder; with --ray also a "
    "URI (s3://bucket/out).")]
RayOpt = Annotated[bool, typer.Option(
    "--ray", help="Run on Ray Data: the cluster of --ray-address (or RAY_ADDRESS), else a Ray started here; inputs "
    "and -o may be URIs (s3://, gs://...); a manifest of results goes beside the outputs. Needs "
    "pip install \"hfpie\\[ray]\"; see docs/scale.md.")]
RayAddressOpt = Annotated[Optional[str], typer.Option(
    "--ray-address", help="With --ray: the cluster to run on (host:6379, ray://host:10001, auto).")]
WorkersOpt = Annotated[Optional[int], typer.Option(
    "--workers", min=1, help="With --ray: actors, each with its own model (default: the cluster's GPUs / "
    "--gpus-per-worker, else its CPUs / --threads).")]
GpusPerWorkerOpt = Annotated[Optional[float], typer.Option(
    "--gpus-per-worker", min=0, help="With --ray: GPUs per actor (default 0: actors run on CPUs, --threads each, default 1).")]


def _show_version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"hfpie {__version__}")
        raise typer.Exit()


@app.callback()
def _main_options(
        version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                              help="Show the version and exit.")] = False) -> None:
    """Denoise, deblur and super-resolve images with HFPIE networks."""


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _exists_error(job: Job) -> HfpieError:
    from .io import is_stdio

    same = not is_stdio(job.source) and job.source.exists() and job.target.resolve() == job.source.resolve()
    return HfpieError(f"{'is the input itself' if same else 'already exists'}; pass --overwrite to replace it"
                      + ("" if same else " or --skip-existing to keep it"))


def _stdout_format(input_format: str, requested: str | None) -> str:
    """The format of an image written to standard output: ``--format``, else the input's when hfpie writes it, else PNG."""
    from .io import WRITABLE_SUFFIXES, format_for

    if requested is not None:
        return format_for(f"-.{requested}", "PNG")
    writable = {format_for(f"-{suffix}", "PNG") for suffix in WRITABLE_SUFFIXES} | {"MPO"}
    return input_format if input_format in writable else "PNG"


def _restore_one(job: Job, network: HFPIENet, *, device: torch.device, tile: int | None, precision: str,
                 strength: float, overwrite: bool, tiles: Callable[[int, int], None] | None,
                 ensemble: int = 1, output_format: str | None = None, quality: int | None = None) -> None:
    """Read, check, enhance and write one image; every check that needs no network comes first.

    Without ``overwrite`` an output that appears while the image is made (another run writing it) is
    kept and OutputExistsError raised. ``-`` as the output writes the image's bytes, and nothing else, to stdout.
    """
    from .api import enhance_image_file
    from .batch import check_output_folder
    from .errors import OutputExistsError
    from .io import check_can_encode, encode_image, format_for, is_stdio, read_image, write_image

    to_stdout = is_stdio(job.target)
    if not to_stdout:
        if job.target.exists() and not overwrite:
            raise OutputExistsError(f"{job.target}: already exists")
        check_output_folder(job.target)
    image = read_image(job.source)
    image_format = _stdout_format(image.format, output_format) if to_stdout else format_for(job.target, image.format)
    check_can_encode(image, image_format)
    result = enhance_image_file(image, network, device=device, tile=tile, precision=precision, halo=None,
                                progress=tiles, strength=strength, ensemble=ensemble)
    if to_stdout:
        sys.stdout.buffer.write(encode_image(result, image_format, quality=quality))
        sys.stdout.buffer.flush()
        return
    job.target.parent.mkdir(parents=True, exist_ok=True)
    write_image(job.target, result, overwrite=overwrite, quality=quality)


def _run_jobs(jobs: list[Job], network: HFPIENet, *, device: torch.device, tile: int | None, precision: str,
              strength: float, overwrite: bool, skip_existing: bool, quiet: bool,
              ensemble: int = 1, output_format: str | None = None,
              quality: int | None = None) -> tuple[int, int, int]:
    """(written, skipped, failed): each image on its own, a failure reported and the batch going on;
    Ctrl-C, SIGTERM or SIGHUP say how many were written and exit with 128 + the signal's number (130,
    143, 129); no file is ever half-written."""
    from .batch import BatchProgress, describe_failure, stop_cleanly_on_signals
    from .errors import OutputExistsError
    from .io import is_stdio

    progress = BatchProgress(len(jobs), quiet=quiet)
    written = skipped = failed = 0
    try:
        with stop_cleanly_on_signals():
            for position, job in enumerate(jobs, start=1):
                if skip_existing and not is_stdio(job.target) and job.target.exists():
                    skipped += 1
                    continue
                start = time.perf_counter()
                try:
                    _restore_one(job, network, device=device, tile=tile, precision=precision, strength=strength,
                                 overwrite=overwrite, ensemble=ensemble, output_format=output_format,
                                 quality=quality, tiles=progress.tiles(position))
                except OutputExistsError:
                    if skip_existing:  # another run wrote it while this one worked on it: kept, as asked
                        skipped += 1
                        continue
                    failed += 1
                    progress.echo(f"error: {describe_failure(_exists_error(job), job)}")
                    continue
                except (HfpieError, OSError, ValueError, RuntimeError, MemoryError) as error:
                    failed += 1
                    progress.echo(f"error: {describe_failure(error, job)}")
                    continue
                written += 1
                progress.finished(position, job, time.perf_counter() - start)
    except KeyboardInterrupt as interruption:
        progress.close()
        typer.echo(f"interrupted: wrote {written} of {len(jobs)} image(s)", err=True)
        raise typer.Exit(128 + int(getattr(interruption, "signum", signal.SIGINT))) from None
    progress.close()
    return written, skipped, failed


def _restore(task: str, inputs: list[str], output: Path, *, scale: int | None, model: str | None, device: str | None,
             tile: int | None, fp32: bool, overwrite: bool, skip_existing: bool, recursive: bool, quiet: bool,
             threads: int | None, precision: str = "auto", strength: float = 1.0, ensemble: int = 1,
             output_format: str | None = None, quality: int | None = None, ray: bool = False,
             ray_address: str | None = None, workers: int | None = None,
             gpus_per_worker: float | None = None) -> None:
    from .api import check_strength
    from .batch import plan_jobs
    from .ensemble import ENSEMBLE_SIZES
    from .io import WRITABLE_SUFFIXES, is_stdio
    from .precision import PRECISIONS, resolve_precision

    raw_output, output = str(output), Path(output)  # Path() would fold a URI's s3:// into s3:/
    try:
        strength = check_strength(task, strength)
    except ValueError as error:
        raise _fail(str(error)) from None
    if ensemble not in ENSEMBLE_SIZES:
        raise _fail(f"--ensemble must be 1 (one pass), 2, 4 or 8 (transforms averaged), got {ensemble}")
    if precision not in PRECISIONS:
        raise _fail(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if fp32:
        precision = "fp32"
    if tile is not None and tile < 1:
        raise _fail(f"--tile must be a positive number of pixels (e.g. 512), got {tile}; leave it out to fit "
                    "the device's memory")
    if output_format is not None:
        output_format = output_format.lower().lstrip(".")
        if f".{output_format}" not in WRITABLE_SUFFIXES:
            raise _fail(f"--format must be one of {', '.join(s[1:] for s in WRITABLE_SUFFIXES)}, got {output_format!r}")
        if not is_stdio(output):
            raise _fail("--format is for -o - (standard output); name an output file with the suffix you want "
                        "(e.g. -o out.jpg)")
    if is_stdio(output) and sys.stdout.isatty():
        raise _fail("-o - writes the image's bytes to standard output, which is a terminal here; redirect it "
                    "(> out.png) or pipe it into another command")
    if overwrite and skip_existing:
        raise _fail("--overwrite and --skip-existing contradict each other; pass one of them")
    if ray:
        if device is not None or output_format is not None:
            raise _fail(f"{'--device' if device is not None else '--format'} does not apply with --ray: actors run on "
                        "the GPU Ray gives them (--gpus-per-worker), else on CPUs, and write files")
        from .ray import run_from_cli

        return run_from_cli(task, inputs, raw_output, quiet=quiet, scale=scale, model=model, tile=tile,
                            precision=precision, strength=strength, ensemble=ensemble, quality=quality,
                            recursive=recursive,
                            overwrite=overwrite, skip_existing=skip_existing, workers=workers,
                            gpus_per_worker=gpus_per_worker or 0, cpus_per_worker=threads or 1, address=ray_address)
    if ray_address is not None or workers is not None or gpus_per_worker is not None:
        raise _fail("--ray-address, --workers and --gpus-per-worker are for --ray; add --ray or leave them out")
    try:
        jobs = plan_jobs(inputs, output, recursive=recursive)
    except HfpieError as error:
        raise _fail(str(error)) from None
    if not jobs:
        raise _fail("no input images found (give files, folders or glob patterns)")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    from .api import load_checked_network

    try:
        network, torch_device = load_checked_network(task, scale, model, device)
        resolve_precision(precision, torch_device)  # fp16 on the CPU: refused once, not once per image
    except (HfpieError, ValueError) as error:
        raise _fail(str(error)) from None
    written, skipped, failed = _run_jobs(jobs, network, device=torch_device, tile=tile, precision=precision,
                                         strength=strength, overwrite=overwrite, skip_existing=skip_existing, quiet=quiet,
                                         ensemble=ensemble, output_format=output_format, quality=quality)
    if not quiet:
        typer.echo(f"{task}: wrote {written} of {len(jobs)} image(s)"
                   + (f", {skipped} skipped (already there)" if skipped else "")
                   + (f", {failed} failed" if failed else ""), err=True)
    if failed:
        raise typer.Exit(1)


@app.command()
def denoise(inputs: InputsArg, output: ImageOutputOpt, model: ModelOpt = None, device: DeviceOpt = None,
            tile: TileOpt = None, fp32: Fp32Opt = False, overwrite: OverwriteOpt = False,
            skip_existing: SkipExistingOpt = False, recursive: RecursiveOpt = False, quiet: QuietOpt = False,
            threads: ThreadsOpt = None, precision: PrecisionOpt = "auto",
            strength: StrengthOpt = 1.0, ensemble: EnsembleOpt = 1, output_format: FormatOpt = None, quality: QualityOpt = None,
            ray: RayOpt = False, ray_address: RayAddressOpt = None, workers: WorkersOpt = None,
            gpus_per_worker: GpusPerWorkerOpt = None) -> None:
    """Remove noise. Example: hfpie denoise noisy.png -o clean.png"""
    _restore("denoise", inputs, output, scale=1, model=model, device=device, tile=tile, fp32=fp32,
             overwrite=overwrite, skip_existing=skip_existing, recursive=recursive, quiet=quiet, threads=threads,
             precision=precision, strength=strength, ensemble=ensemble, output_format=output_format, quality=quality,
             ray=ray, ray_address=ray_address, workers=workers, gpus_per_worker=gpus_per_worker)


@app.command()
def deblur(inputs: InputsArg, output: ImageOutputOpt, model: ModelOpt = None, device: DeviceOpt = None,
           tile: TileOpt = None, fp32: Fp32Opt = False, overwrite: OverwriteOpt = False,
           skip_existing: SkipExistingOpt = False, recursive: RecursiveOpt = False, quiet: QuietOpt = False,
           threads: ThreadsOpt = None, precision: PrecisionOpt = "auto",
           strength: StrengthOpt = 1.0, ensemble: EnsembleOpt = 1, output_format: FormatOpt = None, quality: QualityOpt = None,
            ray: RayOpt = False, ray_address: RayAddressOpt = None, workers: WorkersOpt = None,
            gpus_per_worker: GpusPerWorkerOpt = None) -> None:
    """Remove blur (blind). Example: hfpie deblur blurry.jpg -o sharp.jpg"""
    _restore("deblur", inputs, output, scale=1, model=model, device=device, tile=tile, fp32=fp32,
             overwrite=overwrite, skip_existing=skip_existing, recursive=recursive, quiet=quiet, threads=threads,
             precision=precision, strength=strength, ensemble=ensemble, output_format=output_format, quality=quality,
             ray=ray, ray_address=ray_address, workers=workers, gpus_per_worker=gpus_per_worker)


@app.command()
def sr(inputs: InputsArg, output: ImageOutputOpt,
       scale: Annotated[Optional[int], typer.Option("--scale", "-s", min=1, help="Upscaling factor (default: the model's; 4 for the default model).")] = None,
       model: ModelOpt = None, device: DeviceOpt = None, tile: TileOpt = None, fp32: Fp32Opt = False,
       overwrite: OverwriteOpt = False, skip_existing: SkipExistingOpt = False, recursive: RecursiveOpt = False,
       quiet: QuietOpt = False, threads: ThreadsOpt = None, precision: PrecisionOpt = "auto",
       strength: StrengthOpt = 1.0, ensemble: EnsembleOpt = 1, output_format: FormatOpt = None, quality: QualityOpt = None,
            ray: RayOpt = False, ray_address: RayAddressOpt = None, workers: WorkersOpt = None,
            gpus_per_worker: GpusPerWorkerOpt = None) -> None:
    """Super-resolve (upscale). Example: hfpie sr small.png --scale 4 -o large.png"""
    _restore("sr", inputs, output, scale=scale, model=model, device=device, tile=tile, fp32=fp32,
             overwrite=overwrite, skip_existing=skip_existing, recursive=recursive, quiet=quiet, threads=threads,
             precision=precision, strength=strength, ensemble=ensemble, output_format=output_format, quality=quality,
             ray=ray, ray_address=ray_address, workers=workers, gpus_per_worker=gpus_per_worker)


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


@app.command()
def info() -> None:
    """Show the machine facts that decide how hfpie runs: torch, threads, devices, precision."""
    import platform

    import torch

    from . import __version__
    from .precision import cpu_bf16_flags, cpu_has_fast_bf16, resolve_precision

    typer.echo(f"hfpie {__version__}, torch {torch.__version__}, Python {platform.python_version()}")
    typer.echo(f"cpu: {platform.machine()}, {torch.get_num_threads()} threads, "
               f"bf16 flags: {', '.join(cpu_bf16_flags()) or 'none'}, "
               f"fast bf16: {'yes' if cpu_has_fast_bf16() else 'no'} -> precision auto = {resolve_precision('auto', 'cpu')}")
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            typer.echo(f"cuda:{index}: {torch.cuda.get_device_name(index)} -> precision auto = fp16")
    else:
        typer.echo("cuda: not available")

@app.command("models")
def models_command() -> None:
    """List the pretrained models: task, licence, Hub repository and revision, bundled file."""
    from .hub import LOSS_NETWORK_TASK, bundled_path, list_models

    entries = list_models()
    if not entries:
        typer.echo("No pretrained models are listed in this installation's weights manifest.")
        return
    rows = [("name", "task", "scale", "default", "size", "licence", "hub repository@revision", "bundled copy")]
    for entry in entries:
        bundled = bundled_path(entry)
        revision = entry.revision[:12] if len(entry.revision) == 40 else entry.revision
        rows.append((
            entry.name, "loss-net*" if entry.task == LOSS_NETWORK_TASK else entry.task, str(entry.scale),
            "yes" if entry.default else "", f"{entry.size / 1e6:.2f}MB", entry.license,
            f"{entry.repo_id}@{revision}", str(bundled) if bundled else "not bundled: downloaded from the Hub when used",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    if any(entry.task == LOSS_NETWORK_TASK for entry in entries):
        typer.echo(f"\n* task {LOSS_NETWORK_TASK!r}: the high-pass filtering loss network used in training "
                   "(hfpie[train]), not an image model.")
    typer.echo("Also loadable: a .safetensors file or exported folder, and any Hub repository written by "
               "`hfpie hub-export`, as -m owner/repo[@revision].")


@app.command()
def download(model: Annotated[str, typer.Argument(help="Model name (see `hfpie models`) or Hub repository owner/repo\\[@revision].")],
             force: Annotated[bool, typer.Option("--force", help="Download again even if cached.")] = False) -> None:
    """Download a model from the Hugging Face Hub into its local cache, verify it and print where it is.

    Examples: hfpie download sr-x4; hfpie download someone/hfpie-denoise@v1.0
    """
    from .hub import download_repo, download_weights, find_entry, model_source

    try:
        source = model_source(model)
        if source.kind == "path":
            raise _fail(f"{model} is a local path: there is nothing to download")
        if source.kind == "hub":
            path = download_repo(source.name, source.revision, force=force)
        else:
            path = download_weights(find_entry(model), use_bundled=False, force=force)
    except (HfpieError, ValueError) as error:
        raise _fail(str(error)) from None
    typer.echo(str(path))


@app.command("hub-export")
def hub_export(model: Annotated[str, typer.Argument(help="Model name, .safetensors file or exported folder.")],
               folder: Annotated[Path, typer.Argument(help="Folder to write the Hub repository into.")],
               repo_id: Annotated[Optional[str], typer.Option("--repo-id", help="Hub repository the folder will be uploaded to, for the card's usage example (default: the model's repository in the manifest).")] = None,
               overwrite: OverwriteOpt = False) -> None:
    """Write an upload-ready Hub folder: model.safetensors, config.json and a README.md model card.

    Example: hfpie hub-export runs/denoise/final.safetensors out/ --repo-id me/hfpie-denoise;
    then `hf upload me/hfpie-denoise out/` and `hfpie denoise in.png -m me/hfpie-denoise -o out.png`.
    """
    from .export import export_hub_folder

    try:
        export_hub_folder(model, folder, overwrite=overwrite, repo_id=repo_id)
    except (HfpieError, ValueError, OSError) as error:
        raise _fail(str(error)) from None
    typer.echo(f"wrote {folder}")


@app.command()
def train(config: Annotated[Optional[str], typer.Argument(help="TOML or YAML training config (optional).")] = None,
          overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides (JSON values).")] = None,
          run_dir: Annotated[Path, typer.Option("--run-dir", help="Folder for checkpoints and logs.")] = Path("runs/latest"),
          resume: Annotated[bool, typer.Option("--resume", help="Continue from RUN_DIR/last.pt.")] = False) -> None:
    """Train a model (needs `pip install "hfpie\\[train]"`). Example: hfpie train configs/denoise.toml steps=2000"""
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
    from .api import resolve_network
    from .tasks import TRAINING_TASKS, check_task, output_scale
    from .training.evaluation import evaluate_folder, format_report, summarize

    network = None
    try:
        check_task(task, TRAINING_TASKS)
        if model != "input":  # denoise-real and deblur models are scale-1 restorers, run as "denoise"
            network = resolve_network("sr" if task == "sr" else "denoise", output_scale(task, scale), model, device)
    except (HfpieError, ValueError) as error:
        raise _fail(str(error)) from None
    scores = evaluate_folder(network, data, task, sigma=sigma, scale=scale if task == "sr" else None,
                             max_images=max_images, device=device or "cpu")
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

    from .api import resolve_network
    from .hub import load_model
    from .onnx_export import check_onnx, default_check_sizes, export_onnx

    from .tasks import TASKS, check_task

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
        check_task(task)
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
