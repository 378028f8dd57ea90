"""Analytic energies with exact, normalised log-densities.

Every distribution here has ``energy(x) = -log p(x)`` with ``p`` normalised, so ``Z = 1`` exactly and the
learned or sampled density can be compared with the truth. Each one can also draw exact samples, so it
serves both as a *target* for samplers and as a *data source* for training.

The 2D shapes are built from three smooth components whose normalising constants have closed forms:

* :class:`Gaussian` (any dimension, full covariance);
* :class:`Arc`: a ring of radius ``R`` and width ``sigma`` whose angle follows a von Mises law; with
  concentration 0 it is a full ring, with concentration > 0 a crescent (a "moon");
* :class:`SmoothBox`: a uniform square blurred by a Gaussian, i.e. a differentiable checkerboard cell.

:class:`Mixture` combines components with weights: ``log p = logsumexp_k(log w_k + log p_k)``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

__all__ = [
    "Distribution", "Gaussian", "Arc", "SmoothBox", "Mixture",
    "gaussian", "eight_gaussians", "two_rings", "two_moons", "checkerboard", "two_modes", "spiral", "grid_gaussians",
    "TOY_2D", "toy_2d",
]

LOG_2PI = math.log(2 * math.pi)


def _check_points(x: Tensor, dim: int) -> None:
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor of shape (N, {dim}), got {type(x).__name__}"
                        f"{'' if not torch.is_tensor(x) else ' of dtype ' + str(x.dtype)}")
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"x must have shape (N, {dim}), got {tuple(x.shape)}")


def _check_count(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"number of samples must be a non-negative int, got {n!r}")


class Distribution:
    """A normalised density on R^dim: ``log_prob``, ``energy = -log_prob`` and exact ``sample``."""

    dim: int = 2
    #: a square (low, high) that holds essentially all the mass; used for grids and plots
    bounds: tuple[float, float] = (-4.0, 4.0)

    def log_prob(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def energy(self, x: Tensor) -> Tensor:
        """E(x) = -log p(x); eq. (1) with Z = 1."""
        return -self.log_prob(x)

    __call__ = energy


class Gaussian(Distribution):
    """N(mean, cov) in any dimension."""

    def __init__(self, mean: Sequence[float] | Tensor, cov: Sequence | Tensor | float = 1.0):
        self.mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        self.dim = self.mean.numel()
        cov = torch.as_tensor(cov, dtype=torch.float32)
        if cov.ndim == 0:
            cov = cov * torch.eye(self.dim)
        elif cov.ndim == 1:
            cov = torch.diag(cov)
        if cov.shape != (self.dim, self.dim):
            raise ValueError(f"cov must be a scalar, ({self.dim},) or ({self.dim}, {self.dim}); got {tuple(cov.shape)}")
        if not torch.allclose(cov, cov.T):
            raise ValueError(f"cov must be symmetric, got {cov.tolist()}")
        try:
            self.scale_tril = torch.linalg.cholesky(cov)
        except RuntimeError as err:
            raise ValueError(f"cov must be symmetric positive definite, got {cov.tolist()}") from err
        self.cov = cov
        self._log_det = 2 * self.scale_tril.diagonal().log().sum()
        spread = 5 * cov.diagonal().sqrt().max().item()
        self.bounds = (self.mean.min().item() - spread, self.mean.max().item() + spread)

    def log_prob(self, x: Tensor) -> Tensor:
        _check_points(x, self.dim)
        diff = (x - self.mean.to(x)).T  # (D, N): one triangular solve for all points
        z = torch.linalg.solve_triangular(self.scale_tril.to(x), diff, upper=False)
        return -0.5 * (z.pow(2).sum(0) + self.dim * LOG_2PI + self._log_det.to(x))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        _check_count(n)
        eps = torch.randn(n, self.dim, generator=generator)
        return self.mean + eps @ self.scale_tril.T


class Arc(Distribution):
    """Ring of radius ``radius`` and radial width ``width`` around ``center``, angle ~ von Mises(angle, concentration).

    In polar coordinates p(r, theta) = vM(theta) * r phi(r) / Z_r with phi(r) = exp(-(r - R)^2 / (2 s^2)), so in
    the plane p(x) = vM(theta) phi(r) / Z_r, smooth everywhere except at the centre, where it is ~exp(-R^2/2s^2).
    Z_r = int_0^inf r phi(r) dr = s^2 exp(-R^2 / 2s^2) + R s sqrt(2 pi) Phi(R / s).
    """

    def __init__(self, center=(0.0, 0.0), radius: float = 2.0, width: float = 0.2,
                 angle: float = 0.0, concentration: float = 0.0):
        if radius <= 0 or width <= 0 or concentration < 0:
            raise ValueError(f"need radius > 0, width > 0, concentration >= 0; got {radius}, {width}, {concentration}")
        self.center = torch.as_tensor(center, dtype=torch.float32)
        self.radius, self.width, self.angle, self.concentration = float(radius), float(width), float(angle), float(concentration)
        r, s = self.radius, self.width
        z_r = s * s * math.exp(-r * r / (2 * s * s)) + r * s * math.sqrt(2 * math.pi) * 0.5 * math.erfc(-r / (s * math.sqrt(2)))
        # log of the von Mises normaliser 2 pi I0(kappa), computed stably with the scaled Bessel function i0e
        log_vm_norm = math.log(2 * math.pi) + math.log(torch.special.i0e(torch.tensor(concentration, dtype=torch.float64)).item()) + concentration
        self._log_norm = math.log(z_r) + log_vm_norm
        reach = r + 5 * s
        self.bounds = (self.center.min().item() - reach, self.center.max().item() + reach)

    def log_prob(self, x: Tensor) -> Tensor:
        _check_points(x, 2)
        d = x - self.center.to(x)
        r = d.norm(dim=-1)
        radial = -(r - self.radius).pow(2) / (2 * self.width ** 2)
        if self.concentration == 0:
            angular = torch.zeros_like(r)
        else:
            # kappa cos(theta - mu) = kappa (d . u) / |d| with u the unit vector at angle mu
            u = torch.tensor([math.cos(self.angle), math.sin(self.angle)], dtype=x.dtype, device=x.device)
            angular = self.concentration * (d @ u) / r.clamp_min(1e-12)
        return radial + angular - self._log_norm

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        _check_count(n)
        theta = self._sample_angle(n, generator)
        r = self._sample_radius(n, generator)
        return self.center + torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=-1)

    def _sample_angle(self, n, generator):
        if self.concentration == 0:
            return 2 * math.pi * torch.rand(n, generator=generator)
        # Best-Fisher rejection sampler for the von Mises law, vectorised; accepts > 65% per round.
        k = self.concentration
        tau = 1 + math.sqrt(1 + 4 * k * k)
        rho = (tau - math.sqrt(2 * tau)) / (2 * k)
        s = (1 + rho * rho) / (2 * rho)
        out = torch.empty(0)
        while out.numel() < n:
            m = 2 * (n - out.numel()) + 16
            u1, u2, u3 = torch.rand(3, m, generator=generator)
            z = torch.cos(math.pi * u1)
            f = (1 + s * z) / (s + z)
            c = k * (s - f)
            ok = (c * (2 - c) - u2 > 0) | (torch.log(c / u2) + 1 - c >= 0)
            theta = torch.sign(u3 - 0.5) * torch.acos(f.clamp(-1, 1))
            out = torch.cat([out, theta[ok]])
        return out[:n] + self.angle

    def _sample_radius(self, n, generator):
        # density prop. to r phi(r) on r > 0: propose N(R, s), accept with prob r / r_max (r_max = R + 8 s; the
        # mass of phi beyond it is Phi(-8) ~ 6e-16, far below any test's resolution)
        r_max = self.radius + 8 * self.width
        out = torch.empty(0)
        while out.numel() < n:
            m = 2 * (n - out.numel()) + 16
            r = self.radius + self.width * torch.randn(m, generator=generator)
            ok = (r > 0) & (torch.rand(m, generator=generator) * r_max < r)
            out = torch.cat([out, r[ok]])
        return out[:n]


def _log_diff_ndtr(a: Tensor, b: Tensor) -> Tensor:
    """log(Phi(a) - Phi(b)) for a > b, accurate in both tails (uses Phi(a) - Phi(b) = Phi(-b) - Phi(-a))."""
    flip = (a + b) > 0
    hi = torch.where(flip, -b, a)
    lo = torch.where(flip, -a, b)
    log_hi, log_lo = torch.special.log_ndtr(hi), torch.special.log_ndtr(lo)
    return log_hi + torch.log(-torch.expm1(log_lo - log_hi))  # expm1: accurate when a - b is small


class SmoothBox(Distribution):
    """Uniform on the square [low, high]^2 convolved with N(0, blur^2 I): a smooth checkerboard cell.

    p(x) = prod_d (Phi((x_d - lo_d) / b) - Phi((x_d - hi_d) / b)) / (hi_d - lo_d), exactly normalised.
    """

    def __init__(self, low=(0.0, 0.0), high=(1.0, 1.0), blur: float = 0.05):
        self.low = torch.as_tensor(low, dtype=torch.float32)
        self.high = torch.as_tensor(high, dtype=torch.float32)
        if not (self.high > self.low).all() or blur <= 0:
            raise ValueError(f"need high > low and blur > 0; got low={low}, high={high}, blur={blur}")
        self.blur = float(blur)
        self.bounds = (self.low.min().item() - 5 * blur, self.high.max().item() + 5 * blur)

    def log_prob(self, x: Tensor) -> Tensor:
        _check_points(x, 2)
        lo, hi = self.low.to(x), self.high.to(x)
        per_dim = _log_diff_ndtr((x - lo) / self.blur, (x - hi) / self.blur) - torch.log(hi - lo)
        return per_dim.sum(-1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        _check_count(n)
        u = torch.rand(n, 2, generator=generator)
        return self.low + u * (self.high - self.low) + self.blur * torch.randn(n, 2, generator=generator)


class Mixture(Distribution):
    """sum_k w_k p_k(x): the OR of its components (a product of experts would be their AND)."""

    def __init__(self, components: Sequence[Distribution], weights: Sequence[float] | None = None):
        if len(components) == 0:
            raise ValueError("a mixture needs at least one component")
        dims = {c.dim for c in components}
        if len(dims) != 1:
            raise ValueError(f"all components must share one dimension, got {sorted(dims)}")
        self.components = list(components)
        self.dim = dims.pop()
        w = torch.ones(len(components)) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        if w.shape != (len(components),) or not (torch.isfinite(w) & (w > 0)).all():
            raise ValueError(f"weights must be {len(components)} positive numbers, got {weights}")
        self.weights = w / w.sum()
        self.bounds = (min(c.bounds[0] for c in components), max(c.bounds[1] for c in components))

    def component_log_probs(self, x: Tensor) -> Tensor:
        """(N, K) matrix of log w_k + log p_k(x)."""
        return torch.stack([c.log_prob(x) for c in self.components], dim=-1) + self.weights.to(x).log()

    def log_prob(self, x: Tensor) -> Tensor:
        return torch.logsumexp(self.component_log_probs(x), dim=-1)

    def responsibilities(self, x: Tensor) -> Tensor:
        """(N, K) posterior probability that each point came from each component."""
        return torch.softmax(self.component_log_probs(x), dim=-1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        _check_count(n)
        if n == 0:
            return torch.empty(0, self.dim)
        which = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        out = torch.empty(n, self.dim)
        for k, comp in enumerate(self.components):
            idx = (which == k).nonzero().squeeze(-1)
            if idx.numel():
                out[idx] = comp.sample(idx.numel(), generator)
        return out


# ---------------------------------------------------------------------------------------------------------
# The book's named 2D targets. Each has well separated modes so mode weights can be measured.

def _check_std(std: float) -> None:
    if not (isinstance(std, (int, float)) and math.isfinite(std) and std > 0):
        raise ValueError(f"std must be a finite number > 0, got {std!r}")


def gaussian(mean=(0.0, 0.0), cov=((1.0, 0.6), (0.6, 1.0))) -> Gaussian:
    """A correlated 2D Gaussian: the one target every sampler must get exactly right."""
    return Gaussian(mean, cov)


def eight_gaussians(radius: float = 2.5, std: float = 0.25) -> Mixture:
    """Eight equal Gaussians on a circle."""
    _check_std(std)
    comps = [Gaussian((radius * math.cos(a), radius * math.sin(a)), std ** 2)
             for a in (2 * math.pi * k / 8 for k in range(8))]
    return Mixture(comps)


def two_rings(radii=(1.0, 2.5), width: float = 0.15) -> Mixture:
    """Two concentric rings, weighted by their circumference."""
    return Mixture([Arc(radius=r, width=width) for r in radii], weights=list(radii))


def two_moons(radius: float = 1.5, width: float = 0.15, concentration: float = 3.0) -> Mixture:
    """Two interleaved crescents, like scikit-learn's moons but with an exact density."""
    upper = Arc(center=(-radius / 2, -radius / 4), radius=radius, width=width, angle=math.pi / 2, concentration=concentration)
    lower = Arc(center=(radius / 2, radius / 4), radius=radius, width=width, angle=-math.pi / 2, concentration=concentration)
    return Mixture([upper, lower])


def checkerboard(n: int = 4, size: float = 1.5, blur: float = 0.05) -> Mixture:
    """The black squares of an n x n checkerboard of side ``n * size`` centred at 0, edges blurred."""
    start = -n * size / 2
    cells = [SmoothBox((start + i * size, start + j * size), (start + (i + 1) * size, start + (j + 1) * size), blur)
             for i in range(n) for j in range(n) if (i + j) % 2 == 0]
    return Mixture(cells)


def two_modes(separation: float = 4.0, std: float = 0.5, weights=(0.3, 0.7)) -> Mixture:
    """Two Gaussians on the x axis with unequal weights: the test of mixing between separated modes."""
    _check_std(std)
    half = separation / 2
    return Mixture([Gaussian((-half, 0.0), std ** 2), Gaussian((half, 0.0), std ** 2)], weights=weights)


def spiral(turns: float = 1.75, n_modes: int = 60, std: float = 0.12, r_in: float = 0.4, r_out: float = 3.4) -> Mixture:
    """A thin Archimedean spiral: ``n_modes`` equal Gaussians evenly spaced in angle along r = r_in ..r_out over
    ``turns`` turns; harder than the chapter's four because its mass is a long curve folded onto itself."""
    _check_std(std)
    angles = [2 * math.pi * turns * k / (n_modes - 1) for k in range(n_modes)]
    radii = [r_in + (r_out - r_in) * k / (n_modes - 1) for k in range(n_modes)]
    return Mixture([Gaussian((r * math.cos(a), r * math.sin(a)), std ** 2) for r, a in zip(radii, angles)])


def grid_gaussians(n: int = 5, spacing: float = 1.4, std: float = 0.12) -> Mixture:
    """``n`` x ``n`` equal, well separated Gaussians on a square grid: many modes for a sampler to visit."""
    _check_std(std)
    start = -spacing * (n - 1) / 2
    return Mixture([Gaussian((start + i * spacing, start + j * spacing), std ** 2) for i in range(n) for j in range(n)])


TOY_2D = {
    "gaussian": gaussian,
    "eight_gaussians": eight_gaussians,
    "two_rings": two_rings,
    "two_moons": two_moons,
    "checkerboard": checkerboard,
    "two_modes": two_modes,
    "spiral": spiral,
    "grid_gaussians": grid_gaussians,
}


def toy_2d(name: str, **kwargs) -> Distribution:
    """Build a named 2D target, e.g. ``toy_2d("two_moons")``."""
    if name not in TOY_2D:
        raise KeyError(f"unknown 2D energy {name!r}; expected one of {sorted(TOY_2D)}")
    return TOY_2D[name](**kwargs)
