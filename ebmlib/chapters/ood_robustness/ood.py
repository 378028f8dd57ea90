"""Out-of-distribution (OOD) detection by energy (Du & Mordatch 2019, section 4.3, Fig. 9 and Fig. 10).

An EBM defines p(x) proportional to exp(-E(x)), so the energy itself is an (unnormalised) OOD score: an input
the model finds unlikely gets a HIGH energy. The normaliser Z is the same constant for every x, so it does not
change how inputs are ranked, and ranking is all a detector needs. Section 4.3 scores in-distribution test
images against OOD sets (SVHN, textures, constant images, uniform noise, interpolations of test images) and
reports the area under the ROC curve (AUROC). Likelihood models such as PixelCNN++ and Glow are known to give
*higher* likelihood to some OOD data (e.g. constant images: their Glow AUROC is 0.30 on CIFAR-10 vs. constant),
whereas the EBM does better on most sets. Fig. 10 shows histograms of relative log likelihoods, i.e. negative
energies shifted so the in-distribution mean is 0.

This module provides:

* ``energy_scores``: E(x) for an unconditional model; for a conditional model E(x, y) when labels are given, and
  otherwise the free energy -logsumexp_c(-E(x, c)), which is the unconditional energy the conditional EBM
  implies (p(x) = sum_c p(x, c) proportional to sum_c exp(-E(x, c))).
* ``auroc`` and ``ood_table``: the metric, with the convention "OOD is the positive class, higher score = more
  OOD" (energies and negative log likelihoods both already point that way).
* OOD set builders: ``constant_images``, ``uniform_noise``, ``interpolations``, ``texture_crops``; the paper's
  CIFAR-10 sets (``cifar_ood_sets``: SVHN, DTD textures, constant colour, uniform noise, interpolations) and
  their MNIST-scale analogues (``mnist_ood_sets``); ``ood_sets(name, ...)`` picks the sets of a named
  in-distribution data set and loads the data sets they need.
* ``PCAGaussian``: a cheap exact-likelihood baseline (probabilistic PCA) standing in for PixelCNN++/Glow, to
  contrast an explicit density's OOD behaviour with the EBM's.
* ``relative_log_likelihood``: the Fig. 10 quantity.
"""
from __future__ import annotations

from typing import Callable, Mapping, Optional

import numpy as np
import torch
from torch import Tensor, nn

from ebmlib.chapters.ood_robustness.adversarial import marginal_energy
from ebmlib.core.scores import PCAGaussian, auroc   # shared with chapters 10 and 11; re-exported here
from ebmlib.data.ood import (OTHER_SET, TEXTURE_IMAGES, cifar_ood_sets, constant_images, interpolations,  # noqa: F401
                             mnist_ood_sets, ood_sets, texture_crops, uniform_noise)

__all__ = ["energy_scores", "auroc", "constant_images", "uniform_noise", "interpolations", "texture_crops",
           "TEXTURE_IMAGES", "mnist_ood_sets", "cifar_ood_sets", "OTHER_SET", "ood_sets", "ood_table", "PCAGaussian",
           "relative_log_likelihood"]


# --------------------------------------------------------------------------------------------------- scores
def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def energy_scores(model: nn.Module, x: Tensor, y: Optional[Tensor] = None, batch_size: int = 500) -> Tensor:
    """Energies of ``x`` (shape (N,), on the CPU); higher = less likely = more OOD.

    Unconditional model: E(x). Conditional model (``model.n_classes`` not None): E(x, y) if labels ``y`` are
    given, else the free energy F(x) = -logsumexp_c(-E(x, c)) over all classes, i.e. the energy of the marginal
    p(x) that the class-conditional EBM implies (up to the same constant for every x).

    The model is evaluated in eval mode and then put back in its previous mode: in train mode spectral
    normalisation runs a power iteration per forward pass, so merely scoring would change the model.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch (N, ...), got shape {tuple(x.shape)}")
    n_classes = getattr(model, "n_classes", None)
    if y is not None:
        if n_classes is None:
            raise ValueError("labels y were given but the model is unconditional (n_classes=None)")
        if y.shape != (x.shape[0],):
            raise ValueError(f"y must have shape ({x.shape[0]},), got {tuple(y.shape)}")
    device = _model_device(model)
    was_training = model.training
    model.eval()
    try:
        out = []
        for start in range(0, x.shape[0], batch_size):
            xb = x[start:start + batch_size].to(device)
            if n_classes is None:
                e = model(xb)
            elif y is not None:
                e = model(xb, y[start:start + batch_size].to(device))
            else:
                e = marginal_energy(model, xb)   # -logsumexp_c(-E(x, c)), all classes in one batched pass
            out.append(e.float().cpu())
        return torch.cat(out)
    finally:
        model.train(was_training)


def ood_table(score_fn: Callable[[Tensor], Tensor], in_x: Tensor, sets: Mapping[str, Tensor]) -> dict[str, float]:
    """AUROC of every OOD set in ``sets`` against ``in_x``, plus "average" (the mean over the sets).

    ``score_fn(x)`` must return (N,) scores with higher = more OOD, e.g. ``lambda x: energy_scores(model, x)``
    or ``lambda x: -baseline.log_prob(x)``.
    """
    if len(sets) == 0:
        raise ValueError("sets is empty: need at least one OOD set")
    if "average" in sets:
        raise ValueError("'average' is reserved for the mean AUROC; rename that set")
    for name, s in sets.items():
        if s.shape[1:] != in_x.shape[1:]:
            raise ValueError(f"set {name!r} has image shape {tuple(s.shape[1:])}, in_x has {tuple(in_x.shape[1:])}")

    def scores(x: Tensor, name: str) -> Tensor:
        s = score_fn(x)
        if tuple(np.shape(s)) != (x.shape[0],):
            raise ValueError(f"score_fn returned shape {tuple(np.shape(s))} for {name} of {x.shape[0]} inputs; "
                             f"expected ({x.shape[0]},)")
        return s

    s_in = scores(in_x, "in_x")
    table = {name: auroc(s_in, scores(x, repr(name))) for name, x in sets.items()}
    table["average"] = float(np.mean(list(table.values())))
    return table


# ------------------------------------------------------------------------------------------------ Fig. 10
def relative_log_likelihood(scores: Mapping[str, Tensor], reference: str) -> dict[str, Tensor]:
    """Fig. 10's relative log likelihoods: -E(x) shifted so the ``reference`` set's mean is 0.

    ``scores`` maps set names to energies (N,); log p(x) = -E(x) - log Z, and the unknown log Z cancels in the
    shift, so these are comparable across sets (reference mean 0; OOD sets should sit to the left).
    """
    if reference not in scores:
        raise ValueError(f"reference {reference!r} is not one of the sets {sorted(scores)}")
    ref = torch.as_tensor(scores[reference], dtype=torch.float64)
    if ref.numel() == 0:
        raise ValueError(f"reference set {reference!r} is empty")
    shift = ref.mean()
    return {name: -(torch.as_tensor(s, dtype=torch.float64)) + shift for name, s in scores.items()}
