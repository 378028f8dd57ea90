"""Recipes, shipped checkpoints and the `train` CLI on a few iterations of a tiny image EBM."""
import dataclasses

import pytest
import torch

from ebmlib.core import pretrained
from ebmlib.core.checkpoint import CheckpointError
from ebmlib.core.images import ImageData


def tiny_data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ImageData(torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8),
                     torch.randint(0, 10, (n,), generator=g), [str(i) for i in range(10)])


def tiny_recipe(**kw):
    spec = dict(name="mnist_tiny", width=2, n_iters=4, snapshot_every=2, keep_buffer=16,
                train=dict(batch_size=8, n_steps=2, checkpoint_every=2, lr=1e-3))
    spec.update(kw)
    return pretrained.Recipe(**spec)


@pytest.mark.parametrize("conditional,init", [(False, "replay"), (True, "noise"), (True, "persistent")])
def test_train_save_load_round_trip(tmp_path, conditional, init):
    recipe = tiny_recipe(conditional=conditional, train=dict(tiny_recipe().train, init=init))
    t = pretrained.train_recipe(recipe, tiny_data(), progress=False)
    assert len(t.history) == 4 and sorted(t.snapshots) == [2, 4]
    assert t.buffer.shape == (8 if init == "persistent" else 16, 1, 28, 28)
    assert t.snapshots[4].shape[1:] == (1, 28, 28) and 0 <= t.buffer.min() and t.buffer.max() <= 1
    path = pretrained.save_trained(t, tmp_path / "m.pt")
    back = pretrained.load_trained(path)
    assert back.recipe == recipe and back.history == t.history and back.source == str(path)
    x = torch.rand(3, 1, 28, 28)
    y = torch.tensor([1, 2, 3]) if conditional else None
    with torch.no_grad():
        e1 = t.model(x) if y is None else t.model(x, y)
        e2 = back.model(x) if y is None else back.model(x, y)
    assert torch.allclose(e1, e2, atol=1e-6)
    assert (back.buffer - t.buffer).abs().max() <= 0.5 / 255 + 1e-6   # uint8 storage


def test_load_or_train_uses_a_checkpoint_only_for_its_exact_recipe(tmp_path):
    data = tiny_data()
    first = pretrained.load_or_train(tiny_recipe(), data, shipped_dir=tmp_path / "none", out_dir=tmp_path, progress=False)
    assert first.source == "trained" and (tmp_path / "mnist_tiny.pt").is_file()
    again = pretrained.load_or_train(tiny_recipe(), data, shipped_dir=tmp_path / "none", out_dir=tmp_path, progress=False)
    assert again.source.endswith("mnist_tiny.pt") and again.history == first.history
    changed = pretrained.load_or_train(tiny_recipe(n_iters=2), data, shipped_dir=tmp_path, progress=False)
    assert changed.source == "trained" and len(changed.history) == 2


def test_recipes_from_a_preset_and_bad_fields():
    from ebmlib import presets as scales
    cfg = scales.preset("03_mnist", "smoke")
    rs = pretrained.recipes(cfg.models)
    assert set(rs) == {"mnist_uncond_replay", "mnist_cond_replay", "mnist_cond_noise", "fashion_uncond_replay"}
    assert rs["mnist_cond_noise"].config().init == "noise" and rs["mnist_cond_replay"].conditional
    assert rs["fashion_uncond_replay"].dataset == "fashion" and rs["mnist_cond_noise"].name == "mnist_cond_noise"
    # equal compute: the models differ only in conditioning and chain initialisation
    a, b = rs["mnist_cond_replay"], rs["mnist_cond_noise"]
    assert dataclasses.replace(b, name=a.name, train=dict(b.train, init="replay")) == a
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        tiny_recipe(train=dict(steps=3)).config()
    with pytest.raises(ValueError, match="no network for data set"):
        pretrained.build_model(tiny_recipe(dataset="imagenet32"))   # cifar10 has the A.6 ResNets now


def test_shipped_checkpoints_load_with_weights_only():
    """Every demo recipe of every chapter has its shipped checkpoint, trained by exactly that recipe."""
    from ebmlib import presets as scales
    demo = {}
    for chapter in scales.PRESETS:
        cfg = scales.preset(chapter, "demo")
        if hasattr(cfg, "models") and all(isinstance(v, dict) and "train" in v for v in cfg.models.values()):
            demo.update(pretrained.recipes(cfg.models))
    assert {"mnist_uncond_replay", "mnist_uncond_pcd", "sens_step_1000"} <= set(demo)
    for name, recipe in sorted(demo.items()):
        path = pretrained.SHIPPED_DIR / f"{name}.pt"
        if recipe.dataset == "cifar10":
            continue                                   # paper-scale only: no CPU-trained CIFAR model ships
        t = pretrained.load_trained(path)              # weights_only=True inside
        assert t.recipe == recipe and len(t.history) == recipe.n_iters, name


def test_corrupted_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "mnist_tiny.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        pretrained.load_trained(bad)


def test_cli_train_writes_checkpoints(tmp_path, monkeypatch):
    from ebmlib import cli
    monkeypatch.setattr("ebmlib.data.load_mnist", lambda name, split="train", **kw: tiny_data())
    paths = cli.train_models("03_mnist", "smoke", tmp_path, only=["mnist_cond_noise"])
    assert [p.name for p in paths] == ["mnist_cond_noise.pt"]
    assert pretrained.load_trained(paths[0]).recipe.train["init"] == "noise"
    with pytest.raises(SystemExit, match="unknown models"):
        cli.train_models("03_mnist", "smoke", tmp_path, only=["nope"])
    with pytest.raises(SystemExit, match="no image models"):
        cli.train_models("01_sampling", "smoke", tmp_path)
