"""One entry point for every image data set of the book: ``load_images("cifar10", "test")``.

Chapters name their data set in a preset (``cfg.dataset``) and call :func:`load_images`; the name picks the
loader (MNIST-class idx files or the CIFAR-scale torchvision formats), so the same notebook cell runs on
MNIST at demo scale and on CIFAR-10 at paper scale. ``"photo_crops"`` is chapter 04's offline stand-in of 32x32
colour photographs (:mod:`ebmlib.data.standin`), never CIFAR-10; ``"photo_crops_128"`` the same crops at
128x128, chapter 12's stand-in, never ImageNet.
"""
from __future__ import annotations

import os
from typing import Optional

from ebmlib.core.images import ImageData
from ebmlib.data.mnist import load_mnist

__all__ = ["IMAGE_DATASETS", "DISPLAY_NAMES", "load_images", "image_shape"]

#: data set -> (channels, height, width) of its images as the loaders return them
IMAGE_DATASETS = {
    "mnist": (1, 28, 28), "fashion": (1, 28, 28),
    "cifar10": (3, 32, 32), "svhn": (3, 32, 32), "dtd": (3, 32, 32),
    "photo_crops": (3, 32, 32),    # chapter 04's offline stand-in (ebmlib.data.standin), not CIFAR-10
    "photo_crops_128": (3, 128, 128),   # the same crops at 128x128: chapter 12's stand-in, not ImageNet
}
#: how the book writes each name in text, tables and legends
DISPLAY_NAMES = {"mnist": "MNIST", "fashion": "Fashion-MNIST", "cifar10": "CIFAR-10", "svhn": "SVHN",
                 "dtd": "Textures (DTD)", "photo_crops": "photo-crops stand-in (not CIFAR-10)",
                 "photo_crops_128": "photo-crops stand-in at 128x128 (not ImageNet)"}


def _check(name: str) -> str:
    if name not in IMAGE_DATASETS:
        raise ValueError(f"unknown image data set {name!r}; expected one of {sorted(IMAGE_DATASETS)}")
    return name


def image_shape(name: str) -> tuple[int, int, int]:
    """(C, H, W) of data set ``name``'s images."""
    return IMAGE_DATASETS[_check(name)]


def load_images(name: str, split: str = "train", root: Optional[str | os.PathLike] = None,
                download: bool = True) -> ImageData:
    """Split ``split`` of image data set ``name`` (see ``IMAGE_DATASETS``) as uint8 :class:`ImageData`."""
    _check(name)
    if name in ("mnist", "fashion"):
        return load_mnist(name, split, root=root, download=download)
    if name in ("photo_crops", "photo_crops_128"):   # made from bundled photographs; nothing to download
        from ebmlib.data.standin import load_photo_crops
        return load_photo_crops(split, size=IMAGE_DATASETS[name][-1])
    from ebmlib.data import cifar

    loader = {"cifar10": cifar.load_cifar10, "svhn": cifar.load_svhn, "dtd": cifar.load_dtd}[name]
    return loader(split, root=root, download=download)
