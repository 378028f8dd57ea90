"""Chapter 06's verdicts over training seeds (ebmlib.chapters.ood_robustness.seeds) and the core rule they use
(ebmlib.core.seeds): a seed mean differs from its reference only beyond two standard errors."""
import copy
import json
import math
from pathlib import Path

import pytest

import ebmlib.chapters.ood_robustness as O
from ebmlib.chapters.ood_robustness import report as R
from ebmlib.chapters.ood_robustness import seeds as S
from ebmlib.core.seeds import beyond_spread, mean_sd, seed_folders

RESULTS = Path(__file__).resolve().parents[1] / "book" / "results" / "06_ood_robustness.json"


def test_mean_sd_is_the_sample_mean_and_sd():
    mean, sd = mean_sd([1.0, 2.0, 6.0])
    assert mean == pytest.approx(3.0) and sd == pytest.approx(math.sqrt(7.0))   # (4 + 1 + 9) / 2
    assert math.isnan(mean_sd([5.0])[1])
    with pytest.raises(ValueError, match="at least one value"):
        mean_sd([])


def test_beyond_spread_uses_two_standard_errors_with_its_sign():
    # mean 1, sd 1, n 4: SE 0.5, so the margin is 1.0; a reference at -0.01 is beyond it, at 0.01 inside
    vals = [0.0, 0.0, 2.0, 2.0]
    assert mean_sd(vals)[1] == pytest.approx(2 / math.sqrt(3))   # sample sd (n - 1), not 1
    se = 2 / math.sqrt(3) / 2
    assert beyond_spread(vals, 1 - 2 * se - 1e-6) == 1 and beyond_spread(vals, 1 - 2 * se + 1e-6) == 0
    assert beyond_spread(vals, 1 + 2 * se + 1e-6) == -1
    assert beyond_spread([3.0], 0.0) == 0                  # one seed has no spread
    assert beyond_spread([0.1, 0.1, 0.1], 0.0) == 1        # no spread at all: any difference counts


def test_seed_folders_name_the_seed_under_both_roots(tmp_path):
    f = seed_folders(tmp_path / "ship", tmp_path / "out", 2)
    assert f == dict(shipped_dir=tmp_path / "ship" / "seed_2", out_dir=tmp_path / "out" / "seed_2")


def _record(gains, auroc_mnist, clean=0.9, undefended=(0.6, 0.1), gap=1e-3, closest=0.03):
    eps = [0.0, 0.1, 0.2]
    worst = [clean, *[u + g for u, g in zip(undefended, gains)]]
    return dict(auroc={"mnist": {"mnist EBM (unconditional, replay)": auroc_mnist,
                                 "mnist EBM (conditional, free energy)": auroc_mnist - 0.01}},
                fig10=dict(gap=gap, closest=closest),
                defence={"linf": dict(eps=eps, worst=worst, undefended=[clean, *undefended])})


def test_a_defence_gain_inside_the_seeds_spread_is_not_called_a_gain():
    steady = {0: _record((0.08, 0.05), 0.97), 1: _record((0.06, 0.04), 0.96), 2: _record((0.07, 0.05), 0.98)}
    assert S.fig11_seed_verdict(steady) == "partly reproduced"
    noisy = {0: _record((0.08, 0.0), 0.97), 1: _record((-0.06, 0.0), 0.96), 2: _record((0.02, 0.0), 0.98)}
    assert S.fig11_seed_verdict(noisy) == "not reproduced"
    assert "inside the spread" in S.fig11_seed_note(noisy, "linf")
    worse = {0: _record((0.08, -0.05), 0.97), 1: _record((0.07, -0.04), 0.96), 2: _record((0.08, -0.05), 0.98)}
    assert S.fig11_seed_verdict(worse) == "not reproduced"   # a gain at one eps, a loss beyond the spread at another
    gains = S.defence_gains(steady, "linf")
    assert list(gains) == [0.1, 0.2] and gains[0.1] == pytest.approx([0.08, 0.06, 0.07])


def test_fig9_over_seeds_needs_the_ebm_above_the_baseline_beyond_the_spread():
    by_seed = {0: _record((0, 0), 0.97), 1: _record((0, 0), 0.95), 2: _record((0, 0), 0.96)}
    assert S.best_scorer(by_seed, "mnist") == "mnist EBM (unconditional, replay)"
    assert S.fig9_seed_verdict(by_seed, {"mnist": 0.78}) == "reproduced"
    assert S.fig9_seed_verdict(by_seed, {"mnist": 0.955}) == "not reproduced"   # 0.96 +- 0.01 / sqrt(3)
    assert "inside the spread" in S.fig9_seed_note(by_seed, {"mnist": 0.955})


def test_seed_tables_have_one_row_per_seed_and_a_mean_row():
    by_seed = {0: _record((0.08, 0.05), 0.97), 1: _record((0.06, 0.04), 0.96)}
    header, rows = S.auroc_seed_table(by_seed, {"mnist": 0.78})
    assert header[0] == "seed" and len(header) == 4 and [r[0] for r in rows] == ["0", "1", "mean ± sd"]
    assert rows[-1][1] == "0.965 ± 0.007" and rows[-1][-1] == "0.780"
    header, rows = S.defence_seed_table(by_seed, "linf")
    assert header == ["seed", "clean", "eps 0.1", "eps 0.2"]
    assert rows[0][2] == "68% / 60%" and rows[-1][2] == "gain +7 ± 1 points"
    text = S.seeds_sentence(by_seed, {"mnist": 0.78}, ["linf"], ["linf"])
    assert text.startswith("Over 2 training seeds") and "L-inf" in text and "30 to 30 times" in text
    assert "against its worst attack, L-inf" in text
    assert "worst transfer attack" in S.seeds_sentence(by_seed, {"mnist": 0.78}, ["linf"], [])


def test_paper_rows_decide_over_the_seeds_json_round_trip():
    """The committed demo record, with seeds added: the verdicts follow the seeds (keys are strings after JSON)."""
    record = json.loads(RESULTS.read_text())
    m = record["metrics"]
    single = {r["item"]: r for r in R.paper_rows(record)}
    steady = {0: _record((0.08, 0.05), 0.97), 1: _record((0.06, 0.04), 0.96), 2: _record((0.07, 0.05), 0.98)}
    for r in steady.values():
        r["auroc"]["fashion"] = {"fashion EBM (unconditional, replay)": 0.5}
    with_seeds = copy.deepcopy(record)
    with_seeds["metrics"]["seeds"] = json.loads(json.dumps(steady))
    rows = {r["item"]: r for r in R.paper_rows(with_seeds)}
    assert rows["Fig. 11"]["verdict"] == "partly reproduced" and "3 seeds" in rows["Fig. 11"]["data"]
    assert rows["Fig. 9"]["verdict"] == "partly reproduced"   # fashion's EBM (0.5) is below its PCA baseline
    assert rows["Fig. 10"]["verdict"] == "reproduced" and "30.0-30.0 times" in rows["Fig. 10"]["note"]
    assert rows["Fig. 9"]["ours"] == single["Fig. 9"]["ours"]   # the single run's numbers stay as they were
    noisy = {s: _record((g, 0.0), 0.97, gap=gap) for s, g, gap in ((0, 0.08, 1e-3), (1, -0.06, 1e-2), (2, 0.02, 1e-3))}
    for r in noisy.values():
        r["auroc"]["fashion"] = {"fashion EBM (unconditional, replay)": 0.9}
    with_seeds["metrics"]["seeds"] = json.loads(json.dumps(noisy))
    rows = {r["item"]: r for r in R.paper_rows(with_seeds)}
    assert rows["Fig. 11"]["verdict"] == "not reproduced" and "inside the spread" in rows["Fig. 11"]["note"]
    assert rows["Fig. 10"]["verdict"] == "not reproduced"     # seed 1's test images sit only 3x closer
    assert rows["Fig. 9"]["verdict"] == "reproduced"
    assert m["preset"]["ood_in"] == ["mnist", "fashion"]


def test_seed_models_load_another_seed_from_the_shipped_seed_folder(tmp_path, monkeypatch):
    """Seed 1's models are read from ``checkpoints/seed_1/`` when they are there: nothing is trained."""
    from ebmlib.presets import preset
    cfg = preset("06_ood_robustness", "smoke")
    shipped, out = tmp_path / "shipped", tmp_path / "out"
    O.train_models(cfg, 1, out_dir=shipped / "seed_1", shipped_dir=None, progress=False)
    monkeypatch.setattr(O, "SHIPPED_DIR", shipped)
    own = {"mnist_uncond_replay": object()}
    by_seed = O.seed_models(cfg, (0, 1), own, 0, out, progress=False)
    assert by_seed[0] is own and set(by_seed[1]) == set(cfg.models)
    assert all(t.origin().startswith("loaded") for t in by_seed[1].values()), [t.origin() for t in by_seed[1].values()]
    assert not any((out / "seed_1").glob("*.pt"))


def test_every_shipped_seed_of_the_chapter_models_has_its_demo_recipe():
    """Chapter 06's three models of every demo seed are shipped (seed 0 in checkpoints/, the others in
    seed_<s>/), each made by exactly the demo recipe for that seed, with its whole history."""
    from ebmlib.core.image_ebm import image_recipes
    from ebmlib.core.recipes import SHIPPED_DIR, load_trained
    from ebmlib.presets import preset
    cfg = preset("06_ood_robustness", "demo")
    assert len(cfg.seeds) >= 3
    for seed in cfg.seeds:
        recipes = image_recipes(cfg.models, seed)
        folder = SHIPPED_DIR if seed == 0 else SHIPPED_DIR / f"seed_{seed}"
        for name, recipe in recipes.items():
            t = load_trained(recipe, (folder,))
            assert t is not None, f"no checkpoint of {name} (seed {seed}) made by its demo recipe in {folder}"
            assert len(t.history) == recipe.n_iters, (name, seed)
