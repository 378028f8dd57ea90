"""Tests of ebmlib.compose: AND (sum of energies) and OR (log-sum-exp) against exact products and mixtures."""
import math

import pytest
import torch

from ebmlib.core import compose as C
from ebmlib.core import energies as E
from ebmlib.chapters import training_2d as T
from ebmlib.core.metrics import Grid2D, grid_kl
from ebmlib.core.samplers import PaperLangevin


def test_sum_of_two_gaussian_energies_is_their_product_density():
    # N(a, s^2 I) x N(b, s^2 I) is proportional to N((a + b) / 2, s^2 / 2 I)
    a, b = E.Gaussian((-1.0, 0.0), 0.25), E.Gaussian((1.0, 0.5), 0.25)
    grid = Grid2D((-4, 4), 80)
    product = C.product_cells(grid, a.log_prob, b.log_prob)
    exact = grid.normalise(log_density=E.Gaussian((0.0, 0.25), 0.125).log_prob)
    assert T.cell_kl(product, exact) < 1e-6
    and_energy = C.SumEnergy(a.energy, b.energy)
    assert torch.allclose(grid.normalise(energy=and_energy), exact, atol=1e-6)


def test_mixture_energy_of_normalised_experts_is_the_mixture():
    a, b = E.Gaussian((-1.5, 0.0), 0.3), E.Gaussian((1.5, 0.0), 0.3)
    x = torch.randn(50, 2)
    ref = E.Mixture([a, b], weights=[1.0, 3.0])
    assert torch.allclose(C.MixtureEnergy(a.energy, b.energy, weights=[1.0, 3.0])(x), ref.energy(x), atol=1e-5)
    grid = Grid2D((-4, 4), 40)
    assert T.cell_kl(C.mixture_cells(grid, a.log_prob, b.log_prob, weights=[1, 3]),
                     grid.normalise(log_density=ref.log_prob)) < 1e-9


def test_and_is_high_only_where_both_are_or_where_either_is():
    a, b = E.Gaussian((-2.0, 0.0), 0.3), E.Gaussian((2.0, 0.0), 0.3)
    mid, left = torch.tensor([[0.0, 0.0]]), torch.tensor([[-2.0, 0.0]])
    and_e, or_e = C.SumEnergy(a.energy, b.energy), C.MixtureEnergy(a.energy, b.energy)
    assert and_e(mid) < and_e(left)          # the product peaks between the experts
    assert or_e(left) < or_e(mid)            # the mixture peaks on each expert


def test_sequential_langevin_samples_the_product_at_the_right_temperature():
    a, b = E.Gaussian((-1.0, 0.0), 0.25), E.Gaussian((1.0, 0.0), 0.25)   # product: N(0, 0.125 I)
    gen = torch.Generator().manual_seed(0)
    out = C.sequential_langevin([a.energy, b.energy], torch.zeros(2000, 2), 150, step_size=0.01,
                                trace=True, generator=gen)
    assert out.trace.shape == (151, 2000, 2)
    var = out.x.var(0)
    assert torch.allclose(out.x.mean(0), torch.zeros(2), atol=0.03)
    assert torch.allclose(var, torch.full((2,), 0.125), rtol=0.1)          # T = 1, not 2
    grid = Grid2D((-2, 2), 30)
    assert grid_kl(out.x, C.product_cells(grid, a.log_prob, b.log_prob), grid) < 0.1


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="at least one"):
        C.SumEnergy()
    with pytest.raises(ValueError, match="positive"):
        C.MixtureEnergy(E.gaussian().energy, weights=[-1.0])
    with pytest.raises(ValueError, match="n_steps"):
        C.sequential_langevin([E.gaussian().energy], torch.zeros(3, 2), -1, step_size=0.1)


def test_high_density_fraction_of_exact_samples_is_the_mass():
    target = E.Gaussian((0.0, 0.0), 0.5)
    grid = Grid2D((-4, 4), 40)
    x = target.sample(20000, torch.Generator().manual_seed(0))
    frac = C.high_density_fraction(x, grid.normalise(log_density=target.log_prob), grid, mass=0.9)
    assert frac == pytest.approx(0.9, abs=0.02)
