"""Image data as the EBMs see it: uint8 pixels kept as they are stored, made continuous per draw (A.3)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

__all__ = ["ImageData", "dequantize", "dequantize_centred", "DEQUANTIZERS"]


@dataclass
class ImageData:
    """A split of an image data set: uint8 images (N, 1, 28, 28), int64 labels (N,) and the class names."""

    images: Tensor
    labels: Tensor
    classes: list[str]

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, n: int, generator: Optional[torch.Generator] = None) -> "ImageData":
        """``n`` examples drawn without replacement (all of them, in order, if n >= len)."""
        if n >= len(self):
            return self
        idx = torch.randperm(len(self), generator=generator)[:n]
        return ImageData(self.images[idx], self.labels[idx], self.classes)

    def continuous(self, generator: Optional[torch.Generator] = None) -> Tensor:
        """The images dequantised to float in [0, 1) (A.3)."""
        return dequantize(self.images, generator)


def dequantize_centred(pixels: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """uint8 pixels -> float in [0, 1]: pixel / 255 + U(-1/512, 1/512), clipped to [0, 1], the dequantisation of
    the authors' ImageNet32 loader (references.bib ``du2019implicit``; A.3's form, :func:`dequantize`, is the one
    of their CIFAR-10 and MNIST loaders)."""
    if pixels.dtype != torch.uint8:
        raise TypeError(f"dequantize_centred expects uint8 pixels, got {pixels.dtype}")
    u = torch.rand(pixels.shape, generator=generator) - 0.5
    return (pixels.to(torch.float32) / 255.0 + u / 256.0).clamp_(0.0, 1.0)


def dequantize(pixels: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """uint8 pixels -> float in [0, 1): (pixel + U(0, 1)) / 256, the paper's continuous MNIST (A.3).

    Every value stays inside its own 1/256 bin, so ``floor(256 x) == pixel`` and the data density is a
    proper density on [0, 1]^D (needed for the likelihoods of chapter 05).
    """
    if pixels.dtype != torch.uint8:
        raise TypeError(f"dequantize expects uint8 pixels, got {pixels.dtype}")
    p = pixels.to(torch.float32)
    x = (p + torch.rand(pixels.shape, generator=generator)) / 256.0
    # float32 rounding can carry p + u (u just below 1) up to p + 1: keep x strictly inside its bin
    return torch.minimum(x, torch.nextafter((p + 1.0) / 256.0, torch.zeros(())))


#: a recipe's ``dequant`` setting -> its dequantisation: "bin" is A.3's (CIFAR-10, MNIST), "centred" the release's
#: ImageNet32 loader's
DEQUANTIZERS = {"bin": dequantize, "centred": dequantize_centred}
