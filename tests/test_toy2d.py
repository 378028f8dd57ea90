"""Tests of ebmlib.chapters.training_2d (fitting and scoring): the grid-normalised density code against known
partition functions, equal-compute bookkeeping, and that Algorithm 1 on a 2D target moves E(data) below
E(negatives). The chapter's experiment functions are tested in test_training_2d_chapter.py."""
import math

import pytest
import torch

from ebmlib.core import energies as E
from ebmlib.chapters import training_2d as T
from ebmlib.core.metrics import Grid2D


def test_learned_cells_of_an_unnormalised_gaussian_energy_match_the_exact_density():
    # E(x) = |x - m|^2 / (2 s^2) + 5 has Z = 2 pi s^2 e^-5: the grid must recover the normalised N(m, s^2 I)
    m, s = torch.tensor([0.5, -0.3]), 0.7
    grid = Grid2D((-5, 5), 60)
    energy = lambda x: (x - m).pow(2).sum(-1) / (2 * s * s) + 5.0  # noqa: E731
    assert grid.log_z(energy) == pytest.approx(math.log(2 * math.pi * s * s) - 5.0, abs=1e-4)
    exact = grid.normalise(log_density=E.Gaussian(m, s * s).log_prob)
    assert T.cell_kl(T.learned_cells(energy, grid), exact) < 1e-8
    # at temperature T the density is exp(-E / T): an energy scaled by T gives the same cells
    assert T.cell_kl(T.learned_cells(lambda x: 0.25 * energy(x), grid, temperature=0.25), exact) < 1e-8


def test_cell_kl_matches_the_closed_form_for_shifted_gaussians():
    # KL(N(0, s^2 I) || N(d, s^2 I)) = |d|^2 / (2 s^2), both directions
    s, d = 0.6, torch.tensor([0.9, 0.0])
    grid = Grid2D((-6, 6), 120)
    p = grid.normalise(log_density=E.Gaussian((0.0, 0.0), s * s).log_prob)
    q = grid.normalise(log_density=E.Gaussian(d, s * s).log_prob)
    exact = float(d.pow(2).sum()) / (2 * s * s)
    assert T.cell_kl(p, q) == pytest.approx(exact, rel=0.02)
    assert T.cell_kl(q, p) == pytest.approx(exact, rel=0.02)
    assert T.cell_kl(p, p) == 0.0


def test_cell_mode_weights_of_the_truth_are_the_mixture_weights():
    target = E.two_modes()
    grid = Grid2D(target.bounds, 80)
    w = T.cell_mode_weights(grid.normalise(log_density=target.log_prob), target, grid)
    assert torch.allclose(w, target.weights.double(), atol=2e-3)


def test_equal_compute_gives_every_variant_the_same_gradient_budget():
    budget = 2100
    for k in (5, 20, 41):
        spec = T.equal_compute({"n_steps": k}, budget)
        assert abs(T.grad_evals(spec) - budget) <= (k + 1) / 2
    assert T.temperature({"step_size": 0.02}) == pytest.approx(1.0)            # noise sqrt(2 step) by default
    assert T.temperature({"step_size": 0.02, "noise_std": 0.02}) == pytest.approx(0.01)


def test_unknown_spec_keys_are_refused():
    with pytest.raises(KeyError, match="lerning_rate"):
        T.make_run({"lerning_rate": 1.0})


def test_training_moves_data_energy_below_negative_energy():
    torch.manual_seed(0)
    target = E.gaussian(mean=(1.0, 1.0), cov=((0.2, 0.0), (0.0, 0.2)))
    spec = dict(hidden=32, depth=2, n_steps=10, n_iters=60, batch_size=64, lr=3e-3, init="noise")
    fit = T.fit(target, spec, Grid2D((-4, 4), 24), n_samples=200, sample_steps=20)
    gaps = [h["e_pos"] - h["e_neg"] for h in fit.history if "event" not in h]
    assert len(gaps) == 60
    assert sum(gaps) / len(gaps) < 0                       # E(data) < E(negatives) during training
    with torch.no_grad():                                  # and afterwards: data below uniform noise
        e_data = fit.model(target.sample(500, torch.Generator().manual_seed(1))).mean()
        e_noise = fit.model(8 * torch.rand(500, 2, generator=torch.Generator().manual_seed(2)) - 4).mean()
    assert e_data < e_noise
    s = fit.summary()
    assert s["grad_evals"] == 60 * 11 and s["rollbacks"] == 0
    assert math.isfinite(s["kl_true_learned"]) and math.isfinite(s["kl_learned_true"])


def test_guarded_run_reports_every_rollback_from_the_log():
    # no L2 term and a huge learning rate: energies leave the tight bound at once and the guard must act
    spec = dict(hidden=16, depth=2, n_steps=3, batch_size=32, alpha=0.0, lr=0.5, max_abs_energy=5.0,
                checkpoint_every=5, max_rollbacks=3)
    run = T.guarded_run(E.two_moons(), spec, 30)
    events = [r for r in run["log"] if r.get("event") == "rollback"]
    assert events, "the guard never fired"
    assert all(e["lr"] < 0.5 for e in events)
    if run["gave_up"] is not None:
        assert len(events) == spec["max_rollbacks"]        # gave up on the (max_rollbacks + 1)-th divergence
    assert len(events) >= sum(1 for r in run["history"] if r.get("event") == "rollback")
