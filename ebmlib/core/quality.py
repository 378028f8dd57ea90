"""Sample quality without Inception: a classifier trained on the data set scores generated images.

Offline there are no Inception weights (the book's machines cannot fetch them), so the book measures MNIST-class samples in the feature
space of a small classifier trained on the same data (:class:`ebmlib.core.classifiers.MNISTClassifier`):

* **FID in classifier space** -- the Frechet distance between Gaussians fitted to the classifier's
  penultimate features of real and generated images, computed by torchmetrics'
  ``FrechetInceptionDistance(feature=...)``. It is *not* the Inception FID of the paper's tables: numbers are
  only comparable with other numbers from the same classifier.
* **Conditional accuracy** -- how often the classifier assigns a class-conditional sample to the class it
  was generated for.
"""
from __future__ import annotations


import torch
from torch import Tensor, nn


__all__ = ["classifier_fid"]


class _Features(nn.Module):
    """Exposes a classifier's penultimate features as the module torchmetrics' FID calls."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier
        self.num_features = classifier.num_features

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier.features(x.float())


@torch.no_grad()
def classifier_fid(classifier: nn.Module, real: Tensor, fake: Tensor, batch_size: int = 1000) -> float:
    """FID between ``real`` and ``fake`` images (float in [0, 1]) in ``classifier``'s feature space.

    Uses ``torchmetrics.image.fid.FrechetInceptionDistance(feature=<the classifier's features>)``; both sets
    need more images than features (128) for a full-rank covariance.
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
