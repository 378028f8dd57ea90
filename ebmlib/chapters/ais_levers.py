"""What moves the AIS effective sample size on a trained image EBM (chapter 05, section 4).

At the chosen temperature the forward AIS runs of Fig. 22 end with an ESS of about 1: one chain carries Z. For
log-normal weights of spread ``sd`` (of log w) the ESS of n chains is n exp(-sd^2), so an ESS of a tenth of the
chains needs ``sd <= sqrt(ln 10)`` = 1.52. This module runs forward AIS on one trained model with one lever
changed at a time: more intermediate distributions K, more Metropolis-Hastings steps per distribution, longer HMC
trajectories (more leapfrog steps), a warmer temperature, and a different base (a kernel density estimate on the
model's own replay buffer, :class:`~ebmlib.core.ais.KernelBase`). Each row records the spread of the log-weights
and the cost in energy gradients per chain (K x MH steps x leapfrog steps), so the levers compare at equal cost,
and for each family of rows (K alone, leapfrog alone) the rate sd ~ cost^-a of its last, costliest step says what
cost would bring sd to 1.52 if that rate held. It does not: the rate slows as cost grows (the chapter's rows show it
level off), so the figure is a lower bound on the cost, and an sd estimated from a few
chains at ESS ~ 1 is itself noisy and, for heavy tails, low; the page says so.
"""
from __future__ import annotations

import itertools
import math
import time
from typing import Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from ebmlib.core import ais

__all__ = ["USEFUL_SD", "STALLED_EXPONENT", "LEVER_KEYS", "lever_label", "lever_study", "chapter_levers",
           "LEVERS_HEADER", "levers_table", "levers_figure", "cost_to_useful", "levers_sentence"]

#: the spread of log w at which log-normal weights give an ESS of a tenth of the chains (:mod:`ebmlib.core.ais`)
USEFUL_SD = ais.USEFUL_SD

#: below this rate (sd ~ cost^-a) the spread has all but stopped falling, and no cost is extrapolated
STALLED_EXPONENT = 0.25

#: the keys a lever row may set; every other AIS setting is the chapter's (``cfg.ais_settings``)
LEVER_KEYS = ("n_temps", "n_steps", "n_leapfrog", "t_factor", "kernel_std")


def _check_lever(lever: Mapping) -> dict:
    bad = sorted(set(lever) - set(LEVER_KEYS))
    if bad or "n_temps" not in lever:
        raise ValueError(f"a lever sets n_temps and any of {list(LEVER_KEYS)}, got {dict(lever)!r}")
    return dict(lever)


def lever_label(lever: Mapping) -> str:
    """What a lever row changed, in words (``"K = 1,000"``, ``"K = 300, 20 leapfrog steps"``, ...)."""
    r = _check_lever(lever)
    parts = [f"K = {r['n_temps']:,}"]
    if "n_steps" in r:
        parts.append(f"{r['n_steps']} MH steps per distribution")
    if "n_leapfrog" in r:
        parts.append(f"{r['n_leapfrog']} leapfrog steps")
    if "t_factor" in r:
        parts.append(f"T x {r['t_factor']:g}")
    if "kernel_std" in r:
        parts.append(f"base: kernel estimate on the buffer, std {r['kernel_std']:g}")
    return ", ".join(parts)


def lever_study(model: nn.Module, test_x: Tensor, base: ais.GaussianBase, buffer: Optional[Tensor],
                temperature: float, levers: Sequence[Mapping], *, n_chains: int,
                generator: Optional[torch.Generator] = None, **settings) -> list[dict]:
    """One forward AIS run (``n_chains`` chains, no reverse run) of ``model`` per lever, at ``temperature`` times
    the lever's ``t_factor``. The preconditioner is the fitted base's std in every row, so only the lever changes;
    a ``kernel_std`` row anneals from a :class:`~ebmlib.core.ais.KernelBase` on ``buffer`` (the model's samples)
    instead of ``base``. ``settings`` are the chapter's other AIS settings (pilot sizes)."""
    if not levers:
        raise ValueError("levers must hold at least one lever, got an empty sequence")
    ais.frozen_energy(model)
    default = dict(n_steps=settings.get("n_steps", 1), n_leapfrog=settings.get("n_leapfrog", 5), t_factor=1.0,
                   kernel_std=None)
    rows = []
    for lever in levers:
        r = {**default, **_check_lever(lever)}
        if r["kernel_std"] is not None and buffer is None:
            raise ValueError("a kernel_std lever needs the model's buffer samples, got buffer=None")
        start = base if r["kernel_std"] is None else ais.KernelBase(buffer.float(), r["kernel_std"], box=base.box)
        t0 = time.perf_counter()
        b = ais.log_likelihood_bounds(model, test_x, start, temperature=temperature * r["t_factor"],
                                      n_chains=n_chains, n_temps=r["n_temps"], reverse_from=None,
                                      generator=generator, **{**settings, "scale": base.std,
                                                              "n_steps": r["n_steps"], "n_leapfrog": r["n_leapfrog"]})
        lw = b.forward.log_weights
        rows.append(dict(r, label=lever_label(lever), changed=sorted(set(lever) - {"n_temps"}),
                         temperature=temperature * r["t_factor"], n_chains=n_chains,
                         gradients=r["n_temps"] * r["n_steps"] * r["n_leapfrog"], ess=b.forward.ess,
                         sd_log_w=float(lw.std()), upper=b.upper, acceptance=b.forward.acceptance_rate,
                         seconds=time.perf_counter() - t0))
    return rows


def chapter_levers(trained: Mapping, curves: Mapping[str, dict], test_x: Tensor, base: ais.GaussianBase, cfg,
                   generator: Optional[torch.Generator] = None) -> dict:
    """:func:`lever_study` of ``cfg.lever_model`` at its chosen T (the AIS maximiser where every T's bounds
    crossed), with ``cfg.levers``, ``cfg.lever_chains`` chains and the chapter's ``ais_settings``."""
    key, curve = cfg.lever_model, curves[cfg.lever_model]
    t = curve["best"] if curve["best"] is not None else curve["best_upper"]
    rows = lever_study(trained[key].model, test_x, base, trained[key].samples, t, cfg.levers,
                       n_chains=cfg.lever_chains, generator=generator, **cfg.ais_settings)
    return dict(model=key, temperature=t, chosen=curve["best"] is not None, rows=rows)


LEVERS_HEADER = ["lever", "T", "gradients / chain", "AIS ESS", "sd of log w", "AIS upper bound", "seconds"]


def levers_table(rows: Sequence[Mapping]) -> list[list]:
    return [[r["label"], f"{r['temperature']:g}", f"{r['gradients']:,}", f"{r['ess']:.1f} of {r['n_chains']}",
             f"{r['sd_log_w']:.1f}", f"{r['upper']:.0f}", f"{r['seconds']:.0f}"] for r in rows]


def levers_figure(study: Mapping):
    """The spread of log w against the cost per chain: the two lever families (more temperatures, longer HMC
    trajectories) as lines through their rows, every other lever as its own marker, the useful spread dashed; a
    legend names them (labels written beside the points collide where costs coincide)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig, ax = plt.subplots(figsize=(7.2, 3.4))
    rows, drawn = study["rows"], set()
    for vary, name in (("n_temps", "more temperatures K"), ("n_leapfrog", "longer trajectories (leapfrog steps)")):
        family = _family(rows, vary)
        if len(family) > 1:
            ax.plot([r["gradients"] for r in family], [r["sd_log_w"] for r in family], "o-", ms=5, label=name)
            drawn.update(id(r) for r in family)
    markers = itertools.cycle("sD^vP*Xh")
    for r in rows:
        if id(r) not in drawn:
            label = r["label"].replace("base: kernel estimate on the buffer", "kernel base")
            ax.plot(r["gradients"], r["sd_log_w"], next(markers), ms=6, ls="none", label=label)
    ax.axhline(USEFUL_SD, color="k", lw=0.8, ls="--", label="useful: ESS a tenth of the chains")
    ax.set(xscale="log", yscale="log", xlabel="energy gradients per chain (K x MH steps x leapfrog steps)",
           ylabel="sd of log w (nats)", title=f"{study['model']} at T = {study['temperature']:g}")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 3.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def _family(rows: Sequence[Mapping], vary: str) -> list[Mapping]:
    """The rows that change nothing but K (``vary="n_temps"``), or nothing but the leapfrog steps at the smallest
    such K (``vary="n_leapfrog"``, with the plain row at that K), in order of cost."""
    if vary == "n_temps":
        return sorted((r for r in rows if not r["changed"]), key=lambda r: r["gradients"])
    plain = [r for r in rows if set(r["changed"]) <= {"n_leapfrog"}]
    k0 = min((r["n_temps"] for r in plain if r["changed"]), default=None)
    return sorted((r for r in plain if r["n_temps"] == k0), key=lambda r: r["gradients"])


def cost_to_useful(rows: Sequence[Mapping]) -> Optional[dict]:
    """The rate at which the spread fell between the two costliest of ``rows`` (sd ~ cost^-a through them) and
    what cost that rate would need to bring sd to :data:`USEFUL_SD`: the exponent, the gradients per chain and the
    CPU seconds per chain (at the rows' measured cost per gradient). The last step, not a fit through every row:
    the spread falls ever more slowly with cost, so a fit through the cheap rows promises far too much. None with
    fewer than two rows; ``exponent <= 0`` (and no cost) where the last step did not lower the spread."""
    rows = sorted((r for r in rows if r["sd_log_w"] > 0), key=lambda r: r["gradients"])
    if len(rows) < 2:
        return None
    (c0, s0), (c1, s1) = [(math.log(r["gradients"]), math.log(r["sd_log_w"])) for r in rows[-2:]]
    exponent = -(s1 - s0) / (c1 - c0)
    if exponent <= 0:
        return dict(exponent=exponent, gradients=math.inf, seconds_per_chain=math.inf)
    gradients = math.exp(c1 + (s1 - math.log(USEFUL_SD)) / exponent)
    per_gradient = rows[-1]["seconds"] / (rows[-1]["gradients"] * rows[-1]["n_chains"])
    return dict(exponent=exponent, gradients=gradients, seconds_per_chain=gradients * per_gradient)


def levers_sentence(rows: Sequence[Mapping], model: str, paper_chains: int = 10000) -> str:
    """What the lever study found: the best row, whether any reached a useful ESS, and the extrapolated cost."""
    best = min(rows, key=lambda r: r["sd_log_w"])
    n = rows[0]["n_chains"]
    useful = [r for r in rows if ais.useful_weights(r["ess"], n, r["sd_log_w"])]
    head = (f"On {model}, the smallest spread of the log-weights is **{best['sd_log_w']:.1f} nats** ({best['label']}, "
            f"T = {best['temperature']:g}, ESS {best['ess']:.1f} of {n}); a useful ESS (a tenth of the chains) needs "
            f"about {USEFUL_SD:.2f}. ")
    head += (f"Rows that reached it: {', '.join(r['label'] for r in useful)}. " if useful else
             "**No lever tried reaches a useful ESS.** ")
    fits = []
    for vary, words in (("n_temps", "more intermediate distributions"), ("n_leapfrog", "longer HMC trajectories")):
        fit = cost_to_useful(_family(rows, vary))
        if fit is not None and fit["exponent"] <= 0:
            fits.append(f"with {words} the spread did not fall over the last step")
        elif fit is not None and fit["exponent"] < STALLED_EXPONENT:
            fits.append(f"with {words} the spread has all but stopped falling (cost^-{fit['exponent']:.2f} over the "
                        f"last step), so no affordable cost of that kind reaches it")
        elif fit is not None:
            hours = fit["seconds_per_chain"] * paper_chains / 3600
            fits.append(f"with {words} the spread fell as cost^-{fit['exponent']:.2f} over the last step, which "
                        f"would reach "
                        f"{USEFUL_SD:.2f} at about {fit['gradients']:.1e} energy gradients per chain, "
                        f"{fit['seconds_per_chain'] / 3600:.1f} CPU-hours per chain here "
                        f"({hours:,.0f} CPU-hours for the paper's {paper_chains:,} chains)")
    if fits:
        head += ("Extrapolated from the two costliest rows of each lever, at the rate of that last step (the rate "
                 "slows as cost grows, so even this is optimistic; and an sd from a few chains at ESS ~ 1 is noisy, "
                 "low for heavy tails): " + "; ".join(fits) + ".")
    return head
