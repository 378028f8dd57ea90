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

**The paper's defence: one chain per class.** Section 4.4: "we then ran 10 steps sampling initialized from the
starting image (with a bounded deviation of 0.03) from each conditional model, and then classified using the
lowest energy conditional class". :func:`class_chains` does exactly that: for every label c it runs ``n_steps``
of the paper's Langevin (A.7: noise std 0.005, gradient clipped per value to 0.01, step 10) on E(., c) alone,
starting at the (possibly attacked) image x and projected after each step onto the L-inf ball of radius
``bound`` around x and onto [0, 1]; the chain of class c ends at x_c. The defended logits are
``-E(x_c, c)``, each class read at *its own* chain's end state (:func:`defended_energies`), so the logit of class
c depends on class c's energy only. All C chains of a batch run as one (C * N)-image batch.

:func:`marginal_defence` is a different procedure, kept as a labelled comparison only: one chain per image on
the class-marginal energy ``F(x) = -logsumexp_c(-E(x, c))``, then every class energy read at that one end state.

**Attacking the defended classifier.** Section 4.4 crafts PGD "on the above logits" (the undefended EBM) and
then classifies the adversarial images with the sampling defence; it adds that "running PGD incorporating these
10 steps of sampling was less successful than adversarial examples on logits without sampling". Both are here:

* :func:`transfer_curves` crafts adversarial examples on a *source* classifier and lets each *target* classify
  the same examples (the paper's protocol is source = undefended EBM, target = defended EBM; source = CNN gives
  a black-box transfer). The targets are never differentiated.
* PGD through the defence: ``defended_logits`` builds every Langevin step with ``create_graph=True`` when
  gradients are on, so the chain is one differentiable function of the input. Its noise is drawn from a
  generator re-seeded with a fixed seed on every call, so the defended classifier is a *deterministic* function
  that the attacker differentiates exactly (a fixed noise realisation; averaging fresh noise, expectation over
  transformation, would be a stronger attack).

An attack through the chain can be weakened by the chain itself (gradient masking): the per-value gradient clip,
the projection onto the bound and the clamp to [0, 1] all have zero derivative wherever they are active. Whether
each of them binds is measured, not assumed: pass a :class:`ChainStats` to the defence and it counts, over every
step of every chain, the gradient values beyond the clip, the pixels held at the bound and the pixels clamped.
An attack that transfers better than PGD through the defence shows how much of that PGD's "robustness" is
masking; :func:`worst_case` takes the per-image minimum over attacks.

Call ``model.eval()`` before attacking a spectrally normalised model: in training mode every forward pass runs a
power iteration that changes the weights slightly, so the attacked function would drift between PGD steps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ebmlib.core.samplers import draw_random
from ebmlib.core.train import frozen

__all__ = ["norm_name", "class_energies", "ebm_logits", "marginal_energy", "pgd", "ChainStats", "bounded_langevin",
           "class_chains", "defended_energies", "marginal_defence", "defended_logits", "DEFENCES",
           "transfer_curves", "robustness_curve", "worst_case", "NORMS"]

NORMS = ("linf", "l2")

LogitsFn = Callable[[Tensor], Tensor]


# -- validation helpers ------------------------------------------------------------------------------------------
def norm_name(norm: str) -> str:
    """``"linf"`` -> ``"L-inf"``, ``"l2"`` -> ``"L2"``."""
    names = {"linf": "L-inf", "l2": "L2"}
    if norm not in names:
        raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")
    return names[norm]


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


# -- the defence: bounded Langevin chains ------------------------------------------------------------------------
@dataclass
class ChainStats:
    """Counters over every step of every defence chain it is passed to (see the module docstring).

    ``values``: gradient values (= pixel updates) seen; ``clipped``: those with |grad| > ``grad_clip`` (A.7's
    per-value clip active); ``at_bound``: updates that left the L-inf ball of radius ``bound`` around the chain's
    start and were projected back; ``clamped``: updates that left [0, 1]; ``max_abs_grad``: the largest |grad|.
    """

    values: int = 0
    clipped: int = 0
    at_bound: int = 0
    clamped: int = 0
    max_abs_grad: float = 0.0
    steps: int = 0

    def _grad(self, g: Tensor, grad_clip: Optional[float]) -> None:
        a = g.detach().abs()
        self.values += a.numel()
        self.steps += 1
        self.max_abs_grad = max(self.max_abs_grad, float(a.max()) if a.numel() else 0.0)
        if grad_clip is not None:
            self.clipped += int((a > grad_clip).sum())

    def _move(self, d: Tensor, bound: float) -> None:
        self.at_bound += int((d.detach().abs() > bound).sum())

    def _range(self, x: Tensor) -> None:
        x = x.detach()
        self.clamped += int(((x < 0) | (x > 1)).sum())

    def fraction(self, what: str) -> float:
        """``clipped``, ``at_bound`` or ``clamped`` as a fraction of ``values`` (0 before any step)."""
        if what not in ("clipped", "at_bound", "clamped"):
            raise ValueError(f"unknown counter {what!r}; expected 'clipped', 'at_bound' or 'clamped'")
        return getattr(self, what) / self.values if self.values else 0.0

    def as_dict(self) -> dict:
        return dict(steps=self.steps, values=self.values, clipped=self.clipped, at_bound=self.at_bound,
                    clamped=self.clamped, max_abs_grad=self.max_abs_grad,
                    **{f"{k}_fraction": self.fraction(k) for k in ("clipped", "at_bound", "clamped")})


def _chain_options(n_steps, bound, step_size, noise_std, grad_clip) -> tuple:
    n_steps = _count("n_steps", n_steps, 0)
    bound = _number("bound", bound)
    step_size = _number("step_size", step_size, positive=True)
    noise_std = _number("noise_std", noise_std)
    if grad_clip is not None:
        grad_clip = _number("grad_clip", grad_clip, positive=True)
    return n_steps, bound, step_size, noise_std, grad_clip


def bounded_langevin(energy_fn: Callable[[Tensor], Tensor], x: Tensor, n_steps: int = 10, bound: float = 0.03,
                     step_size: float = 10.0, noise_std: float = 0.005, grad_clip: Optional[float] = 0.01,
                     generator: Optional[torch.Generator] = None, differentiable: bool = False,
                     stats: Optional[ChainStats] = None) -> Tensor:
    """``n_steps`` of the paper's Langevin (A.7) on ``energy_fn`` from ``x``, kept within ``bound`` of ``x``.

    One step (as :class:`~ebmlib.core.samplers.PaperLangevin`): ``x <- x + noise_std * N(0, I)``;
    ``g <- clip(grad energy_fn(x), +-grad_clip)``; ``x <- x - step_size * g``; then ``x`` is projected onto the
    L-inf ball of radius ``bound`` around the start (section 4.4: "a bounded deviation of 0.03") and onto [0, 1].
    ``energy_fn`` maps a batch (M, ...) to (M,) energies, each depending on its own row only, so the gradient
    of their sum is every chain's own gradient.

    Args:
        generator: source of the noise; the same seed gives the same chain.
        differentiable: build the gradient steps with ``create_graph=True``, so the result is a differentiable
            function of ``x`` (for PGD through the chain); otherwise the chain runs detached.
        stats: a :class:`ChainStats` to count where the clip, the bound and the [0, 1] clamp are active.
    """
    n_steps, bound, step_size, noise_std, grad_clip = _chain_options(n_steps, bound, step_size, noise_std,
                                                                     grad_clip)
    _check_images(x)
    x0 = x if differentiable and x.requires_grad else x.detach()
    if differentiable and not x0.requires_grad:   # a constant input: still build the chain's graph
        x0 = x0.clone().requires_grad_(True)
    cur = x0
    with torch.enable_grad():
        for _ in range(n_steps):
            if noise_std:
                cur = cur + noise_std * _draw(torch.randn, cur.shape, generator, cur)
            if not differentiable:
                cur = cur.detach().requires_grad_(True)
            energy = energy_fn(cur)
            if energy.shape != (cur.shape[0],):
                raise ValueError(f"energy_fn must return one energy per chain, shape ({cur.shape[0]},); "
                                 f"got {tuple(energy.shape)}")
            (g,) = torch.autograd.grad(energy.sum(), cur, create_graph=differentiable)
            if stats is not None:
                stats._grad(g, grad_clip)
            if grad_clip is not None:
                g = g.clamp(-grad_clip, grad_clip)   # A.7: per-value clip
            d = cur - step_size * g - x0
            if stats is not None:
                stats._move(d, bound)
            cur = x0 + d.clamp(-bound, bound)        # section 4.4: bounded deviation from the start
            if stats is not None:
                stats._range(cur)
            cur = cur.clamp(0, 1)
            if not differentiable:
                cur = cur.detach()
    return cur if differentiable else cur.detach()


def _class_batch(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """x repeated over the C classes, class-major ((C * N, ...): all images for class 0, then class 1, ...), and
    the matching labels."""
    c, n = _n_classes(model), x.shape[0]
    xs = x.unsqueeze(0).expand(c, *x.shape).reshape(c * n, *x.shape[1:])
    return xs, torch.arange(c, device=x.device).repeat_interleave(n)


def _class_chains_flat(model, x, n_steps, bound, kw) -> tuple[Tensor, Tensor]:
    xs, ys = _class_batch(model, x)
    with frozen(model):
        ends = bounded_langevin(lambda v: model(v, ys), xs, n_steps, bound, **kw)
    return ends, ys


def class_chains(model: nn.Module, x: Tensor, n_steps: int = 10, bound: float = 0.03, *,
                 step_size: float = 10.0, noise_std: float = 0.005, grad_clip: Optional[float] = 0.01,
                 generator: Optional[torch.Generator] = None, differentiable: bool = False,
                 stats: Optional[ChainStats] = None) -> Tensor:
    """Section 4.4's defence chains: for every label c, :func:`bounded_langevin` on E(., c) from ``x``.

    Returns the end states, shape (N, C, ...): ``out[i, c]`` is image i after ``n_steps`` on class c's energy
    alone. The C chains of a batch run as one (C * N)-image batch (class-major), so with a seeded ``generator``
    class c's chain sees the same noise whatever the other classes' energies are. No gradient reaches the
    model's parameters (it is :func:`~ebmlib.core.train.frozen` while sampling).
    """
    _check_images(x)
    kw = dict(step_size=step_size, noise_std=noise_std, grad_clip=grad_clip, generator=generator,
              differentiable=differentiable, stats=stats)
    ends, _ = _class_chains_flat(model, x, n_steps, bound, kw)
    c, n = _n_classes(model), x.shape[0]
    return ends.reshape(c, n, *x.shape[1:]).transpose(0, 1)


def defended_energies(model: nn.Module, x: Tensor, n_steps: int = 10, bound: float = 0.03, **kw) -> Tensor:
    """E(x_c, c), shape (N, C), where x_c is the end of class c's chain (:func:`class_chains`): each class's
    energy read at its own chain's end state, as section 4.4 classifies "using the lowest energy conditional
    class". ``kw`` goes to :func:`class_chains`; differentiable w.r.t. ``x`` when ``differentiable=True``."""
    _check_images(x)
    ends, ys = _class_chains_flat(model, x, n_steps, bound, kw)
    with frozen(model):
        e = model(ends, ys)
    c, n = _n_classes(model), x.shape[0]
    return e.reshape(c, n).t()


def marginal_defence(model: nn.Module, x: Tensor, n_steps: int = 10, bound: float = 0.03, **kw) -> Tensor:
    """NOT the paper's defence (a comparison): one :func:`bounded_langevin` chain per image on the marginal
    energy F(x) = -logsumexp_c(-E(x, c)); returns the end states (N, ...), which :func:`ebm_logits` then reads
    under every class. ``kw`` as for :func:`bounded_langevin`."""
    with frozen(model):
        return bounded_langevin(lambda v: marginal_energy(model, v), x, n_steps, bound, **kw)


DEFENCES = ("class", "marginal")


def defended_logits(model: nn.Module, n_steps: int = 10, bound: float = 0.03, *, seed: int = 0,
                    chains: str = "class", stats: Optional[ChainStats] = None, **kw) -> LogitsFn:
    """The defended classifier as a ``logits_fn`` for :func:`pgd` and :func:`transfer_curves`.

    ``chains="class"`` (the paper's, section 4.4): ``x -> -defended_energies(model, x, ...)``, one chain per
    label. ``chains="marginal"``: ``x -> ebm_logits(model, marginal_defence(model, x, ...))`` (comparison).
    The Langevin noise comes from a fresh generator seeded with ``seed`` on every call, so the same input always
    gives the same logits. The chain is built differentiably when gradients are enabled (inside :func:`pgd`)
    and detached otherwise (same values, less memory). ``kw``: ``step_size``, ``noise_std``, ``grad_clip``;
    ``stats`` (a :class:`ChainStats`) counts over every call.
    """
    n_steps = _count("n_steps", n_steps, 0)
    _number("bound", bound)
    if chains not in DEFENCES:
        raise ValueError(f"unknown defence chains {chains!r}; expected one of {DEFENCES}")
    bad = set(kw) - {"step_size", "noise_std", "grad_clip"}
    if bad:
        raise ValueError(f"unknown defence options {sorted(bad)}; allowed: step_size, noise_std, grad_clip")
    _n_classes(model)

    def logits_fn(x: Tensor) -> Tensor:
        gen = torch.Generator(device=x.device).manual_seed(seed)
        opts = dict(kw, generator=gen, differentiable=torch.is_grad_enabled(), stats=stats)
        if chains == "class":
            return -defended_energies(model, x, n_steps, bound, **opts)
        return ebm_logits(model, marginal_defence(model, x, n_steps, bound, **opts))

    return logits_fn


# -- Fig. 11: accuracy against eps --------------------------------------------------------------------------------
def transfer_curves(source_fn: LogitsFn, targets: Mapping[str, LogitsFn], x: Tensor, y: Tensor,
                    eps_list: Sequence[float], norm: str = "linf", steps: int = 20,
                    generator: Optional[torch.Generator] = None, batch_size: Optional[int] = None,
                    progress: bool = True, **pgd_kw) -> dict[str, Tensor]:
    """PGD crafted on ``source_fn``; every classifier in ``targets`` classifies those same examples.

    For each eps in ``eps_list`` and each chunk of ``batch_size`` images, :func:`pgd` attacks ``source_fn``
    (the only function differentiated); then each target's prediction on the adversarial images is checked,
    under ``torch.no_grad``. Put ``source_fn`` itself among the targets for the white-box accuracy.

    Returns {target name: bool tensor (len(eps_list), N)}: ``True`` where the target still classifies image i
    correctly at that eps (mean over dim 1 = accuracy). ``pgd_kw`` (``step_size``, ``random_start``) goes to
    :func:`pgd`; a tqdm bar runs over eps x batches (``progress=False`` hides it).
    """
    norm = _check_norm(norm)
    steps = _count("steps", steps, 1)
    eps_list = [_number("eps", e) for e in eps_list]
    if not targets:
        raise ValueError("targets is empty: name at least one classifier to evaluate")
    _check_images(x)
    _check_labels(y, x.shape[0])
    n = x.shape[0]
    bs = n if batch_size is None else _count("batch_size", batch_size, 1)
    chunks = [(x[i:i + bs], y[i:i + bs]) for i in range(0, n, bs)]
    correct = {name: torch.zeros(len(eps_list), n, dtype=torch.bool) for name in targets}
    with tqdm(total=len(eps_list) * len(chunks), desc=f"PGD {norm}", disable=not progress, leave=False) as bar:
        for k, eps in enumerate(eps_list):
            for i, (xb, yb) in zip(range(0, n, bs), chunks):
                x_adv = pgd(source_fn, xb, yb, eps, norm=norm, steps=steps, generator=generator, **pgd_kw)
                with torch.no_grad():
                    for name, fn in targets.items():
                        correct[name][k, i:i + len(yb)] = (fn(x_adv).argmax(1) == yb).cpu()
                bar.update(1)
    return correct


def robustness_curve(logits_fn: LogitsFn, x: Tensor, y: Tensor, eps_list: Sequence[float], norm: str = "linf",
                     steps: int = 20, generator: Optional[torch.Generator] = None, batch_size: Optional[int] = None,
                     progress: bool = True, **pgd_kw) -> list[float]:
    """White-box accuracy of ``logits_fn`` under :func:`pgd` at each eps in ``eps_list`` (eps=0: clean accuracy);
    :func:`transfer_curves` with ``logits_fn`` as both source and only target."""
    correct = transfer_curves(logits_fn, {"self": logits_fn}, x, y, eps_list, norm, steps, generator, batch_size,
                              progress, **pgd_kw)["self"]
    return (correct.sum(1).double() / x.shape[0]).tolist()


def worst_case(correct: Sequence[Tensor]) -> Tensor:
    """Per-image worst case over attacks: image i counts as correct at an eps only if every attack left it
    correct. ``correct``: bool tensors of one shape (E, N), one per attack on the same classifier and images."""
    if len(correct) == 0:
        raise ValueError("worst_case needs at least one attack's results")
    shapes = {tuple(c.shape) for c in correct}
    if len(shapes) != 1:
        raise ValueError(f"attack results must share one shape (eps, images); got {sorted(shapes)}")
    out = correct[0].clone()
    for c in correct[1:]:
        out &= c
    return out
