"""Collect the measured metrics of every shipped model into one JSON for scripts/release_models.py.

    python scripts/collect_metrics.py BENCH.json [SPEED_RERUN.json] EXTRAS.json HPF_REPORT.json -o metrics.json

BENCH.json is what ``benchmarks/run.py --json`` wrote; SPEED_RERUN.json (optional) a second run whose
seconds-per-megapixel replace the first one's for the same rows; EXTRAS.json what
``benchmarks/extras.py`` wrote; HPF_REPORT.json the report of ``hfpie train-hpf``. Values are copied,
rounded for display only (PSNR 2 decimals, SSIM 4).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

CONDITION = {"cbsd68-denoise15": "AWGN sigma 15", "cbsd68-denoise25": "AWGN sigma 25",
             "cbsd68-denoise50": "AWGN sigma 50", "set5-sr2": "x2 bicubic", "set5-sr4": "x4 bicubic",
             "set14-sr2": "x2 bicubic", "set14-sr4": "x4 bicubic", "cbsd68-deblur": "Gaussian 21x21 + sigma 2",
             "polyu-real": "real camera noise"}
DATASET = {"cbsd68": "CBSD68", "set5": "Set5", "set14": "Set14", "polyu_real_noise": "PolyU"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    bench = json.loads(args.files[0].read_text())
    rerun = json.loads(args.files[1].read_text()) if len(args.files) == 4 else []
    extras = json.loads(args.files[-2].read_text())
    hpf = json.loads(args.files[-1].read_text())
    speed = {(r["case"], r["method"]): r["seconds_per_megapixel"] for r in rerun if r.get("seconds_per_megapixel")}
    metrics: dict[str, list[dict]] = {}
    for row in bench:
        if row["kind"] != "hfpie" or row.get("psnr") is None:
            continue
        name = row["method"].removeprefix("hfpie ")
        if row["case"] == "polyu-real" and name == "denoise":
            continue  # the AWGN model on real noise: a comparison row, not its own metric
        space = "Y" if row["case"].startswith("set") else "RGB"
        base = {"dataset": DATASET[row["dataset"]], "condition": CONDITION[row["case"]]}
        seconds = speed.get((row["case"], row["method"]), row["seconds_per_megapixel"])
        metrics.setdefault(name, []).extend([
            {**base, "metric": f"PSNR {space}", "value": round(row["psnr"], 2)},
            {**base, "metric": f"SSIM {space}", "value": round(row["ssim"], 4)},
            {**base, "metric": "s/MP (2-core CPU)", "value": round(seconds, 3)},
        ])
    for set_name, rows in extras.get("perceptual", {}).items():
        for method in ("sr-x4", "sr-x4-gan"):
            values = rows[method]
            base = {"dataset": DATASET[set_name], "condition": "x4 bicubic"}
            metrics[method].append({**base, "metric": "spectrum error", "value": round(values["spectrum_error"], 3)})
            if values.get("flat_region_noise") is not None:
                metrics[method].append({**base, "metric": "flat-region noise (HR = 1)",
                                        "value": round(values["flat_region_noise"], 2)})
            metrics[method].append({**base, "metric": "LPIPS", "value": "unavailable" if values["lpips"] is None
                                    else round(values["lpips"], 4)})
    if "motion" in extras:
        metrics["deblur"].append({"dataset": "CBSD68", "condition": "Levin motion kernels + sigma 2",
                                  "metric": "PSNR RGB", "value": round(extras["motion"]["hfpie deblur"], 2)})
    if "clean" in extras:
        metrics["denoise-real"].append({"dataset": "CBSD68", "condition": "clean input (no noise)",
                                        "metric": "PSNR of output vs input", "value": round(extras["clean"]["denoise-real"], 2)})
    metrics["hpf"] = [
        {"dataset": "hpf validation patches", "condition": "FFT high-pass, radius 0.1", "metric": "PSNR vs target",
         "value": round(hpf["val_psnr"], 2)},
        {"dataset": "hpf validation patches", "condition": "FFT high-pass, radius 0.1", "metric": "correlation",
         "value": round(hpf["val_correlation"], 4)},
    ]
    args.output.write_text(json.dumps(metrics, indent=2) + "\n")
    print({name: len(rows) for name, rows in metrics.items()})


if __name__ == "__main__":
    main()
