"""Rebuild the example image folder beside this file: `python configs/data/make_images.py`.

shapes/circles/*.png and shapes/squares/*.png: 24 small RGB images per class (32x32), a filled
circle or square of random size, place and colour on a plain dark background, from a fixed seed.
One subfolder per class is what `data.image_dir` (keras.utils.image_dataset_from_directory)
reads. Needs Pillow (installed with matplotlib); about 20 KB in all.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def write_shapes(folder: Path, per_class: int = 24, size: int = 32, seed: int = 0) -> Path:
    """`per_class` PNGs of each class under `folder`/circles and `folder`/squares."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    for shape in ("circles", "squares"):
        target = Path(folder) / shape
        target.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 96, 3)))
            r = int(rng.integers(size // 6, size // 3))
            cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
            colour = tuple(int(v) for v in rng.integers(128, 256, 3))
            box = (cx - r, cy - r, cx + r, cy + r)
            draw = ImageDraw.Draw(image)
            (draw.ellipse if shape == "circles" else draw.rectangle)(box, fill=colour)
            image.save(target / f"{i:02d}.png", optimize=True)
    return Path(folder)


if __name__ == "__main__":
    print(write_shapes(HERE / "shapes"))
