"""The likelihood chapter's problems and drivers against exact answers (ebmlib.likelihood)."""
import math

import pytest
import torch
from torch import nn

from ebmlib.chapters import likelihood as lk


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def brackets(row: dict, n_se: float = 4.0, slack: float = 0.05) -> None:
    """Forward below (or at) the truth, reverse above (or at) it, each within its noise."""
    assert row["lower"] <= row["exact"] + n_se * row["lower_se"] + slack, row
    assert row["upper"] >= row["exact"] - n_se * row["upper_se"] - slack, row


def test_mixture_problem_is_exact_and_both_directions_find_it():
    p = lk.mixture_problem(shift=3.0)
    assert p.log_z == -3.0 and p.dim == 2
    row = lk.bidirectional(p, n_temps=100, n_chains=200, generator=gen(0))
    brackets(row)
    assert abs(row["lower"] - p.log_z) < 0.1 and abs(row["upper"] - p.log_z) < 0.1, row


def test_gaussian_problem_gap_shrinks_with_temperatures():
    p = lk.gaussian_problem(20)
    assert p.log_z == pytest.approx(10 * math.log(2 * math.pi * 0.09))
    x = p.sample(20000, gen(0))
    assert x.mean().item() == pytest.approx(0.5, abs=0.01) and x.std().item() == pytest.approx(0.3, abs=0.01)
    rows = lk.convergence(p, (5, 200), n_chains=64, generator=gen(1), pilot_steps=1)
    assert [r["n_temps"] for r in rows] == [5, 200]
    for r in rows:
        brackets(r)
    assert rows[0]["gap"] > 3.0 and abs(rows[1]["gap"]) < 0.5 < rows[0]["gap"] / 4, rows


def test_digit_box_problem_matches_its_means_and_log_z():
    means = torch.tensor([[0.002, 0.01, 0.3, 0.5, 0.8, 0.97]])
    p = lk.digit_box_problem(means, base="uniform")
    x = p.sample(40000, gen(0))
    assert ((x >= 0) & (x <= 1)).all()
    assert torch.allclose(x.mean(0), means, atol=0.01), x.mean(0)
    # log Z against a midpoint rule of exp(-lambda x) per pixel
    t = ((torch.arange(20000, dtype=torch.float64) + 0.5) / 20000)[:, None]
    lam = lk._rates_from_means(means.reshape(-1)).double()
    assert p.log_z == pytest.approx(torch.exp(-lam * t).mean(0).log().sum().item(), abs=1e-4)
    # E is lambda . x, the -log of the density the samples come from
    assert torch.allclose(p.energy(x[:5]), (x[:5] * lam.float()).flatten(1).sum(-1))


def test_digit_box_fitted_base_beats_uniform():
    """The point of the chapter's base: from a fitted base few temperatures suffice, from uniform they do not."""
    means = torch.rand(1, 6, 6, generator=gen(2)) ** 3        # mostly near 0, like a digit's background
    fitted = lk.bidirectional(lk.digit_box_problem(means, "fitted", generator=gen(3)), 20, 64, gen(4),
                              pilot_steps=1)
    uniform = lk.bidirectional(lk.digit_box_problem(means, "uniform"), 20, 64, gen(4), pilot_steps=1)
    brackets(fitted)
    assert abs(fitted["gap"]) < abs(uniform["gap"]), (fitted, uniform)
    with pytest.raises(ValueError, match="base must be"):
        lk.digit_box_problem(means, base="gaussian")


class LinearEnergy(nn.Module):
    """E(x) = a * sum(x) on [0, 1]^D: log Z = D log((1 - e^-a) / a), the data's exact model."""

    def __init__(self, a: float):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))

    def forward(self, x):
        return self.a * x.flatten(1).sum(-1)


def linear_log_z(a: float, d: int, temperature: float = 1.0) -> float:
    r = a / temperature
    return d * math.log(-math.expm1(-r) / r)


def test_image_bounds_sandwich_the_exact_log_likelihood():
    a, shape = 4.0, (1, 3, 3)
    model = LinearEnergy(a)
    box = lk.digit_box_problem(torch.full(shape, 1 / a - 1 / math.expm1(a)), base="uniform")   # same density
    data = box.sample(64, gen(0))
    exact = (-model(data).double() - linear_log_z(a, 9)).mean().item()
    base = lk.fitted_base(box.sample(2000, gen(1)))
    res = lk.image_bounds(model, data, base, 1.0, n_temps=30, n_chains=128, generator=gen(2))
    assert not any(p.requires_grad for p in model.parameters())             # frozen for the run
    assert res["n_test"] == 64 and res["n_chains"] == 128
    assert res["lower"] < exact + 4 * res["lower_se"] and res["upper"] > exact - 4 * res["log_z_se"] - 0.05, res
    assert abs(res["upper"] - exact) < 0.3 and abs(res["lower"] - exact) < 0.5, (res, exact)


def test_temperature_curve_finds_the_datas_temperature():
    """Data from exp(-a x / 2): the likelihood of exp(-E/T) peaks at T = 2, and both bounds sit near it."""
    a, shape = 4.0, (1, 2, 2)
    box = lk.digit_box_problem(torch.full(shape, 1 / 2 - 1 / math.expm1(2)), base="uniform")  # rate a / 2 = 2
    data = box.sample(2000, gen(0))
    base = lk.fitted_base(data)
    curve = lk.temperature_curve(LinearEnergy(a), data, base, [0.5, 2.0, 8.0], n_chains=64, n_temps=20,
                                 generator=gen(1))
    assert curve["best"] == 2.0 and curve["best_upper"] == 2.0, curve
    exact = [(-a * data.flatten(1).sum(-1).double() / t).mean().item() - linear_log_z(a, 4, t)
             for t in curve["temperatures"]]
    for lo, up, want, se in zip(curve["lower"], curve["upper"], exact, curve["upper_se"]):
        assert lo < want + 0.05 and abs(up - want) < 4 * se + 0.05, (lo, up, want)
    assert abs(curve["lower"][1] - exact[1]) < 0.3, (curve["lower"], exact)      # tight at the right T
    with pytest.raises(ValueError, match="temperatures must hold"):
        lk.temperature_curve(LinearEnergy(a), data, base, [], n_chains=4, n_temps=5)


def test_bad_inputs():
    with pytest.raises(ValueError, match="dim must be"):
        lk.gaussian_problem(0)
    with pytest.raises(ValueError, match="std must be"):
        lk.gaussian_problem(3, std=-1.0)
    with pytest.raises(ValueError, match="n_temps must be"):
        lk.bidirectional(lk.mixture_problem(), 0, 10)
    with pytest.raises(ValueError, match="temps must hold"):
        lk.convergence(lk.mixture_problem(), (), 10)
