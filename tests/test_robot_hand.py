"""Chapter 07's recipe layer, its evaluation (test halves, the truth-against-truth floor) and its verdicts.

Synthetic trajectories of the hand's shapes stand in for the MuJoCo data (no simulator needed).
"""
import numpy as np
import pytest
import torch

from ebmlib.chapters import robot_hand as D
from ebmlib.core.recipes import load_or_train
from ebmlib.data import hand
from ebmlib.presets import preset
from hand_walk import walk  # noqa: E402


def _walk(n=40, length=6, seed=0, drift=0.0):
    return walk(n, length, seed, drift)


def _hand_data(n=48, length=6, seed=0) -> D.HandData:
    data = _walk(n, length, seed)
    train, test = hand.split(data, test_fraction=5 / 12, seed=0)
    train, val = hand.split(train, test_fraction=2 / 7, seed=2)
    a, b = D.split_halves(test, seed=1)
    va, vb = D.split_halves(val, seed=3)
    return D.HandData(data, train, test, a, b, D.Normaliser.fit(train["states"]), "synthetic", 0.0, va, vb)


def _cfg(**overrides):
    base = {"length": 6, "horizon": 6, "ebm_iters": 3, "fc_iters": 3, "batch_size": 16}
    return preset("07_robot_hand", "smoke", dict(base, **overrides))


# ---------------------------------------------------------------------------------------------------- halves, floor
def test_split_halves_are_disjoint_and_equal():
    data = _walk(n=9)
    a, b = D.split_halves(data, seed=1)
    ia, ib = set(a["index"].tolist()), set(b["index"].tolist())
    assert len(ia) == len(ib) == 4 and not ia & ib          # an odd count leaves one out
    np.testing.assert_array_equal(a["states"], data["states"][sorted(ia)])
    with pytest.raises(ValueError, match="at least 4"):
        D.split_halves(_walk(n=3))


def test_floor_is_what_a_perfect_model_scores_and_shrinks_with_the_sample_size():
    """Two disjoint sets of one process are apart by chance alone; a third set (a perfect model's roll-outs)
    scores about the same against either, and the floor falls roughly as 1 / n."""
    big = _walk(n=3 * 800, length=3, seed=2)["states"]
    a, b, c = big[:800], big[800:1600], big[1600:]
    floor = D.average(D.frechet_floor(a, b))
    perfect = D.average(D.frechet_curve(c, b))
    assert 0 < floor and 0.5 < perfect / floor < 2
    small = D.average(D.frechet_floor(a[:50], b[:50]))
    assert small > 6 * floor                                   # 16x fewer samples: a much higher floor
    # a model that is really off (a drift) lands far above the floor
    off = _walk(n=800, length=3, seed=3, drift=0.3)["states"]
    assert D.average(D.frechet_curve(off, b)) > 10 * floor


def test_floor_refuses_shared_or_unequal_sets():
    s = _walk(n=20)["states"]
    with pytest.raises(ValueError, match="disjoint"):
        D.frechet_floor(s[:10], s[:10])
    with pytest.raises(ValueError, match="disjoint"):
        D.frechet_floor(s[:10], np.concatenate([s[9:10], s[11:20]]))
    with pytest.raises(ValueError, match="same size"):
        D.frechet_floor(s[:10], s[10:18])


# ---------------------------------------------------------------------------------------------------- verdicts
def test_verdict_does_not_call_a_difference_within_the_floor_a_win():
    """The published demo's conditional numbers (EBM 4.80, FC 3.20 on 100 trajectories) sit inside a floor of
    4.04: no ranking. The same numbers with a small floor: the FC wins; a large EBM lead: the EBM wins."""
    within = D.verdict("conditional", 4.80, 3.20, floor=4.04, n=100)
    assert "no winner" in within and "beats" not in within and "4.04" in within
    assert "FC beats the EBM" in D.verdict("conditional", 4.80, 3.20, floor=0.5, n=2000)
    assert "not reproduced" in D.verdict("conditional", 4.80, 3.20, floor=0.5, n=2000)
    assert "EBM beats the FC" in D.verdict("unconditional", 10.6, 25.8, floor=0.5, n=2000)
    assert "no winner" in D.verdict("unconditional", 10.6, 11.0, floor=0.5, n=2000)
    # exactly the floor is not beyond it
    assert "no winner" in D.verdict("unconditional", 1.0, 1.5, floor=0.5, n=10)


def test_verdict_over_training_runs_needs_every_run_separated():
    """With several training runs a kind wins only when its worst run beats the other's best by more than the
    floor: overlapping runs rank nothing, however far apart their means."""
    ebm, fc = [3.46, 8.83, 11.57], [2.54, 2.80, 3.15]
    assert "FC beats the EBM" in D.verdict("conditional", ebm, fc, floor=0.19, n=2000)
    close = D.verdict("conditional", ebm, fc, floor=0.5, n=2000)                      # 3.46 - 3.15 < 0.5
    assert "no winner" in close and "the best EBM run (3.46) comes within the floor of the worst FC run" in close
    overlap = D.verdict("unconditional", [1.0, 9.0, 2.0], [5.0, 5.2, 5.1], floor=0.1, n=2000)
    assert "no winner" in overlap and "3 training runs" in overlap
    assert "the EBM is lower on average, but the best FC run (5.00) is below the worst EBM run (9.00)" in overlap
    assert "EBM beats the FC" in D.verdict("unconditional", [7.6, 8.5, 14.8], [25.7, 25.8, 26.3], 0.19, 2000)
    with pytest.raises(ValueError, match="ebm"):
        D.verdict("unconditional", [], [1.0], floor=0.1, n=10)


def test_verdict_bad_input():
    with pytest.raises(ValueError, match="floor"):
        D.verdict("conditional", 1.0, 2.0, floor=float("nan"), n=10)
    with pytest.raises(ValueError, match="floor"):
        D.verdict("conditional", 1.0, 2.0, floor=-1.0, n=10)
    with pytest.raises(ValueError, match="setting"):
        D.verdict("sideways", 1.0, 2.0, floor=0.1, n=10)
    text = D.verdicts({("EBM", "unconditional"): 1.0, ("FC", "unconditional"): 9.0,
                       ("EBM", "conditional"): 2.0, ("FC", "conditional"): 2.1}, floor=0.5, n=10)
    first, second = text.split("\n\n")
    assert "EBM beats" in first and "no winner" in second


def test_mse_sentence_ranks_only_beyond_the_noise():
    mse = {"EBM unconditional": 1.9, "FC unconditional": 0.9, "no motion": 1.2}
    motion = {"EBM unconditional": 1.8, "FC unconditional": 0.1, "truth": 1.7}
    fd = {("EBM", "unconditional"): 10.0, ("FC", "unconditional"): 25.0}
    assert "opposite way" in D.mse_sentence(mse, (-1.0, 0.05), motion, fd, floor=0.5)
    assert "MSE does not separate" in D.mse_sentence(mse, (-1.0, 0.6), motion, fd, floor=0.5)
    assert "Frechet distance does not separate" in D.mse_sentence(mse, (-1.0, 0.05), motion, fd, floor=20.0)
    assert "same way" in D.mse_sentence(mse, (1.0, 0.05), motion, fd, floor=0.5)


def test_paired_mse_gap():
    truth = _walk(n=30)["states"]
    gap, se = D.paired_mse_gap(truth + 1.0, truth, truth)
    assert gap == pytest.approx(1.0) and se == pytest.approx(0.0, abs=1e-6)
    gap, se = D.paired_mse_gap(truth, truth + np.random.default_rng(0).normal(0, 1, truth.shape), truth)
    assert gap < 0 and se > 0


# ---------------------------------------------------------------------------------------------------- recipes
def test_recipe_checks_its_fields():
    with pytest.raises(ValueError, match="kind"):
        D.DynamicsRecipe(name="x", kind="gp")
    with pytest.raises(ValueError, match="sampling must be empty"):
        D.DynamicsRecipe(name="x", kind="fc", sampling={"n_steps": 10})
    with pytest.raises(ValueError, match="n_iters"):
        D.DynamicsRecipe(name="x", n_iters=-1)
    with pytest.raises(ValueError, match="n_steps"):
        D.DynamicsRecipe(name="x", kind="ebm", sampling={"n_steps": -2})


def test_fingerprint_and_description_tell_training_sets_apart():
    data = _walk(n=10)
    same = {k: np.copy(v) for k, v in data.items()}
    other = {k: np.copy(v) for k, v in data.items()}
    other["states"][3, 2, 5] += 1e-3
    assert D.data_fingerprint(data) == D.data_fingerprint(same) != D.data_fingerprint(other)
    cfg = _cfg()
    assert D.data_description(cfg, data) != D.data_description(cfg, other)
    rs = D.recipes(cfg, data)                                   # smoke: 2 training runs per model
    assert set(rs) == set(D.MODEL_NAMES.values()) | {n + "_s1" for n in D.MODEL_NAMES.values()}
    assert rs["hand_fc_cond"].sampling == {} and rs["hand_ebm_cond"].sampling == dict(cfg.sampling)
    assert rs["hand_ebm_cond"].seed == 1 and rs["hand_ebm_cond_s1"].seed == 2
    assert not {r.seed for r in D.recipes(cfg, data, seed=2).values()} & {1, 2}
    with pytest.raises(ValueError, match="train_seeds"):
        D.recipes(_cfg(train_seeds=0), data)
    with pytest.raises(ValueError, match="run"):
        D.model_name("EBM", "conditional", -1)


def test_saved_model_carries_its_normaliser_and_loads_only_for_its_data(tmp_path):
    hd = _hand_data()
    cfg = _cfg()
    recipe = D.recipes(cfg, hd.train)["hand_ebm_cond"]
    first = load_or_train(recipe, out_dir=tmp_path, shipped_dir=None, progress=False, data=hd.train, norm=hd.norm)
    assert not first.loaded and (tmp_path / "hand_ebm_cond.pt").is_file()
    assert "norm.mean" in first.model.state_dict()
    again = load_or_train(recipe, out_dir=tmp_path, shipped_dir=None, progress=False)
    assert again.loaded
    torch.testing.assert_close(again.model.norm.std, hd.norm.std)          # not the identity placeholder
    assert not torch.allclose(again.model.norm.std, torch.ones(D.STATE_DIM))
    s, a = torch.as_tensor(hd.half_a["states"][:, 0]), torch.as_tensor(hd.half_a["actions"][:, 0])
    torch.testing.assert_close(again.model.predict(s, a, torch.Generator().manual_seed(3)),
                               first.model.predict(s, a, torch.Generator().manual_seed(3)))
    # the same recipe fitted on other trajectories never picks up this checkpoint
    other = _hand_data(seed=5)
    recipe2 = D.recipes(cfg, other.train)["hand_ebm_cond"]
    assert recipe2.as_dict() != recipe.as_dict()
    third = load_or_train(recipe2, out_dir=tmp_path, shipped_dir=None, progress=False, data=other.train,
                          norm=other.norm)
    assert not third.loaded


def test_train_models_and_evaluate(tmp_path):
    hd = _hand_data()
    cfg = _cfg()
    only = D.train_models(cfg, hand_data=hd, only=["hand_fc_uncond"], out_dir=tmp_path, shipped_dir=None,
                          progress=False)
    assert list(only) == ["hand_fc_uncond"]
    trained = D.train_models(cfg, hand_data=hd, out_dir=tmp_path, shipped_dir=None, progress=False)
    assert trained["hand_fc_uncond"].loaded and not trained["hand_ebm_uncond"].loaded
    assert len(trained) == 8 and trained["hand_ebm_cond_s1"].recipe.seed == 2
    runs = D.model_runs(trained, cfg.train_seeds)
    models = runs[0]
    assert runs[1][("EBM", "conditional")] is trained["hand_ebm_cond_s1"].model
    with pytest.raises(ValueError, match="missing"):
        D.models_by_key(only)
    evs = D.evaluate_runs(runs, hd, 6, torch.Generator().manual_seed(0))
    ev = evs[0]
    np.testing.assert_allclose(evs[1].floor, ev.floor)                        # one floor for every run
    avg = D.run_averages(evs)
    assert all(len(v) == 2 for v in avg.values())
    assert D.evaluation_metrics(evs)["frechet_average_runs"]["EBM conditional"] == avg[("EBM", "conditional")]
    assert ev.n == hd.n_half == 10
    for r in ev.rollouts.values():
        assert r.shape == (10, 7, D.STATE_DIM)
        torch.testing.assert_close(r[:, 0], torch.as_tensor(hd.half_a["states"][:, 0]))
    np.testing.assert_allclose(ev.floor, D.frechet_floor(hd.half_a["states"], hd.half_b["states"], hd.norm))
    assert ev.floor_average > 0 and set(ev.averages()) == set(D.MODEL_NAMES)
    header, rows = D.frechet_table(evs)
    assert len(rows) == 6 and rows[4][1] == "truth vs truth (floor)"
    assert rows[0][2] == pytest.approx(np.mean(avg[("EBM", "unconditional")]))
    assert "floor" in D.summary(cfg, hd, evs, 1.0) and "2 training run(s)" in D.summary(cfg, hd, evs, 1.0)
    with pytest.raises(ValueError, match="horizon"):
        D.evaluate(models, hd, 7)
    one = D.one_step_errors(models, hd.half_a, hd.norm, torch.Generator().manual_seed(0), chunk=7)
    assert set(one) == {"no change (z = 0)"} | {f"{k} {s}" for k, s in D.MODEL_NAMES}
    _, mse_rows, mse = D.mse_table(ev, hd.norm)
    assert len(mse_rows) == 6 and mse["motion_per_step"]["truth"] > 0


def test_action_determinism_reads_how_much_the_action_decides():
    """Next states that are a linear function of the action: R^2 from (s, a) is 1, from s alone about 0; with the
    action ignored by the dynamics (pure noise steps) both are about 0."""
    g = np.random.default_rng(0)
    mix = g.normal(size=(D.ACTION_DIM, D.STATE_DIM))

    def make(n, driven):
        a = g.uniform(-1, 1, (n, 6, D.ACTION_DIM)).astype(np.float32)
        s = np.zeros((n, 7, D.STATE_DIM), np.float32)
        s[:, 0] = g.normal(size=(n, D.STATE_DIM))
        for t in range(6):
            step = a[:, t] @ mix if driven else g.normal(size=(n, D.STATE_DIM))
            s[:, t + 1] = s[:, t] + 0.01 * step
        return {"states": s, "actions": a}
    train, test = make(400, True), make(200, True)
    norm = D.Normaliser.fit(torch.as_tensor(train["states"]))
    r2 = D.action_determinism(train, test, norm, ridge=0.0)
    assert r2["from s_t and a_t"]["whole state"] > 0.999 and abs(r2["from s_t"]["whole state"]) < 0.05
    assert set(r2["from s_t"]) == set(D.STATE_PARTS) | {"whole state"}
    noise_tr, noise_te = make(400, False), make(200, False)
    r2n = D.action_determinism(noise_tr, noise_te, D.Normaliser.fit(torch.as_tensor(noise_tr["states"])))
    assert abs(r2n["from s_t and a_t"]["whole state"]) < 0.05
    header, rows = D.determinism_table(r2)
    assert header[0] == "part of the state" and len(rows) == 4
    text = D.determinism_sentence(r2, {"FC conditional": 0.1, "EBM conditional": 0.2})
    assert "100.0%" in text and "is 0.200, **2.00 times** the FC's 0.100" in text
    with pytest.raises(ValueError, match="ridge must be >= 0"):
        D.action_determinism(train, test, norm, ridge=-1)


# ---------------------------------------------------------------------------------------------------- tuning
def test_prepare_data_holds_a_validation_split_out_of_training(monkeypatch):
    monkeypatch.setattr(D, "load_or_generate", lambda *a, **k: (_walk(n=60), "synthetic"))
    cfg = _cfg(n_traj=60, test_fraction=0.1, val_fraction=10 / 54)   # 6 test, 10 validation, 44 train
    hd = D.prepare_data(cfg)
    ids = {k: set(np.asarray(part["index"]).tolist()) for k, part in
           dict(train=hd.train, a=hd.half_a, b=hd.half_b, va=hd.val_a, vb=hd.val_b).items()}
    assert sum(map(len, ids.values())) == 60 and len(set().union(*ids.values())) == 60   # disjoint, all used
    assert len(ids["a"]) == 3 and len(ids["va"]) == len(ids["vb"]) == 5 and len(ids["train"]) == 44
    np.testing.assert_allclose(hd.norm.mean.numpy(), hd.train["states"].reshape(-1, D.STATE_DIM).mean(0),
                               rtol=1e-4, atol=1e-5)            # the normaliser never sees held-out data
    assert D._n_val(hd) == 10
    assert D.prepare_data(_cfg(n_traj=60, test_fraction=0.1, val_fraction=0.0)).val_a is None
    with pytest.raises(ValueError, match="val_fraction"):
        D.prepare_data(_cfg(val_fraction=1.0))
    with pytest.raises(ValueError, match="no validation split"):
        D.prepare_data(_cfg(n_traj=60, test_fraction=0.1, val_fraction=0.0)).halves("validation")


def test_tuning_grid_and_the_recipes_it_makes():
    cfg = _cfg(tune={"EBM": {"n_iters": (3, 5), "step_size": (2.0, 4.0)}, "FC": {"lr": (1e-3,)}})
    grid = D.tuning_grid(cfg)
    assert grid["EBM"] == [{"n_iters": 3, "step_size": 2.0}, {"n_iters": 3, "step_size": 4.0},
                           {"n_iters": 5, "step_size": 2.0}, {"n_iters": 5, "step_size": 4.0}]
    assert grid["FC"] == [{"lr": 1e-3}] and D.tuning_grid(_cfg(tune={}))["EBM"] == [{}]
    assert D.candidate_label(grid["EBM"][1]) == "3 it., step 4" and D.candidate_label({}) == "preset"
    data = _walk(n=10)
    cands = D.tuning_recipes(cfg, data)
    assert len(cands) == 8 and all(key[0] == "EBM" for key, _, _ in cands.values())   # one FC candidate: no tuning
    test_seeds = {r.seed for r in D.recipes(cfg, data).values()}
    assert {r.seed for _, _, r in cands.values()} == {D.TUNING_SEED} and D.TUNING_SEED not in test_seeds
    _, c, r = cands["hand_ebm_cond_tune_it5_step4"]
    assert r.n_iters == 5 and r.sampling["step_size"] == 4.0 and r.conditional
    chosen = D.recipes(cfg, data, chosen={("EBM", "conditional"): c, ("FC", "unconditional"): {"n_iters": 7}})
    assert chosen["hand_ebm_cond_s1"].sampling["step_size"] == 4.0 and chosen["hand_ebm_cond"].n_iters == 5
    assert chosen["hand_ebm_uncond"].sampling == dict(cfg.sampling) and chosen["hand_fc_uncond"].n_iters == 7
    for bad, match in (({"GAN": {}}, "kinds"), ({"FC": {"step_size": (1.0,)}}, "can vary"),
                       ({"EBM": {"lr": ()}}, "non-empty")):
        with pytest.raises(ValueError, match=match):
            D.tuning_grid(_cfg(tune=bad))


def test_tune_chooses_the_lowest_validation_score_and_never_reads_the_test_split(tmp_path):
    hd = _hand_data()
    poisoned = {k: (np.full_like(v, np.nan) if k in ("states", "actions") else v) for k, v in hd.half_a.items()}
    hd.half_a = hd.half_b = poisoned                       # any use of the test halves would give NaN
    cfg = _cfg(tune={"EBM": {"step_size": (0.5, 20.0)}, "FC": {"n_iters": (1, 40)}})
    tuning = D.tune(cfg, 0, hd, out_dir=tmp_path, shipped_dir=None, progress=False)
    for key, scores in tuning.scores.items():
        assert len(scores) == 2 and all(np.isfinite(d) for _, d in scores)
        assert tuning.chosen[key] == min(scores, key=lambda cd: cd[1])[0]
    assert tuning.n == 4 and np.isfinite(tuning.floor) and tuning.floor > 0
    again = D.tune(cfg, 0, hd, out_dir=tmp_path, shipped_dir=None, progress=False)    # loaded: the same choice
    assert again.scores == tuning.scores
    header, rows = D.tuning_table(tuning)
    assert len(rows) == 8 and sum(r[-1] == "chosen" for r in rows) == 4
    assert "validation split" in D.tuning_sentence(tuning) and tuning.metrics()["n_per_validation_half"] == 4
    _, settings = D.settings_table(cfg, tuning)
    assert [r[0] for r in settings] == [f"{k} {s}" for s, _ in D.SETTINGS for k in D.KINDS]
    assert "nothing to choose" in D.tuning_sentence(D.tune(_cfg(tune={}), 0, hd, out_dir=tmp_path,
                                                           shipped_dir=None, progress=False))
