"""Adversarial robustness of a conditional EBM classifier (Du & Mordatch 2019, section 4.4, Fig. 11).

**Classification by lowest class energy.** A conditional EBM E(x, c) defines p(x | c) ~ exp(-E(x, c)). With a
uniform class prior, p(c | x) = softmax_c(-E(x, c)), so the logits are simply ``-E(x, c)`` and the predicted
class is the one with the lowest energy (section 4.4: "fed a given image into each class conditional model and
computing the lowest energy class, without fine-tuning for classification"). :func:`class_energies` evaluates
E(x, c) for every class in one batched forward pass; :func:`ebm_logits` negates it.

**PGD** (projected gradient descent; Madry et al. 2018). An untargeted attack that maximises the cross-entropy
of the logits w.r.t. the true labels inside an eps-ball around the clean image: from a random start in the ball,
repeat ``x <- Proj_ball(x + step)`` where the step is ``step_size * sign(grad)`` (L-inf) or
``step_size * grad / ||grad||_2`` (L2), then clamp to the image range [0, 1]. The paper runs 20 steps
(section 4.4: "We ran 20 steps of PGD as in (Madry et al., 2017), on the above logits"). :func:`pgd` takes any
``logits_fn(x) -> (N, C)`` and differentiates w.r.t. the input only (``torch.autograd.grad``), so model
parameters never accumulate ``.grad``. ``eps`` is on the [0, 1] pixel scale; the paper's Fig. 11 axis is in
0..255 units ("outperforms ... on L-inf attacks with eps > 13"), i.e. divide its values by 255.

**The paper's defence.** Before classifying, run 10 steps of Langevin sampling initialised at the (possibly
attacked) image, with the deviation from that image bounded by 0.03, then classify by lowest class energy
(section 4.4: "we then ran 10 steps sampling initialized from the starting image (with a bounded deviation of
0.03) ... and then classified using the lowest energy conditional class"). :func:`langevin_defence` runs the
paper's Langevin (A.7: noise std 0.005, gradient clipped per value to 0.01, step 10) on the class-marginal
energy ``F(x) = -logsumexp_c(-E(x, c))`` (so p(x) ~ sum_c exp(-E(x, c)), a single chain per image), projecting
after each step onto the L-inf ball of radius ``bound`` around the start and onto [0, 1]. (The paper's wording,
"sampling ... from each conditional model", can also be read as one chain per class; this module uses the
marginal energy.)

**PGD through the sampling steps.** To attack the defended classifier the attacker differentiates through the
whole sampling chain (section 4.4: "running PGD incorporating these 10 steps of sampling was less successful
than adversarial examples on logits without sampling"). ``langevin_defence(..., differentiable=True)`` builds
every step with ``create_graph=True`` so the chain is one differentiable function of the input, and
:func:`defended_logits` wraps it for :func:`pgd`. The Langevin noise is drawn from a generator re-seeded with a
fixed seed on every call, so the defended classifier is a *deterministic* function of its input that the
attacker can differentiate exactly (a fixed noise realisation; an expectation-over-transformation attack that
averages fresh noise would be the stronger alternative). Note that the per-value gradient clip has zero
derivative wherever it is active, so much of the chain's gradient is carried by the unclipped values and the
identity path; a weak gradient here is gradient masking, not necessarily robustness.

Call ``model.eval()`` before attacking a spectrally normalised model: in training mode every forward pass runs a
power iteration that changes the weights slightly, so the attacked function would drift between PGD steps.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ebmlib.core.samplers import draw_random
from ebmlib.core.train import frozen

__all__ = ["class_energies", "ebm_logits", "marginal_energy", "pgd", "langevin_defence", "defended_logits",
           "robustness_curve", "NORMS"]

NORMS = ("linf", "l2")

LogitsFn = Callable[[Tensor], Tensor]


# -- validation helpers ------------------------------------------------------------------------------------------
def _number(name: str, value, *, positive: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > 0 if positive else value >= 0)
    if not ok:
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def _count(name: str, value, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _check_norm(norm: str) -> str:
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")
    return norm


def _check_images(x: Tensor) -> None:
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got {type(x).__name__}"
                         f"{' of dtype ' + str(x.dtype) if torch.is_tensor(x) else ''}")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x must have shape (N, ...) with N >= 1, got {tuple(x.shape)}")
    lo, hi = float(x.detach().min()), float(x.detach().max())
    if not (lo >= -1e-6 and hi <= 1 + 1e-6):
        raise ValueError(f"x must lie in the image range [0, 1], got values in [{lo:.4g}, {hi:.4g}]")


def _check_labels(y: Tensor, n: int) -> None:
    if not torch.is_tensor(y) or y.dtype not in (torch.int64, torch.int32) or y.shape != (n,):
        got = f"{y.dtype} {tuple(y.shape)}" if torch.is_tensor(y) else type(y).__name__
        raise ValueError(f"y must be an integer tensor of shape ({n},), got {got}")


def _n_classes(model: nn.Module) -> int:
    c = getattr(model, "n_classes", None)
    if not isinstance(c, int) or c < 1:
        raise ValueError(f"model must be a conditional energy with an int n_classes >= 1, got n_classes={c!r}")
    return c


def _view(t: Tensor, like: Tensor) -> Tensor:
    return t.reshape(-1, *([1] * (like.ndim - 1)))


def _l2(t: Tensor) -> Tensor:
    return t.flatten(1).norm(dim=1)


def _draw(fn, shape, generator: Optional[torch.Generator], like: Tensor) -> Tensor:
    """``fn`` (torch.rand / torch.randn) with ``like``'s dtype and device, drawn where the generator lives: a CPU
    generator can then drive attacks on GPU images (:func:`ebmlib.core.samplers.draw_random`)."""
    return draw_random(fn, shape, generator, like.dtype, like.device)


# -- classification by lowest class energy -----------------------------------------------------------------------
def class_energies(model: nn.Module, x: Tensor) -> Tensor:
    """E(x, c) for every class c, shape (N, C), in one batched forward pass (x repeated over the C classes).

    Section 4.4: the image is fed "into each class conditional model". Differentiable w.r.t. ``x``.
    """
    c = _n_classes(model)
    n = x.shape[0]
    xs = x.unsqueeze(0).expand(c, *x.shape).reshape(c * n, *x.shape[1:])   # class-major: [x for class 0, ...]
    ys = torch.arange(c, device=x.device).repeat_interleave(n)
    e = model(xs, ys)
    if e.shape != (c * n,):
        raise ValueError(f"model must return one energy per input, shape ({c * n},); got {tuple(e.shape)}")
    return e.reshape(c, n).t()


def ebm_logits(model: nn.Module, x: Tensor) -> Tensor:
    """Logits -E(x, c), shape (N, C): softmax over them is p(c | x) under a uniform class prior, and the argmax
    is the lowest-energy class (section 4.4's classifier)."""
    return -class_energies(model, x)


def marginal_energy(model: nn.Module, x: Tensor) -> Tensor:
    """F(x) = -logsumexp_c(-E(x, c)), shape (N,): the energy of p(x) ~ sum_c exp(-E(x, c))."""
    return -torch.logsumexp(-class_energies(model, x), dim=1)


# -- PGD (Madry et al. 2018) -------------------------------------------------------------------------------------
def _project(delta: Tensor, eps: float, norm: str) -> Tensor:
    if norm == "linf":
        return delta.clamp(-eps, eps)
    scale = (eps / _l2(delta).clamp_min(1e-12)).clamp(max=1.0)
    return delta * _view(scale, delta)


def _random_start(x: Tensor, eps: float, norm: str, generator) -> Tensor:
    if norm == "linf":
        u = _draw(torch.rand, x.shape, generator, x)
        return (2 * u - 1) * eps
    # uniform direction, radius eps * U^(1/d): uniform in the L2 ball
    d = _draw(torch.randn, x.shape, generator, x)
    d = d / _view(_l2(d).clamp_min(1e-12), d)
    dim = x[0].numel()
    r = eps * _draw(torch.rand, (x.shape[0],), generator, x) ** (1.0 / dim)
    return d * _view(r, d)


def pgd(logits_fn: LogitsFn, x: Tensor, y: Tensor, eps: float, norm: str = "linf", steps: int = 20,
        step_size: Optional[float] = None, random_start: bool = True,
        generator: Optional[torch.Generator] = None) -> Tensor:
    """Untargeted PGD (Madry et al. 2018): maximise cross-entropy(logits_fn(x_adv), y) over ||x_adv - x|| <= eps.

    Args:
        logits_fn: maps images (N, ...) to logits (N, C), e.g. ``lambda x: ebm_logits(model, x)`` or
            :func:`defended_logits`.
        x: clean images in [0, 1]; y: true labels (N,).
        eps: radius of the ball on the [0, 1] scale (paper's 0..255 values / 255). ``eps=0`` returns ``x``.
        norm: ``"linf"`` (step ``step_size * sign(grad)``, projection by clamping) or ``"l2"`` (step
            ``step_size * grad / ||grad||_2`` per example, projection onto the L2 ball).
        steps: number of PGD steps (section 4.4 runs 20).
        step_size: defaults to ``2.5 * eps / steps`` (Madry et al.'s rule of thumb).
        random_start: start from a uniform point in the ball (drawn from ``generator``).

    Returns:
        detached adversarial images, same shape as ``x``, in [0, 1] and within ``eps`` of ``x``. Only the input
        is differentiated (``torch.autograd.grad``), so no parameter's ``.grad`` is touched.
    """
    eps = _number("eps", eps)
    norm = _check_norm(norm)
    steps = _count("steps", steps, 1)
    _check_images(x)
    _check_labels(y, x.shape[0])
    step_size = 2.5 * eps / steps if step_size is None else _number("step_size", step_size, positive=True)
    x = x.detach()
    if eps == 0:
        return x.clone()
    delta = _random_start(x, eps, norm, generator) if random_start else torch.zeros_like(x)
    x_adv = (x + delta).clamp(0, 1)
    for _ in range(steps):
        with torch.enable_grad():
            x_adv = x_adv.detach().requires_grad_(True)
            loss = F.cross_entropy(logits_fn(x_adv), y, reduction="sum")   # sum: per-example gradients unscaled
            (g,) = torch.autograd.grad(loss, x_adv)
        with torch.no_grad():
            if norm == "linf":
                step = step_size * g.sign()
            else:
                step = step_size * g / _view(_l2(g).clamp_min(1e-12), g)
            delta = _project(x_adv + step - x, eps, norm)
            x_adv = (x + delta).clamp(0, 1)   # clamping into [0, 1] only shrinks |delta|: stays in the ball
    return x_adv.detach()


# -- the paper's defence: bounded Langevin on the marginal energy -------------------------------------------------
def langevin_defence(model: nn.Module, x: Tensor, n_steps: int = 10, bound: float = 0.03, step_size: float = 10.0,
                     noise_std: float = 0.005, grad_clip: Optional[float] = 0.01,
                     generator: Optional[torch.Generator] = None, differentiable: bool = False) -> Tensor:
    """Section 4.4's purification: ``n_steps`` of the paper's Langevin (A.7) from ``x`` on F(x) = -logsumexp_c(-E(x, c)).

    One step (as :class:`~ebmlib.core.samplers.PaperLangevin`): ``x <- x + noise_std * N(0, I)``;
    ``g <- clip(grad F(x), +-grad_clip)``; ``x <- x - step_size * g``; then ``x`` is projected onto the L-inf ball of
    radius ``bound`` around the start ("a bounded deviation of 0.03") and onto [0, 1].

    Args:
        generator: source of the Langevin noise; a generator seeded the same way gives the same output, which is
            how :func:`defended_logits` makes the defended classifier a deterministic function for the attacker.
        differentiable: if True the gradient steps are built with ``create_graph=True`` and the result is a
            differentiable function of ``x`` (for "PGD through the sampling steps"); if False the chain runs
            detached and the result is detached. Either way no gradient reaches the model's parameters (the
            model is :func:`~ebmlib.core.train.frozen` while sampling).
    """
    n_steps = _count("n_steps", n_steps, 0)
    bound = _number("bound", bound)
    step_size = _number("step_size", step_size, positive=True)
    noise_std = _number("noise_std", noise_std)
    if grad_clip is not None:
        grad_clip = _number("grad_clip", grad_clip, positive=True)
    _check_images(x)
    x0 = x if differentiable and x.requires_grad else x.detach()
    if differentiable and not x0.requires_grad:   # a constant input: still build the chain's graph
        x0 = x0.clone().requires_grad_(True)
    cur = x0
    with frozen(model), torch.enable_grad():
        for _ in range(n_steps):
            if noise_std:
                cur = cur + noise_std * _draw(torch.randn, cur.shape, generator, cur)
            if not differentiable:
                cur = cur.detach().requires_grad_(True)
            energy = marginal_energy(model, cur)
            (g,) = torch.autograd.grad(energy.sum(), cur, create_graph=differentiable)
            if grad_clip is not None:
                g = g.clamp(-grad_clip, grad_clip)   # A.7: per-value clip
            cur = cur - step_size * g
            cur = x0 + (cur - x0).clamp(-bound, bound)   # section 4.4: bounded deviation from the start
            cur = cur.clamp(0, 1)
            if not differentiable:
                cur = cur.detach()
    return cur if differentiable else cur.detach()


def defended_logits(model: nn.Module, n_steps: int = 10, bound: float = 0.03, *, seed: int = 0,
                    **kw) -> LogitsFn:
    """The defended classifier as a differentiable ``logits_fn`` for :func:`pgd`:
    ``x -> ebm_logits(model, langevin_defence(model, x, n_steps, bound, differentiable=True, ...))``.

    The Langevin noise comes from a fresh generator seeded with ``seed`` on every call, so the same input always
    gives the same logits (the attacker differentiates one fixed noise realisation). ``kw`` goes to
    :func:`langevin_defence` (``step_size``, ``noise_std``, ``grad_clip``).
    """
    n_steps = _count("n_steps", n_steps, 0)
    _number("bound", bound)
    bad = set(kw) - {"step_size", "noise_std", "grad_clip"}
    if bad:
        raise ValueError(f"unknown langevin_defence options {sorted(bad)}; allowed: step_size, noise_std, grad_clip")
    _n_classes(model)

    def logits_fn(x: Tensor) -> Tensor:
        gen = torch.Generator(device=x.device).manual_seed(seed)
        x_def = langevin_defence(model, x, n_steps=n_steps, bound=bound, generator=gen, differentiable=True, **kw)
        return ebm_logits(model, x_def)

    return logits_fn


# -- Fig. 11: accuracy against eps --------------------------------------------------------------------------------
def robustness_curve(logits_fn: LogitsFn, x: Tensor, y: Tensor, eps_list: Sequence[float], norm: str = "linf",
                     steps: int = 20, generator: Optional[torch.Generator] = None, batch_size: Optional[int] = None,
                     progress: bool = True, **pgd_kw) -> list[float]:
    """Accuracy of ``logits_fn`` under :func:`pgd` at each eps in ``eps_list`` (eps=0 gives the clean accuracy).

    ``batch_size`` splits ``x`` into chunks (all of it at once if None); ``pgd_kw`` (``step_size``,
    ``random_start``) goes to :func:`pgd`. A tqdm bar runs over eps x batches (``progress=False`` hides it).
    """
    norm = _check_norm(norm)
    steps = _count("steps", steps, 1)
    eps_list = [_number("eps", e) for e in eps_list]
    _check_images(x)
    _check_labels(y, x.shape[0])
    n = x.shape[0]
    bs = n if batch_size is None else _count("batch_size", batch_size, 1)
    chunks = [(x[i:i + bs], y[i:i + bs]) for i in range(0, n, bs)]
    accs = []
    with tqdm(total=len(eps_list) * len(chunks), desc=f"PGD {norm}", disable=not progress, leave=False) as bar:
        for eps in eps_list:
            correct = 0
            for xb, yb in chunks:
                x_adv = pgd(logits_fn, xb, yb, eps, norm=norm, steps=steps, generator=generator, **pgd_kw)
                with torch.no_grad():
                    correct += int((logits_fn(x_adv).argmax(1) == yb).sum())
                bar.update(1)
            accs.append(correct / n)
            bar.set_postfix(eps=f"{eps:.3g}", acc=f"{accs[-1]:.3f}")
    return accs
