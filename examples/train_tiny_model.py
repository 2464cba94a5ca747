"""Train a tiny denoiser for a few steps on a folder of images and use it (needs hfpie[train]).

Run: python examples/train_tiny_model.py FOLDER_OF_IMAGES
"""

import sys
from pathlib import Path

from hfpie import enhance
from hfpie.training.config import TrainConfig
from hfpie.training.trainer import train

folder = sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).parent)
config = TrainConfig(task="denoise", preset="tiny", train_folders=(folder,), patch_size=32, batch_size=4,
                     steps=50, log_every=10, learning_rate=1e-3)
train(config, "runs/example")
result = enhance(str(Path(__file__).parent / "noisy.png"), model="runs/example/final.safetensors")
result.save("denoised_by_tiny.png")
print("wrote denoised_by_tiny.png (a 50-step model: expect little improvement)")
