"""Tests of ebmlib.chapters.sampling (chapter 01): the closed forms, the experiments against exact answers, and
the generated tables and sentences on hand-made inputs."""
import math

import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch

from ebmlib.chapters import sampling as chap
from ebmlib.core import energies as E
from ebmlib.core import metrics as M
from ebmlib.core import samplers as S

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


# -- closed forms ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("h,s", [(0.1, 1.0), (0.7, 1.0), (1.8, 1.0), (0.05, 0.4)])
def test_gaussian_variances_are_the_fixed_points_of_the_linear_chains(h, s):
    ula, paper = chap.gaussian_variances(h, s)
    a = h / s ** 2
    assert ula == pytest.approx((1 - a) ** 2 * ula + 2 * h, rel=1e-12)     # v = (1 - a)^2 v + 2h
    assert paper == pytest.approx(ula - 2 * h, rel=1e-9, abs=1e-12)        # read off half a step later
    assert ula > s ** 2                                                    # ULA is always too wide


def test_gaussian_variances_refuse_a_diverging_step():
    chap.gaussian_variances(1.0, 1.0)                                      # a = 1: paper order variance 0
    assert chap.gaussian_variances(1.0, 1.0)[1] == 0.0
    for h in (0.0, -0.1, 2.0, 3.0):
        with pytest.raises(ValueError, match=repr(h)):
            chap.gaussian_variances(h, 1.0)


def test_measured_ula_bias_matches_the_closed_form_and_mala_has_none():
    bias = chap.ula_bias((0.5, 1.4), n_chains=3000, burn_in=30, n_steps=60)
    for i, h in enumerate(bias["h"]):
        ula, paper = chap.gaussian_variances(h)
        assert bias["theory_ula"][i] == pytest.approx(ula) and bias["theory_paper"][i] == pytest.approx(paper)
        assert bias["ULA"][i] == pytest.approx(ula, rel=0.05)
        assert bias["paper"][i] == pytest.approx(paper, rel=0.05, abs=0.01)
        assert bias["MALA"][i] == pytest.approx(1.0, abs=0.05)
    assert 0 < bias["MALA acceptance"][1] < bias["MALA acceptance"][0] <= 1      # larger step, more rejections
    assert chap.bias_rows(bias)[0][0] == "0.5" and len(chap.bias_rows(bias)[0]) == len(chap.BIAS_HEADER)
    assert "within" in chap.bias_sentence(bias) and "from 0.00" not in chap.bias_sentence(bias)


# -- section 1 and 2 -----------------------------------------------------------------------------------------

def test_log_z_rows_recover_zero_and_the_gaussian_normaliser():
    rows = chap.log_z_rows({"two_moons": E.two_moons(), "eight_gaussians": E.eight_gaussians()}, 120, s_check=1.3)
    assert [r[0] for r in rows[:2]] == ["two_moons", "eight_gaussians"]
    assert all(abs(r[1]) < 1e-3 and r[2] == 0.0 for r in rows[:2])
    assert "|" not in rows[-1][0]                                          # it sits in a Markdown table
    assert rows[-1][1] == pytest.approx(math.log(2 * math.pi * 1.3 ** 2), abs=1e-3)
    assert rows[-1][2] == pytest.approx(math.log(2 * math.pi * 1.3 ** 2), abs=1e-12)


def test_exact_floors_use_stream_1_for_every_target_and_predict_the_bias():
    targets = {"two_moons": E.two_moons(), "eight_gaussians": E.eight_gaussians()}
    floors = chap.exact_floors(targets, ["eight_gaussians", "two_moons"], 20, 2000, 4)
    for name in ("eight_gaussians", "two_moons"):
        m, sd = M.exact_sample_floor(targets[name], M.Grid2D(targets[name].bounds, 20), 2000, 4,
                                     generator=torch.Generator().manual_seed(1))
        assert floors[name]["mean"] == m and floors[name]["sd"] == sd
        assert floors[name]["naive"] == pytest.approx((400 - 1) / 4000)
        assert floors[name]["predicted"] == pytest.approx(m, rel=0.3)
    f = floors["eight_gaussians"]
    assert chap.floor_rows(floors)[0] == ["eight_gaussians", f"{f['mean']:.4f} ± {f['sd']:.4f}",
                                          f"{f['predicted']:.4f}", f"{f['naive']:.4f}"]


def test_compare_samplers_continues_chains_across_checkpoints_exactly():
    target = E.two_moons()
    rec = chap.compare_samplers(target, 0.15, n_chains=150, checkpoints=(0, 3, 10), grid_n=20, mmd_points=100,
                                stuck_repeats=2)
    assert set(rec) == set(chap.sampler_suite(0.15)) | {"_exact", "_stuck"}
    x0 = chap.uniform_start(150, *target.bounds, torch.Generator().manual_seed(2))
    grid = M.Grid2D(target.bounds, 20)
    for label, sampler in chap.sampler_suite(0.15).items():
        one_run = sampler.run(target.energy, x0, 10, generator=torch.Generator().manual_seed(4))
        assert torch.equal(rec[label]["final"], one_run.x), label          # 0 -> 3 -> 10 is one 10-step run
        assert rec[label]["kl"][0] == pytest.approx(M.grid_kl(x0, target, grid))   # same start for all
        assert rec[label]["steps"] == [0, 3, 10]
    assert {k: rec[k]["evals_per_step"] for k in chap.sampler_suite(0.15)} == \
        {"RWMH": 2, "ULA": 1, "MALA": 2, "HMC": 6, "Langevin (A.7)": 1}
    assert rec["ULA"]["acceptance"] is None and 0 < rec["MALA"]["acceptance"] <= 1
    assert sum(rec["_stuck"]["shares"]) == pytest.approx(1.0)
    exact = target.sample(150, generator=torch.Generator().manual_seed(5))
    assert rec["_exact"]["kl"] == pytest.approx(M.grid_kl(exact, target, grid))
    rows = chap.compare_rows({"two_moons": rec}, {"two_moons": target})
    assert len(rows) == 7 and all(len(r) == len(chap.COMPARE_HEADER) for r in rows)
    metrics = chap.compare_metrics({"two_moons": rec}, {"two_moons": {"mean": 0.1, "sd": 0.01}}, 150)
    assert "final" not in metrics["compare"]["two_moons"]["ULA"]           # no tensors in the metrics file
    assert chap.compare_line("two_moons", rec, 150).startswith("two_moons: 5 samplers x 10 steps x 150 chains")
    with pytest.raises(ValueError, match="checkpoints"):
        chap.compare_samplers(target, 0.15, n_chains=10, checkpoints=(5, 3), grid_n=10, mmd_points=5,
                              stuck_repeats=1)


def test_floor_notes_split_samplers_at_three_standard_deviations():
    rec = {"A": {"kl": [1.0, 0.1299], "weight_error": 0.01, "steps": [0, 100]},
           "B": {"kl": [1.0, 0.1301], "weight_error": 0.02, "steps": [0, 100]},
           "_stuck": {"kl": 0.2}}
    text = chap.floor_notes({"t": rec}, {"t": {"mean": 0.1, "sd": 0.01}})   # bound 0.1 + 3 * 0.01 = 0.13
    assert "floor (0.100 ± 0.010): A; above it: B (0.130, mode weights off by up to 0.020)" in text
    assert "after 100 steps" in text and "score 0.200" in text


# -- section 4 ------------------------------------------------------------------------------------------------

def test_barrier_height_of_far_modes_matches_the_saddle_approximation():
    d, s = 8.0, 0.5
    x_star = -s ** 2 * math.log(0.7 / 0.3) / d        # where the two weighted components are equal
    expected = (d / 2 - x_star) ** 2 / (2 * s ** 2) - math.log(2)       # two equal terms at the saddle
    assert chap.barrier_height(E.two_modes(separation=d), d) == pytest.approx(expected, abs=0.02)
    heights = [chap.barrier_height(E.two_modes(separation=x), x) for x in (2.0, 3.0, 5.0, 8.0)]
    assert heights == sorted(heights) and heights[0] > 0                 # it grows like d^2


def test_a_stuck_sampler_keeps_the_mode_shares_of_its_start():
    # 100 chains at the left mode, 300 at the right, 70 nats apart: the left weight stays 1/4, not 0.3
    x0 = torch.cat([torch.tensor([[-6.0, 0.0]]).repeat(100, 1), torch.tensor([[6.0, 0.0]]).repeat(300, 1)])
    mix = chap.mode_mixing((12.0,), n_chains=400, n_steps=100, x0=x0)
    assert mix["init"] == [pytest.approx(0.25)] and mix["truth"] == pytest.approx(0.3)
    for label in chap.STYLES:
        assert mix[label][0] == pytest.approx(0.25, abs=1e-4), label
    header, rows = chap.mixing_rows(mix)
    assert header[3:-1] == list(chap.STYLES) and rows[0][0] == "12"


def test_a_low_barrier_lets_mala_find_the_true_weights():
    x0 = torch.tensor([[0.75, 0.0]]).repeat(400, 1)          # every chain starts in the right mode
    mix = chap.mode_mixing((1.5,), n_chains=400, n_steps=300, x0=x0)
    assert mix["init"][0] < 0.25
    assert mix["MALA"][0] == pytest.approx(0.3, abs=0.05)
    assert mix["Langevin (A.7)"][0] == pytest.approx(mix["init"][0], abs=0.05)   # too cold to cross


def test_uniform_start_of_mode_mixing_is_stream_7():
    mix = chap.mode_mixing((3.0,), n_chains=200, n_steps=1)
    x0 = chap.uniform_start(200, -5.0, 5.0, torch.Generator().manual_seed(7))
    assert mix["init"][0] == pytest.approx(M.mode_weights(x0, E.two_modes(separation=3.0))[0].item())
    with pytest.raises(ValueError, match="x0"):
        chap.mode_mixing((3.0,), n_chains=200, n_steps=1, x0=x0[:10])


def test_mixing_sentence_reads_the_first_and_last_separation():
    mix = {"separation": [1.5, 5.0], "barrier": [0.9, 12.2], "init": [0.5, 0.51], "truth": 0.3,
           "RWMH": [0.31, 0.49], "ULA": [0.32, 0.5], "MALA": [0.29, 0.51], "HMC": [0.3, 0.51],
           "Langevin (A.7)": [0.47, 0.52]}
    text = chap.mixing_sentence(mix)
    assert "ends within 0.020 of the true weight 0.30" in text
    assert "within 0.020 of the share they started with, 0.510" in text
    assert "by more than 0.030" in text


def test_trajectory_figure_counts_chains_that_visit_both_modes():
    _, crossed = chap.trajectory_figure((1.0, 12.0), n_chains=4, n_steps=300)
    assert crossed[12.0] == 0                          # a 70-nat barrier is never crossed
    assert crossed[1.0] == 4                           # one merged mode: every chain wanders across


# -- section 5 ------------------------------------------------------------------------------------------------

def test_noise_step_grid_shapes_and_temperatures():
    fig, panel = chap.noise_step_grid(E.eight_gaussians(), (0.005, 0.02), (0.05, 0.2, 0.4), n_chains=100,
                                      n_steps=5, plot_n=20, score_n=15, floor_repeats=2)
    assert len(panel["kl"]) == 2 and all(len(r) == 3 for r in panel["kl"])
    assert panel["temperature"][1][1] == pytest.approx(0.2 ** 2 / (2 * 0.02))
    assert len(fig.axes) == 6 and panel["chains"] == 100 and len(panel["floor"]) == 2


def test_grid_sentence_names_the_best_cell_and_the_t1_diagonal():
    panel = {"step_size": [0.00125, 0.005], "noise_std": [0.005, 0.05, 0.1], "chains": 1500, "floor": (0.175, 0.01),
             "kl": [[2.2, 0.167, 0.3], [2.21, 0.25, 0.188]],
             "temperature": [[0.01, 1.0, 4.0], [0.0025, 0.25, 1.0]]}
    text = chap.grid_sentence(panel)
    assert text.startswith("Lowest KL in the grid: 0.167 at h = 0.00125, σ = 0.05 (T = 1)")
    assert "At T = 1: KL 0.167 for h = 0.00125, KL 0.188 for h = 0.005." in text
    assert "σ = 0.005, the KL is 2.20 to 2.21 at every step size" in text
    assert "σ = 0.1, 0.19 to 0.30" in text


# -- inputs ---------------------------------------------------------------------------------------------------

def test_bad_inputs_name_the_value():
    with pytest.raises(ValueError, match="-1"):
        chap.sampler_suite(-1)
    with pytest.raises(ValueError, match="0"):
        chap.uniform_start(0, -1.0, 1.0, torch.Generator())
    with pytest.raises(ValueError, match="low < high"):
        chap.uniform_start(5, 1.0, 1.0, torch.Generator())
    assert isinstance(chap.sampler_suite(0.25)["Langevin (A.7)"], S.PaperLangevin)
    assert chap.sampler_suite(0.25)["Langevin (A.7)"].step_size == chap.A7_LANGEVIN["step_size"] == 10.0
