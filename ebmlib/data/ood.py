"""Out-of-distribution test sets (section 4.3): the paper's CIFAR-10 sets and their MNIST-scale analogues.

Each builder returns float images in [0, 1] shaped like the in-distribution test images: constant images,
uniform noise, interpolations of test images, crops of textured photographs (scikit-image's bundled
photographs stand in for DTD at MNIST scale), and another data set. Used by chapters 06 and 11.
"""
from __future__ import annotations

import functools
from typing import Callable, Optional

import numpy as np
import torch
from torch import Tensor

__all__ = ["constant_images", "uniform_noise", "interpolations", "texture_crops", "TEXTURE_IMAGES",
           "mnist_ood_sets", "cifar_ood_sets", "OTHER_SET", "ood_sets"]


def _check_n(n: int) -> None:
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")


def _check_size(size: int) -> None:
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")


def _check_channels(channels: int) -> None:
    if not isinstance(channels, (int, np.integer)) or channels < 1:
        raise ValueError(f"channels must be a positive integer, got {channels!r}")


def constant_images(n: int, generator: Optional[torch.Generator] = None, size: int = 28, channels: int = 1) -> Tensor:
    """``n`` images (n, channels, size, size), each one uniformly random constant colour in [0, 1)^channels.

    The paper's "constant random color" set: featureless images to which likelihood models give very high density.
    """
    _check_n(n)
    _check_size(size)
    _check_channels(channels)
    v = torch.rand(n, channels, 1, 1, generator=generator)
    return v.expand(n, channels, size, size).contiguous()


def uniform_noise(n: int, generator: Optional[torch.Generator] = None, size: int = 28, channels: int = 1) -> Tensor:
    """``n`` images (n, channels, size, size) of i.i.d. uniform [0, 1) pixels (the paper's "uniform noise" set)."""
    _check_n(n)
    _check_size(size)
    _check_channels(channels)
    return torch.rand(n, channels, size, size, generator=generator)


def _check_images(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim != 4:
        raise ValueError(f"{name} must be a float tensor of images (N, C, H, W) in [0, 1], got "
                         f"{getattr(x, 'dtype', type(x))} {tuple(getattr(x, 'shape', ()))}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"{name} must lie in [0, 1], got values in [{float(x.min()):.4g}, {float(x.max()):.4g}]")


def interpolations(x: Tensor, n: int, generator: Optional[torch.Generator] = None, alpha: float = 0.5) -> Tensor:
    """``n`` convex mixtures alpha * x[i] + (1 - alpha) * x[j] of two random distinct images of ``x`` (Fig. 9's
    "interpolation" set: blends of two test images are near the data but are not digits)."""
    _check_n(n)
    _check_images(x, "x")
    if x.shape[0] < 2:
        raise ValueError(f"interpolations need at least 2 images in x, got {x.shape[0]}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    i = torch.randint(x.shape[0], (n,), generator=generator)
    # j = i + k (mod N) with k in [1, N): always a different image, uniform over the others.
    j = (i + torch.randint(1, x.shape[0], (n,), generator=generator)) % x.shape[0]
    return (alpha * x[i] + (1.0 - alpha) * x[j]).clamp(0.0, 1.0)


# Images shipped inside scikit-image (no download needed): three textures (brick, grass, gravel) plus natural
# photos and scanned text, all of which give textured 28x28 crops once downscaled.
TEXTURE_IMAGES = ("brick", "grass", "gravel", "moon", "coins", "camera", "text", "coffee")
_TEXTURE_DOWNSCALE = 4  # 512x512 -> 128x128: a 28x28 crop then spans ~22% of the image, enough to show texture


@functools.lru_cache(maxsize=None)
def _texture_bank(size: int) -> tuple[np.ndarray, ...]:
    """Grey, downscaled, min-max scaled [0, 1] float32 versions of ``TEXTURE_IMAGES`` (cached)."""
    import skimage.data
    from skimage.color import rgb2gray
    from skimage.transform import downscale_local_mean

    bank = []
    for name in TEXTURE_IMAGES:
        img = np.asarray(getattr(skimage.data, name)(), dtype=np.float64)
        if img.ndim == 3:
            img = rgb2gray(img[..., :3] / 255.0)
        # Downscale by block averaging (anti-aliased), but never below the crop size.
        f = max(1, min(_TEXTURE_DOWNSCALE, min(img.shape) // size))
        # Trim to a multiple of f first: downscale_local_mean zero-pads partial blocks, darkening the edges.
        img = img[: img.shape[0] // f * f, : img.shape[1] // f * f]
        img = downscale_local_mean(img, (f, f))
        lo, hi = img.min(), img.max()
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
        if min(img.shape) < size:
            continue
        bank.append(img.astype(np.float32))
    if not bank:
        raise ValueError(f"size {size} is larger than every texture image")
    return tuple(bank)


def texture_crops(n: int, generator: Optional[torch.Generator] = None, size: int = 28) -> Tensor:
    """``n`` random ``size`` x ``size`` grey crops (n, 1, size, size) in [0, 1] of scikit-image's bundled images
    ``TEXTURE_IMAGES`` (brick, grass, gravel, moon, coins, camera, text, coffee): converted to grey, downscaled
    4x by block averaging so a crop shows texture rather than a flat patch, and min-max scaled to [0, 1] per
    image. An MNIST-scale stand-in for the paper's "textures" set (Describable Textures Dataset)."""
    _check_n(n)
    _check_size(size)
    bank = _texture_bank(int(size))
    which = torch.randint(len(bank), (n,), generator=generator)
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    out = torch.empty(n, 1, size, size)
    for k in range(n):
        img = bank[int(which[k])]
        top = int(u[k, 0] * (img.shape[0] - size + 1))
        left = int(u[k, 1] * (img.shape[1] - size + 1))
        out[k, 0] = torch.from_numpy(img[top:top + size, left:left + size])
    return out


def mnist_ood_sets(in_test: Tensor, n: int, generator: Optional[torch.Generator] = None,
                   other: Optional[Tensor] = None, other_name: str = "Fashion-MNIST") -> dict[str, Tensor]:
    """The OOD sets for an MNIST-like in-distribution test set ``in_test`` (float (N, 1, S, S) in [0, 1]).

    Returns {other_name: other[:n] (only if ``other`` is given), "textures", "constant", "uniform noise",
    "interpolation"}, each (n, 1, S, S) (``other`` may have fewer than n images). Deterministic given the
    generator's state (sets are drawn in that order from the one generator).
    """
    _check_n(n)
    _check_images(in_test, "in_test")
    if in_test.shape[1] != 1 or in_test.shape[2] != in_test.shape[3]:
        raise ValueError(f"in_test must be square grey images (N, 1, S, S), got {tuple(in_test.shape)}")
    size = int(in_test.shape[-1])
    sets: dict[str, Tensor] = {}
    if other is not None:
        _check_images(other, "other")
        if other.shape[1:] != in_test.shape[1:]:
            raise ValueError(f"other's image shape {tuple(other.shape[1:])} does not match in_test's "
                             f"{tuple(in_test.shape[1:])}")
        if other.shape[0] == 0:
            raise ValueError("other is empty")
        sets[other_name] = other[:n]
    sets["textures"] = texture_crops(n, generator, size=size)
    sets["constant"] = constant_images(n, generator, size=size)
    sets["uniform noise"] = uniform_noise(n, generator, size=size)
    sets["interpolation"] = interpolations(in_test, n, generator)
    return sets


def cifar_ood_sets(in_test: Tensor, n: int, generator: Optional[torch.Generator] = None,
                   svhn: Optional[Tensor] = None, textures: Optional[Tensor] = None) -> dict[str, Tensor]:
    """Fig. 9's OOD sets for a CIFAR-10 test set ``in_test`` (float (N, 3, 32, 32) in [0, 1]).

    Returns {"svhn": svhn[:n] (if given), "textures": textures[:n] (DTD images at 32x32, if given), "constant"
    (one random colour per image), "uniform noise", "interpolation" (the average of two different test images)},
    each of n images (the given sets may have fewer: DTD's test split has 1,880). The three synthetic sets are
    drawn from ``generator`` in that order.
    """
    _check_n(n)
    _check_images(in_test, "in_test")
    if in_test.shape[1:] != (3, 32, 32):
        raise ValueError(f"in_test must be CIFAR-10 images (N, 3, 32, 32), got {tuple(in_test.shape)}")
    sets: dict[str, Tensor] = {}
    for name, given in (("svhn", svhn), ("textures", textures)):
        if given is None:
            continue
        _check_images(given, name)
        if given.shape[1:] != in_test.shape[1:] or given.shape[0] == 0:
            raise ValueError(f"{name} must be a non-empty batch of (3, 32, 32) images, got {tuple(given.shape)}")
        sets[name] = given[:n]
    sets["constant"] = constant_images(n, generator, size=32, channels=3)
    sets["uniform noise"] = uniform_noise(n, generator, size=32, channels=3)
    sets["interpolation"] = interpolations(in_test, n, generator)
    return sets


#: in-distribution data set -> the real-image OOD set paired with it (the paper's SVHN for CIFAR-10; for the
#: MNIST-class demo, the other MNIST-class set)
OTHER_SET = {"cifar10": "svhn", "mnist": "fashion", "fashion": "mnist"}


def ood_sets(in_name: str, in_test: Tensor, n: int, generator: Optional[torch.Generator] = None,
             load: Optional[Callable] = None) -> dict[str, Tensor]:
    """The OOD sets of in-distribution data set ``in_name`` ("cifar10", "mnist" or "fashion"), loading the real
    image sets they need with ``load(name, split)`` (default :func:`ebmlib.data.load_images`).

    CIFAR-10: :func:`cifar_ood_sets` with n SVHN test images and n DTD test images (32x32). MNIST / Fashion-MNIST:
    :func:`mnist_ood_sets` with n test images of the other set. Real images are drawn (without replacement) and
    dequantised with ``generator`` before the synthetic sets, so the result is deterministic given its state.
    """
    if in_name not in OTHER_SET:
        raise ValueError(f"no OOD sets for data set {in_name!r}; expected one of {sorted(OTHER_SET)}")
    if load is None:
        from ebmlib.data import load_images as load
    other_name = OTHER_SET[in_name]
    other = load(other_name, "test").subset(n, generator).continuous(generator)
    if in_name == "cifar10":
        textures = load("dtd", "test").subset(n, generator).continuous(generator)
        return cifar_ood_sets(in_test, n, generator, svhn=other, textures=textures)
    return mnist_ood_sets(in_test, n, generator, other=other, other_name=other_name)
