"""Tests for ebmlib.ood: AUROC convention, energy scores, OOD set builders, PPCA baseline, table."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from ebmlib.core.nets import MNISTConvEnergy
from ebmlib.chapters.ood_robustness.ood import (PCAGaussian, TEXTURE_IMAGES, auroc, cifar_ood_sets, constant_images, energy_scores, interpolations,
                        mnist_ood_sets, ood_sets, ood_table, relative_log_likelihood, texture_crops, uniform_noise)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------------- auroc
def test_auroc_chance_for_same_distribution():
    g = gen(1)
    a, b = torch.randn(2000, generator=g), torch.randn(2000, generator=g)
    assert abs(auroc(a, b) - 0.5) < 0.05


def test_auroc_extremes_and_direction():
    low, high = torch.arange(10.0), torch.arange(10.0) + 100
    # OOD (second argument) scoring higher = correctly flagged as more OOD.
    assert auroc(low, high) == 1.0
    assert auroc(high, low) == 0.0
    # numpy and lists work too; ties count one half
    assert auroc(np.zeros(5), [0.0] * 7) == 0.5


@pytest.mark.parametrize("a, b", [([], [1.0]), ([1.0], []), ([1.0, float("nan")], [2.0]),
                                  ([1.0], [float("inf")]), (np.zeros((2, 2)), [1.0])])
def test_auroc_bad_inputs(a, b):
    with pytest.raises(ValueError):
        auroc(a, b)


# ----------------------------------------------------------------------------------------- energy scores
def test_energy_scores_unconditional_matches_model():
    torch.manual_seed(0)
    model = MNISTConvEnergy(width=2)
    model.eval()
    x = torch.rand(7, 1, 28, 28)
    s = energy_scores(model, x, batch_size=3)
    assert s.shape == (7,)
    with torch.no_grad():
        assert torch.allclose(s, model(x), atol=1e-6)


def test_energy_scores_conditional_free_energy_and_labels():
    torch.manual_seed(0)
    model = MNISTConvEnergy(width=2, n_classes=3)
    # make the class conditioning matter
    for m in model.cond:
        torch.nn.init.normal_(m.gain.weight, 1.0, 0.5)
        torch.nn.init.normal_(m.bias.weight, 0.0, 0.5)
    model.train()
    x = torch.rand(5, 1, 28, 28)
    s = energy_scores(model, x, batch_size=2)
    assert model.training  # mode restored
    model.eval()
    with torch.no_grad():
        e = torch.stack([model(x, torch.full((5,), c, dtype=torch.long)) for c in range(3)], 1)
        brute = torch.tensor([-math.log(sum(math.exp(-float(e[i, c])) for c in range(3))) for i in range(5)])
        assert torch.allclose(s, brute, atol=1e-5)
        y = torch.tensor([0, 1, 2, 1, 0])
        assert torch.allclose(energy_scores(model, x, y), model(x, y), atol=1e-6)
    # the free energy lies below every per-class energy
    assert (s <= e.min(1).values + 1e-6).all()


def test_energy_scores_bad_inputs():
    model = MNISTConvEnergy(width=2)
    with pytest.raises(ValueError):
        energy_scores(model, torch.rand(0, 1, 28, 28))
    with pytest.raises(ValueError):
        energy_scores(model, torch.rand(2, 1, 28, 28), batch_size=0)
    with pytest.raises(ValueError):
        energy_scores(model, torch.rand(2, 1, 28, 28), y=torch.zeros(2, dtype=torch.long))


# ------------------------------------------------------------------------------------------------ builders
@pytest.mark.parametrize("build", [constant_images, uniform_noise, texture_crops])
def test_builders_shape_range_determinism(build):
    a = build(6, gen(3))
    b = build(6, gen(3))
    c = build(6, gen(4))
    assert a.shape == (6, 1, 28, 28) and a.dtype == torch.float32
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_constant_images_are_constant():
    x = constant_images(5, gen())
    flat = x.flatten(1)
    assert torch.equal(flat, flat[:, :1].expand_as(flat))
    assert flat[:, 0].unique().numel() == 5


def test_texture_crops_have_texture_and_other_size():
    x = texture_crops(20, gen(), size=16)
    assert x.shape == (20, 1, 16, 16)
    assert x.flatten(1).std(1).median() > 0.03  # not flat patches
    assert len(TEXTURE_IMAGES) >= 3 and {"brick", "grass", "gravel"} <= set(TEXTURE_IMAGES)


def test_interpolations_lie_between_parents():
    x = torch.rand(4, 1, 28, 28, generator=gen(5))
    mix = interpolations(x, 10, gen(6), alpha=0.3)
    assert mix.shape == (10, 1, 28, 28)
    assert torch.equal(mix, interpolations(x, 10, gen(6), alpha=0.3))
    for m in mix:
        # find the distinct parent pair that produced m
        found = [(i, j) for i in range(4) for j in range(4)
                 if i != j and torch.allclose(m, 0.3 * x[i] + 0.7 * x[j], atol=1e-6)]
        assert len(found) == 1
        i, j = found[0]
        lo, hi = torch.minimum(x[i], x[j]), torch.maximum(x[i], x[j])
        assert (m >= lo - 1e-6).all() and (m <= hi + 1e-6).all()


def test_builder_bad_inputs():
    with pytest.raises(ValueError):
        constant_images(0, gen())
    with pytest.raises(ValueError):
        interpolations(torch.rand(1, 1, 28, 28), 3, gen())
    with pytest.raises(ValueError):
        interpolations(torch.rand(3, 1, 28, 28), 3, gen(), alpha=1.5)
    with pytest.raises(ValueError):
        interpolations(torch.rand(3, 1, 28, 28) * 2, 3, gen())


def test_mnist_ood_sets():
    in_test = torch.rand(8, 1, 28, 28, generator=gen())
    other = torch.rand(20, 1, 28, 28, generator=gen(1))
    sets = mnist_ood_sets(in_test, 5, gen(2), other=other, other_name="F")
    assert list(sets) == ["F", "textures", "constant", "uniform noise", "interpolation"]
    assert torch.equal(sets["F"], other[:5])
    for v in sets.values():
        assert v.shape == (5, 1, 28, 28) and v.min() >= 0 and v.max() <= 1
    again = mnist_ood_sets(in_test, 5, gen(2))
    assert list(again) == ["textures", "constant", "uniform noise", "interpolation"]
    assert all(torch.equal(again[k], sets[k]) for k in again)
    with pytest.raises(ValueError, match="does not match"):
        mnist_ood_sets(in_test, 5, gen(), other=torch.rand(5, 1, 32, 32))


# ------------------------------------------------------------------------------------------------ ood_table
def test_ood_table():
    in_x = torch.zeros(10, 1, 4, 4)
    sets = {"far": torch.ones(6, 1, 4, 4), "same": torch.zeros(7, 1, 4, 4)}
    score = lambda x: x.flatten(1).sum(1)
    t = ood_table(score, in_x, sets)
    assert set(t) == {"far", "same", "average"}
    assert t["far"] == 1.0 and t["same"] == 0.5 and t["average"] == 0.75
    with pytest.raises(ValueError, match="image shape"):
        ood_table(score, in_x, {"bad": torch.ones(3, 1, 5, 5)})
    with pytest.raises(ValueError):
        ood_table(lambda x: torch.full((x.shape[0],), float("nan")), in_x, sets)
    with pytest.raises(ValueError):
        ood_table(lambda x: x.flatten(1), in_x, sets)  # wrong score shape
    with pytest.raises(ValueError):
        ood_table(score, in_x, {})


# ----------------------------------------------------------------------------------------- PCA baseline
def test_pca_gaussian_matches_exact_gaussian_density():
    rng = np.random.default_rng(0)
    d, k, n = 10, 3, 4000
    w = rng.normal(size=(d, k)) * 2.0
    mu = rng.normal(size=d)
    cov_true = w @ w.T + 0.3 * np.eye(d)
    x = rng.multivariate_normal(mu, cov_true, size=n)
    model = PCAGaussian(n_components=k).fit(torch.from_numpy(x))
    lp = model.log_prob(torch.from_numpy(x))
    assert lp.shape == (n,)
    mean, cov = model.mean_and_covariance()
    exact = multivariate_normal(mean, cov).logpdf(x)
    np.testing.assert_allclose(lp.numpy(), exact, rtol=1e-8, atol=1e-8)
    # and the fit is close to the truth: average log density within 0.05 nats of the true Gaussian's
    truth = multivariate_normal(mu, cov_true).logpdf(x)
    assert abs(lp.mean().item() - truth.mean()) < 0.05
    # far-away points are less likely
    far = torch.from_numpy(x[:200] + 20.0)
    assert model.log_prob(far).max() < lp.min()
    assert auroc(-lp, -model.log_prob(far)) == 1.0


def test_pca_gaussian_images_and_bad_inputs():
    x = torch.rand(60, 1, 6, 6, generator=gen())
    m = PCAGaussian(n_components=5).fit(x)
    assert m.log_prob(x[:3]).shape == (3,)
    with pytest.raises(ValueError, match="fitted on"):
        m.log_prob(torch.rand(3, 1, 5, 5))
    with pytest.raises(ValueError, match="not fitted"):
        PCAGaussian(3).log_prob(x)
    with pytest.raises(ValueError, match="n_components"):
        PCAGaussian(36).fit(x)
    with pytest.raises(ValueError):
        PCAGaussian(0)
    with pytest.raises(ValueError, match="variance"):
        PCAGaussian(2).fit(torch.zeros(10, 1, 3, 3))
    with pytest.raises(ValueError, match="noise variance"):  # variance only in 2 of 9 pixels
        PCAGaussian(2).fit(torch.nn.functional.pad(torch.rand(10, 1, 1, 2, generator=gen()), (0, 1, 0, 2)))


# ------------------------------------------------------------------------------------------------- Fig. 10
def test_relative_log_likelihood():
    r = relative_log_likelihood({"in": torch.tensor([1.0, 3.0]), "out": torch.tensor([5.0])}, "in")
    assert torch.allclose(r["in"].mean(), torch.tensor(0.0, dtype=torch.float64))
    assert torch.allclose(r["out"], torch.tensor([-3.0], dtype=torch.float64))
    with pytest.raises(ValueError):
        relative_log_likelihood({"in": torch.ones(2)}, "missing")


# ------------------------------------------------------------------------------------------ CIFAR-10 sets
def test_constant_and_uniform_colour_channels():
    c = constant_images(5, gen(3), size=32, channels=3)
    assert c.shape == (5, 3, 32, 32)
    flat = c.flatten(2)
    assert torch.equal(flat.amin(2), flat.amax(2))              # constant over space in every channel
    assert (c[:, 0, 0, 0] != c[:, 1, 0, 0]).all()                # a colour, not grey
    u = uniform_noise(4, gen(3), size=32, channels=3)
    assert u.shape == (4, 3, 32, 32) and 0 <= u.min() and u.max() < 1
    # one channel draws exactly what the grey sets always drew (the MNIST results do not move)
    assert torch.equal(constant_images(5, gen(3)), torch.rand(5, 1, 1, 1, generator=gen(3)).expand(5, 1, 28, 28))
    with pytest.raises(ValueError, match="channels"):
        uniform_noise(2, channels=0)


def test_cifar_ood_sets_shapes_order_and_checks():
    g = gen(0)
    x = torch.rand(12, 3, 32, 32, generator=g)
    svhn, dtd = torch.rand(20, 3, 32, 32, generator=g), torch.rand(4, 3, 32, 32, generator=g)
    sets = cifar_ood_sets(x, 8, gen(1), svhn=svhn, textures=dtd)
    assert list(sets) == ["svhn", "textures", "constant", "uniform noise", "interpolation"]
    assert sets["svhn"].shape == (8, 3, 32, 32) and sets["textures"].shape == (4, 3, 32, 32)   # DTD may be smaller
    for k in ("constant", "uniform noise", "interpolation"):
        assert sets[k].shape == (8, 3, 32, 32)
    again = cifar_ood_sets(x, 8, gen(1), svhn=svhn, textures=dtd)
    assert all(torch.equal(sets[k], again[k]) for k in sets)
    assert list(cifar_ood_sets(x, 3, gen(1))) == ["constant", "uniform noise", "interpolation"]
    with pytest.raises(ValueError, match="CIFAR-10"):
        cifar_ood_sets(torch.rand(4, 1, 28, 28), 3)
    with pytest.raises(ValueError, match="svhn"):
        cifar_ood_sets(x, 3, svhn=torch.rand(4, 1, 32, 32))


def test_ood_sets_dispatches_and_loads_companion_sets():
    class Fake:
        def __init__(self, shape, n=30):
            self.images = torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=gen(5))

        def subset(self, n, generator):
            return self

        def continuous(self, generator):
            return self.images.float() / 256

    asked = []

    def load(name, split):
        asked.append((name, split))
        return Fake((3, 32, 32) if name in ("svhn", "dtd") else (1, 28, 28))

    sets = ood_sets("cifar10", torch.rand(6, 3, 32, 32), 5, gen(0), load=load)
    assert asked == [("svhn", "test"), ("dtd", "test")] and list(sets)[:2] == ["svhn", "textures"]
    asked.clear()
    sets = ood_sets("fashion", torch.rand(6, 1, 28, 28), 5, gen(0), load=load)
    assert asked == [("mnist", "test")] and list(sets)[0] == "mnist" and sets["mnist"].shape == (5, 1, 28, 28)
    with pytest.raises(ValueError, match="'svhn'"):
        ood_sets("svhn", torch.rand(6, 3, 32, 32), 5, load=load)
