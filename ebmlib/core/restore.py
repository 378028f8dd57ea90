"""Image restoration and conversion by sampling (section 4.2, Fig. 6, 7, 8 and 19).

An EBM needs no task-specific training to repair an image: start Langevin chains at the corrupted image and
let them descend the energy. Three starts (Fig. 6): salt-and-pepper noise (0.1 of the pixels), a masked half
(inpainting), and the clean test image itself (ground-truth initialisation, which should barely move).
For inpainting the known pixels are clamped while the rest are sampled (Fig. 8); a conditional model started
at a digit of one class and conditioned on another converts it (cross-class sampling, Fig. 7 and 19).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ebmlib.core.samplers import PaperLangevin, Sampler
from ebmlib.core.train import frozen

__all__ = ["completions", "salt_and_pepper", "half_mask", "ClampedEnergy", "restore", "generate", "sampling_frames", "changed_fraction"]


def salt_and_pepper(x: Tensor, fraction: float = 0.1, generator: Optional[torch.Generator] = None) -> Tensor:
    """Set a random ``fraction`` of the pixels to 0 or 1 (half each), as in Fig. 6's corruption (0.1)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction!r}")
    hit = torch.rand(x.shape, generator=generator) < fraction
    salt = (torch.rand(x.shape, generator=generator) < 0.5).to(x.dtype)
    return torch.where(hit, salt, x)


def half_mask(shape: tuple[int, ...], keep: str = "top") -> Tensor:
    """A boolean mask over (N, C, H, W) images that is True on the known half (``keep`` = "top" or "left")."""
    if len(shape) != 4:
        raise ValueError(f"half_mask expects an (N, C, H, W) shape, got {tuple(shape)}")
    mask = torch.zeros(shape, dtype=torch.bool)
    h, w = shape[2], shape[3]
    if keep == "top":
        mask[:, :, : h // 2] = True
    elif keep == "left":
        mask[:, :, :, : w // 2] = True
    else:
        raise ValueError(f"keep must be 'top' or 'left', got {keep!r}")
    return mask


class ClampedEnergy(nn.Module):
    """E(x) with the pixels where ``mask`` is True fixed to ``known``: E'(z) = E(mask*known + (1-mask)*z).

    Its gradient is zero on the known pixels, so any sampler leaves them irrelevant and only the unknown ones
    move; :meth:`compose` gives the full image.
    """

    def __init__(self, energy: nn.Module, known: Tensor, mask: Tensor):
        super().__init__()
        if known.shape != mask.shape:
            raise ValueError(f"known images {tuple(known.shape)} and mask {tuple(mask.shape)} differ in shape")
        self.energy, self.known, self.mask = energy, known, mask

    def compose(self, z: Tensor) -> Tensor:
        return torch.where(self.mask, self.known, z)

    def forward(self, z: Tensor, y: Optional[Tensor] = None) -> Tensor:
        x = self.compose(z)
        return self.energy(x) if y is None else self.energy(x, y)


def restore(model: nn.Module, x0: Tensor, n_steps: int, y: Optional[Tensor] = None, mask: Optional[Tensor] = None,
            sampler: Optional[Sampler] = None, generator: Optional[torch.Generator] = None) -> Tensor:
    """Run ``n_steps`` of Langevin (A.7's sampler by default) from ``x0``, clamped to [0, 1].

    With ``mask`` (True = known), the known pixels of ``x0`` stay fixed (inpainting); with labels ``y`` a
    conditional model samples its class (cross-class conversion when ``x0`` shows another class).
    """
    if mask is not None and mask.shape != x0.shape:
        raise ValueError(f"mask {tuple(mask.shape)} must match the images {tuple(x0.shape)}")
    sampler = sampler if sampler is not None else PaperLangevin()
    energy = ClampedEnergy(model, x0, mask) if mask is not None else model
    with frozen(model):
        x = sampler.run(energy, x0.clone(), n_steps, y=y, clamp=(0.0, 1.0), generator=generator).x
    return energy.compose(x) if mask is not None else x


def generate(model: nn.Module, n: int, n_steps: int, y: Optional[Tensor] = None,
             image_shape: tuple[int, ...] = (1, 28, 28), sampler: Optional[Sampler] = None,
             generator: Optional[torch.Generator] = None, x0: Optional[Tensor] = None) -> Tensor:
    """Samples from ``n`` chains started at U(0, 1) noise (or at ``x0``): restoration of pure noise (Fig. 21)."""
    if x0 is None:
        x0 = torch.rand((n, *image_shape), generator=generator)
    elif x0.shape[0] != n:
        raise ValueError(f"x0 holds {x0.shape[0]} images, expected n={n}")
    return restore(model, x0, n_steps, y=y, sampler=sampler, generator=generator)


def sampling_frames(model: nn.Module, x0: Tensor, frames: tuple[int, ...], y: Optional[Tensor] = None,
                    sampler: Optional[Sampler] = None, generator: Optional[torch.Generator] = None) -> Tensor:
    """The chains' states after each number of steps in ``frames`` (sorted), shape (len(frames), N, ...)."""
    if list(frames) != sorted(frames) or frames[0] < 0:
        raise ValueError(f"frames must be non-negative and increasing, got {frames}")
    out, x, done = [], x0, 0
    for f in frames:
        x = restore(model, x, f - done, y=y, sampler=sampler, generator=generator) if f > done else x
        done = f
        out.append(x.clone())
    return torch.stack(out)


def changed_fraction(before: Tensor, after: Tensor) -> float:
    """Fraction of positions where two label vectors differ (how many restorations changed class)."""
    if before.shape != after.shape:
        raise ValueError(f"label vectors differ in shape: {tuple(before.shape)} vs {tuple(after.shape)}")
    return (before != after).float().mean().item()


def completions(model: nn.Module, x: Tensor, n_chains: int, n_steps: int, n_images: int = 4,
                y: Optional[Tensor] = None, sampler: Optional[Sampler] = None, names: Optional[list] = None,
                generator: Optional[torch.Generator] = None) -> dict[str, Tensor]:
    """Fig. 8: each of the first ``n_images`` images of ``x`` with its bottom half masked, completed by
    ``n_chains`` independent chains with the top half clamped (a conditional model: each image's chains under
    its label ``y``): {name: (2 + n_chains, C, H, W) original, masked, completions}; ``names`` default "test i"."""
    rows = {}
    for i in range(n_images):
        xi = x[i: i + 1].expand(n_chains, -1, -1, -1)
        m = half_mask(tuple(xi.shape), keep="top")
        init = torch.where(m, xi, torch.rand(xi.shape, generator=generator))
        yi = None if y is None else y[i: i + 1].expand(n_chains)
        name = names[i] if names is not None else f"test {i}"
        rows[name] = torch.cat([x[i: i + 1], torch.where(m, xi, 0.5)[:1],
                                restore(model, init, n_steps, y=yi, mask=m, sampler=sampler, generator=generator)])
    return rows
