"""Statistical and exact tests of the analytic energies in ``ebmlib.energies``.

Every 2D target claims an exactly normalised density and exact samples. The tests check both claims
independently: the density is integrated on a fine grid (the trapezoid rule is exponentially accurate for
these smooth, rapidly decaying densities, so a grid error is far below 1e-4), and sample averages are
compared with grid integrals within 5 standard errors (SE estimated from the samples). All randomness is
seeded through ``torch.Generator`` so the suite is deterministic.
"""
from __future__ import annotations

import math

import pytest
import torch
from scipy import integrate

from ebmlib.core.energies import TOY_2D, Arc, Gaussian, Mixture, SmoothBox, _log_diff_ndtr, toy_2d

N_SE = 5.0  # tolerance of every statistical comparison, in standard errors


def assert_close(got: torch.Tensor, want: torch.Tensor, rtol: float = 1.3e-6, atol: float = 1e-5) -> None:
    """Like torch.testing.assert_close (whose first call costs ~1 s of lazy imports)."""
    assert got.shape == want.shape, f"shape {tuple(got.shape)} != {tuple(want.shape)}"
    err = (got.double() - want.double()).abs() - rtol * want.double().abs()
    assert (err <= atol).all(), f"max excess error {err.max().item():.3e} over atol={atol}, rtol={rtol}"


# One grid for all 2D integrals: [-6, 6]^2 holds all the mass of every named target (bounds are <= 5),
# and the spacing 0.03 is below the narrowest feature (blur 0.05) so the trapezoid rule's aliasing error,
# ~exp(-2 pi^2 sigma^2 / h^2) < 1e-20, is negligible.
GRID_LIM, GRID_H = 6.0, 0.03


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """These tensors are small: one intra-op thread is as fast unloaded and several times faster when the
    machine's cores are shared (OpenMP threads then wait on each other). Restored after the module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _grid() -> torch.Tensor:
    g = torch.arange(-GRID_LIM + GRID_H / 2, GRID_LIM, GRID_H, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1)


@pytest.fixture(scope="module")
def grid() -> torch.Tensor:
    return _grid()


@pytest.fixture(scope="module")
def grid_densities(grid):
    """p(x) on the grid for every named target, computed once (float64 points)."""
    return {name: make().log_prob(grid).exp() for name, make in TOY_2D.items()}


def _integrate(values: torch.Tensor) -> float:
    return values.sum().item() * GRID_H ** 2


def _assert_mean_matches(values: torch.Tensor, expected: float, what: str) -> None:
    """Mean of per-sample ``values`` equals ``expected`` within N_SE standard errors."""
    values = values.double()
    se = values.std().item() / math.sqrt(values.numel())
    got = values.mean().item()
    assert abs(got - expected) <= N_SE * se, (
        f"{what}: sample mean {got:.5f} vs exact {expected:.5f}, off by {abs(got - expected) / se:.1f} SE (SE={se:.2e})")


# -----------------------------------------------------------------------------------------------------
# Exact normalisation


@pytest.mark.parametrize("name", sorted(TOY_2D))
def test_named_target_integrates_to_one(name, grid, grid_densities):
    z = _integrate(grid_densities[name])
    assert abs(z - 1) < 1e-4, f"{name}: integral of p over the plane is {z:.8f}, not 1"


@pytest.mark.parametrize("name", sorted(TOY_2D))
def test_bounds_hold_essentially_all_mass(name, grid, grid_densities):
    lo, hi = toy_2d(name).bounds
    inside = ((grid >= lo) & (grid <= hi)).all(-1)
    mass = _integrate(grid_densities[name][inside])
    assert mass > 1 - 1e-4, f"{name}: bounds {(lo, hi)} hold only {mass:.6f} of the mass"


# standalone components with non-default parameters
COMPONENTS = {
    "arc_k2.5": Arc(center=(0.3, -0.2), radius=1.7, width=0.3, angle=1.0, concentration=2.5),   # a crescent
    "arc_k1000": Arc(center=(0.0, 0.5), radius=2.0, width=0.2, angle=-2.0, concentration=1000.0),  # I0(1000) overflows
    "arc_thin": Arc(radius=1.0, width=0.15),        # radial law r phi(r): mean radius R + s^2/R, not R
    "arc_fat": Arc(radius=0.4, width=0.5),          # a ring whose centre has mass
    "box_blur0.2": SmoothBox(low=(-1.0, 0.5), high=(0.5, 2.0), blur=0.2),  # a lone rectangular cell
    "box_thin": SmoothBox(low=(-2.0, -2.0), high=(-1.5, 3.0), blur=0.05),
    "gauss": Gaussian((0.5, -1.0), ((0.3, -0.2), (-0.2, 0.5))),
}


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_component_closed_form_normaliser(name, grid):
    dist = COMPONENTS[name]
    log_p = dist.log_prob(grid)
    assert torch.isfinite(log_p).all()
    z = _integrate(log_p.exp())
    assert abs(z - 1) < 1e-4, f"{name}: closed-form normaliser is off, integral = {z:.8f}"


def test_energy_is_minus_log_prob():
    d = toy_2d("two_moons")
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    assert_close(d.energy(x), -d.log_prob(x))
    assert_close(d(x), -d.log_prob(x))


def test_energy_gradient_points_uphill_of_density():
    """grad E = -grad log p: a small step against grad E raises log p (catches a sign flip in energy)."""
    d = toy_2d("two_rings")
    x = toy_2d("gaussian").sample(200, torch.Generator().manual_seed(1)).requires_grad_(True)
    (g,) = torch.autograd.grad(d.energy(x).sum(), x)
    with torch.no_grad():
        gain = d.log_prob(x - 1e-3 * g) - d.log_prob(x)
    assert (gain > 0).float().mean() > 0.99


# -----------------------------------------------------------------------------------------------------
# Exact samples agree with the density


def _stats(x: torch.Tensor) -> dict[str, torch.Tensor]:
    x = x.double()
    w = torch.tensor([[1.3, -0.4], [0.7, 2.1], [-1.9, 0.8]], dtype=torch.float64)  # fixed random Fourier features
    b = torch.tensor([0.3, -1.1, 2.0], dtype=torch.float64)
    feats = torch.cos(x @ w.T + b)
    out = {"E[x]": x[:, 0], "E[y]": x[:, 1], "E[x^2]": x[:, 0] ** 2, "E[xy]": x[:, 0] * x[:, 1], "E[y^2]": x[:, 1] ** 2}
    out.update({f"E[cos(w{k}.x+b{k})]": feats[:, k] for k in range(3)})
    out["E[|x|]"] = x.norm(dim=-1)
    return out


@pytest.mark.parametrize("name", sorted(TOY_2D))
def test_sample_moments_match_density(name, grid, grid_densities):
    """First and second moments (and three smooth test functions) of exact samples equal the grid integrals."""
    d = toy_2d(name)
    samples = d.sample(100_000, torch.Generator().manual_seed(7))
    assert samples.shape == (100_000, 2) and samples.dtype == torch.float32
    p = grid_densities[name]
    exact = {k: _integrate(p * v) for k, v in _stats(grid).items()}
    for k, v in _stats(samples).items():
        _assert_mean_matches(v, exact[k], f"{name} {k}")


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_component_sample_moments_match_density(name, grid):
    """Same check on the lone components, where a small sampler bias (an Arc radius drawn without the
    Jacobian r, a SmoothBox cell without its blur) is many standard errors."""
    d = COMPONENTS[name]
    samples = d.sample(100_000, torch.Generator().manual_seed(8))
    p = d.log_prob(grid).exp()
    centre = getattr(d, "center", torch.zeros(2)).double()
    stats = _stats(samples.double() - centre)
    for k, v in _stats(grid - centre).items():
        _assert_mean_matches(stats[k], _integrate(p * v), f"{name} {k}")


@pytest.mark.parametrize("name", sorted(TOY_2D))
def test_sample_log_density_matches_entropy(name, grid, grid_densities):
    """E_p[log p] from exact samples equals int p log p: ties the sampler and the density together."""
    d = toy_2d(name)
    samples = d.sample(50_000, torch.Generator().manual_seed(11))
    p = grid_densities[name]
    neg_entropy = _integrate(torch.where(p > 0, p * p.log(), torch.zeros_like(p)))
    _assert_mean_matches(d.log_prob(samples.double()), neg_entropy, f"{name} E[log p]")


@pytest.mark.parametrize("name", sorted(n for n in TOY_2D if isinstance(toy_2d(n), Mixture)))
def test_mixture_responsibilities_average_to_weights(name):
    d = toy_2d(name)
    samples = d.sample(50_000, torch.Generator().manual_seed(3))
    resp = d.responsibilities(samples)
    assert resp.shape == (50_000, len(d.components))
    assert_close(resp.sum(-1), torch.ones(50_000))
    for k, w in enumerate(d.weights.tolist()):
        _assert_mean_matches(resp[:, k], w, f"{name} component {k} weight")


def test_mixture_weights_are_normalised_and_unequal_weights_respected():
    d = toy_2d("two_modes", separation=6.0, std=0.5, weights=(1.0, 3.0))
    assert_close(d.weights, torch.tensor([0.25, 0.75]))
    x = d.sample(40_000, torch.Generator().manual_seed(5))
    # modes 12 std apart: the side of 0 is the component label
    _assert_mean_matches((x[:, 0] > 0).double(), 0.75, "fraction in the heavy mode")


@pytest.mark.parametrize("dim", [1, 2, 5])
def test_gaussian_samples_have_its_mean_and_covariance(dim):
    gen = torch.Generator().manual_seed(dim)
    a = torch.randn(dim, dim, generator=gen)
    cov = a @ a.T + 0.5 * torch.eye(dim)
    mean = torch.randn(dim, generator=gen)
    x = Gaussian(mean, cov).sample(50_000, gen).double()
    c = cov.double()
    for i in range(dim):
        _assert_mean_matches(x[:, i], mean[i].item(), f"mean[{i}]")
        for j in range(i, dim):
            _assert_mean_matches((x[:, i] - mean[i]) * (x[:, j] - mean[j]), c[i, j].item(), f"cov[{i},{j}]")


def test_sampling_is_reproducible_with_a_generator():
    for name in TOY_2D:
        d = toy_2d(name)
        a = d.sample(500, torch.Generator().manual_seed(42))
        b = d.sample(500, torch.Generator().manual_seed(42))
        c = d.sample(500, torch.Generator().manual_seed(43))
        assert torch.equal(a, b), name
        assert not torch.equal(a, c), name


# -----------------------------------------------------------------------------------------------------
# Gaussian against torch.distributions


@pytest.mark.parametrize("dim", [1, 2, 5])
def test_gaussian_log_prob_equals_multivariate_normal(dim):
    gen = torch.Generator().manual_seed(100 + dim)
    a = torch.randn(dim, dim, generator=gen)
    cov = a @ a.T + 0.3 * torch.eye(dim)
    mean = 2 * torch.randn(dim, generator=gen)
    x = mean + 3 * torch.randn(64, dim, generator=gen)
    ours = Gaussian(mean, cov)
    ref = torch.distributions.MultivariateNormal(mean.double(), covariance_matrix=cov.double())
    assert_close(ours.log_prob(x.double()), ref.log_prob(x.double()), rtol=1e-5, atol=1e-4)
    assert_close(ours.log_prob(x), ref.log_prob(x.double()).float(), rtol=1e-5, atol=1e-3)
    assert ours.log_prob(x).dtype == torch.float32


@pytest.mark.parametrize("cov", [2.0, (0.5, 3.0)], ids=["scalar", "diagonal"])
def test_gaussian_scalar_and_diagonal_covariance(cov):
    g = Gaussian((1.0, -1.0), cov)
    full = torch.diag(torch.as_tensor(cov, dtype=torch.float32).expand(2))
    ref = torch.distributions.MultivariateNormal(torch.tensor([1.0, -1.0]), covariance_matrix=full)
    x = torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
    assert_close(g.log_prob(x), ref.log_prob(x))


# -----------------------------------------------------------------------------------------------------
# _log_diff_ndtr: log(Phi(a) - Phi(b)) in the far tails


def _ref_log_diff_ndtr(a: float, b: float) -> float:
    """Independent reference: adaptive quadrature of the normal density, scaled by its peak on [b, a]."""
    m = a if a < 0 else (b if b > 0 else 0.0)  # the point of [b, a] closest to 0
    val, _ = integrate.quad(lambda t: math.exp(-(t * t - m * m) / 2), b, a, epsabs=0, epsrel=1e-13, limit=200)
    return -m * m / 2 + math.log(val) - 0.5 * math.log(2 * math.pi)


# (a, b) pairs: a SmoothBox cell of 20 blurs seen from 40 blurs away on either side, far in both tails,
# straddling 0, and narrow intervals.
LOG_DIFF_CASES = [(-40.0, -60.0), (60.0, 40.0), (-20.0, -40.0), (40.0, -40.0), (0.5, -19.5), (19.5, -0.5),
                  (-1.0, -2.0), (3.0, 2.5), (100.0, 80.0), (-100.0, -101.0), (10.0, 9.0), (1.0, 0.0)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_log_diff_ndtr_matches_quadrature_in_far_tails(dtype):
    a = torch.tensor([c[0] for c in LOG_DIFF_CASES], dtype=dtype)
    b = torch.tensor([c[1] for c in LOG_DIFF_CASES], dtype=dtype)
    got = _log_diff_ndtr(a, b)
    ref = torch.tensor([_ref_log_diff_ndtr(*c) for c in LOG_DIFF_CASES], dtype=torch.float64)
    assert got.dtype == dtype and torch.isfinite(got).all()
    rtol = 1e-11 if dtype == torch.float64 else 1e-6
    err = (got.double() - ref).abs() / ref.abs().clamp_min(1.0)
    assert (err < rtol).all(), f"relative errors {err.tolist()} for cases {LOG_DIFF_CASES}"


def test_log_diff_ndtr_matches_asymptotic_tail():
    """log(Phi(-x)) ~ -x^2/2 - log(x) - log(2 pi)/2 + log(1 - 1/x^2 + 3/x^4) for large x; the far end is negligible."""
    x = torch.tensor([30.0, 40.0, 200.0], dtype=torch.float64)
    asym = -x ** 2 / 2 - x.log() - 0.5 * math.log(2 * math.pi) + torch.log1p(-1 / x ** 2 + 3 / x ** 4 - 15 / x ** 6)
    assert_close(_log_diff_ndtr(-x, -x - 20), asym, rtol=1e-10, atol=0)
    assert_close(_log_diff_ndtr(x + 20, x), asym, rtol=1e-10, atol=0)


def test_smooth_box_far_from_cell_has_finite_energy_and_gradient():
    """40 blurs (and 2000 blurs) outside a cell: no NaN/inf in the energy or its gradient, and the gradient
    points back to the cell, so a sampler started far away is pulled in."""
    box = SmoothBox((0.0, 0.0), (1.0, 1.0), blur=0.05)
    x = torch.tensor([[-2.0, 0.5], [3.0, 0.5], [0.5, -2.0], [0.5, 3.0], [-100.0, 100.0]], requires_grad=True)
    e = box.energy(x)
    (g,) = torch.autograd.grad(e.sum(), x)
    assert torch.isfinite(e).all() and torch.isfinite(g).all(), (e, g)
    toward_cell = torch.tensor([0.5, 0.5]) - x.detach()
    assert ((-g * toward_cell).sum(-1) > 0).all()
    # 40 blurs left of the cell: E = -log(Phi(-40) - Phi(-60)) - log(Phi(10) - Phi(-10)) ~ 804.6
    ref = -_ref_log_diff_ndtr(-40.0, -60.0) - _ref_log_diff_ndtr(10.0, -10.0)
    assert abs(e[0].item() - ref) < 1e-5 * ref


def test_checkerboard_far_away_is_finite():
    d = toy_2d("checkerboard")
    x = torch.tensor([[50.0, 50.0], [-20.0, 0.1], [0.0, 0.0]], requires_grad=True)
    e = d.energy(x)
    (g,) = torch.autograd.grad(e.sum(), x)
    assert torch.isfinite(e).all() and torch.isfinite(g).all()


# -----------------------------------------------------------------------------------------------------
# Clear errors


@pytest.mark.parametrize("name", sorted(TOY_2D))
def test_wrong_point_shape_raises(name):
    d = toy_2d(name)
    with pytest.raises(ValueError, match=r"shape \(N, 2\), got \(4, 3\)"):
        d.log_prob(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"shape \(N, 2\), got \(2,\)"):
        d.energy(torch.zeros(2))


def test_wrong_point_shape_raises_for_higher_dim_gaussian():
    with pytest.raises(ValueError, match=r"\(N, 5\), got \(3, 2\)"):
        Gaussian(torch.zeros(5)).log_prob(torch.zeros(3, 2))


@pytest.mark.parametrize("bad", [torch.zeros(4, 2, dtype=torch.int64), [[0.0, 0.0]]], ids=["int_tensor", "list"])
def test_non_float_points_raise(bad):
    with pytest.raises(TypeError, match="floating-point"):
        toy_2d("two_moons").log_prob(bad)
    with pytest.raises(TypeError, match="floating-point"):
        toy_2d("gaussian").energy(bad)


@pytest.mark.parametrize("make, bad", [
    (lambda: Arc(width=-0.1), "-0.1"),
    (lambda: Arc(width=0.0), "0.0"),
    (lambda: Arc(radius=-1.0), "-1.0"),
    (lambda: Arc(concentration=-2.0), "-2.0"),
    (lambda: SmoothBox(blur=-0.05), "-0.05"),
    (lambda: SmoothBox(blur=0.0), "blur=0"),
    (lambda: SmoothBox(low=(0.0, 1.0), high=(1.0, 1.0)), "high"),
    (lambda: toy_2d("two_rings", width=-0.15), "-0.15"),
    (lambda: toy_2d("checkerboard", blur=-0.05), "-0.05"),
    (lambda: toy_2d("two_moons", concentration=-3.0), "-3.0"),
])
def test_negative_or_zero_widths_raise(make, bad):
    with pytest.raises(ValueError, match=bad):
        make()


@pytest.mark.parametrize("name", ["eight_gaussians", "two_modes"])
def test_negative_gaussian_std_raises(name):
    with pytest.raises(ValueError, match="-0.25"):
        toy_2d(name, std=-0.25)


def test_unknown_toy_name_raises_key_error_listing_options():
    with pytest.raises(KeyError, match="two_moon") as info:
        toy_2d("two_moon")
    for name in TOY_2D:
        assert name in str(info.value)


@pytest.mark.parametrize("weights, bad", [
    ((1.0, -1.0), "-1.0"),
    ((1.0, 0.0), "0.0"),
    ((1.0, 2.0, 3.0), "3.0"),
    ((1.0,), r"\(1.0,\)"),
])
def test_bad_mixture_weights_raise(weights, bad):
    comps = [Gaussian((0.0, 0.0)), Gaussian((1.0, 1.0))]
    with pytest.raises(ValueError, match=bad):
        Mixture(comps, weights=weights)


@pytest.mark.parametrize("weights", [(float("nan"), 1.0), (float("inf"), 1.0)], ids=["nan", "inf"])
def test_non_finite_mixture_weights_raise(weights):
    with pytest.raises(ValueError, match="weights"):
        Mixture([Gaussian((0.0, 0.0)), Gaussian((1.0, 1.0))], weights=weights)


def test_mixture_structure_errors():
    with pytest.raises(ValueError, match="at least one"):
        Mixture([])
    with pytest.raises(ValueError, match=r"\[2, 3\]"):
        Mixture([Gaussian((0.0, 0.0)), Gaussian((0.0, 0.0, 0.0))])


@pytest.mark.parametrize("cov", [((1.0, 2.0), (2.0, 1.0)), ((1.0, 0.0), (0.0, 0.0)), -1.0, 0.0, (1.0, -0.5)],
                         ids=["indefinite", "singular", "negative_scalar", "zero_scalar", "negative_diag"])
def test_non_positive_definite_covariance_raises(cov):
    with pytest.raises(ValueError, match="positive definite"):
        Gaussian((0.0, 0.0), cov)


def test_non_symmetric_covariance_raises():
    with pytest.raises(ValueError, match="symmetric"):
        Gaussian((0.0, 0.0), ((1.0, 0.9), (0.0, 1.0)))


def test_wrong_covariance_shape_raises():
    with pytest.raises(ValueError, match=r"got \(3, 3\)"):
        Gaussian((0.0, 0.0), torch.eye(3))


@pytest.mark.parametrize("n", [-1, 2.5, True])
def test_bad_sample_count_raises(n):
    with pytest.raises(ValueError, match=repr(n).replace(".", r"\.")):
        toy_2d("two_moons").sample(n)


@pytest.mark.parametrize("name", [
    "gaussian",
    "two_moons",
])
def test_zero_samples_is_empty(name):
    assert toy_2d(name).sample(0).shape == (0, 2)
    if name == "gaussian":
        assert Arc().sample(0).shape == (0, 2) and SmoothBox().sample(0).shape == (0, 2)
