"""Running one method on one case: a child process, its timings, its peak memory, its scores.

``run_method`` starts a method's command (through a small launcher that reports the peak resident
memory of the method's process alone), reads the seconds each runner wrote to its ``--timings``
file and scores the outputs against the clean images (``score``: PSNR/SSIM from
:mod:`hfpie.training.metrics`); ``input_result`` scores the degraded inputs themselves.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from cases import Prepared
from report import Result, format_number

REPO = Path(__file__).resolve().parents[1]


# The benchmark process itself holds torch and the test images. A child forked from it starts with
# its resident set, which Linux counts in the child's ru_maxrss; so every method is started by this
# small launcher (about 14 MB), which reports the ru_maxrss of its own child: the method's process.
_LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
child.returncode = code = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], 'w') as handle:
    handle.write(str(usage.ru_maxrss))
sys.exit(code if code >= 0 else 128 - code)
"""


def run_child(command: list[str], log: Path, timeout: float, env: dict[str, str]) -> tuple[int, float | None]:
    """Run ``command``; its exit code (-9: timed out) and peak resident memory in MB (None if unknown)."""
    rss_file = log.with_suffix(".maxrss")
    with open(log, "wb") as output:
        process = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(rss_file), *command], stdout=output,
                                   stderr=subprocess.STDOUT, env=env, cwd=str(REPO), start_new_session=True)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the launcher's own process group: it and the method
            process.wait()
            code = -9
    try:
        peak = int(rss_file.read_text()) / 1024.0  # Linux reports kilobytes
    except (OSError, ValueError):
        peak = None
    return code, peak


def _tail(log: Path, lines: int = 2) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " / ".join(line.strip() for line in text[-lines:])[-240:]


def score(prepared: Prepared, outputs: dict[str, np.ndarray]) -> tuple[float, float]:
    from hfpie.training.metrics import psnr, ssim

    case = prepared.case
    y_channel = case.task == "sr"
    values = []
    for name in prepared.names:
        output, clean = outputs[name], prepared.clean[name]
        if output.shape != clean.shape:
            raise ValueError(f"{name}: output shape {output.shape}, reference {clean.shape}")
        values.append((psnr(output, clean, crop_border=case.border, y_channel=y_channel),
                       ssim(output, clean, crop_border=case.border, y_channel=y_channel)))
    return float(np.mean([v[0] for v in values])), float(np.mean([v[1] for v in values]))


def run_method(prepared: Prepared, label: str, kind: str, command: list[str], out: Path, timings: Path,
               timeout: float, env: dict[str, str]) -> Result:
    case = prepared.case
    result = Result(case.id, case.task_label, case.dataset, case.metric, label, kind,
                    command=" ".join(shlex.quote(part) for part in command))
    log = out.with_suffix(".log")
    print(f"[{case.id}] {label}: {result.command}", file=sys.stderr, flush=True)
    code, peak = run_child(command, log, timeout, env)
    if code != 0:
        what = f"timed out after {timeout:.0f} s" if code == -9 else f"failed (exit {code})"
        result.note = f"{what}: {_tail(log)}"
        print(f"  {result.note}", file=sys.stderr, flush=True)
        return result
    try:
        report = json.loads(timings.read_text())
        seconds = {Path(row["file"]).stem: float(row["seconds"]) for row in report["images"]}
        outputs = {}
        for name in prepared.names:
            with Image.open(out / f"{name}.png") as image:
                outputs[name] = np.asarray(image.convert("RGB"))
        missing = [name for name in prepared.names if name not in seconds]
        if missing:
            raise ValueError(f"no timing for {', '.join(missing[:3])}")
        result.psnr, result.ssim = score(prepared, outputs)
    except (OSError, ValueError, KeyError) as error:
        result.note = f"bad output: {error}"
        print(f"  {result.note}", file=sys.stderr, flush=True)
        return result
    result.images = len(prepared.names)
    result.peak_rss_mb = peak
    result.seconds_per_megapixel = sum(seconds[n] for n in prepared.names) / prepared.output_megapixels
    print(f"  PSNR {result.psnr:.2f} SSIM {result.ssim:.4f} {result.seconds_per_megapixel:.3g} s/MP "
          f"{format_number(peak, 0)} MB", file=sys.stderr, flush=True)
    return result


def input_result(prepared: Prepared) -> Result:
    case = prepared.case
    result = Result(case.id, case.task_label, case.dataset, case.metric,
                    "blurry input" if case.task == "deblur" else "noisy input", "input")
    result.psnr, result.ssim = score(prepared, prepared.degraded)
    result.images = len(prepared.names)
    return result
