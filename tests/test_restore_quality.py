"""Restoration tasks, nearest neighbours, classifier-space FID and conditional image energies."""
import pytest
import torch
from torch import nn

from ebmlib.core.images import ImageData
from ebmlib.core.metrics import nearest_neighbours
from ebmlib.core.classifiers import MNISTClassifier, accuracy, predict, train_classifier
from ebmlib.core.nets import MNISTConvEnergy
from ebmlib.core.quality import classifier_fid
from ebmlib.core.restore import ClampedEnergy, changed_fraction, half_mask, restore, salt_and_pepper
from ebmlib.core.samplers import PaperLangevin


class QuadraticImageEnergy(nn.Module):
    """E(x) = ||x - target||^2 / 2 per image: Langevin descends toward ``target``."""

    def __init__(self, target):
        super().__init__()
        self.target = target
        self.weight = nn.Parameter(torch.ones(()))  # a parameter, so frozen() has something to freeze

    def forward(self, x, y=None):
        return 0.5 * self.weight * ((x - self.target) ** 2).flatten(1).sum(1)


def test_salt_and_pepper_hits_the_requested_fraction():
    x = torch.full((200, 1, 28, 28), 0.5)
    noisy = salt_and_pepper(x, 0.1, torch.Generator().manual_seed(0))
    hit = noisy != 0.5
    assert abs(hit.float().mean().item() - 0.1) < 0.005
    assert set(noisy[hit].unique().tolist()) == {0.0, 1.0}
    assert abs((noisy[hit] == 1).float().mean().item() - 0.5) < 0.02
    with pytest.raises(ValueError, match="fraction must lie in"):
        salt_and_pepper(x, 1.5)


def test_half_mask():
    m = half_mask((2, 1, 28, 28))
    assert m[:, :, :14].all() and not m[:, :, 14:].any()
    m = half_mask((2, 1, 28, 28), keep="left")
    assert m[..., :14].all() and not m[..., 14:].any()
    with pytest.raises(ValueError, match="keep must be"):
        half_mask((2, 1, 28, 28), keep="bottom")


def test_restore_descends_the_energy_and_keeps_known_pixels():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(1, 1, 28, 28, generator=g).expand(8, -1, -1, -1)
    model = QuadraticImageEnergy(target)
    x0 = torch.rand(8, 1, 28, 28, generator=g)
    mask = half_mask(x0.shape)
    out = restore(model, x0, 50, mask=mask, sampler=PaperLangevin(step_size=0.2, noise_std=0.0, grad_clip=None), generator=g)
    assert torch.equal(out[mask], x0[mask])                           # clamped pixels untouched
    assert (out[~mask] - target[~mask]).abs().max() < 1e-3            # free pixels reach the energy minimum
    free = restore(model, x0, 50, sampler=PaperLangevin(step_size=0.2, noise_std=0.0, grad_clip=None), generator=g)
    assert (free - target).abs().max() < 1e-3 and model.weight.requires_grad  # frozen only during sampling
    with pytest.raises(ValueError, match="mask"):
        restore(model, x0, 5, mask=mask[:2])


def test_clamped_energy_has_no_gradient_on_known_pixels():
    target = torch.rand(3, 1, 28, 28)
    known, mask = torch.rand(3, 1, 28, 28), half_mask((3, 1, 28, 28))
    e = ClampedEnergy(QuadraticImageEnergy(target), known, mask)
    z = torch.rand(3, 1, 28, 28, requires_grad=True)
    (grad,) = torch.autograd.grad(e(z).sum(), z)
    assert torch.all(grad[mask] == 0) and torch.all(grad[~mask] != 0)
    assert torch.equal(e.compose(z)[mask], known[mask])


def test_changed_fraction():
    assert changed_fraction(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 0, 3, 0])) == 0.5
    with pytest.raises(ValueError):
        changed_fraction(torch.tensor([1]), torch.tensor([1, 2]))


def test_nearest_neighbours_matches_brute_force_across_chunks():
    g = torch.Generator().manual_seed(0)
    pool, queries = torch.rand(100, 1, 5, 5, generator=g), torch.rand(7, 1, 5, 5, generator=g)
    d, i = nearest_neighbours(queries, pool, k=3, batch_size=16)
    full = torch.cdist(queries.flatten(1).double(), pool.flatten(1).double())
    ref_d, ref_i = full.topk(3, dim=1, largest=False)
    assert torch.equal(i, ref_i) and torch.allclose(d, ref_d)
    d0, i0 = nearest_neighbours(pool[:4], pool)
    assert torch.equal(i0[:, 0], torch.arange(4)) and torch.all(d0 == 0)   # a copy finds itself
    with pytest.raises(ValueError, match="sample shape"):
        nearest_neighbours(queries, torch.rand(10, 4))


def two_class_images(n, seed):
    """Class 0: bright top half; class 1: bright bottom half. Easy to learn, easy to tell apart."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    img = torch.randint(0, 60, (n, 1, 28, 28), generator=g)
    top = labels == 0
    img[top, :, :14] += 180
    img[~top, :, 14:] += 180
    return ImageData(img.to(torch.uint8), labels, ["top", "bottom"])


def test_classifier_learns_and_fid_separates_distributions():
    torch.manual_seed(0)
    train, test = two_class_images(256, 0), two_class_images(400, 1)
    clf = train_classifier(train, epochs=3, batch_size=32, lr=3e-3, model=MNISTClassifier(2, width=8, num_features=16),
                           progress=False)
    x_test = test.continuous(torch.Generator().manual_seed(3))
    assert accuracy(clf, x_test, test.labels) > 0.95
    assert predict(clf, x_test).shape == (400,)
    same = classifier_fid(clf, x_test[:200], x_test[200:])
    swapped = test.continuous(torch.Generator().manual_seed(4))[test.labels == 0]   # one class only
    other = classifier_fid(clf, x_test, swapped)
    noise = classifier_fid(clf, x_test, torch.rand(200, 1, 28, 28))
    assert same < other and same < noise
    assert same < 0.2 * noise
    with pytest.raises(ValueError, match="at least 2"):
        classifier_fid(clf, x_test[:1], x_test)


def test_conditional_energy_depends_on_the_label_and_routes_gradients():
    torch.manual_seed(0)
    model = MNISTConvEnergy(width=4, n_classes=10)
    with torch.no_grad():   # start the class gains/biases apart, as training would
        for c in model.cond:
            c.bias.weight.normal_(0, 0.5)
    x = torch.rand(4, 1, 28, 28)
    e3, e7 = model(x, torch.full((4,), 3)), model(x, torch.full((4,), 7))
    assert e3.shape == (4,) and not torch.allclose(e3, e7)
    model(x, torch.full((4,), 3)).sum().backward()
    grad_bias = model.cond[0].bias.weight.grad
    assert grad_bias[3].abs().sum() > 0 and torch.all(grad_bias[torch.arange(10) != 3] == 0)
    with pytest.raises(ValueError, match="pass labels"):
        model(x)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        model(x, torch.full((4,), 10))
    with pytest.raises(ValueError, match="unconditional"):
        MNISTConvEnergy(width=4)(x, torch.zeros(4, dtype=torch.int64))


def test_classifier_refuses_wrong_shape():
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        MNISTClassifier()(torch.rand(2, 3, 28, 28))
