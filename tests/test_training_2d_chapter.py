"""Tests of the chapter-02 experiment functions of ebmlib.chapters.training_2d: exact answers where they exist
(products and mixtures of Gaussians, a model that is the true energy), and the verdicts on hand-made scores."""
import math
from types import SimpleNamespace

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from ebmlib.chapters import training_2d as T
from ebmlib.core import energies as E
from ebmlib.core.metrics import Grid2D

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


class TrueEnergy(nn.Module):
    """A 'trained model' that is exactly the target's energy (one dummy parameter so frozen() has work)."""

    def __init__(self, target):
        super().__init__()
        self.target, self.dummy = target, nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return self.target.energy(x) + 0 * self.dummy


def _scores(a, b, sample=0.3, mode=0.0, temp=1.0, rollbacks=0):
    return {"kl_true_learned": a, "kl_learned_true": b, "sample_kl": sample, "mode_error": mode,
            "temperature": temp, "rollbacks": rollbacks}


# -- small helpers ----------------------------------------------------------------------------------------------

def test_smooth_is_a_moving_average_that_fits_short_series():
    assert T.smooth([1, 2, 3, 4, 5], window=2).tolist() == [1.5, 2.5, 3.5, 4.5]
    assert T.smooth([1.0, 3.0], window=25).tolist() == [2.0]                 # window clipped to the length
    assert len(T.smooth(np.arange(100.0))) == 76


def test_energy_gaps_average_the_first_and_last_tenth_and_skip_events():
    hist = [{"e_pos": 0.0, "e_neg": float(i)} for i in range(20)]
    hist.insert(5, {"event": "rollback", "iteration": 5})
    fits = {"t": {"replay": SimpleNamespace(history=hist)}}
    assert T.energy_gaps(fits) == {"t": {"first_10pct": 0.5, "last_10pct": 18.5}}
    assert T.gap_sentence(T.energy_gaps(fits)) == (
        "Mean gap E(negatives) - E(data) over the first and last tenth of training: t +0.500 -> +18.500. "
        "The gap falls by more than half on 0 of 1 targets; on t it does not.")
    gaps = {"a": {"first_10pct": 0.049, "last_10pct": 0.010}, "b": {"first_10pct": 0.039, "last_10pct": 0.036}}
    assert T.gap_sentence(gaps).endswith("falls by more than half on 1 of 2 targets (a); on b it does not.")


def test_uniform_start_and_composition_step():
    x = T.uniform_start(1000, (-4.0, 4.0), torch.Generator().manual_seed(3))
    assert torch.equal(x, -4 + 8 * torch.rand(1000, 2, generator=torch.Generator().manual_seed(3)))
    with pytest.raises(ValueError, match="data_range"):
        T.uniform_start(5, (1.0, -1.0), torch.Generator())
    assert T.composition_step({"step_size": 0.3}) == pytest.approx(0.1)
    assert T.composition_step({}) == pytest.approx(T.BASE_SPEC["step_size"] / 3)


# -- section 2: the KL table and the replay verdict -------------------------------------------------------------

def _kl_table(replay_better_on):
    table = {}
    for name in ("a", "b", "c"):
        good = name in replay_better_on
        table[name] = {"replay": {**_scores(0.1 if good else 0.5, 0.2 if good else 0.6, mode=0.01), "mode_weights": [0.5, 0.5]},
                       "noise": {**_scores(0.3, 0.4, mode=0.2), "mode_weights": [0.7, 0.3]},
                       "persistent": {**_scores(0.05, 0.1, mode=0.05), "mode_weights": [0.6, 0.4]}}
    return table


def test_replay_verdict_counts_wins_in_both_directions():
    text, wins = T.replay_verdict(_kl_table({"a", "b"}))
    assert wins["vs_noise_both"] == ["a", "b"] and wins["vs_noise_fwd"] == ["a", "b"]
    assert wins["mode_weights_vs_noise"] == ["a", "b", "c"] and wins["vs_pcd_both"] == []
    assert "This run therefore supports section 3.2's claim" in text
    assert "where it does not win in both directions (c)" in text
    assert "the buffer wins in both directions on 0 of 3 targets here" in text
    text, wins = T.replay_verdict(_kl_table({"a"}))
    assert "does not clearly support" in text and wins["vs_noise_both"] == ["a"]


def test_kl_rows_end_each_target_with_the_truth_and_its_floor():
    table = _kl_table({"a"})
    targets = {n: E.two_modes() for n in table}
    rows = T.kl_rows(targets, table, {n: (0.25, 0.01) for n in table})
    assert len(rows) == 3 * 4 and all(len(r) == len(T.KL_HEADER) for r in rows)
    assert rows[0][:4] == ["a", "replay", 0.1, 0.2] and rows[0][-1] == "0.50, 0.50"
    assert rows[3] == ["a", "*exact samples / truth*", "0", "0", "0.250 ± 0.010", "0", "0.30, 0.70"]
    assert T.summary_rows(table, ("replay", "noise")) [0] == ["a", "0.100 / 0.200", "0.300 / 0.400"]


# -- section 3: ablations ---------------------------------------------------------------------------------------

def test_ablation_claims_read_the_scores():
    scores = {
        "Langevin noise (A.8)": {"noise x0.1": _scores(8.0, 1.5), "noise x1 (T = 1)": _scores(0.2, 0.3),
                                 "noise x3": _scores(0.2, 0.1, sample=80.0, temp=9.0)},
        "step size (A.8)": {"step 0.003": _scores(0.3, 0.2), "step 0.03": _scores(0.2, 0.3),
                            "step 0.3": _scores(5.0, 5.0)},
        "L2 coefficient alpha (3.3, A.4)": {"alpha 0": _scores(0.2, 0.3), "alpha 1": _scores(0.25, 0.3)},
        "spectral norm (3.3)": {"no SN": _scores(0.2, 0.3), "SN": _scores(1.0, 4.5)},
        "Langevin steps K (equal compute)": {"K = 5": _scores(0.3, 0.4), "K = 20": _scores(0.2, 0.3),
                                             "K = 60": _scores(0.1, 0.1)},
    }
    claims = T.ablation_claims(scores)
    text = "\n".join(claims)
    assert "noise x0.1 scores 9.50 nats (KL sum) against 0.50 at T = 1, so this run supports it." in text
    assert "noise x3 (T = 9) has a density score of 0.30 nats" in text
    assert "consistent with the claim in this run (the learned density is fine but the hot sampler's" in text
    assert "The largest spread is in *step size (A.8)*; the paper's claim that the step size matters most is supported" in text
    assert "Insensitivity to alpha (A.4) holds here" in text                # spread 0.05 < the median group's
    assert "Spectral norm: 5.50 with, 0.50 without; it does not help" in text
    assert "best K = 60 (0.20)" in text and "supported: the best run had K = 60" in text
    # the spreads: noise 9.2, step 9.5, alpha 0.05, SN 5.0, K 0.5 -> median 5.0
    assert "against 5.00 for the median group" in text
    assert T.density_score(_scores(0.25, 0.5)) == 0.75


def test_ablation_claims_skip_missing_groups():
    assert T.ablation_claims({"activation (A.8)": {"swish": _scores(0.3, 0.3), "relu": _scores(0.2, 0.2)}}) == [
        "*ReLU, LeakyReLU and Swish all work, Swish best* (activation (A.8)): best relu (0.40), worst swish "
        "(0.60); spread 0.20 nats against 0.20 for the median group; supported: the worst activation is within "
        "a factor 2 of the best; Swish is not the best here."]


def test_run_ablations_spend_equal_compute_and_share_the_baseline():
    spec = dict(hidden=8, depth=2, n_iters=6, n_steps=3, batch_size=16, checkpoint_every=2)
    grid, cache, target = Grid2D((-4, 4), 16), {}, E.two_moons()
    fits = T.compare_inits({"two_moons": target}, spec, ("replay",), grid=grid, n_samples=50, sample_steps=3,
                           seeds=(0,), cache=cache)
    assert len(cache) == 1 and fits["two_moons"]["replay"] is fits["two_moons"]["_all"]["replay"][0]
    groups = {"K": {"K = 1": {"n_steps": 1}, "K = 3": {}}, "alpha": {"alpha 0": {"alpha": 0.0}, "alpha 0.01": {}}}
    scores = T.run_ablations(target, spec, groups, budget=T.grad_evals(spec), grid=grid, n_samples=50,
                             sample_steps=3, seeds=(0,), cache=cache)
    assert len(cache) == 3                                # the K = 3 and alpha 0.01 variants are the baseline
    assert scores["K"]["K = 1"]["iters"] == 12 and scores["K"]["K = 3"]["iters"] == 6
    assert {s["grad_evals"] for g in scores.values() for s in g.values()} == {24.0}
    rows = T.ablation_rows(scores)
    assert rows[0][:5] == ["K", "K = 1", "1", 12, 24] and len(rows[0]) == len(T.ABLATION_HEADER)


# -- section 4: composition -------------------------------------------------------------------------------------

def test_and_samples_a_product_and_or_a_mixture_of_gaussians():
    a, b = E.Gaussian((-1.0, 0.0), 1.0), E.Gaussian((1.0, 0.0), 1.0)   # product N(0, I/2); mixture var_x 2
    x0 = T.uniform_start(3000, (-4.0, 4.0), torch.Generator().manual_seed(0))
    s = T.and_or_samples([a.energy, b.energy], x0, 300, 0.01, (-6.0, 6.0), torch.Generator().manual_seed(1))
    assert s["AND"].mean(0).abs().max() < 0.05
    assert s["AND"].var(0).tolist() == pytest.approx([0.5, 0.5], rel=0.08)
    assert s["OR"][:, 0].var().item() == pytest.approx(2.0, rel=0.1)
    assert s["OR"][:, 1].var().item() == pytest.approx(1.0, rel=0.1)


def test_analytic_composition_scores_and_samples_land_in_both_experts():
    ring, band = T.analytic_experts()
    grid = Grid2D((-4, 4), 40)
    x0 = T.uniform_start(1500, (-4.0, 4.0), torch.Generator().manual_seed(3))
    samples = T.and_or_samples([ring.energy, band.energy], x0, 150, 0.01, (-4.0, 4.0),
                               torch.Generator().manual_seed(4))
    cells, scores = T.analytic_composition(ring, band, samples, grid)
    assert set(cells) == {"A", "B", "A AND B (product)", "A OR B (mixture)"}
    for lc in cells.values():
        assert lc.exp().sum().item() == pytest.approx(1.0, abs=1e-6)
    ands, ors = scores["AND samples"], scores["OR samples"]
    assert ands["KL vs A AND B (product)"] < ands["KL vs A OR B (mixture)"]
    assert ors["KL vs A OR B (mixture)"] < ors["KL vs A AND B (product)"]
    assert ands["in 90% region of A"] > 0.75 and ands["in 90% region of B"] > 0.75
    header, rows = T.score_rows(scores)
    assert header[0] == "samples" and len(header) == 7 and rows[1][0] == "OR samples"
    traces = T.composition_traces(ring.energy, band.energy, 3, 5, 0.01, (-4.0, 4.0), torch.Generator().manual_seed(2))
    assert list(traces) == ["energy A (ring)", "energy B (band)", "energy A + B (AND)"]
    assert all(tr.shape == (6, 3, 2) for _, tr in traces.values())
    assert torch.equal(traces["energy A (ring)"][1][0], traces["energy A + B (AND)"][1][0])   # same start


def test_learned_composition_of_the_true_energies_is_exact():
    ta, tb = E.two_rings(), E.two_moons()
    grid = Grid2D((-4, 4), 40)
    exact = T.learned_cells(lambda x: ta.energy(x) + tb.energy(x), grid)
    samples = {"AND": ta.sample(500, torch.Generator().manual_seed(0)), "OR": tb.sample(500, torch.Generator().manual_seed(1))}
    scores = T.learned_composition(ta, tb, samples, exact, grid)
    assert scores["learned product density: KL(p_A p_B ‖ learned)"] == pytest.approx(0.0, abs=1e-9)
    assert scores["learned product density: KL(learned ‖ p_A p_B)"] == pytest.approx(0.0, abs=1e-9)
    text = T.composition_sentence(
        {"AND samples": {"in 90% region of A": 0.93, "in 90% region of B": 0.915, "KL vs A AND B (product)": 0.081,
                         "KL vs A OR B (mixture)": 1.572},
         "OR samples": {"in 90% region of A": 0.598, "in 90% region of B": 0.515}}, scores)
    assert text.startswith("Where the samples of the analytic sum land: 93% of them fall in A's 90% region and 92%")
    assert "(OR samples: 60% and 52%)" in text and "0.081 nats against 1.572 to the mixture" in text
    assert "not closer to the product than to the mixture; the summed learned energies themselves put mass" \
        in T.composition_sentence(
        {"AND samples": {"in 90% region of A": 0.9, "in 90% region of B": 0.9, "KL vs A AND B (product)": 0.1,
                         "KL vs A OR B (mixture)": 1.5}, "OR samples": {"in 90% region of A": 0.6,
                                                                         "in 90% region of B": 0.5}},
        {**scores, "samples of learned E_A + E_B: KL vs exact product": 0.979,
         "samples of learned E_A + E_B: KL vs exact mixture": 0.835})


# -- section 5 and 6 ----------------------------------------------------------------------------------------------

def test_refinement_of_the_true_energy_reaches_the_exact_floor():
    target = E.gaussian()                       # correlated N(0, C): a = h / s^2 is small at h = 0.01
    grid = Grid2D((-4, 4), 24)
    fit_ = SimpleNamespace(model=TrueEnergy(target), spec=T.full_spec({"step_size": 0.01}))
    refine, floors = T.refinement(
        {"g": {"replay": fit_, "noise": fit_}}, {"g": target}, grid, n_chains=1000,
        checkpoints=(0, 10, 800), floor_repeats=3)
    kl = refine["g"]["replay"]["kl"]
    assert refine["g"]["replay"] == refine["g"]["noise"]              # both curves draw stream 6
    assert kl[0] > 10 * kl[-1] and kl[-1] < floors["g"][0] + 0.05     # from noise down to the exact floor
    text, worse = T.refinement_lines(refine, 10)
    assert worse == {"replay": [], "noise": []} and "after 10 steps (the training K)" in text


def test_refinement_lines_flag_a_model_that_gets_worse_with_more_steps():
    refine = {"t": {"replay": {"steps": [0, 20, 1000], "kl": [3.0, 0.5, 0.4]},
                    "noise": {"steps": [0, 20, 1000], "kl": [3.0, 0.4, 0.6]}}}
    text, worse = T.refinement_lines(refine, 20)
    assert worse == {"replay": [], "noise": ["t"]}
    assert "* **t**: replay model 0.500 nats after 20 steps (the training K), 0.400 after 1000; " \
           "noise-initialised model 0.400 -> 0.600." in text


def _run(model, log, gave_up=None):
    history = [r for r in log if r.get("event") != "rollback" or r.get("kept", True)]
    return {"log": log, "history": history, "gave_up": gave_up,
            "trainer": SimpleNamespace(model=model, iteration=sum(1 for r in log if "event" not in r))}


def test_divergence_summary_and_sentence():
    target = E.eight_gaussians()
    grid = Grid2D((-4, 4), 32)
    log = [{"iteration": 1, "max_abs_energy": 2.0, "e_pos": 0.0, "e_neg": 1.0},
           {"iteration": 2, "max_abs_energy": 90.0, "e_pos": 80.0, "e_neg": 81.0},
           {"event": "rollback", "iteration": 2, "lr": 0.05},
           {"iteration": 2, "max_abs_energy": 0.5, "e_pos": 0.1, "e_neg": 0.2}]
    runs = {"guard off": _run(TrueEnergy(target), log[:2]), "guard on": _run(TrueEnergy(target), log)}
    div = T.divergence_summary(runs, target, grid)
    on = div["guard on"]
    assert on["rollbacks"] == 1 and on["rollback_iterations"] == [2] and on["rollback_lrs"] == [0.05]
    assert on["peak_max_abs_energy"] == 90.0 and on["final_max_abs_energy"] == 0.5
    assert on["kl_true_learned"] == pytest.approx(0.0, abs=1e-9)        # the model is the true energy
    text = T.divergence_sentence(div, "eight_gaussians", base_kl=0.692)
    assert div["guard off"]["final_abs_gap"] == 1.0 and on["final_abs_gap"] == pytest.approx(0.1)
    assert "peaks at 90 and ends at 90, with |E(negatives) - E(data)| at 1." in text and "rolled back 1 time(s) (at iterations [2]" in text
    assert "finished all 3 iterations with max |E| 0.5" in text and "against 0.692 for the base run" in text
    assert "agree: 1 and 1 rollback events" in text
    assert "against" not in T.divergence_sentence(div, "eight_gaussians").split("nats on eight_gaussians")[1][:20]
    div["guard on"]["gave_up"] = "diverged 4 times"
    assert "gave up (diverged 4 times)" in T.divergence_sentence(div, "eight_gaussians")
    T.divergence_figure(runs, grid, 50.0)


def test_scaled_energy_divides_by_the_temperature():
    fit_ = SimpleNamespace(model=lambda x: x.sum(-1), temperature=4.0)
    assert T.scaled_energy(fit_)(torch.tensor([[2.0, 6.0]])).item() == 2.0
    assert math.isclose(T.temperature({"step_size": 0.5, "noise_std": 2.0}), 4.0)


def test_verdicts_over_seeds_say_whether_a_difference_is_beyond_the_spread():
    import ebmlib.chapters.training_2d as T

    def entry(fwd, rev, sd):
        return {"kl_true_learned": fwd, "kl_learned_true": rev, "sample_kl": 1.0, "mode_error": 0.1,
                "kl_true_learned_sd": sd, "kl_learned_true_sd": sd, "sample_kl_sd": 0.0, "mode_error_sd": 0.0,
                "seeds": 3, "mode_weights": [0.5, 0.5]}
    table = {"clear": {"replay": entry(0.1, 0.1, 0.01), "noise": entry(0.5, 0.5, 0.01)},
             "noisy": {"replay": entry(0.4, 0.4, 0.2), "noise": entry(0.5, 0.5, 0.2)}}
    text, result = T.replay_verdict(table)
    assert result["vs_noise_both"] == ["clear", "noisy"] and result["vs_noise_both_beyond_spread"] == ["clear"]
    assert "over 3 seeds" in text and "2 of 2" in text
    assert "beyond" in T._beyond_spread(entry(0.1, 0.1, 0.01), entry(0.5, 0.5, 0.01))
    assert "inside" in T._beyond_spread(entry(0.4, 0.4, 0.2), entry(0.5, 0.5, 0.2))
    assert T._beyond_spread(dict(entry(0.1, 0.1, 0.0), seeds=1), entry(0.5, 0.5, 0.0)) == ""
