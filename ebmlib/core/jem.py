"""A classifier read as an energy-based model: JEM (Grathwohl et al. 2020, references.bib ``grathwohl2020your``).

A classifier's logits f(x)[y] define a joint energy E(x, y) = -f(x)[y] with one normaliser Z, so
p(y | x) = softmax(f(x))[y] is the classifier's own prediction and the marginal is an EBM,
E(x) = -logsumexp_y f(x)[y] (:class:`JEMEnergy`). JEM trains log p(x, y) = log p(y | x) + log p(x): the usual
cross-entropy plus the maximum-likelihood gradient of the marginal, whose model term comes from Langevin chains
with a replay buffer, exactly the machinery of Algorithm 1. :class:`JEMTrainer` is therefore
:class:`~ebmlib.core.train.Trainer` (checkpoints, exact resume, the divergence guard) run on the marginal energy,
plus the cross-entropy of the labelled batch as an extra loss term. :class:`JEMRecipe` makes it a recipe.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ebmlib.core.classifiers import MNISTClassifier
from ebmlib.core.images import ImageData, dequantize
from ebmlib.core.recipes import Fit, Recipe
from ebmlib.core.train import TrainConfig, Trainer, config_from

__all__ = ["JEMEnergy", "JEMTrainer", "JEMRecipe"]


class JEMEnergy(nn.Module):
    """E(x) = -logsumexp_y f(x)[y], or E(x, y) = -f(x)[y] with labels, for a classifier ``f`` giving logits.

    It is an unconditional EBM to the trainer and the samplers (its ``forward(x)`` is the marginal), so the
    label count is ``n_labels``, not the ``n_classes`` that marks conditional energies."""

    def __init__(self, classifier: nn.Module, n_labels: int):
        super().__init__()
        self.classifier, self.n_labels = classifier, n_labels
        self.input_shape = getattr(classifier, "input_shape", None)

    def logits(self, x: Tensor) -> Tensor:
        return self.classifier(x)

    def forward(self, x: Tensor, y: Optional[Tensor] = None) -> Tensor:
        f = self.classifier(x)
        return -torch.logsumexp(f, 1) if y is None else -f.gather(1, y.view(-1, 1)).squeeze(1)


class JEMTrainer(Trainer):
    """Algorithm 1 on the marginal energy of a :class:`JEMEnergy`, plus ``ce_weight`` x the cross-entropy
    log p(y | x) of the same labelled batch. The data must carry labels; the generative term ignores them
    (p(x) sums over y), so the chains sample the marginal."""

    def __init__(self, model: JEMEnergy, data, config: TrainConfig = TrainConfig(), *, ce_weight: float = 1.0,
                 **kwargs):
        if not isinstance(data, tuple):
            raise ValueError("JEMTrainer needs labelled data: pass (images, labels)")
        if not ce_weight >= 0:
            raise ValueError(f"ce_weight must be >= 0, got {ce_weight!r}")
        labels = data[1]
        if labels.dtype != torch.int64 or labels.ndim != 1 or (labels < 0).any() or (labels >= model.n_labels).any():
            raise ValueError(f"labels must be int64 class indices in [0, {model.n_labels}) of shape (N,), got "
                             f"{labels.dtype} {tuple(labels.shape)}")
        super().__init__(model, data, config, **kwargs)
        self.ce_weight = float(ce_weight)
        self._labelled: Optional[tuple[Tensor, Tensor]] = None

    def next_batch(self) -> tuple[Tensor, Optional[Tensor]]:
        x, y = super().next_batch()
        self._labelled = (x, y)
        return x, None   # the EBM term is on p(x)

    def extra_loss(self, x_neg: Tensor, y: Optional[Tensor]) -> dict[str, Tensor]:
        x, labels = self._labelled
        return {"ce": self.ce_weight * F.cross_entropy(self.model.logits(x), labels)}


@dataclass(frozen=True)
class JEMRecipe(Recipe):
    """JEM on an MNIST-class data set with the book's MNIST classifier network (the plain classifier of the
    same ``width`` is :class:`~ebmlib.core.classifiers.ClassifierRecipe`); ``train``: TrainConfig fields."""

    name: str
    dataset: str = "mnist"
    width: int = 32
    n_iters: int = 1000
    ce_weight: float = 1.0
    keep_buffer: int = 256
    train: dict = field(default_factory=dict)

    def config(self) -> TrainConfig:
        return config_from(self.name, self.train)

    def build(self) -> nn.Module:
        if self.dataset not in ("mnist", "fashion"):
            raise ValueError(f"recipe {self.name!r}: JEM here is for 'mnist' or 'fashion', got {self.dataset!r}")
        return JEMEnergy(MNISTClassifier(n_classes=10, width=self.width), n_labels=10)

    def fit(self, model: nn.Module, *, device: torch.device, progress: bool, run_dir: Optional[Path],
            data: ImageData) -> Fit:
        """JEM on ``data`` (uint8 images, dequantised per batch as in A.3); an interrupted run resumes."""
        trainer = JEMTrainer(model, (data.images, data.labels), self.config(), ce_weight=self.ce_weight,
                             transform=dequantize, ckpt_dir=run_dir, device=device)
        if run_dir is not None and (run_dir / "last.pt").exists():
            trainer.resume()
        with trainer:
            trainer.train(self.n_iters - trainer.iteration, progress=progress)
        return Fit(list(trainer.history), trainer.buffer.newest(self.keep_buffer))
