"""Small matplotlib helpers for 2D energies and samplers; every function returns what it drew.

The notebooks narrate and call these; they hold no sampling logic of their own except :func:`sampler_panel`,
which runs one ebmlib sampler and draws the result (the same call serves a static panel grid in the book and
an interactive widget in Jupyter, so the two always agree).
"""
from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
import numpy as np
import torch
from torch import Tensor

from .metrics import Grid2D, grid_kl

__all__ = [
    "plot_energy", "plot_density", "plot_samples", "plot_trajectories", "plot_curves",
    "landscape_figure", "sampler_panel", "panel_grid",
]


def _axes(ax, figsize=(4, 4)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _square(ax, grid: Grid2D) -> None:
    (x0, x1), (y0, y1) = grid.bounds
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")


def plot_energy(energy, grid: Grid2D, ax=None, span: float = 12.0, levels: int = 24, cmap: str = "viridis",
                lines: bool = True):
    """Filled contours of E(x) on ``grid``, clipped to ``[min E, min E + span]`` nats so the wells stay visible.

    ``energy`` is a callable (a Distribution's ``energy``) or per-cell values. Returns the ContourSet.
    """
    ax = _axes(ax)
    e = grid.evaluate(energy)
    e = (e - e.min()).clamp(max=span)
    z = grid.reshape(e)
    cs = ax.contourf(grid.X, grid.Y, z, levels=np.linspace(0, span, levels), cmap=cmap)
    if lines:
        ax.contour(grid.X, grid.Y, z, levels=np.linspace(0, span, 7)[1:-1], colors="w", linewidths=0.4, alpha=0.6)
    _square(ax, grid)
    return cs


def plot_density(target, grid: Grid2D, ax=None, cmap: str = "Blues", gamma: float = 1.0):
    """The target's density as an image on ``grid`` (cell probability / cell area, so it integrates to 1).

    ``target`` is a Distribution or a log-density callable. ``gamma < 1`` brightens low-density regions.
    Returns the AxesImage.
    """
    ax = _axes(ax)
    fn = getattr(target, "log_prob", target)
    dens = grid.normalise(log_density=fn).exp() / grid.cell_area
    z = grid.reshape(dens) ** gamma
    im = ax.imshow(z, origin="lower", extent=grid.extent, cmap=cmap, interpolation="bilinear", aspect="equal")
    _square(ax, grid)
    return im


def plot_samples(x: Tensor, ax=None, grid: Optional[Grid2D] = None, max_points: int = 3000, s: float = 2.0,
                 color: str = "k", alpha: float = 0.5, **kwargs):
    """Scatter (at most ``max_points`` of) the 2D points ``x``; returns the PathCollection."""
    ax = _axes(ax)
    pts = x.detach().cpu()[:max_points].numpy()
    sc = ax.scatter(pts[:, 0], pts[:, 1], s=s, c=color, alpha=alpha, linewidths=0, **kwargs)
    if grid is not None:
        _square(ax, grid)
    return sc


def plot_trajectories(trace: Tensor, ax=None, chains: Sequence[int] = (0, 1, 2, 3), colors=None,
                      lw: float = 0.8, alpha: float = 0.9, markers: bool = True):
    """Paths of a few chains from a sampler trace ``(n_steps + 1, N, 2)``, start as a circle, end as a cross
    (the style of the paper's Fig. 14, sampling trajectories over an energy landscape). Returns the lines."""
    ax = _axes(ax)
    if not torch.is_tensor(trace) or trace.ndim != 3 or trace.shape[-1] != 2:
        got = tuple(trace.shape) if torch.is_tensor(trace) else type(trace).__name__
        raise ValueError(f"trace must have shape (n_steps + 1, N, 2), got {got}")
    colors = colors or plt.rcParams["axes.prop_cycle"].by_key()["color"]
    out = []
    for i, c in enumerate(chains):
        path = trace[:, c].numpy()
        col = colors[i % len(colors)]
        (line,) = ax.plot(path[:, 0], path[:, 1], "-", color=col, lw=lw, alpha=alpha)
        if markers:
            ax.plot(*path[0], "o", color=col, ms=5, mec="w", mew=0.8)
            ax.plot(*path[-1], "X", color=col, ms=7, mec="w", mew=0.8)
        out.append(line)
    return out


def plot_curves(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], ax=None,
                floor: Optional[tuple[float, float]] = None, xlabel: str = "steps", ylabel: str = "grid KL (nats)",
                logx: bool = True, logy: bool = True, styles: Optional[Mapping[str, dict]] = None, title: str = ""):
    """Distance-vs-work curves, one per label, with an optional shaded finite-sample floor ``(mean, std)``."""
    ax = _axes(ax, figsize=(5, 3.5))
    styles = styles or {}
    for label, (xs, ys) in curves.items():
        xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
        keep = xs > 0 if logx else np.ones_like(xs, dtype=bool)
        ax.plot(xs[keep], ys[keep], marker="o", ms=3, label=label, **styles.get(label, {}))
    if floor is not None:
        m, sd = floor
        ax.axhline(m, color="0.3", ls="--", lw=1, label="exact samples (floor)")
        ax.axhspan(max(m - 2 * sd, 1e-12), m + 2 * sd, color="0.6", alpha=0.25, lw=0)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3, which="both", lw=0.5)
    return ax


def landscape_figure(targets: Mapping[str, object], grid_n: int = 120, n_samples: int = 1000,
                     generator: Optional[torch.Generator] = None, span: float = 12.0):
    """Two rows per target column: the energy landscape E(x) = -log p(x), then the density with exact samples."""
    names = list(targets)
    fig, axes = plt.subplots(2, len(names), figsize=(2.4 * len(names), 5.0), squeeze=False)
    for j, name in enumerate(names):
        target = targets[name]
        grid = Grid2D(target.bounds, grid_n)
        plot_energy(target.energy, grid, ax=axes[0, j], span=span)
        plot_density(target, grid, ax=axes[1, j], gamma=0.7)
        plot_samples(target.sample(n_samples, generator=generator), ax=axes[1, j], grid=grid, s=1.0, alpha=0.4,
                     color="crimson")
        axes[0, j].set_title(name, fontsize=10)
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel(f"energy (0 to {span:g} nats)")
    axes[1, 0].set_ylabel(f"density + {n_samples} exact samples")
    fig.tight_layout()
    return fig


def panel_grid(n_rows: int, n_cols: int, size: float = 2.0):
    """A figure of small square panels without ticks; returns ``(fig, axes)`` with axes of shape (rows, cols)."""
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(size * n_cols, size * n_rows), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


def sampler_panel(target, sampler, x0: Tensor, n_steps: int, grid: Grid2D, ax=None, seed: int = 0,
                  kl_grid: Optional[Grid2D] = None, title: Optional[str] = None, max_points: int = 2000):
    """Run ``sampler`` on ``target`` from ``x0`` for ``n_steps`` and draw the final samples over the density.

    The title reports the grid KL of the final samples on ``kl_grid`` (``grid`` if not given). Returns
    ``(ax, result, kl)`` where ``result`` is the sampler's SampleResult. Non-finite final states (a diverged
    chain) are reported in the title instead of raising, so a widget can show the failure.
    """
    ax = _axes(ax, figsize=(3.5, 3.5))
    g = torch.Generator().manual_seed(seed)
    result = sampler.run(target.energy, x0, n_steps, generator=g)
    plot_density(target, grid, ax=ax, gamma=0.7)
    finite = torch.isfinite(result.x).all(-1)
    x = result.x[finite]
    kl = grid_kl(x, target, kl_grid or grid) if finite.any() else math.inf
    plot_samples(x, ax=ax, grid=grid, s=1.5, alpha=0.5, color="crimson", max_points=max_points)
    label = f"KL {kl:.2f}" + ("" if finite.all() else f", {int((~finite).sum())} diverged")
    ax.set_title(label if title is None else f"{title}\n{label}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax, result, kl


def interactive_langevin(target, x0: Tensor, grid: Grid2D, max_steps: int = 500, seed: int = 0,
                         step_size: float = 0.01, noise_std: float = 0.1, n_steps: int = 100):
    """An ``ipywidgets`` control for the paper's Langevin (decoupled step size and noise, no clipping).

    Sliders set the step size, the noise std and the number of steps; each change reruns
    :class:`ebmlib.samplers.PaperLangevin` from ``x0`` and redraws :func:`sampler_panel`. Returns the
    ``ipywidgets.interactive`` object (display it). A static HTML page shows the widget without its kernel,
    so keep a static figure with the same content beside it.
    """
    import ipywidgets as widgets  # optional dependency: only the interactive view needs it

    from .samplers import PaperLangevin

    if not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be an int >= 1, got {max_steps!r}")

    def show(step_size: float, noise_std: float, n_steps: int):
        sampler = PaperLangevin(step_size=step_size, noise_std=noise_std, grad_clip=None)
        temperature = noise_std ** 2 / (2 * step_size)
        ax, _, _ = sampler_panel(target, sampler, x0, n_steps, grid, seed=seed,
                                 title=f"step {step_size:.3g}, noise {noise_std:.3g}, T = {temperature:.3g}")
        plt.show()

    sliders = dict(
        step_size=widgets.FloatLogSlider(value=step_size, base=10, min=-3.5, max=-0.5, step=0.25, description="step size"),
        noise_std=widgets.FloatLogSlider(value=noise_std, base=10, min=-3, max=0, step=0.25, description="noise std"),
        n_steps=widgets.IntSlider(value=min(n_steps, max_steps), min=1, max=max_steps, step=max(1, max_steps // 50),
                                  description="steps"),
    )
    return widgets.interactive(show, {"manual": True, "manual_name": "run"}, **sliders)
