"""Chapter 12 (ImageNet): the recipes, the release's dequantisation, the paper-scale training sources on tiny files
in the real formats, Fig. 8's completions and their measures, the cost and scale tables, and the results rows."""
import os

import numpy as np
import pytest
import torch
from torch import nn

from ebmlib.chapters import imagenet as I
from ebmlib.core.ensemble import evaluation_samples
from ebmlib.core.images import dequantize_centred
from ebmlib.core.model_quality import Resized
from ebmlib.core.nets import count_parameters
from ebmlib.core.train import TrainConfig, Trainer
from ebmlib.data.fixtures import write_imagenet128, write_imagenet32
from ebmlib.data.imagenet import (FolderSource, imagenet128_images, imagenet128_source, imagenet32_memmap,
                                  read_imagenet32_batch, imagenet32_files)
from ebmlib.presets import preset


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def tiny(**kw):
    spec = dict(dataset="photo_crops", image_size=32, width=2, conditional=True, n_classes=10, n_iters=6,
                snapshot_every=3, keep_buffer=8, ensemble=2, ensemble_every=2, train=dict(batch_size=4, n_steps=2))
    spec.update(kw)
    return I.ImageNetEBMRecipe(name="tiny", **spec)


# -- recipes ----------------------------------------------------------------------------------------------------

def test_recipes_build_the_release_networks_and_refuse_bad_settings():
    paper = I.recipes(preset("12_imagenet", "paper").models)
    nets = {k: r.build() for k, r in paper.items()}
    assert count_parameters(nets["imagenet32_cond"].net) == 89_554_305          # ResNet32Wider, ~90 M (A.6)
    assert count_parameters(nets["imagenet128_cond"].net) == 21_210_305         # ResNet128, ~21 M
    assert nets["imagenet32_cond"].input_shape == (3, 32, 32) and nets["imagenet128_cond"].input_shape == (3, 128, 128)
    assert nets["imagenet128_cond"].n_classes == 1000
    for r in paper.values():                      # the release's recipes
        c = r.config()
        assert (c.noise_std, c.grad_clip, c.lr, c.buffer_capacity, c.betas) == (0.005, 0.01, 1e-4, 10000, (0.0, 0.999))
        assert r.dequantizer() is dequantize_centred
    c32, c128 = paper["imagenet32_cond"].config(), paper["imagenet128_cond"].config()
    assert (c32.n_steps, c32.step_size, c32.batch_size) == (60, 10.0, 32)
    assert (c128.n_steps, c128.step_size, c128.batch_size, paper["imagenet128_cond"].act) == (50, 100.0, 16, "swish")
    with pytest.raises(ValueError, match="image_size must be 32"):
        tiny(image_size=64).build()
    with pytest.raises(ValueError, match="dequant must be one of"):
        tiny(dequant="gauss").build()
    assert I.recipes(preset("12_imagenet", "demo").models, seed=4)["photo32_cond"].train["seed"] == 4


def test_demo_and_smoke_never_use_imagenet_names_for_the_standin():
    for scale in ("smoke", "demo"):
        cfg = preset("12_imagenet", scale)
        for name, m in cfg.models.items():
            assert m["dataset"].startswith("photo_crops") and "imagenet" not in name
            assert "not ImageNet" in I.data_name(m["dataset"])
    assert I.data_name("imagenet32") == "ImageNet 32x32"


def test_centred_dequantisation_is_the_releases_within_half_a_bin():
    p = torch.randint(0, 256, (20000,), generator=gen(1)).to(torch.uint8)
    x = dequantize_centred(p, gen(2))
    d = x - p.float() / 255
    inside = (p > 0) & (p < 255)                  # the ends are clipped to [0, 1]
    assert d[inside].abs().max() <= 1 / 512 + 1e-7 and d[inside].abs().max() > 0.95 / 512
    se = d[inside].std() / inside.sum().sqrt()
    assert abs(d[inside].mean()) < 4 * se          # centred: no half-bin offset (A.3's form has mean 1/512 - p/65280)
    assert 0 <= x.min() and x.max() <= 1
    assert (x[p == 0] >= 0).all() and (x[p == 255] <= 1).all()
    with pytest.raises(TypeError, match="uint8"):
        dequantize_centred(p.float())


# -- paper-scale sources on tiny files in the real formats -----------------------------------------------------

def test_imagenet32_memmap_holds_every_batch_in_order_and_is_written_once(tmp_path):
    write_imagenet32(tmp_path, n_per_batch=3, n_val=4)
    data = imagenet32_memmap("train", tmp_path)
    parts = [read_imagenet32_batch(p) for p in imagenet32_files("train", tmp_path)]
    assert torch.equal(data.images, torch.cat([x for x, _ in parts]))
    assert torch.equal(data.labels, torch.cat([y for _, y in parts])) and len(data.classes) == 1000
    cache = tmp_path / "imagenet32" / "train_images.u8"
    stamp = cache.stat().st_mtime_ns
    again = imagenet32_memmap("train", tmp_path)
    assert cache.stat().st_mtime_ns == stamp and torch.equal(again.images, data.images)
    again.images[0] = 0                                      # copy-on-write: the file keeps its bytes
    assert again.images[0].eq(0).all() and torch.equal(imagenet32_memmap("train", tmp_path).images[0], parts[0][0][0])
    with open(cache, "ab") as f:                             # a torn file is named, not silently read
        f.write(bytes(3072))
    with pytest.raises(ValueError, match="31 images but .* 30 labels"):
        imagenet32_memmap("train", tmp_path)


def test_a_trainer_draws_its_batches_from_the_memmap(tmp_path):
    write_imagenet32(tmp_path, n_per_batch=3, n_val=4)
    data = imagenet32_memmap("train", tmp_path)
    recipe = tiny(dataset="imagenet32", n_classes=1000)
    t = Trainer(recipe.build(), recipe.training_source(data), TrainConfig(batch_size=4, n_steps=1),
                transform=recipe.dequantizer())
    x, y = t.next_batch()
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and (0 <= x).all() and (x <= 1).all()
    assert y.max() < 1000


def test_folder_source_draws_by_the_generator_alone(tmp_path):
    write_imagenet128(tmp_path, per_class=2)
    source = imagenet128_source("train", tmp_path, size=32, threads=2)
    a, b = source(5, gen(3)), source(5, gen(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])      # a resumed run draws the same minibatches
    assert a[0].shape == (5, 3, 32, 32) and a[0].dtype == torch.uint8 and a[1].dtype == torch.int64
    assert not torch.equal(source(5, gen(4))[0], a[0])
    with pytest.raises(ValueError, match="threads must be a positive int"):
        FolderSource(source.dataset, threads=0)
    held = imagenet128_images("val", n=4, seed=1, root=tmp_path, size=32)
    assert held.images.shape == (4, 3, 32, 32) and len(held.classes) == 3
    assert torch.equal(imagenet128_images("val", n=4, seed=1, root=tmp_path, size=32).images, held.images)
    assert len(imagenet128_images("val", root=tmp_path, size=32)) == 6


# -- evaluation of 128-pixel models ----------------------------------------------------------------------------

class Quadratic(nn.Module):
    """E(x) = |x - c|^2 / 2 over images of ``shape``, with ``n_classes`` labels it ignores."""

    def __init__(self, c: float, shape=(3, 32, 32), n_classes=None):
        super().__init__()
        self.c, self.input_shape, self.n_classes = c, shape, n_classes

    def forward(self, x, y=None):
        return 0.5 * (x - self.c).pow(2).flatten(1).sum(1)


def test_evaluation_samples_follow_the_members_image_shape_and_classes():
    spec = dict(rounds=2, steps=1, reinit=0.5, relabel=0.5, settle=1, step_size=100.0, noise_std=0.005,
                grad_clip=0.05, batch=3)
    x, y = evaluation_samples([Quadratic(0.5, (3, 64, 64), n_classes=1000)], 7, spec, True, gen())
    assert x.shape == (7, 3, 64, 64) and y.max() < 1000
    with pytest.raises(ValueError, match="no members"):
        evaluation_samples([], 1, spec, False)


def test_resized_classifier_reads_large_images_as_their_area_average():
    from ebmlib.core.classifiers import CIFARClassifier
    clf = CIFARClassifier(n_classes=10, width=2).eval()
    big = torch.rand(2, 3, 128, 128, generator=gen())
    small = big.reshape(2, 3, 32, 4, 32, 4).mean(dim=(3, 5))
    r = Resized(clf, 32)
    assert torch.allclose(r(big), clf(small), atol=1e-5) and torch.allclose(r.features(big), clf.features(small),
                                                                             atol=1e-5)
    assert torch.equal(r(small), clf(small)) and r.num_features == clf.num_features


# -- Fig. 8 ------------------------------------------------------------------------------------------------------

def test_completions_keep_the_top_half_and_condition_on_each_images_label():
    seen = []

    class Labelled(Quadratic):
        def forward(self, x, y=None):
            seen.append(y.clone())
            return super().forward(x)
    x = torch.rand(2, 3, 32, 32, generator=gen())
    y = torch.tensor([3, 7])
    rows = I.completion_rows(Labelled(0.5), {"test": (x, y)}, n_chains=3, n_steps=2, generator=gen(1))["test"]
    assert list(rows) == ["test 0", "test 1"] and rows["test 1"].shape == (5, 3, 32, 32)
    for i, row in enumerate(rows.values()):
        assert torch.equal(row[0], x[i]) and torch.equal(row[2:, :, :16], x[i, :, :16].expand(3, -1, -1, -1))
        assert (row[1, :, 16:] == 0.5).all()
    assert {tuple(s.tolist()) for s in seen} == {(3, 3, 3), (7, 7, 7)}


def test_completion_stats_measure_diversity_and_distance_exactly():
    truth = torch.zeros(1, 3, 8, 8)
    comps = torch.zeros(3, 3, 8, 8)
    comps[1, :, 4:] = 0.3                          # completion 1 differs from 0 and 2 by 0.3 everywhere below
    rows = {"a": torch.cat([truth, truth, comps])}

    class Always(nn.Module):
        def forward(self, x):
            return torch.nn.functional.one_hot(torch.full((len(x),), 2), 10).float()
    s = I.completion_stats(rows, Always(), torch.tensor([2]))
    assert s["diversity_rms"] == pytest.approx(2 * 0.3 / 3)      # pairs (0,1), (1,2) at 0.3; (0,2) at 0
    assert s["to_truth_rms"] == pytest.approx(0.3 / 3) and s["class_accuracy"] == 1.0
    assert s["noise_rms"] == pytest.approx((1 / 6) ** 0.5, rel=0.1)    # two U(0,1) draws: E(u - v)^2 = 1/6
    assert (s["n_images"], s["n_chains"]) == (1, 3)


# -- cost, scale and the results page ----------------------------------------------------------------------------

def test_scale_rows_count_the_paper_recipes():
    rows = {r[0]: r for r in I.scale_rows()}
    assert rows["ImageNet32 (ResNet32Wider)"][1] == "89.6 M" and rows["ImageNet128 (ResNet128)"][1] == "21.2 M"
    assert rows["CIFAR-10 (ResNet32, cond.)"][5] == 1 and rows["ImageNet32 (ResNet32Wider)"][5] == 32
    for r in rows.values():
        assert float(r[7].replace(",", "")) > 1000      # compute per byte all-reduced
    assert float(rows["ImageNet128 (ResNet128)"][2]) > float(rows["CIFAR-10 (ResNet32, cond.)"][2])


def test_paper_cost_is_for_32_gpus_and_says_it_is_an_estimate():
    cfg = preset("12_imagenet", "demo", overrides={"measured_rate": 2.0})
    cost = I.paper_cost(cfg)
    assert set(cost) == {"imagenet32_cond", "imagenet128_cond"}
    for recipe, est in cost.values():
        assert est["hours"] == pytest.approx(32 * recipe.n_iters / 2.0 / 3600) and est["gpus"] == 32
    lines = I.paper_cost_lines(cost)
    assert "the paper: 5 days on 32 GPUs, 3,840 GPU-hours" in lines and "assumption" in lines


def _record(dataset32="photo_crops", dataset128="photo_crops_128", inception=None):
    models, quality = {}, {}
    for name, size, ds in (("m32", 32, dataset32), ("m128", 128, dataset128)):
        models[name] = {"recipe": {"image_size": size, "dataset": ds, "n_classes": 10, "width": 8, "n_iters": 5},
                        "ensemble_iterations": [3, 5]}
        entry = {"fid": 3.0, "is": 2.0, "is_std": 0.1, "n": 50, "conditional_accuracy": 0.5, **(inception or {})}
        quality[name] = {f"{name}: fresh chains, last weights": entry, f"{name}: fresh chains, 2-snapshot ensemble": entry}
    stats = {"diversity_rms": 0.1, "to_truth_rms": 0.2, "noise_rms": 0.4, "class_accuracy": 0.6, "n_images": 2,
             "n_chains": 3}
    metrics = {"models": models, "quality": quality, "completions": {"train": stats, "test": stats},
               "classifier_test_accuracy": 0.9}
    return {"metrics": metrics, "written": "2026-12-01T00:00:00"}


def test_paper_rows_say_not_run_for_imagenet_until_a_paper_record_exists():
    rows = I.paper_rows(_record(), imagenet=None)
    items = [(r["item"], r["verdict"]) for r in rows]
    assert ("Fig. 4", "shown (qualitative)") in items and ("Fig. 18", "shown (qualitative)") in items
    assert sum(1 for r in rows if r["data"] == I.IMAGENET_NOT_RUN and r["verdict"] == "not run here") == 4
    assert all("not ImageNet" in r["note"] for r in rows if r["data"] != I.IMAGENET_NOT_RUN)


def test_table1_verdict_of_an_imagenet_record_reads_the_inception_scores():
    near = {"inception_is": 18.0, "inception_fid": 15.0, "inception_is_std": 0.1}
    rec = _record("imagenet32", "imagenet128", inception=near)
    rows = {(r["item"], r["ours"].split(":")[0]): r["verdict"] for r in I.paper_rows(rec)}
    assert rows[("Fig. 5 / Table 1", "ImageNet32 conditional EBM")] == "reproduced"       # 18.0 / 15.0 vs 18.22 / 14.31
    assert rows[("Fig. 5 / Table 1", "ImageNet128 conditional EBM")] == "not reproduced"  # vs 28.6 / 43.7
    summary = I.summary_rows(_record()["metrics"], rec)
    assert any("IS 18.00 / FID 15.00" in r[3] for r in summary)


def test_paper_record_ignores_a_standin_record(tmp_path):
    import json
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_record()))
    assert I.paper_record(str(path)) is None
    path.write_text(json.dumps(_record("imagenet32", "imagenet128")))
    assert I.paper_record(str(path))["written"].startswith("2026")
    assert I.paper_record(os.path.join(tmp_path, "missing.json")) is None


def test_the_committed_demo_record_renders_on_the_results_page():
    from ebmlib import results_page as R
    path = R.ROOT / "book" / "results" / "12_imagenet.json"
    if not path.is_file():
        pytest.skip("chapter 12 has no committed demo record yet")
    rows = R.collect_rows()
    assert any(r["chapter"] == "12_imagenet" for r in rows.get("Fig. 4", []))
    assert np.isfinite(float(rows["Fig. 4"][0]["ours"].split("; ")[1].split("%")[0]))


def _convert(root, done):
    from ebmlib.data.imagenet import imagenet32_memmap as convert
    done.put(len(convert("train", root)))


def test_ranks_arriving_together_convert_once_the_others_wait(tmp_path):
    """While one process holds the conversion lock, another that needs the memmap waits for it instead of
    writing its own copy; once released, it reads the finished file."""
    import fcntl
    import multiprocessing as mp
    write_imagenet32(tmp_path, n_per_batch=3, n_val=4)
    lock = tmp_path / "imagenet32" / ".train_memmap.lock"
    ctx = mp.get_context("spawn")
    done = ctx.Queue()
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    child = ctx.Process(target=_convert, args=(tmp_path, done))
    child.start()
    try:
        child.join(timeout=4)
        assert child.is_alive()                                   # blocked on the lock
        assert not (tmp_path / "imagenet32" / "train_images.u8").exists()
    finally:
        os.close(fd)                                              # release: the child converts and finishes
    child.join(timeout=60)
    assert child.exitcode == 0 and done.get(timeout=5) == 30
    assert not list((tmp_path / "imagenet32").glob("*.partial*"))
