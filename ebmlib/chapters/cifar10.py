"""Chapter 04: the paper's CIFAR-10 experiments (section 4.1, 4.2; Fig. 2, 3, 5 / Table 1, 6, 7, 17, 20, 21).

The chapter's experiments, one small function each, so the notebook only narrates and calls. Every function that
draws random numbers takes the chapter's one ``generator``.

* The models: :class:`CIFAREBMRecipe` (an :class:`~ebmlib.core.image_ebm.ImageEBMRecipe` whose model keeps the
  weights of its last training snapshots, :class:`SnapshotEnergy`, for the historical ensemble of section 4.1),
  :func:`train_models`, :func:`classifier`, :func:`gpu_hours` (the paper run's expected cost).
* Sampling: :func:`ensemble_chains` (the snapshots take turns on the chains, as in the release),
  :func:`evaluation_samples` (the release's evaluation sampler), :func:`fig3_figure`, :func:`class_rows`.
* Scores: :func:`sample_quality` (classifier-space FID and IS, Inception IS / FID where the weights are at hand),
  :func:`quality_rows`, :func:`table1_rows`.
* Section 4.2: :func:`restoration` (Fig. 6), :func:`convert` / :func:`conversion_accuracy` (Fig. 7),
  :func:`energy_sets` (Fig. 2), :func:`neighbour_rows` (Fig. 20), :func:`noise_frames_figure` (Fig. 21).
* :func:`summary_rows` and :func:`paper_rows` (the results page).
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor, nn

from ebmlib.core.classifiers import CIFARClassifier, ClassifierRecipe, accuracy, predict
from ebmlib.core.image_ebm import ImageEBMRecipe, training_inputs
from ebmlib.core.images import ImageData
from ebmlib.core.metrics import nearest_neighbours
from ebmlib.core.nets import CIFARResNetEnergy, count_parameters
from ebmlib.core.quality import (InceptionUnavailable, classifier_fid, classifier_inception_score, inception_fid,
                                 inception_score)
from ebmlib.core.recipes import load_or_train, load_or_train_all
from ebmlib.core.restore import changed_fraction, half_mask, restore, salt_and_pepper, sampling_frames
from ebmlib.core.samplers import PaperLangevin
from ebmlib.data import DISPLAY_NAMES, load_images
from ebmlib.notebook import plotting as P

__all__ = [
    "IMAGE_SHAPE", "SnapshotEnergy", "CIFAREBMRecipe", "recipes", "train_models", "data_name", "data_line",
    "MODEL_HEADER", "model_rows", "model_metrics", "StandinClassifierRecipe", "classifier", "classifier_line",
    "flop_count", "gpu_hours", "gpu_hours_line", "ensemble_chains", "evaluation_samples", "generate",
    "fig3_samples", "fig3_figure", "class_rows", "class_figure", "sample_quality", "QUALITY_HEADER",
    "quality_rows", "TABLE1_HEADER", "table1_rows", "quality_sentence", "restoration", "RESTORATION_HEADER",
    "restoration_rows", "convert", "conversion_accuracy", "conversion_line", "energy_sets", "image_energies",
    "energy_means", "energy_line", "energy_histogram", "neighbour_rows", "nn_distances", "nn_line",
    "noise_frames_figure", "summary_rows", "paper_rows", "PAPER_COMMAND",
]

#: CIFAR-10 and the stand-in: 32 x 32 colour
IMAGE_SHAPE = (3, 32, 32)
#: the paper-scale run, as the results page and the summary give it
PAPER_COMMAND = ("python -m ebmlib data cifar10 && python -m ebmlib train 04 --scale paper --out _results && "
                 "python -m ebmlib reproduce 04 --scale paper --out _results")


def _rand(n: int, generator: Optional[torch.Generator]) -> Tensor:
    return torch.rand(n, *IMAGE_SHAPE, generator=generator)


# --------------------------------------------------------------------------------------------------------
# The models: the A.6 ResNets, keeping their last weight snapshots (section 4.1's historical ensemble)

class SnapshotEnergy(nn.Module):
    """An energy network ``net`` that also holds the weights of up to ``n_keep`` of its training snapshots.

    ``forward`` is ``net``'s: the model is trained, sampled and scored as ``net`` is. The snapshots live in the
    module's state dict (a buffer of shape (n_keep, P), stored as ``dtype``: float16 halves the shipped files;
    each weight is then rounded to ~1e-3 relative), so checkpoints, an exact resume and the trainer's rollbacks
    keep them consistent with the trajectory the weights took. :meth:`members` rebuilds them as networks.
    """

    def __init__(self, net: nn.Module, n_keep: int, dtype: torch.dtype = torch.float16):
        super().__init__()
        self.net = net
        self.n_classes = getattr(net, "n_classes", None)
        self.input_shape = getattr(net, "input_shape", ())
        size = sum(v.numel() for v in net.state_dict().values() if v.is_floating_point())
        self.register_buffer("snapshots", torch.zeros(n_keep, size, dtype=dtype))
        self.register_buffer("snapshot_iterations", torch.full((n_keep,), -1, dtype=torch.int64))

    def forward(self, x: Tensor, y: Optional[Tensor] = None) -> Tensor:
        return self.net(x) if y is None else self.net(x, y)

    def keep(self, slot: int, iteration: int) -> None:
        """Store the current weights of ``net`` in ``slot``, taken at ``iteration``."""
        flat = torch.cat([v.detach().reshape(-1).float().cpu() for v in self.net.state_dict().values()
                          if v.is_floating_point()])
        self.snapshots[slot] = flat.to(self.snapshots.device, self.snapshots.dtype)
        self.snapshot_iterations[slot] = iteration

    def member(self, slot: int) -> nn.Module:
        """A copy of ``net`` (eval mode, float32) with the weights of ``slot``."""
        if int(self.snapshot_iterations[slot]) < 0:
            raise ValueError(f"snapshot slot {slot} is empty (the run kept iterations "
                             f"{self.snapshot_iterations.tolist()})")
        net = copy.deepcopy(self.net).eval()
        state, flat, at = net.state_dict(), self.snapshots[slot].float(), 0
        for k, v in state.items():
            if v.is_floating_point():
                state[k] = flat[at: at + v.numel()].view_as(v).to(v.dtype)
                at += v.numel()
        net.load_state_dict(state)
        return net

    def members(self) -> list[nn.Module]:
        """Every kept snapshot as a network, oldest first."""
        slots = [i for i in range(len(self.snapshot_iterations)) if int(self.snapshot_iterations[i]) >= 0]
        return [self.member(i) for i in sorted(slots, key=lambda i: int(self.snapshot_iterations[i]))]


@dataclass(frozen=True)
class CIFAREBMRecipe(ImageEBMRecipe):
    """An image EBM of 32x32 colour images (A.6's ResNets: conditional ResNet32, Fig. 24a; unconditional
    ResNet32Large, Fig. 24b) on CIFAR-10 or the offline stand-in, keeping the weights of ``ensemble`` snapshots
    ``ensemble_every`` iterations apart, the last at the end of training (the release: 10, 300 apart)."""

    ensemble: int = 10
    ensemble_every: int = 300
    ensemble_dtype: str = "float16"

    def ensemble_points(self) -> list[int]:
        """The iterations whose weights are kept, oldest first."""
        points = [self.n_iters - k * self.ensemble_every for k in reversed(range(self.ensemble))]
        if points and points[0] < 1:
            raise ValueError(f"recipe {self.name!r}: {self.ensemble} snapshots {self.ensemble_every} iterations apart "
                             f"need at least {(self.ensemble - 1) * self.ensemble_every + 1} iterations, "
                             f"it has {self.n_iters}")
        return points

    def build(self) -> nn.Module:
        if self.dataset not in ("cifar10", "photo_crops"):
            raise ValueError(f"recipe {self.name!r}: 32x32 colour data only ('cifar10' or 'photo_crops'), "
                             f"got {self.dataset!r}")
        if self.ensemble_dtype not in ("float16", "float32"):
            raise ValueError(f"ensemble_dtype must be 'float16' or 'float32', got {self.ensemble_dtype!r}")
        self.ensemble_points()
        net = CIFARResNetEnergy(width=self.width, layout="resnet32" if self.conditional else "resnet32_large",
                                n_classes=10 if self.conditional else None)
        return SnapshotEnergy(net, self.ensemble, getattr(torch, self.ensemble_dtype))

    def after_iteration(self, model: nn.Module, iteration: int) -> None:
        points = self.ensemble_points()
        if iteration in points:
            model.keep(points.index(iteration), iteration)


def recipes(models: Mapping, seed: int = 0) -> dict[str, CIFAREBMRecipe]:
    """The preset's ``models`` (name -> recipe fields) as recipes; a nonzero ``seed`` goes into every
    recipe's ``train`` (a run at another seed never loads the shipped seed-0 checkpoints)."""
    out = {}
    for name, spec in models.items():
        spec = dict(spec)
        spec["train"] = dict(spec.get("train", {}), **({"seed": seed} if seed else {}))
        out[name] = CIFAREBMRecipe(name=name, **spec)
    return out


def train_models(cfg, seed: int = 0, only=None, **options) -> dict:
    """The preset's two EBMs, each loaded from its checkpoint or trained (``python -m ebmlib train 04``);
    ``options``: ``out_dir``, ``shipped_dir``, ``device``, ``progress``, ``log``."""
    return load_or_train_all(recipes(cfg.models, seed), training_inputs(lambda name: load_images(name, "train")),
                             only=only, **options)


def data_name(dataset: str) -> str:
    """How the page names a data set: "CIFAR-10", or "photo-crops stand-in (not CIFAR-10)"."""
    return DISPLAY_NAMES.get(dataset, dataset)


def data_line(train: ImageData, test: ImageData, dataset: str) -> str:
    return (f"{data_name(dataset)}: train {tuple(train.images.shape)}, test {tuple(test.images.shape)}, "
            f"classes {', '.join(train.classes)}")


#: the header of :func:`model_rows`
MODEL_HEADER = ["model", "network", "data", "parameters", "iterations", "batch", "K", "lr", "ensemble",
                "train minutes", "loaded from"]


def model_rows(models: Mapping) -> list[list]:
    rows = []
    for key, t in models.items():
        r, c = t.recipe, t.recipe.config()
        net = "ResNet32 (Fig. 24a)" if r.conditional else "ResNet32Large (Fig. 24b)"
        rows.append([key, f"{net}, width {r.width}", data_name(r.dataset), f"{count_parameters(t.model.net):,}",
                     r.n_iters, c.batch_size, c.n_steps, c.lr, f"{r.ensemble} x {r.ensemble_every} it.",
                     f"{t.seconds / 60:.1f}", t.origin()])
    return rows


def model_metrics(models: Mapping) -> dict:
    return {k: {"recipe": t.recipe.as_dict(), "train_seconds": t.seconds, "source": os.path.basename(t.source),
                "parameters": count_parameters(t.model.net),
                "ensemble_iterations": t.model.snapshot_iterations.tolist()} for k, t in models.items()}
