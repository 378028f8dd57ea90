"""Chapter 04 (CIFAR-10, section 4.1 / 4.2): the photo-crops stand-in (never called CIFAR-10), the snapshot ensemble
of section 4.1, the paper run's cost, the evaluation sampler, and the page's rows: CIFAR-10 rows say "not run here"
with the command until a paper-scale record exists."""
import copy

import numpy as np
import pytest
import torch
from torch import nn

from ebmlib.chapters import cifar10 as C
from ebmlib.data import standin as S
from ebmlib.presets import preset


# -- the stand-in -----------------------------------------------------------------------------------------------

def test_standin_is_named_as_what_it_is():
    assert "not CIFAR-10" in S.NAME and C.data_name("photo_crops") == S.NAME
    assert C.data_name("cifar10") == "CIFAR-10"
    assert len(S.PHOTOS) == 10 and len({name for name, _, _ in S.PHOTOS}) == 10


def test_standin_crops_are_balanced_deterministic_32x32_colour():
    a = S.load_photo_crops("train", n_per_class=6, seed=1)
    b = S.load_photo_crops("train", n_per_class=6, seed=1)
    c = S.load_photo_crops("train", n_per_class=6, seed=2)
    assert a.images.shape == (60, 3, 32, 32) and a.images.dtype == torch.uint8
    assert torch.equal(a.labels, torch.arange(10).repeat_interleave(6)) and a.classes[0] == "astronaut"
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert a.images.float().std() > 20          # real pictures, not constant fills


def test_standin_test_crops_never_touch_the_train_region():
    for index in range(len(S.PHOTOS)):
        h, w = S.load_photo(index).shape[:2]
        reg = S.regions(h, w)
        for split in S.SPLITS:
            t, l, b, r = reg[split]
            boxes = S.crop_boxes(index, split, 30, seed=0)
            assert (boxes[:, 0] >= t).all() and (boxes[:, 1] >= l).all()
            assert (boxes[:, 2] <= b).all() and (boxes[:, 3] <= r).all()
            sides = boxes[:, 2] - boxes[:, 0]
            assert (sides == boxes[:, 3] - boxes[:, 1]).all() and len(set(sides.tolist())) == len(S.SCALES)
        # the two regions are disjoint
        tr, te = reg["train"], reg["test"]
        assert tr[3] <= te[1] or tr[2] <= te[0]


def test_standin_refuses_bad_arguments():
    with pytest.raises(ValueError, match="split must be one of"):
        S.crop_boxes(0, "valid", 3)
    with pytest.raises(ValueError, match="n_per_class must be a positive int, got 0"):
        S.load_photo_crops("train", n_per_class=0)


# -- the models and the snapshot ensemble (section 4.1) -------------------------------------------------------------

def tiny_recipe(**kw):
    spec = dict(dataset="photo_crops", width=4, conditional=False, n_iters=10, snapshot_every=5, keep_buffer=8,
                ensemble=3, ensemble_every=2, ensemble_dtype="float32", train=dict(batch_size=4, n_steps=2))
    spec.update(kw)
    return C.CIFAREBMRecipe(name="tiny", **spec)


def test_ensemble_points_are_the_last_snapshots_and_too_short_runs_are_refused():
    assert tiny_recipe().ensemble_points() == [6, 8, 10]
    assert tiny_recipe(ensemble=1).ensemble_points() == [10]
    with pytest.raises(ValueError, match="need at least 9 iterations, it has 4"):
        tiny_recipe(n_iters=4, ensemble=5).build()
    with pytest.raises(ValueError, match="32x32 colour data only"):
        tiny_recipe(dataset="mnist").build()
    with pytest.raises(ValueError, match="ensemble_dtype"):
        tiny_recipe(ensemble_dtype="bfloat16").build()


def test_after_iteration_keeps_the_weights_of_the_ensemble_points():
    r = tiny_recipe()
    model = r.build()
    kept = {}
    for it in range(1, r.n_iters + 1):
        with torch.no_grad():
            for p in model.net.parameters():
                p.add_(0.01)
        r.after_iteration(model, it)
        if it in r.ensemble_points():
            kept[it] = copy.deepcopy(model.net.state_dict())
    assert model.snapshot_iterations.tolist() == [6, 8, 10]
    members = model.members()
    x = torch.rand(3, 3, 32, 32)
    for it, member in zip([6, 8, 10], members):
        ref = copy.deepcopy(model.net)
        ref.load_state_dict(kept[it])
        assert torch.allclose(member(x), ref.eval()(x), atol=1e-6)
    assert not torch.allclose(members[0](x), members[-1](x))


def test_float16_snapshots_round_to_half_precision_and_empty_slots_are_refused():
    r = tiny_recipe(ensemble_dtype="float16", conditional=True)
    model = r.build()
    with pytest.raises(ValueError, match="snapshot slot 0 is empty"):
        model.member(0)
    model.keep(0, 7)
    member = model.member(0)
    for (k, a), b in zip(model.net.state_dict().items(), member.state_dict().values()):
        if a.is_floating_point():
            assert torch.allclose(a, b, rtol=1e-3, atol=1e-4), k
    assert model.snapshots.dtype == torch.float16 and model.members()[0] is not None
    y = torch.tensor([0, 3])
    x = torch.rand(2, 3, 32, 32)
    assert model(x, y).shape == (2,)


def test_preset_runs_the_standin_at_demo_and_a7_on_cifar10_at_paper():
    demo, paper = preset("04_cifar10", "demo"), preset("04_cifar10", "paper")
    assert demo.dataset == "photo_crops" and all(m["dataset"] == "photo_crops" for m in demo.models.values())
    assert paper.dataset == "cifar10" and set(paper.models) == {"cifar10_uncond", "cifar10_cond"}
    for name, m in paper.models.items():            # A.7
        t = m["train"]
        assert (t["n_steps"], t["step_size"], t["lr"], t["batch_size"], t["buffer_capacity"]) == (60, 10.0, 1e-4,
                                                                                                   128, 10000)
        assert m["width"] == 128 and m["ensemble"] == 10
        c = C.recipes(paper.models)[name].config()
        assert (c.noise_std, c.grad_clip, c.alpha, c.replay_fraction, c.betas) == (0.005, 0.01, 1.0, 0.95, (0.0, 0.999))
    rs = C.recipes(demo.models)
    assert rs["photo_cond"].conditional and not rs["photo_uncond"].conditional
    assert C.recipes(demo.models, seed=3)["photo_cond"].train["seed"] == 3
    for m in C.recipes(preset("04_cifar10", "paper", shrink=True).models).values():
        m.ensemble_points()                          # CI's shrunk run keeps its ensemble


# -- the cost of the paper run ---------------------------------------------------------------------------------

def test_gpu_hours_from_a_measured_rate_and_from_flops():
    r = tiny_recipe(width=8, n_iters=100, ensemble=1)
    est = C.gpu_hours(r, iterations_per_second=0.5)
    assert est == {"hours": pytest.approx(100 / 0.5 / 3600), "wall_hours": pytest.approx(100 / 0.5 / 3600),
                   "gpus": 1, "basis": "measured", "iterations_per_second": 0.5}
    on8 = C.gpu_hours(r, iterations_per_second=0.5, gpus=8)     # 8 GPUs each run the recipe's iterations
    assert on8["hours"] == pytest.approx(8 * est["hours"]) and on8["wall_hours"] == pytest.approx(est["hours"])
    assert "per GPU on 8 GPUs" in C.gpu_hours_line("tiny", r, on8)
    with pytest.raises(ValueError, match="gpus must be a positive int"):
        C.gpu_hours(r, iterations_per_second=0.5, gpus=0)
    assert "measured" in C.gpu_hours_line("tiny", r, est)
    with pytest.raises(ValueError, match="iterations_per_second must be > 0"):
        C.gpu_hours(r, iterations_per_second=0)
    f = C.gpu_hours(r, flops_per_s=1e12, utilisation=0.5)
    counts = f["flops"]
    assert counts["langevin_step"] > counts["forward"] > 0
    assert counts["per_iteration"] == 4 * (2 * counts["langevin_step"] + 2 * counts["train_pass"])
    assert f["hours"] == pytest.approx(counts["total"] / 0.5e12 / 3600)
    assert "FLOP estimate" in C.gpu_hours_line("tiny", r, f) and "not measured" in C.gpu_hours_line("tiny", r, f)
    with pytest.raises(ValueError, match="utilisation"):
        C.gpu_hours(r, utilisation=0)


# -- sampling -------------------------------------------------------------------------------------------------------

class Quadratic(nn.Module):
    """E(x) = |x - c|^2 / 2 (with an optional label argument): chains drift to c."""

    def __init__(self, c: float):
        super().__init__()
        self.c = c
        self.calls = 0

    def forward(self, x, y=None):
        self.calls += 1
        return 0.5 * (x - self.c).pow(2).flatten(1).sum(1)


def test_ensemble_chains_let_the_members_take_turns():
    a, b = Quadratic(0.2), Quadratic(0.8)
    x0 = torch.full((4, 3, 32, 32), 0.5)
    C.ensemble_chains([a, b], x0, n_turns=3, steps_per_turn=2, generator=torch.Generator().manual_seed(0))
    assert a.calls > 0 and b.calls > 0 and a.calls > b.calls     # turns 0 and 2 are a's, turn 1 b's
    with pytest.raises(ValueError, match="no members"):
        C.ensemble_chains([], x0, 1, 1)


def test_evaluation_samples_shapes_labels_and_sampler():
    spec = dict(rounds=3, steps=2, reinit=0.5, relabel=0.5, settle=1, step_size=10.0, noise_std=0.005,
                grad_clip=0.05, batch=5)
    g = torch.Generator().manual_seed(0)
    x, y = C.evaluation_samples([Quadratic(0.5)], 12, spec, conditional=True, generator=g)
    assert x.shape == (12, 3, 32, 32) and y.shape == (12,) and (0 <= y).all() and (y < 10).all()
    assert 0 <= x.min() and x.max() <= 1
    x, y = C.evaluation_samples([Quadratic(0.5), Quadratic(0.4)], 7, spec, conditional=False, generator=g)
    assert x.shape == (7, 3, 32, 32) and y is None


def test_conversion_accuracy_counts_only_conversions_to_another_class():
    class Oracle(nn.Module):        # says class = the image's mean pixel x 10
        def forward(self, x):
            return nn.functional.one_hot((x.mean((1, 2, 3)) * 10).long().clamp(0, 9), 10).float() * 10

    conv = {"class 2": torch.cat([torch.full((1, 3, 4, 4), 0.25), torch.arange(10).float().view(10, 1, 1, 1)
                                  .expand(10, 3, 4, 4) / 10 + 0.05])}
    acc, n = C.conversion_accuracy(Oracle(), conv)
    assert n == 9 and acc == pytest.approx(1.0)


def test_fig3_and_class_panels_pick_the_models_samples():
    x = torch.rand(6, 3, 32, 32)
    y = torch.tensor([0, 1, 1, 2, 2, 2])
    samples = {"m: replay buffer": (x, None), "m: fresh chains, 3-snapshot ensemble": (x, y), "n: replay buffer": (x, y)}
    panels = C.fig3_samples(samples, "m", 4)
    assert list(panels) == ["replay buffer", "fresh chains, 3-snapshot ensemble"] and panels["replay buffer"].shape[0] == 4
    assert C.ensemble_samples(samples, "m")[1] is y
    with pytest.raises(KeyError, match="no ensemble samples of model 'n'"):
        C.ensemble_samples(samples, "n")
    rows = C.class_rows(x, y, ["a", "b", "c", "d"], 2)
    assert list(rows) == ["a", "b", "c"] and rows["c"].shape[0] == 2


# -- the page's rows ----------------------------------------------------------------------------------------------

def _q(fid, is_, acc=None):
    v = {"fid": fid, "is": is_, "is_std": 0.1, "n": 300}
    if acc is not None:
        v["conditional_accuracy"] = acc
    return v


def fake_record(dataset="photo_crops", inception=False):
    u, c = ("photo_uncond", "photo_cond") if dataset == "photo_crops" else ("cifar10_uncond", "cifar10_cond")
    q = {"test images (reference)": _q(1.0, 9.0), "uniform noise (reference)": _q(900.0, 1.0),
         f"{u}: replay buffer": _q(20.0, 5.0), f"{u}: fresh chains, last weights": _q(40.0, 4.0),
         f"{u}: fresh chains, 10-snapshot ensemble": _q(35.0, 4.5),
         f"{c}: replay buffer": _q(25.0, 5.0, 0.8), f"{c}: fresh chains, last weights": _q(30.0, 6.0, 0.7),
         f"{c}: fresh chains, 10-snapshot ensemble": _q(28.0, 6.5, 0.75)}
    if inception:
        for v in q.values():
            v.update(inception_is=6.1, inception_is_std=0.1, inception_fid=41.0)
    pre = preset("04_cifar10", "demo" if dataset == "photo_crops" else "paper").as_dict()
    rs = {k: {"changed_class_before": b, "changed_class_after": a, "accuracy_after": 0.5, "mse_before": 0.1,
              "mse_after": 0.05} for k, b, a in (("salt and pepper (0.1)", 0.4, 0.3), ("bottom half masked", 0.6, 0.35),
                                                  ("ground-truth init", 0.0, 0.08))}
    metrics = {"dataset": dataset, "quality": q, "restoration": rs, "conversion_accuracy": 0.6,
               "classifier_test_accuracy": 0.9, "preset": pre,
               "energy_means": {"train": 0.0, "test": 0.01, "samples (buffer)": 0.02, "uniform noise": 2.0},
               "nn_distance": {"samples_median": 5.0, "test_median": 4.0}}
    return {"chapter": "04_cifar10", "scale": "demo", "written": "2026-12-01T00:00:00", "metrics": metrics}


def test_standin_rows_name_the_standin_and_cifar_rows_say_not_run_here():
    rows = C.paper_rows(fake_record(), cifar=None)
    stand = [r for r in rows if r["data"] != C.CIFAR_NOT_RUN]
    cifar = [r for r in rows if r["data"] == C.CIFAR_NOT_RUN]
    assert {r["item"] for r in cifar} == {"Fig. 3", "Fig. 5 / Table 1", "Fig. 17"}
    for r in cifar:
        assert r["verdict"] == "not run here" and C.PAPER_COMMAND in r["note"] and r["ours"] == "-"
    for r in stand:
        assert r["data"].startswith(S.NAME) and "CIFAR-10" not in r["data"].replace("(not CIFAR-10)", "")
    table = next(r for r in stand if r["item"] == "Fig. 5 / Table 1")
    assert table["verdict"] == "not run here" and "not comparable" in table["note"]
    fig6 = next(r for r in stand if r["item"] == "Fig. 6")
    assert fig6["verdict"] == "reproduced"                     # both corruptions repaired, ground truth 8% <= 10%


def test_a_committed_cifar_record_replaces_not_run_here():
    cifar = fake_record("cifar10", inception=True)
    rows = C.paper_rows(fake_record(), cifar=cifar)
    assert not any(r["verdict"] == "not run here" and r["data"] == C.CIFAR_NOT_RUN for r in rows)
    t1 = [r for r in rows if r["item"] == "Fig. 5 / Table 1" and r["data"].startswith("CIFAR-10")]
    assert len(t1) == 1 and "IS 6.10 / FID 41.00" in t1[0]["ours"]
    assert t1[0]["verdict"] == "partly reproduced"            # IS 6.10 / FID 41.0 is within 10% of the single row only
    own = C.paper_rows(cifar)
    assert {r["item"] for r in own} >= {"Fig. 2", "Fig. 3", "Fig. 5 / Table 1", "Fig. 6", "Fig. 20"}


def test_summary_and_table1_quote_the_paper_only_as_the_papers():
    m = fake_record()["metrics"]
    rows = C.summary_rows(m, None)
    assert all(r[3].startswith("not run here") for r in rows)
    assert C.PAPER_COMMAND in C.paper_run_line(None) and "GPU" in C.paper_run_line(None)
    assert C.PAPER_RECORD_NAME in C.paper_run_line(fake_record("cifar10"))
    inc = [r for r in rows if "Inception IS / FID" in r[0]]
    assert len(inc) == 3 and all(r[1] == "not run (stand-in)" for r in inc)
    assert {r[2] for r in inc} == {"IS 6.02 / FID 40.58", "IS 6.78 / FID 38.20", "IS 8.30 / FID 37.90"}
    t1 = C.table1_rows(m["quality"], "photo_crops")
    assert [r[0] for r in t1] == [v[0] for v in C.PAPER_TABLE1.values()]
    assert all(S.NAME in r[4] and r[4].startswith("a classifier") for r in t1)
    sentence = C.quality_sentence(m["quality"])
    assert "ensemble's FID is **lower (better)**" in sentence and "Inception FID on CIFAR-10" in sentence


def test_paper_record_reads_only_cifar_records(tmp_path):
    import json
    assert C.paper_record(str(tmp_path / "none.json")) is None
    path = tmp_path / "04_cifar10.json"
    path.write_text(json.dumps(fake_record()))
    assert C.paper_record(str(path)) is None                   # a stand-in record is not a CIFAR-10 run
    path.write_text(json.dumps(fake_record("cifar10")))
    assert C.paper_record(str(path))["metrics"]["dataset"] == "cifar10"


def test_shipped_demo_checkpoints_are_the_demo_recipes():
    """Both demo models ship (ebmlib/checkpoints/photo_*.pt, weights_only, checksummed), trained by exactly the demo
    recipe, with their full ensemble of snapshots."""
    from ebmlib.core import recipes as R
    for name, recipe in C.recipes(preset("04_cifar10", "demo").models).items():
        t = R.load_trained(recipe, (R.SHIPPED_DIR,))
        assert t is not None, f"no shipped checkpoint of {name} made by its demo recipe"
        assert t.recipe == recipe and len(t.history) == recipe.n_iters
        assert t.model.snapshot_iterations.tolist() == recipe.ensemble_points()
        assert t.samples.shape == (recipe.keep_buffer, 3, 32, 32)


def test_restoration_and_neighbour_sentences_say_when_the_paper_is_not_reached():
    rs = fake_record()["metrics"]["restoration"]
    text = C.restoration_sentence(rs)
    assert "ground-truth start 8.0% (the paper ~10%: reached)" in text
    assert "bottom half masked 35.0%" in text and "not reached" in text
    assert "salt and pepper (0.1) 30.0%, before restoration 40.0% (the paper ~30%: at or below it)" in text
    assert "no sign of copies" in C.nn_sentence({"samples_median": 5.0, "test_median": 4.0})
    assert "**not shown**" in C.nn_sentence({"samples_median": 3.0, "test_median": 4.0})
