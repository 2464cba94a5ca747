"""The report: one ``Result`` row per method and case, ratios to hfpie, the Markdown text and the plot.

``add_ratios`` fills the "time / hfpie" and "dPSNR" columns against the first hfpie row with numbers
of each case; ``markdown_report`` writes the page (header, machine from ``machine_description``,
protocol, notes, ``markdown_table``); ``make_plot`` draws PSNR against seconds per megapixel, one
panel per case.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cases import SYNTHETIC_IMAGES

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    """One row of the table: a method (or the degraded input) on a case; no numbers and a note when it did not run."""

    case: str
    task: str
    dataset: str
    metric: str
    method: str
    kind: str  # hfpie | classical | peer | input
    psnr: float | None = None
    ssim: float | None = None
    seconds_per_megapixel: float | None = None
    peak_rss_mb: float | None = None
    images: int = 0
    note: str = ""
    time_ratio: float | None = None
    psnr_delta: float | None = None
    reference: bool = False
    command: str = ""


def machine_description() -> dict[str, str]:
    import torch

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=False).stdout.strip()
        commit = (commit + (" (uncommitted changes)" if dirty else "")) if commit else "unknown"
    except OSError:
        commit = "unknown"
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": str(torch.get_num_threads()),
        "commit": commit,
    }


def add_ratios(results: list[Result]) -> None:
    """time / hfpie and dPSNR against the first hfpie row with numbers of each case."""
    for case_id in dict.fromkeys(r.case for r in results):
        rows = [r for r in results if r.case == case_id]
        reference = next((r for r in rows if r.kind == "hfpie" and r.psnr is not None), None)
        if reference is None:
            continue
        reference.reference = True
        for row in rows:
            if row.psnr is not None:
                row.psnr_delta = row.psnr - reference.psnr
            if row.seconds_per_megapixel is not None and reference.seconds_per_megapixel:
                row.time_ratio = row.seconds_per_megapixel / reference.seconds_per_megapixel


def format_number(value: float | None, digits: int) -> str:
    if value is None:
        return ""
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def _speed(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(results: list[Result]) -> str:
    header = ("| task | set | scored on | method | PSNR (dB) | SSIM | s/MP | peak RSS (MB) | time / hfpie | "
              "ΔPSNR vs hfpie (dB) | note |")
    lines = [header, "|" + "---|" * 11]
    for r in results:
        if r.reference:
            ratio, delta = "1 (ref.)", "0 (ref.)"
        else:
            ratio = "" if r.time_ratio is None else f"{r.time_ratio:.3g}×"
            delta = "" if r.psnr_delta is None else f"{r.psnr_delta:+.2f}"
        cells = [r.task, r.dataset, r.metric, r.method, format_number(r.psnr, 2), format_number(r.ssim, 4),
                 _speed(r.seconds_per_megapixel), format_number(r.peak_rss_mb, 0), ratio, delta, r.note]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def markdown_report(results: list[Result], machine: dict[str, str], options: argparse.Namespace,
                    peers_line: str, plot: Path | None, output: Path | None, notes: list[str]) -> str:
    parts = ["# hfpie vs peer methods\n"]
    if getattr(options, "synthetic_from", None) is not None:
        parts.append(f"> **Synthetic images**: `{options.synthetic_from}` does not exist, so every set is made of "
                     f"{SYNTHETIC_IMAGES} generated scenes (`make_synthetic_sets`; no real-noise pairs). The numbers "
                     "compare the methods with each other only; they are not comparable with published results.\n")
    if options.max_images:
        parts.append(f"> **Partial run: only the first {options.max_images} image(s) of each set"
                     f"{' (--quick: a subset of the methods)' if options.quick else ''}.** These numbers are a "
                     "smoke test, not comparable with full-set results.\n")
    if options.threads:
        threads = (f"torch {machine['torch']}, {options.threads} thread(s) per method (`--threads`: OMP_NUM_THREADS "
                   "and MKL_NUM_THREADS set for every method's process)")
    else:
        threads = f"torch {machine['torch']} with {machine['threads']} threads (the default, kept by every method)"
    parts.append(
        f"Generated {machine['date']} by `python benchmarks/run.py {' '.join(shlex.quote(a) for a in options.argv)}`"
        f" at hfpie commit {machine['commit']}.\n\n"
        f"Machine: {machine['platform']}; CPU {machine['cpu']}, {machine['cores']} cores; Python {machine['python']}, "
        f"{threads}. Load average at the start {options.load_start}, at the end {options.load_end} (1/5/15 min): "
        "numbers are only comparable within a run on an otherwise idle machine.\n\n"
        f"{peers_line}\n"
    )
    parts.append(
        "Protocol: `../shared/peers/README.md` (inputs from `hfpie.training.degradations.protocol_*` via "
        "`ImageFolderPairs`, written once per set and fed to every method). PSNR/SSIM: mean over the images, "
        "RGB for denoising and deblurring, Y (BT.601) with `scale` border pixels cropped for SR. s/MP: restoration "
        "seconds reported by each runner, summed over the set, divided by the summed output megapixels (loading "
        "and warm-up excluded). Peak RSS: high-water mark of the resident memory of the method's process "
        "(interpreter and libraries included; `ru_maxrss` of that process, started by a small launcher so that "
        "the benchmark's own memory is not counted: about 14 MB is the floor). time / hfpie: s/MP divided by the "
        "reference hfpie row's (> 1 is slower than hfpie); ΔPSNR: PSNR minus the reference hfpie row's.\n"
    )
    for note in notes:
        parts.append(f"* {note}")
    if notes:
        parts.append("")
    parts.append(markdown_table(results))
    if plot is not None and plot.exists():
        target = os.path.relpath(plot, output.parent) if output is not None else str(plot)
        parts.append(f"\n![PSNR against seconds per megapixel, one panel per task and set]({target})\n")
    return "\n".join(parts)


def make_plot(results: list[Result], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib import ticker
        from matplotlib.lines import Line2D
    except ImportError:
        return False
    cases = [c for c in dict.fromkeys(r.case for r in results)]
    panels = [c for c in cases if any(r.case == c and r.psnr is not None for r in results)]
    if not panels:
        return False
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 4.2 * rows), squeeze=False)
    colours = {"hfpie": "tab:red", "peer": "tab:blue", "classical": "tab:green"}
    for axis, case_id in zip(axes.flat, panels):
        rows_of_case = [r for r in results if r.case == case_id and r.psnr is not None and not math.isinf(r.psnr)]
        first = rows_of_case[0]
        for r in rows_of_case:
            if r.seconds_per_megapixel is None or r.seconds_per_megapixel <= 0:
                axis.axhline(r.psnr, color="grey", linestyle="--", linewidth=0.8)
                axis.annotate(r.method, (0.01, r.psnr), xycoords=("axes fraction", "data"), fontsize=7,
                              color="grey", va="bottom")
                continue
            axis.scatter(r.seconds_per_megapixel, r.psnr, color=colours.get(r.kind, "black"),
                         marker="*" if r.kind == "hfpie" else "o", s=90 if r.kind == "hfpie" else 30, zorder=3)
            axis.annotate(r.method, (r.seconds_per_megapixel, r.psnr), fontsize=7, xytext=(3, 3),
                          textcoords="offset points")
        axis.set_xscale("log")
        timed = [r.seconds_per_megapixel for r in rows_of_case if r.seconds_per_megapixel]
        if timed:
            axis.set_xlim(min(timed) / 2, max(timed) * 6)  # room for the labels on the right
        axis.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        axis.xaxis.set_minor_formatter(ticker.NullFormatter())
        axis.set_xlabel("seconds per megapixel (log)")
        axis.set_ylabel(f"PSNR {first.metric} (dB)")
        axis.set_title(f"{first.task} — {first.dataset}", fontsize=10)
        axis.grid(True, which="both", alpha=0.3)
    for axis in list(axes.flat)[len(panels):]:
        axis.axis("off")
    handles = [Line2D([], [], linestyle="", marker="*" if kind == "hfpie" else "o", color=colour, label=kind)
               for kind, colour in colours.items()]
    handles.append(Line2D([], [], linestyle="--", color="grey", label="degraded input"))
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    figure.tight_layout(rect=(0, 0.06 / rows, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
