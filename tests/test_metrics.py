"""Tests of ebmlib.metrics: grid normalisation, histogram KL / TV and their finite-sample floor, MMD, mode weights."""
import math

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from ebmlib.core import energies as E# noqa: E402
from ebmlib.core import metrics as M# noqa: E402
from ebmlib.core import samplers as S# noqa: E402


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# -- Grid2D ------------------------------------------------------------------------------------------------

def test_grid_geometry_and_reshape():
    grid = M.Grid2D(((-1.0, 3.0), (0.0, 1.0)), (8, 4))
    assert grid.n_cells == 32 and grid.points.shape == (32, 2)
    assert grid.cell_area == pytest.approx(0.5 * 0.25)
    assert grid.extent == (-1.0, 3.0, 0.0, 1.0)
    # row-major (y, x): reshape lines values up with X and Y
    z = grid.reshape(grid.points[:, 0])
    assert z.shape == (4, 8)
    assert (z == grid.X.astype("float32")).all()
    assert (grid.reshape(grid.points[:, 1]) == grid.Y.astype("float32")).all()


@pytest.mark.parametrize("s", [0.5, 1.0, 2.3])
def test_log_z_of_unnormalised_gaussian_energy(s):
    # E(x) = |x|^2 / (2 s^2) in 2D has Z = 2 pi s^2
    grid = M.Grid2D((-8 * s, 8 * s), 60)
    energy = lambda x: x.pow(2).sum(-1) / (2 * s * s)  # noqa: E731
    assert grid.log_z(energy) == pytest.approx(math.log(2 * math.pi * s * s), abs=1e-4)
    # per-cell values (centres only) agree too
    assert grid.log_z(grid.evaluate(energy)) == pytest.approx(math.log(2 * math.pi * s * s), abs=1e-3)
    # an offset in the energy moves log Z by exactly that offset
    assert grid.log_z(lambda x: energy(x) + 3.0) == pytest.approx(math.log(2 * math.pi * s * s) - 3.0, abs=1e-4)


def test_normalise_energy_and_log_density_agree_and_sum_to_one():
    target = E.two_moons()
    grid = M.Grid2D(target.bounds, 40)
    a = grid.normalise(log_density=target.log_prob)
    b = grid.normalise(energy=lambda x: target.energy(x) + 17.0)      # unnormalised: any offset
    assert torch.allclose(a, b, atol=1e-6)
    assert a.exp().sum().item() == pytest.approx(1.0, abs=1e-9)
    assert a.dtype == torch.float64 and a.shape == (grid.n_cells,)


@pytest.mark.parametrize("name", sorted(E.TOY_2D))
def test_library_targets_are_normalised_on_their_grid(name):
    target = E.toy_2d(name)
    assert M.Grid2D(target.bounds, 50).log_z(target.energy) == pytest.approx(0.0, abs=5e-3)


def test_histogram_counts_outside_points_in_edge_cells():
    grid = M.Grid2D((0.0, 1.0), 2)
    x = torch.tensor([[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [5.0, 5.0], [-3.0, 0.1]])
    counts = grid.histogram(x)
    assert counts.tolist() == [2.0, 1.0, 1.0, 1.0]        # cells (y, x): (0,0) (0,1) (1,0) (1,1)
    assert grid.outside_fraction(x) == pytest.approx(2 / 5)


# -- grid KL / TV ------------------------------------------------------------------------------------------

def test_grid_kl_of_exact_samples_is_small_and_matches_the_predicted_bias():
    target = E.eight_gaussians()
    grid = M.Grid2D(target.bounds, 30)
    n = 20000
    kl = M.grid_kl(target.sample(n, generator=gen(1)), target, grid)
    bias = M.kl_bias(target, grid, n)
    naive_bound = (grid.n_cells - 1) / (2 * n)
    assert 0 <= kl < naive_bound
    assert kl == pytest.approx(bias, rel=0.3)


def test_exact_sample_floor_matches_kl_bias():
    target = E.two_modes()
    grid = M.Grid2D(target.bounds, 30)
    mean, sd = M.exact_sample_floor(target, grid, 2000, n_repeats=8, generator=gen(2))
    assert sd > 0
    assert mean == pytest.approx(M.kl_bias(target, grid, 2000), rel=0.15)
    tv_mean, _ = M.exact_sample_floor(target, grid, 2000, n_repeats=3, metric="tv", generator=gen(3))
    assert 0 < tv_mean < 0.3


def test_grid_kl_detects_a_shifted_distribution():
    target = E.Gaussian((0.0, 0.0), 1.0)
    grid = M.Grid2D((-5.0, 5.0), 30)
    n = 5000
    floor = M.kl_bias(target, grid, n)
    shifted = E.Gaussian((0.7, 0.0), 1.0).sample(n, generator=gen(4))
    kl = M.grid_kl(shifted, target, grid)
    # KL(N(0.7, 1) || N(0, 1)) = 0.7^2 / 2 = 0.245 in the continuum
    assert kl > 5 * floor
    assert kl == pytest.approx(0.245 + floor, abs=0.06)
    assert M.grid_tv(shifted, target, grid) > 3 * M.grid_tv(target.sample(n, generator=gen(5)), target, grid)


def test_tv_is_within_zero_and_one():
    target = E.two_moons()
    grid = M.Grid2D(target.bounds, 25)
    exact = M.grid_tv(target.sample(3000, generator=gen(6)), target, grid)
    far = M.grid_tv(torch.full((100, 2), 50.0), target, grid)         # all in one edge cell with ~0 mass
    assert 0 <= exact < 0.2
    assert 0.99 < far <= 1.0


def test_target_may_be_given_as_callable_or_cell_log_probs():
    target = E.checkerboard()
    grid = M.Grid2D(target.bounds, 20)
    x = target.sample(1000, generator=gen(7))
    logq = grid.normalise(log_density=target.log_prob)
    a, b, c = M.grid_kl(x, target, grid), M.grid_kl(x, target.log_prob, grid), M.grid_kl(x, logq, grid)
    assert a == pytest.approx(b) and a == pytest.approx(c)


def test_ula_bias_is_visible_and_mala_is_not():
    # on a narrow Gaussian with a large step, ULA's stationary law is 1/(1 - 0.4) = 1.67 times too wide
    target = E.Gaussian((0.0, 0.0), 0.25)
    grid = M.Grid2D((-3.0, 3.0), 30)
    x0 = target.sample(4000, generator=gen(8))
    ula = S.ULA(step_size=0.2).run(target.energy, x0, 60, generator=gen(9)).x
    mala = S.MALA(step_size=0.2).run(target.energy, x0, 60, generator=gen(9)).x
    floor = M.kl_bias(target, grid, 4000)
    assert M.grid_kl(ula, target, grid) > floor + 0.05
    assert M.grid_kl(mala, target, grid) < floor + 0.03


# -- MMD -------------------------------------------------------------------------------------------------

def test_mmd2_is_near_zero_for_same_law_and_positive_for_different_laws():
    target = E.eight_gaussians()
    a, b = target.sample(500, generator=gen(10)), target.sample(500, generator=gen(11))
    same = M.mmd2(a, b, bandwidth=0.3)
    other = M.mmd2(a, E.two_moons().sample(500, generator=gen(12)), bandwidth=0.3)
    assert abs(same) < 2e-3
    assert other > 20 * max(abs(same), 1e-4)
    # small chunks give the same answer
    assert M.mmd2(a, b, bandwidth=0.3, chunk=100) == pytest.approx(same, abs=1e-10)


# -- mode weights -----------------------------------------------------------------------------------------

def test_mode_weights_recover_mixture_weights():
    target = E.two_modes(separation=4.0, weights=(0.3, 0.7))
    x = target.sample(20000, generator=gen(13))
    soft = M.mode_weights(x, target)
    hard = M.mode_weights(x, target, hard=True)
    assert soft.sum().item() == pytest.approx(1.0)
    assert soft.tolist() == pytest.approx([0.3, 0.7], abs=0.01)
    assert hard.tolist() == pytest.approx([0.3, 0.7], abs=0.01)
    only_left = M.mode_weights(torch.tensor([[-2.0, 0.0]] * 10), target)
    assert only_left[0].item() > 0.99


def test_evaluations_per_step():
    assert M.evaluations_per_step(S.ULA()) == {"grad": 1, "energy": 0}
    assert M.evaluations_per_step(S.MALA()) == {"grad": 2, "energy": 0}
    assert M.evaluations_per_step(S.HMC(n_leapfrog=7)) == {"grad": 8, "energy": 0}
    assert M.evaluations_per_step(S.RandomWalkMH()) == {"grad": 0, "energy": 2}
    assert M.evaluations_per_step(S.PaperLangevin()) == {"grad": 1, "energy": 0}


# -- bad input --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bounds,n", [((1.0, 0.0), 10), ((0.0, float("inf")), 10), ((0.0, 1.0, 2.0), 10),
                                      ((0.0, 1.0), 1), ((0.0, 1.0), 2.5), ("ab", 10)])
def test_grid_rejects_bad_construction(bounds, n):
    with pytest.raises(ValueError):
        M.Grid2D(bounds, n)


def test_bad_samples_raise_clear_errors():
    target = E.gaussian()
    grid = M.Grid2D(target.bounds, 10)
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        M.grid_kl(torch.zeros(10, 3), target, grid)
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        M.grid_kl(torch.zeros(10), target, grid)
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        M.grid_tv(torch.zeros(0, 2), target, grid)
    with pytest.raises(ValueError, match="NaN"):
        M.grid_kl(torch.tensor([[0.0, float("nan")], [0.0, 0.0]]), target, grid)
    with pytest.raises(TypeError, match="floating-point"):
        M.grid_kl(torch.zeros(5, 2, dtype=torch.long), target, grid)
    with pytest.raises(ValueError, match="NaN"):
        M.mode_weights(torch.full((3, 2), float("inf")), E.two_modes())
    with pytest.raises(TypeError, match="responsibilities"):
        M.mode_weights(torch.zeros(3, 2), target)


def test_bad_targets_and_arguments_raise():
    grid = M.Grid2D((-1.0, 1.0), 10)
    x = torch.zeros(5, 2)
    with pytest.raises(ValueError, match="100 entries"):
        M.grid_kl(x, torch.zeros(7), grid)
    with pytest.raises(ValueError, match="exactly one"):
        grid.normalise()
    with pytest.raises(ValueError, match="exactly one"):
        grid.normalise(energy=lambda p: p.sum(-1), log_density=lambda p: p.sum(-1))
    with pytest.raises(ValueError, match="NaN"):
        grid.normalise(log_density=lambda p: torch.full((p.shape[0],), float("nan")))
    with pytest.raises(ValueError, match="one value per point"):
        grid.normalise(log_density=lambda p: torch.zeros(3))
    with pytest.raises(ValueError, match="n_samples"):
        M.kl_bias(E.gaussian(), grid, 0)
    with pytest.raises(ValueError, match="metric"):
        M.exact_sample_floor(E.gaussian(), grid, 10, metric="js")
    with pytest.raises(ValueError, match="same dimension"):
        M.mmd2(torch.zeros(4, 2), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="bandwidth"):
        M.mmd2(torch.zeros(4, 2), torch.zeros(4, 2), bandwidth=0.0)
    with pytest.raises(ValueError, match="unknown sampler"):
        M.evaluations_per_step(object())
