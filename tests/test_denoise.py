"""Denoising by energy descent with a data-fidelity term, checked where the answer is closed-form."""
import math

import pytest
import torch
from torch import nn

from ebmlib.core.denoise import FidelityEnergy, bayes_lambda, denoise, gaussian_noise, psnr
from ebmlib.core.scores import auroc, roc_curve


class Quadratic(nn.Module):
    """E(x) = (a / 2) ||x - m||^2, a Gaussian prior with precision a."""

    def __init__(self, a: float, m: torch.Tensor):
        super().__init__()
        self.a = a
        self.m = nn.Parameter(m)

    def forward(self, x, y=None):
        return 0.5 * self.a * (x - self.m).flatten(1).pow(2).sum(1)


def test_descent_reaches_the_closed_form_posterior_mode():
    g = torch.Generator().manual_seed(0)
    m = 0.3 + 0.4 * torch.rand(1, 1, 4, 4, generator=g)
    y = 0.2 + 0.6 * torch.rand(5, 1, 4, 4, generator=g)
    prior = Quadratic(2.0, m)
    for lam in (0.0, 0.5, 3.0):
        x = denoise(prior, y, lam, n_steps=300, step_size=0.2)
        mode = (2.0 * m + lam * y) / (2.0 + lam)   # argmin of the two quadratics, inside [0, 1]
        assert torch.allclose(x, mode.expand_as(x), atol=1e-5), lam


def test_fidelity_energy_adds_the_quadratic_term():
    prior = Quadratic(1.0, torch.zeros(1, 1, 2, 2))
    y = torch.full((3, 1, 2, 2), 0.5)
    x = torch.rand(3, 1, 2, 2)
    e = FidelityEnergy(prior, y, 4.0)(x)
    assert torch.allclose(e, prior(x) + 2.0 * (x - y).flatten(1).pow(2).sum(1))
    with pytest.raises(ValueError, match="lam"):
        FidelityEnergy(prior, y, -1.0)
    with pytest.raises(ValueError, match=">= 2"):
        denoise(prior, y, lam=10.0, n_steps=1, step_size=0.5)


def test_psnr_noise_and_bayes_lambda():
    ref = torch.zeros(2, 1, 4, 4)
    assert torch.allclose(psnr(ref + 0.1, ref), torch.tensor([20.0, 20.0]), atol=1e-4)   # MSE 0.01 -> 20 dB
    x = gaussian_noise(torch.full((2000, 1, 1, 1), 0.5), 0.1, torch.Generator().manual_seed(0))
    assert abs(float(x.std()) - 0.1) < 0.005 and x.min() >= 0 and x.max() <= 1
    assert bayes_lambda(1e-6, 0.1) == pytest.approx(1e-4)


def test_auroc_and_roc_curve_on_known_cases():
    assert auroc([0.0, 1.0], [2.0, 3.0]) == 1.0 and auroc([2.0, 3.0], [0.0, 1.0]) == 0.0
    assert auroc([1.0, 1.0], [1.0, 1.0]) == 0.5
    fpr, tpr = roc_curve([0.0, 1.0, 2.0], [1.5, 3.0])
    # the area under the returned curve is the AUROC: 5 of 6 pairs ordered correctly
    area = sum((fpr[i + 1] - fpr[i]) * (tpr[i + 1] + tpr[i]) / 2 for i in range(len(fpr) - 1))
    assert math.isclose(area, auroc([0.0, 1.0, 2.0], [1.5, 3.0])) and math.isclose(area, 5 / 6)
