"""Chapter 01: sampling from known 2D energies (MH, ULA, MALA, HMC and the paper's Langevin against exact densities).

The experiments of the chapter, one small function each; every one returns plain dicts, lists and tensors that
the notebook shows, and draws its random numbers from ``rng(k)``, a callable returning a fresh
``torch.Generator`` for stream ``k`` (the notebook passes ``ch.rng``; the default gives ``manual_seed(k)``):

* :func:`log_z_rows` (section 1): brute-force ``log Z`` of eq. (2) on a grid, against known answers;
* :func:`exact_floors`, :func:`compare_samplers` (section 2): five samplers on one budget, scored by grid KL,
  total variation, MMD^2 and mode weights next to the floor that exact samples reach;
* :func:`gaussian_variances`, :func:`ula_bias` (section 3): the step-size bias of ULA and of the paper's update
  order on a Gaussian, measured and in closed form;
* :func:`mode_mixing`, :func:`barrier_height` (section 4): mode weights after a fixed run on two separated modes;
* :func:`noise_step_grid` (section 5): the paper's update over a grid of step sizes and noise levels.

The ``*_rows`` functions build table rows, the ``*_sentence`` / ``*_notes`` functions the generated text and the
``*_figure`` functions the chapter's own figures.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Mapping, Optional, Sequence

import matplotlib.pyplot as plt
import torch
from torch import Tensor

from ebmlib.core import energies as E
from ebmlib.core import metrics as M
from ebmlib.core import samplers as S
from ebmlib.notebook import plotting as P

__all__ = [
    "A7_LANGEVIN", "WIDTHS", "STYLES", "Rng", "default_rng", "uniform_start", "sampler_suite",
    "log_z_rows", "exact_floors", "floor_rows",
    "compare_samplers", "compare_line", "compare_figure", "final_samples_figure", "COMPARE_HEADER", "compare_rows",
    "compare_metrics", "floor_notes",
    "gaussian_variances", "ula_bias", "BIAS_HEADER", "bias_rows", "bias_figure", "bias_sentence",
    "barrier_height", "mode_mixing", "mixing_rows", "mixing_figure", "trajectory_figure", "mixing_sentence",
    "noise_step_grid", "temperature_figure", "grid_sentence", "langevin_explorer", "summary",
]

Rng = Callable[[int], torch.Generator]

#: the paper's Langevin settings for images (A.7): step 10, noise 0.005, gradient clipped to +-0.01
A7_LANGEVIN = dict(step_size=10.0, noise_std=0.005, grad_clip=0.01)

#: the narrowest length scale w of each compared target (std of one Gaussian, width of a moon or ring). The
#: checkerboard is left out on purpose: its edges are blurred by only 0.05, which makes gradient samplers stiff
#: (ULA is unstable unless h < 2 * 0.05**2) while the squares are 1.5 wide.
WIDTHS = {"eight_gaussians": 0.25, "two_moons": 0.15, "two_rings": 0.15}

#: one colour (and line style) per sampler in every figure of the chapter
STYLES = {"RWMH": dict(color="tab:gray"), "ULA": dict(color="tab:orange"), "MALA": dict(color="tab:blue"),
          "HMC": dict(color="tab:green"), "Langevin (A.7)": dict(color="tab:red", ls="--")}


def default_rng(k: int) -> torch.Generator:
    """``torch.Generator().manual_seed(k)``: what ``Chapter.rng`` gives at seed 0."""
    return torch.Generator().manual_seed(k)


def uniform_start(n: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    """``n`` chains drawn uniformly from the square ``[low, high]^2``, as the paper starts fresh chains."""
    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    if not low < high:
        raise ValueError(f"the box needs low < high, got ({low!r}, {high!r})")
    return low + (high - low) * torch.rand(n, 2, generator=generator)


def sampler_suite(width: float) -> dict[str, S.Sampler]:
    """The five samplers of section 2, tuned to a target's narrowest length scale ``width`` (w).

    RWMH with proposal scale 1.5 w, ULA and MALA with step 0.5 w^2, HMC with 5 leapfrog steps of 0.5 w, and the
    paper's Langevin with its A.7 image settings (which do not depend on w).
    """
    if not (isinstance(width, (int, float)) and width > 0):
        raise ValueError(f"width must be a number > 0, got {width!r}")
    return {
        "RWMH": S.RandomWalkMH(scale=1.5 * width),
        "ULA": S.ULA(step_size=0.5 * width ** 2),
        "MALA": S.MALA(step_size=0.5 * width ** 2),
        "HMC": S.HMC(step_size=0.5 * width, n_leapfrog=5),
        "Langevin (A.7)": S.PaperLangevin(**A7_LANGEVIN),
    }


# -- section 1: the partition function by brute force -------------------------------------------------------

def log_z_rows(targets: Mapping[str, E.Distribution], grid_n: int, s_check: float = 1.7) -> list[tuple]:
    """``(energy, log Z on the grid, exact log Z)`` for each normalised target (exact 0) and for the
    unnormalised ``|x|^2 / (2 s^2)``, whose exact value is ``log(2 pi s^2)`` (eq. (2) as a midpoint sum)."""
    rows = []
    for name, target in targets.items():
        grid = M.Grid2D(target.bounds, grid_n)
        rows.append((name, round(grid.log_z(target.energy), 5) + 0.0, 0.0))    # + 0.0: no "-0.00000"
    grid = M.Grid2D((-6 * s_check, 6 * s_check), grid_n)
    lz = grid.log_z(lambda x: x.pow(2).sum(-1) / (2 * s_check ** 2))
    rows.append((f"‖x‖² / (2 · {s_check:g}²)", lz, math.log(2 * math.pi * s_check ** 2)))
    return rows


# -- section 2: five samplers on the same budget --------------------------------------------------------------

def exact_floors(targets: Mapping[str, E.Distribution], names: Sequence[str], grid_n: int, n_samples: int,
                 n_repeats: int, rng: Rng = default_rng) -> dict[str, dict]:
    """Grid KL of ``n_samples`` exact samples per target: measured (mean, sd over ``n_repeats``; stream 1 for
    every target), predicted by ``kl_bias``, and the naive ``(cells - 1) / (2N)``."""
    out = {}
    for name in names:
        grid = M.Grid2D(targets[name].bounds, grid_n)
        mean, sd = M.exact_sample_floor(targets[name], grid, n_samples, n_repeats, generator=rng(1))
        out[name] = dict(mean=mean, sd=sd, predicted=M.kl_bias(targets[name], grid, n_samples),
                         naive=(grid_n ** 2 - 1) / (2 * n_samples))
    return out


def floor_rows(floors: Mapping[str, dict]) -> list[list]:
    """Rows ``target | measured floor (mean ± sd) | predicted | naive`` of the floor table."""
    return [[name, f"{f['mean']:.4f} ± {f['sd']:.4f}", f"{f['predicted']:.4f}", f"{f['naive']:.4f}"]
            for name, f in floors.items()]


def _run_with_checkpoints(sampler: S.Sampler, energy, x0: Tensor, checkpoints: Sequence[int], logq: Tensor,
                          grid: M.Grid2D, generator: torch.Generator) -> tuple[Tensor, list, Optional[float]]:
    """Run one set of chains, continued from one checkpoint to the next; the grid KL at each checkpoint and
    the acceptance rate over all steps run (None for samplers without a Metropolis test)."""
    x, done, kls, n_acc, rate = x0, 0, [], 0.0, None
    for n in checkpoints:
        if n > done:
            res = sampler.run(energy, x, n - done, generator=generator)
            rate = res.acceptance_rate
            if rate is not None:
                n_acc += rate * (n - done)
            x, done = res.x, n
        kls.append(M.grid_kl(x, logq, grid))
    return x, kls, (n_acc / done if rate is not None else None)


def _weight_error(x: Tensor, target) -> float:
    return (M.mode_weights(x, target) - target.weights.double()).abs().max().item()


def compare_samplers(target, width: float, *, n_chains: int, checkpoints: Sequence[int], grid_n: int,
                     mmd_points: int, stuck_repeats: int, rng: Rng = default_rng) -> dict[str, dict]:
    """Every sampler of :func:`sampler_suite` from the same uniform start (stream 2), scored on the way.

    Returns ``label -> record`` with the KL at each checkpoint, the final states and their TV, MMD^2 against
    exact samples (stream 3, kernel width ``width``), largest mode-weight error, acceptance, gradient/energy
    evaluations per step and wall time; every sampler's noise is stream 4. ``"_exact"`` scores exact samples
    (stream 5); ``"_stuck"`` scores exact samples of the mixture re-weighted with the start's mode shares
    (streams 20, 21, ...): what a sampler perfect within modes that never crosses between them would reach.
    """
    steps = [int(c) for c in checkpoints]
    if not steps or steps[0] < 0 or steps != sorted(steps):
        raise ValueError(f"checkpoints must be increasing step counts >= 0, got {checkpoints!r}")
    grid = M.Grid2D(target.bounds, grid_n)
    logq = grid.normalise(log_density=target.log_prob)          # exact cell log-probabilities
    lo, hi = target.bounds
    x0 = uniform_start(n_chains, lo, hi, rng(2))
    reference = target.sample(mmd_points, generator=rng(3))
    out = {}
    for label, sampler in sampler_suite(width).items():
        t0 = time.time()
        x, kls, acceptance = _run_with_checkpoints(sampler, target.energy, x0, steps, logq, grid, rng(4))
        cost = M.evaluations_per_step(sampler)
        out[label] = dict(
            weight_error=_weight_error(x, target), steps=steps, kl=kls, final=x, seconds=time.time() - t0,
            evals_per_step=cost["grad"] + cost["energy"], gradient=cost["grad"] > 0,
            tv=M.grid_tv(x, logq, grid), mmd2=M.mmd2(x[:mmd_points], reference, bandwidth=width),
            acceptance=acceptance)
    exact = target.sample(n_chains, generator=rng(5))
    out["_exact"] = dict(kl=M.grid_kl(exact, logq, grid), tv=M.grid_tv(exact, logq, grid),
                         mmd2=M.mmd2(exact[:mmd_points], reference, bandwidth=width), final=exact,
                         weight_error=_weight_error(exact, target))
    shares = M.mode_weights(x0, target)
    stuck = E.Mixture(target.components, weights=shares.float().tolist())
    kl = sum(M.grid_kl(stuck.sample(n_chains, generator=rng(20 + r)), logq, grid) for r in range(stuck_repeats))
    out["_stuck"] = dict(shares=shares.tolist(), kl=kl / stuck_repeats)
    return out


def _runs(record: Mapping[str, dict]) -> dict[str, dict]:
    """The sampler records of one target, without the ``_exact`` / ``_stuck`` references."""
    return {k: v for k, v in record.items() if not k.startswith("_")}


def compare_line(name: str, record: Mapping[str, dict], n_chains: int) -> str:
    """One line saying what :func:`compare_samplers` ran on a target and how long it took."""
    runs = _runs(record)
    steps = next(iter(runs.values()))["steps"][-1]
    seconds = sum(r["seconds"] for r in runs.values())
    return f"{name}: {len(runs)} samplers x {steps} steps x {n_chains} chains in {seconds:.1f} s"


def compare_figure(compare: Mapping[str, dict], floors: Mapping[str, dict]):
    """Grid KL against steps (left) and against evaluations per chain (right), one row per target, with the
    exact-sample floor (dashed, band of 2 sd) and the stuck-at-start-weights reference (dotted)."""
    names = list(compare)
    fig, axes = plt.subplots(len(names), 2, figsize=(10, 3.4 * len(names)), squeeze=False)
    for row, name in zip(axes, names):
        runs, floor = _runs(compare[name]), (floors[name]["mean"], floors[name]["sd"])
        P.plot_curves({k: (v["steps"], v["kl"]) for k, v in runs.items()}, ax=row[0], floor=floor,
                      styles=STYLES, title=f"{name}: KL vs steps")
        work = {k: ([s * v["evals_per_step"] for s in v["steps"]], v["kl"]) for k, v in runs.items()}
        P.plot_curves(work, ax=row[1], floor=floor, styles=STYLES, title=f"{name}: KL vs work",
                      xlabel="evaluations per chain (gradients; RWMH: energies)")
        for ax in row:
            ax.axhline(compare[name]["_stuck"]["kl"], color="0.3", ls=":", lw=1,
                       label="exact within modes, start weights")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def final_samples_figure(compare: Mapping[str, dict], targets: Mapping[str, E.Distribution], grid_n: int):
    """The final states of every sampler (red) over the exact density, then exact samples; one row per target."""
    names = list(compare)
    labels = [k for k in compare[names[0]] if not k.startswith("_") or k == "_exact"]
    fig, axes = P.panel_grid(len(names), len(labels), size=2.0)
    for row, name in zip(axes, names):
        grid = M.Grid2D(targets[name].bounds, grid_n)
        for ax, label in zip(row, labels):
            rec = compare[name][label]
            P.plot_density(targets[name], grid, ax=ax, gamma=0.7)
            P.plot_samples(rec["final"], ax=ax, grid=grid, s=1.0, alpha=0.4, color="crimson", max_points=2000)
            kl = rec["kl"] if label == "_exact" else rec["kl"][-1]
            ax.set_title(f"{'exact' if label == '_exact' else label}\nKL {kl:.3f}", fontsize=8)
    fig.tight_layout()
    return fig


#: the header of :func:`compare_rows`
COMPARE_HEADER = ["target", "sampler", "KL at last step", "TV", "MMD² (×10³)", "largest mode-weight error",
                  "acceptance", "evals / step", "wall time (s)"]


def compare_rows(compare: Mapping[str, dict], targets: Mapping[str, E.Distribution]) -> list[list]:
    """Rows of the comparison table (see ``COMPARE_HEADER``): each sampler, exact samples, and the stuck
    reference with the largest error of the start's mode shares."""
    rows = []
    for name, record in compare.items():
        for label, r in _runs(record).items():
            acc = "—" if r["acceptance"] is None else f"{r['acceptance']:.2f}"
            rows.append([name, label, f"{r['kl'][-1]:.3f}", f"{r['tv']:.3f}", f"{1e3 * r['mmd2']:.2f}",
                         f"{r['weight_error']:.3f}", acc, r["evals_per_step"], f"{r['seconds']:.1f}"])
        ex, stuck = record["_exact"], record["_stuck"]
        rows.append([name, "*exact samples*", f"{ex['kl']:.3f}", f"{ex['tv']:.3f}", f"{1e3 * ex['mmd2']:.2f}",
                     f"{ex['weight_error']:.3f}", "—", "—", "—"])
        start_error = max(abs(a - b) for a, b in zip(stuck["shares"], targets[name].weights.tolist()))
        rows.append([name, "*exact within modes, start weights*", f"{stuck['kl']:.3f}", "", "",
                     f"{start_error:.3f}", "—", "—", "—"])
    return rows


def compare_metrics(compare: Mapping[str, dict], floors: Mapping[str, dict], n_chains: int) -> dict:
    """The numbers of section 2 for the metrics file (no tensors)."""
    keys = ("steps", "kl", "tv", "mmd2", "weight_error", "acceptance", "evals_per_step")
    return {
        "compare": {name: {label: {k: r[k] for k in keys} for label, r in _runs(rec).items()}
                    for name, rec in compare.items()},
        "compare_exact": {name: {k: rec["_exact"][k] for k in ("kl", "tv", "mmd2")} for name, rec in compare.items()},
        "compare_floor": {name: {"mean": f["mean"], "sd": f["sd"]} for name, f in floors.items()},
        "compare_stuck_kl": {name: rec["_stuck"]["kl"] for name, rec in compare.items()},
        "compare_chains": n_chains,
    }


def floor_notes(compare: Mapping[str, dict], floors: Mapping[str, dict]) -> str:
    """Markdown bullets: per target, which samplers end within 3 sd of the exact-sample floor and which above."""
    notes = []
    for name, record in compare.items():
        runs = _runs(record)
        m, sd = floors[name]["mean"], floors[name]["sd"]
        last = next(iter(runs.values()))["steps"][-1]
        at_floor = [k for k, v in runs.items() if v["kl"][-1] < m + 3 * sd]
        above = [f"{k} ({v['kl'][-1]:.3f}, mode weights off by up to {v['weight_error']:.3f})"
                 for k, v in runs.items() if v["kl"][-1] >= m + 3 * sd]
        notes.append(f"* **{name}** after {last} steps: within three standard deviations of the exact-sample floor "
                     f"({m:.3f} ± {sd:.3f}): {', '.join(at_floor) or 'none'}; above it: "
                     f"{', '.join(above) or 'none'}. Exact samples with the start's mode weights score "
                     f"{record['_stuck']['kl']:.3f}.")
    return "\n".join(notes)


# -- section 3: the step-size bias of unadjusted Langevin ----------------------------------------------------

def gaussian_variances(h: float, s: float = 1.0) -> tuple[float, float]:
    """Stationary variances on N(0, s^2) with a = h / s^2: ULA, ``s^2 / (1 - h / (2 s^2))`` (the fixed point
    of v = (1 - a)^2 v + 2h), and the paper's update order with sigma = sqrt(2h), ``(1 - a)^2 v_ULA``.

    Defined for 0 < h < 2 s^2; at h = 2 s^2 ULA diverges.
    """
    if not (0 < h < 2 * s ** 2):
        raise ValueError(f"step size h must lie in (0, 2 s^2) = (0, {2 * s ** 2:g}), got {h!r}")
    return s ** 2 / (1 - h / (2 * s ** 2)), (1 - h / s ** 2) ** 2 * s ** 2 / (1 - h / (2 * s ** 2))


def ula_bias(step_sizes: Sequence[float], n_chains: int, burn_in: int, n_steps: int, rng: Rng = default_rng,
             s: float = 1.0) -> dict:
    """Measured stationary variance of ULA, MALA and the paper's order (sigma = sqrt(2h), no clip) on N(0, s^2 I).

    For each step size and sampler: chains start from exact samples (stream 6, which then drives the noise),
    run ``burn_in`` steps, and E[x^2] is averaged over chains, both coordinates and the next ``n_steps`` steps.
    Returns lists per key (``h``, ``ULA``, ``MALA``, ``paper``, ``MALA acceptance``) and the closed forms.
    """
    gauss = E.Gaussian((0.0, 0.0), s ** 2)
    bias = {"h": [], "ULA": [], "MALA": [], "paper": [], "MALA acceptance": []}
    for h in step_sizes:
        bias["h"].append(h)
        for label, sampler in [("ULA", S.ULA(step_size=h)), ("MALA", S.MALA(step_size=h)),
                               ("paper", S.PaperLangevin(step_size=h, noise_std=math.sqrt(2 * h), grad_clip=None))]:
            gen = rng(6)
            x0 = gauss.sample(n_chains, generator=gen)
            warm = sampler.run(gauss.energy, x0, burn_in, generator=gen)
            run = sampler.run(gauss.energy, warm.x, n_steps, trace=True, generator=gen)
            bias[label].append(run.trace[1:].pow(2).mean().item())     # E[x^2] = variance (the mean is 0)
            if label == "MALA":
                bias["MALA acceptance"].append(run.acceptance_rate)
    theory = [gaussian_variances(h, s) for h in bias["h"]]
    return dict(s=s, **bias, theory_ula=[t[0] for t in theory], theory_paper=[t[1] for t in theory])


#: the header of :func:`bias_rows`
BIAS_HEADER = ["step h", "ULA measured", "ULA theory", "MALA measured", "MALA acceptance",
               "paper order measured", "paper order theory"]


def bias_rows(bias: Mapping) -> list[list]:
    """Rows of the bias table (see ``BIAS_HEADER``)."""
    return [[f"{h:g}", f"{bias['ULA'][i]:.3f}", f"{bias['theory_ula'][i]:.3f}", f"{bias['MALA'][i]:.3f}",
             f"{bias['MALA acceptance'][i]:.2f}", f"{bias['paper'][i]:.3f}", f"{bias['theory_paper'][i]:.3f}"]
            for i, h in enumerate(bias["h"])]


def bias_figure(bias: Mapping):
    """Left: stationary variance against h, measured and in closed form. Right: MALA's acceptance rate."""
    s = bias["s"]
    hh = torch.linspace(0.005, max(bias["h"]) * 1.02, 200)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    ax = axes[0]
    ax.plot(hh, s ** 2 / (1 - hh / (2 * s ** 2)), color="tab:orange", lw=1, label=r"ULA theory $s^2/(1-h/2s^2)$")
    ax.plot(hh, (1 - hh / s ** 2) ** 2 * s ** 2 / (1 - hh / (2 * s ** 2)), color="tab:red", lw=1, ls="--",
            label=r"paper order theory $v_{ULA} - 2h$")
    ax.axhline(s ** 2, color="tab:blue", lw=1, label="target $s^2$")
    ax.plot(bias["h"], bias["ULA"], "o", color="tab:orange", label="ULA measured")
    ax.plot(bias["h"], bias["paper"], "s", color="tab:red", mfc="none", label="paper order measured")
    ax.plot(bias["h"], bias["MALA"], "D", color="tab:blue", label="MALA measured")
    ax.set_yscale("log")
    ax.set(xlabel="step size h", ylabel="stationary variance per coordinate", title=rf"Gaussian target, $s = {s:g}$")
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.plot(bias["h"], bias["MALA acceptance"], "D-", color="tab:blue")
    ax.set(xlabel="step size h", ylabel="MALA acceptance rate", ylim=(0, 1.02), title="the price MALA pays instead")
    for a in axes:
        a.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def bias_sentence(bias: Mapping) -> str:
    """How close the measured ULA variances are to the closed form, and how MALA fares."""
    worst = max(abs(m - t) / t for m, t in zip(bias["ULA"], bias["theory_ula"]))
    s2 = bias["s"] ** 2
    mala_dev = max(abs(m - s2) for m in bias["MALA"])
    h, ula, acc = bias["h"], bias["ULA"], bias["MALA acceptance"]
    return (f"Across the {len(h)} step sizes, the measured ULA variance is within {100 * worst:.1f}% of the closed "
            f"form, from {ula[0]:.3f} at $h = {h[0]:g}$ to {ula[-1]:.3f} at $h = {h[-1]:g}$, while MALA stays "
            f"within {mala_dev:.3f} of $s^2 = {s2:g}$ at every step size, its acceptance falling from "
            f"{acc[0]:.2f} to {acc[-1]:.2f}.")


# -- section 4: mixing between separated modes --------------------------------------------------------------

def barrier_height(target, separation: float, n_points: int = 401) -> float:
    """Energy barrier of ``two_modes``: the highest energy on the segment between the modes (on the x axis)
    minus the energy at the centre of the deeper (right) mode."""
    xs = torch.linspace(-separation / 2, separation / 2, n_points)
    line = torch.stack([xs, torch.zeros_like(xs)], -1)
    return (target.energy(line).max() - target.energy(torch.tensor([[separation / 2, 0.0]]))).item()


def mode_mixing(separations: Sequence[float], n_chains: int, n_steps: int, rng: Rng = default_rng,
                width: float = 0.5, box: float = 5.0, x0: Optional[Tensor] = None) -> dict:
    """Weight of the left mode of ``two_modes(d)`` after ``n_steps`` of each sampler, for each separation d.

    All chains start from one uniform draw over ``[-box, box]^2`` (stream 7), symmetric about the midpoint,
    or from the ``(n_chains, 2)`` states ``x0``; every run's noise is stream 8. Returns lists over the
    separations: ``barrier`` (nats), ``init`` (the start's share), one list per sampler label, and ``truth``
    (the true left weight).
    """
    labels = list(sampler_suite(width))
    mix = {"separation": list(separations), "barrier": [], "init": [], "truth": None, **{k: [] for k in labels}}
    if x0 is None:
        x0 = uniform_start(n_chains, -box, box, rng(7))
    elif tuple(x0.shape) != (n_chains, 2):
        raise ValueError(f"x0 must have shape ({n_chains}, 2), got {tuple(x0.shape)}")
    for d in separations:
        target = E.two_modes(separation=d)
        mix["truth"] = target.weights[0].item()
        mix["barrier"].append(barrier_height(target, d))
        mix["init"].append(M.mode_weights(x0, target)[0].item())
        for label, sampler in sampler_suite(width).items():
            res = sampler.run(target.energy, x0, n_steps, generator=rng(8))
            mix[label].append(M.mode_weights(res.x, target)[0].item())
    return mix


def _mix_labels(mix: Mapping) -> list[str]:
    return [k for k in STYLES if k in mix]


def mixing_rows(mix: Mapping) -> tuple[list[str], list[list]]:
    """Header and rows of the mode-weight table: one row per separation, one column per sampler."""
    labels = _mix_labels(mix)
    header = ["separation d", "barrier (nats)", "share at start", *labels, "truth"]
    rows = [[f"{d:g}", f"{mix['barrier'][i]:.1f}", f"{mix['init'][i]:.3f}", *(f"{mix[k][i]:.3f}" for k in labels),
             f"{mix['truth']:.3f}"] for i, d in enumerate(mix["separation"])]
    return header, rows


def mixing_figure(mix: Mapping):
    """Left-mode weight against separation for every sampler, with the truth and the start's share."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for label in _mix_labels(mix):
        ax.plot(mix["separation"], mix[label], marker="o", label=label, **{"ls": "-", **STYLES[label]})
    ax.axhline(mix["truth"], color="k", lw=1, label="true weight")
    ax.plot(mix["separation"], mix["init"], "k:", lw=1, label="share at start")
    ax.set(xlabel="separation d between the modes", ylabel="weight of the left mode")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    twin = ax.secondary_xaxis("top", functions=(lambda d: d, lambda d: d))
    twin.set_xticks(mix["separation"], [f"{b:.0f}" for b in mix["barrier"]])
    twin.set_xlabel("barrier height (nats)")
    fig.tight_layout()
    return fig


def trajectory_figure(separations: Sequence[float], n_chains: int, n_steps: int, rng: Rng = default_rng,
                      width: float = 0.5, shown: int = 100):
    """MALA chains started in both modes of ``two_modes(d)`` (two per mode at most, noise stream 9).

    Top: the first ``shown`` steps of two chains over the energy; bottom: every chain's x coordinate against
    the step. Returns ``(fig, crossed)`` with, per separation, how many chains visited both modes.
    """
    fig, axes = plt.subplots(2, len(separations), figsize=(5 * len(separations), 6.4), squeeze=False,
                             gridspec_kw={"height_ratios": [1.3, 1]})
    crossed = {}
    for col, d in enumerate(separations):
        target = E.two_modes(separation=d)
        start = torch.tensor([[-d / 2, 0.3], [d / 2, -0.3], [-d / 2, -0.3], [d / 2, 0.3]])[:n_chains]
        grid = M.Grid2D(((-d / 2 - 2.5, d / 2 + 2.5), (-2.5, 2.5)), 100)
        res = S.MALA(step_size=0.5 * width ** 2).run(target.energy, start, n_steps, trace=True, generator=rng(9))
        P.plot_energy(target.energy, grid, ax=axes[0, col], span=10)
        P.plot_trajectories(res.trace[: min(n_steps, shown) + 1], ax=axes[0, col],
                            chains=range(min(2, start.shape[0])), lw=0.7)
        xs = res.trace[:, :, 0]
        crossed[d] = ((xs < -d / 4).any(0) & (xs > d / 4).any(0)).sum().item()
        axes[0, col].set_title(f"MALA, d = {d:g}: {crossed[d]} of {start.shape[0]} chains visit both modes",
                               fontsize=9)
        axes[1, col].plot(xs.numpy(), lw=0.7)
        for m in (-d / 2, d / 2):
            axes[1, col].axhline(m, color="k", lw=0.5, ls=":")
        axes[1, col].set(xlabel="step", ylabel="x coordinate")
    fig.tight_layout()
    return fig, crossed


def mixing_sentence(mix: Mapping) -> str:
    """The verdict of section 4: near the truth at the lowest barrier, stuck at the start's share at the highest."""
    proper = [k for k in _mix_labels(mix) if k != "Langevin (A.7)"]
    err_near = max(abs(mix[k][0] - mix["truth"]) for k in proper)
    err_far = max(abs(mix[k][-1] - mix["init"][-1]) for k in proper)
    paper_shift = max(abs(a - b) for a, b in zip(mix["Langevin (A.7)"], mix["init"]))
    return (f"At the smallest separation (barrier {mix['barrier'][0]:.1f} nats) every sampler but the paper's "
            f"Langevin ends within {err_near:.3f} of the true weight {mix['truth']:.2f}. At the largest (barrier "
            f"{mix['barrier'][-1]:.1f} nats) they all end within {err_far:.3f} of the share they started with, "
            f"{mix['init'][-1]:.3f}. The paper's Langevin never leaves its starting shares by more than "
            f"{paper_shift:.3f} at any separation.")


# -- section 5: noise and step size of the paper's update ----------------------------------------------------

def noise_step_grid(target, step_sizes: Sequence[float], noise_stds: Sequence[float], *, n_chains: int,
                    n_steps: int, plot_n: int, score_n: int, floor_repeats: int, rng: Rng = default_rng):
    """The paper's update without clipping on ``target`` for every (step h, noise sigma), from one uniform
    start (stream 10); each panel's noise is stream 11, the exact-sample floor stream 12.

    Draws one panel per setting (rows: step sizes, columns: noise levels) with T = sigma^2 / 2h and the grid
    KL on a ``score_n`` grid. Returns ``(fig, panel)``: ``panel`` holds ``step_size``, ``noise_std``, ``kl`` and
    ``temperature`` (rows x columns), ``steps``, ``chains`` and ``floor`` (mean, sd).
    """
    grid_plot, grid_score = M.Grid2D(target.bounds, plot_n), M.Grid2D(target.bounds, score_n)
    lo, hi = target.bounds
    x0 = uniform_start(n_chains, lo, hi, rng(10))
    panel = {"step_size": list(step_sizes), "noise_std": list(noise_stds), "kl": [], "temperature": []}
    fig, axes = P.panel_grid(len(step_sizes), len(noise_stds), size=2.0)
    for i, h in enumerate(step_sizes):
        panel["kl"].append([])
        panel["temperature"].append([])
        for j, sigma in enumerate(noise_stds):
            temp = sigma ** 2 / (2 * h)
            sampler = S.PaperLangevin(step_size=h, noise_std=sigma, grad_clip=None)
            _, _, kl = P.sampler_panel(target, sampler, x0, n_steps, grid_plot, ax=axes[i, j],
                                       seed=rng(11).initial_seed(), kl_grid=grid_score, max_points=1000,
                                       title=f"h={h:g}, σ={sigma:g}, T={temp:.2g}")
            panel["kl"][i].append(kl)
            panel["temperature"][i].append(temp)
    fig.tight_layout()
    floor = M.exact_sample_floor(target, grid_score, n_chains, floor_repeats, generator=rng(12))
    return fig, dict(panel, steps=n_steps, chains=n_chains, floor=floor)


def temperature_figure(panel: Mapping):
    """Grid KL against the temperature T = sigma^2 / 2h, one curve per step size, with the floor."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for i, h in enumerate(panel["step_size"]):
        ax.plot(panel["temperature"][i], panel["kl"][i], "o-", label=f"step size h = {h:g}")
    ax.axvline(1.0, color="k", lw=0.8, ls=":", label="T = 1 (samples p)")
    ax.axhline(panel["floor"][0], color="0.3", ls="--", lw=1, label="exact-sample floor")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(xlabel=r"temperature $T = \sigma^2 / 2h$", ylabel="grid KL after the run")
    ax.grid(alpha=0.3, which="both", lw=0.5)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def grid_sentence(panel: Mapping) -> str:
    """The best setting of the grid, the KL along T = 1, and the range at the lowest and highest noise."""
    hs, sigmas, kl, temp = panel["step_size"], panel["noise_std"], panel["kl"], panel["temperature"]
    cells = [(i, j) for i in range(len(hs)) for j in range(len(sigmas))]
    kl_best, i_best, j_best = min((kl[i][j], i, j) for i, j in cells)
    low, high = [r[0] for r in kl], [r[-1] for r in kl]
    at_one = [(hs[i], kl[i][j]) for i, j in cells if abs(math.log(temp[i][j])) < 0.01]
    text = (f"Lowest KL in the grid: {kl_best:.3f} at h = {hs[i_best]:g}, σ = {sigmas[j_best]:g} "
            f"(T = {temp[i_best][j_best]:.2g}); the exact-sample floor for {panel['chains']} samples is "
            f"{panel['floor'][0]:.3f}. ")
    if at_one:
        text += "At T = 1: " + ", ".join(f"KL {v:.3f} for h = {h:g}" for h, v in at_one) + ". "
    spread = f" to {max(low):.2f}" if max(low) - min(low) >= 0.005 else ""
    return text + (f"With the smallest noise, σ = {sigmas[0]:g}, the KL is {min(low):.2f}{spread} at every step "
                   f"size; with the largest, σ = {sigmas[-1]:g}, {min(high):.2f} to {max(high):.2f}.")


# -- section 6: the interactive control ----------------------------------------------------------------------

def langevin_explorer(target, n_chains: int, max_steps: int, grid_n: int, generator: torch.Generator,
                      step_size: float = 0.01, noise_std: float = 0.14):
    """An ipywidgets control running the paper's update on ``target`` from ``n_chains`` uniform starts drawn
    with ``generator`` (display it; it needs a live kernel)."""
    lo, hi = target.bounds
    x0 = uniform_start(n_chains, lo, hi, generator)
    return P.interactive_langevin(target, x0, M.Grid2D(target.bounds, grid_n), max_steps=max_steps,
                                  step_size=step_size, noise_std=noise_std, n_steps=min(200, max_steps))


# -- section 7: the summary ----------------------------------------------------------------------------------

def summary(scale: str, elapsed: tuple[float, float], compare: Mapping[str, dict], floors: Mapping[str, dict],
            bias: Mapping, mix: Mapping, n_chains: int) -> str:
    """Markdown: the time this run took and the headline numbers of sections 2 to 4."""
    wall, cpu = elapsed
    lines = [f"**Scale `{scale}`**: the cells after the set-up took {wall:.0f} s of wall time "
             f"({cpu:.0f} s of CPU time in this kernel).", ""]
    for name, record in compare.items():
        runs = _runs(record)
        last = next(iter(runs.values()))["steps"][-1]
        lines.append(f"* **{name}**, {n_chains} chains, {last} steps, grid KL (exact-sample floor "
                     f"{floors[name]['mean']:.3f} ± {floors[name]['sd']:.3f}): "
                     + ", ".join(f"{k} {v['kl'][-1]:.3f}" for k, v in runs.items()) + ".")
    i = len(bias["h"]) // 2
    lines.append(f"* **ULA bias** on N(0, {bias['s'] ** 2:g}): variance {bias['ULA'][i]:.3f} at "
                 f"h = {bias['h'][i]:g} (theory {bias['theory_ula'][i]:.3f}); MALA {bias['MALA'][i]:.3f}; the "
                 f"paper's ordering {bias['paper'][i]:.3f} (theory {bias['theory_paper'][i]:.3f}).")
    labels = _mix_labels(mix)
    lines.append(f"* **Mode weights** (true left weight {mix['truth']:.2f}): at d = {mix['separation'][0]:g} "
                 + ", ".join(f"{k} {mix[k][0]:.2f}" for k in labels)
                 + f"; at d = {mix['separation'][-1]:g} " + ", ".join(f"{k} {mix[k][-1]:.2f}" for k in labels)
                 + f" (share at start {mix['init'][-1]:.2f}).")
    return "\n".join(lines)
