"""Inception Score and FID (section 4.1, Table 1) on inputs with known answers: IS of uniform predictions is 1 and of
confident predictions spread evenly over k classes is k; FID of identical feature sets is 0 and of Gaussian features
matches the closed form; the Inception path runs with an injected feature extractor; a missing Inception network
raises an error that says how to fix it."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from ebmlib.core import quality as Q
from ebmlib.core.metrics import frechet_distance


class TableLogits(nn.Module):
    """Logits looked up by image index: image i carries i in base 256 in pixels (0, 0, 0) and (0, 0, 1) (uint8 in,
    as torchmetrics' Inception path passes; floats in [0, 1] for the classifier path)."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.register_buffer("table", logits)

    def forward(self, x):
        digits = x[:, 0, 0, :2]
        digits = digits.long() if digits.dtype == torch.uint8 else (digits * 255).round().long()
        return self.table[digits[:, 0] * 256 + digits[:, 1]]


def indexed_images(n: int) -> torch.Tensor:
    x = torch.zeros(n, 3, 8, 8)
    x[:, 0, 0, 0] = torch.div(torch.arange(n), 256, rounding_mode="floor") / 255.0
    x[:, 0, 0, 1] = (torch.arange(n) % 256) / 255.0
    return x


class PixelFeatures(nn.Module):
    """Features = the first `d` pixel values of the image, as float; uint8 images in (the Inception path)."""

    def __init__(self, d: int):
        super().__init__()
        self.d = d
        self.num_features = d

    def forward(self, x):
        return x.reshape(x.shape[0], -1)[:, : self.d].double() / 255.0


@pytest.mark.parametrize("same", ["uniform", "one fixed prediction"])
def test_inception_score_of_uniform_predictions_is_one(same):
    n = 2000
    logits = torch.zeros(n, 10) if same == "uniform" else torch.randn(1, 10).expand(n, 10)
    mean, std = Q.inception_score(indexed_images(n), feature=TableLogits(logits))
    assert mean == pytest.approx(1.0, abs=1e-5) and std == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("k", [2, 5, 10])
def test_inception_score_of_confident_predictions_over_k_classes_is_k(k):
    n = 100 * k
    logits = torch.full((n, 10), -40.0)      # p(y|x) one-hot up to e^-40
    logits[torch.arange(n), torch.arange(n) % k] = 0.0
    mean, std = Q.inception_score(indexed_images(n), feature=TableLogits(logits), splits=1)
    assert mean == pytest.approx(k, rel=1e-6)
    # the paper's 10 splits of a random permutation: each split's classes are only nearly balanced
    mean, std = Q.inception_score(indexed_images(n), feature=TableLogits(logits))
    assert k * 0.9 < mean <= k + 1e-6


def test_classifier_inception_score_matches_the_definition():
    """exp(E KL(p(y|x) || p(y))) by hand, on random soft predictions, one split."""
    g = torch.Generator().manual_seed(0)
    n = 300
    logits = torch.randn(n, 10, generator=g) * 2
    clf = TableLogits(logits)
    mean, _ = Q.classifier_inception_score(clf, indexed_images(n), splits=1)
    p = logits.double().softmax(1)
    expected = math.exp((p * (p.log() - p.mean(0, keepdim=True).log())).sum(1).mean().item())
    assert mean == pytest.approx(expected, rel=1e-4)


def test_inception_score_needs_as_many_images_as_splits():
    with pytest.raises(ValueError, match="at least `splits` = 10"):
        Q.inception_score(indexed_images(5), feature=TableLogits(torch.zeros(5, 10)))


def test_fid_of_identical_feature_sets_is_zero():
    x = torch.rand(400, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    assert Q.inception_fid(x, x.clone(), feature=PixelFeatures(4)) == pytest.approx(0.0, abs=1e-4)


def test_fid_of_gaussian_features_matches_the_closed_form():
    """Real features ~ N(0.3, 0.05^2 I), fake ~ N(0.6, diag(0.1^2, ...)): FID is the Frechet distance of the
    two sample Gaussians (and near that of the true ones)."""
    g = torch.Generator().manual_seed(2)
    n, d = 4000, 3
    real = (0.3 + 0.05 * torch.randn(n, 3, 4, 4, generator=g)).clamp(0, 1)
    fake = (0.6 + 0.1 * torch.randn(n, 3, 4, 4, generator=g)).clamp(0, 1)
    fid = Q.inception_fid(real, fake, feature=PixelFeatures(d))
    fr = (real.clamp(0, 1) * 255).round().reshape(n, -1)[:, :d].double().numpy() / 255
    ff = (fake.clamp(0, 1) * 255).round().reshape(n, -1)[:, :d].double().numpy() / 255
    closed = frechet_distance(fr.mean(0), np.cov(fr, rowvar=False), ff.mean(0), np.cov(ff, rowvar=False))
    assert fid == pytest.approx(closed, rel=1e-3)
    true = frechet_distance(np.full(d, 0.3), 0.05 ** 2 * np.eye(d), np.full(d, 0.6), 0.1 ** 2 * np.eye(d))
    assert true == pytest.approx(d * (0.3 ** 2 + 0.05 ** 2), rel=1e-9)     # |dmu|^2 + tr(...) by hand
    assert fid == pytest.approx(true, rel=0.05)


def test_classifier_fid_uses_the_penultimate_features():
    class Clf(nn.Module):
        num_features = 2

        def features(self, x):
            return x.reshape(x.shape[0], -1)[:, :2].double()

        def forward(self, x):
            return torch.zeros(x.shape[0], 10)

    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(500, 1, 2, 2, generator=g), torch.rand(500, 1, 2, 2, generator=g) * 0.5
    fa, fb = a.reshape(500, -1)[:, :2].double().numpy(), b.reshape(500, -1)[:, :2].double().numpy()
    closed = frechet_distance(fa.mean(0), np.cov(fa, rowvar=False), fb.mean(0), np.cov(fb, rowvar=False))
    assert Q.classifier_fid(Clf(), a, b) == pytest.approx(closed, rel=1e-4)
    with pytest.raises(ValueError, match="at least 2 fake images"):
        Q.classifier_fid(Clf(), a, b[:1])


def test_missing_torch_fidelity_raises_an_error_with_the_fix(monkeypatch):
    import torchmetrics.image.fid as tm_fid

    def missing(*a, **k):
        raise ModuleNotFoundError("No module named 'torch_fidelity'")
    monkeypatch.setattr(tm_fid, "NoTrainInceptionV3", missing)
    with pytest.raises(Q.InceptionUnavailable, match="torch-fidelity is not installed.*pip install torch-fidelity"):
        Q.inception_feature("2048")


def test_missing_inception_weights_raise_an_error_with_the_fix(monkeypatch):
    import torchmetrics.image.fid as tm_fid

    def offline(*a, **k):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")
    monkeypatch.setattr(tm_fid, "NoTrainInceptionV3", offline)
    with pytest.raises(Q.InceptionUnavailable) as err:
        Q.inception_score(torch.rand(20, 3, 8, 8))      # the default network is Inception
    assert "could not be loaded or downloaded" in str(err.value)
    assert "pt_inception-2015-12-05" in str(err.value) and "torch hub cache" in str(err.value)
