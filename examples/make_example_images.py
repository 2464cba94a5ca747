"""Make the example inputs of this folder: a synthetic scene and its noisy, blurry and small versions.

Run: python examples/make_example_images.py   (writes clean.png, noisy.png, blurry.png, small.png)
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).parent


def scene(size: int = 256) -> np.ndarray:
    """A deterministic test scene: smooth gradients, sharp shapes, fine stripes and text."""
    y, x = np.mgrid[0:size, 0:size] / size
    background = np.stack([0.35 + 0.4 * x, 0.3 + 0.3 * y, 0.6 - 0.3 * x * y], axis=-1)
    image = Image.fromarray((background * 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((20, 30, 110, 120), fill=(200, 60, 40), outline=(20, 20, 20), width=3)
    draw.rectangle((140, 20, 235, 100), fill=(40, 120, 200))
    for index in range(12):  # stripes of decreasing period
        left = 20 + index * (6 + index // 3)
        draw.rectangle((left, 150, left + 2 + index // 4, 235), fill=(15, 15, 15))
    draw.polygon([(150, 230), (200, 130), (245, 230)], fill=(240, 220, 90), outline=(0, 0, 0))
    draw.text((150, 110), "hfpie 2105.11711", fill=(255, 255, 255))
    return np.asarray(image)


def main() -> None:
    clean = scene()
    rng = np.random.default_rng(25)
    noisy = np.clip(np.round(clean + 25.0 * rng.standard_normal(clean.shape)), 0, 255).astype(np.uint8)
    Image.fromarray(clean).save(HERE / "clean.png")
    Image.fromarray(noisy).save(HERE / "noisy.png")
    blurry = Image.fromarray(clean).resize((128, 128), Image.BICUBIC).resize((256, 256), Image.BICUBIC)
    blurry.save(HERE / "blurry.png")
    Image.fromarray(clean).resize((64, 64), Image.BICUBIC).save(HERE / "small.png")


if __name__ == "__main__":
    main()
