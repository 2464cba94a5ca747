"""Blend two checkpoints of the same architecture: (1 - alpha) * A + alpha * B (network interpolation).

    python scripts/blend_weights.py A.safetensors B.safetensors --alpha 0.5 -o OUT.safetensors

As in ESRGAN's network interpolation: one knob between two fine-tunes of one model (here: the
real-noise denoiser and its fine-tune that leaves clean photos alone). B's metadata is kept.
"""

from __future__ import annotations

import argparse

from safetensors import safe_open
from safetensors.torch import load_file, save_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--alpha", type=float, required=True, help="weight of B, in [0, 1]")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args()
    if not 0.0 <= args.alpha <= 1.0:
        parser.error(f"--alpha must be in [0, 1], got {args.alpha}")
    first, second = load_file(args.a), load_file(args.b)
    if first.keys() != second.keys() or any(first[k].shape != second[k].shape for k in first):
        parser.error("the two checkpoints do not have the same tensors: blend only fine-tunes of one model")
    with safe_open(args.b, "pt") as handle:
        metadata = handle.metadata()
    blended = {k: ((1 - args.alpha) * first[k].float() + args.alpha * second[k].float()).to(second[k].dtype)
               if second[k].is_floating_point() else second[k] for k in second}
    save_file(blended, args.output, metadata=metadata)


if __name__ == "__main__":
    main()
