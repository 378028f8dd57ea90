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

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor, nn

from ebmlib.core import energies as E
from ebmlib.core.compose import MixtureEnergy, SumEnergy, high_density_fraction, mixture_cells, product_cells, \
    sequential_langevin
from ebmlib.core.metrics import Grid2D, cell_kl, exact_sample_floor, grid_kl
from ebmlib.core.nets import MLPEnergy
from ebmlib.core.samplers import MALA, PaperLangevin, SampleResult
from ebmlib.core.train import TrainConfig, Trainer, TrainingDiverged, frozen
from ebmlib.notebook import plotting as P

__all__ = ["paper_rows", "BASE_SPEC", "full_spec", "make_run", "temperature", "grad_evals", "learned_cells", "cell_kl",
           "cell_mode_weights", "ToyFit", "fit", "ablate", "mean_score", "guarded_run", "equal_compute",
           "sample_model", "refinement_curve", "event_log",
           # the chapter's experiments, tables, sentences and figures
           "scaled_energy", "compare_inits", "sample_floors", "overview_figure", "smooth", "energy_gaps",
           "energy_curves_figure", "gap_sentence", "KL_HEADER", "kl_summary", "kl_rows", "replay_verdict",
           "ABLATION_HEADER", "run_ablations", "ablation_rows", "ablation_figure", "density_score",
           "PAPER_CLAIMS", "ablation_claims", "analytic_experts", "composition_step", "uniform_start",
           "composition_traces", "trace_figure", "and_or_samples", "analytic_composition",
           "composition_figure", "score_rows", "learned_composition", "learned_composition_figure",
           "composition_sentence", "refinement", "refinement_figure", "refinement_lines",
           "divergence_runs", "divergence_summary", "divergence_figure", "divergence_sentence",
           "summary_rows", "spread_score", "density_vs_samples", "density_runs", "density_figure",
           "density_check_rows",
           "density_sentence"]

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
                     checkpoints: Sequence[int], seed: int = 0, x0: Optional[Tensor] = None,
                     generator: Optional[torch.Generator] = None) -> dict:
    """Adaptive computation: grid KL(samples || truth) after each number of test-time Langevin steps.

    One set of ``n`` chains is run once; the KL is read off at every step count in ``checkpoints``. The
    chains' random numbers come from ``generator``, or from ``manual_seed(seed)`` when it is not given.
    """
    steps = sorted(set(int(c) for c in checkpoints))
    if not steps or steps[0] < 0:
        raise ValueError(f"checkpoints must be non-negative step counts, got {checkpoints!r}")
    gen = generator if generator is not None else torch.Generator().manual_seed(seed)
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


def spread_score(fits: Sequence[ToyFit], key: str) -> float:
    """Sample standard deviation of one summary score over the seeds of a variant (0 for one seed)."""
    vals = [f.summary()[key] for f in fits]
    if len(vals) < 2:
        return 0.0
    m = sum(vals) / len(vals)
    return float((sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5)


def guarded_run(target, spec: Optional[Mapping], n_iters: Optional[int] = None) -> dict:
    """Train ``spec`` on ``target`` with the Trainer's divergence guard and return the *complete* event log.

    The log puts the metrics of the iterations that rollbacks undid (``Trainer.undone``; ``Trainer.history`` drops
    them and keeps the events) back before the event that undid them, so it lists every iteration in the order it
    ran. Returns ``{"log": [...], "history": trainer.history, "trainer": ..., "gave_up": message or None}``.
    """
    model, config, default_iters = make_run(spec)
    trainer = Trainer(model, target.sample, config)
    gave_up = None
    try:
        trainer.train(default_iters if n_iters is None else n_iters, progress=False)
    except TrainingDiverged as err:
        gave_up = str(err)
    return {"log": event_log(trainer.history, trainer.undone), "history": trainer.history, "trainer": trainer,
            "gave_up": gave_up}


def event_log(history: Sequence[Mapping], undone: Sequence[Mapping]) -> list[dict]:
    """History and undone iterations merged in the order they ran: each rollback (or give-up) event is preceded
    by the ``event["undone"]`` records it moved out of the history."""
    queue, out = list(undone), []
    for h in history:
        if "event" in h:
            n = int(h.get("undone", 0))
            out += queue[:n]
            queue = queue[n:]
        out.append(dict(h))
    if queue:
        raise ValueError(f"{len(queue)} undone records belong to no event of the history")
    return out


# =========================================================================================================
# The chapter's experiments, tables, sentences and figures (notebook 02_training_2d). Each returns plain
# dicts, lists and tensors; random numbers come from generators the notebook passes (``ch.rng(k)``).
# =========================================================================================================

def _default_rng(k: int) -> torch.Generator:
    return torch.Generator().manual_seed(k)


def scaled_energy(fit_: ToyFit) -> Callable[[Tensor], Tensor]:
    """``E_theta(x) / T`` of a fit: the energy of the density ``exp(-E/T)`` that its sampler stands for."""
    model, temp = fit_.model, fit_.temperature
    return lambda x: model(x) / temp


def compare_inits(targets: Mapping, base: Mapping, inits: Sequence[str], *, grid: Grid2D, n_samples: int,
                  sample_steps: int, seeds: Sequence[int], cache: dict) -> dict:
    """Section 2: the base spec trained once per negative-sample initialisation (replay buffer, noise, PCD)
    and seed on each target, at equal compute. ``fits[name][init]`` is the first seed's fit (for the
    pictures), ``fits[name]["_all"][init]`` every seed's."""
    fits = {}
    for name, target in targets.items():
        runs = ablate(target, base, {init: {"init": init} for init in inits}, grid=grid, n_samples=n_samples,
                      sample_steps=sample_steps, seeds=seeds, cache=cache)
        fits[name] = {init: runs[init][0] for init in inits}
        fits[name]["_all"] = runs
    return fits


def sample_floors(targets: Mapping, grid: Grid2D, n_samples: int, n_repeats: int,
                  rng: Callable[[int], torch.Generator] = _default_rng) -> dict[str, tuple[float, float]]:
    """Grid KL (mean, sd) of ``n_samples`` exact samples per target (stream 1 for every target)."""
    return {name: exact_sample_floor(t, grid, n_samples, n_repeats, generator=rng(1))
            for name, t in targets.items()}


def overview_figure(targets: Mapping, fits: Mapping, grid: Grid2D):
    """One row per target: the truth, the replay model's energy, density and samples, and the densities
    learned with noise-initialised and persistent chains."""
    cols = ["true density p", "learned energy E/T (replay)", "learned density (replay)", "samples (replay)",
            "learned density (noise init)", "learned density (PCD)"]
    fig, axes = P.panel_grid(len(targets), len(cols), size=2.0)
    for i, (name, target) in enumerate(targets.items()):
        f = fits[name]
        P.plot_density(target, grid, axes[i, 0])
        P.plot_energy(scaled_energy(f["replay"]), grid, axes[i, 1])
        P.plot_density(f["replay"].log_cells, grid, axes[i, 2])
        P.plot_samples(f["replay"].samples, axes[i, 3], grid, s=1.0, max_points=1500)
        P.plot_density(f["noise"].log_cells, grid, axes[i, 4])
        P.plot_density(f["persistent"].log_cells, grid, axes[i, 5])
        axes[i, 0].set_ylabel(name)
    for j, c in enumerate(cols):
        axes[0, j].set_title(c, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def smooth(values: Sequence[float], window: int = 25) -> np.ndarray:
    """Moving average over ``window`` values (fewer if the series is shorter), 'valid' part only."""
    v = np.asarray(values, dtype=float)
    w = max(1, min(window, len(v)))
    return np.convolve(v, np.ones(w) / w, mode="valid")


def _training_rows(fit_: ToyFit) -> list[dict]:
    return [r for r in fit_.history if "event" not in r]


def energy_gaps(fits: Mapping) -> dict[str, dict]:
    """Mean E(negatives) - E(data) of each replay model over the first and the last tenth of training."""
    gaps = {}
    for name, f in fits.items():
        h = _training_rows(f["replay"])
        n10 = max(1, len(h) // 10)
        gaps[name] = {"first_10pct": float(np.mean([r["e_neg"] - r["e_pos"] for r in h[:n10]])),
                      "last_10pct": float(np.mean([r["e_neg"] - r["e_pos"] for r in h[-n10:]]))}
    return gaps


def energy_curves_figure(fits: Mapping):
    """Mean energy of data and of negatives per iteration (raw and smoothed), one panel per replay model."""
    fig, axes = plt.subplots(1, len(fits), figsize=(3.2 * len(fits), 2.6), squeeze=False)
    for ax, name in zip(axes[0], fits):
        h = _training_rows(fits[name]["replay"])
        for key, col in (("e_pos", "C0"), ("e_neg", "C3")):
            v = [r[key] for r in h]
            ax.plot(v, color=col, alpha=0.25, lw=0.6)
            ax.plot(np.arange(len(smooth(v))) + 12, smooth(v), color=col,
                    label="E(data)" if key == "e_pos" else "E(negatives)")
        ax.set_title(f"{name} (replay)", fontsize=9)
        ax.set_xlabel("iteration")
    axes[0, 0].set_ylabel("mean energy")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def gap_sentence(gaps: Mapping[str, dict]) -> str:
    """The gaps of :func:`energy_gaps`, and on which targets the gap fell by more than half during training."""
    closed = [n for n, g in gaps.items() if abs(g["last_10pct"]) < 0.5 * abs(g["first_10pct"])]
    others = [n for n in gaps if n not in closed]
    text = ("Mean gap E(negatives) - E(data) over the first and last tenth of training: " + "; ".join(
        f"{n} {g['first_10pct']:+.3f} -> {g['last_10pct']:+.3f}" for n, g in gaps.items()) + ". ")
    text += f"The gap falls by more than half on {len(closed)} of {len(gaps)} targets"
    text += f" ({', '.join(closed)})" if closed else ""
    return text + (f"; on {', '.join(others)} it does not." if others else ".")


_SCORES = ("kl_true_learned", "kl_learned_true", "sample_kl", "mode_error")

#: the header of :func:`kl_rows`
KL_HEADER = ["target", "negatives from", "KL(p ‖ p_θ)", "KL(p_θ ‖ p)", "sample KL", "mode TV error", "mode weights"]


def kl_summary(fits: Mapping, inits: Sequence[str]) -> dict:
    """``kl_table[target][init]``: the scores averaged over seeds, their spread (``<score>_sd``, the standard
    deviation over seeds), the number of seeds, and the first seed's mode weights."""
    table = {}
    for name, f in fits.items():
        table[name] = {}
        for init in inits:
            runs = f["_all"][init]
            table[name][init] = {k: mean_score(runs, k) for k in _SCORES}
            table[name][init].update({f"{k}_sd": spread_score(runs, k) for k in _SCORES})
            table[name][init]["seeds"] = len(runs)
            table[name][init]["mode_weights"] = runs[0].summary()["mode_weights"]
    return table


def kl_rows(targets: Mapping, kl_table: Mapping, floors: Mapping) -> list[list]:
    """Rows of the KL table (see ``KL_HEADER``): one per target and initialisation, then the truth's row
    with the exact-sample floor of the sample KL."""
    rows = []
    for name, target in targets.items():
        for init, s in kl_table[name].items():
            w = ", ".join(f"{v:.2f}" for v in s["mode_weights"])
            many = s.get("seeds", 1) > 1
            rows.append([name, init, *((f"{s[k]:.3f} ± {s[k + '_sd']:.3f}" if many else s[k]) for k in _SCORES), w])
        m, sd = floors[name]
        true_w = ", ".join(f"{v:.2f}" for v in target.weights.tolist())
        rows.append([name, "*exact samples / truth*", "0", "0", f"{m:.3f} ± {sd:.3f}", "0", true_w])
    return rows


def replay_verdict(kl_table: Mapping) -> tuple[str, dict]:
    """Section 3.2's claim tested: on how many targets the replay model beats noise restarts and PCD.

    Returns the Markdown paragraph and the lists of winning targets."""
    names = list(kl_table)
    n = len(names)

    def wins(a, b, key):
        return [t for t in names if kl_table[t][a][key] < kl_table[t][b][key]]

    def clear(a, b, key):   # a below b by more than the two seed spreads together
        return [t for t in names if kl_table[t][a][key] + kl_table[t][a].get(key + "_sd", 0.0)
                < kl_table[t][b][key] - kl_table[t][b].get(key + "_sd", 0.0)]

    both = {b: [t for t in names if all(kl_table[t]["replay"][k] < kl_table[t][b][k]
                                        for k in ("kl_true_learned", "kl_learned_true"))]
            for b in ("noise", "persistent") if b in kl_table[names[0]]}
    w_fwd, w_rev = wins("replay", "noise", "kl_true_learned"), wins("replay", "noise", "kl_learned_true")
    verdict = "supports" if len(both["noise"]) > n / 2 else "does not clearly support"
    text = (f"**Replay buffer vs short-run chains from noise.** At equal compute the replay-buffer model has the "
            f"lower KL(p ‖ p_θ) on {len(w_fwd)} of {n} targets ({', '.join(w_fwd) or 'none'}) and the lower "
            f"KL(p_θ ‖ p) on {len(w_rev)} of {n} ({', '.join(w_rev) or 'none'}); it is better in both directions "
            f"on {len(both['noise'])} of {n}. This run therefore {verdict} section 3.2's claim that the buffer "
            f"improves on restarting from noise")
    seeds = kl_table[names[0]]["replay"].get("seeds", 1)
    if seeds > 1:
        sure = [t for t in both["noise"] if t in clear("replay", "noise", "kl_true_learned")
                and t in clear("replay", "noise", "kl_learned_true")]
        text += (f" (over {seeds} seeds; by more than the seeds' spread in both directions on {len(sure)} of {n}: "
                 f"{', '.join(sure) or 'none'}; the other wins are inside the spread)")
    lose = [t for t in names if t not in both["noise"]]
    text += (f"; where it does not win in both directions ({', '.join(lose)}), the table above shows by how much."
             if lose else ".")
    mode_wins = wins("replay", "noise", "mode_error")
    text += (f" The replay model also recovers the mode weights better (lower total-variation error) on "
             f"{len(mode_wins)} of {n} targets ({', '.join(mode_wins) or 'none'}).")
    if "persistent" in both:
        text += (f" **Replay vs PCD** (A.3 reports PCD clearly worse on MNIST): the buffer wins in both directions "
                 f"on {len(both['persistent'])} of {n} targets here.")
    result = {"mode_weights_vs_noise": mode_wins, "vs_noise_both": both["noise"], "vs_noise_fwd": w_fwd,
              "vs_noise_both_beyond_spread": [t for t in both["noise"] if t in clear("replay", "noise", "kl_true_learned")
                                              and t in clear("replay", "noise", "kl_learned_true")],
              "vs_noise_rev": w_rev, "vs_pcd_both": both.get("persistent", [])}
    return text, result


# -- section 3: ablations -------------------------------------------------------------------------------------

_ABLATION_KEYS = _SCORES + ("temperature", "iters", "grad_evals", "rollbacks")

#: the header of :func:`ablation_rows`
ABLATION_HEADER = ["ablation", "variant", "T", "iterations", "grad evals", "KL(p ‖ p_θ)", "KL(p_θ ‖ p)",
                   "sample KL", "mode TV", "rollbacks"]


def run_ablations(target, base: Mapping, ablations: Mapping[str, Mapping], *, budget: int, grid: Grid2D,
                  n_samples: int, sample_steps: int, seeds: Sequence[int], cache: dict) -> dict:
    """Every ablation group on one target, each variant at ``budget`` gradient evaluations; the scores
    averaged over seeds: ``scores[group][variant][key]``."""
    out = {}
    for group, variants in ablations.items():
        runs = ablate(target, base, variants, budget=budget, grid=grid, n_samples=n_samples,
                      sample_steps=sample_steps, seeds=seeds, cache=cache)
        out[group] = {label: {**{k: mean_score(fl, k) for k in _ABLATION_KEYS},
                              **{f"{k}_sd": spread_score(fl, k) for k in _SCORES}, "seeds": len(fl)}
                      for label, fl in runs.items()}
    return out


def ablation_rows(scores: Mapping) -> list[list]:
    """Rows of the ablation table (see ``ABLATION_HEADER``)."""
    def score(s, k):
        return f"{s[k]:.3f} ± {s[k + '_sd']:.3f}" if s.get("seeds", 1) > 1 else s[k]
    return [[group, label, f"{s['temperature']:.3g}", int(s["iters"]), int(s["grad_evals"]),
             *(score(s, k) for k in _SCORES), int(s["rollbacks"])]
            for group, res in scores.items() for label, s in res.items()]


def ablation_figure(scores: Mapping):
    """One bar panel per ablation group: both KL directions and the sample KL of every variant (log scale)."""
    fig, axes = plt.subplots(1, len(scores), figsize=(2.6 * len(scores), 2.9), squeeze=False)
    for ax, (group, res) in zip(axes[0], scores.items()):
        labels = list(res)
        x = np.arange(len(labels))
        for dx, key, lab in ((-0.27, "kl_true_learned", "KL(p ‖ p_θ)"), (0.0, "kl_learned_true", "KL(p_θ ‖ p)"),
                             (0.27, "sample_kl", "sample KL")):
            ax.bar(x + dx, [res[v][key] for v in labels], 0.27, label=lab)
        ax.set_yscale("log")
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
        ax.set_title(group, fontsize=8)
    axes[0, 0].set_ylabel("nats (grid, log scale)")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def density_score(r: Mapping) -> float:
    """One number per variant: the two KL directions added (a symmetrised KL, nats)."""
    return r["kl_true_learned"] + r["kl_learned_true"]


def _score_sd(r: Mapping) -> float:
    """The seed spread of :func:`density_score`, treating its two terms' spreads as independent (0 for one seed)."""
    return float((r.get("kl_true_learned_sd", 0.0) ** 2 + r.get("kl_learned_true_sd", 0.0) ** 2) ** 0.5)


def _beyond_spread(a: Mapping, b: Mapping) -> str:
    """" (beyond / inside the seeds' spread)" for two variants' density scores, or "" for one seed."""
    if a.get("seeds", 1) < 2:
        return ""
    gap, noise = abs(density_score(a) - density_score(b)), _score_sd(a) + _score_sd(b)
    return f" ({'beyond' if gap > noise else 'inside'} the {a['seeds']} seeds' spread, {noise:.2f} nats)"


#: the paper's claim that each ablation group tests
PAPER_CLAIMS = (("step size (A.8)", "training is most sensitive to the MCMC step size"),
                ("L2 coefficient alpha (3.3, A.4)",
                 "results are insensitive to the L2 coefficient across orders of magnitude"),
                ("activation (A.8)", "ReLU, LeakyReLU and Swish all work, Swish best"),
                ("spectral norm (3.3)", "spectral normalisation helps"),
                ("Langevin steps K (equal compute)", "more sampling steps per negative help"))


def _noise_claims(noise: Mapping) -> list[str]:
    """A.8 on the noise level: too little gives poor results, too much collapses training."""
    ref = noise.get("noise x1 (T = 1)")
    if not ref or len(noise) < 2:
        return []
    score, claims = density_score, []
    lows = [v for v in noise if "x0." in v]
    highs = [v for v in noise if v.startswith("noise x") and v[7:8].isdigit() and float(v[7:].split()[0]) > 1]
    for v in lows:
        ok = score(noise[v]) > score(ref)
        claims.append(f"*A.8, too little noise gives poor results*: {v} scores {score(noise[v]):.2f} nats (KL sum) "
                      f"against {score(ref):.2f} at T = 1, so this run {'supports' if ok else 'does not support'} it.")
    for v in highs:
        r = noise[v]
        collapsed = r["rollbacks"] > 0 or score(r) > 2 * score(ref) or r["sample_kl"] > 2 * ref["sample_kl"]
        claims.append(f"*A.8, too much noise collapses training through failure of the sampler*: {v} "
                      f"(T = {r['temperature']:.2g}) has a density score of {score(r):.2f} nats against "
                      f"{score(ref):.2f} at T = 1, a sample KL of {r['sample_kl']:.2f} against "
                      f"{ref['sample_kl']:.2f}, and {int(r['rollbacks'])} rollbacks: "
                      + ("consistent with the claim in this run" if collapsed else "no sign of it in this run")
                      + (" (the learned density is fine but the hot sampler's samples are not)"
                         if collapsed and score(r) <= 2 * score(ref) else "") + ".")
    return claims


def _group_verdict(group: str, res: Mapping, best: str, worst: str) -> str:
    score, labels = density_score, list(res)
    if group.startswith("Langevin steps"):
        ok = best == labels[-1]
        return (f"{'supported' if ok else 'not supported'}: the best run had {best} (at equal compute, so fewer "
                f"iterations for larger K)")
    if group.startswith("activation"):
        ok = score(res[worst]) <= 2 * score(res[best])
        return (f"{'supported' if ok else 'not supported'}: the worst activation is {'within' if ok else 'more than'} "
                f"a factor 2 of the best; Swish {'is' if best == 'swish' else 'is not'} the best here")
    if group.startswith("spectral"):
        ok = score(res["SN"]) < score(res["no SN"])
        return f"{'supported' if ok else 'not supported'} in this run"
    return "see the spread comparison below"


def ablation_claims(scores: Mapping) -> list[str]:
    """The paper's claims about each ablation (A.4, A.8, section 3.3) checked against this run's scores.

    A group's spread is the largest minus the smallest :func:`density_score` of its variants; a claim that a
    setting matters (or does not) is read against the median spread of all groups."""
    score = density_score
    spreads = {g: max(score(r) for r in res.values()) - min(score(r) for r in res.values())
               for g, res in scores.items()}
    median = float(np.median(list(spreads.values())))
    claims = _noise_claims(scores.get("Langevin noise (A.8)", {}))
    for group, paper in PAPER_CLAIMS:
        res = scores.get(group)
        if not res:
            continue
        best, worst = min(res, key=lambda v: score(res[v])), max(res, key=lambda v: score(res[v]))
        claims.append(f"*{paper}* ({group}): best {best} ({score(res[best]):.2f}), worst {worst} "
                      f"({score(res[worst]):.2f}){_beyond_spread(res[best], res[worst])}; spread "
                      f"{spreads[group]:.2f} nats against {median:.2f} for the median group; "
                      + _group_verdict(group, res, best, worst) + ".")
    if "step size (A.8)" in spreads:
        top = max(spreads, key=spreads.get)
        claims.append(f"The largest spread is in *{top}*; the paper's claim that the step size matters most is "
                      f"{'supported' if top == 'step size (A.8)' else 'not borne out'} by this run.")
    alpha = "L2 coefficient alpha (3.3, A.4)"
    if alpha in scores:
        calm = spreads[alpha] <= median
        claims.append("Insensitivity to alpha (A.4) " + ("holds" if calm else "does not hold") + " here: its spread is "
                      + ("at or below" if calm else "above") + " the median group's.")
    sn = scores.get("spectral norm (3.3)", {})
    if "SN" in sn and "no SN" in sn:
        claims.append(f"Spectral norm: {score(sn['SN']):.2f} with, {score(sn['no SN']):.2f} without; "
                      + ("it helps in this run." if score(sn["SN"]) < score(sn["no SN"]) else
                         "it does not help this small MLP at this budget (a plausible reason: bounding every layer's "
                         "Lipschitz constant also bounds how steep the energy walls between modes can become)."))
    return claims


# -- section 4: composition (Fig. 14) -----------------------------------------------------------------------

def analytic_experts() -> tuple[E.Distribution, E.Distribution]:
    """The two exact experts of section 4: a ring of radius 2 (A) and a vertical Gaussian band (B)."""
    return E.Arc(radius=2.0, width=0.2), E.Gaussian((0.0, 0.0), ((0.1, 0.0), (0.0, 4.0)))


def composition_step(base: Mapping) -> float:
    """The Langevin step for composed energies: a third of the base spec's step (noise sqrt(2 step), T = 1)."""
    return base.get("step_size", BASE_SPEC["step_size"]) / 3


def uniform_start(n: int, data_range: Sequence[float], generator: torch.Generator) -> Tensor:
    """``n`` points uniform on the square ``data_range``^2."""
    low, high = data_range
    if not (isinstance(n, int) and n >= 1) or not low < high:
        raise ValueError(f"need n >= 1 and low < high, got n={n!r}, data_range={tuple(data_range)!r}")
    return low + (high - low) * torch.rand(n, 2, generator=generator)


def composition_traces(a, b, n_chains: int, n_steps: int, step_size: float, data_range: Sequence[float],
                       generator: torch.Generator) -> dict[str, tuple[Callable, Tensor]]:
    """Traces of sequential Langevin on A, on B and on A + B from the same uniform starts (one generator
    for the starts and all three runs): ``title -> (energy, trace)``."""
    x0 = uniform_start(n_chains, data_range, generator)
    experts = {"energy A (ring)": [a], "energy B (band)": [b], "energy A + B (AND)": [a, b]}
    return {title: (SumEnergy(*es) if len(es) > 1 else es[0],
                    sequential_langevin(es, x0, n_steps, step_size, trace=True, clamp=tuple(data_range),
                                        generator=generator).trace)
            for title, es in experts.items()}


def trace_figure(traces: Mapping[str, tuple[Callable, Tensor]], grid: Grid2D, n_chains: int):
    """Each energy of :func:`composition_traces` with its sampling paths drawn over it (Fig. 14's style)."""
    fig, axes = plt.subplots(1, len(traces), figsize=(3 * len(traces), 3.1), squeeze=False)
    for ax, (title, (energy, trace)) in zip(axes[0], traces.items()):
        P.plot_energy(energy, grid, ax)
        P.plot_trajectories(trace, ax, chains=range(n_chains))
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def and_or_samples(experts: Sequence[Callable], x0: Tensor, n_steps: int, step_size: float,
                   data_range: Sequence[float], generator: torch.Generator) -> dict[str, Tensor]:
    """Samples of AND (sequential Langevin over the experts, section 6) and of OR (Langevin on their
    log-sum-exp), from the same start and one generator, AND first."""
    clamp = tuple(data_range)
    x_and = sequential_langevin(list(experts), x0, n_steps, step_size, clamp=clamp, generator=generator).x
    x_or = sequential_langevin([MixtureEnergy(*experts)], x0, n_steps, step_size, clamp=clamp,
                               generator=generator).x
    return {"AND": x_and, "OR": x_or}


def analytic_composition(a, b, samples: Mapping[str, Tensor], grid: Grid2D) -> tuple[dict, dict]:
    """Exact cells of A, B, their product and their mixture, and the AND / OR samples scored against each
    (grid KL) and by the share of them in A's and B's 90% regions. Returns ``(cells, scores)``."""
    cells = {"A": grid.normalise(log_density=a.log_prob), "B": grid.normalise(log_density=b.log_prob),
             "A AND B (product)": product_cells(grid, a.log_prob, b.log_prob),
             "A OR B (mixture)": mixture_cells(grid, a.log_prob, b.log_prob)}
    scores = {}
    for label, x in (("AND samples", samples["AND"]), ("OR samples", samples["OR"])):
        scores[label] = {f"KL vs {k}": grid_kl(x, v, grid) for k, v in cells.items()}
        scores[label].update({f"in 90% region of {k}": high_density_fraction(x, cells[k], grid) for k in ("A", "B")})
    return cells, scores


def composition_figure(cells: Mapping[str, Tensor], samples: Mapping[str, Tensor], grid: Grid2D):
    """The exact product and mixture, then the AND and OR samples over them."""
    fig, axes = plt.subplots(1, 4, figsize=(11, 2.9))
    panels = (("exact product p_A p_B", cells["A AND B (product)"]), ("exact mixture", cells["A OR B (mixture)"]))
    for ax, (title, lc) in zip(axes[:2], panels):
        P.plot_density(lc, grid, ax)
        ax.set_title(title, fontsize=9)
    for ax, (title, x, lc) in zip(axes[2:], (("samples of E_A + E_B", samples["AND"], panels[0][1]),
                                             ("samples of OR", samples["OR"], panels[1][1]))):
        P.plot_density(lc, grid, ax, gamma=0.5)
        P.plot_samples(x, ax, grid, s=1.0, max_points=1500, color="C3")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def score_rows(scores: Mapping[str, Mapping[str, float]]) -> tuple[list[str], list[list]]:
    """Header and rows of a ``row label -> {column: value}`` table."""
    header = ["samples", *next(iter(scores.values()))]
    return header, [[k, *v.values()] for k, v in scores.items()]


def learned_composition(ta, tb, samples: Mapping[str, Tensor], learned_and: Tensor, grid: Grid2D) -> dict:
    """Samples of the summed and mixed learned energies against the exact product and mixture of the true
    densities, and the learned product density (``learned_and``) against the exact product, in nats."""
    true_and = product_cells(grid, ta.log_prob, tb.log_prob)
    true_or = mixture_cells(grid, ta.log_prob, tb.log_prob)
    return {
        "samples of learned E_A + E_B: KL vs exact product": grid_kl(samples["AND"], true_and, grid),
        "samples of learned E_A + E_B: KL vs exact mixture": grid_kl(samples["AND"], true_or, grid),
        "samples of learned OR: KL vs exact mixture": grid_kl(samples["OR"], true_or, grid),
        "samples of learned OR: KL vs exact product": grid_kl(samples["OR"], true_and, grid),
        "learned product density: KL(p_A p_B ‖ learned)": cell_kl(true_and, learned_and),
        "learned product density: KL(learned ‖ p_A p_B)": cell_kl(learned_and, true_and),
    }


def learned_composition_figure(names: Sequence[str], fits: Sequence[ToyFit], targets: Sequence,
                               learned_and: Tensor, x_and: Tensor, grid: Grid2D):
    """The two learned densities, the exact product of the truths, and the learned sum with its samples."""
    fig, axes = plt.subplots(1, 4, figsize=(11, 2.9))
    for ax, name, f in zip(axes[:2], names, fits):
        P.plot_density(f.log_cells, grid, ax)
        ax.set_title(f"learned {name}", fontsize=9)
    P.plot_density(product_cells(grid, targets[0].log_prob, targets[1].log_prob), grid, axes[2])
    axes[2].set_title("exact product of the truths", fontsize=9)
    P.plot_density(learned_and, grid, axes[3], gamma=0.5)
    P.plot_samples(x_and, axes[3], grid, s=1.0, color="C3", max_points=1500)
    axes[3].set_title("learned sum: density and samples", fontsize=9)
    fig.tight_layout()
    return fig


def composition_sentence(analytic: Mapping, learned: Mapping) -> str:
    """Where the AND / OR samples land, analytic and learned, in one paragraph."""
    ca, co = analytic["AND samples"], analytic["OR samples"]
    return (f"Where the samples of the analytic sum land: {100 * ca['in 90% region of A']:.0f}% of them fall in "
            f"A's 90% region and {100 * ca['in 90% region of B']:.0f}% in B's (OR samples: "
            f"{100 * co['in 90% region of A']:.0f}% and {100 * co['in 90% region of B']:.0f}%). "
            f"Their grid KL to the exact product is {ca['KL vs A AND B (product)']:.3f} nats against "
            f"{ca['KL vs A OR B (mixture)']:.3f} to the mixture; for the learned pair, "
            f"{learned['samples of learned E_A + E_B: KL vs exact product']:.3f} to the product against "
            f"{learned['samples of learned E_A + E_B: KL vs exact mixture']:.3f} to the mixture: "
            + _closer(learned))


def _closer(learned: Mapping[str, float]) -> str:
    """Whether the learned sum's samples are closer to the exact product than to the exact mixture."""
    if learned["samples of learned E_A + E_B: KL vs exact product"] < \
            learned["samples of learned E_A + E_B: KL vs exact mixture"]:
        return "the learned sum's samples, too, are closer to the product than to the mixture."
    return ("in this run the learned sum's samples are not closer to the product than to the mixture; the summed "
            "learned energies themselves put mass where the exact product has little (KL(learned ‖ p_A p_B) = "
            f"{learned['learned product density: KL(learned ‖ p_A p_B)']:.3f} nats).")


# -- section 5: adaptive computation ------------------------------------------------------------------------

def refinement(fits: Mapping, targets: Mapping, grid: Grid2D, *, n_chains: int, checkpoints: Sequence[int],
               floor_repeats: int, rng: Callable[[int], torch.Generator] = _default_rng,
               inits: Sequence[str] = ("replay", "noise")) -> tuple[dict, dict]:
    """:func:`refinement_curve` of each target's models (every curve's chains are stream 6) and the floor of
    ``n_chains`` exact samples (stream 7). Returns ``(refine[target][init], floors[target])``."""
    refine, floors = {}, {}
    for name, target in targets.items():
        for init in inits:
            f = fits[name][init]
            refine.setdefault(name, {})[init] = refinement_curve(f.model, target, grid, f.spec, n_chains,
                                                                 checkpoints, generator=rng(6))
        floors[name] = exact_sample_floor(target, grid, n_chains, floor_repeats, generator=rng(7))
    return refine, floors


def refinement_figure(refine: Mapping, floors: Mapping, train_steps: int):
    """Grid KL of model samples against test-time Langevin steps, one panel per target; the dotted line is
    the number of steps used in training."""
    fig, axes = plt.subplots(1, len(refine), figsize=(3.2 * len(refine), 2.8), squeeze=False)
    for ax, (name, curves) in zip(axes[0], refine.items()):
        P.plot_curves({k: (r["steps"], r["kl"]) for k, r in curves.items()}, ax, floor=floors[name],
                      xlabel="test-time Langevin steps", title=name)
        ax.axvline(train_steps, color="0.5", lw=0.8, ls=":")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def refinement_lines(refine: Mapping, train_steps: int) -> tuple[str, dict]:
    """Markdown bullets: KL at the training K and after the longest run, per target; and which models get
    more than 20% worse than their best step count. Returns ``(text, worse[init])``."""
    lines = []
    for name, r in refine.items():
        st = r["replay"]["steps"]
        at_k = min(st, key=lambda s: abs(s - train_steps))
        lines.append(f"* **{name}**: replay model {r['replay']['kl'][st.index(at_k)]:.3f} nats after {at_k} steps "
                     f"(the training K), {r['replay']['kl'][-1]:.3f} after {st[-1]}; noise-initialised model "
                     f"{r['noise']['kl'][st.index(at_k)]:.3f} -> {r['noise']['kl'][-1]:.3f}.")
    worse = {i: [n for n, r in refine.items() if r[i]["kl"][-1] > 1.2 * min(r[i]["kl"])] for i in ("replay", "noise")}
    lines.append(f"* More steps than the minimum-KL point make samples worse by over 20% on {len(worse['noise'])} "
                 f"of {len(refine)} targets for the noise-initialised model ({', '.join(worse['noise']) or 'none'}) "
                 f"and on {len(worse['replay'])} for the replay model ({', '.join(worse['replay']) or 'none'}). A "
                 "model trained on K-step chains from noise is only asked to be right after K steps; the replay "
                 "model's negatives are long-run chains, so its energy is asked to be right at the chains' "
                 "stationary state.")
    return "\n".join(lines), worse


# -- section 6: divergence and the guard ---------------------------------------------------------------------

def divergence_runs(target, base: Mapping, spec: Mapping, n_iters: int) -> dict[str, dict]:
    """The same unstable run (``base`` changed by ``spec``) with the guard off (bound 1e30) and on."""
    return {"guard off": guarded_run(target, {**base, **spec, "max_abs_energy": 1e30}, n_iters),
            "guard on": guarded_run(target, {**base, **spec}, n_iters)}


def divergence_summary(runs: Mapping[str, dict], target, grid: Grid2D) -> dict:
    """Per run: iterations, whether it gave up, the rollbacks (iterations, learning rates), the final and
    peak largest |E| of a batch, the final |E(neg) - E(data)|, the rollbacks kept in ``history``, and
    KL(p || p_theta)."""
    truth = grid.normalise(log_density=target.log_prob)
    div = {}
    for label, r in runs.items():
        h = [x for x in r["log"] if "event" not in x]
        ev = [x for x in r["log"] if x.get("event") == "rollback"]
        div[label] = {"iterations": r["trainer"].iteration, "gave_up": r["gave_up"], "rollbacks": len(ev),
                      "rollback_iterations": [x["iteration"] for x in ev], "rollback_lrs": [x["lr"] for x in ev],
                      "final_max_abs_energy": h[-1]["max_abs_energy"] if h else None,
                      "final_abs_gap": abs(h[-1]["e_neg"] - h[-1]["e_pos"]) if h else None,
                      "peak_max_abs_energy": max(x["max_abs_energy"] for x in h) if h else None,
                      "events_in_history": sum(1 for x in r["history"] if x.get("event") == "rollback"),
                      "kl_true_learned": cell_kl(truth, learned_cells(r["trainer"].model, grid))}
    return div


def divergence_figure(runs: Mapping[str, dict], grid: Grid2D, bound: float):
    """Largest |E| and |E(neg) - E(data)| per iteration of each run (rollbacks as red dashes, the bound
    dotted), and the density the guarded run learned."""
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.0))
    for ax, (label, r) in zip(axes[:2], runs.items()):
        h = [x for x in r["log"] if "event" not in x]
        it = [x["iteration"] for x in h]
        ax.semilogy(it, [x["max_abs_energy"] for x in h], lw=0.8, label="max |E| in batch")
        ax.semilogy(it, [abs(x["e_neg"] - x["e_pos"]) + 1e-6 for x in h], lw=0.8, label="|E(neg) - E(data)|")
        for ev in (x for x in r["log"] if x.get("event") == "rollback"):
            ax.axvline(ev["iteration"], color="C3", lw=1, ls="--")
        ax.axhline(bound, color="0.4", lw=0.8, ls=":")
        ax.set_title(f"{label}: " + ("gave up" if r["gave_up"] else f"{r['trainer'].iteration} iterations"),
                     fontsize=9)
        ax.set_xlabel("iteration")
    axes[0].legend(fontsize=7)
    P.plot_density(learned_cells(runs["guard on"]["trainer"].model, grid), grid, axes[2])
    axes[2].set_title("guarded run: learned density", fontsize=9)
    fig.tight_layout()
    return fig


def divergence_sentence(div: Mapping, target_name: str, base_kl: Optional[float] = None) -> str:
    """What the guard did, and the guarded run's KL next to the base run's (``base_kl``, if trained)."""
    off, on = div["guard off"], div["guard on"]
    text = (f"Without the guard the largest |E| in a batch peaks at {off['peak_max_abs_energy']:.3g} and ends at "
            f"{off['final_max_abs_energy']:.3g}, with |E(negatives) - E(data)| at {off['final_abs_gap']:.3g}. With it, the trainer rolled back {on['rollbacks']} time(s) "
            f"(at iterations {on['rollback_iterations']}, learning rate after each: {on['rollback_lrs']}), ")
    text += (f"gave up ({on['gave_up']})" if on["gave_up"] else
             f"finished all {on['iterations']} iterations with max |E| {on['final_max_abs_energy']:.3g}") + ". "
    text += (f"Keeping the numbers finite is not the same as learning well: the guarded run's KL(p ‖ p_θ) is "
             f"{on['kl_true_learned']:.3f} nats on {target_name}")
    text += (f", against {base_kl:.3f} for the base run with the L2 term. " if base_kl is not None else ". ")
    return text + (f"The trainer's `history` and the run's complete log agree: "
                   f"{on['events_in_history']} and {on['rollbacks']} rollback events.")


def summary_rows(kl_table: Mapping, inits: Sequence[str]) -> list[list]:
    """``target | KL(p || p_theta) / KL(p_theta || p)`` per initialisation, for the summary table."""
    return [[n] + [f"{kl_table[n][i]['kl_true_learned']:.3f} / {kl_table[n][i]['kl_learned_true']:.3f}"
                   for i in inits] for n in kl_table]


def paper_rows(record: Mapping) -> list[dict]:
    """The results page's row for Fig. 14 (sampling a sum of energies), from this chapter's metrics JSON: with
    exact energies the sequential sampler's AND samples must sit nearer the product than the mixture, and the
    learned pair is reported the same way."""
    m = record["metrics"]
    exact, learned = m["composition_analytic"]["AND samples"], m["composition_learned"]
    to_product, to_mixture = exact["KL vs A AND B (product)"], exact["KL vs A OR B (mixture)"]
    l_prod = learned["samples of learned E_A + E_B: KL vs exact product"]
    l_mix = learned["samples of learned E_A + E_B: KL vs exact mixture"]
    verdict = ("reproduced" if to_product < to_mixture and l_prod < l_mix
               else "partly reproduced" if to_product < to_mixture else "not reproduced")
    return [dict(item="Fig. 14", ours=(f"AND samples of two exact energies: KL {to_product:.3f} to the product vs "
                                      f"{to_mixture:.3f} to the mixture; of two learned energies "
                                      f"({' and '.join(learned['pair'])}): {l_prod:.3f} vs {l_mix:.3f}"),
                 verdict=verdict, note="the paper shows trajectories only; we measure where the samples land",
                 data="2D targets with exact densities")]


# -- density against samples along training (issue: do the learned density and the sampler part ways?) ----------

def density_vs_samples(target, spec: Mapping, checkpoints: Sequence[int], grid: Grid2D, n_chains: int,
                       sample_steps: int, long_steps: int, seed: int = 0) -> dict:
    """One run of Algorithm 1 read at each of ``checkpoints`` (iterations; no lr anneal, so every checkpoint is
    a point of one trajectory): KL(p || p_theta) of the grid-normalised energy ("density"), KL(samples || p) of
    ``sample_steps`` of the chapter's sampler from noise ("samples"), and KL(samples || p_theta), how far the
    sampler is from the model it samples ("sampler vs own model"). At the last checkpoint the same three for
    ``long_steps`` of the sampler and for MALA (the ULA proposal plus a Metropolis test, exact for p_theta) at
    both lengths: the check that tells a poor model from a sampler that has not mixed."""
    steps = sorted(set(int(c) for c in checkpoints))
    if not steps or steps[0] < 1:
        raise ValueError(f"checkpoints must be positive iteration counts, got {checkpoints!r}")
    s = full_spec(dict(spec, n_iters=steps[-1]))
    model, config, _ = make_run(s)
    trainer = Trainer(model, target.sample, config)
    truth = grid.normalise(log_density=target.log_prob)
    T = temperature(s)
    low, high = s["data_range"]

    # the chapter's sampler on E (it draws from exp(-E / T)); MALA on E / T with the step that gives it the same
    # proposal (x - s grad E + sigma xi, since h = s T makes sqrt(2 h) = sigma), plus its Metropolis test
    samplers = {"sampler": (PaperLangevin(s["step_size"], s["noise_std"], s["grad_clip"]), model),
                "MALA": (MALA(s["step_size"] * T), lambda z: model(z) / T)}

    def scores(name: str, n_steps: int, learned: Tensor) -> dict:
        sampler, energy = samplers[name]
        g = torch.Generator().manual_seed(seed + 7)
        x0 = low + (high - low) * torch.rand(n_chains, 2, generator=g)
        with frozen(model):
            out = sampler.run(energy, x0, n_steps, clamp=(low, high), generator=g)
        scored = {"sample_kl": grid_kl(out.x, truth, grid), "self_kl": grid_kl(out.x, learned, grid)}
        return scored if out.acceptance_rate is None else dict(scored, acceptance=out.acceptance_rate)

    rows, done = [], 0
    for c in steps:
        trainer.train(c - done, progress=False)
        done = c
        learned = learned_cells(model, grid, T)
        rows.append({"iteration": c, "density_kl": cell_kl(truth, learned), **scores("sampler", sample_steps, learned)})
    check = {f"{name}, {n} steps": scores(name, n, learned) for name in samplers for n in (sample_steps, long_steps)}
    return {"rows": rows, "check": check, "temperature": T}


def density_runs(targets: Mapping, spec: Mapping, checkpoints: Sequence[int], grid: Grid2D, n_chains: int,
                 sample_steps: int, long_steps: int, seed: int = 0) -> dict:
    """:func:`density_vs_samples` for each named target."""
    return {name: density_vs_samples(t, spec, checkpoints, grid, n_chains, sample_steps, long_steps, seed)
            for name, t in targets.items()}


def density_figure(runs: Mapping[str, dict]):
    """Per target: the density's and the samples' KL to the truth, and the sampler's KL to its own model,
    against training iterations."""
    fig, axes = plt.subplots(1, len(runs), figsize=(2.3 * len(runs), 2.6), squeeze=False, sharey=True)
    for ax, (name, r) in zip(axes[0], runs.items()):
        it = [row["iteration"] for row in r["rows"]]
        for key, label in (("density_kl", "density KL(p ‖ p_θ)"), ("sample_kl", "samples KL(q ‖ p)"),
                           ("self_kl", "samples KL(q ‖ p_θ)")):
            ax.plot(it, [max(row[key], 1e-3) for row in r["rows"]], marker="o", ms=3, label=label)
        ax.set_xscale("log"), ax.set_yscale("log")
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("iterations", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0, 0].set_ylabel("nats", fontsize=7)
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def density_check_rows(runs: Mapping[str, dict]) -> tuple[list[str], list[list]]:
    """At the last checkpoint: samples' KL to the truth and to the model, for each sampler and chain length."""
    keys = list(next(iter(runs.values()))["check"])
    header = ["target", *[f"{k}: KL(q ‖ p) / KL(q ‖ p_θ)" for k in keys], "MALA acceptance"]
    rows = []
    for name, r in runs.items():
        c = r["check"]
        rows.append([name, *[f"{c[k]['sample_kl']:.2f} / {c[k]['self_kl']:.2f}" for k in keys],
                     f"{c[keys[-1]].get('acceptance', float('nan')):.2f}"])
    return header, rows


def density_sentence(runs: Mapping[str, dict], ratio: float = 2.0) -> str:
    """Where the density and the samples part ways, and whether longer chains or MALA bring them back."""
    parted, fixed_by_length, fixed_by_mala = [], [], []
    for name, r in runs.items():
        best = min(r["rows"], key=lambda row: row["sample_kl"])
        last = r["rows"][-1]
        if last["sample_kl"] > ratio * best["sample_kl"] and last["self_kl"] > ratio * min(x["self_kl"] for x in r["rows"]):
            parted.append(f"{name} (samples' KL {best['sample_kl']:.2f} at {best['iteration']} iterations, "
                          f"{last['sample_kl']:.2f} at {last['iteration']})")
            keys = list(r["check"])
            short, long_, mala = r["check"][keys[0]], r["check"][keys[1]], r["check"][keys[-1]]
            if long_["sample_kl"] < short["sample_kl"] / ratio:
                fixed_by_length.append(name)
            if mala["sample_kl"] < short["sample_kl"] / ratio:
                fixed_by_mala.append(name)
    if not parted:
        return (f"On every target the samples stayed within a factor {ratio:g} of their best KL to the truth and "
                "of their KL to the model itself: density and samples did not part ways in this run.")
    text = ("The sampler left its own model on " + "; ".join(parted) + ". ")
    text += (f"Ten times longer chains {'fixed ' + ', '.join(fixed_by_length) if fixed_by_length else 'fixed none'}"
             f" (a mixing problem would shrink with chain length); MALA's Metropolis test on the same proposal "
             f"{'fixed ' + ', '.join(fixed_by_mala) if fixed_by_mala else 'fixed none'} (a step too large for "
             "the trained energy's curvature is what a Metropolis test corrects).")
    return text
