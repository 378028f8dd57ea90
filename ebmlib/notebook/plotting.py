"""Small matplotlib helpers for 2D energies, samplers, image grids and training curves; each returns what it drew.

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

from ebmlib.core.metrics import Grid2D, grid_kl

__all__ = [
    "plot_energy", "plot_density", "plot_samples", "plot_trajectories", "plot_curves",
    "landscape_figure", "sampler_panel", "panel_grid", "show_images", "image_rows", "plot_training",
    "interactive_langevin",
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
    :class:`ebmlib.core.samplers.PaperLangevin` from ``x0`` and redraws :func:`sampler_panel`. Returns the
    ``ipywidgets.interactive`` object (display it). A static HTML page shows the widget without its kernel,
    so keep a static figure with the same content beside it.
    """
    import ipywidgets as widgets  # optional dependency: only the interactive view needs it

    from ebmlib.core.samplers import PaperLangevin

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


def show_images(images: Tensor, nrow: int = 8, ax=None, title: str = "", size: float = 0.5):
    """Images (N, C, H, W) in [0, 1] tiled ``nrow`` per row, grey-scale for one channel."""
    from torchvision.utils import make_grid

    grid = make_grid(images.detach().float().clamp(0, 1).cpu(), nrow=nrow, padding=1, pad_value=0.5)
    if ax is None:
        rows = math.ceil(images.shape[0] / nrow)
        _, ax = plt.subplots(figsize=(size * nrow + 0.2, size * rows + (0.4 if title else 0.1)))
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def image_rows(rows: Mapping[str, Tensor], size: float = 0.55, col_labels: Optional[Sequence[str]] = None):
    """One labelled row of images per entry (e.g. a chain over time, or corrupted / restored / original)."""
    names = list(rows)
    ncol = max(r.shape[0] for r in rows.values())
    fig, axes = plt.subplots(len(names), 1, figsize=(size * ncol + 1.6, size * len(names) + 0.3), squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        show_images(rows[name], nrow=ncol, ax=ax)
        ax.set_axis_on()
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    if col_labels is not None:
        width = rows[names[0]].shape[-1] + 1
        axes[0, 0].set_xticks([width * (i + 0.5) for i in range(len(col_labels))])
        axes[0, 0].set_xticklabels(col_labels, fontsize=7)
        axes[0, 0].xaxis.tick_top()
    fig.tight_layout()
    return fig


def plot_training(histories: Mapping[str, Sequence[Mapping[str, float]]], smooth: int = 20):
    """Per model: E(data) and E(negatives) over iterations (Algorithm 1's two terms), and their gap."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    kernel = np.ones(smooth) / smooth
    for i, (name, hist) in enumerate(histories.items()):
        it = np.array([h["iteration"] for h in hist], dtype=float)
        e_pos = np.array([h["e_pos"] for h in hist])
        e_neg = np.array([h["e_neg"] for h in hist])
        keep = slice(smooth - 1, None) if len(it) >= smooth else slice(None)
        smoothed = (lambda v: np.convolve(v, kernel, mode="valid")) if len(it) >= smooth else (lambda v: v)
        color = f"C{i}"
        axes[0].plot(it[keep], smoothed(e_pos), color=color, label=f"{name}: E(data)")
        axes[0].plot(it[keep], smoothed(e_neg), color=color, ls="--", label=f"{name}: E(negatives)")
        axes[1].plot(it[keep], smoothed(e_neg - e_pos), color=color, label=name)
    axes[0].set_ylabel("mean energy")
    axes[1].set_ylabel("E(negatives) - E(data)")
    axes[1].axhline(0, color="0.3", lw=0.8)
    for ax in axes:
        ax.set_xlabel("training iteration")
        ax.grid(alpha=0.3, lw=0.5)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
