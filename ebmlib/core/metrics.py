"""How far a set of 2D samples is from a known density: grids, histogram KL / TV, MMD, mode weights.

The 2D targets of :mod:`ebmlib.core.energies` have exact log-densities, so a sampler can be scored against the
truth instead of by eye. Three measures live here:

* **grid KL / TV**: bin the samples on a regular grid and compare the histogram with the target's cell
  probabilities, ``KL(p_hat || q) = sum_i p_hat_i log(p_hat_i / q_i)`` and ``TV = 1/2 sum_i |p_hat_i - q_i|``.
  Both are *biased upwards* by the finite number of samples: even N exact samples give
  ``E[KL] ~ (B_eff - 1) / (2N)`` where ``B_eff`` is the number of cells that carry mass (the chi-square
  expansion of the plug-in KL; cells with ``N q_i << 1`` add less than ``1/(2N)`` each). The honest reference
  is therefore not 0 but :func:`exact_sample_floor`, the same distance computed for N exact samples.
* **MMD**: the unbiased (U-statistic) estimate of the squared maximum mean discrepancy with a Gaussian kernel
  (Gretton et al., 2012). Its expectation is exactly 0 when both sample sets come from the same law, so it
  can be slightly negative; it needs exact samples of the target instead of a grid.
* **mode weights**: the fraction of samples that each mixture component explains (mean responsibility);
  a sampler that cannot cross between separated modes keeps the weights it was initialised with.

Energies may be unnormalised: :meth:`Grid2D.normalise` computes ``log Z`` on the grid (midpoint rule), the
brute-force answer to eq. (2) that only works in two dimensions.

:func:`frechet_distance` (the Frechet / 2-Wasserstein distance between two Gaussians, Dowson and Landau 1982)
is the measure of section 5.1 for robot-hand roll-outs; :func:`gaussian_frechet` fits the Gaussians to samples.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor

__all__ = [
    "Grid2D", "grid_kl", "grid_tv", "exact_sample_floor", "kl_bias", "mmd2", "mode_weights", "evaluations_per_step",
    "nearest_neighbours", "frechet_distance", "gaussian_frechet",
]

Bounds = Union[tuple[float, float], Sequence[Sequence[float]]]
ValuesOrFn = Union[Tensor, Callable[[Tensor], Tensor]]


def _check_samples(x: Tensor, name: str = "samples") -> Tensor:
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor of shape (N, 2), got {type(x).__name__}"
                        f"{' of dtype ' + str(x.dtype) if torch.is_tensor(x) else ''}")
    if x.ndim != 2 or x.shape[1] != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, 2) with N >= 1, got {tuple(x.shape)}")
    bad = ~torch.isfinite(x)
    if bad.any():
        raise ValueError(f"{name} holds {int(bad.any(-1).sum())} rows with NaN or infinite values "
                         f"(a diverged sampler?); distances are only defined for finite points")
    return x.detach().cpu()


class Grid2D:
    """A regular ``n x n`` grid of cells over a rectangle, for densities, histograms and contour plots.

    Args:
        bounds: ``(low, high)`` for a square, or ``((x_low, x_high), (y_low, y_high))``.
        n: cells per axis (an int, or ``(n_x, n_y)``).

    Cells are indexed in row-major ``(y, x)`` order, so ``grid.reshape(values)`` has shape ``(n_y, n_x)``
    and lines up with ``grid.X``, ``grid.Y`` for ``contourf(X, Y, Z)`` and with
    ``imshow(Z, origin="lower", extent=grid.extent)``.
    """

    def __init__(self, bounds: Bounds, n: Union[int, tuple[int, int]] = 100):
        try:
            b = torch.as_tensor(bounds, dtype=torch.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"bounds must be (low, high) or ((x_low, x_high), (y_low, y_high)), got {bounds!r}") from err
        if b.shape == (2,):
            b = b.expand(2, 2)
        if b.shape != (2, 2) or not torch.isfinite(b).all() or not (b[:, 1] > b[:, 0]).all():
            raise ValueError(f"bounds must be finite (low, high) pairs with low < high, got {bounds!r}")
        pair = (n, n) if isinstance(n, int) else tuple(n) if isinstance(n, (tuple, list)) else None
        if pair is None or len(pair) != 2:
            raise ValueError(f"n must be an int >= 2 (or a pair of them), got {n!r}")
        nx, ny = pair
        for v in (nx, ny):
            if not isinstance(v, int) or isinstance(v, bool) or v < 2:
                raise ValueError(f"n must be an int >= 2 (or a pair of them), got {n!r}")
        self.nx, self.ny = nx, ny
        self.x_edges = torch.linspace(float(b[0, 0]), float(b[0, 1]), nx + 1, dtype=torch.float64)
        self.y_edges = torch.linspace(float(b[1, 0]), float(b[1, 1]), ny + 1, dtype=torch.float64)
        self.x_centers = 0.5 * (self.x_edges[1:] + self.x_edges[:-1])
        self.y_centers = 0.5 * (self.y_edges[1:] + self.y_edges[:-1])
        self.dx = float(self.x_edges[1] - self.x_edges[0])
        self.dy = float(self.y_edges[1] - self.y_edges[0])
        Y, X = torch.meshgrid(self.y_centers, self.x_centers, indexing="ij")
        self.X, self.Y = X.numpy(), Y.numpy()          # (n_y, n_x) each, for matplotlib
        #: (n_y * n_x, 2) float32 cell centres, row-major in (y, x)
        self.points = torch.stack([X.reshape(-1), Y.reshape(-1)], dim=-1).float()

    # -- geometry ------------------------------------------------------------------------------------------
    @property
    def n_cells(self) -> int:
        return self.nx * self.ny

    @property
    def cell_area(self) -> float:
        return self.dx * self.dy

    @property
    def bounds(self) -> tuple[tuple[float, float], tuple[float, float]]:
        return ((float(self.x_edges[0]), float(self.x_edges[-1])), (float(self.y_edges[0]), float(self.y_edges[-1])))

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """``(x_low, x_high, y_low, y_high)`` for ``imshow``."""
        (x0, x1), (y0, y1) = self.bounds
        return (x0, x1, y0, y1)

    def reshape(self, values: Tensor):
        """Per-cell values (``n_cells``,) -> a ``(n_y, n_x)`` numpy array for plotting."""
        v = torch.as_tensor(values)
        if v.numel() != self.n_cells:
            raise ValueError(f"expected {self.n_cells} values (one per cell), got shape {tuple(v.shape)}")
        return v.detach().cpu().reshape(self.ny, self.nx).numpy()

    def __repr__(self) -> str:
        return f"Grid2D(bounds={self.bounds}, n=({self.nx}, {self.ny}))"

    # -- densities -----------------------------------------------------------------------------------------
    def evaluate(self, fn: ValuesOrFn, batch: int = 16384) -> Tensor:
        """``fn`` at every cell centre as a float64 ``(n_cells,)`` tensor (``fn`` may also be the values)."""
        if torch.is_tensor(fn):
            values = fn.detach().cpu().reshape(-1).double()
            if values.numel() != self.n_cells:
                raise ValueError(f"expected {self.n_cells} values (one per cell), got {fn.numel()}")
        elif callable(fn):
            with torch.no_grad():
                values = torch.cat([torch.as_tensor(fn(p)).detach().cpu().reshape(-1).double()
                                    for p in self.points.split(batch)])
            if values.numel() != self.n_cells:
                raise ValueError(f"fn must return one value per point; got {values.numel()} for {self.n_cells} points")
        else:
            raise TypeError(f"expected a tensor of per-cell values or a callable, got {type(fn).__name__}")
        if torch.isnan(values).any():
            raise ValueError(f"{int(torch.isnan(values).sum())} grid values are NaN")
        return values

    def log_z(self, energy: ValuesOrFn, subdivide: int = 3) -> float:
        """log Z = log int exp(-E(x)) dx over the grid (eq. (2) by brute force: a midpoint rule with
        ``subdivide x subdivide`` points per cell for a callable, the cell centres for per-cell values)."""
        if callable(energy) and not torch.is_tensor(energy):
            if not isinstance(subdivide, int) or isinstance(subdivide, bool) or subdivide < 1:
                raise ValueError(f"subdivide must be an int >= 1, got {subdivide!r}")
            log_cell_mean = self._evaluate_fine(lambda p: -energy(p), subdivide)
        else:
            log_cell_mean = -self.evaluate(energy)
        return float(torch.logsumexp(log_cell_mean, 0)) + math.log(self.cell_area)

    def normalise(self, energy: Optional[ValuesOrFn] = None, log_density: Optional[ValuesOrFn] = None,
                  subdivide: int = 3) -> Tensor:
        """Log-probabilities of the cells, ``(n_cells,)`` float64, summing to 1 on the grid.

        Give exactly one of ``energy`` (any offset: ``p ~ exp(-E)``) or ``log_density`` (normalised or not),
        as a callable or as per-cell values. A callable is averaged over ``subdivide x subdivide`` points
        inside each cell (a midpoint rule on a finer grid), so narrow features such as the checkerboard's
        blurred edges get their true cell mass; per-cell values use the centres only. The result is
        renormalised, which absorbs the mass outside the grid and the quadrature error.
        """
        if (energy is None) == (log_density is None):
            raise ValueError("give exactly one of energy= or log_density=")
        fn, sign = (energy, -1.0) if energy is not None else (log_density, 1.0)
        if callable(fn) and not torch.is_tensor(fn):
            if not isinstance(subdivide, int) or isinstance(subdivide, bool) or subdivide < 1:
                raise ValueError(f"subdivide must be an int >= 1, got {subdivide!r}")
            logp = self._evaluate_fine(lambda p: sign * torch.as_tensor(fn(p)), subdivide)
        else:
            logp = sign * self.evaluate(fn)
        if torch.isposinf(logp).any():
            raise ValueError("the log-density is +inf somewhere on the grid")
        return logp - torch.logsumexp(logp, 0)

    def _evaluate_fine(self, fn: Callable[[Tensor], Tensor], s: int) -> Tensor:
        """log of the mean of exp(values) over s x s points per cell, as (n_cells,) (values = fn(point))."""
        frac = (torch.arange(s, dtype=torch.float64) + 0.5) / s - 0.5
        oy, ox = torch.meshgrid(frac * self.dy, frac * self.dx, indexing="ij")
        offsets = torch.stack([ox.reshape(-1), oy.reshape(-1)], -1)            # (s*s, 2)
        pts = (self.points.double()[:, None, :] + offsets[None]).reshape(-1, 2).float()
        with torch.no_grad():
            vals = torch.cat([torch.as_tensor(fn(p)).detach().cpu().reshape(-1).double() for p in pts.split(16384)])
        if vals.numel() != pts.shape[0]:
            raise ValueError(f"fn must return one value per point; got {vals.numel()} for {pts.shape[0]} points")
        if torch.isnan(vals).any():
            raise ValueError(f"{int(torch.isnan(vals).sum())} grid values are NaN")
        return torch.logsumexp(vals.reshape(self.n_cells, s * s), -1) - math.log(s * s)

    def histogram(self, samples: Tensor) -> Tensor:
        """Counts per cell, ``(n_cells,)`` float64. Points outside the grid are counted in the nearest edge cell,
        so chains that escape are penalised by the distances below instead of silently dropped."""
        x = _check_samples(samples).double()
        ix = torch.floor((x[:, 0] - self.x_edges[0]) / self.dx).long().clamp(0, self.nx - 1)
        iy = torch.floor((x[:, 1] - self.y_edges[0]) / self.dy).long().clamp(0, self.ny - 1)
        return torch.bincount(iy * self.nx + ix, minlength=self.n_cells).double()

    def outside_fraction(self, samples: Tensor) -> float:
        """Fraction of the samples that lie outside the grid."""
        x = _check_samples(samples).double()
        (x0, x1), (y0, y1) = self.bounds
        out = (x[:, 0] < x0) | (x[:, 0] > x1) | (x[:, 1] < y0) | (x[:, 1] > y1)
        return float(out.double().mean())


def _target_cells(target, grid: Grid2D) -> Tensor:
    """Cell log-probabilities from a Distribution, a log-prob callable or precomputed log-probabilities."""
    if torch.is_tensor(target):
        logq = target.detach().cpu().double().reshape(-1)
        if logq.numel() != grid.n_cells:
            raise ValueError(f"target cell log-probabilities must have {grid.n_cells} entries, got {logq.numel()}")
        return logq - torch.logsumexp(logq, 0)
    fn = getattr(target, "log_prob", target)
    if not callable(fn):
        raise TypeError(f"target must be a Distribution, a log-prob callable or a tensor, got {type(target).__name__}")
    return grid.normalise(log_density=fn)


def cell_kl(log_p: Tensor, log_q: Tensor) -> float:
    """KL(p || q) = sum_i p_i (log p_i - log q_i) between two normalised cell distributions, in nats."""
    if log_p.shape != log_q.shape:
        raise ValueError(f"cell distributions differ in shape: {tuple(log_p.shape)} vs {tuple(log_q.shape)}")
    p = log_p.exp()
    keep = p > 0
    return float((p[keep] * (log_p[keep] - log_q[keep])).sum())


def grid_kl(samples: Tensor, target, grid: Grid2D) -> float:
    """KL(histogram of ``samples`` || target's cell probabilities) in nats, on ``grid``.

    ``target`` is a Distribution (its ``log_prob`` is used), a log-density callable, or the output of
    ``grid.normalise``. Finite as long as the target is positive on every cell. Biased upwards by about
    ``(B_eff - 1) / (2N)`` for N samples (see :func:`kl_bias`, :func:`exact_sample_floor`).
    """
    logq = _target_cells(target, grid)
    counts = grid.histogram(samples)
    return cell_kl((counts / counts.sum()).log(), logq)


def grid_tv(samples: Tensor, target, grid: Grid2D) -> float:
    """Total variation 1/2 sum_i |p_hat_i - q_i| between the sample histogram and the target, in [0, 1]."""
    q = _target_cells(target, grid).exp()
    counts = grid.histogram(samples)
    p = counts / counts.sum()
    return float(0.5 * (p - q).abs().sum())


def kl_bias(target, grid: Grid2D, n_samples: int) -> float:
    """Expected grid KL of ``n_samples`` *exact* samples: the bias of the plug-in histogram KL.

    With ``lambda_i = N q_i`` the expected count of cell i, cell i contributes
    ``E[(k/N) log(k / lambda_i)]`` with ``k ~ Poisson(lambda_i)``: ``(1/N)(1/2 + 1/(12 lambda_i))`` for busy
    cells (the chi-square expansion, whence the familiar ``(B - 1)/(2N)`` when all B cells are busy) and at most
    ``q_i / e`` for nearly empty ones; the multinomial constraint removes ``1/(2N)`` in total. A prediction
    good to ~10%; :func:`exact_sample_floor` measures the floor directly.
    """
    if not isinstance(n_samples, int) or isinstance(n_samples, bool) or n_samples < 1:
        raise ValueError(f"n_samples must be an int >= 1, got {n_samples!r}")
    lam = _target_cells(target, grid).exp() * n_samples
    busy = lam > 50
    per_cell = torch.zeros_like(lam)
    per_cell[busy] = 0.5 + 1.0 / (12 * lam[busy])
    small = lam[~busy].clamp_min(1e-300)
    if small.numel():
        k = torch.arange(1, 201, dtype=torch.float64)      # k = 0 contributes 0; lambda <= 50 has no mass past 200
        log_pois = k * small[:, None].log() - small[:, None] - torch.lgamma(k + 1)
        per_cell[~busy] = (log_pois.exp() * k * (k.log() - small[:, None].log())).sum(-1)
    return float((per_cell.sum() - 0.5) / n_samples)


def exact_sample_floor(target, grid: Grid2D, n_samples: int, n_repeats: int = 5,
                       metric: str = "kl", generator: Optional[torch.Generator] = None) -> tuple[float, float]:
    """Mean and standard deviation of the grid distance of ``n_samples`` *exact* samples from ``target``.

    No sampler with ``n_samples`` chains can be expected to score below this: it is the finite-sample floor
    of the histogram distance, the line to draw under every distance-vs-steps curve.
    """
    if metric not in ("kl", "tv"):
        raise ValueError(f"metric must be 'kl' or 'tv', got {metric!r}")
    if not isinstance(n_repeats, int) or n_repeats < 1:
        raise ValueError(f"n_repeats must be an int >= 1, got {n_repeats!r}")
    if not hasattr(target, "sample"):
        raise TypeError(f"target must be able to draw exact samples (have .sample), got {type(target).__name__}")
    logq = _target_cells(target, grid)
    fn = grid_kl if metric == "kl" else grid_tv
    vals = torch.tensor([fn(target.sample(n_samples, generator=generator), logq, grid) for _ in range(n_repeats)])
    return float(vals.mean()), float(vals.std()) if n_repeats > 1 else 0.0


def mmd2(x: Tensor, y: Tensor, bandwidth: float = 0.5, chunk: int = 4096) -> float:
    """Unbiased squared MMD between samples ``x`` (N, d) and ``y`` (M, d), Gaussian kernel of width ``bandwidth``.

    k(a, b) = exp(-|a - b|^2 / (2 bandwidth^2)); MMD^2 = E k(x, x') + E k(y, y') - 2 E k(x, y), each expectation
    over distinct pairs (Gretton et al., 2012, eq. (3)). Zero in expectation when x and y share a law.
    """
    for name, t in (("x", x), ("y", y)):
        if not torch.is_tensor(t) or not t.is_floating_point() or t.ndim != 2 or t.shape[0] < 2:
            raise ValueError(f"{name} must be a floating-point tensor (N, d) with N >= 2, got "
                             f"{tuple(t.shape) if torch.is_tensor(t) else type(t).__name__}")
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} holds NaN or infinite values")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    if not (isinstance(bandwidth, (int, float)) and bandwidth > 0 and math.isfinite(bandwidth)):
        raise ValueError(f"bandwidth must be a finite number > 0, got {bandwidth!r}")
    x, y = x.detach().cpu().double(), y.detach().cpu().double()

    def kernel_sum(a: Tensor, b: Tensor) -> float:
        total = 0.0
        for a_part in a.split(chunk):
            total += float(torch.exp(-torch.cdist(a_part, b).pow(2) / (2 * bandwidth ** 2)).sum())
        return total

    n, m = x.shape[0], y.shape[0]
    kxx = (kernel_sum(x, x) - n) / (n * (n - 1))     # the diagonal k(x_i, x_i) = 1 is left out
    kyy = (kernel_sum(y, y) - m) / (m * (m - 1))
    kxy = kernel_sum(x, y) / (n * m)
    return kxx + kyy - 2 * kxy


def mode_weights(samples: Tensor, mixture, hard: bool = False) -> Tensor:
    """Share of the samples explained by each mixture component, ``(K,)``, summing to 1.

    Soft (default): the mean responsibility, whose expectation under exact samples is exactly the component
    weight w_k. Hard: the fraction whose most responsible component is k.
    """
    if not hasattr(mixture, "responsibilities"):
        raise TypeError(f"mixture must have .responsibilities (an energies.Mixture), got {type(mixture).__name__}")
    x = _check_samples(samples)
    with torch.no_grad():
        r = mixture.responsibilities(x)
    if hard:
        return torch.bincount(r.argmax(-1), minlength=r.shape[1]).double() / r.shape[0]
    return r.double().mean(0)


def evaluations_per_step(sampler) -> dict[str, int]:
    """How many energy-gradient and energy-only evaluations one step of an ebmlib sampler performs.

    Counts what the implementation in :mod:`ebmlib.core.samplers` does (MALA evaluates the gradient at x and at the
    proposal; HMC once at the start and once per leapfrog step; random-walk MH two energies and no gradient),
    so samplers can be compared on the same budget of work rather than of steps.
    """
    name = type(sampler).__name__
    if name in ("ULA", "PaperLangevin"):
        return {"grad": 1, "energy": 0}
    if name == "MALA":
        return {"grad": 2, "energy": 0}
    if name == "HMC":
        return {"grad": sampler.n_leapfrog + 1, "energy": 0}
    if name == "RandomWalkMH":
        return {"grad": 0, "energy": 2}
    raise ValueError(f"unknown sampler type {name!r}")


def nearest_neighbours(queries: Tensor, pool: Tensor, k: int = 1, batch_size: int = 4096) -> tuple[Tensor, Tensor]:
    """The ``k`` nearest points of ``pool`` to each query by L2 distance (Fig. 20: are samples copies?).

    Works on any sample shape (flattened); returns distances (Q, k) and pool indices (Q, k), nearest first.
    """
    if queries.shape[1:] != pool.shape[1:]:
        raise ValueError(f"queries {tuple(queries.shape)} and pool {tuple(pool.shape)} differ in sample shape")
    if not 1 <= k <= pool.shape[0]:
        raise ValueError(f"k must lie in [1, {pool.shape[0]}], got {k}")
    q = queries.flatten(1).double()
    best_d = torch.full((q.shape[0], k), float("inf"), dtype=torch.float64)
    best_i = torch.zeros((q.shape[0], k), dtype=torch.int64)
    for start in range(0, pool.shape[0], batch_size):  # chunks keep the distance matrix small
        d = torch.cdist(q, pool[start:start + batch_size].flatten(1).double())
        d_all = torch.cat([best_d, d], 1)
        i_all = torch.cat([best_i, start + torch.arange(d.shape[1]).expand(q.shape[0], -1)], 1)
        best_d, order = d_all.topk(k, dim=1, largest=False)
        best_i = i_all.gather(1, order)
    return best_d, best_i


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """Frechet distance between N(mu1, cov1) and N(mu2, cov2): ``|mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2))``.

    The squared 2-Wasserstein distance between the two Gaussians (Dowson and Landau 1982), the quantity FID and
    section 5.1's roll-out metric report. ``(C1 C2)^(1/2)`` is ``scipy.linalg.sqrtm`` of the product, as in FID
    code; for positive semi-definite C1, C2 its eigenvalues are real and non-negative, so an imaginary part is
    round-off and is dropped. Where round-off is not small (nearly singular covariances, e.g. a model whose
    roll-outs have collapsed) the trace is taken from the similar, symmetric matrix ``C1^(1/2) C2 C1^(1/2)``
    instead, whose square root is real. Inputs are numpy arrays or tensors; computed in float64.
    """
    import warnings

    import numpy as np
    from scipy import linalg

    mu1, mu2 = (np.atleast_1d(np.asarray(_numpy(m), dtype=np.float64)) for m in (mu1, mu2))
    cov1, cov2 = (np.atleast_2d(np.asarray(_numpy(c), dtype=np.float64)) for c in (cov1, cov2))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,):
        raise ValueError(f"means must be vectors of one length, got shapes {mu1.shape} and {mu2.shape}")
    for name, c in (("cov1", cov1), ("cov2", cov2)):
        if c.shape != (d, d):
            raise ValueError(f"{name} must have shape ({d}, {d}) to match the means, got {c.shape}")
        if not np.isfinite(c).all():
            raise ValueError(f"{name} holds NaN or infinite values")
        if not np.allclose(c, c.T, rtol=1e-6, atol=1e-10 * max(1.0, float(np.abs(c).max()))):
            raise ValueError(f"{name} must be symmetric (a covariance matrix)")
    if not (np.isfinite(mu1).all() and np.isfinite(mu2).all()):
        raise ValueError("means hold NaN or infinite values")
    scale = max(1.0, float(np.trace(cov1) + np.trace(cov2)))
    with warnings.catch_warnings():  # a singular product is expected (collapsed roll-outs) and handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov1 @ cov2)
    if not np.isfinite(covmean).all() or (np.iscomplexobj(covmean) and np.abs(covmean.imag).max() > 1e-6 * scale):
        root1 = linalg.sqrtm(cov1)            # cov1 is PSD: a real root, up to round-off
        inner = np.real(root1) @ cov2 @ np.real(root1)
        eig = np.linalg.eigvalsh((inner + inner.T) / 2)
        tr_covmean = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    else:
        tr_covmean = float(np.trace(np.real(covmean)))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * tr_covmean)


def gaussian_frechet(x, y) -> float:
    """Fit a Gaussian (mean, unbiased covariance) to samples ``x`` (N, d) and ``y`` (M, d) and return their
    :func:`frechet_distance` (section 5.1: all predicted vs all true states at one time step)."""
    import numpy as np

    x, y = np.asarray(_numpy(x), dtype=np.float64), np.asarray(_numpy(y), dtype=np.float64)
    for name, a in (("x", x), ("y", y)):
        if a.ndim != 2 or a.shape[0] < 2:
            raise ValueError(f"{name} must have shape (N, d) with N >= 2 samples, got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"{name} holds NaN or infinite values (a diverged roll-out?)")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    cx, cy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    return frechet_distance(x.mean(0), np.atleast_2d(cx), y.mean(0), np.atleast_2d(cy))


def _numpy(a):
    return a.detach().cpu().numpy() if torch.is_tensor(a) else a
