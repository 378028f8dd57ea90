"""The likelihood chapter's experiments: AIS and RAISE where the answer is known, then on MNIST EBMs (A.3).

:mod:`ebmlib.core.ais` holds the estimators; this module holds what the chapter does with them, so the notebook only
narrates:

* :class:`ExactProblem` and three of them whose log Z is known in closed form: a 2D mixture on a box
  (:func:`mixture_problem`), a Gaussian in any dimension seen from a mismatched base (:func:`gaussian_problem`)
  and a 784-D product of truncated exponentials on [0, 1]^784 shaped like dequantised digits
  (:func:`digit_box_problem`), the last with either a uniform or a data-fitted base.
* :func:`bidirectional`: forward AIS (E log Z_hat <= log Z) and reverse AIS started from *exact* samples
  (E log Z_hat_rev >= log Z) at one number of temperatures; :func:`convergence` sweeps that number.
* For trained image EBMs: :func:`fitted_base` (a per-pixel truncated Gaussian fitted to the training digits,
  itself a likelihood model and the chapter's reference line), :func:`temperature_curve` (A.3 picks the
  temperature that maximises the likelihood; we maximise the lower bound, see there) and :func:`image_bounds` (AIS upper / RAISE lower bound on the
  mean test log-likelihood in nats per image, Fig. 22/23).

Everything returns plain dicts of floats, so a notebook can tabulate them and write them to its results JSON.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor, nn

from ebmlib.core import ais
from ebmlib.core.image_ebm import load_or_train_models
from ebmlib.core.energies import toy_2d
from ebmlib.data import load_images

__all__ = ["train_models", "ExactProblem", "mixture_problem", "gaussian_problem", "digit_box_problem", "bidirectional",
           "convergence", "frozen_energy", "fitted_base", "temperature_curve", "image_bounds"]

EnergyFn = Callable[[Tensor], Tensor]


@dataclass
class ExactProblem:
    """An energy whose log Z (of exp(-E)) is known exactly, a base to anneal from, and exact samples."""

    name: str
    energy: EnergyFn
    log_z: float
    sample: Callable[[int, torch.Generator], Tensor]   #: exact draws of exp(-E) / Z
    base: object                                         #: an ais.GaussianBase or ais.UniformBase
    settings: dict                                       #: extra AIS settings (kernel, preconditioner, ...)

    @property
    def dim(self) -> int:
        return math.prod(self.base.shape)


def mixture_problem(shift: float = 3.0) -> ExactProblem:
    """The eight-Gaussian ring of chapter 1 with E = -log p + ``shift``, so log Z = -shift exactly; uniform base
    on [-4, 4]^2 (all but ~1e-9 of the mass lies inside) and MALA, which rejects moves off the box."""
    target = toy_2d("eight_gaussians")
    return ExactProblem("2D mixture of 8 Gaussians", lambda x: target.energy(x) + shift, -shift, target.sample,
                        ais.UniformBase(-4.0, 4.0, shape=(2,)), dict(transition="mala", step_size=0.05))


def gaussian_problem(dim: int, mean: float = 0.5, std: float = 0.3, base_std: float = 1.0) -> ExactProblem:
    """E(x) = |x - mean|^2 / (2 std^2) in ``dim`` dimensions, log Z = dim/2 log(2 pi std^2), annealed from
    N(0, base_std^2): the base is ~3x too wide and off-centre, so the estimate needs real annealing, and the
    same mismatch per coordinate costs more temperatures as ``dim`` grows."""
    if int(dim) != dim or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    for name, v in (("std", std), ("base_std", base_std)):
        if not v > 0:
            raise ValueError(f"{name} must be > 0, got {v!r}")

    def energy(x: Tensor) -> Tensor:
        return (x - mean).pow(2).flatten(1).sum(-1) / (2 * std ** 2)

    def sample(n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        return mean + std * torch.randn(n, dim, generator=generator)

    return ExactProblem(f"Gaussian, D = {dim}", energy, dim / 2 * math.log(2 * math.pi * std ** 2), sample,
                        ais.GaussianBase(torch.zeros(dim), base_std), dict(transition="mala"))


def _rates_from_means(pixel_means: Tensor, n_iter: int = 60) -> Tensor:
    """lambda with mean 1/lambda - 1/(e^lambda - 1) = m of p(x) ~ exp(-lambda x) on [0, 1], by bisection."""
    m = pixel_means.double().clamp(1e-3, 1 - 1e-3)
    lo, hi = torch.full_like(m, -1e3), torch.full_like(m, 1e3)

    def mean_of(lam):     # mean of the truncated exponential; lambda -> 0 gives 1/2
        small = lam.abs() < 1e-6
        safe = torch.where(small, torch.ones_like(lam), lam)
        return torch.where(small, 0.5 - lam / 12, 1 / safe - 1 / torch.expm1(safe))

    for _ in range(n_iter):          # the mean falls monotonically in lambda
        mid = (lo + hi) / 2
        too_high = mean_of(mid) > m
        lo, hi = torch.where(too_high, mid, lo), torch.where(too_high, hi, mid)
    return ((lo + hi) / 2).float()


def digit_box_problem(pixel_means: Tensor, base: str = "fitted", n_fit: int = 5000,
                      generator: Optional[torch.Generator] = None) -> ExactProblem:
    """784-D product of truncated exponentials p(x) ~ exp(-sum lambda_i x_i) on [0, 1]^D whose per-pixel means
    are ``pixel_means`` (e.g. of dequantised MNIST): background pixels pile against 0 as the digits' do, and
    log Z = sum log((1 - e^{-lambda}) / lambda) is exact. ``base``: "uniform" on the box (0 nats per image) or
    "fitted", a truncated Gaussian fitted to ``n_fit`` exact samples, as the chapter does for the real models."""
    shape = tuple(pixel_means.shape)
    lam = _rates_from_means(pixel_means)
    lam_d = lam.double()
    safe = torch.where(lam_d.abs() < 1e-6, torch.ones_like(lam_d), lam_d)
    log_norm = torch.where(lam_d.abs() < 1e-6, -lam_d / 2, torch.log(-torch.expm1(-safe) / safe))
    log_z = float(log_norm.sum())

    def energy(x: Tensor) -> Tensor:
        return (x * lam.to(x)).flatten(1).sum(-1)

    def sample(n: int, g: Optional[torch.Generator] = None) -> Tensor:
        u = torch.rand(n, *shape, generator=g, dtype=torch.float64)
        # inverse CDF of exp(-lambda x) on [0, 1]: x = -log(1 - u (1 - e^{-lambda})) / lambda
        x = -torch.log1p(u * torch.expm1(-safe)) / safe
        return torch.where(lam_d.abs() < 1e-6, u, x).clamp(0, 1).float()

    if base == "uniform":
        b = ais.UniformBase(0.0, 1.0, shape=shape)
    elif base == "fitted":
        b = ais.GaussianBase.fit(sample(n_fit, generator), box=(0.0, 1.0), min_std=1 / 256)
    else:
        raise ValueError(f"base must be 'uniform' or 'fitted', got {base!r}")
    settings = dict(transition="hmc", scale=b.std if base == "fitted" else 1.0)
    return ExactProblem(f"digit-shaped box, D = {math.prod(shape)}, {base} base", energy, log_z, sample, b,
                        settings)


def _check_count(name: str, n) -> int:
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return int(n)


def bidirectional(problem: ExactProblem, n_temps: int, n_chains: int,
                  generator: Optional[torch.Generator] = None, **settings) -> dict:
    """Forward AIS and reverse AIS from exact samples with the same temperatures and step schedule.

    ``lower``/``upper`` are log Z_hat of each direction (log-mean-exp over chains), stochastically below /
    above the exact ``log_z``; ``gap`` = upper - lower shrinks to 0 as the chains approach equilibrium."""
    n_temps, n_chains = _check_count("n_temps", n_temps), _check_count("n_chains", n_chains)
    opts = {**problem.settings, **settings}
    betas = ais.make_betas(n_temps)
    start = time.perf_counter()
    steps = ais.step_schedule(problem.energy, problem.base, betas, 1.0, generator, False, opts)
    opts["step_size"] = steps
    fwd = ais.ais_log_z(problem.energy, problem.base, n_chains, betas, generator=generator, **opts)
    rev = ais.reverse_ais_log_z(problem.energy, problem.base, problem.sample(n_chains, generator), betas,
                                generator=generator, **opts)
    return dict(problem=problem.name, dim=problem.dim, n_temps=n_temps, n_chains=n_chains, exact=problem.log_z,
                lower=fwd.log_z, lower_se=fwd.log_z_se, upper=rev.log_z, upper_se=rev.log_z_se,
                gap=rev.log_z - fwd.log_z, ess_forward=fwd.ess, ess_reverse=rev.ess,
                acceptance=fwd.acceptance_rate, seconds=time.perf_counter() - start)


def convergence(problem: ExactProblem, temps: Sequence[int], n_chains: int,
                generator: Optional[torch.Generator] = None, **settings) -> list[dict]:
    """:func:`bidirectional` at each number of temperatures in ``temps``."""
    if len(temps) == 0:
        raise ValueError("temps must hold at least one number of temperatures, got an empty sequence")
    return [bidirectional(problem, k, n_chains, generator, **settings) for k in temps]


# --------------------------------------------------------------------------------------------------------
# Trained image EBMs

def frozen_energy(model: nn.Module) -> nn.Module:
    """``model`` in eval mode with its parameters frozen: a fixed E(x) for the whole run (spectral norm in training
    mode would re-run its power iteration, and so change E, at every call)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def fitted_base(train_x: Tensor) -> ais.GaussianBase:
    """Per-pixel Gaussian fitted to dequantised training digits and truncated to [0, 1] (std at least one
    dequantisation bin, 1/256). Its own mean log-likelihood is the chapter's reference line."""
    return ais.GaussianBase.fit(train_x, box=(0.0, 1.0), min_std=1 / 256)


def temperature_curve(model: nn.Module, heldout: Tensor, base, temperatures: Sequence[float], *, n_chains: int,
                      n_temps: int, generator: Optional[torch.Generator] = None, progress: bool = False,
                      **settings) -> dict:
    """Both bounds on mean log p_T(heldout) at every T in ``temperatures``, and the T to report at.

    A.3 picks "the temperature that maximized the likelihood". Maximising the AIS estimate is unsafe: it is an
    *upper* bound whose error grows where the run misses more of Z, which is at cold (peaked) temperatures, so
    its maximum drifts to the coldest T tried. ``best`` therefore maximises the RAISE *lower* bound, which a
    run that misses mass cannot inflate; ``best_upper`` is the AIS maximiser, for comparison. Pick T on data
    other than the test digits the bounds are reported on. ``settings`` go to :mod:`ebmlib.core.ais` (default
    preconditioner: the base's per-pixel std)."""
    if len(temperatures) == 0:
        raise ValueError("temperatures must hold at least one value, got an empty sequence")
    rows = [image_bounds(model, heldout, base, float(t), n_temps=n_temps, n_chains=n_chains, generator=generator,
                         progress=progress, **settings) for t in temperatures]
    lower, upper = [r["lower"] for r in rows], [r["upper"] for r in rows]
    return dict(best=rows[max(range(len(rows)), key=lower.__getitem__)]["temperature"],
                best_upper=rows[max(range(len(rows)), key=upper.__getitem__)]["temperature"],
                temperatures=[r["temperature"] for r in rows], lower=lower, upper=upper,
                lower_se=[r["lower_se"] for r in rows], upper_se=[r["log_z_se"] for r in rows],
                ess=[r["ess"] for r in rows])


def image_bounds(model: nn.Module, test_x: Tensor, base, temperature: float, *, n_temps: int, n_chains: int,
                 generator: Optional[torch.Generator] = None, progress: bool = False, **settings) -> dict:
    """AIS upper and RAISE lower bound on the mean log-likelihood of ``test_x`` (nats per image) under
    p_T = exp(-E/T) / Z, with ``n_chains`` forward chains and one RAISE chain per test image."""
    energy = frozen_energy(model)
    start = time.perf_counter()
    b = ais.log_likelihood_bounds(energy, test_x, base, temperature=temperature, n_chains=n_chains,
                                  n_temps=n_temps, generator=generator, progress=progress,
                                  **{"scale": base.std, **settings})
    n = test_x.shape[0]
    return dict(temperature=temperature, n_temps=n_temps, n_chains=n_chains, n_test=n, upper=b.upper,
                lower=b.lower, gap=b.upper - b.lower,
                lower_se=float(b.per_example_lower.std() / math.sqrt(n)) if n > 1 else math.nan,
                log_z=b.forward.log_z, log_z_se=b.forward.log_z_se, ess=b.forward.ess,
                acceptance=b.forward.acceptance_rate, seconds=time.perf_counter() - start)


def train_models(cfg, seed: int = 0, only=None, **options) -> dict:
    """The preset's image EBMs (``cfg.models``), each loaded from its checkpoint or trained; ``options``:
    ``out_dir``, ``shipped_dir``, ``device``, ``progress``, ``log``."""
    return load_or_train_models(cfg.models, lambda name: load_images(name, "train"), seed, only, **options)
