"""Tests of ``ebmlib.chapters.ais_levers``: the lever study runs every lever on a model with a known log Z, costs
are counted right, the power-law extrapolation solves its own fit exactly, and the sentence tells the truth."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ebmlib.chapters import ais_levers as V
from ebmlib.core import ais

D, MU, SIGMA = 6, 0.5, 0.2


class Quadratic(nn.Module):
    """E(x) = |x - MU|^2 / (2 SIGMA^2): at temperature T, log Z on R^D is D/2 log(2 pi T SIGMA^2)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.w * (x - MU).pow(2).flatten(1).sum(-1) / (2 * SIGMA ** 2)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


LEVERS = (dict(n_temps=20), dict(n_temps=60), dict(n_temps=20, n_steps=2), dict(n_temps=20, n_leapfrog=8),
          dict(n_temps=20, t_factor=2.0), dict(n_temps=20, kernel_std=0.1))


def test_every_lever_runs_with_its_cost_and_temperature():
    base = ais.GaussianBase(torch.full((D,), 0.5), 0.3, box=(0.0, 1.0))
    buffer = (MU + SIGMA * torch.randn(30, D, generator=gen(1))).clamp(0, 1)
    model = Quadratic()
    rows = V.lever_study(model, buffer[:4], base, buffer, 1.0, LEVERS, n_chains=64, generator=gen(2),
                         pilot_chains=8, pilot_steps=1)
    assert [r["gradients"] for r in rows] == [100, 300, 200, 160, 100, 100]
    assert [r["temperature"] for r in rows] == [1.0, 1.0, 1.0, 1.0, 2.0, 1.0]
    assert not any(p.requires_grad for p in model.parameters()) and not model.training
    assert rows[3]["label"] == "K = 20, 8 leapfrog steps" and rows[4]["label"] == "K = 20, T x 2"
    assert rows[5]["label"].endswith("kernel estimate on the buffer, std 0.1")
    # an easy target: every lever keeps a useful ESS, and the bound sits near the truth (the box holds
    # nearly all of the mass: 2.5 SIGMA each side of MU)
    exact = D / 2 * math.log(2 * math.pi * SIGMA ** 2)
    for r in rows[:4]:
        assert r["ess"] > 64 / 10 and r["sd_log_w"] < 1.5
    mean_neg_e = -Quadratic()(buffer[:4]).mean().item()
    assert abs((mean_neg_e - rows[1]["upper"]) - exact) < 0.3
    with pytest.raises(ValueError, match="needs the model's buffer"):
        V.lever_study(model, buffer[:4], base, None, 1.0, [dict(n_temps=5, kernel_std=0.1)], n_chains=4)
    with pytest.raises(ValueError, match="sets n_temps"):
        V.lever_label(dict(n_leapfrog=3))
    with pytest.raises(ValueError, match="sets n_temps"):
        V.lever_label(dict(n_temps=3, step=2))
    with pytest.raises(ValueError, match="at least one lever"):
        V.lever_study(model, buffer[:4], base, buffer, 1.0, [], n_chains=4)


def fake(lever, sd, ess=1.0, seconds=None, n_chains=16):
    r = {**dict(n_steps=1, n_leapfrog=5, t_factor=1.0, kernel_std=None), **lever}
    g = r["n_temps"] * r["n_steps"] * r["n_leapfrog"]
    return dict(r, label=V.lever_label(lever), changed=sorted(set(lever) - {"n_temps"}), temperature=1e-4,
                n_chains=n_chains, gradients=g, ess=ess, sd_log_w=sd, upper=0.0,
                seconds=seconds if seconds is not None else 1e-3 * g * n_chains)


def test_the_power_law_fit_solves_for_the_useful_spread():
    rows = [fake(dict(n_temps=k), 100 * (5 * k) ** -0.5) for k in (100, 400, 1600)]
    fit = V.cost_to_useful(rows)
    assert fit["exponent"] == pytest.approx(0.5)
    assert fit["gradients"] == pytest.approx((100 / V.USEFUL_SD) ** 2)
    assert fit["seconds_per_chain"] == pytest.approx(1e-3 * (100 / V.USEFUL_SD) ** 2)
    assert V.USEFUL_SD == pytest.approx(math.sqrt(math.log(10)))       # n exp(-sd^2) = n / 10
    assert V.cost_to_useful(rows[:1]) is None
    rising = V.cost_to_useful([fake(dict(n_temps=100), 5.0), fake(dict(n_temps=300), 6.0)])
    assert rising["exponent"] < 0 and rising["gradients"] == math.inf
    # a spread that levels off: the rate is the last step's (100 -> 50 -> 45), never the fit through all rows
    slowing = [fake(dict(n_temps=k), sd) for k, sd in ((100, 100.0), (400, 50.0), (1600, 45.0))]
    fit = V.cost_to_useful(slowing)
    assert fit["exponent"] == pytest.approx(math.log(50 / 45) / math.log(4))
    assert fit["gradients"] == pytest.approx(8000 * (45 / V.USEFUL_SD) ** (1 / fit["exponent"]))


def test_families_and_the_sentence():
    rows = [fake(dict(n_temps=300), 30.0), fake(dict(n_temps=1000), 20.0), fake(dict(n_temps=300, n_steps=4), 29.0),
            fake(dict(n_temps=300, n_leapfrog=20), 18.0), fake(dict(n_temps=300, n_leapfrog=50), 15.0),
            fake(dict(n_temps=300, t_factor=10.0), 12.0), fake(dict(n_temps=300, kernel_std=0.1), 500.0)]
    assert [r["gradients"] for r in V._family(rows, "n_temps")] == [1500, 5000]
    assert [r["n_leapfrog"] for r in V._family(rows, "n_leapfrog")] == [5, 20, 50]
    text = V.levers_sentence(rows, "m")
    assert "**12.0 nats** (K = 300, T x 10" in text and "No lever tried reaches a useful ESS" in text
    assert "more intermediate distributions" in text and "longer HMC trajectories" in text
    rows[4]["sd_log_w"] = 19.0                              # 50 leapfrog steps no better than 20
    assert "with longer HMC trajectories the spread did not fall over the last step" in V.levers_sentence(rows, "m")
    rows[4]["sd_log_w"] = 15.0
    assert "with longer HMC trajectories the spread has all but stopped falling (cost^-0.20" in text
    rows[0]["ess"] = 3.0                      # a tenth of 16 chains, but a spread of 30 nats: one chain, and luck
    assert "No lever tried reaches a useful ESS" in V.levers_sentence(rows, "m")
    rows[0]["sd_log_w"] = 1.0
    assert "Rows that reached it: K = 300." in V.levers_sentence(rows, "m")
    assert V.levers_table(rows[:1]) == [["K = 300", "0.0001", "1,500", "3.0 of 16", "1.0", "0", "24"]]


def test_the_chapter_study_uses_the_chosen_or_else_the_ais_temperature():
    from types import SimpleNamespace
    base = ais.GaussianBase(torch.full((D,), 0.5), 0.3, box=(0.0, 1.0))
    buffer = (MU + SIGMA * torch.randn(20, D, generator=gen(4))).clamp(0, 1)
    trained = {"m": SimpleNamespace(model=Quadratic(), samples=buffer)}
    cfg = SimpleNamespace(lever_model="m", levers=(dict(n_temps=5), dict(n_temps=5, kernel_std=0.2)),
                          lever_chains=8, ais_settings=dict(pilot_chains=4, pilot_steps=1))
    study = V.chapter_levers(trained, {"m": dict(best=None, best_upper=2.0)}, buffer[:3], base, cfg, gen(5))
    assert study["temperature"] == 2.0 and not study["chosen"] and len(study["rows"]) == 2
    study = V.chapter_levers(trained, {"m": dict(best=0.5, best_upper=2.0)}, buffer[:3], base, cfg, gen(5))
    assert study["temperature"] == 0.5 and study["chosen"] and study["rows"][1]["kernel_std"] == 0.2


def test_the_figure_draws_each_family_as_a_line_each_other_lever_as_a_marker_and_the_useful_line():
    import matplotlib
    matplotlib.use("Agg")
    rows = [fake(dict(n_temps=300), 30.0), fake(dict(n_temps=1000), 20.0), fake(dict(n_temps=300, n_leapfrog=20), 25.0),
            fake(dict(n_temps=300, kernel_std=0.1), 500.0)]
    fig = V.levers_figure(dict(model="m", temperature=3e-5, rows=rows))
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and "3e-05" in ax.get_title() and not ax.texts
    lines = {line.get_label(): line for line in ax.lines}
    assert list(lines) == ["more temperatures K", "longer trajectories (leapfrog steps)",
                           "K = 300, kernel base, std 0.1", "useful: ESS a tenth of the chains"]
    assert list(lines["more temperatures K"].get_ydata()) == [30.0, 20.0]
    assert list(lines["longer trajectories (leapfrog steps)"].get_ydata()) == [30.0, 25.0]
    assert lines["useful: ESS a tenth of the chains"].get_ydata()[0] == pytest.approx(V.USEFUL_SD)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(lines)
