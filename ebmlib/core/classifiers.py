"""Classifiers that *measure* images (never energies): the feature space of the offline FID stand-in, the
conditional accuracy of samples, and the undefended baseline of the robustness chapter.

A classifier is ``body`` (image -> penultimate features) then ``head`` (features -> logits). Trained on
dequantised images (A.3), the same continuous data the EBMs see.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ebmlib.core.images import ImageData, dequantize
from ebmlib.core.recipes import Fit, Recipe

__all__ = ["MNISTClassifier", "CIFARClassifier", "ClassifierRecipe", "train_classifier", "predict", "accuracy"]


class _FeatureClassifier(nn.Module):
    """A classifier as ``body`` (image -> penultimate features) then ``head`` (features -> class logits); the
    subclass builds both and sets ``input_shape`` and ``num_features``."""

    body: nn.Module
    head: nn.Module
    input_shape: tuple

    def features(self, x: Tensor) -> Tensor:
        if x.shape[1:] != self.input_shape:
            raise ValueError(f"{type(self).__name__} expects inputs of shape (N, {', '.join(map(str, self.input_shape))}), "
                             f"got {tuple(x.shape)}")
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class MNISTClassifier(_FeatureClassifier):
    """A small CNN classifier for 28x28 images, used to *measure* generated samples, not as an EBM.

    ``features(x)`` gives the penultimate ``num_features``-dim activations: the feature space of the book's
    offline FID stand-in (the book's machines cannot fetch Inception weights). ``forward`` gives class logits.
    """

    def __init__(self, n_classes: int = 10, width: int = 32, num_features: int = 128, in_channels: int = 1):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),     # -> 14x14
            nn.Conv2d(w, 2 * w, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),           # -> 7x7
            nn.Flatten(), nn.Linear(2 * w * 49, num_features), nn.ReLU(),
        )
        self.head = nn.Linear(num_features, n_classes)
        self.num_features = num_features  # torchmetrics' FID reads this instead of probing with a 299x299 image
        self.input_shape = (in_channels, 28, 28)


class CIFARClassifier(_FeatureClassifier):
    """A small undefended CNN classifier for 32x32 colour images: the baseline of the robustness chapter at
    CIFAR-10 scale (three conv stages 3 -> w -> 2w -> 4w with max pooling, then a linear layer). Not the paper's
    Wide ResNet baseline; a plain network of the same kind as :class:`MNISTClassifier`."""

    def __init__(self, n_classes: int = 10, width: int = 64, in_channels: int = 3):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, 1, 1), nn.ReLU(), nn.Conv2d(w, w, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, 1, 1), nn.ReLU(), nn.Conv2d(2 * w, 2 * w, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),            # -> 4x4
            nn.Flatten(), nn.Linear(4 * w * 16, 4 * w), nn.ReLU(),
        )
        self.head = nn.Linear(4 * w, n_classes)
        self.num_features = 4 * w
        self.input_shape = (in_channels, 32, 32)


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


#: the classifier network of each image data set (28x28 grey, or 32x32 colour)
_NETWORKS = {"mnist": MNISTClassifier, "fashion": MNISTClassifier, "cifar10": CIFARClassifier, "svhn": CIFARClassifier,
             "photo_crops": CIFARClassifier, "imagenet32": CIFARClassifier}
#: classes of each data set whose classifier is not 10-way
_N_CLASSES = {"imagenet32": 1000}


@dataclass(frozen=True)
class ClassifierRecipe(Recipe):
    """A classifier of ``dataset`` trained for ``epochs`` on ``n_train`` training images (all when None), drawn
    with ``seed``; load or train it with :func:`ebmlib.core.recipes.load_or_train` (``data=`` the training set)."""

    name: str
    dataset: str = "mnist"
    epochs: int = 1
    n_train: Optional[int] = None
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    width: Optional[int] = None   #: the network's base width; None: its default (32 for MNIST, 64 for CIFAR)

    def seeded(self) -> int:
        return self.seed

    def build(self) -> nn.Module:
        if self.dataset not in _NETWORKS:
            raise ValueError(f"recipe {self.name!r}: no classifier for data set {self.dataset!r}; "
                             f"expected one of {sorted(_NETWORKS)}")
        return _NETWORKS[self.dataset](n_classes=_N_CLASSES.get(self.dataset, 10),
                                       **({"width": self.width} if self.width is not None else {}))

    def fit(self, model: nn.Module, *, device: torch.device, progress: bool, run_dir: Optional[Path],
            data: ImageData) -> Fit:
        if self.n_train is not None:
            data = data.subset(self.n_train, torch.Generator().manual_seed(self.seed))
        train_classifier(data, self.epochs, self.batch_size, self.lr, self.seed, model=model.cpu(), progress=progress)
        model.to(device)
        return Fit(history=[])
