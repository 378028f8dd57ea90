"""Tests for ebmlib.adversarial: lowest-energy logits, PGD, the Langevin defence and robustness curves."""
import math

import pytest
import torch
import torch.nn.functional as F

from ebmlib.chapters.ood_robustness.adversarial import (class_energies, defended_logits, ebm_logits, langevin_defence, marginal_energy, pgd,
                                robustness_curve)
from ebmlib.core.nets import MNISTConvEnergy


def tiny_model(seed=0, n_classes=3):
    """A width-2 conditional MNIST energy with random class gains/biases (the default init makes classes identical)."""
    torch.manual_seed(seed)
    m = MNISTConvEnergy(width=2, n_classes=n_classes)
    with torch.no_grad():
        for cond in m.cond:
            cond.gain.weight.normal_(1.0, 0.5)
            cond.bias.weight.normal_(0.0, 0.5)
    return m.eval()


def images(n=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g)


class Linear2:
    """logits = x.flatten() @ W.T for two classes; w_diff = W[y] - W[1 - y]."""

    def __init__(self, dim, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.W = torch.randn(2, dim, generator=g)

    def __call__(self, x):
        return x.flatten(1) @ self.W.T


@pytest.fixture
def model():
    return tiny_model()


def test_class_energies_matches_loop_and_logits_argmax(model):
    x = images()
    e = class_energies(model, x)
    loop = torch.stack([model(x, torch.full((4,), c)) for c in range(3)], dim=1)
    assert e.shape == (4, 3)
    torch.testing.assert_close(e, loop, rtol=1e-5, atol=1e-5)
    assert (ebm_logits(model, x).argmax(1) == e.argmin(1)).all()
    torch.testing.assert_close(marginal_energy(model, x), -torch.logsumexp(-e, 1))
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(class_energies(model, xr).sum(), xr)
    assert g.abs().sum() > 0


def test_pgd_raises_loss_and_respects_balls(model):
    x, y = images(), torch.tensor([0, 1, 2, 0])
    f = lambda z: ebm_logits(model, z)
    clean = F.cross_entropy(f(x), y).item()
    assert clean < 3 * math.log(3)   # not saturated
    for norm, eps in [("linf", 0.05), ("l2", 1.0)]:
        x_adv = pgd(f, x, y, eps, norm=norm, steps=5, generator=torch.Generator().manual_seed(0))
        assert F.cross_entropy(f(x_adv), y).item() > clean
        d = x_adv - x
        if norm == "linf":
            assert d.abs().max() <= eps + 1e-6
        else:
            assert (d.flatten(1).norm(dim=1) <= eps + 1e-5).all()
        assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert all(p.grad is None for p in model.parameters())


def test_pgd_reaches_linear_optimum():
    g = torch.Generator().manual_seed(3)
    x = 0.3 + 0.4 * torch.rand(5, 1, 4, 4, generator=g)   # away from the [0, 1] walls
    y = torch.tensor([0, 1, 0, 1, 1])
    f = Linear2(16)
    w_diff = (f.W[y] - f.W[1 - y]).reshape(x.shape)
    eps = 0.05
    for random_start in (False, True):
        x_inf = pgd(f, x, y, eps, "linf", steps=20, random_start=random_start, generator=g)
        torch.testing.assert_close(x_inf, x - eps * w_diff.sign(), atol=1e-6, rtol=0)
    x_l2 = pgd(f, x, y, 0.1, "l2", steps=20, random_start=False)
    unit = w_diff / w_diff.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
    torch.testing.assert_close(x_l2, x - 0.1 * unit, atol=1e-5, rtol=0)
    # from a random start the off-direction part shrinks by eps / (eps + step_size) per step
    x_l2r = pgd(f, x, y, 0.1, "l2", steps=60, step_size=0.025, generator=g)
    torch.testing.assert_close(x_l2r, x - 0.1 * unit, atol=1e-4, rtol=0)


def test_pgd_eps_zero_and_bad_inputs(model):
    x, y = images(2), torch.tensor([0, 1])
    f = lambda z: ebm_logits(model, z)
    assert torch.equal(pgd(f, x, y, 0.0), x)
    with pytest.raises(ValueError, match="eps"):
        pgd(f, x, y, -0.1)
    with pytest.raises(ValueError, match="norm"):
        pgd(f, x, y, 0.1, norm="l1")
    with pytest.raises(ValueError, match="steps"):
        pgd(f, x, y, 0.1, steps=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pgd(f, x + 2, y, 0.1)
    with pytest.raises(ValueError, match="y"):
        pgd(f, x, torch.tensor([0.0, 1.0]), 0.1)
    with pytest.raises(ValueError, match="eps"):
        robustness_curve(f, x, y, [0.0, -1.0], "linf", progress=False)
    with pytest.raises(ValueError, match="norm"):
        robustness_curve(f, x, y, [0.1], "l3", progress=False)
    with pytest.raises(ValueError, match="bound"):
        langevin_defence(model, x, bound=-1)
    with pytest.raises(ValueError, match="n_classes"):
        class_energies(MNISTConvEnergy(width=2), x)


def test_langevin_defence(model):
    x = images(6)
    x0 = x.clone()
    out = langevin_defence(model, x, n_steps=5, bound=0.03, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, x0) and not out.requires_grad
    assert (out - x).abs().max() <= 0.03 + 1e-6
    assert out.min() >= 0 and out.max() <= 1
    assert marginal_energy(model, out).mean() < marginal_energy(model, x).mean()
    again = langevin_defence(model, x, n_steps=5, bound=0.03, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    # differentiable version: same values, and a non-zero input gradient through the chain
    xr = x.clone().requires_grad_(True)
    diff = langevin_defence(model, xr, n_steps=5, bound=0.03, generator=torch.Generator().manual_seed(0),
                            differentiable=True)
    torch.testing.assert_close(diff.detach(), out)
    (g,) = torch.autograd.grad(ebm_logits(model, diff)[:, 0].sum(), xr)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())   # frozen() restored the flags


def test_defended_logits_deterministic_and_attackable(model):
    x, y = images(3), torch.tensor([0, 1, 2])
    f = defended_logits(model, n_steps=2, bound=0.03)
    torch.testing.assert_close(f(x), f(x), rtol=0, atol=0)
    x_adv = pgd(f, x, y, 0.03, steps=2, generator=torch.Generator().manual_seed(0))
    assert (x_adv - x).abs().max() <= 0.03 + 1e-6
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="options"):
        defended_logits(model, stepsize=1.0)


def test_robustness_curve(model):
    x = images(8)
    y = ebm_logits(model, x).argmax(1)   # clean accuracy 1 by construction
    f = lambda z: ebm_logits(model, z)
    accs = robustness_curve(f, x, y, [0.0, 0.02, 0.2], "linf", steps=5, batch_size=3, progress=False,
                            generator=torch.Generator().manual_seed(0))
    assert len(accs) == 3 and accs[0] == 1.0
    assert accs[-1] <= accs[0] and all(0 <= a <= 1 for a in accs)


# -- the undefended baseline ---------------------------------------------------------------------------------------
def test_baseline_classifier_recipe_matches_train_classifier_on_mnist_and_fits_cifar():
    from ebmlib.core import recipes
    from ebmlib.core.classifiers import CIFARClassifier, ClassifierRecipe, MNISTClassifier, train_classifier
    from ebmlib.core.images import ImageData

    g = torch.Generator().manual_seed(0)
    mnist = ImageData(torch.randint(0, 256, (24, 1, 28, 28), dtype=torch.uint8, generator=g),
                      torch.randint(0, 10, (24,), generator=g), [str(k) for k in range(10)])
    ours = recipes.train(ClassifierRecipe("cnn", "mnist", epochs=1), data=mnist, progress=False, device="cpu").model
    ref = train_classifier(mnist, epochs=1, progress=False)      # the chapter's CNN before the recipe layer
    assert isinstance(ours, MNISTClassifier)
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), ref.state_dict().values()))
    cifar = ImageData(torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=g),
                      torch.randint(0, 10, (8,), generator=g), [str(k) for k in range(10)])
    net = recipes.train(ClassifierRecipe("cnn", "cifar10", epochs=1), data=cifar, progress=False, device="cpu").model
    assert isinstance(net, CIFARClassifier) and not net.training
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_pgd_random_start_draws_on_the_generators_device():
    # a CPU generator drives the random start whatever device the images are on; same draws as before on the CPU
    x, y = torch.full((3, 1, 4, 4), 0.5), torch.tensor([0, 1, 0])
    w = torch.randn(2, 16, generator=torch.Generator().manual_seed(1))
    fn = lambda v: v.flatten(1) @ w.t()   # noqa: E731
    a = pgd(fn, x, y, 0.1, "l2", steps=1, generator=torch.Generator().manual_seed(2))
    b = pgd(fn, x, y, 0.1, "l2", steps=1, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and ((a - x).flatten(1).norm(dim=1) <= 0.1 + 1e-6).all()
