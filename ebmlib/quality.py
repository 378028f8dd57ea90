"""Sample quality without Inception: a classifier trained on the data set scores generated images.

Offline there are no Inception weights (DESIGN.md), so the book measures MNIST-class samples in the feature
space of a small classifier trained on the same data (:class:`ebmlib.nets.MNISTClassifier`):

* **FID in classifier space** -- the Frechet distance between Gaussians fitted to the classifier's
  penultimate features of real and generated images, computed by torchmetrics'
  ``FrechetInceptionDistance(feature=...)``. It is *not* the Inception FID of the paper's tables: numbers are
  only comparable with other numbers from the same classifier.
* **Conditional accuracy** -- how often the classifier assigns a class-conditional sample to the class it
  was generated for.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .data.mnist import ImageData, dequantize
from .nets import MNISTClassifier

__all__ = ["train_classifier", "predict", "accuracy", "classifier_fid"]


def train_classifier(data: ImageData, epochs: int = 1, batch_size: int = 128, lr: float = 1e-3, seed: int = 0,
                     model: Optional[nn.Module] = None, progress: bool = True) -> nn.Module:
    """Train a classifier on dequantised images (the same continuous data the EBMs see); returns it in eval mode."""
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"need epochs >= 1 and batch_size >= 1, got {epochs}, {batch_size}")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = model if model is not None else MNISTClassifier(n_classes=len(data.classes))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    n_batches = (len(data) + batch_size - 1) // batch_size
    bar = tqdm(total=epochs * n_batches, desc="classifier", disable=not progress)
    for _ in range(epochs):
        for idx in torch.randperm(len(data), generator=gen).split(batch_size):
            loss = nn.functional.cross_entropy(model(dequantize(data.images[idx], gen)), data.labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    return model.eval()


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 1000) -> Tensor:
    """Predicted class of each image in ``x`` (float in [0, 1])."""
    return torch.cat([model(chunk).argmax(1) for chunk in x.split(batch_size)])


def accuracy(model: nn.Module, x: Tensor, labels: Tensor) -> float:
    """Fraction of ``x`` classified as ``labels``: test accuracy on data, or conditional-sample accuracy."""
    if x.shape[0] != labels.shape[0]:
        raise ValueError(f"{x.shape[0]} images but {labels.shape[0]} labels")
    return (predict(model, x) == labels).float().mean().item()


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
