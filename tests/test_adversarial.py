"""Tests for ebmlib.chapters.ood_robustness.adversarial: lowest-energy logits, PGD, section 4.4's defence (one
chain per class), the marginal-energy comparison, chain statistics, transfer attacks and robustness curves."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from ebmlib.chapters.ood_robustness.adversarial import (ChainStats, bounded_langevin, class_chains, class_energies,
                                                        defended_energies, defended_logits, ebm_logits,
                                                        marginal_defence, marginal_energy, pgd, robustness_curve,
                                                        transfer_curves, worst_case)
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
        class_chains(model, x, bound=-1)
    with pytest.raises(ValueError, match="bound"):
        marginal_defence(model, x, bound=-1)
    with pytest.raises(ValueError, match="n_classes"):
        class_energies(MNISTConvEnergy(width=2), x)


def with_class_changed(model, c=1, seed=5):
    """A copy of ``model`` whose class ``c`` has new gains and biases in every layer: E(., c) changes, every other
    class's energy stays exactly the same."""
    other = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for cond in other.cond:
            cond.gain.weight[c] = 1.0 + 0.5 * torch.randn(cond.gain.weight.shape[1], generator=g)
            cond.bias.weight[c] = 0.5 * torch.randn(cond.bias.weight.shape[1], generator=g)
    return other.eval()


def test_defended_logit_of_a_class_depends_only_on_its_own_chain(model):
    """Section 4.4 runs one chain "from each conditional model": the defended logit of class 0 must not move when
    only class 1's energy changes (one chain on the marginal energy, which mixes all classes, fails this)."""
    x = images(5)
    other = with_class_changed(model, c=1)
    torch.testing.assert_close(class_energies(other, x)[:, 0], class_energies(model, x)[:, 0], rtol=0, atol=0)
    assert not torch.allclose(class_energies(other, x)[:, 1], class_energies(model, x)[:, 1])
    a = defended_logits(model, n_steps=4, bound=0.03, seed=3)(x)
    b = defended_logits(other, n_steps=4, bound=0.03, seed=3)(x)
    torch.testing.assert_close(a[:, [0, 2]], b[:, [0, 2]], rtol=0, atol=0)
    assert (a[:, 1] - b[:, 1]).abs().min() > 1e-4
    # the marginal-energy comparison is NOT class-separable: there class 0's logit moves with class 1's energy
    ma = defended_logits(model, n_steps=4, bound=0.03, seed=3, chains="marginal")(x)
    mb = defended_logits(other, n_steps=4, bound=0.03, seed=3, chains="marginal")(x)
    assert (ma[:, 0] - mb[:, 0]).abs().max() > 1e-6


def test_defended_energies_read_each_class_at_its_own_chain_end(model):
    """E(x_c, c) with x_c the end of a chain on E(., c) alone, from x: checked against a chain run by hand."""
    x = images(3)
    kw = dict(n_steps=3, bound=0.05, noise_std=0.0)   # no noise: the hand-run chain must match exactly
    e = defended_energies(model, x, **kw)
    ends = class_chains(model, x, **kw)
    assert e.shape == (3, 3) and ends.shape == (3, 3, 1, 28, 28)
    for c in range(3):
        yc = torch.full((3,), c)
        by_hand = bounded_langevin(lambda v: model(v, yc), x, **kw)
        torch.testing.assert_close(ends[:, c], by_hand, rtol=0, atol=1e-6)
        with torch.no_grad():
            torch.testing.assert_close(e[:, c], model(by_hand, yc), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(ends[:, 0], ends[:, 1])   # different energies, different chains
    # each chain lowers its own class's energy, stays within the bound and in [0, 1]
    assert (e < class_energies(model, x).detach()).float().mean() > 0.9
    assert (ends - x.unsqueeze(1)).abs().max() <= 0.05 + 1e-6 and ends.min() >= 0 and ends.max() <= 1


def test_class_chains_deterministic_detached_and_differentiable(model):
    x = images(4)
    x0 = x.clone()
    out = class_chains(model, x, n_steps=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, x0) and not out.requires_grad
    again = class_chains(model, x, n_steps=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    xr = x.clone().requires_grad_(True)
    diff = class_chains(model, xr, n_steps=3, generator=torch.Generator().manual_seed(0), differentiable=True)
    torch.testing.assert_close(diff.detach(), out)
    (g,) = torch.autograd.grad(diff.sum(), xr)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())   # frozen() restored the flags


def test_marginal_defence_lowers_the_marginal_energy(model):
    x = images(6)
    out = marginal_defence(model, x, n_steps=5, bound=0.03, generator=torch.Generator().manual_seed(0))
    assert (out - x).abs().max() <= 0.03 + 1e-6 and out.min() >= 0 and out.max() <= 1
    assert marginal_energy(model, out).mean() < marginal_energy(model, x).mean()
    again = marginal_defence(model, x, n_steps=5, bound=0.03, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_chain_stats_count_where_the_clip_bound_and_clamp_act(model):
    x = images(2)
    n_values = 4 * 3 * 2 * 28 * 28   # steps x classes x images x pixels
    loose = ChainStats()
    class_chains(model, x, n_steps=4, bound=10.0, grad_clip=1e6, noise_std=0.0, stats=loose)
    assert loose.steps == 4 and loose.values == n_values
    assert loose.clipped == 0 and loose.at_bound == 0 and loose.max_abs_grad > 0
    tight = ChainStats()
    class_chains(model, x, n_steps=4, bound=10.0, grad_clip=1e-9, noise_std=0.0, stats=tight)
    assert tight.fraction("clipped") > 0.9 and tight.at_bound == 0
    held = ChainStats()
    class_chains(model, x, n_steps=4, bound=1e-7, grad_clip=None, noise_std=0.0, stats=held)
    assert held.clipped == 0 and held.fraction("at_bound") > 0.5
    # pixels at 0 pushed below 0 are counted by the clamp
    black = ChainStats()
    class_chains(model, torch.zeros(2, 1, 28, 28), n_steps=2, noise_std=0.1, stats=black,
                 generator=torch.Generator().manual_seed(0))
    assert 0.3 < black.fraction("clamped") < 0.7
    d = tight.as_dict()
    assert d["clipped_fraction"] == tight.clipped / tight.values and d["steps"] == 4
    with pytest.raises(ValueError, match="'bogus'"):
        tight.fraction("bogus")
    # the defended classifier counts over every call
    s = ChainStats()
    f = defended_logits(model, n_steps=2, stats=s)
    with torch.no_grad():
        f(x)
        f(x)
    assert s.steps == 4


def test_defended_logits_deterministic_and_attackable(model):
    x, y = images(3), torch.tensor([0, 1, 2])
    f = defended_logits(model, n_steps=2, bound=0.03)
    torch.testing.assert_close(f(x), f(x), rtol=0, atol=0)
    with torch.no_grad():   # detached chain: the same values
        torch.testing.assert_close(f(x), defended_logits(model, n_steps=2, bound=0.03)(x), rtol=0, atol=1e-6)
    x_adv = pgd(f, x, y, 0.03, steps=2, generator=torch.Generator().manual_seed(0))
    assert (x_adv - x).abs().max() <= 0.03 + 1e-6
    assert all(p.grad is None for p in model.parameters())
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(f(xr), y), xr)
    assert g.abs().sum() > 0   # a gradient through all C chains reaches the input
    with pytest.raises(ValueError, match="options"):
        defended_logits(model, stepsize=1.0)
    with pytest.raises(ValueError, match="'joint'"):
        defended_logits(model, chains="joint")


# -- transfer attacks --------------------------------------------------------------------------------------------
class Recording:
    """A classifier that records what it is asked to classify and whether gradients were on."""

    def __init__(self, fn):
        self.fn, self.inputs, self.grad_on = fn, [], []

    def __call__(self, x):
        self.inputs.append(x.detach().clone())
        self.grad_on.append(torch.is_grad_enabled() or x.requires_grad)
        return self.fn(x)


def test_transfer_examples_come_from_the_source_not_the_target():
    g = torch.Generator().manual_seed(4)
    x = 0.3 + 0.4 * torch.rand(6, 1, 4, 4, generator=g)
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    source, target = Linear2(16, seed=1), Recording(Linear2(16, seed=2))
    eps = [0.0, 0.05, 0.2]
    out = transfer_curves(source, {"target": target, "source": source}, x, y, eps, "linf", steps=5, batch_size=4,
                          generator=torch.Generator().manual_seed(9), progress=False)
    assert set(out) == {"target", "source"} and out["target"].shape == (3, 6) and out["target"].dtype == torch.bool
    assert not any(target.grad_on)                      # the target is only evaluated, never differentiated
    gen = torch.Generator().manual_seed(9)
    expected = []
    for e in eps:
        for i in range(0, 6, 4):
            expected.append(pgd(source, x[i:i + 4], y[i:i + 4], e, "linf", steps=5, generator=gen))
    assert len(target.inputs) == len(expected)
    for got, want in zip(target.inputs, expected):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    own = pgd(target.fn, x[:4], y[:4], 0.2, "linf", steps=5, generator=torch.Generator().manual_seed(9))
    assert not torch.allclose(target.inputs[4], own)     # attacking the target itself would give other images
    # accuracy bookkeeping: the target's correctness on the source's examples
    for k in range(3):
        batch = torch.cat(target.inputs[2 * k:2 * k + 2])
        assert torch.equal(out["target"][k], target.fn(batch).argmax(1) == y)
    assert out["source"][2].float().mean() <= out["source"][0].float().mean()
    with pytest.raises(ValueError, match="targets"):
        transfer_curves(source, {}, x, y, eps, progress=False)


def test_worst_case_is_the_per_image_and():
    a = torch.tensor([[True, True, False], [True, False, False]])
    b = torch.tensor([[True, False, True], [False, True, False]])
    assert torch.equal(worst_case([a, b]), torch.tensor([[True, False, False], [False, False, False]]))
    assert torch.equal(worst_case([a]), a) and worst_case([a]) is not a
    with pytest.raises(ValueError, match="shape"):
        worst_case([a, a[:, :2]])
    with pytest.raises(ValueError, match="at least one"):
        worst_case([])


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
