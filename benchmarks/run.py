#!/usr/bin/env python3
"""hfpie against peer methods: same images, same degradations, same scores, speed and memory.

    python benchmarks/run.py                                   # every set, every method found
    python benchmarks/run.py --output docs/benchmarks.md       # also write the table (and docs/benchmark.png)
    python benchmarks/run.py --sets 'cbsd68-denoise*' --max-images 10
    python benchmarks/run.py --hfpie-model denoise=/work/runs/denoise/best.safetensors --hfpie-model sr4=...
    python benchmarks/run.py --quick                           # 2 images per set, a few cheap methods

Protocol (``../shared/peers/README.md``, implemented by :mod:`hfpie.training.degradations` and
:class:`hfpie.training.datasets.ImageFolderPairs`): the degraded 8-bit inputs of every set are written
once to a temporary folder (with the true blur kernels and noise levels as ``.npy`` / JSON files) and
every method reads the same files. Every method runs as its own process in folder mode (model loaded
once), in turn, with torch's default threads; it reports the seconds of each restoration call
(``--timings``), and its peak memory is the high-water mark of its resident set (``ru_maxrss`` of
that process from ``os.wait4``, in a small launcher process so that the benchmark's own memory is not
inherited). Outputs are scored here with :mod:`hfpie.training.metrics`: PSNR/SSIM
on RGB for denoising and deblurring, on Y with ``crop_border = scale`` for super-resolution.

Methods:
  * hfpie: per task the installed default model (``hfpie.hub.find_entry``) -- a row saying "no
    pretrained model" when there is none -- plus every ``--hfpie-model KEY=PATH`` (KEY: denoise,
    deblur, sr2, sr4, denoise-real; repeatable). The first hfpie row with numbers is the reference of
    the "time / hfpie" and "dPSNR" columns of its task and set.
  * classical (always; ``benchmarks/classical_runner.py``, the parameters of ``peers/classical``):
    bicubic and Lanczos (PIL); OpenCV NLM (h = 0.6 sigma); scikit-image NLM, wavelet (BayesShrink),
    TV (Chambolle); scikit-image Wiener and Richardson-Lucy with the true kernel; BM3D if ``bm3d``
    imports. Rows whose package is missing say so.
  * learned peers (when ``--peers-dir`` exists): their own ``run.py`` in folder mode, with
    ``PEERS/.venv/bin/python`` if present, else ``--peers-python``, else this Python. A runner whose
    imports fail, or that fails, gets a row with the error instead of numbers.

``--methods`` selects classical and peer methods by id (glob patterns; ``--list-methods`` shows them);
the hfpie rows and the degraded-input rows are always there.

Code: this file parses the options and runs the main loop; ``cases.py`` holds the cases and writes
their inputs (and the synthetic sets), ``methods.py`` the method table and the hfpie rows,
``measure.py`` runs one method in a child process and scores it, ``report.py`` the ratios, the
Markdown report and the plot.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the modules below, also when this file is loaded by path (tests/test_benchmark.py)

# SYNTHETIC_IMAGES: not used here, re-exported for tests/test_benchmark.py.
from cases import CASES, HFPIE_KEYS, SYNTHETIC_IMAGES, make_synthetic_sets, prepare_case  # noqa: E402, F401
from measure import input_result, run_method  # noqa: E402
from methods import (  # noqa: E402
    CLASSICAL,
    PEERS,
    Method,
    MethodSkipped,
    hfpie_command,
    hfpie_models,
    method_command,
    probe_modules,
)
from report import Result, add_ratios, machine_description, make_plot, markdown_report  # noqa: E402

REPO = HERE.parent
DEFAULT_DATA_ROOT = REPO.parent / "shared" / "data" / "val"
DEFAULT_PEERS_DIR = REPO.parent / "shared" / "peers"
QUICK_IMAGES = 2


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=["*"], metavar="ID",
                        help="cases to run, by id or glob: " + ", ".join(c.id for c in CASES) + " (default: all)")
    parser.add_argument("--methods", nargs="+", default=None, metavar="ID",
                        help="classical/peer methods by id or glob (default: all; see --list-methods)")
    parser.add_argument("--max-images", type=int, default=0, help="first N images of each set (0: all)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_IMAGES} images per set (unless --max-images) and only the cheap methods")
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT,
                        help="folder holding cbsd68/, set5/, set14/, polyu_real_noise/ (default: %(default)s)")
    parser.add_argument("--peers-dir", type=Path, default=DEFAULT_PEERS_DIR, help="default: %(default)s")
    parser.add_argument("--peers-python", default=None,
                        help="python for the peer runners (default: PEERS/.venv/bin/python if present, else this one)")
    parser.add_argument("--hfpie-model", action="append", default=[], metavar="KEY=PATH",
                        help="also benchmark a local checkpoint; KEY: " + ", ".join(HFPIE_KEYS) + " (repeatable)")
    parser.add_argument("--output", type=Path, default=None, help="write the Markdown report here")
    parser.add_argument("--plot", type=Path, default=None,
                        help="PSNR vs s/MP plot (default with --output: benchmark.png next to it)")
    parser.add_argument("--json", type=Path, default=None, help="also write every result as JSON")
    parser.add_argument("--threads", type=int, default=None,
                        help="set OMP_NUM_THREADS / MKL_NUM_THREADS for every method (default: torch's default)")
    parser.add_argument("--hfpie-precision", nargs="+", default=["auto"], choices=["fp32", "bf16", "auto"],
                        help="run every hfpie model in each of these precisions, labelled when several (default: "
                             "auto, what users get: bf16 on CPUs with AMX / AVX-512 BF16, else fp32)")
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="seconds per method and set")
    parser.add_argument("--workdir", type=Path, default=None, help="keep inputs, outputs and logs here")
    parser.add_argument("--list-methods", action="store_true", help="list the method ids and exit")
    options = parser.parse_args(argv)
    options.argv = list(sys.argv[1:] if argv is None else argv)
    if options.quick and not options.max_images:
        options.max_images = QUICK_IMAGES
    if options.max_images < 0:
        parser.error("--max-images must be >= 0")
    options.user_models = {}
    for item in options.hfpie_model:
        key, _, spec = item.partition("=")
        if key not in HFPIE_KEYS or not spec:
            parser.error(f"--hfpie-model {item!r}: expected KEY=PATH with KEY in {', '.join(HFPIE_KEYS)}")
        options.user_models.setdefault(key, []).append(spec)
    return options


def _matches(identifier: str, patterns: Sequence[str] | None) -> bool:
    return patterns is None or any(fnmatch.fnmatchcase(identifier, p) for p in patterns)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    if options.list_methods:
        for method in CLASSICAL + PEERS:
            print(f"{method.id:<16} {method.kind:<10} {'quick' if method.quick else '':<6} {method.label}")
        return 0
    cases = [c for c in CASES if _matches(c.id, options.sets)]
    if not cases:
        print(f"no case matches --sets {' '.join(options.sets)}; cases: {', '.join(c.id for c in CASES)}",
              file=sys.stderr)
        return 2
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if options.threads is not None:
        if options.threads < 1:
            print("--threads must be >= 1", file=sys.stderr)
            return 2
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(options.threads)

    def selected(method: Method) -> bool:
        return _matches(method.id, options.methods) and (method.quick or not options.quick)

    notes: list[str] = []
    # Which packages the classical runner (this Python) has.
    classical_modules = sorted({m for method in CLASSICAL for m in method.needs})
    classical_found = probe_modules(sys.executable, classical_modules, env)
    # The peers, their Python, and what it imports.
    peers_dir = options.peers_dir.resolve()
    peer_methods: list[Method] = []
    peers_python = options.peers_python
    if peers_dir.is_dir():
        if peers_python is None:
            venv = peers_dir / ".venv" / "bin" / "python"
            peers_python = str(venv) if venv.exists() else sys.executable
        peer_methods = [m for m in PEERS if selected(m)]
        peer_modules = sorted({m for method in peer_methods for m in method.needs})
        peers_found = probe_modules(peers_python, peer_modules, env) if peer_modules else {}
        peers_line = f"Learned peers: `{peers_dir}`, run with `{peers_python}`."
    else:
        peers_found = {}
        peers_line = f"Learned peers: not found (`{peers_dir}` does not exist); only hfpie and classical methods ran."

    options.load_start = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="hfpie-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if not options.data_root.is_dir():
        options.synthetic_from = options.data_root
        options.data_root = make_synthetic_sets(workdir / "synthetic-data")
        print(f"no validation images at {options.synthetic_from}: benchmarking on synthetic images "
              f"({options.data_root})", file=sys.stderr)
    results: list[Result] = []
    try:
        for case in cases:
            try:
                prepared = prepare_case(case, options.data_root, options.max_images, workdir)
            except (OSError, ValueError, ImportError) as error:
                results.append(Result(case.id, case.task_label, case.dataset, case.metric, "(data)", "input",
                                      note=f"cannot build the inputs: {error}"))
                print(f"[{case.id}] cannot build the inputs: {error}", file=sys.stderr)
                continue
            notes.extend(f"{case.id}: {note}" for note in prepared.notes)
            print(f"[{case.id}] {len(prepared.names)} images, {prepared.output_megapixels:.3f} output MP",
                  file=sys.stderr, flush=True)
            if case.task != "sr":
                results.append(input_result(prepared))
            for index, model in enumerate(hfpie_models(case, options.user_models, options.hfpie_precision)):
                if model.spec is None:
                    results.append(Result(case.id, case.task_label, case.dataset, case.metric, model.label, "hfpie",
                                          note=model.note))
                    continue
                out = prepared.root / f"hfpie-{index}"
                result = run_method(prepared, model.label, "hfpie", hfpie_command(model, prepared, out,
                                    out.with_suffix(".json")), out, out.with_suffix(".json"), options.timeout, env)
                if model.note:
                    result.note = "; ".join(filter(None, [model.note, result.note]))
                results.append(result)
            for method in [m for m in CLASSICAL if selected(m)] + peer_methods:
                if not method.applies(case):
                    continue
                label = method.label_of(case)
                base = Result(case.id, case.task_label, case.dataset, case.metric, label, method.kind)
                found = classical_found if method.kind == "classical" else peers_found
                missing = [f"{m} ({found.get(m, 'not checked')})" for m in method.needs if found.get(m, "?") != ""]
                if method.id == "bm3d" and missing:  # optional: only when the package is installed
                    bm3d_note = "BM3D skipped: the bm3d package is not installed (optional)"
                    if bm3d_note not in notes:
                        notes.append(bm3d_note)
                    continue
                if missing:
                    base.note = "skipped: cannot import " + "; ".join(missing)
                    results.append(base)
                    continue
                out = prepared.root / method.id
                timings = out.with_suffix(".json")
                try:
                    command = method_command(method, prepared, out, timings, peers_dir, peers_python)
                except MethodSkipped as skipped:
                    base.note = f"skipped: {skipped}"
                    results.append(base)
                    continue
                results.append(run_method(prepared, label, method.kind, command, out, timings, options.timeout, env))
    finally:
        if options.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    options.load_end = " / ".join(f"{v:.2f}" for v in os.getloadavg())

    add_ratios(results)
    plot = options.plot
    if plot is None and options.output is not None:
        plot = options.output.parent / "benchmark.png"
    if plot is not None and not make_plot(results, plot):
        notes.append("no plot: matplotlib is not installed (pip install matplotlib)")
        plot = None
    report = markdown_report(results, machine_description(), options, peers_line, plot, options.output, notes)
    print(report)
    if options.output is not None:
        options.output.parent.mkdir(parents=True, exist_ok=True)
        options.output.write_text(report)
    if options.json is not None:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
