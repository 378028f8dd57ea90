"""How well a classifier's confidence matches its accuracy: expected calibration error (Guo et al. 2017,
references.bib ``guo2017calibration``) and the reliability diagram's bins, as JEM reports them."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Calibration", "calibration"]


@dataclass
class Calibration:
    ece: float            #: sum over bins of (bin count / n) |accuracy - mean confidence|
    confidence: Tensor    #: (n_bins,) mean top-class probability per bin (NaN where empty)
    accuracy: Tensor      #: (n_bins,) fraction correct per bin (NaN where empty)
    count: Tensor         #: (n_bins,) predictions per bin
    edges: Tensor         #: (n_bins + 1,) bin edges over [0, 1]


def calibration(probs: Tensor, labels: Tensor, n_bins: int = 15) -> Calibration:
    """Bin the top-class probability of each row of ``probs`` (N, C) into ``n_bins`` equal bins of [0, 1]."""
    if probs.ndim != 2 or labels.shape != (probs.shape[0],):
        raise ValueError(f"need probs (N, C) and labels (N,), got {tuple(probs.shape)} and {tuple(labels.shape)}")
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive int, got {n_bins!r}")
    if (probs < 0).any() or not torch.allclose(probs.sum(1), torch.ones(len(probs), dtype=probs.dtype), atol=1e-4):
        raise ValueError("probs must be rows of probabilities (non-negative, summing to 1): pass softmax(logits)")
    conf, pred = probs.max(1)
    correct = (pred == labels).to(torch.float64)
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    which = torch.clamp(torch.bucketize(conf.double(), edges[1:-1], right=True), 0, n_bins - 1)
    count = torch.bincount(which, minlength=n_bins).to(torch.float64)
    conf_sum = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, which, conf.double())
    acc_sum = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, which, correct)
    with torch.no_grad():
        mean_conf, mean_acc = conf_sum / count, acc_sum / count   # NaN in empty bins
    used = count > 0
    ece = float((count[used] / len(labels) * (mean_acc[used] - mean_conf[used]).abs()).sum())
    return Calibration(ece, mean_conf, mean_acc, count, edges)
