"""Statistical tests of the MCMC samplers in ``ebmlib.samplers``.

The targets are 1D/2D Gaussians and a two-Gaussian mixture whose moments and mode weights are known in
closed form. Many independent chains are run from a common, deliberately bad start and their final states
are treated as independent draws; every comparison allows 5 standard errors (SE estimated from the draws),
which is tight enough to catch a wrong sign, a missing factor of 2 or a biased sampler. All randomness
goes through seeded ``torch.Generator`` objects, so the tests are deterministic.

The energies are written out here (not taken from ``ebmlib.energies``) so these tests do not depend on
that module; the mixture's energy is checked against ``energies.two_modes`` once.
"""
from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F

from ebmlib.core import energies
from ebmlib.core.samplers import HMC, MALA, SAMPLERS, ULA, PaperLangevin, RandomWalkMH, SampleResult, make_sampler

N_SE = 5.0


def assert_close(got: torch.Tensor, want: torch.Tensor, rtol: float = 1.3e-6, atol: float = 1e-5) -> None:
    """Like torch.testing.assert_close (whose first call costs ~1 s of lazy imports)."""
    assert got.shape == want.shape, f"shape {tuple(got.shape)} != {tuple(want.shape)}"
    err = (got.double() - want.double()).abs() - rtol * want.double().abs()
    assert (err <= atol).all(), f"max excess error {err.max().item():.3e} over atol={atol}, rtol={rtol}"


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """The chains are small tensors: one intra-op thread is as fast on an idle machine and several times
    faster when its cores are shared (OpenMP threads then wait on each other). Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _assert_mean_matches(values: torch.Tensor, expected: float, what: str, n_se: float = N_SE) -> float:
    values = values.double()
    se = values.std().item() / math.sqrt(values.numel())
    got = values.mean().item()
    assert abs(got - expected) <= n_se * se, (
        f"{what}: {got:.4f} vs exact {expected:.4f}, off by {abs(got - expected) / se:.1f} SE (SE={se:.2e})")
    return se


# -----------------------------------------------------------------------------------------------------
# Targets


class GaussianEnergy:
    """E(x) = (x - m)^T P (x - m) / 2 on (N, d): the exact target N(m, P^-1)."""

    def __init__(self, mean, cov):
        self.mean = torch.as_tensor(mean, dtype=torch.float32)
        self.cov = torch.as_tensor(cov, dtype=torch.float32)
        self.prec = torch.linalg.inv(self.cov)

    def __call__(self, x):
        d = x - self.mean
        return 0.5 * ((d @ self.prec) * d).sum(-1)


CORRELATED = GaussianEnergy((1.0, -0.5), ((1.0, 0.6), (0.6, 1.0)))


def _assert_gaussian_draws(x: torch.Tensor, target: GaussianEnergy, what: str, n_se: float = N_SE) -> None:
    """Mean and covariance of draws x (N, d) match the target within n_se SE, entry by entry."""
    x = x.double()
    m, c = target.mean.double(), target.cov.double()
    d = x - m
    for i in range(x.shape[1]):
        _assert_mean_matches(x[:, i], m[i].item(), f"{what} mean[{i}]", n_se)
        for j in range(i, x.shape[1]):
            _assert_mean_matches(d[:, i] * d[:, j], c[i, j].item(), f"{what} cov[{i},{j}]", n_se)


MIX_MEANS = torch.tensor([[-1.0, 0.0], [1.0, 0.0]])
MIX_STD, MIX_WEIGHTS = 0.6, (0.3, 0.7)


def mixture_energy(x):
    """-log of 0.3 N((-1, 0), 0.36 I) + 0.7 N((1, 0), 0.36 I), up to a constant: energies.two_modes(2, 0.6)."""
    d2 = ((x[:, None, :] - MIX_MEANS) ** 2).sum(-1)
    return -torch.logsumexp(torch.tensor(MIX_WEIGHTS).log() - d2 / (2 * MIX_STD ** 2), dim=-1)


def quadratic_1d(s: float):
    """E(x) = x^2 / (2 s^2) on (N, 1): N(0, s^2)."""
    return lambda x: x.pow(2).sum(-1) / (2 * s * s)


def sum_of_squares(x):
    """E = |x|^2 / 2 over every dimension but the first: works for any chain shape."""
    return 0.5 * x.reshape(x.shape[0], -1).pow(2).sum(-1)


# one reasonable instance of every sampler for the generic (shape, trace, reproducibility) tests
ALL_SAMPLERS = {
    "paper_langevin": lambda: PaperLangevin(step_size=0.05, noise_std=0.1, grad_clip=1.0),
    "ula": lambda: ULA(step_size=0.05),
    "mala": lambda: MALA(step_size=0.2),
    "rwmh": lambda: RandomWalkMH(scale=0.8),
    "hmc": lambda: HMC(step_size=0.2, n_leapfrog=4),
}
MH_NAMES = ("mala", "rwmh", "hmc")

# exact samplers on the correlated 2D Gaussian and the mixture: (sampler, n_steps)
EXACT = {
    "mala": (lambda: MALA(step_size=0.3), 200),
    "rwmh": (lambda: RandomWalkMH(scale=1.0), 200),
    "hmc": (lambda: HMC(step_size=0.3, n_leapfrog=5), 80),
}


# -----------------------------------------------------------------------------------------------------
# Exactness of MALA, HMC and random-walk MH


@pytest.mark.parametrize("name", sorted(EXACT))
def test_exact_samplers_reproduce_correlated_gaussian_from_far_start(name):
    make, n_steps = EXACT[name]
    x0 = torch.full((10_000, 2), 3.0)  # Mahalanobis distance 3.5 from the mean (1, -0.5): deep in the tail
    res = make().run(CORRELATED, x0, n_steps, generator=gen(1))
    assert 0.3 < res.acceptance_rate <= 1.0
    _assert_gaussian_draws(res.x, CORRELATED, name)


def test_mixture_energy_is_two_modes_up_to_a_constant():
    lib = energies.two_modes(separation=2.0, std=MIX_STD, weights=MIX_WEIGHTS)
    x = 2 * torch.randn(100, 2, generator=gen(0))
    diff = mixture_energy(x) - lib.energy(x)
    assert_close(diff, diff.mean().expand(100), atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", sorted(EXACT))
def test_exact_samplers_reproduce_mixture_weights(name):
    """All chains start in the light mode (weight 0.3); the mean responsibility of the heavy one must be 0.7.
    E_p[r_k(x)] = w_k exactly, so overlap of the two components does not bias the statistic."""
    make, _ = EXACT[name]
    n_steps = {"mala": 150, "rwmh": 150, "hmc": 50}[name]  # the heavy mode's weight settles within ~50 MALA steps
    mix = energies.two_modes(separation=2.0, std=MIX_STD, weights=MIX_WEIGHTS)
    x0 = MIX_MEANS[0].repeat(6000, 1)
    res = make().run(mixture_energy, x0, n_steps, generator=gen(2))
    resp = mix.responsibilities(res.x)
    _assert_mean_matches(resp[:, 1], MIX_WEIGHTS[1], f"{name} heavy-mode weight")
    # the mean along x is 0.3 * (-1) + 0.7 * 1 = 0.4, variance along y is 0.36
    _assert_mean_matches(res.x[:, 0], 0.4, f"{name} E[x]")
    _assert_mean_matches(res.x[:, 1] ** 2, MIX_STD ** 2, f"{name} E[y^2]")


# -----------------------------------------------------------------------------------------------------
# Large steps: ULA's bias, MALA's exactness, PaperLangevin's stationary variance


def _stationary_second_moment(sampler, s: float, n_steps: int = 60, n: int = 20_000, seed: int = 3):
    x0 = torch.full((n, 1), 3.0 * s)
    res = sampler.run(quadratic_1d(s), x0, n_steps, generator=gen(seed))
    v = res.x[:, 0].double() ** 2
    return v.mean().item(), v.std().item() / math.sqrt(n), res


@pytest.mark.parametrize("s, h", [(1.0, 0.5), (2.0, 1.0)])
def test_ula_large_step_has_its_known_bias(s, h):
    """x' = (1 - h/s^2) x + sqrt(2h) xi has stationary variance s^2 / (1 - h / (2 s^2)): 1.333 for s=1, h=0.5.
    A noise of sqrt(h) instead of sqrt(2h) would give half of it (0.667); a flipped gradient diverges."""
    v, se, _ = _stationary_second_moment(ULA(step_size=h), s)
    expected = s * s / (1 - h / (2 * s * s))
    assert abs(v - expected) <= N_SE * se, f"ULA variance {v:.4f}, theory {expected:.4f} (SE {se:.4f})"
    assert abs(v - s * s) > 2 * N_SE * se, "the test must be able to tell ULA's bias from the exact s^2"


@pytest.mark.parametrize("s, h", [(1.0, 0.5), (2.0, 1.0)])
def test_mala_is_exact_at_the_same_large_step(s, h):
    v, se, res = _stationary_second_moment(MALA(step_size=h), s, n_steps=80)
    assert abs(v - s * s) <= N_SE * se, f"MALA variance {v:.4f}, target {s * s} (SE {se:.4f})"
    biased = s * s / (1 - h / (2 * s * s))
    assert abs(v - biased) > 2 * N_SE * se
    assert 0.5 < res.acceptance_rate < 1.0  # the correction is active, not a rubber stamp


@pytest.mark.parametrize("s, h", [(1.0, 0.5), (2.0, 1.0), (1.0, 0.2)])
def test_paper_langevin_stationary_variance(s, h):
    """Noise first, then the gradient step (no clip, noise std sqrt(2h)):
        x~ = x + sqrt(2h) xi,   x' = (1 - h/s^2) x~ = a (x + sqrt(2h) xi)
    so v = a^2 (v + 2h), v = 2h a^2 / (1 - a^2) = s^2 (1 - h/s^2)^2 / (1 - h / (2 s^2)), smaller than s^2.
    ULA's order (gradient, then noise) would give s^2 / (1 - h/(2 s^2)) instead: 1.333 vs 0.333 at s=1, h=0.5."""
    sampler = PaperLangevin(step_size=h, noise_std=math.sqrt(2 * h), grad_clip=None)
    v, se, res = _stationary_second_moment(sampler, s)
    a = 1 - h / s ** 2
    expected = s * s * a * a / (1 - h / (2 * s * s))
    assert abs(v - expected) <= N_SE * se, f"PaperLangevin variance {v:.4f}, theory {expected:.4f} (SE {se:.4f})"
    assert abs(v - s * s / (1 - h / (2 * s * s))) > 2 * N_SE * se
    assert res.acceptance_rate is None


# -----------------------------------------------------------------------------------------------------
# PaperLangevin: clipping, clamping, images, sign


@pytest.mark.parametrize("energy, expected_move", [
    (lambda x: 1000 * x.sum(-1), (-0.1, -0.1)),
    (lambda x: -1000 * x.sum(-1), (0.1, 0.1)),
    (lambda x: 1000 * (x[:, 0] - x[:, 1]), (-0.1, 0.1)),
    (lambda x: 0.001 * x.sum(-1), (-0.01, -0.01)),  # below the clip: the full gradient step
], ids=["plus", "minus", "mixed", "unclipped"])
def test_paper_langevin_gradient_clip_is_per_value(energy, expected_move):
    """A.7: step 10, clip 0.01, no noise: each value moves by exactly step_size * clip against the gradient."""
    x0 = torch.randn(16, 2, generator=gen(0))
    res = PaperLangevin(step_size=10.0, noise_std=0.0, grad_clip=0.01).run(energy, x0, 1)
    assert_close(res.x - x0, torch.tensor(expected_move).expand(16, 2), atol=1e-6, rtol=0)
    res3 = PaperLangevin(step_size=10.0, noise_std=0.0, grad_clip=0.01).run(energy, x0, 3)
    assert_close(res3.x - x0, 3 * torch.tensor(expected_move).expand(16, 2), atol=1e-5, rtol=0)


def test_paper_langevin_clamp_keeps_values_in_range():
    x0 = torch.rand(64, 2, generator=gen(0))
    sampler = PaperLangevin(step_size=10.0, noise_std=0.05, grad_clip=0.01)
    res = sampler.run(lambda x: -1000 * x.sum(-1), x0, 20, clamp=(0.0, 1.0), trace=True, generator=gen(1))
    assert res.trace.min() >= 0.0 and res.trace.max() <= 1.0
    assert (res.x == 1.0).float().mean() > 0.9  # pushed up against the bound, not past it
    ula = ULA(step_size=0.5).run(sum_of_squares, x0, 20, clamp=(0.0, 1.0), trace=True, generator=gen(1))
    assert ula.trace.min() >= 0.0 and ula.trace.max() <= 1.0


def _tiny_conv_energy(seed: int = 0):
    g = gen(seed)
    w1 = (0.5 * torch.randn(4, 1, 3, 3, generator=g)).requires_grad_(True)
    w2 = (0.5 * torch.randn(1, 4, 3, 3, generator=g)).requires_grad_(True)

    def energy(x):
        h = F.silu(F.conv2d(x, w1, padding=1, stride=2))
        return F.conv2d(h, w2, padding=1, stride=2).pow(2).mean((1, 2, 3)) * 100

    return energy, (w1, w2)


def test_paper_langevin_on_images_at_paper_settings():
    """(8, 1, 28, 28) chains, A.7 values (step 10, noise 0.005, clip 0.01), data range [0, 1]."""
    energy, params = _tiny_conv_energy()
    x0 = torch.rand(8, 1, 28, 28, generator=gen(1))
    sampler = PaperLangevin(step_size=10.0, noise_std=0.005, grad_clip=0.01)
    res = sampler.run(energy, x0, 30, clamp=(0.0, 1.0), trace=True, generator=gen(2))
    assert res.x.shape == x0.shape and res.x.dtype == torch.float32
    assert res.trace.shape == (31, 8, 1, 28, 28)
    assert torch.isfinite(res.x).all() and res.x.min() >= 0 and res.x.max() <= 1
    # per step a value moves by at most step * clip = 0.1 plus the noise (6 sigma bound over ~2e5 values)
    assert (res.trace[1:] - res.trace[:-1]).abs().max() <= 0.1 + 6 * 0.005
    with torch.no_grad():
        e0, e1 = energy(x0), energy(res.x)
    assert (e1 < e0).all(), (e0, e1)
    assert_close(res.energy, e1)
    assert all(p.grad is None for p in params), "the sampler must not accumulate gradients in the model"


def test_paper_langevin_step_lowers_a_quadratic_energy():
    """Sign check: with little noise, one step decreases E = |x|^2 / 2 on average (and per chain)."""
    x0 = 2 + torch.randn(500, 2, generator=gen(0))
    for sampler in (PaperLangevin(step_size=0.1, noise_std=0.01, grad_clip=None),
                    PaperLangevin(step_size=10.0, noise_std=0.005, grad_clip=0.01)):
        res = sampler.run(sum_of_squares, x0, 1, generator=gen(1))
        drop = sum_of_squares(x0) - sum_of_squares(res.x)
        assert drop.mean() > 0 and (drop > 0).float().mean() > 0.9, sampler


# -----------------------------------------------------------------------------------------------------
# Conditional energies E(x, y)


COND_MEANS = torch.tensor([[0.0, 0.0], [3.0, -3.0]])


@pytest.mark.parametrize("name", sorted(ALL_SAMPLERS))
def test_conditional_energy_receives_labels(name):
    seen = []

    def energy(x, y):
        seen.append(y)
        return sum_of_squares(x - COND_MEANS[y])

    n = 2000
    y = torch.arange(n) % 2
    sampler = {"paper_langevin": PaperLangevin(step_size=0.1, noise_std=math.sqrt(0.2), grad_clip=None),
               "ula": ULA(step_size=0.1), "mala": MALA(step_size=0.3), "rwmh": RandomWalkMH(scale=1.0),
               "hmc": HMC(step_size=0.3, n_leapfrog=5)}[name]
    res = sampler.run(energy, torch.zeros(n, 2), 120, y=y, generator=gen(4))
    assert seen and all(t is y for t in seen), "y must be passed through unchanged"
    for label in (0, 1):
        for d in range(2):
            _assert_mean_matches(res.x[y == label, d], COND_MEANS[label, d].item(), f"{name} y={label} mean[{d}]")
    assert_close(res.energy, sum_of_squares(res.x - COND_MEANS[y]))


# -----------------------------------------------------------------------------------------------------
# The result object: trace, acceptance rate, energy; x0 untouched


@pytest.mark.parametrize("name", sorted(ALL_SAMPLERS))
def test_result_trace_and_acceptance(name):
    x0 = torch.randn(6, 2, 3, generator=gen(0))
    x0_copy = x0.clone()
    res = ALL_SAMPLERS[name]().run(sum_of_squares, x0, 7, trace=True, generator=gen(1))
    assert isinstance(res, SampleResult)
    assert res.x.shape == x0.shape and res.x.dtype == x0.dtype and not res.x.requires_grad
    assert res.trace.shape == (8, 6, 2, 3)
    assert torch.equal(res.trace[0], x0) and torch.equal(res.trace[-1], res.x)
    assert torch.equal(x0, x0_copy), "x0 was modified in place"
    assert_close(res.energy, sum_of_squares(res.x))
    moved = (res.trace[1:] != res.trace[:-1]).reshape(7, 6, -1).any(-1)
    if name in MH_NAMES:
        assert 0.0 < res.acceptance_rate <= 1.0
        # the reported rate is the fraction of (step, chain) pairs that moved
        assert res.acceptance_rate == pytest.approx(moved.double().mean().item(), abs=1e-12)
    else:
        assert res.acceptance_rate is None
        assert moved.all()
    res.x += 1  # the result owns its memory
    assert torch.equal(x0, x0_copy)
    assert ALL_SAMPLERS[name]().run(sum_of_squares, x0, 3).trace is None


@pytest.mark.parametrize("name", sorted(ALL_SAMPLERS))
def test_zero_steps_returns_a_copy_of_x0(name):
    x0 = torch.randn(5, 2, generator=gen(0))
    res = ALL_SAMPLERS[name]().run(sum_of_squares, x0, 0, trace=True)
    assert torch.equal(res.x, x0) and res.x.data_ptr() != x0.data_ptr()
    assert res.trace.shape == (1, 5, 2) and res.acceptance_rate is None


@pytest.mark.parametrize("sampler", [MALA(step_size=50.0), RandomWalkMH(scale=50.0), HMC(step_size=5.0, n_leapfrog=3)],
                         ids=["mala", "rwmh", "hmc"])
def test_huge_step_has_low_acceptance(sampler):
    res = sampler.run(sum_of_squares, torch.randn(2000, 2, generator=gen(0)), 20, generator=gen(1))
    assert res.acceptance_rate < 0.05


@pytest.mark.parametrize("sampler", [MALA(step_size=1e-3), RandomWalkMH(scale=0.02), HMC(step_size=0.02, n_leapfrog=3)],
                         ids=["mala", "rwmh", "hmc"])
def test_tiny_step_has_high_acceptance(sampler):
    res = sampler.run(sum_of_squares, torch.randn(2000, 2, generator=gen(0)), 20, generator=gen(1))
    assert res.acceptance_rate > 0.95


def test_runs_under_no_grad():
    x0 = torch.randn(100, 2, generator=gen(0))
    for name in sorted(ALL_SAMPLERS):
        a = ALL_SAMPLERS[name]().run(sum_of_squares, x0, 5, generator=gen(1))
        with torch.no_grad():
            b = ALL_SAMPLERS[name]().run(sum_of_squares, x0, 5, generator=gen(1))
        assert torch.equal(a.x, b.x), name


@pytest.mark.parametrize("name", sorted(ALL_SAMPLERS))
def test_float64_chains_stay_float64(name):
    x0 = torch.randn(50, 2, dtype=torch.float64, generator=gen(0))
    res = ALL_SAMPLERS[name]().run(sum_of_squares, x0, 3, trace=True, generator=gen(1))
    assert res.x.dtype == torch.float64 and res.trace.dtype == torch.float64


@pytest.mark.parametrize("name", MH_NAMES)
def test_float64_chains_use_float64_energies(name):
    """Adding a constant to E does not change p; in float64 it must not change the chain either."""
    x0 = torch.randn(2000, 1, dtype=torch.float64, generator=gen(0))
    a = ALL_SAMPLERS[name]().run(sum_of_squares, x0, 10, generator=gen(1))
    b = ALL_SAMPLERS[name]().run(lambda x: sum_of_squares(x) + 1e7, x0, 10, generator=gen(1))
    assert torch.allclose(a.x, b.x, atol=1e-9, rtol=0), f"{(a.x != b.x).sum().item()} of 2000 chains differ"


def test_progress_bar_runs(capsys):
    res = ULA(step_size=0.1).run(sum_of_squares, torch.zeros(3, 2), 4, progress=True, generator=gen(0))
    assert res.x.shape == (3, 2)
    assert "ULA" in capsys.readouterr().err


# -----------------------------------------------------------------------------------------------------
# Clamp for the Metropolis samplers: reject outside, which samples the truncated target exactly


@pytest.mark.parametrize("name", MH_NAMES)
def test_mh_clamp_samples_truncated_normal(name):
    """N(0, 1) restricted to [0, inf): mean sqrt(2/pi), E[x^2] = 1. Clipping proposals onto the bound instead
    of rejecting them would put an atom at 0 and bias both."""
    sampler = {"mala": MALA(step_size=0.4), "rwmh": RandomWalkMH(scale=1.0), "hmc": HMC(step_size=0.3, n_leapfrog=5)}[name]
    x0 = torch.full((10_000, 1), 1.0)
    res = sampler.run(quadratic_1d(1.0), x0, 100, clamp=(0.0, math.inf), trace=True, generator=gen(5))
    assert res.trace.min() >= 0.0, "a proposal outside the box was accepted"
    assert (res.x > 0).all()
    x = res.x[:, 0]
    _assert_mean_matches(x, math.sqrt(2 / math.pi), f"{name} truncated mean")
    _assert_mean_matches(x ** 2, 1.0, f"{name} truncated E[x^2]")


@pytest.mark.parametrize("name", MH_NAMES)
def test_mh_clamp_box_in_2d(name):
    """Standard 2D normal restricted to the box [-0.5, 1]^2: every state stays inside, and each coordinate
    follows the 1D truncated normal (independent coordinates), whose mean is (phi(a) - phi(b)) / (Phi(b) - Phi(a))."""
    sampler = {"mala": MALA(step_size=0.3), "rwmh": RandomWalkMH(scale=0.7), "hmc": HMC(step_size=0.2, n_leapfrog=4)}[name]
    x0 = torch.full((5000, 2), 3.0)  # outside: clamped onto the corner first
    res = sampler.run(sum_of_squares, x0, 100, clamp=(-0.5, 1.0), trace=True, generator=gen(6))
    assert res.trace.min() >= -0.5 and res.trace.max() <= 1.0
    phi = lambda t: math.exp(-t * t / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda t: 0.5 * math.erfc(-t / math.sqrt(2))  # noqa: E731
    mean = (phi(-0.5) - phi(1.0)) / (cdf(1.0) - cdf(-0.5))
    for d in range(2):
        _assert_mean_matches(res.x[:, d], mean, f"{name} box mean[{d}]")


# -----------------------------------------------------------------------------------------------------
# Reproducibility


@pytest.mark.parametrize("name", sorted(ALL_SAMPLERS))
def test_same_seed_same_result(name):
    x0 = torch.randn(50, 2, generator=gen(0))
    a = ALL_SAMPLERS[name]().run(mixture_energy, x0, 10, trace=True, generator=gen(9))
    b = ALL_SAMPLERS[name]().run(mixture_energy, x0, 10, trace=True, generator=gen(9))
    c = ALL_SAMPLERS[name]().run(mixture_energy, x0, 10, trace=True, generator=gen(10))
    assert torch.equal(a.trace, b.trace) and a.acceptance_rate == b.acceptance_rate
    assert not torch.equal(a.x, c.x), "the generator is ignored"


def test_make_sampler_builds_each_named_sampler():
    assert set(SAMPLERS) == {"paper_langevin", "ula", "mala", "rwmh", "hmc"}
    s = make_sampler("mala", step_size=0.25)
    assert isinstance(s, MALA) and s.step_size == 0.25
    assert isinstance(make_sampler("hmc", n_leapfrog=3), HMC) and make_sampler("hmc", n_leapfrog=3).n_leapfrog == 3
    assert isinstance(make_sampler("rwmh"), RandomWalkMH)
    assert make_sampler("paper_langevin").grad_clip == 0.01  # A.7 defaults
    assert "MALA(step_size=0.25)" == repr(s)


# -----------------------------------------------------------------------------------------------------
# Clear errors


STEP_ARGS = [(PaperLangevin, "step_size"), (ULA, "step_size"), (MALA, "step_size"), (HMC, "step_size"),
             (RandomWalkMH, "scale")]


@pytest.mark.parametrize("cls, arg", STEP_ARGS, ids=[c.__name__ for c, _ in STEP_ARGS])
@pytest.mark.parametrize("bad", [-0.1, float("nan"), 0.0, float("inf"), "0.1", True])
def test_bad_step_size_raises(cls, arg, bad):
    with pytest.raises(ValueError, match=rf"{arg} must be .* got {repr(bad).replace('.', '[.]')}"):
        cls(**{arg: bad})


@pytest.mark.parametrize("kwargs, pattern", [
    ({"noise_std": -0.005}, r"noise_std .* got -0\.005"),
    ({"noise_std": float("nan")}, r"noise_std .* got nan"),
    ({"grad_clip": 0.0}, r"grad_clip .* got 0\.0"),
    ({"grad_clip": -0.01}, r"grad_clip .* got -0\.01"),
])
def test_bad_paper_langevin_arguments_raise(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        PaperLangevin(**kwargs)


def test_zero_noise_is_allowed():
    assert PaperLangevin(noise_std=0.0).noise_std == 0.0


@pytest.mark.parametrize("n_leapfrog", [0, -1, 2.5, True])
def test_bad_n_leapfrog_raises(n_leapfrog):
    with pytest.raises(ValueError, match=rf"n_leapfrog .* got {repr(n_leapfrog).replace('.', '[.]')}"):
        HMC(n_leapfrog=n_leapfrog)


@pytest.mark.parametrize("name", sorted(ALL_SAMPLERS))
@pytest.mark.parametrize("n_steps", [-1, 2.5, True, "3"])
def test_bad_n_steps_raises(name, n_steps):
    with pytest.raises(ValueError, match=rf"n_steps .* got {repr(n_steps).replace('.', '[.]')}"):
        ALL_SAMPLERS[name]().run(sum_of_squares, torch.zeros(4, 2), n_steps)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_x0_raises(bad):
    x0 = torch.zeros(4, 2)
    x0[2, 1] = bad
    with pytest.raises(ValueError, match=r"x0 holds 1 NaN or infinite"):
        MALA().run(sum_of_squares, x0, 1)


@pytest.mark.parametrize("x0, pattern", [
    (torch.zeros(4, 2, dtype=torch.int64), r"floating-point tensor, got Tensor of dtype torch\.int64"),
    ([[0.0, 0.0]], r"floating-point tensor, got list"),
])
def test_non_float_x0_raises(x0, pattern):
    with pytest.raises(TypeError, match=pattern):
        ULA().run(sum_of_squares, x0, 1)


@pytest.mark.parametrize("x0", [torch.tensor(1.0), torch.zeros(0, 2)], ids=["scalar", "no_chains"])
def test_x0_without_chains_raises(x0):
    with pytest.raises(ValueError, match=r"N >= 1 chains"):
        RandomWalkMH().run(sum_of_squares, x0, 1)


@pytest.mark.parametrize("name", sorted(ALL_SAMPLERS))
@pytest.mark.parametrize("energy, got", [
    (lambda x: sum_of_squares(x)[:, None], r"got \(4, 1\)"),
    (lambda x: sum_of_squares(x).sum(), r"got \(\)"),
    (lambda x: 1.0, r"got float"),
], ids=["column", "scalar", "python_float"])
def test_energy_of_wrong_shape_raises(name, energy, got):
    with pytest.raises(ValueError, match=r"one value per chain, shape \(4,\); " + got):
        ALL_SAMPLERS[name]().run(energy, torch.zeros(4, 2), 2)


@pytest.mark.parametrize("y, got", [(torch.zeros(3, dtype=torch.long), r"got \(3,\)"), ([0, 1, 0, 1], "got list")])
def test_labels_of_wrong_length_raise(y, got):
    with pytest.raises(ValueError, match=r"one label per chain \(4\), " + got):
        MALA().run(lambda x, y: sum_of_squares(x), torch.zeros(4, 2), 1, y=y)


@pytest.mark.parametrize("clamp", [(1.0, 0.0), (0.5, 0.5), (0.0, float("nan")), (0.0, 1.0, 2.0)])
def test_bad_clamp_raises(clamp):
    with pytest.raises(ValueError, match=r"clamp must be \(low, high\) with low < high, got " + re.escape(repr(clamp))):
        RandomWalkMH().run(sum_of_squares, torch.zeros(4, 2), 1, clamp=clamp)


def test_unknown_sampler_name_raises_key_error_listing_options():
    with pytest.raises(KeyError, match="langevin") as info:
        make_sampler("langevin")
    for name in SAMPLERS:
        assert name in str(info.value)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.int8, "bfloat16"])
def test_invalid_autocast_dtype_raises(dtype):
    with pytest.raises(ValueError, match=r"autocast_dtype must be .* got " + re.escape(repr(dtype))):
        MALA(autocast_dtype=dtype)


# -----------------------------------------------------------------------------------------------------
# bfloat16 autocast


class MatmulEnergy:
    """The correlated Gaussian written as |x L^-T|^2 / 2 with a matmul, so autocast really runs it in bf16."""

    def __init__(self, target: GaussianEnergy):
        self.mean = target.mean
        self.w = torch.linalg.inv(torch.linalg.cholesky(target.cov)).T  # P = W W^T
        self.dtypes = set()

    def __call__(self, x):
        z = (x - self.mean) @ self.w
        self.dtypes.add(z.dtype)
        return 0.5 * z.pow(2).sum(-1)


def test_bfloat16_autocast_matches_float32_pathwise():
    """ULA with the same noise in bf16 and fp32: the chains stay close (bf16 has ~3 significant digits)."""
    x0 = torch.full((2000, 2), 2.0)
    e32, e16 = MatmulEnergy(CORRELATED), MatmulEnergy(CORRELATED)
    a = ULA(step_size=0.05).run(e32, x0, 40, generator=gen(7))
    b = ULA(step_size=0.05, autocast_dtype=torch.bfloat16).run(e16, x0, 40, generator=gen(7))
    assert e32.dtypes == {torch.float32} and e16.dtypes == {torch.bfloat16}, "autocast was not applied"
    assert b.x.dtype == torch.float32 and b.energy.dtype == torch.float32
    diff = (a.x - b.x).abs()
    assert diff.max() < 0.05 and diff.mean() < 0.01, (diff.max(), diff.mean())
    assert not torch.equal(a.x, b.x)


def test_bfloat16_autocast_mala_still_samples_the_target():
    energy = MatmulEnergy(CORRELATED)
    res = MALA(step_size=0.3, autocast_dtype=torch.bfloat16).run(energy, torch.full((4000, 2), 3.0), 150,
                                                                  generator=gen(8))
    assert energy.dtypes == {torch.bfloat16}
    # loose: bf16 rounding of E perturbs the acceptance test slightly
    _assert_gaussian_draws(res.x, CORRELATED, "MALA bf16", n_se=8.0)


# -- non-finite energies are refused at the step where they appear ----------------------------------------------------
class _BlowsUp:
    """A quadratic energy that returns NaN for every chain from its ``at``-th call on."""

    def __init__(self, at: int):
        self.at, self.calls = at, 0

    def __call__(self, x):
        self.calls += 1
        e = 0.5 * x.pow(2).sum(-1)
        return e + float("nan") if self.calls >= self.at else e


@pytest.mark.parametrize("sampler", [PaperLangevin(0.01, 0.1, None), ULA(0.01), MALA(0.01), HMC(0.1, 2)])
def test_non_finite_energy_is_refused_at_its_step(sampler):
    from ebmlib.core.samplers import NonFiniteEnergy
    calls_per_step = {"PaperLangevin": 1, "ULA": 1, "MALA": 2, "HMC": 3}[type(sampler).__name__]
    energy = _BlowsUp(at=2 * calls_per_step + 1)                  # the first call of step 3
    with pytest.raises(NonFiniteEnergy, match=rf"{type(sampler).__name__}: the energy is not finite at step 3 of 10 "
                                              r"for 8 of 8 chains") as err:
        sampler.run(energy, torch.zeros(8, 2), 10, generator=gen(0))
    assert err.value.step == 3


def test_non_finite_gradient_and_final_state_are_refused():
    from ebmlib.core.samplers import NonFiniteEnergy

    def kink(x):   # finite energy, infinite gradient at 0 (|x|^0.5)
        return x.abs().sqrt().sum(-1)
    with pytest.raises(NonFiniteEnergy, match="energy gradient is not finite at step 1 of 5"):
        PaperLangevin(0.01, 0.0, None).run(kink, torch.zeros(4, 2), 5)
    with pytest.raises(NonFiniteEnergy, match="at the initial states"):
        ULA(0.01).run(lambda x: x.sum(-1) * float("inf"), torch.ones(3, 2), 0)
    energy = _BlowsUp(at=3)     # PaperLangevin, 2 steps: calls 1, 2, then the final energy
    with pytest.raises(NonFiniteEnergy, match=r"at the final states \(after step 2\)"):
        PaperLangevin(0.01, 0.1, None).run(energy, torch.zeros(4, 2), 2, generator=gen(0))


@pytest.mark.parametrize("sampler", [MALA(0.05), RandomWalkMH(0.5), HMC(0.1, 3)])
def test_metropolis_samplers_still_reject_infinite_proposals(sampler):
    """A hard wall (E = inf for x < 0) is a valid energy for the Metropolis samplers: proposals there are rejected."""
    def wall(x):
        e = 0.5 * x.pow(2).sum(-1)
        return torch.where((x < 0).any(-1), torch.full_like(e, float("inf")), e)
    res = sampler.run(wall, torch.full((64, 1), 0.5), 30, generator=gen(1))
    assert torch.isfinite(res.x).all() and (res.x >= 0).all()
