"""Sample quality: Inception Score and FID (section 4.1, Table 1), with the network that scores them chosen.

Both scores come from the maintained implementations in torchmetrics (``InceptionScore``,
``FrechetInceptionDistance``); only the network whose outputs they read is chosen here:

* **Inception** (the paper's Table 1 [salimans2016improved; heusel2017gans]): torchmetrics' default, the
  standard ``pt_inception-2015-12-05`` weights through torch-fidelity. It needs ``pip install torch-fidelity``
  and the weights, which torch-fidelity downloads into the torch hub cache on first use. Where either is
  missing (the book's build machines cannot download them) :func:`inception_feature` raises
  :class:`InceptionUnavailable`, which says how to fix it.
* **A classifier trained on the data set** (:func:`classifier_fid`, :func:`classifier_inception_score`): the
  offline stand-in, in the penultimate features (FID) or the class probabilities (IS) of e.g.
  :class:`ebmlib.core.classifiers.MNISTClassifier`. These are *not* the paper's numbers: they are only comparable
  with other numbers from the same classifier.
* Any module (``feature=``), which is how the tests pin both scores on inputs with known answers.

Inception Score: ``exp(E_x KL(p(y|x) || p(y)))``, averaged over ``splits`` equal parts (10 in the paper's
protocol): 1 when every prediction is the same, k when predictions are confident and spread evenly over k
classes. FID: the Frechet distance between Gaussians fitted to the features of real and generated images
(:func:`ebmlib.core.metrics.frechet_distance` is the closed form).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

__all__ = ["classifier_fid", "classifier_inception_score", "InceptionUnavailable", "inception_feature",
           "inception_score", "inception_fid", "INCEPTION_FIX"]

#: what to do when the Inception network is missing (the text of :class:`InceptionUnavailable`)
INCEPTION_FIX = ("install torch-fidelity (`pip install torch-fidelity`, or `pip install torchmetrics[image]`) and run "
                 "once on a machine that can download its Inception weights (pt_inception-2015-12-05-6726825d.pth, "
                 "fetched into the torch hub cache, `torch.hub.get_dir()`/checkpoints); or copy that file into the "
                 "torch hub cache of this machine")


class InceptionUnavailable(RuntimeError):
    """The Inception network of IS / FID cannot be built here (torch-fidelity or its weights are missing)."""


class _Features(nn.Module):
    """Exposes a classifier's penultimate features as the module torchmetrics' FID calls."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier
        self.num_features = classifier.num_features

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier.features(x.float())


class _Logits(nn.Module):
    """A classifier's logits (float images in [0, 1]) as the module torchmetrics' Inception Score calls."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(x.float())


@torch.no_grad()
def classifier_fid(classifier: nn.Module, real: Tensor, fake: Tensor, batch_size: int = 1000) -> float:
    """FID between ``real`` and ``fake`` images (float in [0, 1]) in ``classifier``'s feature space.

    Uses ``torchmetrics.image.fid.FrechetInceptionDistance(feature=<the classifier's features>)``; both sets
    need more images than features for a full-rank covariance.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    for name, x in (("real", real), ("fake", fake)):
        if x.shape[0] < 2:
            raise ValueError(f"FID needs at least 2 {name} images, got {x.shape[0]}")
    fid = FrechetInceptionDistance(feature=_Features(classifier.eval()), reset_real_features=True)
    fid.inception.eval()
    for chunk in real.split(batch_size):
        fid.update(chunk, real=True)
    for chunk in fake.split(batch_size):
        fid.update(chunk, real=False)
    return float(fid.compute())


def _inception_score(module: nn.Module, images: Tensor, splits: int, batch_size: int,
                     normalize: bool) -> tuple[float, float]:
    from torchmetrics.image.inception import InceptionScore
    import warnings

    if images.shape[0] < splits:
        raise ValueError(f"the Inception Score needs at least `splits` = {splits} images, got {images.shape[0]}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = InceptionScore(feature=module, splits=splits, normalize=normalize)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):   # torchmetrics permutes with the global RNG
        torch.manual_seed(0)
        for chunk in images.split(batch_size):
            metric.update(chunk)
        mean, std = metric.compute()
    return float(mean), float(std)


def classifier_inception_score(classifier: nn.Module, images: Tensor, splits: int = 10,
                               batch_size: int = 1000) -> tuple[float, float]:
    """(mean, std over ``splits``) of the Inception Score computed with ``classifier``'s class probabilities in
    place of Inception's: the offline stand-in (at most the number of classes; not the paper's number)."""
    return _inception_score(_Logits(classifier.eval()), images, splits, batch_size, normalize=False)


def inception_feature(kind: str = "logits_unbiased") -> nn.Module:
    """torchmetrics' Inception network (torch-fidelity's ``inception-v3-compat``, the standard weights) giving
    ``kind``: ``"logits_unbiased"`` (IS) or ``"2048"`` (pool_3, FID); uint8 images in, any size (resized to
    299 inside). Raises :class:`InceptionUnavailable` with the fix when torch-fidelity or the weights are missing."""
    try:
        from torchmetrics.image.fid import NoTrainInceptionV3
        return NoTrainInceptionV3(name="inception-v3-compat", features_list=[kind]).eval()
    except ModuleNotFoundError as err:
        raise InceptionUnavailable(f"no Inception network: torch-fidelity is not installed ({err}). To fix: "
                                   f"{INCEPTION_FIX}") from err
    except (OSError, RuntimeError, ValueError) as err:   # URLError is an OSError; a truncated file a RuntimeError
        raise InceptionUnavailable(f"no Inception network: its weights could not be loaded or downloaded "
                                   f"({type(err).__name__}: {str(err)[:200]}). To fix: {INCEPTION_FIX}") from err


def _to_uint8(x: Tensor) -> Tensor:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def inception_score(images: Tensor, feature: Optional[nn.Module] = None, splits: int = 10,
                    batch_size: int = 200) -> tuple[float, float]:
    """(mean, std over ``splits``) Inception Score of float ``images`` in [0, 1] (N, 3, H, W), by torchmetrics.

    ``feature``: the network giving logits from uint8 images; by default Inception (:func:`inception_feature`,
    which raises :class:`InceptionUnavailable` where it is missing). The paper: 50,000 samples, 10 splits."""
    module = feature if feature is not None else inception_feature("logits_unbiased")
    return _inception_score(module, _to_uint8(images), splits, batch_size, normalize=False)


@torch.no_grad()
def inception_fid(real: Tensor, fake: Tensor, feature: Optional[nn.Module] = None, batch_size: int = 200) -> float:
    """FID between float images ``real`` and ``fake`` in [0, 1], by torchmetrics' ``FrechetInceptionDistance``.

    ``feature``: the network giving features from uint8 images (with a ``num_features`` attribute, or probed);
    by default Inception's 2048 pool_3 features (:func:`inception_feature`). The paper's protocol: 50,000 samples
    against the 60,000 CIFAR-10 images."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    module = feature if feature is not None else inception_feature("2048")
    if not hasattr(module, "num_features") and feature is None:
        module.num_features = 2048
    metric = FrechetInceptionDistance(feature=module, reset_real_features=True, input_img_size=(3, 32, 32))
    metric.inception.eval()
    for chunk in _to_uint8(real).split(batch_size):
        metric.update(chunk, real=True)
    for chunk in _to_uint8(fake).split(batch_size):
        metric.update(chunk, real=False)
    return float(metric.compute())
