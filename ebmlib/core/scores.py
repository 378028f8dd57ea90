"""Scores that rank inputs as normal or anomalous: the AUROC that compares two score sets, and the
probabilistic-PCA Gaussian, an exact-likelihood baseline for energies (chapters 06 and 10).

Convention everywhere: the anomalous (out-of-distribution) set is the positive class and a HIGHER score means
"more anomalous"; energies and negative log-likelihoods both already point that way.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import Tensor

__all__ = ["auroc", "roc_curve", "PCAGaussian"]


def _as_scores(s, name: str) -> np.ndarray:
    a = s.detach().cpu().double().numpy() if isinstance(s, Tensor) else np.asarray(s, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of scores, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty: need at least one score")
    bad = ~np.isfinite(a)
    if bad.any():
        raise ValueError(f"{name} contains {int(bad.sum())} non-finite score(s) (NaN/inf), e.g. {a[bad][0]}")
    return a


def auroc(in_scores, out_scores) -> float:
    """Area under the ROC curve for separating OOD from in-distribution inputs by a score.

    Convention: OOD is the positive class and a HIGHER score means "more OOD" (pass energies or negative log
    likelihoods, not log likelihoods). 0.5 = chance; 1.0 = every OOD input scores above every in-distribution
    input; below 0.5 = the OOD data looks MORE likely than the in-distribution data (as Glow does on constant
    images in section 4.3, AUROC 0.30). Ties count one half (sklearn's ``roc_auc_score``).
    """
    from sklearn.metrics import roc_auc_score

    a = _as_scores(in_scores, "in_scores")
    b = _as_scores(out_scores, "out_scores")
    labels = np.concatenate([np.zeros(a.size), np.ones(b.size)])
    return float(roc_auc_score(labels, np.concatenate([a, b])))


def roc_curve(in_scores, out_scores) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate) of thresholding the score, anomalous = positive (sklearn)."""
    from sklearn.metrics import roc_curve as _roc

    a, b = _as_scores(in_scores, "in_scores"), _as_scores(out_scores, "out_scores")
    fpr, tpr, _ = _roc(np.concatenate([np.zeros(a.size), np.ones(b.size)]), np.concatenate([a, b]))
    return fpr, tpr


class PCAGaussian:
    """Probabilistic PCA (Tipping & Bishop 1999): x ~ N(mu, W W^T + sigma^2 I) with W of rank ``n_components``
    and sigma^2 the mean variance of the discarded directions; an exact-likelihood baseline for OOD contrast.

    Wraps ``sklearn.decomposition.PCA(...).score_samples``, which is exactly this Gaussian's log density.
    Images are flattened; on dequantised pixels (continuous in [0, 1]) it is a proper density, so ``log_prob``
    is in nats per image. The OOD score is ``-log_prob(x)``.
    """

    def __init__(self, n_components: int = 50):
        if not isinstance(n_components, (int, np.integer)) or n_components < 1:
            raise ValueError(f"n_components must be a positive integer, got {n_components!r}")
        self.n_components = int(n_components)
        self.pca = None
        self._shape: Optional[tuple[int, ...]] = None

    @staticmethod
    def _flat(x) -> np.ndarray:
        a = x.detach().cpu().double().numpy() if isinstance(x, Tensor) else np.asarray(x, dtype=np.float64)
        if a.ndim < 2:
            raise ValueError(f"x must be a batch (N, ...), got shape {a.shape}")
        return a.reshape(a.shape[0], -1)

    def fit(self, x) -> "PCAGaussian":
        from sklearn.decomposition import PCA

        a = self._flat(x)
        n, d = a.shape
        # The discarded subspace must be non-empty, or sigma^2 (and the density) is undefined.
        if self.n_components >= min(n, d):
            raise ValueError(f"n_components={self.n_components} must be < min(n_samples, n_features) = "
                             f"min({n}, {d})")
        if not np.isfinite(a).all():
            raise ValueError("x contains non-finite values")
        if not a.var(axis=0).sum() > 0:
            raise ValueError("x has zero variance in every feature: the fitted noise variance would be 0 and the "
                             "density infinite")
        pca = PCA(n_components=self.n_components, svd_solver="full").fit(a)
        if not pca.noise_variance_ > 0:
            raise ValueError(f"fitted noise variance is {pca.noise_variance_}: the data are degenerate (e.g. "
                             f"not dequantised); the density would be infinite")
        self.pca = pca
        self._shape = tuple(np.shape(x)[1:])
        return self

    def log_prob(self, x) -> Tensor:
        """log p(x) in nats per input, shape (N,)."""
        if self.pca is None:
            raise ValueError("PCAGaussian is not fitted: call fit(x) first")
        if tuple(np.shape(x)[1:]) != self._shape:
            raise ValueError(f"x has per-input shape {tuple(np.shape(x)[1:])}, fitted on {self._shape}")
        return torch.from_numpy(self.pca.score_samples(self._flat(x)))

    def mean_and_covariance(self) -> tuple[np.ndarray, np.ndarray]:
        """The fitted Gaussian's mean (D,) and covariance W W^T + sigma^2 I (D, D)."""
        if self.pca is None:
            raise ValueError("PCAGaussian is not fitted: call fit(x) first")
        return self.pca.mean_, self.pca.get_covariance()
