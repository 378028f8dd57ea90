"""MCMC samplers for p(x) = exp(-E(x)) / Z behind one interface.

``sampler.run(energy, x0, n_steps)`` works on any tensor shape: the first dimension indexes independent
chains, the rest is one sample (a 2D point, a 1x28x28 image, a 31-number state). ``energy(x)`` (or
``energy(x, y)`` for a conditional energy E(x, y)) must return one energy per chain, shape ``(N,)``.

Samplers:

* :class:`PaperLangevin`: Langevin as Du & Mordatch run it (eq. (3) with A.7's practice): noise of std
  ``noise_std`` added to x, the energy gradient clipped per value to ``grad_clip``, then a gradient step of
  ``step_size``; the step size and the noise are decoupled, so this is *not* a sampler of p(x) unless
  ``noise_std**2 == 2 * step_size`` and no clipping is active; the paper trains with it anyway (section 3).
* :class:`ULA`: unadjusted Langevin, x' = x - h grad E(x) + sqrt(2h) N(0, I); eq. (3) with h = lambda / 2.
  Biased for any h > 0.
* :class:`MALA`: the same proposal with a Metropolis-Hastings correction, exact for any h.
* :class:`RandomWalkMH`: symmetric Gaussian proposals, Metropolis acceptance; needs no gradient.
* :class:`HMC`: Hamiltonian Monte Carlo with a leapfrog integrator and unit mass.

Every sampler returns a :class:`SampleResult` with the final state, an optional per-step trace and, for the
Metropolis-corrected ones, the acceptance rate. A non-finite energy or gradient at the current states (a diverged
network, chains that left the region where the energy is defined) raises :class:`NonFiniteEnergy` naming the step
where it first appears, instead of NaN chains surfacing later; one ``isfinite`` reduction per step. When the check
reads its result on the host is :attr:`Sampler.check_every`: on the CPU after every step (the run stops at the bad
step); on a GPU, where reading a value back stalls the queue of kernels, the result stays on the device and is read
once at the end of the chain (the same error, naming the same first bad step; the chain just runs to its end
first). The Metropolis samplers still reject proposals of infinite or NaN energy, which is exact (such a proposal
has density zero). A sampler reads nothing back per step (no ``.item()``): the acceptance count stays on the
device too.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from tqdm.auto import tqdm

__all__ = ["SampleResult", "NonFiniteEnergy", "Sampler", "PaperLangevin", "ULA", "MALA", "RandomWalkMH", "HMC",
           "make_sampler", "SAMPLERS", "draw_random", "frozen"]

EnergyFn = Callable[..., Tensor]


@contextlib.contextmanager
def frozen(model: nn.Module):
    """Switch off parameter gradients (sampling needs grad_x E only) and compute spectrally normalised weights once."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        with parametrize.cached():
            yield model
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)



@dataclass
class SampleResult:
    """What a sampler run returns."""

    x: Tensor                          #: final states, detached, same shape as x0
    trace: Optional[Tensor] = None     #: (n_steps + 1, *x0.shape) on the CPU if ``trace=True``
    acceptance_rate: Optional[float] = None  #: mean over chains and steps (Metropolis samplers only)
    energy: Optional[Tensor] = None    #: (N,) energies of the final states


class NonFiniteEnergy(FloatingPointError):
    """The energy or its gradient is NaN or infinite at some chains' current states; ``step`` is where (1-based;
    0: the initial states, ``n_steps``: the final states after the last step)."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


def _positive(name: str, value: float, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def draw_random(fn, shape, generator: Optional[torch.Generator], dtype, device) -> Tensor:
    """``fn`` (torch.rand / torch.randn) on the generator's device, then moved: a CPU generator (the trainer's, for
    exact resume) cannot draw on a GPU, and drawing where it lives keeps the stream identical across devices."""
    where = generator.device if generator is not None else device
    return fn(shape, generator=generator, dtype=dtype, device=where).to(device)


def _batch_sum(t: Tensor) -> Tensor:
    """Sum over every dimension but the first (one value per chain)."""
    return t.reshape(t.shape[0], -1).sum(-1)


class Sampler:
    """Base class: input checks, the energy/gradient call, clamping, traces and progress bars."""

    #: whether the sampler needs grad_x E (RandomWalkMH does not)
    uses_gradient = True

    #: when the finiteness check is read on the host: ``k >= 1`` every k steps (1: at every step, so the run stops
    #: at the bad step), ``0`` once at the end of the chain, ``None`` (default) 1 on the CPU and 0 on other devices.
    #: The error raised is the same in every mode: it names the first step whose energy or gradient was not finite.
    check_every: Optional[int] = None

    def __init__(self, autocast_dtype: Optional[torch.dtype] = None):
        # Evaluating the energy network in bfloat16 roughly halves a CPU Langevin step for conv nets; the chain
        # state and the update stay in float32 so the noise (std 0.005) is not lost to rounding.
        if autocast_dtype not in (None, torch.bfloat16, torch.float16):
            raise ValueError(f"autocast_dtype must be None, torch.bfloat16 or torch.float16, got {autocast_dtype!r}")
        self.autocast_dtype = autocast_dtype

    # -- the public entry point ------------------------------------------------------------------------
    def run(self, energy: EnergyFn, x0: Tensor, n_steps: int, *, y: Optional[Tensor] = None,
            trace: bool = False, clamp: Optional[tuple[float, float]] = None,
            generator: Optional[torch.Generator] = None, progress: bool = False) -> SampleResult:
        """Run ``n_steps`` transitions from ``x0`` and return the final states.

        Args:
            energy: callable giving E(x) (or E(x, y) when ``y`` is given) with shape (N,).
            x0: (N, ...) floating-point initial states, one chain per row. Not modified.
            n_steps: number of transitions, >= 0.
            y: optional labels (N, ...) for a conditional energy E(x, y).
            trace: keep every state (on the CPU) in ``result.trace``.
            clamp: optional (low, high) data range. Langevin-type samplers clip to it after each step; the
                Metropolis samplers reject proposals outside it, which samples p restricted to the box exactly.
            generator: a ``torch.Generator`` for reproducible noise.
            progress: show a tqdm bar over steps.
        """
        self._check_inputs(x0, n_steps, y, clamp, energy)
        x = x0.detach().clone()
        if clamp is not None:
            x = x.clamp(*clamp)
        states = [x.cpu().clone()] if trace else None
        self._accepted = torch.zeros((), dtype=torch.float64, device=x.device)   # summed on the device, read once
        self._proposed = 0
        self._n_steps, self._n_chains = n_steps, x.shape[0]
        self._every = self._check_interval(x.device)
        self._first_bad = None      # deferred checks: (step, is-energy, n bad, first bad chain, its E) on the device
        ctx = self._state_for(energy, y)
        for i in tqdm(range(n_steps), disable=not progress, desc=type(self).__name__, leave=False):
            self._at = i + 1
            x = self.step(ctx, x, clamp, generator)
            if trace:
                states.append(x.cpu().clone())
            if self._every and self._at % self._every == 0:
                self._raise_recorded()
        self._at = n_steps
        with torch.no_grad():
            final_energy = self._energy(ctx, x)
        self._check_finite(final_energy, None, final=True)
        self._raise_recorded()
        rate = float(self._accepted / self._proposed) if self._proposed else None
        return SampleResult(x=x.detach(), trace=torch.stack(states) if trace else None,
                            acceptance_rate=rate, energy=final_energy)

    __call__ = run

    # -- helpers for subclasses -----------------------------------------------------------------------------
    def step(self, ctx, x: Tensor, clamp, generator) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _state_for(self, energy: EnergyFn, y: Optional[Tensor]):
        return (energy, y)

    def _energy(self, ctx, x: Tensor) -> Tensor:
        energy, y = ctx
        amp = (torch.autocast(x.device.type, dtype=self.autocast_dtype) if self.autocast_dtype is not None
               else contextlib.nullcontext())
        with amp:
            e = energy(x) if y is None else energy(x, y)
        if not torch.is_tensor(e) or e.shape != (x.shape[0],):
            got = tuple(e.shape) if torch.is_tensor(e) else type(e).__name__
            raise ValueError(f"energy must return one value per chain, shape ({x.shape[0]},); got {got}")
        # at least float32 (bf16 autocast outputs are upcast), float64 chains keep float64 energies
        return e.to(torch.promote_types(e.dtype, torch.float32))

    def _energy_and_grad(self, ctx, x: Tensor, check: bool = True) -> tuple[Tensor, Tensor]:
        """E(x) and grad_x E(x), with no gradient flowing to the model's parameters; ``check``: refuse non-finite
        values (the current states; a Metropolis proposal may legitimately have infinite energy)."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            e = self._energy(ctx, x)
            (g,) = torch.autograd.grad(e.sum(), x)
        e, g = e.detach(), g.detach().to(x.dtype)
        if check:
            self._check_finite(e, g)
        return e, g

    def _check_interval(self, device: torch.device) -> int:
        every = self.check_every
        if every is None:
            return 1 if device.type == "cpu" else 0
        if not isinstance(every, int) or isinstance(every, bool) or every < 0:
            raise ValueError(f"check_every must be None or an int >= 0, got {every!r}")
        return every

    def _check_finite(self, e: Tensor, g: Optional[Tensor], final: bool = False) -> None:
        """Raise :class:`NonFiniteEnergy` naming the step if ``e`` (or ``g``) holds NaN or inf: one reduction and
        one host sync per call; with deferred checks (:attr:`check_every` != 1) the result is recorded on the device
        and :meth:`_raise_recorded` reads it later."""
        step = getattr(self, "_at", 0)
        if getattr(self, "_every", 1) != 1:
            self._record_bad(e, g, step, final)
            return
        ok = torch.isfinite(e).all() if g is None else torch.isfinite(e).all() & torch.isfinite(g).all()
        if bool(ok):
            return
        bad_e = ~torch.isfinite(e)
        bad = bad_e if g is None else bad_e | ~torch.isfinite(g.reshape(g.shape[0], -1)).all(1)
        first = int(bad.nonzero()[0, 0])
        self._raise(step, final, bool(bad_e.any()), int(bad.sum()), e.shape[0], first, float(e[first]))

    def _raise(self, step: int, final: bool, in_energy: bool, n_bad: int, n: int, first: int, e_first: float):
        where = (f"at the final states (after step {step})" if final and step else
                 "at the initial states" if final else f"at step {step} of {getattr(self, '_n_steps', '?')}")
        what = "energy" if in_energy else "energy gradient"
        raise NonFiniteEnergy(
            f"{type(self).__name__}: the {what} is not finite {where} for {n_bad} of {n} chains "
            f"(first: chain {first}, E = {e_first}); the energy network has diverged or the chains left "
            f"the region where it is finite (a smaller step_size or clamp=(low, high) keeps them in range)", step)

    def _record_bad(self, e: Tensor, g: Optional[Tensor], step: int, final: bool) -> None:
        """Deferred check: keep, on the device and without reading anything back, what :meth:`_raise` needs about
        the first call whose values were not finite (a few small kernels per step, no synchronisation)."""
        bad_e = ~torch.isfinite(e)
        bad = bad_e if g is None else bad_e | ~torch.isfinite(g.reshape(g.shape[0], -1)).all(1)
        first = bad.to(torch.int32).argmax()       # the first bad chain (argmax returns the first maximum)
        # torch.full fills on the device; torch.tensor(step, device=...) would copy from the host and synchronise
        where = torch.full((2,), float(step), dtype=torch.float64, device=e.device)
        where[1] = float(final)
        info = torch.cat([where, torch.stack([bad_e.any().double(), bad.sum().double(), first.double(),
                                              e[first].double()])])
        if self._first_bad is None:
            self._first_bad = torch.full_like(info, math.nan)
        fresh = bad.any() & torch.isnan(self._first_bad[0])   # nothing recorded yet, and this call is bad
        self._first_bad = torch.where(fresh, info, self._first_bad)

    def _raise_recorded(self) -> None:
        """Read the deferred check (one host synchronisation) and raise for the first bad call it recorded."""
        if self._first_bad is None:
            return
        step, final, in_energy, n_bad, first, e_first = self._first_bad.tolist()
        if math.isnan(step):
            return
        self._raise(int(step), bool(final), bool(in_energy), int(n_bad), getattr(self, "_n_chains", -1),
                    int(first), e_first)

    def _noise(self, x: Tensor, generator) -> Tensor:
        return draw_random(torch.randn, x.shape, generator, x.dtype, x.device)

    def _uniform(self, n: int, x: Tensor, generator) -> Tensor:
        return draw_random(torch.rand, (n,), generator, torch.float64, x.device)

    def _metropolis(self, log_ratio: Tensor, x: Tensor, proposal: Tensor, clamp, generator) -> Tensor:
        """Accept each chain's proposal with probability min(1, exp(log_ratio)); proposals outside clamp are rejected."""
        log_ratio = torch.nan_to_num(log_ratio.double(), nan=-math.inf)
        if clamp is not None:
            inside = _batch_sum(((proposal < clamp[0]) | (proposal > clamp[1])).to(torch.int32)) == 0
            log_ratio = torch.where(inside, log_ratio, torch.full_like(log_ratio, -math.inf))
        accept = self._uniform(x.shape[0], x, generator).log() < log_ratio
        self._accepted += accept.sum()
        self._proposed += x.shape[0]
        mask = accept.reshape(-1, *([1] * (x.ndim - 1)))
        return torch.where(mask, proposal, x)

    def _check_inputs(self, x0, n_steps, y, clamp, energy=None) -> None:
        if not torch.is_tensor(x0) or not x0.is_floating_point():
            raise TypeError(f"x0 must be a floating-point tensor, got {type(x0).__name__}"
                            f"{' of dtype ' + str(x0.dtype) if torch.is_tensor(x0) else ''}")
        weight = next(iter(energy.parameters()), None) if isinstance(energy, torch.nn.Module) else None
        if weight is not None and weight.is_floating_point() and weight.dtype != x0.dtype:
            raise TypeError(f"x0 is {x0.dtype} but the energy network's parameters are {weight.dtype}: pass "
                            f"x0.to({weight.dtype}) (or convert the network)")
        if x0.ndim < 1 or x0.shape[0] == 0:
            raise ValueError(f"x0 must have shape (N, ...) with N >= 1 chains, got {tuple(x0.shape)}")
        if not torch.isfinite(x0).all():
            bad = (~torch.isfinite(x0)).sum().item()
            raise ValueError(f"x0 holds {bad} NaN or infinite values; initial states must be finite")
        if not isinstance(n_steps, int) or isinstance(n_steps, bool) or n_steps < 0:
            raise ValueError(f"n_steps must be a non-negative int, got {n_steps!r}")
        if y is not None and (not torch.is_tensor(y) or y.shape[0] != x0.shape[0]):
            got = tuple(y.shape) if torch.is_tensor(y) else type(y).__name__
            raise ValueError(f"y must be a tensor with one label per chain ({x0.shape[0]}), got {got}")
        if clamp is not None:
            if len(clamp) != 2 or not clamp[0] < clamp[1]:
                raise ValueError(f"clamp must be (low, high) with low < high, got {clamp!r}")

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in vars(self).items() if not k.startswith("_") and v is not None)
        return f"{type(self).__name__}({fields})"


class PaperLangevin(Sampler):
    """Langevin dynamics as trained in the paper (eq. (3), A.7): decoupled step and noise, clipped gradient.

    One step: x <- x + noise_std * N(0, I);  g <- clip(grad_x E(x), +-grad_clip);  x <- x - step_size * g;
    then x is clipped to the data range. The noise is added before the gradient is taken, as in the paper's
    code release; the returned state is the one after the gradient step. A.7 defaults: step 10, noise 0.005,
    clip 0.01 for images in [0, 1]. With ``grad_clip=None`` and ``noise_std = sqrt(2 * step_size)`` it is ULA
    with the noise and gradient half-steps swapped.
    """

    def __init__(self, step_size: float = 10.0, noise_std: float = 0.005, grad_clip: Optional[float] = 0.01,
                 autocast_dtype: Optional[torch.dtype] = None):
        super().__init__(autocast_dtype)
        self.step_size = _positive("step_size", step_size)
        self.noise_std = _positive("noise_std", noise_std, allow_zero=True)
        self.grad_clip = None if grad_clip is None else _positive("grad_clip", grad_clip)

    def step(self, ctx, x, clamp, generator):
        if self.noise_std:
            x = x + self.noise_std * self._noise(x, generator)
        _, g = self._energy_and_grad(ctx, x)
        if self.grad_clip is not None:
            g = g.clamp(-self.grad_clip, self.grad_clip)  # A.7: per-value clip, |g| <= 0.01
        x = x - self.step_size * g
        return x if clamp is None else x.clamp(*clamp)


class ULA(Sampler):
    """Unadjusted Langevin: x' = x - h grad E(x) + sqrt(2h) xi. Eq. (3) with lambda = 2h; biased for h > 0.

    On N(0, s^2) its stationary variance is s^2 / (1 - h / (2 s^2)) (larger than s^2), which the tests check.
    """

    def __init__(self, step_size: float = 0.01, autocast_dtype: Optional[torch.dtype] = None):
        super().__init__(autocast_dtype)
        self.step_size = _positive("step_size", step_size)

    def step(self, ctx, x, clamp, generator):
        _, g = self._energy_and_grad(ctx, x)
        x = x - self.step_size * g + math.sqrt(2 * self.step_size) * self._noise(x, generator)
        return x if clamp is None else x.clamp(*clamp)


class MALA(Sampler):
    """Metropolis-adjusted Langevin: the ULA proposal, accepted with the Metropolis-Hastings ratio.

    log q(x' | x) = -|x' - x + h grad E(x)|^2 / (4h) + const, so the chain leaves p invariant for any h.
    """

    def __init__(self, step_size: float = 0.01, autocast_dtype: Optional[torch.dtype] = None):
        super().__init__(autocast_dtype)
        self.step_size = _positive("step_size", step_size)

    def step(self, ctx, x, clamp, generator):
        h = self.step_size
        e, g = self._energy_and_grad(ctx, x)
        prop = x - h * g + math.sqrt(2 * h) * self._noise(x, generator)
        e_prop, g_prop = self._energy_and_grad(ctx, prop, check=False)  # a non-finite proposal is rejected
        log_q_forward = -_batch_sum((prop - x + h * g).pow(2)) / (4 * h)
        log_q_backward = -_batch_sum((x - prop + h * g_prop).pow(2)) / (4 * h)
        log_ratio = (e - e_prop) + (log_q_backward - log_q_forward)
        return self._metropolis(log_ratio, x, prop, clamp, generator)


class RandomWalkMH(Sampler):
    """Random-walk Metropolis: x' = x + scale * xi, accepted with min(1, exp(E(x) - E(x')))."""

    uses_gradient = False

    def __init__(self, scale: float = 0.5, autocast_dtype: Optional[torch.dtype] = None):
        super().__init__(autocast_dtype)
        self.scale = _positive("scale", scale)

    def step(self, ctx, x, clamp, generator):
        prop = x + self.scale * self._noise(x, generator)
        with torch.no_grad():
            e = self._energy(ctx, x)
            self._check_finite(e, None)
            log_ratio = e - self._energy(ctx, prop)
        return self._metropolis(log_ratio, x, prop, clamp, generator)


class HMC(Sampler):
    """Hamiltonian Monte Carlo with unit mass: fresh momentum, ``n_leapfrog`` leapfrog steps, MH on H = E + |p|^2/2."""

    def __init__(self, step_size: float = 0.1, n_leapfrog: int = 10, autocast_dtype: Optional[torch.dtype] = None):
        super().__init__(autocast_dtype)
        self.step_size = _positive("step_size", step_size)
        if not isinstance(n_leapfrog, int) or isinstance(n_leapfrog, bool) or n_leapfrog < 1:
            raise ValueError(f"n_leapfrog must be an int >= 1, got {n_leapfrog!r}")
        self.n_leapfrog = n_leapfrog

    def step(self, ctx, x, clamp, generator):
        eps = self.step_size
        p0 = self._noise(x, generator)
        e0, g = self._energy_and_grad(ctx, x)
        q, p = x, p0 - 0.5 * eps * g
        for i in range(self.n_leapfrog):
            q = q + eps * p
            e1, g = self._energy_and_grad(ctx, q, check=False)  # a trajectory that blows up is rejected
            p = p - (eps if i < self.n_leapfrog - 1 else 0.5 * eps) * g
        h0 = e0.double() + 0.5 * _batch_sum(p0.double().pow(2))
        h1 = e1.double() + 0.5 * _batch_sum(p.double().pow(2))
        return self._metropolis(h0 - h1, x, q, clamp, generator)


SAMPLERS = {"paper_langevin": PaperLangevin, "ula": ULA, "mala": MALA, "rwmh": RandomWalkMH, "hmc": HMC}


def make_sampler(name: str, **kwargs) -> Sampler:
    """Build a sampler by name: one of ``paper_langevin``, ``ula``, ``mala``, ``rwmh``, ``hmc``. (The fast path
    of PaperLangevin's update is :func:`ebmlib.core.fastpath.fast_sampler`, which builds on this module.)"""
    if name not in SAMPLERS:
        raise KeyError(f"unknown sampler {name!r}; expected one of {sorted(SAMPLERS)}")
    return SAMPLERS[name](**kwargs)
