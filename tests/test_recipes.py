"""The recipe layer (ebmlib.core.recipes) on a tiny image EBM and a classifier: train, save, load only for the exact
recipe, shipped checkpoints, the `train` command."""
import dataclasses

import pytest
import torch

from ebmlib.core import recipes
from ebmlib.core.classifiers import ClassifierRecipe
from ebmlib.core.image_ebm import ImageEBMRecipe, image_recipes
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
    return ImageEBMRecipe(**spec)


@pytest.mark.parametrize("conditional,init", [(False, "replay"), (True, "noise"), (True, "persistent")])
def test_train_save_load_round_trip(tmp_path, conditional, init):
    recipe = tiny_recipe(conditional=conditional, train=dict(tiny_recipe().train, init=init))
    t = recipes.train(recipe, data=tiny_data(), progress=False, device="cpu")
    assert len(t.history) == 4 and sorted(t.snapshots) == [2, 4]
    assert t.samples.shape == (8 if init == "persistent" else 16, 1, 28, 28)
    assert t.snapshots[4].shape[1:] == (1, 28, 28) and 0 <= t.samples.min() and t.samples.max() <= 1
    path = recipes.save_trained(t, tmp_path / f"{recipe.name}.pt")
    back = recipes.load_trained(recipe, (tmp_path,))
    assert back.recipe == recipe and back.history == t.history and back.source == str(path) and back.loaded
    x = torch.rand(3, 1, 28, 28)
    y = torch.tensor([1, 2, 3]) if conditional else None
    with torch.no_grad():
        e1 = t.model(x) if y is None else t.model(x, y)
        e2 = back.model(x) if y is None else back.model(x, y)
    assert torch.allclose(e1, e2, atol=1e-6)
    assert (back.samples - t.samples).abs().max() <= 0.5 / 255 + 1e-6   # uint8 storage


def test_load_or_train_uses_a_checkpoint_only_for_its_exact_recipe(tmp_path):
    data = tiny_data()
    first = recipes.load_or_train(tiny_recipe(), data=data, shipped_dir=tmp_path / "none", out_dir=tmp_path,
                                  progress=False)
    assert first.source == "trained" and (tmp_path / "mnist_tiny.pt").is_file()
    again = recipes.load_or_train(tiny_recipe(), data=data, shipped_dir=tmp_path / "none", out_dir=tmp_path,
                                  progress=False)
    assert again.source.endswith("mnist_tiny.pt") and again.history == first.history
    changed = recipes.load_or_train(tiny_recipe(n_iters=2), data=data, shipped_dir=tmp_path, progress=False)
    assert changed.source == "trained" and len(changed.history) == 2


def test_recipes_from_a_preset_and_bad_fields():
    from ebmlib import presets
    cfg = presets.preset("03_mnist", "smoke")
    rs = image_recipes(cfg.models)
    assert set(rs) == {"mnist_uncond_replay", "mnist_cond_replay", "mnist_cond_noise", "fashion_uncond_replay"}
    assert rs["mnist_cond_noise"].config().init == "noise" and rs["mnist_cond_replay"].conditional
    assert rs["fashion_uncond_replay"].dataset == "fashion" and rs["mnist_cond_noise"].name == "mnist_cond_noise"
    # equal compute: the models differ only in conditioning and chain initialisation
    a, b = rs["mnist_cond_replay"], rs["mnist_cond_noise"]
    assert dataclasses.replace(b, name=a.name, train=dict(b.train, init="replay")) == a
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        tiny_recipe(train=dict(steps=3)).config()
    with pytest.raises(ValueError, match="no network for data set"):
        tiny_recipe(dataset="imagenet32").build()   # cifar10 has the A.6 ResNets now
    assert image_recipes(cfg.models, seed=3)["mnist_cond_replay"].train["seed"] == 3   # never the shipped seed-0 file


def test_shipped_checkpoints_load_with_weights_only():
    """Every demo recipe of every image chapter has its shipped checkpoint, trained by exactly that recipe."""
    from ebmlib import presets
    demo = {}
    for chapter in ("03_mnist", "05_likelihood", "06_ood_robustness"):
        demo.update(image_recipes(presets.preset(chapter, "demo").models))
    assert {"mnist_uncond_replay", "mnist_uncond_pcd", "sens_step_1000"} <= set(demo)
    for name, recipe in sorted(demo.items()):
        t = recipes.load_trained(recipe, (recipes.SHIPPED_DIR,))      # weights_only=True inside
        assert t is not None, f"no shipped checkpoint of {name} made by its demo recipe"
        assert t.recipe == recipe and len(t.history) == recipe.n_iters, name


def test_corrupted_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "mnist_tiny.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        recipes.load_trained(tiny_recipe(), (tmp_path,))


def test_cli_train_writes_checkpoints(tmp_path, monkeypatch):
    from ebmlib import cli
    monkeypatch.setattr("ebmlib.chapters.mnist.load_images", lambda name, split="train", **kw: tiny_data())
    paths = cli.train_models("03_mnist", "smoke", tmp_path, only=["mnist_cond_noise"])
    assert [p.name for p in paths] == ["mnist_cond_noise.pt"]
    recipe = image_recipes(__import__("ebmlib.presets", fromlist=["x"]).preset("03", "smoke").models)["mnist_cond_noise"]
    assert recipes.load_trained(recipe, (tmp_path,)).recipe.train["init"] == "noise"
    with pytest.raises(ValueError, match="unknown models"):
        cli.train_models("03_mnist", "smoke", tmp_path, only=["nope"])
    with pytest.raises(SystemExit, match="has no trained models"):
        cli.train_models("01_sampling", "smoke", tmp_path)


def test_classifier_recipe_trains_loads_and_draws_its_subset(tmp_path):
    r = ClassifierRecipe("clf_tiny", dataset="mnist", epochs=1, n_train=32, batch_size=16, seed=1)
    t = recipes.load_or_train(r, data=tiny_data(), out_dir=tmp_path, shipped_dir=None, progress=False)
    again = recipes.load_or_train(r, data=tiny_data(), out_dir=tmp_path, shipped_dir=None, progress=False)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert again.loaded and torch.allclose(t.model(x), again.model(x))
    other = recipes.train(ClassifierRecipe("clf_tiny", dataset="mnist", epochs=1, n_train=32, batch_size=16, seed=2),
                          data=tiny_data(), progress=False)
    with torch.no_grad():
        assert not torch.allclose(t.model(x), other.model(x))     # another seed: other weights and subset
    with pytest.raises(ValueError, match="no classifier for data set"):
        ClassifierRecipe("x", dataset="photo_crops_128").build()


def test_load_or_train_all_follows_requires_and_refuses_unknown_names(tmp_path):
    import dataclasses as dc

    @dc.dataclass(frozen=True)
    class Sum(ImageEBMRecipe):
        parts: tuple = ()

        def requires(self):
            return self.parts

    seen = []
    rs = {"a": tiny_recipe(name="a", n_iters=1), "b": tiny_recipe(name="b", n_iters=1),
          "s": Sum(name="s", n_iters=1, train=tiny_recipe().train, parts=("a",))}

    def inputs(recipe, done):
        seen.append((recipe.name, sorted(done)))
        return {"data": tiny_data()}
    out = recipes.load_or_train_all(rs, inputs, only=["s"], shipped_dir=None, progress=False)
    assert sorted(out) == ["a", "s"] and seen == [("a", []), ("s", ["a"])]
    with pytest.raises(ValueError, match="unknown models"):
        recipes.load_or_train_all(rs, inputs, only=["zz"])


# -- partial runs are never passed off as whole ----------------------------------------------------------------------
def _same_trained(a, b):
    assert a.history == b.history and sorted(a.snapshots) == sorted(b.snapshots)
    assert all(torch.equal(a.snapshots[k], b.snapshots[k]) for k in a.snapshots)
    assert torch.equal(a.samples, b.samples)
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))


def test_an_interrupted_image_run_resumes_with_its_earlier_snapshots(tmp_path, monkeypatch):
    """Killed at iteration 5 of 6, the run resumes from its run folder with the snapshots of iterations 2 and 4
    (which it used to lose, saving a model with snapshots {6} only)."""
    from ebmlib.core.train import Trainer
    recipe = tiny_recipe(n_iters=6)
    straight = recipes.train(recipe, data=tiny_data(), progress=False, device="cpu")
    real, calls = Trainer.step, [0]

    def killed_at_5(self):
        calls[0] += 1
        if calls[0] == 5:
            raise KeyboardInterrupt
        return real(self)
    monkeypatch.setattr(Trainer, "step", killed_at_5)
    with pytest.raises(KeyboardInterrupt):
        recipes.load_or_train(recipe, data=tiny_data(), out_dir=tmp_path, shipped_dir=None, progress=False)
    assert not (tmp_path / "mnist_tiny.pt").exists()
    run = tmp_path / ".mnist_tiny_run"
    assert sorted(p.name for p in (run / "snapshots").iterdir()) == ["000000002.pt", "000000004.pt"]
    monkeypatch.setattr(Trainer, "step", real)
    resumed = recipes.load_or_train(recipe, data=tiny_data(), out_dir=tmp_path, shipped_dir=None, progress=False)
    _same_trained(resumed, straight)
    assert recipes.load_trained(recipe, (tmp_path,)).history == straight.history


def test_a_run_folder_of_another_recipe_is_started_over_and_a_longer_recipe_extends_one(tmp_path):
    run = tmp_path / "run"
    recipes.train(tiny_recipe(n_iters=4), data=tiny_data(), progress=False, device="cpu", run_dir=run)
    longer = recipes.train(tiny_recipe(n_iters=6), data=tiny_data(), progress=False, device="cpu", run_dir=run)
    _same_trained(longer, recipes.train(tiny_recipe(n_iters=6), data=tiny_data(), progress=False, device="cpu"))
    with pytest.warns(UserWarning, match=r"holds a run of another recipe \(differing in \['width'\]\); starting"):
        other = recipes.train(tiny_recipe(n_iters=6, width=3), data=tiny_data(), progress=False, device="cpu",
                              run_dir=run)
    _same_trained(other, recipes.train(tiny_recipe(n_iters=6, width=3), data=tiny_data(), progress=False, device="cpu"))
    with pytest.warns(UserWarning, match=r"differing in \['n_iters'\]"):   # shorter: cannot go back
        recipes.train(tiny_recipe(n_iters=2, width=3), data=tiny_data(), progress=False, device="cpu", run_dir=run)


def test_a_file_of_an_interrupted_run_is_refused(tmp_path):
    from ebmlib.core.checkpoint import save_checkpoint
    t = recipes.train(tiny_recipe(), data=tiny_data(), progress=False, device="cpu")
    state = {"recipe": tiny_recipe().as_dict(), "model": t.model.state_dict(), "history": t.history[:3],
             "seconds": 1.0, "snapshots": {"2": recipes._to_uint8(t.snapshots[2])}}
    save_checkpoint(state, tmp_path / "mnist_tiny.pt")
    with pytest.raises(CheckpointError, match=r"holds an interrupted run of recipe 'mnist_tiny' \(3 of 4 iterations; "
                                              r"snapshots \[2\] instead of \[2, 4\] \(missing \[4\]\)\)"):
        recipes.load_trained(tiny_recipe(), (tmp_path,))
    with pytest.raises(recipes.IncompleteRun, match="3 of 4 iterations"):
        recipes.save_trained(recipes.Trained(t.model, tiny_recipe(), t.history[:3], 1.0), tmp_path / "x.pt")
    saved = recipes.save_trained(t, tmp_path / "mnist_tiny.pt")
    from ebmlib.core.checkpoint import load_checkpoint
    assert load_checkpoint(saved)["progress"] == {"iterations": 4, "snapshots": [2, 4]}


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="POSIX")
def test_cli_train_names_a_busy_run_folder(tmp_path, monkeypatch):
    import subprocess
    import sys
    from ebmlib import cli
    monkeypatch.setattr("ebmlib.chapters.mnist.load_images", lambda name, split="train", **kw: tiny_data())
    run = tmp_path / ".mnist_cond_noise_run"
    run.mkdir(parents=True)
    code = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'%d\\n' % os.getpid()); print('held', flush=True); "
            "time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(SystemExit, match=rf"error: {run} is in use by process {proc.pid}"):
            cli.main(["train", "03", "--scale", "smoke", "--only", "mnist_cond_noise", "--out", str(tmp_path)])
    finally:
        proc.kill()
        proc.wait()
    assert not (tmp_path / "mnist_cond_noise.pt").exists()
