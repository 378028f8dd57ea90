"""The offline stand-in for CIFAR-10: random 32x32 crops of ten colour photographs bundled with scikit-image and
scikit-learn. **It is not CIFAR-10** and is never called so: every caption, table and metrics file names it
:data:`NAME`.

CIFAR-10 cannot be downloaded on the book's machines, but chapter 04's demo needs real 32x32 colour images to
train on. The ten classes are ten photographs (the class of an image is the photograph it was cut from):

* scikit-image: ``astronaut``, ``chelsea`` (the cat; ``skimage.data.cat`` is the same photo and is not counted
  twice), ``coffee``, ``rocket``, ``hubble_deep_field``, ``immunohistochemistry``, ``retina``, and the left image
  of ``stereo_motorcycle``;
* scikit-learn: ``load_sample_images()``'s ``china`` and ``flower``.

(``skimage.data.colorwheel`` is a drawing, not a photograph, and is left out.)

Each photograph is cut in two along its longer side: the first 70% is the **train region**, the last 30% the
**test region**, so no test image shares a pixel with a training image. Crops are square, of three sides (0.4,
0.65 and 1.0 times the shorter side of the test region, the same pixel sizes in both regions), at uniformly random
positions inside the region, resized to 32x32 with an antialiasing (bicubic, area-aware) filter. Everything is a
function of ``seed``: image ``i`` of class ``c`` in split ``s`` comes from ``numpy.random.default_rng([seed, s, c])``.
Classes are balanced (``n_per_class`` each), ordered class by class.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional

import numpy as np
import torch

from ebmlib.core.images import ImageData

__all__ = ["NAME", "PHOTOS", "SCALES", "TRAIN_FRACTION", "SPLITS", "PER_CLASS", "load_photo", "regions", "crop_boxes",
           "load_photo_crops"]

#: how the book writes this data set's name, everywhere it appears
NAME = "photo-crops stand-in (not CIFAR-10)"
#: the ten photographs, in class order: (class name, library, loader)
PHOTOS = (("astronaut", "skimage", "astronaut"), ("chelsea", "skimage", "chelsea"), ("coffee", "skimage", "coffee"),
          ("rocket", "skimage", "rocket"), ("hubble_deep_field", "skimage", "hubble_deep_field"),
          ("immunohistochemistry", "skimage", "immunohistochemistry"), ("retina", "skimage", "retina"),
          ("motorcycle", "skimage", "stereo_motorcycle"), ("china", "sklearn", "china.jpg"),
          ("flower", "sklearn", "flower.jpg"))
#: crop sides as fractions of the test region's shorter side
SCALES = (0.4, 0.65, 1.0)
#: the share of the longer side that is the train region (the rest is the test region)
TRAIN_FRACTION = 0.7
SPLITS = ("train", "test")
#: images per class of each split (CIFAR-10 has 5,000 / 1,000; crops of one photograph repeat themselves sooner)
PER_CLASS = {"train": 2000, "test": 500}


@lru_cache(maxsize=None)
def load_photo(index: int) -> np.ndarray:
    """Photograph ``index`` of :data:`PHOTOS` as uint8 (H, W, 3); read-only (cached)."""
    _, library, loader = PHOTOS[index]
    if library == "skimage":
        from skimage import data
        image = getattr(data, loader)()
        image = image[0] if loader == "stereo_motorcycle" else image   # (left, right, disparity): the left image
    else:
        from sklearn.datasets import load_sample_images
        found = load_sample_images()
        names = [str(f).replace("\\", "/").rsplit("/", 1)[-1] for f in found.filenames]
        image = found.images[names.index(loader)]
    image = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
    image.setflags(write=False)
    return image


def regions(height: int, width: int) -> dict[str, tuple[int, int, int, int]]:
    """The train and test regions of an ``height`` x ``width`` photograph as (top, left, bottom, right), cut
    along the longer side (the width when square) at :data:`TRAIN_FRACTION`."""
    if width >= height:
        cut = int(round(TRAIN_FRACTION * width))
        return {"train": (0, 0, height, cut), "test": (0, cut, height, width)}
    cut = int(round(TRAIN_FRACTION * height))
    return {"train": (0, 0, cut, width), "test": (cut, 0, height, width)}


def _sides(height: int, width: int) -> list[int]:
    t, l, b, r = regions(height, width)["test"]
    short = min(b - t, r - l)
    return [max(8, int(round(s * short))) for s in SCALES]


def crop_boxes(index: int, split: str, n: int, seed: int = 0) -> np.ndarray:
    """``n`` crop boxes (top, left, bottom, right) of photograph ``index`` inside its ``split`` region: sides
    cycling through :data:`SCALES`, positions uniform, drawn from ``default_rng([seed, split, index])``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    h, w = load_photo(index).shape[:2]
    top, left, bottom, right = regions(h, w)[split]
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    sides = _sides(h, w)
    boxes = np.empty((n, 4), dtype=np.int64)
    for i in range(n):
        s = sides[i % len(sides)]
        y = int(rng.integers(top, bottom - s + 1))
        x = int(rng.integers(left, right - s + 1))
        boxes[i] = (y, x, y + s, x + s)
    return boxes


def load_photo_crops(split: str = "train", n_per_class: Optional[int] = None, seed: int = 0,
                     size: int = 32) -> ImageData:
    """The stand-in's ``split``: ``n_per_class`` crops of each photograph (default :data:`PER_CLASS`: 2,000 train,
    500 test) as uint8 (10 * n_per_class, 3, size, size), labels 0..9 (the photograph), class names
    :data:`PHOTOS`' names."""
    from PIL import Image

    n_per_class = PER_CLASS.get(split) if n_per_class is None else n_per_class
    if not isinstance(n_per_class, int) or n_per_class < 1:
        raise ValueError(f"n_per_class must be a positive int, got {n_per_class!r}")
    images = np.empty((len(PHOTOS) * n_per_class, 3, size, size), dtype=np.uint8)
    for c in range(len(PHOTOS)):
        photo = Image.fromarray(load_photo(c))
        for i, (t, l, b, r) in enumerate(crop_boxes(c, split, n_per_class, seed)):
            crop = photo.resize((size, size), Image.BICUBIC, box=(int(l), int(t), int(r), int(b)), reducing_gap=None)
            images[c * n_per_class + i] = np.asarray(crop, dtype=np.uint8).transpose(2, 0, 1)
    labels = torch.arange(len(PHOTOS)).repeat_interleave(n_per_class)
    return ImageData(torch.from_numpy(images), labels, [name for name, _, _ in PHOTOS])
