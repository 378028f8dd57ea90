"""Fit an EBM to a 2D target with Algorithm 1 and score it against the exact density.

The 2D targets of :mod:`ebmlib.core.energies` know their normalised density, so a learned energy can be judged
directly rather than by eye: on a grid, ``exp(-E_theta / T)`` is normalised by brute force (eq. (2) is a
finite sum in 2D) and compared with the truth in both KL directions.

* :func:`make_run` turns a flat dict of settings (a *spec*) into a model, a :class:`~ebmlib.core.train.TrainConfig`
  and a number of iterations. Every ablation is "the base spec with a few keys changed".
* :func:`fit` trains one spec on one target and returns a :class:`ToyFit` with the model, the training
  curves, KL(true || learned), KL(learned || true), the recovered mode weights and long-run samples.
* :func:`ablate` runs a set of variants at *equal compute*: each run gets the same number of energy-gradient
  evaluations (iterations x (Langevin steps + 1)), so a variant with more Langevin steps trains for fewer
  iterations.
* :func:`refinement_curve` measures adaptive computation (section 3 of the paper: sampling is iterative, so
  more steps at test time can refine a sample): grid KL of the samples against the truth versus step count.

Temperature. The paper's Langevin (A.7) decouples the noise from the step: x <- x + sigma*xi - lambda*grad E.
Without gradient clipping this is Langevin dynamics for ``exp(-E / T)`` with ``T = sigma^2 / (2 lambda)``, so
that is the density the sampler -- and hence the trained model -- represents. The specs here default to
``sigma = sqrt(2 lambda)`` (T = 1, so ``exp(-E)`` is the model); :func:`temperature` gives T for any spec and
the scores below always use it.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from ebmlib.core.metrics import Grid2D, cell_kl, grid_kl
from ebmlib.core.nets import MLPEnergy
from ebmlib.core.samplers import PaperLangevin, SampleResult
from ebmlib.core.train import TrainConfig, Trainer, TrainingDiverged, frozen

__all__ = ["BASE_SPEC", "full_spec", "make_run", "temperature", "grad_evals", "learned_cells", "cell_kl", "cell_mode_weights",
           "ToyFit", "fit", "ablate", "mean_score", "guarded_run", "equal_compute", "sample_model", "refinement_curve"]

#: The default spec: a small swish MLP trained with Algorithm 1 (replay buffer, L2 energy term) on [-4, 4]^2.
BASE_SPEC: dict = dict(
    hidden=64, depth=3, act="swish", spectral_norm=False,           # the energy network (nets.MLPEnergy)
    init="replay", n_steps=20,                                       # negatives: K Langevin steps from B / noise / PCD
    step_size=0.03, noise_std=None, grad_clip=None,                  # noise_std None -> sqrt(2 step): T = 1
    alpha=0.01, lr=1e-2, batch_size=128, buffer_capacity=10_000,      # eq. of Algorithm 1, Adam(beta1 = 0)
    data_range=(-4.0, 4.0), n_iters=500, seed=0,
    anneal_at=0.7, anneal_factor=0.1,                                # lr x factor for the last 30% of iterations
    max_abs_energy=1e4, max_rollbacks=3, checkpoint_every=50,
)

_NET_KEYS = ("hidden", "depth", "act", "spectral_norm")
_RUN_KEYS = ("n_iters", "seed_model")


def full_spec(spec: Optional[Mapping] = None) -> dict:
    """The base spec updated with ``spec``'s keys, noise_std filled in: every setting a run will use."""
    s = dict(BASE_SPEC)
    if spec:
        unknown = sorted(set(spec) - set(BASE_SPEC) - set(_RUN_KEYS))
        if unknown:
            raise KeyError(f"unknown spec keys {unknown}; known: {sorted(BASE_SPEC)}")
        s.update(spec)
    if s["noise_std"] is None:
        s["noise_std"] = math.sqrt(2 * s["step_size"])
    return s


def temperature(spec: Optional[Mapping] = None) -> float:
    """T = sigma^2 / (2 lambda): the sampler draws from exp(-E / T) (unclipped gradients); 0 for no noise."""
    s = full_spec(spec)
    return s["noise_std"] ** 2 / (2 * s["step_size"])


def grad_evals(spec: Optional[Mapping] = None) -> int:
    """Energy-gradient evaluations of a whole run: per iteration, K Langevin steps plus one backward pass."""
    s = full_spec(spec)
    return s["n_iters"] * (s["n_steps"] + 1)


def equal_compute(spec: Mapping, budget: int) -> dict:
    """``spec`` with ``n_iters`` chosen so the run costs ``budget`` gradient evaluations (at least 1 iteration)."""
    s = dict(spec)
    k = full_spec(s)["n_steps"]
    s["n_iters"] = max(1, int(round(budget / (k + 1))))
    return s


def make_run(spec: Optional[Mapping] = None) -> tuple[nn.Module, TrainConfig, int]:
    """(model, TrainConfig, n_iters) for a spec: the base spec updated with ``spec``'s keys."""
    s = full_spec(spec)
    torch.manual_seed(s.get("seed_model", s["seed"]))           # the network's initial weights
    model = MLPEnergy(2, s["hidden"], s["depth"], act=s["act"], spectral_norm=s["spectral_norm"])
    config = TrainConfig(
        batch_size=s["batch_size"], n_steps=s["n_steps"], step_size=s["step_size"], noise_std=s["noise_std"],
        grad_clip=s["grad_clip"], data_range=tuple(s["data_range"]), init=s["init"],
        buffer_capacity=s["buffer_capacity"], alpha=s["alpha"], lr=s["lr"], seed=s["seed"],
        checkpoint_every=s["checkpoint_every"], max_abs_energy=s["max_abs_energy"], max_rollbacks=s["max_rollbacks"],
    )
    return model, config, s["n_iters"]


# -- scoring on a grid ---------------------------------------------------------------------------------------

def learned_cells(energy: Callable[[Tensor], Tensor], grid: Grid2D, temperature: float = 1.0) -> Tensor:
    """Cell log-probabilities of exp(-E / T) normalised on ``grid`` (eq. (2) by brute force), float64."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 to define a density, got {temperature!r}")
    with frozen(energy) if isinstance(energy, nn.Module) else contextlib.nullcontext():
        return grid.normalise(energy=lambda x: energy(x) / temperature)


def cell_mode_weights(log_cells: Tensor, mixture, grid: Grid2D) -> Tensor:
    """Mass that a cell distribution gives each mixture component: sum_i p_i r_k(c_i), r the responsibilities."""
    with torch.no_grad():
        r = mixture.responsibilities(grid.points).double()
    return (log_cells.exp()[:, None] * r).sum(0)


# -- sampling a trained model ---------------------------------------------------------------------------------

def sample_model(model: nn.Module, n: int, n_steps: int, spec: Optional[Mapping] = None, x0: Optional[Tensor] = None,
                 trace: bool = False, generator: Optional[torch.Generator] = None) -> SampleResult:
    """Langevin samples of a trained model with the spec's sampler, from uniform noise on the data range (or x0)."""
    s = full_spec(spec)
    low, high = s["data_range"]
    if x0 is None:
        x0 = low + (high - low) * torch.rand(n, 2, generator=generator)
    sampler = PaperLangevin(s["step_size"], s["noise_std"], s["grad_clip"])
    with frozen(model):
        return sampler.run(model, x0, n_steps, trace=trace, clamp=(low, high), generator=generator)


def refinement_curve(model: nn.Module, target, grid: Grid2D, spec: Optional[Mapping], n: int,
                     checkpoints: Sequence[int], seed: int = 0, x0: Optional[Tensor] = None) -> dict:
    """Adaptive computation: grid KL(samples || truth) after each number of test-time Langevin steps.

    One set of ``n`` chains is run once; the KL is read off at every step count in ``checkpoints``.
    """
    steps = sorted(set(int(c) for c in checkpoints))
    if not steps or steps[0] < 0:
        raise ValueError(f"checkpoints must be non-negative step counts, got {checkpoints!r}")
    gen = torch.Generator().manual_seed(seed)
    truth = grid.normalise(log_density=target.log_prob)
    out = sample_model(model, n, steps[-1], spec, x0=x0, trace=True, generator=gen)
    return {"steps": steps, "kl": [grid_kl(out.trace[k], truth, grid) for k in steps]}


# -- one fit --------------------------------------------------------------------------------------------------

@dataclass
class ToyFit:
    """A trained 2D EBM and its scores against the exact target (all numbers from the run)."""

    spec: dict
    model: nn.Module
    trainer: Trainer
    history: list
    temperature: float
    log_cells: Tensor                 # learned density on the grid (normalised), float64
    kl_true_learned: float            # KL(p || p_theta) on the grid
    kl_learned_true: float            # KL(p_theta || p) on the grid
    mode_weights: Tensor              # mass of p_theta per mixture component
    true_weights: Tensor
    samples: Tensor                   # long-run Langevin samples of the model (from uniform noise)
    sample_kl: float                  # grid KL(histogram of samples || p)
    seconds: float
    grad_evals: int
    extra: dict = field(default_factory=dict)

    @property
    def mode_error(self) -> float:
        """Total variation between recovered and true mode weights, in [0, 1]."""
        return float(0.5 * (self.mode_weights - self.true_weights).abs().sum())

    @property
    def rollbacks(self) -> int:
        return sum(1 for h in self.history if h.get("event") == "rollback")

    def summary(self) -> dict:
        return {"kl_true_learned": self.kl_true_learned, "kl_learned_true": self.kl_learned_true,
                "sample_kl": self.sample_kl, "mode_error": self.mode_error,
                "mode_weights": [round(float(w), 4) for w in self.mode_weights],
                "temperature": self.temperature, "iters": self.trainer.iteration, "grad_evals": self.grad_evals,
                "rollbacks": self.rollbacks, "seconds": round(self.seconds, 2)}


def fit(target, spec: Optional[Mapping] = None, grid: Optional[Grid2D] = None, n_samples: int = 2000,
        sample_steps: int = 200, seed: int = 0) -> ToyFit:
    """Train ``spec`` on exact samples of ``target`` (Algorithm 1) and score the result on ``grid``.

    If training gives up (``TrainingDiverged``), the fit is still returned, scored as it stands, with the
    error message in ``extra["diverged"]``.
    """
    s = full_spec(spec)
    grid = grid if grid is not None else Grid2D(s["data_range"], 64)
    model, config, n_iters = make_run(s)
    trainer = Trainer(model, target.sample, config)
    t0 = time.perf_counter()
    extra = {}
    first = int(round(n_iters * s["anneal_at"]))
    try:
        # Adam with beta1 = 0 (A.7) leaves the energy fluctuating from batch to batch; a final stretch at a
        # smaller learning rate lets the last snapshot settle, so one run's scores are less of a lottery.
        trainer.train(first, progress=False)
        for g in trainer.optimizer.param_groups:
            g["lr"] *= s["anneal_factor"]
        trainer.train(n_iters - first, progress=False)
    except TrainingDiverged as err:
        extra["diverged"] = str(err)
    seconds = time.perf_counter() - t0
    T = temperature(s)
    truth = grid.normalise(log_density=target.log_prob)
    learned = learned_cells(model, grid, T) if T > 0 else truth.new_full(truth.shape, float("nan"))
    true_w = getattr(target, "weights", torch.ones(1)).double()
    if hasattr(target, "responsibilities") and T > 0:
        weights = cell_mode_weights(learned, target, grid)
    else:
        weights = torch.full_like(true_w, float("nan"))
    gen = torch.Generator().manual_seed(seed + 1)
    samples = sample_model(model, n_samples, sample_steps, s, generator=gen).x
    finite = torch.isfinite(samples).all(-1)
    s_kl = grid_kl(samples[finite], truth, grid) if finite.any() else float("nan")
    return ToyFit(spec=s, model=model, trainer=trainer, history=trainer.history, temperature=T, log_cells=learned,
                  kl_true_learned=cell_kl(truth, learned) if T > 0 else float("nan"),
                  kl_learned_true=cell_kl(learned, truth) if T > 0 else float("nan"),
                  mode_weights=weights, true_weights=true_w, samples=samples, sample_kl=s_kl, seconds=seconds,
                  grad_evals=trainer.iteration * (s["n_steps"] + 1), extra=extra)


def ablate(target, base: Mapping, variants: Mapping[str, Mapping], budget: Optional[int] = None,
           grid: Optional[Grid2D] = None, n_samples: int = 2000, sample_steps: int = 200,
           seeds: Sequence[int] = (0,), cache: Optional[dict] = None) -> dict[str, list[ToyFit]]:
    """Fit every variant (``base`` updated with the variant's keys) on ``target`` for each seed.

    With ``budget`` (gradient evaluations) each variant's ``n_iters`` is set by :func:`equal_compute`, so runs
    with more Langevin steps per negative train for fewer iterations: equal compute, not equal iterations.
    ``cache`` (a dict kept by the caller) reuses fits of identical specs across calls, e.g. the baseline that
    every ablation group shares.
    """
    cache = {} if cache is None else cache
    out = {}
    for name, change in variants.items():
        fits = []
        for sd in seeds:
            spec = {**base, **change, "seed": sd}
            if budget is not None:
                spec = equal_compute(spec, budget)
            key = (getattr(target, "name", id(target)), repr(sorted(full_spec(spec).items())))
            if key not in cache:
                cache[key] = fit(target, spec, grid, n_samples=n_samples, sample_steps=sample_steps, seed=sd)
            fits.append(cache[key])
        out[name] = fits
    return out


def mean_score(fits: Sequence[ToyFit], key: str) -> float:
    """Mean of one summary score over the seeds of a variant."""
    vals = [f.summary()[key] for f in fits]
    return float(sum(vals) / len(vals))


def guarded_run(target, spec: Optional[Mapping], n_iters: Optional[int] = None) -> dict:
    """Train ``spec`` on ``target`` with the Trainer's divergence guard and return the *complete* event log.

    The log is read back from the trainer's append-only ``metrics.jsonl`` (written to a temporary directory), which
    also keeps the metrics of iterations that a rollback undid (``Trainer.history`` drops those, keeping the events).
    Returns ``{"log": [...], "history": trainer.history, "trainer": ..., "gave_up": message or None}``.
    """
    import json
    import tempfile
    from pathlib import Path

    model, config, default_iters = make_run(spec)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(model, target.sample, config, ckpt_dir=tmp)
        gave_up = None
        try:
            trainer.train(default_iters if n_iters is None else n_iters, progress=False)
        except TrainingDiverged as err:
            gave_up = str(err)
        log = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines() if line]
    trainer.ckpt_dir = None   # the directory is gone
    return {"log": log, "history": trainer.history, "trainer": trainer, "gave_up": gave_up}
