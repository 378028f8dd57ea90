"""The likelihood chapter's problems, drivers and verdicts against exact answers (ebmlib.chapters.likelihood)."""
import math

import pytest
import torch
from torch import nn

from ebmlib.chapters import likelihood as lk
from ebmlib.core import ais


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


# ---------------------------------------------------------------------------------------------------------
# Standard errors at ESS about 1, crossed bounds, and the verdicts built on them

class CentredEnergy(nn.Module):
    """E(x) = a |x - 0.5|^2: a Gaussian at the box's centre, a poor model of data piled against 0."""

    def __init__(self, a: float):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))

    def forward(self, x):
        return self.a * (x - 0.5).pow(2).flatten(1).sum(-1)


def centred_case():
    """Data near 0 in 16 pixels, a base fitted to them, and the EBM's exact mean log-likelihood at T."""
    shape = (1, 4, 4)
    box = lk.digit_box_problem(torch.full(shape, 0.1), base="uniform")
    data, base = box.sample(32, gen(0)), lk.fitted_base(box.sample(2000, gen(10)))

    def exact(t):     # exp(-a |x - 0.5|^2 / T) on [0, 1]^16 is a truncated Gaussian with std sqrt(T / 2a)
        return ais.GaussianBase(torch.full(shape, 0.5), math.sqrt(t / 2), box=(0.0, 1.0)).log_prob(data).mean().item()
    return data, base, exact


def test_temperature_curve_never_picks_a_temperature_whose_bounds_cross():
    """At T = 1e-4 the fixed HMC step is unstable, every proposal is rejected, and the annealing chain's model
    is the base itself: RAISE then returns the base's log-likelihood, 27,000 nats above the EBM's exact one and
    far above the AIS bound. The largest RAISE value sits at that grid edge; maximising it (the old rule) picks
    the edge and reports an inflated likelihood."""
    data, base, exact = centred_case()
    temps = [1e-4, 1e-2, 1.0]
    curve = lk.temperature_curve(CentredEnergy(1.0), data, base, temps, n_chains=16, n_temps=10,
                                 generator=gen(20), adapt=False, step_size=1.0)
    edge = 0
    assert curve["lower"][edge] == max(curve["lower"]), curve["lower"]            # the old choice
    assert curve["lower"][edge] == pytest.approx(base.log_prob(data).mean().item(), abs=0.5)
    assert curve["lower"][edge] > exact(temps[edge]) + 1000                       # not a bound on the EBM
    assert curve["lower"][edge] > curve["upper"][edge] + curve["tolerance"][edge]
    assert curve["crossed"] == [True, False, False], curve["crossed"]
    assert curve["best"] == 1.0, curve["best"]
    i = temps.index(curve["best"])
    assert curve["lower"][i] <= exact(1.0) <= curve["upper"][i] + lk.MARKOV_NATS, (curve, exact(1.0))


def test_temperature_curve_reports_no_temperature_when_every_one_crosses():
    data, base, _ = centred_case()
    curve = lk.temperature_curve(CentredEnergy(1.0), data, base, [1e-4], n_chains=16, n_temps=10,
                                 generator=gen(20), adapt=False, step_size=1.0)
    assert curve["crossed"] == [True] and curve["best"] is None, curve
    text = lk.temperature_sentence({"m": curve})
    assert "no likelihood is reported" in text and "m T = none" in text, text


def test_uncrossed_bounds_can_both_be_wrong():
    """The crossing test is necessary, not sufficient: with steps far too small the chains barely move, the
    bounds meet, and both lie far above the exact value (so the page must not call meeting bounds accurate)."""
    data, base, exact = centred_case()
    curve = lk.temperature_curve(CentredEnergy(1.0), data, base, [1.0], n_chains=16, n_temps=20,
                                 generator=gen(1), adapt=False, step_size=0.02)
    assert curve["best"] == 1.0 and abs(curve["upper"][0] - curve["lower"][0]) < 5, curve
    assert curve["lower"][0] > exact(1.0) + 10, (curve["lower"], exact(1.0))


def test_delta_method_se_is_a_function_of_the_ess_and_exactly_one_at_ess_one():
    """The AIS standard error sd(w) / (sqrt(n) mean w) = sqrt((n / ESS - 1) / (n - 1)): at ESS = 1 it is 1 whatever
    the weights' spread, which is why the chapter prints n/a below MIN_ESS."""
    p = lk.gaussian_problem(784)
    res = ais.ais_log_z(p.energy, p.base, 16, n_temps=2, generator=gen(0), pilot_steps=1)
    n = 16
    assert res.ess < 1.1, res.ess
    assert res.log_z_se == pytest.approx(math.sqrt((n / res.ess - 1) / (n - 1)), rel=1e-6)
    assert res.log_z_se == pytest.approx(1.0, abs=0.02)
    assert float(res.log_weights.max() - res.log_weights.min()) > 100     # the chains disagree wildly
    assert lk.measured_se(res.log_z_se, res.ess) is None
    assert lk.format_estimate(-1496.5, res.log_z_se, res.ess) == "-1496.50 ± n/a"
    assert lk.format_estimate(-14.27, 0.11, 67.0) == "-14.27 ± 0.11"
    assert lk.measured_se(0.3, lk.MIN_ESS) == 0.3 and lk.measured_se(0.3, lk.MIN_ESS - 0.1) is None
    with pytest.raises(ValueError, match="effective sample size"):
        lk.measured_se(0.1, 0.0)


def exact_row(k, lower, upper, lower_se=0.01, upper_se=0.01, ess_f=200.0, ess_r=200.0, exact=0.0):
    return dict(n_temps=k, exact=exact, lower=lower, upper=upper, lower_se=lower_se, upper_se=upper_se,
                gap=upper - lower, ess_forward=ess_f, ess_reverse=ess_r)


def test_exact_table_prints_na_below_min_ess():
    problems = {"gaussian_2d": lk.gaussian_problem(2)}
    rows = {"gaussian_2d": [exact_row(10, -1496.5, 415.5, 1.0, 1.0, 1.0, 1.0), exact_row(1000, -0.58, -0.57)]}
    table = lk.exact_table(problems, rows)
    assert table[0][3:5] == ["-1496.50 ± n/a", "415.50 ± n/a"] and table[1][3] == "-0.58 ± 0.01", table
    assert len(table[0]) == len(lk.EXACT_HEADER)


def test_bracketing_uses_the_markov_tolerance_where_no_se_exists():
    """An ESS-2 forward estimate 3.5 nats above the truth is not evidence of a bug (probability <= e^-3.5); the
    old rule (4 x the ESS-fixed SE 0.71) flagged it. One 6 nats above is flagged by either."""
    rows = {"a": [exact_row(10, 3.5, 1.0, lower_se=0.71, ess_f=2.0), exact_row(100, -0.01, 0.02)],
            "b": [exact_row(10, 6.0, 1.0, lower_se=1.0, ess_f=1.0)]}
    b = lk.bracketing(rows)
    assert b["runs"] == 3 and b["bracketed"] == 2 and b["failed"] == ["b K=10"], b
    assert b["sides"] == 6 and b["sides_with_se"] == 4, b      # the ESS-2 and ESS-1 forward sides have none
    rows["gaussian_50d"], rows["digit_box_uniform"], rows["digit_box_fitted"] = rows["a"], rows["a"], rows["a"]
    text = lk.exact_sentence(rows, [50])
    assert "(not: b K=10)" in text and "where its ESS is at least 10" in text and "no\nstandard error" not in text
    assert "within 4 standard errors)" not in text        # the old claim, made for every run


def bounds_row(lower, upper, ess=1.0, log_z_se=1.0, k=500, t=3e-5, n=16, lower_se=50.0):
    return dict(temperature=t, n_temps=k, n_chains=16, n_test=n, lower=lower, upper=upper, gap=upper - lower,
                lower_se=lower_se, log_z_se=log_z_se, ess=ess)


def test_crossing_tolerance_needs_no_standard_error():
    """log 100 (1 + 1/n): whatever the ESS or the spread of the RAISE values over the digits (which a tolerance
    of a few of the old per-digit standard errors, 3 x 48 nats for the committed replay run, let pass)."""
    r = bounds_row(1793.1, 732.0)
    assert lk.crossing_tolerance(r) == pytest.approx(math.log(100) * (1 + 1 / 16))
    assert lk.crossing_tolerance(bounds_row(0.0, 0.0, ess=200.0, lower_se=1e4, n=2)) == pytest.approx(
        1.5 * math.log(100))
    assert lk.bounds_cross(r) and "**cross** by 1061.1" in lk.bounds_status(r)
    near = bounds_row(2235.8, 2225.8)                        # the demo's replay model at K = 500: -10.0
    assert lk.bounds_cross(near) and "AIS upper bound only" in lk.bounds_status(near)
    noise = bounds_row(749.2, 748.2)                         # 1 nat: within what chance allows
    assert not lk.bounds_cross(noise) and "within noise" in lk.bounds_status(noise)
    assert lk.bounds_status(bounds_row(1.0, 2.0)) == "ordered"
    assert lk.choose_temperature([dict(r, temperature=3e-7), dict(noise, temperature=1e-4)]) == 1e-4
    assert lk.choose_temperature([r, near]) is None
    with pytest.raises(ValueError, match="n_test"):
        lk.crossing_tolerance(bounds_row(1.0, 2.0, n=0))


def test_replay_vs_pcd_compares_only_uncrossed_bounds():
    crossed = {"mnist_uncond_replay": [bounds_row(2000.0, 1000.0)],
               "mnist_uncond_pcd": [bounds_row(400.0, 480.0)]}
    text = lk.replay_vs_pcd_bullet(crossed, 1200)
    assert "makes no comparison" in text and "mnist_uncond_replay's bounds cross" in text, text
    assert "only its AIS upper bound, 1000.0, stands" in text, text
    fallback = {"mnist_uncond_replay": [bounds_row(2135.6, 2856.9, k=100), bounds_row(2235.8, 2225.8)],
                "mnist_uncond_pcd": [bounds_row(1783.7, 2808.8, k=100), bounds_row(2194.9, 2286.1)]}
    text = lk.replay_vs_pcd_bullet(fallback, 1200)                     # the demo's numbers: K = 500 crosses
    assert "At the largest K, mnist_uncond_replay's bounds cross at K = 500" in text, text
    assert "With K = 100, where both models' bounds are ordered" in text and "overlap" in text, text
    none = {"mnist_uncond_replay": [], "mnist_uncond_pcd": [bounds_row(400.0, 480.0)]}
    assert "has no temperature whose bounds do not cross" in lk.replay_vs_pcd_bullet(none, 1200)
    overlap = {"mnist_uncond_replay": [bounds_row(2200.0, 2230.0)], "mnist_uncond_pcd": [bounds_row(2196.1, 2210.2)]}
    text = lk.replay_vs_pcd_bullet(overlap, 1200)
    assert "overlap" in text and "does not reproduce" in text, text
    small = {"mnist_uncond_replay": [bounds_row(2228.6, 2225.7)],        # crossed within noise (2.9 nats)
             "mnist_uncond_pcd": [bounds_row(2196.1, 2210.2)]}
    text = lk.replay_vs_pcd_bullet(small, 1200)
    assert "by 16 nats" in text and "does not reproduce" in text and "as in the paper" not in text, text
    apart = {"mnist_uncond_replay": [bounds_row(1925.0, 2218.3)], "mnist_uncond_pcd": [bounds_row(380.9, 482.0)]}
    assert "as in the paper" in lk.replay_vs_pcd_bullet(apart, 1200)


def sens_entry(lower, upper, t=3e-5, grid=(3e-7, 3e-5, 1e-3)):
    return dict(bounds_row(lower, upper, t=t), curve={"temperatures": list(grid)})


def test_sensitivity_bullet_ranks_only_proper_intervals():
    sens = {"a": sens_entry(2000.0, 2100.0), "b": sens_entry(1500.0, 1600.0),
            "c": sens_entry(1800.0, 1797.0),                          # crossed within noise: an interval
            "d": sens_entry(1793.1, 732.0, t=3e-7),                   # crossed: no likelihood
            "e": dict(temperature=None, curve={"temperatures": [3e-7, 3e-5]})}
    text = lk.sensitivity_bullet(sens, 200)
    assert "3 of the 5 smaller models" in text, text
    assert "a > b" in text and "a > c" in text and "c > b" in text and "c > c" not in text, text
    assert "[1500, 2000]" in text and "For d the bounds at the chosen T cross" in text
    assert "For e no temperature of the grid qualifies" in text and "For d the chosen T lies at the edge" in text


def test_fig22_and_sensitivity_skip_models_without_a_temperature():
    from types import SimpleNamespace
    data, base, _ = centred_case()
    cfg = SimpleNamespace(t_grid=[1e-4], t_chains=16, t_temps=10, bound_temps=(5,), bound_chains=4,
                          sens_temps=5, sens_chains=4, ais_settings=dict(adapt=False, step_size=1.0))
    model = CentredEnergy(1.0)
    curves = lk.temperature_curves({"m": model}, data, base, cfg, gen(20), log=None)
    assert curves["m"]["best"] is None
    assert lk.fig22_bounds({"m": model}, curves, data, base, cfg, gen(1), log=None) == {"m": []}
    trained = {"m": SimpleNamespace(model=model, recipe=SimpleNamespace(width=8, n_iters=500,
                                                                        train=dict(alpha=1.0, step_size=10.0)))}
    sens = lk.sensitivity(trained, ["m"], data, data, base, cfg, gen(20), log=None)
    assert sens["m"]["temperature"] is None and "lower" not in sens["m"]
    row = lk.sensitivity_table(sens, trained)[0]
    assert row[2] == "none" and "no likelihood" in row[6] and len(row) == len(lk.SENSITIVITY_HEADER)
    assert "no likelihood" in lk.bounds_table({"mnist_uncond_pcd": []})[0][7]


def test_the_page_states_the_thresholds_the_code_uses():
    """The notebook's prose names MIN_ESS and the crossing tolerance; a change to either must change the page."""
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "notebooks" / "05_likelihood.py").read_text()
    assert f"Where the ESS is below {lk.MIN_ESS:g}" in text
    assert f"({lk.crossing_tolerance(dict(n_test=16)):.1f} for 16 digits)" in text
    assert f"$\\log 100 = {lk.MARKOV_NATS:.1f}$" in text


def likelihood_record(rep, pcd, sens):
    pre = dict(n_test=16, bound_chains=16, bound_temps=(100, 500), sens_temps=200, sens_chains=8)
    return {"metrics": {"preset": pre, "bounds": {"mnist_uncond_replay": rep, "mnist_uncond_pcd": pcd},
                        "sensitivity": sens}}


def test_paper_rows_claim_only_what_uncrossed_bounds_support():
    from ebmlib.results_page import PAPER_ITEMS, VERDICTS
    ok = {k: sens_entry(1500.0 + i, 2200.0) for i, k in enumerate(lk.PAPER_23)}
    apart = likelihood_record([bounds_row(1925.0, 2218.3)], [bounds_row(380.9, 482.0)], ok)
    rows = {r["item"]: r for r in lk.paper_rows(apart)}
    assert set(rows) <= {item for item, *_ in PAPER_ITEMS} and all(r["verdict"] in VERDICTS for r in rows.values())
    # separated as in the paper, but from ESS-1 runs: at most "partly"; overlapping ESS-1 intervals show nothing
    assert rows["Fig. 22"]["verdict"] == "partly reproduced" and "ESS below 10" in rows["Fig. 22"]["note"]
    assert rows["Fig. 23"]["verdict"] == "not reproduced" and "too weak" in rows["Fig. 23"]["note"]
    strong = {k: dict(v, ess=50.0) for k, v in ok.items()}
    rows = {r["item"]: r for r in lk.paper_rows(likelihood_record(
        [bounds_row(1925.0, 2218.3, ess=50.0)], [bounds_row(380.9, 482.0, ess=50.0)], strong))}
    assert rows["Fig. 22"]["verdict"] == "reproduced" and rows["Fig. 23"]["verdict"] == "reproduced"
    crossed = likelihood_record([bounds_row(2233.6, 2000.0)], [bounds_row(380.9, 482.0)],
                                {**ok, "sens_step_1000": sens_entry(1793.1, 732.0, t=3e-7)})
    rows = {r["item"]: r for r in lk.paper_rows(crossed)}
    assert rows["Fig. 22"]["verdict"] == "not reproduced" and "upper bound 2000 only" in rows["Fig. 22"]["ours"]
    assert rows["Fig. 23"]["verdict"] == "not reproduced" and "4 of 5" in rows["Fig. 23"]["note"]
    strong_partial = {k: dict(v, ess=50.0) for k, v in crossed["metrics"]["sensitivity"].items()}
    rows = {r["item"]: r for r in lk.paper_rows(likelihood_record([], [], strong_partial))}
    assert rows["Fig. 23"]["verdict"] == "partly reproduced"
    fallback = likelihood_record([bounds_row(2135.6, 2856.9, k=100), bounds_row(2235.8, 2225.8)],
                                 [bounds_row(1783.7, 2808.8, k=100), bounds_row(2194.9, 2286.1)], ok)
    row = lk.paper_rows(fallback)[0]
    assert row["verdict"] == "not reproduced" and "at K = 100, where both are ordered" in row["note"], row
    assert row["note"].endswith("overlap") and "upper bound 2226 only" in row["ours"], row
    missing = likelihood_record([], [bounds_row(380.9, 482.0)], ok)
    assert "bounds cross at every T" in lk.paper_rows(missing)[0]["ours"]
    lever = dict(label="K = 300", sd_log_w=18.0, ess=1.0, n_chains=16)
    with_levers = dict(missing, metrics=dict(missing["metrics"], levers=dict(model="m", rows=[
        lever, dict(lever, label="K = 300, 50 leapfrog steps", sd_log_w=12.5)])))
    note = lk.paper_rows(with_levers)[0]["note"]
    assert note.endswith("of 2 AIS levers tried on m, none reaches useful weights (smallest sd of "
                         "log w 12.5 nats, K = 300, 50 leapfrog steps)"), note
    with_levers["metrics"]["levers"]["rows"][0]["ess"] = 2.0           # n / 10 of 16 chains, at an sd of 18
    assert "none reaches" in lk.paper_rows(with_levers)[0]["note"]
    with_levers["metrics"]["levers"]["rows"][0]["sd_log_w"] = 1.2
    assert "some reach" in lk.paper_rows(with_levers)[0]["note"]


def test_useful_runs_need_ess_a_near_meeting_gap_and_bracketing():
    from ebmlib.chapters import likelihood as LL

    def row(k, ess_f, ess_r, lower, upper, exact=0.0):
        return dict(n_temps=k, n_chains=100, ess_forward=ess_f, ess_reverse=ess_r, lower=lower, upper=upper,
                    exact=exact, gap=upper - lower, lower_se=0.05, upper_se=0.05, seconds=1.0)
    rows = {"a": [row(10, 2, 2, -5, 5), row(100, 30, 9, -0.2, 0.2), row(1000, 40, 35, -0.3, 0.4)],
            "b": [row(10, 50, 50, -3, 3)],                       # enough ESS, bounds too far apart
            "c": [row(10, 50, 50, 0.5, 0.9)]}                    # close, but the lower side is above the truth
    found = LL.useful_runs(rows)
    assert found["a"]["n_temps"] == 1000 and found["b"] is None and found["c"] is None
    text = LL.useful_sentence(rows, {"m": [dict(seconds=2.0, n_temps=10, n_chains=4, n_test=2)]})
    assert "Reached by a at K = 1,000" in text and "not within the sweep by b" in text
    rows["digit_box_fitted"] = [row(1000, 40, 35, -0.3, 0.4)]
    text = LL.useful_sentence(rows, {"m": [dict(seconds=1.0, n_temps=5, n_chains=4, n_test=2),
                                           dict(seconds=2.0, n_temps=10, n_chains=4, n_test=2)]})
    assert "about **57 CPU-minutes per model**" in text    # the longest run: 2 s / (10 x (4 + 2)) x 1000 x 102 / 60


def test_probe_sentence_says_whether_the_ess_target_is_met():
    from ebmlib.chapters import likelihood as LL

    def row(ess, lower, upper):
        return dict(temperature=1e-5, n_temps=3000, n_chains=64, n_test=16, upper=upper, lower=lower,
                    gap=upper - lower, lower_se=5.0, log_z=0.0, log_z_se=0.1, ess=ess, acceptance=0.7, seconds=120.0)
    text = LL.probe_sentence({"a": row(10.0, 100.0, 200.0), "b": row(1.0, 300.0, 100.0), "c": None})
    assert text.startswith("At K = 3,000")
    assert "a: AIS ESS **10.0 of 64** chains (useful: the target is 6.4)" in text and "do not cross" in text
    assert "b: AIS ESS **1.0 of 64** chains (not useful" in text and "that cross" in text
    assert "c: no temperature, not run" in text


# --- Fig. 23 over training seeds ---------------------------------------------------------------------------------

def seeded_sensitivity(lowers: dict, crossed: tuple = ()) -> dict:
    """{seed: sensitivity} with each setting's RAISE bound lowers[key][seed] and an AIS bound 300 nats above it;
    (key, seed) pairs in ``crossed`` get bounds that cross."""
    out = {}
    for seed in range(len(next(iter(lowers.values())))):
        out[seed] = {k: (sens_entry(v[seed], v[seed] - 100.0) if (k, seed) in crossed
                         else sens_entry(v[seed], v[seed] + 300.0)) for k, v in lowers.items()}
    return out


def test_seed_spread_separates_settings_only_beyond_the_seeds_spread():
    keys = list(lk.PAPER_23)
    lowers = {k: [1800.0, 1810.0, 1790.0] for k in keys}
    lowers[keys[0]] = [2000.0, 2010.0, 1990.0]                         # 200 nats above, sd 10: apart
    lowers[keys[1]] = [1700.0, 1900.0, 1850.0]                         # within its own wide spread of the rest
    by_seed = seeded_sensitivity(lowers, crossed=((keys[4], 2),))
    spread = lk.seed_spread(by_seed)
    assert spread[keys[0]]["lower_mean"] == pytest.approx(2000.0) and spread[keys[0]]["lower_sd"] == pytest.approx(10.0)
    assert spread[keys[4]]["crossed"] == 1 and spread[keys[4]]["lower"] == [1800.0, 1810.0]
    pairs = lk.apart_pairs(spread)
    assert {(keys[0], k) for k in keys[1:]} <= set(pairs)               # the high setting above every other
    assert all(c != keys[0] for _, c in pairs)                          # nothing above it: the right sign
    assert not any(keys[1] in p for p in pairs if p[0] != keys[0])     # the wide one is inside the spread
    header, rows = lk.seeds_table(by_seed)
    assert header[1:4] == ["seed 0", "seed 1", "seed 2"] and rows[0][-2] == "2000 ± 10"
    assert rows[4][3].startswith("cross") and rows[4][-2] == "1805 ± 7 (2 of 3 seeds)"
    assert all(len(r) == len(header) for r in rows)
    text = lk.seeds_sentence(by_seed)
    assert "14 of 15 runs have ordered bounds" in text and f"{keys[0]} > {keys[2]}" in text, text
    same = lk.seeds_sentence(seeded_sensitivity({k: [1800.0, 1800.0, 1800.0] for k in keys}))
    assert "every difference between settings is inside the seeds' spread" in same, same


def test_seed_spread_with_one_ordered_seed_claims_no_spread():
    keys = list(lk.PAPER_23)
    by_seed = seeded_sensitivity({k: [1800.0 + 10 * i, 1900.0] for i, k in enumerate(keys)},
                                 crossed=tuple((k, 1) for k in keys))
    spread = lk.seed_spread(by_seed)
    assert lk.apart_pairs(spread) == [] and lk.seeds_table(by_seed)[1][0][-2] == "1800 (one seed)"
    assert "too few settings have two ordered seeds" in lk.seeds_sentence(by_seed)


def test_paper_rows_note_the_seeds():
    keys = list(lk.PAPER_23)
    ok = {k: sens_entry(1500.0 + i, 2200.0) for i, k in enumerate(keys)}
    record = likelihood_record([bounds_row(1925.0, 2218.3)], [bounds_row(380.9, 482.0)], ok)
    lowers = {k: [1800.0, 1805.0, 1795.0] for k in keys}
    lowers[keys[3]] = [2100.0, 2105.0, 2095.0]
    record["metrics"]["sensitivity_seeds"] = seeded_sensitivity(lowers)
    note = lk.paper_rows(record)[1]["note"]
    assert f"over 3 training seeds, seed-mean RAISE bounds apart: {keys[3]} > {keys[0]}" in note, note
    record["metrics"]["sensitivity_seeds"] = {str(s): v for s, v in seeded_sensitivity(
        {k: [1800.0, 1805.0, 1795.0] for k in keys}).items()}                # JSON keys are strings
    assert lk.paper_rows(record)[1]["note"].endswith("inside the seeds' spread")


def test_fig22_seeds_note_compares_the_replay_and_pcd_models_over_seeds():
    """Fig. 22 over seeds: any model keys work (not only Fig. 23's); the replay model far above PCD in both bounds
    is apart, the same models inside each other's spread are not; the results page carries the note."""
    apart = seeded_sensitivity({"mnist_uncond_replay": [2000.0, 2010.0, 1990.0],
                                "mnist_uncond_pcd": [1800.0, 1790.0, 1810.0]})
    pre = dict(sens_temps=200, sens_chains=8)
    assert set(lk.seed_spread(apart)) == {"mnist_uncond_replay", "mnist_uncond_pcd"}
    note = lk.fig22_seeds_note(apart, pre)
    assert note.startswith("over 3 training seeds at K = 200, 8 AIS chains: mnist_uncond_replay [2000 ± 10, 2300 ± 10]")
    assert "mnist_uncond_replay > mnist_uncond_pcd (lower)" in note and "(upper)" in note
    assert "mnist_uncond_pcd > mnist_uncond_replay" not in note
    inside = seeded_sensitivity({"mnist_uncond_replay": [2000.0, 1800.0, 1900.0],
                                 "mnist_uncond_pcd": [1850.0, 1950.0, 1900.0]})
    assert lk.fig22_seeds_note(inside, pre).endswith("every difference is inside the seeds' spread")
    ok = {k: sens_entry(1500.0 + i, 2200.0) for i, k in enumerate(lk.PAPER_23)}
    record = likelihood_record([bounds_row(1925.0, 2218.3)], [bounds_row(380.9, 482.0)], ok)
    record["metrics"]["fig22_seeds"] = {str(s): v for s, v in apart.items()}
    record["metrics"]["preset"].update(pre)
    assert "over 3 training seeds at K = 200" in lk.paper_rows(record)[0]["note"]


def test_sensitivity_models_load_another_seed_from_the_shipped_seed_folder(tmp_path, monkeypatch):
    """Seed 1's Fig. 23 models are read from ``checkpoints/seed_1/`` when they are there: nothing is trained."""
    from ebmlib.presets import preset
    cfg = preset("05_likelihood", "smoke")
    shipped, out = tmp_path / "shipped", tmp_path / "out"
    lk.train_models(cfg, 1, only=list(lk.PAPER_23), out_dir=shipped / "seed_1", shipped_dir=None, progress=False)
    monkeypatch.setattr(lk, "SHIPPED_DIR", shipped)
    own = {"sens_l2_1": object()}
    by_seed = lk.sensitivity_models(cfg, (0, 1), own, 0, out, progress=False)
    assert by_seed[0] is own and set(by_seed[1]) == set(lk.PAPER_23)
    assert all(t.origin().startswith("loaded") for t in by_seed[1].values()), [t.origin() for t in by_seed[1].values()]
    assert not any((out / "seed_1").glob("*.pt"))


def test_every_shipped_seed_of_the_fig23_models_has_its_demo_recipe():
    """The Fig. 23 models of every demo seed are shipped (seed 0 in checkpoints/, the others in seed_<s>/), each
    made by exactly the demo recipe for that seed, with its whole history."""
    from ebmlib.core.image_ebm import image_recipes
    from ebmlib.core.recipes import SHIPPED_DIR, load_trained
    from ebmlib.presets import preset
    cfg = preset("05_likelihood", "demo")
    assert len(cfg.sens_seeds) >= 3
    for seed in cfg.sens_seeds:
        recipes = image_recipes(cfg.models, seed)
        folder = SHIPPED_DIR if seed == 0 else SHIPPED_DIR / f"seed_{seed}"
        for name in (*lk.PAPER_23, *lk.MAIN_MODELS):   # Fig. 22's two models are owed seeds too
            t = load_trained(recipes[name], (folder,))
            assert t is not None, f"no checkpoint of {name} (seed {seed}) made by its demo recipe in {folder}"
            assert len(t.history) == recipes[name].n_iters, (name, seed)
