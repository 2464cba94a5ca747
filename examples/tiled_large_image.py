"""Tiled inference on a large image: exact tiling (halo="exact") equals whole-image inference.

Uses a small random network so it runs anywhere in seconds; with pretrained weights pass model=None.
Run: python examples/tiled_large_image.py
"""

import time

import torch

from hfpie import HFPIENet, config_from_preset, enhance

torch.manual_seed(0)
network = HFPIENet(config_from_preset("tiny", attention_window=8)).eval()
image = torch.rand(3, 600, 500)

start = time.perf_counter()
whole = enhance(image, model=network)  # fits in memory: one pass
middle = time.perf_counter()
tiled = enhance(image, model=network, tile=256, halo="exact", progress=True)
end = time.perf_counter()
print(f"whole {middle - start:.2f}s, tiled {end - middle:.2f}s, max abs difference {float((whole - tiled).abs().max()):.2e}")
