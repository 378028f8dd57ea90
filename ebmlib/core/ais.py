"""Annealed importance sampling (AIS) and reverse AIS for the partition function of an energy model.

The model is p(x) = f(x) / Z with f(x) = exp(-E(x) / T) for a temperature T > 0, on R^D or, when the base
distribution is confined to a box [low, high]^D (continuous MNIST lives in [0, 1]^784), on that box.

**AIS** (Neal 2001). A tractable base p_0 = f_0 / Z_0 with known Z_0 and a path of unnormalised densities
(geometric averages) log f_b(x) = (1 - b) log f_0(x) + b log f(x), 0 = b_0 < b_1 < ... < b_K = 1. Draw
x_0 ~ p_0 and, for k = 1..K, add log f_{b_k}(x_{k-1}) - log f_{b_{k-1}}(x_{k-1}), which is
(b_k - b_{k-1}) (log f - log f_0)(x_{k-1}), to the chain's log weight (Neal's eq. (3)), then move
x_{k-1} -> x_k with a Markov kernel T_k that leaves p_{b_k} invariant. Then E[w] = Z / Z_0 exactly, so
Z_hat = Z_0 * mean(w) is unbiased and, by Jensen, E[log Z_hat] <= log Z: a stochastic *lower* bound on
log Z, hence -E(x)/T - log Z_hat is a stochastic *upper* bound on log p(x).

**Reverse AIS** runs the same path backwards, b = 1 -> 0: from a state x_K, apply T_K, add
(b_{k-1} - b_k)(log f - log f_0) at the new state, apply T_{k-1}, and so on. Started from *exact* samples of p,
E[w_rev] = Z_0 / Z, so log Z_hat_rev = log Z_0 - log mean(w_rev) is a stochastic *upper* bound on log Z and
-E(x)/T - log Z_hat_rev a stochastic *lower* bound on log p(x). With forward AIS this sandwiches log Z
(bidirectional Monte Carlo, Grosse et al. 2015; Wu et al. 2017 use it for decoder-based models).

**RAISE** (Burda, Grosse & Salakhutdinov 2015). A trained EBM has no exact samples. Started at a data point
x, one reverse chain gives log q_hat(x) = -E(x)/T - log Z_0 + log w_rev, where q_hat(x) is an unbiased
estimate of q_K(x), the density of x_K under the *annealing model*: x_0 ~ p_0 followed by the forward kernels
T_1..T_K. That needs reversible kernels (MALA and HMC are) and the same kernels both ways, which is why step
sizes here are fixed before any chain runs. So mean log q_hat over data is a stochastic lower bound on the
annealing model's log-likelihood, NOT on the EBM's: q_K -> p only as K grows and the chains mix. Only when
the data are drawn from p itself is it also a lower bound on E_p[log p] (because KL(p || q_K) >= 0). Burda et
al. find it conservative in practice; Du & Mordatch (2019, appendix A.3, Fig. 22/23) report AIS and RAISE
numbers on continuous MNIST, with T chosen to maximise the likelihood. Trust the pair only when the gap
between them is small AND the effective sample sizes are not about 1: at ESS ~ 1 a small or even negative gap
is no evidence. A RAISE value above the AIS one by more than log 100 (1 + 1/n) nats (n data points) shows
that RAISE is not bounding the EBM there (AIS's Z is unbiased, so AIS undershoots the EBM's log-likelihood by
more than log 100 with probability at most 1%).

Kernels (one of each per temperature, with a Metropolis-Hastings test, so each leaves p_b invariant): MALA,
which rejects proposals that leave the box (every intermediate density is zero there), or HMC with L
leapfrog steps that reflect off the box's walls (Neal 2011, section 5.5.1.5), so chains never leave it.
When the mass piles against a face (dequantised MNIST background lies in [0, 1/256]) MALA must shrink its
step until almost no coordinate crosses and stops mixing, so HMC is the default with a box, MALA without.
``scale`` is a fixed per-coordinate preconditioner (e.g. the data's per-pixel std).

Step sizes: ``adapt=True`` first runs a *pilot* forward AIS (``pilot_chains`` chains, its own random
draws) that nudges the step after each of ``pilot_steps`` MH steps per temperature toward
``target_accept`` and records one step per temperature; the estimate then comes from fresh chains with that
schedule frozen. Adapting inside the estimating run (e.g. from the previous temperature's acceptance) would
make later kernels depend on the chains' own past: the proof that E[w] = Z / Z_0 no longer applies (the
error only vanishes asymptotically), and RAISE's annealing model would not be one fixed model.

The energy must be a fixed function during a run: put networks in ``eval()`` mode (spectral norm in
training mode runs a power iteration, and so changes E, on every call).

Settings shared by every function (keyword ``**settings``): ``schedule`` ("sigmoid" or "linear", used with
``n_temps``), ``transition`` ("mala" or "hmc"), ``n_steps`` (MH steps per temperature), ``n_leapfrog`` (5),
``step_size`` (a number, or one per temperature b_1..b_K, which turns adaptation off), ``adapt`` (True),
``target_accept`` (0.6 for MALA, 0.7 for HMC), ``pilot_chains`` (64), ``pilot_steps`` (3), ``scale`` (1.0)
and ``batch_size`` (chains pushed through the energy at once). Log weights are accumulated in float64.

Continuous MNIST: the uniform base scores 0 nats per image where good models reach ~2000 (Fig. 22), and
on an exactly solvable 784-D product of truncated exponentials shaped like dequantised digits, AIS from
it was still >1000 nats short after 1000 temperatures, against < 1 nat from a truncated Gaussian fitted to
the data: use ``base = GaussianBase.fit(train, box=(0, 1), min_std=1/256)``, ``scale=base.std`` and HMC.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Optional, Sequence, Union

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ebmlib.core.samplers import draw_random

__all__ = ["GaussianBase", "KernelBase", "UniformBase", "AISResult", "LikelihoodBounds", "TemperatureSearch",
           "make_betas", "tune_step_sizes", "step_schedule", "summarise_log_weights", "ais_log_z", "reverse_ais_log_z",
           "log_likelihood_bounds", "best_temperature", "frozen_energy", "USEFUL_SD",
           "useful_weights"]

EnergyFn = Callable[[Tensor], Tensor]

#: the spread (sd) of log w at which log-normal weights give an ESS of a tenth of the chains: n exp(-sd^2) = n / 10
USEFUL_SD = math.sqrt(math.log(10.0))


def useful_weights(ess: float, n_chains: int, sd_log_w: float) -> bool:
    """A run's weights are useful when the ESS is at least a tenth of the chains AND the spread of log w is at
    most :data:`USEFUL_SD`. With few chains the ESS alone misleads: 2.8 of 16 chains passes n / 10 while an sd of
    10 nats says one chain carries the estimate and the rest were luck."""
    return ess >= n_chains / 10 and sd_log_w <= USEFUL_SD


def _positive(name: str, value, integer: bool = False):
    kind = numbers.Integral if integer else numbers.Real
    if not isinstance(value, kind) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite {'int' if integer else 'number'} > 0, got {value!r}")
    return value


def _flat_sum(t: Tensor) -> Tensor:
    return t.reshape(t.shape[0], -1).double().sum(-1)


def _inside(x: Tensor, box) -> Tensor:
    """(N,) bool: every coordinate of each sample lies in [low, high] (all True without a box)."""
    if box is None:
        return torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    return ((x >= box[0]) & (x <= box[1])).reshape(x.shape[0], -1).all(-1)


def _off_box_impossible(log_p: Tensor, x: Tensor, box) -> Tensor:
    """``log_p`` where each sample lies in the box, -inf where it does not."""
    return torch.where(_inside(x, box), log_p, torch.full_like(log_p, -math.inf))


# --------------------------------------------------------------------------------------------------------
# Base distributions: f_0 (unnormalised, with an analytic gradient), its log Z_0 and exact samples.

class GaussianBase:
    """Diagonal Gaussian N(mean, std^2) on samples of shape ``shape``; with ``box=(low, high)`` truncated to it.

    f_0(x) = exp(-sum((x - mean)^2 / (2 std^2))); log Z_0 = sum log(std sqrt(2 pi)) (+ sum log(Phi(b) - Phi(a))
    for the truncation, a = (low - mean) / std, b = (high - mean) / std). Truncated draws use the inverse CDF.
    """

    def __init__(self, mean: Union[float, Tensor] = 0.0, std: Union[float, Tensor] = 1.0,
                 shape: Optional[Sequence[int]] = None, box: Optional[tuple[float, float]] = None):
        mean, std = torch.as_tensor(mean), torch.as_tensor(std)
        dtype = torch.promote_types(torch.promote_types(mean.dtype, std.dtype), torch.float32)
        self.shape = torch.Size(shape) if shape is not None else torch.broadcast_shapes(mean.shape, std.shape)
        self.mean = mean.to(dtype).expand(self.shape).clone()
        self.std = std.to(device=self.mean.device, dtype=dtype).expand(self.shape).clone()
        if not (torch.isfinite(self.std).all() and (self.std > 0).all()):
            raise ValueError(f"std must be finite and > 0 everywhere, got min {self.std.min().item()!r}")
        self.box = _check_box(box) if box is not None else None
        log_z = torch.log(self.std.double() * math.sqrt(2 * math.pi))
        if self.box is not None:
            a, b = self._standard_limits()
            log_z = log_z + _log_ndtr_diff(a, b)
        self.log_z = float(log_z.sum())

    @classmethod
    def fit(cls, data: Tensor, box=None, min_std: float = 0.01) -> "GaussianBase":
        """Per-coordinate mean and std of ``data`` (N, ...), std floored at ``min_std``: a base close to the data."""
        return cls(data.mean(0), data.std(0).clamp_min(min_std), box=box)

    def _standard_limits(self) -> tuple[Tensor, Tensor]:
        return _standard_limits(self.mean, self.std, self.box)

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        _positive("n", n, integer=True)
        return _normal_draws(self.mean.expand(n, *self.shape), self.std.expand(n, *self.shape), self.box, generator)

    def log_unnormalized(self, x: Tensor) -> Tensor:
        return -0.5 * _flat_sum(((x - self.mean) / self.std) ** 2)

    def grad_log_unnormalized(self, x: Tensor) -> Tensor:
        return -(x - self.mean) / self.std ** 2

    def log_prob(self, x: Tensor) -> Tensor:
        return _off_box_impossible(self.log_unnormalized(x) - self.log_z, x, self.box)


class KernelBase:
    """A kernel density estimate on ``centres`` (M, ...): the equal mixture of diagonal Gaussians
    N(centre_m, std^2), each truncated to ``box`` when one is given; normalised, so log Z_0 = 0.

    Fitted to a model's own samples (its replay buffer) it puts the base's mass where the model's samples are,
    where the data-fitted :class:`GaussianBase` draws noisy images whose energy lies far above the data's (at a
    cold T, thousands of nats). Any fixed, normalised base keeps AIS's Z unbiased; one that misses a mode of the
    model still makes log Z_hat low (the upper bound on log p too high). Whether it helps is measured, not assumed
    (chapter 05's lever study, :mod:`ebmlib.chapters.ais_levers`).
    """

    def __init__(self, centres: Tensor, std: Union[float, Tensor], box: Optional[tuple[float, float]] = None):
        if not torch.is_tensor(centres) or not centres.is_floating_point() or centres.ndim < 2 or not len(centres):
            got = tuple(centres.shape) if torch.is_tensor(centres) else type(centres).__name__
            raise ValueError(f"centres must be a floating-point tensor (M, ...) with M >= 1, got {got}")
        self.box = _check_box(box) if box is not None else None
        if self.box is not None and ((centres < self.box[0]) | (centres > self.box[1])).any():
            raise ValueError(f"every centre must lie in the box {self.box}")
        self.shape = centres.shape[1:]
        self.centres = centres.detach().clone()
        self.std = torch.as_tensor(std, dtype=centres.dtype, device=centres.device).expand(self.shape).clone()
        if not (torch.isfinite(self.std).all() and (self.std > 0).all()):
            raise ValueError(f"std must be finite and > 0 everywhere, got min {self.std.min().item()!r}")
        self._flat_std = self.std.reshape(-1).double()
        self._flat_centres = self.centres.reshape(len(centres), -1).double()                # (M, D)
        self._scaled = self._flat_centres / self._flat_std
        self._scaled_sq = (self._scaled ** 2).sum(-1)          # |c_m / std|^2, once: logits run at every MH step
        # log of each component's normaliser, sum_d log(std_d sqrt(2 pi) (Phi(b) - Phi(a))), and log M
        log_norm = torch.log(self._flat_std * math.sqrt(2 * math.pi)).sum().expand(len(centres)).clone()
        if self.box is not None:
            a, b = _standard_limits(self.centres, self.std, self.box)
            log_norm = log_norm + _log_ndtr_diff(a, b).reshape(len(centres), -1).sum(-1)
        self._log_mix = -log_norm - math.log(len(centres))
        self.log_z = 0.0

    def _component_logits(self, x: Tensor) -> Tensor:
        z = x.reshape(x.shape[0], -1).double() / self._flat_std
        sq = (z * z).sum(-1, keepdim=True) - 2 * z @ self._scaled.T + self._scaled_sq
        return self._log_mix - 0.5 * sq.clamp_min(0)                                            # (N, M)

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        _positive("n", n, integer=True)
        pick = draw_random(torch.rand, (n,), generator, torch.float64, self.centres.device)
        mean = self.centres[(pick * len(self.centres)).long().clamp_max(len(self.centres) - 1)]
        return _normal_draws(mean, self.std.expand_as(mean), self.box, generator)

    def log_unnormalized(self, x: Tensor) -> Tensor:
        return torch.logsumexp(self._component_logits(x), -1)

    def grad_log_unnormalized(self, x: Tensor) -> Tensor:
        # sum_m r_m(x) (centre_m - x) / std^2, r the components' responsibilities
        r = torch.softmax(self._component_logits(x), -1)
        pull = (r @ self._flat_centres).reshape(x.shape)
        return ((pull - x.double()) / self.std.double() ** 2).to(x.dtype)

    def log_prob(self, x: Tensor) -> Tensor:
        return _off_box_impossible(self.log_unnormalized(x), x, self.box)


class UniformBase:
    """Uniform on the box [low, high]^D, D = prod(shape): f_0 = 1 on the box, log Z_0 = D log(high - low)."""

    def __init__(self, low: float = 0.0, high: float = 1.0, shape: Sequence[int] = (1, 28, 28),
                 dtype: torch.dtype = torch.float32, device=None):
        self.box, self.shape, self.dtype, self.device = _check_box((low, high)), torch.Size(shape), dtype, device
        self.log_z = self.shape.numel() * math.log(high - low)

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        _positive("n", n, integer=True)
        low, high = self.box
        u = draw_random(torch.rand, (n, *self.shape), generator, self.dtype, self.device)
        return low + (high - low) * u

    def log_unnormalized(self, x: Tensor) -> Tensor:
        return torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)

    def grad_log_unnormalized(self, x: Tensor) -> Tensor:
        return torch.zeros_like(x)

    def log_prob(self, x: Tensor) -> Tensor:
        return torch.where(_inside(x, self.box), -self.log_z, -math.inf).double()


def _check_box(box) -> tuple[float, float]:
    if len(box) != 2 or not all(math.isfinite(float(v)) for v in box) or not float(box[0]) < float(box[1]):
        raise ValueError(f"box must be finite (low, high) with low < high, got {box!r}")
    return float(box[0]), float(box[1])


def _log_ndtr_diff(a: Tensor, b: Tensor) -> Tensor:
    """log(Phi(b) - Phi(a)) for a < b, evaluated on the side of 0 where it does not cancel."""
    flip = a > 0
    lo, hi = torch.where(flip, -b, a), torch.where(flip, -a, b)
    log_hi, log_lo = torch.special.log_ndtr(hi), torch.special.log_ndtr(lo)
    return log_hi + torch.log1p(-torch.exp(log_lo - log_hi))


def _standard_limits(mean: Tensor, std: Tensor, box) -> tuple[Tensor, Tensor]:
    m, s = mean.double(), std.double()
    return (box[0] - m) / s, (box[1] - m) / s


def _normal_draws(mean: Tensor, std: Tensor, box, generator) -> Tensor:
    """One draw of N(mean, std^2) per element (truncated to ``box`` by the inverse CDF when there is one)."""
    if box is None:
        return mean + std * draw_random(torch.randn, mean.shape, generator, mean.dtype, mean.device)
    u = draw_random(torch.rand, mean.shape, generator, torch.float64, mean.device)
    a, b = _standard_limits(mean, std, box)
    flip = a > 0                        # sample the side of the interval nearer 0 to keep Phi accurate
    lo, hi = torch.where(flip, -b, a), torch.where(flip, -a, b)
    log_phi = torch.logaddexp(torch.special.log_ndtr(lo), u.log() + _log_ndtr_diff(lo, hi))
    z = torch.special.ndtri(log_phi.exp()).clamp(lo, hi)
    z = torch.where(flip, -z, z)
    return (mean.double() + std.double() * z).clamp(*box).to(mean.dtype)


# --------------------------------------------------------------------------------------------------------
# The annealing path and the MH kernels on it

class _State(NamedTuple):
    x: Tensor
    u1: Tensor   # log f(x) = -E(x) / T, float64 (N,)
    g1: Tensor   # its gradient in x
    u0: Tensor   # log f_0(x), float64 (N,)
    g0: Tensor


@dataclass
class _Path:
    energy: EnergyFn
    base: object
    temperature: float

    def state(self, x: Tensor) -> _State:
        """Energy and grad_x E with autograd w.r.t. x only: model parameters get no .grad."""
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            e = self.energy(xg)
            if not torch.is_tensor(e) or e.shape != (x.shape[0],):
                got = tuple(e.shape) if torch.is_tensor(e) else type(e).__name__
                raise ValueError(f"energy must return one value per sample, shape ({x.shape[0]},); got {got}")
            (g,) = torch.autograd.grad(e.sum(), xg)
        t = self.temperature
        return _State(x.detach(), -e.detach().double() / t, -g.detach().to(x.dtype) / t,
                      self.base.log_unnormalized(x), self.base.grad_log_unnormalized(x))


def _log_f(s: _State, beta: float) -> tuple[Tensor, Tensor]:
    """log f_b = (1 - b) log f_0 + b log f and its gradient (the geometric path)."""
    return (1 - beta) * s.u0 + beta * s.u1, (1 - beta) * s.g0 + beta * s.g1


def _accept(log_alpha: Tensor, old: _State, new: _State, box, generator) -> tuple[_State, Tensor]:
    """Metropolis-Hastings test; proposals outside the box have target density 0 and are rejected."""
    log_alpha = torch.nan_to_num(log_alpha, nan=-math.inf).masked_fill(~_inside(new.x, box), -math.inf)
    u = draw_random(torch.rand, log_alpha.shape, generator, torch.float64, log_alpha.device)
    ok = u.log() < log_alpha
    merged = _State(*(torch.where(ok.reshape(-1, *[1] * (a.ndim - 1)), b, a) for a, b in zip(old, new)))
    return merged, ok


def _mala(path: _Path, s: _State, beta: float, h: float, cfg: "_Settings", box, generator):
    """x' = x + h S^2 grad log f_b(x) + sqrt(2h) S xi, S = ``scale`` (a fixed diagonal preconditioner);
    log q(x'|x) = -|(x' - x - h S^2 grad log f_b(x)) / S|^2 / (4h) (Roberts & Tweedie 1996)."""
    S = cfg.scale.to(s.x)
    lf, g = _log_f(s, beta)
    noise = draw_random(torch.randn, s.x.shape, generator, s.x.dtype, s.x.device)
    new = path.state(s.x + h * S ** 2 * g + math.sqrt(2 * h) * S * noise)
    lf_new, g_new = _log_f(new, beta)
    log_q_fwd = -_flat_sum(((new.x - s.x - h * S ** 2 * g) / S) ** 2) / (4 * h)
    log_q_bwd = -_flat_sum(((s.x - new.x - h * S ** 2 * g_new) / S) ** 2) / (4 * h)
    return _accept(lf_new - lf + log_q_bwd - log_q_fwd, s, new, box, generator)


def _reflect(q: Tensor, p: Tensor, box) -> tuple[Tensor, Tensor]:
    """Fold a free drift back into [low, high] as elastic walls do: the position is mirrored at each wall
    crossed and the momentum flips once per crossing (Neal 2011, section 5.5.1.5)."""
    low, width = box[0], box[1] - box[0]
    crossings = torch.floor((q - low) / width)
    r = q - low - crossings * width                      # in [0, width)
    odd = torch.remainder(crossings, 2) == 1
    return torch.where(odd, low + width - r, low + r), torch.where(odd, -p, p)


def _hmc(path: _Path, s: _State, beta: float, eps: float, cfg: "_Settings", box, generator):
    """Leapfrog on H(x, p) = -log f_b(x) + |p|^2 / 2 (Neal 2011, eq. 5.18-5.20), then MH on exp(-H); the
    momentum is in units of ``scale`` S (mass matrix diag(S^-2)): drift x += eps S p, kick p += eps S grad.

    With a box, each position update reflects off the walls: the leapfrog map stays volume-preserving and
    reversible, so the MH test is still exact and the energy is only ever evaluated inside the box."""
    S = cfg.scale.to(s.x)
    lf0, g = _log_f(s, beta)
    p0 = draw_random(torch.randn, s.x.shape, generator, s.x.dtype, s.x.device)
    p, new = p0 + 0.5 * eps * S * g, s
    for i in range(cfg.n_leapfrog):
        q = new.x + eps * S * p
        if box is not None:
            q, p = _reflect(q, p, box)
        new = path.state(q)
        lf1, g = _log_f(new, beta)
        p = p + (eps if i < cfg.n_leapfrog - 1 else 0.5 * eps) * S * g
    log_alpha = (lf1 - 0.5 * _flat_sum(p ** 2)) - (lf0 - 0.5 * _flat_sum(p0 ** 2))
    return _accept(log_alpha, s, new, box, generator)


_KERNELS = {"mala": _mala, "hmc": _hmc}


@dataclass
class _Settings:
    schedule: str = "sigmoid"
    transition: Optional[str] = None
    n_steps: int = 1
    n_leapfrog: int = 5
    step_size: Union[float, Sequence[float], Tensor] = 0.01
    adapt: bool = True
    target_accept: Optional[float] = None
    pilot_chains: int = 64
    pilot_steps: int = 3
    scale: Union[float, Tensor] = 1.0
    batch_size: Optional[int] = None


    def __post_init__(self):
        if self.transition not in (None, *_KERNELS):
            raise ValueError(f"transition must be one of {sorted(_KERNELS)}, got {self.transition!r}")
        if self.schedule not in ("sigmoid", "linear"):
            raise ValueError(f"schedule must be 'sigmoid' or 'linear', got {self.schedule!r}")
        for name in ("n_steps", "n_leapfrog", "pilot_chains", "pilot_steps", "batch_size"):
            if name != "batch_size" or self.batch_size is not None:
                _positive(name, getattr(self, name), integer=True)
        if self.target_accept is not None and not 0 < self.target_accept < 1:
            raise ValueError(f"target_accept must lie in (0, 1), got {self.target_accept!r}")
        self.scale = torch.as_tensor(self.scale)
        if not (torch.isfinite(self.scale).all() and (self.scale > 0).all()):
            raise ValueError(f"scale must be finite and > 0 everywhere, got min {self.scale.min().item()!r}")

    @classmethod
    def for_base(cls, base, settings: dict) -> "_Settings":
        """Defaults that depend on the base: HMC (which reflects off the walls) for a box, else MALA."""
        cfg = cls(**settings)
        cfg.transition = cfg.transition or ("mala" if base.box is None else "hmc")
        cfg.target_accept = cfg.target_accept or (0.6 if cfg.transition == "mala" else 0.7)
        return cfg


# --------------------------------------------------------------------------------------------------------
# Schedules, the annealing loop, step-size tuning

def make_betas(n_temps: int, schedule: str = "sigmoid", scale: float = 4.0) -> Tensor:
    """b_0 = 0 < ... < b_K = 1, K = ``n_temps``; "sigmoid" (Grosse et al. 2015) is dense near both ends."""
    _positive("n_temps", n_temps, integer=True)
    t = torch.linspace(0, 1, n_temps + 1, dtype=torch.float64)
    if schedule == "linear":
        return t
    if schedule != "sigmoid":
        raise ValueError(f"schedule must be 'sigmoid' or 'linear', got {schedule!r}")
    s = torch.sigmoid(scale * (2 * t - 1))
    return (s - s[0]) / (s[-1] - s[0])


def _check_betas(betas) -> Tensor:
    b = torch.as_tensor(betas, dtype=torch.float64).reshape(-1)
    if b.numel() < 2 or b[0] != 0 or b[-1] != 1 or not (b[1:] > b[:-1]).all():
        shown = b.tolist() if b.numel() <= 8 else b[:4].tolist() + ["..."] + b[-3:].tolist()
        raise ValueError(f"betas must increase strictly from 0 to 1 (at least 2 values), got {shown}")
    return b


def _anneal(path, x, betas, steps, cfg, generator, reverse=False, adapt=False, progress=False):
    """One pass along the path; returns (log weights, final states, accept rate per temperature, steps used).

    Forward: for k = 1..K, weight b_{k-1} -> b_k at x, then T_k.  Reverse: for k = K..1, T_k, then weight
    b_k -> b_{k-1}. T_k = ``n_steps`` MH steps at b_k with step ``steps[k-1]``. With ``adapt`` (the pilot
    run only) the step is nudged after each of ``pilot_steps`` MH steps per temperature, starting with 20
    steps at b_0, and the value reached at b_k is recorded as steps[k-1]."""
    kernel, box = _KERNELS[cfg.transition], path.base.box
    s, K = path.state(x), len(betas) - 1
    log_w = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    steps, acc = steps.clone(), torch.zeros(K, dtype=torch.float64, device=x.device)
    h, n_steps = float(steps[0]), (cfg.pilot_steps if adapt else cfg.n_steps)

    def move(s, b, h):
        s, ok = kernel(path, s, b, h, cfg, box, generator)
        rate = ok.double().mean()
        if adapt:         # multiplicative Robbins-Monro nudge toward the target acceptance
            h *= math.exp(rate.item() - cfg.target_accept)
        return s, rate, h

    for _ in range(20 if adapt else 0):
        s, _, h = move(s, 0.0, h)
    order = range(K, 0, -1) if reverse else range(1, K + 1)
    for k in tqdm(order, disable=not progress, desc="reverse AIS" if reverse else "AIS", leave=False):
        b_prev, b = float(betas[k - 1]), float(betas[k])
        if not reverse:   # Neal (2001) eq. (3): log f_{b_k}(x_{k-1}) - log f_{b_{k-1}}(x_{k-1})
            log_w += (b - b_prev) * (s.u1 - s.u0)
        h = h if adapt else float(steps[k - 1])
        for _ in range(n_steps):
            s, rate, h = move(s, b, h)
            acc[k - 1] += rate / n_steps
        steps[k - 1] = h
        if reverse:        # reverse weight at the state after T_k: log f_{b_{k-1}} - log f_{b_k}
            log_w += (b_prev - b) * (s.u1 - s.u0)
    return log_w, s.x, acc.cpu(), steps


def tune_step_sizes(energy: EnergyFn, base, betas, *, temperature: float = 1.0, generator=None,
                    progress: bool = False, **settings) -> Tensor:
    """Per-temperature steps (K,) from a pilot forward AIS run with ``pilot_chains`` chains (see module doc)."""
    cfg, betas = _Settings.for_base(base, settings), _check_betas(betas)
    h0 = _positive("step_size", cfg.step_size)
    path = _Path(energy, base, _positive("temperature", temperature))
    x0 = base.sample(cfg.pilot_chains, generator)
    with torch.no_grad():
        return _anneal(path, x0, betas, torch.full((len(betas) - 1,), float(h0), dtype=torch.float64), cfg,
                       generator, adapt=True, progress=progress)[3]


def step_schedule(energy, base, betas, temperature, generator, progress, settings) -> Tensor:
    """The frozen step per temperature b_1..b_K that a run with ``settings`` uses (tuned by a pilot run if
    ``adapt``); pass it back as ``step_size`` to give several runs the same kernels (as RAISE needs)."""
    cfg, K = _Settings.for_base(base, settings), len(betas) - 1
    if isinstance(cfg.step_size, numbers.Real) and not isinstance(cfg.step_size, bool):
        if cfg.adapt:
            return tune_step_sizes(energy, base, betas, temperature=temperature, generator=generator,
                                   progress=progress, **settings)
        return torch.full((K,), float(_positive("step_size", cfg.step_size)), dtype=torch.float64)
    steps = torch.as_tensor(cfg.step_size, dtype=torch.float64).reshape(-1)
    if steps.numel() != K or not (torch.isfinite(steps).all() and (steps > 0).all()):
        raise ValueError(f"step_size must be a number > 0 or {K} positive values (one per temperature), "
                         f"got {steps.numel()} values with min {steps.min().item() if steps.numel() else None}")
    return steps


# --------------------------------------------------------------------------------------------------------
# Public estimators

@dataclass
class AISResult:
    """One AIS or reverse-AIS run. ``log_z`` estimates log Z of exp(-E/T) (see module doc for its bias side)."""

    log_z: float              #: forward: log Z_0 + log mean w; reverse: log Z_0 - log mean w_rev
    log_z_se: float           #: delta-method standard error, sd(w) / (sqrt(n) mean(w)) = sqrt((n/ESS - 1)/(n - 1)):
    #: a function of the ESS alone, exactly 1 at ESS = 1 whatever the real error, so meaningless when ESS is small
    log_weights: Tensor       #: (n_chains,) float64
    ess: float                #: (sum w)^2 / sum w^2
    acceptance_rate: float    #: mean over temperatures and chains
    x: Tensor                 #: final chain states (forward: approximate samples of p; reverse: of the base)
    betas: Tensor
    step_sizes: Tensor        #: (K,) the frozen step at each b_1..b_K
    acceptance: Tensor = field(repr=False)  #: (K,) per-temperature acceptance rate
    base_log_z: float = 0.0
    direction: str = "forward"


def summarise_log_weights(log_w, x, acc, steps, betas, base_log_z, direction) -> AISResult:
    """An AIS run's log weights (n_chains,) -> its estimate, delta-method SE and ESS (used by every AIS here)."""
    n = log_w.numel()
    log_mean_w = float(torch.logsumexp(log_w, 0)) - math.log(n)
    w = torch.exp(log_w - log_w.max())                       # rescaled weights, max 1
    se = float(w.std() / (math.sqrt(n) * w.mean())) if n > 1 else math.inf
    ess = float(w.sum() ** 2 / (w ** 2).sum())
    sign = 1.0 if direction == "forward" else -1.0
    return AISResult(base_log_z + sign * log_mean_w, se, log_w.cpu(), ess, float(acc.mean()), x, betas,
                     steps, acc, base_log_z, direction)


def _run(energy, base, x0, betas, temperature, generator, progress, reverse, settings) -> AISResult:
    cfg, betas = _Settings.for_base(base, settings), _check_betas(betas)
    path = _Path(energy, base, _positive("temperature", temperature))
    steps = step_schedule(energy, base, betas, temperature, generator, progress, settings)
    parts = []
    with torch.no_grad():
        for chunk in x0.split(cfg.batch_size or x0.shape[0]):
            parts.append(_anneal(path, chunk, betas, steps, cfg, generator, reverse=reverse, progress=progress))
    acc = sum(p[2] * p[0].numel() for p in parts) / x0.shape[0]
    return summarise_log_weights(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), acc, steps,
                                 betas, base.log_z, "reverse" if reverse else "forward")


def _resolve_betas(betas, n_temps, settings):
    return _check_betas(betas if betas is not None else make_betas(n_temps, settings.get("schedule", "sigmoid")))


def ais_log_z(energy: EnergyFn, base, n_chains: int = 100, betas=None, *, n_temps: int = 1000,
              temperature: float = 1.0, generator: Optional[torch.Generator] = None, progress: bool = False,
              **settings) -> AISResult:
    """Forward AIS from ``base`` to exp(-E/T): unbiased Z, so E[log Z_hat] <= log Z (stochastic lower bound)."""
    _positive("n_chains", n_chains, integer=True)
    betas = _resolve_betas(betas, n_temps, settings)
    x0 = base.sample(n_chains, generator)
    return _run(energy, base, x0, betas, temperature, generator, progress, False, settings)


def reverse_ais_log_z(energy: EnergyFn, base, x_start: Tensor, betas=None, *, n_temps: int = 1000,
                      temperature: float = 1.0, generator: Optional[torch.Generator] = None, progress: bool = False,
                      **settings) -> AISResult:
    """Reverse AIS from ``x_start`` (N, ...) to the base. If x_start are exact samples of exp(-E/T)/Z then
    E[log Z_hat_rev] >= log Z (stochastic upper bound); from data points it is RAISE (see module doc)."""
    _check_points(x_start, base, "x_start")
    betas = _resolve_betas(betas, n_temps, settings)
    return _run(energy, base, x_start, betas, temperature, generator, progress, True, settings)


def frozen_energy(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` in eval mode with its parameters frozen: a fixed E(x) for the whole run (spectral norm in training
    mode would re-run its power iteration, and so change E, at every call)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _check_points(x, base, name: str) -> None:
    if not torch.is_tensor(x) or not x.is_floating_point() or x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"{name} must be a floating-point tensor (N, ...) with N >= 1, got "
                         f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}")
    if x.shape[1:] != base.shape:
        raise ValueError(f"{name} has sample shape {tuple(x.shape[1:])} but the base has {tuple(base.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} holds {int((~torch.isfinite(x)).sum())} NaN or infinite values")
    outside = int((~_inside(x, base.box)).sum())
    if outside:
        raise ValueError(f"{outside} of {x.shape[0]} {name} samples lie outside the base's box {base.box}")


@dataclass
class LikelihoodBounds:
    """Mean log-likelihood of the data in nats (per example, not per dimension)."""

    upper: float                     #: mean(-E/T) - log Z_hat_forward: stochastic upper bound on mean log p
    lower: float                     #: RAISE (from data) or BDMC (from exact samples); nan without reverse
    per_example_upper: Tensor
    per_example_lower: Optional[Tensor]
    forward: AISResult
    reverse: Optional[AISResult]
    temperature: float
    reverse_from: str                #: "data" (RAISE), "samples" (exact model samples) or "none"


def _neg_energy(energy, data, temperature, batch_size) -> Tensor:
    with torch.no_grad():
        parts = [energy(x).double() for x in data.split(batch_size or data.shape[0])]
    return -torch.cat(parts).cpu() / temperature


def log_likelihood_bounds(energy: EnergyFn, data: Tensor, base, *, temperature: float = 1.0, n_chains: int = 100,
                          betas=None, n_temps: int = 1000, reverse_from: Union[str, Tensor, None] = "data",
                          generator: Optional[torch.Generator] = None, progress: bool = False,
                          **settings) -> LikelihoodBounds:
    """Sandwich the mean log p(data) of p = exp(-E/T) / Z between AIS (upper) and reverse AIS (lower).

    ``reverse_from="data"``: one RAISE chain per data point; ``lower`` is then a stochastic lower bound on the
    *annealing model's* mean log-likelihood only (module doc). A tensor of exact samples of p gives the BDMC
    bound mean(-E/T) - log Z_hat_rev, stochastically below the true mean log p. ``None`` skips the reverse run.
    The step schedule is tuned once and shared by both directions."""
    _check_points(data, base, "data")
    temperature = _positive("temperature", temperature)
    betas = _resolve_betas(betas, n_temps, settings)
    steps = step_schedule(energy, base, betas, temperature, generator, progress, settings)
    settings = {**settings, "step_size": steps}
    kw = dict(temperature=temperature, generator=generator, progress=progress)
    fwd = ais_log_z(energy, base, n_chains, betas, **kw, **settings)
    neg_e = _neg_energy(energy, data, temperature, settings.get("batch_size"))
    upper = neg_e - fwd.log_z
    if reverse_from is None:
        return LikelihoodBounds(float(upper.mean()), math.nan, upper, None, fwd, None, temperature, "none")
    if isinstance(reverse_from, str):
        if reverse_from != "data":
            raise ValueError(f"reverse_from must be 'data', a tensor of model samples or None, got {reverse_from!r}")
        rev = reverse_ais_log_z(energy, base, data, betas, **kw, **settings)
        lower = neg_e - base.log_z + rev.log_weights       # log q_hat(x_i), RAISE per data point
    else:
        rev = reverse_ais_log_z(energy, base, reverse_from, betas, **kw, **settings)
        lower = neg_e - rev.log_z
    return LikelihoodBounds(float(upper.mean()), float(lower.mean()), upper, lower, fwd, rev, temperature,
                            "data" if isinstance(reverse_from, str) else "samples")


@dataclass
class TemperatureSearch:
    best: float
    temperatures: list
    log_likelihoods: list            #: forward-AIS estimate of mean log p(data) at each T
    std_errors: list


def best_temperature(energy: EnergyFn, data: Tensor, base, temperatures: Sequence[float], *, n_chains: int = 100,
                     betas=None, n_temps: int = 1000, generator: Optional[torch.Generator] = None,
                     progress: bool = False, **settings) -> TemperatureSearch:
    """The T maximising mean(-E(x)/T) - log Z_hat(T) on a held-out batch (A.3: "the temperature that maximized
    the likelihood"). Choosing T by a noisy estimate favours lucky T's: report bounds on *other* data."""
    _check_points(data, base, "data")
    temps = [float(_positive("temperature", t)) for t in temperatures]
    if not temps:
        raise ValueError("temperatures must hold at least one value, got an empty sequence")
    lls, ses = [], []
    for t in temps:
        res = ais_log_z(energy, base, n_chains, betas, n_temps=n_temps, temperature=t, generator=generator,
                        progress=progress, **settings)
        lls.append(float(_neg_energy(energy, data, t, settings.get("batch_size")).mean()) - res.log_z)
        ses.append(res.log_z_se)
    return TemperatureSearch(temps[max(range(len(temps)), key=lls.__getitem__)], temps, lls, ses)
