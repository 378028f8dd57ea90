"""Restricted Boltzmann machines: the classical energy-based model with latent units, exact where it can be.

A Bernoulli RBM on visible v in {0, 1}^D and hidden h in {0, 1}^H (references.bib
``smolensky1986information``, ``hinton2002training``) has the joint energy and, summing h out, the free energy

    E(v, h) = -b.v - c.h - v^T W h,        F(v) = -log sum_h e^{-E(v, h)} = -b.v - sum_j softplus(c_j + (v^T W)_j),

so p(v) = e^{-F(v)} / Z. No two units of one layer interact, so both conditionals factorise,
p(h_j = 1 | v) = sigmoid(c_j + (v^T W)_j) and p(v_i = 1 | h) = sigmoid(b_i + (W h)_i): block Gibbs sampling
alternates the two layers. The log-likelihood gradient is a data term minus a model term,

    d/dW mean log p(v) = < v p(h | v)^T >_data - < v p(h | v)^T >_model,

and training replaces the model term by chains of block Gibbs steps: CD-k starts them at the data batch and
runs k steps (Hinton 2002); PCD keeps them running across updates (Tieleman 2008, ``tieleman2008training``).

Exact answers, for the tests and the chapter: with H small enough to enumerate the 2^H hidden states,
log Z = logsumexp_h [c.h + sum_i softplus(b_i + (W h)_i)] and the model term is exact too
(:func:`exact_log_z`, :func:`exact_gradient`). For a large RBM, :func:`ais_log_z` is annealed importance sampling
with Gibbs kernels from a base RBM with no weights (Salakhutdinov & Murray 2008, ``salakhutdinov2008quantitative``),
summarised exactly as the book's continuous AIS (:mod:`ebmlib.core.ais`): an unbiased Z, so a stochastic lower
bound on log Z and an upper bound on log p.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ebmlib.core.ais import AISResult, make_betas, summarise_log_weights

__all__ = ["BernoulliRBM", "exact_log_z", "exact_gradient", "cd_gradient", "RBMTrainConfig", "train_rbm",
           "ais_log_z", "MAX_ENUMERATED_HIDDEN"]

MAX_ENUMERATED_HIDDEN = 24   # 2^24 hidden states is about the most a CPU enumerates in seconds


def _check_binary(v: Tensor, n_visible: int, name: str = "v") -> None:
    if v.ndim != 2 or v.shape[1] != n_visible:
        raise ValueError(f"{name} must have shape (N, {n_visible}), got {tuple(v.shape)}")
    if not torch.all((v == 0) | (v == 1)):
        raise ValueError(f"{name} must be binary (0/1 values); binarise images first, e.g. (x > 0.5).float()")


class BernoulliRBM(nn.Module):
    """Visible biases ``b`` (D,), hidden biases ``c`` (H,), weights ``W`` (D, H); see the module doc."""

    def __init__(self, n_visible: int, n_hidden: int, init_std: float = 0.01,
                 generator: Optional[torch.Generator] = None):
        super().__init__()
        if n_visible < 1 or n_hidden < 1:
            raise ValueError(f"need n_visible >= 1 and n_hidden >= 1, got {n_visible}, {n_hidden}")
        self.W = nn.Parameter(init_std * torch.randn(n_visible, n_hidden, generator=generator))
        self.b = nn.Parameter(torch.zeros(n_visible))
        self.c = nn.Parameter(torch.zeros(n_hidden))

    @property
    def n_visible(self) -> int:
        return self.W.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.W.shape[1]

    def energy(self, v: Tensor, h: Tensor) -> Tensor:
        """E(v, h) per row."""
        return -(v @ self.b) - (h @ self.c) - ((v @ self.W) * h).sum(-1)

    def free_energy(self, v: Tensor) -> Tensor:
        """F(v) = -log sum_h exp(-E(v, h)) per row (the hidden units summed out in closed form)."""
        return -(v @ self.b) - F.softplus(v @ self.W + self.c).sum(-1)

    def hidden_probs(self, v: Tensor) -> Tensor:
        return torch.sigmoid(v @ self.W + self.c)

    def visible_probs(self, h: Tensor) -> Tensor:
        return torch.sigmoid(h @ self.W.T + self.b)

    def gibbs_step(self, v: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        """One block Gibbs sweep v -> h ~ p(h | v) -> v' ~ p(v | h)."""
        h = torch.bernoulli(self.hidden_probs(v), generator=generator)
        return torch.bernoulli(self.visible_probs(h), generator=generator)

    def sample(self, v: Tensor, n_steps: int, generator: Optional[torch.Generator] = None) -> Tensor:
        with torch.no_grad():
            for _ in range(n_steps):
                v = self.gibbs_step(v, generator)
        return v


def _hidden_states(n_hidden: int, start: int, stop: int, dtype) -> Tensor:
    codes = torch.arange(start, stop, dtype=torch.int64)[:, None]
    return ((codes >> torch.arange(n_hidden)) & 1).to(dtype)


def _enumerated(rbm: BernoulliRBM, chunk: int):
    """(h, log of the unnormalised hidden marginal c.h + sum_i softplus(b_i + (W h)_i)) over all 2^H states,
    in float64 chunks."""
    if rbm.n_hidden > MAX_ENUMERATED_HIDDEN:
        raise ValueError(f"exact answers enumerate 2^n_hidden states; n_hidden={rbm.n_hidden} is more than "
                         f"{MAX_ENUMERATED_HIDDEN}: use ais_log_z for a large RBM")
    W, b, c = (p.detach().double() for p in (rbm.W, rbm.b, rbm.c))
    for start in range(0, 2 ** rbm.n_hidden, chunk):
        h = _hidden_states(rbm.n_hidden, start, min(start + chunk, 2 ** rbm.n_hidden), torch.float64)
        yield h, h @ c + F.softplus(h @ W.T + b).sum(-1)


def exact_log_z(rbm: BernoulliRBM, chunk: int = 4096) -> float:
    """log Z by enumerating the 2^H hidden states (visible units summed out in closed form)."""
    return float(torch.logsumexp(torch.cat([lf for _, lf in _enumerated(rbm, chunk)]), 0))


def exact_gradient(rbm: BernoulliRBM, v: Tensor, chunk: int = 4096) -> dict[str, Tensor]:
    """The exact gradient of mean log p(v) over the rows of ``v`` for W, b, c (model term by enumeration)."""
    _check_binary(v, rbm.n_visible)
    log_z = exact_log_z(rbm, chunk)
    W, b = rbm.W.detach().double(), rbm.b.detach().double()
    model = {"W": torch.zeros_like(W), "b": torch.zeros_like(b), "c": torch.zeros(rbm.n_hidden, dtype=torch.float64)}
    for h, log_f in _enumerated(rbm, chunk):
        p = torch.exp(log_f - log_z)[:, None]             # p(h)
        ev = torch.sigmoid(h @ W.T + b)                    # E[v | h]
        model["W"] += (ev * p).T @ h
        model["b"] += (ev * p).sum(0)
        model["c"] += (h * p).sum(0)
    vd = v.double()
    ph = torch.sigmoid(vd @ W + rbm.c.detach().double())
    data = {"W": vd.T @ ph / len(v), "b": vd.mean(0), "c": ph.mean(0)}
    return {k: (data[k] - model[k]).to(rbm.W.dtype) for k in data}


def _phase(rbm: BernoulliRBM, v: Tensor) -> dict[str, Tensor]:
    ph = rbm.hidden_probs(v)   # Rao-Blackwellised: p(h | v), not a sampled h
    return {"W": v.T @ ph / len(v), "b": v.mean(0), "c": ph.mean(0)}


def cd_gradient(rbm: BernoulliRBM, v: Tensor, k: int = 1, chains: Optional[Tensor] = None,
                generator: Optional[torch.Generator] = None) -> tuple[dict[str, Tensor], Tensor]:
    """The CD-k estimate of the gradient of mean log p(v) (ascent direction), and the chains' end states.

    ``chains=None``: CD-k, the negative chains start at ``v``; else PCD, they continue from ``chains``."""
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k (Gibbs steps per update) must be a positive int, got {k!r}")
    with torch.no_grad():
        end = rbm.sample(v if chains is None else chains, k, generator)
        pos, neg = _phase(rbm, v), _phase(rbm, end)
    return {n: pos[n] - neg[n] for n in pos}, end


@dataclass(frozen=True)
class RBMTrainConfig:
    """SGD with momentum on the CD-k / PCD gradient (the settings of Hinton's practical guide, ``hinton2012practical``)."""

    method: str = "cd"        #: "cd" (chains start at the batch) or "pcd" (persistent chains)
    k: int = 1                #: Gibbs steps per update
    lr: float = 0.05
    momentum: float = 0.5
    weight_decay: float = 1e-4   #: L2 on W only
    batch_size: int = 100
    epochs: int = 5
    seed: int = 0

    def __post_init__(self):
        if self.method not in ("cd", "pcd"):
            raise ValueError(f"method must be 'cd' or 'pcd', got {self.method!r}")
        for name in ("k", "batch_size", "epochs"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)) or not 0 <= self.momentum < 1 or self.weight_decay < 0:
            raise ValueError(f"need lr > 0 (finite), 0 <= momentum < 1, weight_decay >= 0; got lr={self.lr}, "
                             f"momentum={self.momentum}, weight_decay={self.weight_decay}")


def train_rbm(rbm: BernoulliRBM, data: Tensor, config: RBMTrainConfig, progress: bool = False) -> list[dict]:
    """Train in place on binary ``data`` (N, D); returns one row per epoch (mean reconstruction error, the
    squared error of one Gibbs sweep from the data, a rough progress signal; not a likelihood)."""
    _check_binary(data, rbm.n_visible, "data")
    g = torch.Generator().manual_seed(config.seed)
    velocity = {n: torch.zeros_like(p) for n, p in rbm.named_parameters()}
    chains = torch.bernoulli(torch.full((config.batch_size, rbm.n_visible), 0.5), generator=g) \
        if config.method == "pcd" else None
    history = []
    for epoch in tqdm(range(config.epochs), disable=not progress, desc=f"RBM {config.method.upper()}-{config.k}"):
        order, err = torch.randperm(len(data), generator=g), 0.0
        for idx in order.split(config.batch_size):
            v = data[idx]
            grad, end = cd_gradient(rbm, v, config.k, None if chains is None else chains[:len(v)], g)
            if chains is not None:
                chains[:len(v)] = end
            with torch.no_grad():
                grad["W"] -= config.weight_decay * rbm.W
                for n, p in rbm.named_parameters():
                    velocity[n].mul_(config.momentum).add_(grad[n], alpha=config.lr)
                    p.add_(velocity[n])
                err += float(((rbm.visible_probs(rbm.hidden_probs(v)) - v) ** 2).sum())
        history.append({"epoch": epoch + 1, "reconstruction_error": err / len(data)})
    return history


def ais_log_z(rbm: BernoulliRBM, n_chains: int = 100, n_temps: int = 1000, base_bias: Optional[Tensor] = None,
              generator: Optional[torch.Generator] = None, progress: bool = False) -> AISResult:
    """log Z by AIS from the base RBM with no weights and visible biases ``base_bias`` (default 0; the data's
    log-odds, clipped, make a much better base), log Z_0 = sum_i softplus(base_i) + H log 2.

    Intermediate b: log f_b(v) = (1 - b) base.v + b b_rbm.v + sum_j softplus(b (c_j + (v^T W)_j)); the kernel at
    b is block Gibbs on that RBM (weights and hidden biases scaled by b, visible biases mixed), which leaves
    f_b invariant. The chains run in the RBM's dtype, the log weights add up in float64; ``x`` of the result
    holds the chains' final visible states."""
    W, b, c = (p.detach() for p in (rbm.W, rbm.b, rbm.c))
    base = torch.zeros_like(b) if base_bias is None else base_bias.detach().to(b.dtype)
    if base.shape != b.shape or not torch.isfinite(base).all():
        raise ValueError(f"base_bias must be finite with shape ({rbm.n_visible},), got {tuple(base.shape)}")
    betas = make_betas(n_temps)

    def log_f(v: Tensor, beta: float) -> Tensor:
        return v @ ((1 - beta) * base + beta * b) + F.softplus(beta * (v @ W + c)).sum(-1)

    v = torch.bernoulli(torch.sigmoid(base).expand(n_chains, -1).contiguous(), generator=generator)
    log_w = torch.zeros(n_chains, dtype=torch.float64)
    for prev, beta in tqdm(list(zip(betas[:-1].tolist(), betas[1:].tolist())), disable=not progress, desc="AIS"):
        log_w += (log_f(v, beta) - log_f(v, prev)).double()
        h = torch.bernoulli(torch.sigmoid(beta * (v @ W + c)), generator=generator)
        v = torch.bernoulli(torch.sigmoid((1 - beta) * base + beta * (b + h @ W.T)), generator=generator)
    base_log_z = float(F.softplus(base.double()).sum()) + rbm.n_hidden * math.log(2.0)
    ones = torch.ones(n_temps, dtype=torch.float64)   # Gibbs never rejects: acceptance 1 at every b
    return summarise_log_weights(log_w, v, ones, torch.zeros(n_temps), betas, base_log_z, "forward")
