"""Composing energies (section 6 and Fig. 14 of the paper): AND as a sum, OR as a log-sum-exp.

* **AND / product of experts** ([hinton2002training]): ``E_AND(x) = sum_i w_i E_i(x)``, so
  ``p_AND(x) ~ prod_i p_i(x)^{w_i}``: a point is likely only where *every* expert gives it low energy.
* **OR / mixture**: ``E_OR(x) = -log sum_i pi_i exp(-E_i(x))``, so ``p_OR ~ sum_i pi_i exp(-E_i)``: likely
  where *any* expert is. For normalised experts (``E_i = -log p_i``) this is exactly the mixture
  ``sum_i pi_i p_i``; for unnormalised ones each expert is weighted by its own partition function as well.

The paper samples a composition "by undergoing a Langevin dynamic step sequentially from each model":
:func:`sequential_langevin` does that. For a sum of energies, one step on each expert in turn is a split
(Lie-Trotter) version of one Langevin step on :class:`SumEnergy`; both are offered.
"""
from __future__ import annotations

import functools
import math
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

from ebmlib.core.metrics import Grid2D
from ebmlib.core.samplers import PaperLangevin, SampleResult

__all__ = ["SumEnergy", "MixtureEnergy", "sequential_langevin", "SequentialLangevin", "product_cells", "mixture_cells", "high_density_fraction"]

EnergyFn = Callable[[Tensor], Tensor]


def _weights(weights: Optional[Sequence[float]], n: int, name: str) -> list[float]:
    if n == 0:
        raise ValueError("need at least one energy to compose")
    w = [1.0] * n if weights is None else [float(v) for v in weights]
    if len(w) != n or not all(math.isfinite(v) and v > 0 for v in w):
        raise ValueError(f"{name} must be {n} positive finite numbers, got {weights!r}")
    return w


def _log_mixing_weights(weights: Optional[Sequence[float]], n: int) -> Tensor:
    """log pi_i of the mixture weights, normalised to sum to 1, float64."""
    w = torch.tensor(_weights(weights, n, "weights"), dtype=torch.float64)
    return (w / w.sum()).log()


class SumEnergy:
    """AND: E(x) = sum_i w_i E_i(x), a product of experts p ~ prod_i exp(-w_i E_i)."""

    def __init__(self, *energies: EnergyFn, weights: Optional[Sequence[float]] = None):
        self.energies = list(energies)
        self.weights = _weights(weights, len(self.energies), "weights")

    def __call__(self, x: Tensor) -> Tensor:
        return sum(w * e(x) for w, e in zip(self.weights, self.energies))

    energy = __call__

    def log_prob(self, x: Tensor) -> Tensor:
        """Unnormalised log-density -E(x) (normalise it on a grid with Grid2D.normalise)."""
        return -self(x)


class MixtureEnergy:
    """OR: E(x) = -logsumexp_i(log pi_i - E_i(x)), a mixture p ~ sum_i pi_i exp(-E_i)."""

    def __init__(self, *energies: EnergyFn, weights: Optional[Sequence[float]] = None):
        self.energies = list(energies)
        self.log_weights = _log_mixing_weights(weights, len(self.energies))

    def __call__(self, x: Tensor) -> Tensor:
        terms = torch.stack([-e(x) for e in self.energies], dim=-1)
        return -torch.logsumexp(terms + self.log_weights.to(terms), dim=-1)

    energy = __call__

    def log_prob(self, x: Tensor) -> Tensor:
        return -self(x)


def sequential_langevin(energies: Sequence[EnergyFn], x0: Tensor, n_steps: int, step_size: float,
                        noise_std: Optional[float] = None, grad_clip: Optional[float] = None, *,
                        trace: bool = False, clamp: Optional[tuple[float, float]] = None,
                        generator: Optional[torch.Generator] = None) -> SampleResult:
    """Section 6: each of the ``n_steps`` rounds takes one paper-Langevin step on every energy in turn.

    A round adds the drift ``-step_size * grad E_i`` of every expert, i.e. one step on the sum. The noise is
    split so that a whole round carries variance ``noise_std^2`` (each sub-step ``noise_std / sqrt(k)`` for k
    experts): with the full noise on every sub-step, k experts would sample the product at temperature
    k * T instead of T = noise_std^2 / (2 step_size). ``noise_std=None`` means sqrt(2 step_size), T = 1.
    The trace (if asked) holds the state after each round, shape ``(n_steps + 1, N, ...)``; the returned
    ``energy`` is the sum of the energies at the final states.
    """
    if not isinstance(n_steps, int) or isinstance(n_steps, bool) or n_steps < 0:
        raise ValueError(f"n_steps must be a non-negative int, got {n_steps!r}")
    if len(energies) == 0:
        raise ValueError("need at least one energy")
    noise_std = math.sqrt(2 * step_size) if noise_std is None else noise_std
    sampler = PaperLangevin(step_size, noise_std / math.sqrt(len(energies)), grad_clip)
    x = x0.detach().clone()
    if clamp is not None:
        x = x.clamp(*clamp)
    states = [x.cpu().clone()] if trace else None
    for _ in range(n_steps):
        for e in energies:
            x = sampler.run(e, x, 1, clamp=clamp, generator=generator).x
        if trace:
            states.append(x.cpu().clone())
    with torch.no_grad():
        total = sum(e(x) for e in energies)
    return SampleResult(x=x, trace=torch.stack(states) if trace else None, acceptance_rate=None, energy=total)


class SequentialLangevin:
    """:func:`sequential_langevin` as a sampler of a product of experts (a module with ``.experts``, each
    ``expert(x, y)``), with the interface of :class:`~ebmlib.core.samplers.Sampler` that
    :class:`~ebmlib.core.train.Trainer` calls: ``run(model, x0, n_steps, y=..., clamp=..., generator=...)``."""

    uses_gradient = True

    def __init__(self, step_size: float, noise_std: Optional[float] = 0.005, grad_clip: Optional[float] = 0.01):
        self.step_size, self.noise_std, self.grad_clip = step_size, noise_std, grad_clip

    def run(self, model, x0: Tensor, n_steps: int, *, y: Optional[Tensor] = None, trace: bool = False,
            clamp: Optional[tuple[float, float]] = None, generator: Optional[torch.Generator] = None,
            progress: bool = False) -> SampleResult:
        experts = getattr(model, "experts", None)
        if experts is None:
            raise TypeError(f"SequentialLangevin samples a product of experts (a module with .experts), "
                            f"got {type(model).__name__}")
        energies = [functools.partial(_with_labels, e, y) for e in experts]
        return sequential_langevin(energies, x0, n_steps, self.step_size, self.noise_std, self.grad_clip,
                                   trace=trace, clamp=clamp, generator=generator)


def _with_labels(expert, y, x):
    return expert(x) if y is None else expert(x, y)


def product_cells(grid: Grid2D, *log_densities: EnergyFn) -> Tensor:
    """Exact AND reference: cell log-probabilities of prod_i p_i(x), normalised on ``grid``."""
    return grid.normalise(log_density=lambda x: sum(f(x) for f in log_densities))


def mixture_cells(grid: Grid2D, *log_densities: EnergyFn, weights: Optional[Sequence[float]] = None) -> Tensor:
    """Exact OR reference: cell log-probabilities of sum_i pi_i p_i(x) (each p_i normalised), on ``grid``."""
    logw = _log_mixing_weights(weights, len(log_densities))
    return grid.normalise(log_density=lambda x: torch.logsumexp(
        torch.stack([f(x).double() for f in log_densities], -1) + logw, -1))


def high_density_fraction(samples: Tensor, log_cells: Tensor, grid: Grid2D, mass: float = 0.9) -> float:
    """Fraction of ``samples`` that fall in the highest-density cells holding ``mass`` of a cell distribution.

    For exact samples this is about ``mass``; for samples of A + B tested against A's cells it says how many
    land where A is high.
    """
    if not 0 < mass <= 1:
        raise ValueError(f"mass must lie in (0, 1], got {mass!r}")
    p = log_cells.exp()
    order = torch.argsort(p, descending=True)
    keep = torch.zeros_like(p, dtype=torch.bool)
    n_keep = int((torch.cumsum(p[order], 0) < mass).sum()) + 1
    keep[order[:n_keep]] = True
    counts = grid.histogram(samples)
    return float(counts[keep].sum() / counts.sum())
