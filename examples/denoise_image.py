"""Denoise an image with the default model and report the PSNR against the clean original.

Run: python examples/denoise_image.py
"""

from pathlib import Path

import numpy as np
from PIL import Image

from hfpie import enhance

HERE = Path(__file__).parent


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


noisy = np.asarray(Image.open(HERE / "noisy.png"))
clean = np.asarray(Image.open(HERE / "clean.png"))
denoised = enhance(noisy, task="denoise")  # uint8 in, uint8 out
print(f"noisy {psnr(noisy, clean):.2f} dB -> denoised {psnr(denoised, clean):.2f} dB")
Image.fromarray(denoised).save("denoised.png")
