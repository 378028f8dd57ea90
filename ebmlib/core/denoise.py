"""Denoising with an EBM as the prior: descend E(x) + (lam / 2) ||x - x_noisy||^2 (chapter 10).

Under Gaussian noise of standard deviation s, -log p(x | x_noisy) = E(x) / T + ||x - x_noisy||^2 / (2 s^2)
+ const for a prior p(x) proportional to exp(-E(x) / T), so the posterior mode is the minimiser of
E(x) + (lam / 2) ||x - x_noisy||^2 with lam = T / s^2 (Bayes' choice). The paper's image EBMs sample at a tiny
temperature (T = noise_std^2 / (2 step) = 1.25e-6 for A.7's sampler), which makes Bayes' lam tiny too; the
chapter measures which lam works instead of assuming it. ``lam = 0`` is plain energy descent from the noisy
image, the closest deterministic relative of the paper's Langevin restoration (section 4.2,
:func:`ebmlib.core.restore.restore`).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from ebmlib.core.samplers import PaperLangevin
from ebmlib.core.train import frozen

__all__ = ["FidelityEnergy", "denoise", "gaussian_noise", "psnr", "bayes_lambda"]


class FidelityEnergy(nn.Module):
    """E(x) + (lam / 2) ||x - observed||^2 per image: the energy of the posterior given ``observed``."""

    def __init__(self, energy: nn.Module, observed: Tensor, lam: float):
        super().__init__()
        if not (lam >= 0 and math.isfinite(lam)):
            raise ValueError(f"lam (the data-fidelity weight) must be finite and >= 0, got {lam!r}")
        self.energy, self.observed, self.lam = energy, observed, float(lam)

    def forward(self, x: Tensor, y: Optional[Tensor] = None) -> Tensor:
        prior = self.energy(x) if y is None else self.energy(x, y)
        return prior + 0.5 * self.lam * (x - self.observed).flatten(1).pow(2).sum(1)


def denoise(model: nn.Module, x_noisy: Tensor, lam: float, n_steps: int, step_size: float,
            noise_std: float = 0.0, grad_clip: Optional[float] = None,
            generator: Optional[torch.Generator] = None) -> Tensor:
    """``n_steps`` of projected gradient descent on :class:`FidelityEnergy` from ``x_noisy``, kept in [0, 1]
    (with ``noise_std > 0`` it is Langevin on the posterior instead). Stable while step_size * lam < 2."""
    if lam * step_size >= 2:
        raise ValueError(f"step_size * lam = {step_size * lam:g} >= 2: the fidelity term alone would diverge; "
                         "lower step_size or lam")
    sampler = PaperLangevin(step_size, noise_std, grad_clip)
    with frozen(model):
        return sampler.run(FidelityEnergy(model, x_noisy, lam), x_noisy.clone(), n_steps, clamp=(0.0, 1.0),
                           generator=generator).x


def gaussian_noise(x: Tensor, std: float, generator: Optional[torch.Generator] = None) -> Tensor:
    """x + N(0, std^2) per pixel, clipped to [0, 1]."""
    if not (std >= 0 and math.isfinite(std)):
        raise ValueError(f"std must be finite and >= 0, got {std!r}")
    return (x + std * torch.randn(x.shape, generator=generator)).clamp(0.0, 1.0)


def psnr(x: Tensor, reference: Tensor) -> Tensor:
    """Peak signal-to-noise ratio per image in dB for images in [0, 1]: -10 log10(mean squared error)."""
    if x.shape != reference.shape:
        raise ValueError(f"images {tuple(x.shape)} and references {tuple(reference.shape)} differ in shape")
    mse = (x - reference).flatten(1).pow(2).mean(1)
    return -10.0 * torch.log10(mse.clamp_min(1e-12))


def bayes_lambda(temperature: float, noise_std: float) -> float:
    """lam = T / s^2: the fidelity weight that makes :func:`denoise` the posterior mode (module doc)."""
    return temperature / noise_std ** 2
