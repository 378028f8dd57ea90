"""What a paper-scale training run costs, said before it starts: FLOPs per image and per iteration of a recipe's
network (counted by ``torch.utils.flop_counter``), and the GPU-hours they come to, from a rate the engine's
benchmark measured (``python -m ebmlib bench resnet``) or, labelled as such, from the FLOPs at an assumed rate.

Chapters 04 (CIFAR-10) and 12 (ImageNet) print :func:`gpu_hours_line` for each paper model before anything trains.
"""
from __future__ import annotations

from typing import Mapping, Optional

import torch

__all__ = ["network_flops", "flop_count", "gpu_hours", "model_costs", "gpu_hours_line"]


def network_flops(model, conditional: bool) -> dict:
    """FLOPs per image of energy network ``model``, counted by ``torch.utils.flop_counter.FlopCounterMode`` on one
    image of its ``input_shape`` (exact for the convolutions and matrix products, which are nearly all of it): a
    forward pass, a Langevin step (forward + gradient with respect to the image) and a training pass (forward +
    backward to the parameters)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = model.eval()
    x = torch.rand(1, *model.input_shape)
    y = torch.zeros(1, dtype=torch.int64) if conditional else None
    call = (lambda z: model(z)) if y is None else (lambda z: model(z, y))
    counts = {}
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        call(x)
    counts["forward"] = fc.get_total_flops()
    for p in model.parameters():
        p.requires_grad_(False)
    xg = x.clone().requires_grad_(True)
    with FlopCounterMode(display=False) as fc:   # backward() to the image (FlopCounterMode refuses autograd.grad)
        call(xg).sum().backward()
    counts["langevin_step"] = fc.get_total_flops()
    for p in model.parameters():
        p.requires_grad_(True)
    with FlopCounterMode(display=False) as fc:
        call(x).sum().backward()
    counts["train_pass"] = fc.get_total_flops()
    model.zero_grad(set_to_none=True)
    return counts


def flop_count(recipe) -> dict:
    """:func:`network_flops` of the recipe's network, and per training iteration: batch x (K Langevin steps + 2
    training passes, data and negative), ``batch`` being the recipe's per-process batch (one GPU's share), and in
    all (``n_iters`` iterations)."""
    model = recipe.build()
    counts = network_flops(getattr(model, "net", model), recipe.conditional)
    c = recipe.config()
    counts["per_iteration"] = c.batch_size * (c.n_steps * counts["langevin_step"] + 2 * counts["train_pass"])
    counts["total"] = counts["per_iteration"] * recipe.n_iters
    return counts


def gpu_hours(recipe, iterations_per_second: Optional[float] = None, flops_per_s: float = 495e12,
              utilisation: float = 0.3, gpus: int = 1) -> dict:
    """Expected GPU-hours of training ``recipe`` on ``gpus`` GPUs, each running the recipe's per-process batch.

    ``iterations_per_second``: the rate of one GPU measured by the engine's benchmark on the GPU at hand
    (``python -m ebmlib bench resnet``, when it exists); the estimate is then ``gpus x n_iters / rate`` (perfect
    data-parallel scaling: each GPU runs its own iterations' batch; the all-reduce is not counted). Without it, an
    explicitly labelled **FLOP-based estimate**: :func:`flop_count`'s total times ``gpus`` over an assumed sustained
    rate ``flops_per_s x utilisation`` (defaults: an H100 SXM's dense TF32 peak, 495 TFLOP/s, at 30% utilisation;
    both assumptions, not measurements). ``wall_hours`` is ``hours / gpus``."""
    if not (isinstance(gpus, int) and gpus >= 1):
        raise ValueError(f"gpus must be a positive int, got {gpus!r}")
    if iterations_per_second is not None:
        if not iterations_per_second > 0:
            raise ValueError(f"iterations_per_second must be > 0, got {iterations_per_second!r}")
        hours = gpus * recipe.n_iters / iterations_per_second / 3600
        return {"hours": hours, "wall_hours": hours / gpus, "gpus": gpus, "basis": "measured",
                "iterations_per_second": iterations_per_second}
    if not (flops_per_s > 0 and 0 < utilisation <= 1):
        raise ValueError(f"need flops_per_s > 0 and utilisation in (0, 1], got {flops_per_s!r}, {utilisation!r}")
    counts = flop_count(recipe)
    hours = gpus * counts["total"] / (flops_per_s * utilisation) / 3600
    return {"hours": hours, "wall_hours": hours / gpus, "gpus": gpus, "basis": "FLOP estimate", "flops": counts,
            "flops_per_s": flops_per_s, "utilisation": utilisation}


def model_costs(recipes: Mapping, rate, flops_per_s: float, utilisation: float, gpus: int = 1) -> dict:
    """:func:`gpu_hours` of every recipe (name -> recipe): ``rate`` is a measured iterations-per-second per model
    name (a mapping), one number for all, or None (the FLOP estimate). Returns {name: (recipe, estimate)}."""
    return {name: (recipe, gpu_hours(recipe, rate.get(name) if isinstance(rate, Mapping) else rate, flops_per_s,
                                     utilisation, gpus=gpus)) for name, recipe in recipes.items()}


def gpu_hours_line(name: str, recipe, est: Mapping) -> str:
    """One line of the paper run's cost, saying what it rests on."""
    c = recipe.config()
    gpus = est.get("gpus", 1)
    per = f"batch {c.batch_size}" + (f" per GPU on {gpus} GPUs" if gpus > 1 else "")
    what = (f"{name}: {recipe.n_iters:,} iterations x {per} x (K = {c.n_steps} Langevin steps + 2 "
            f"training passes), width {recipe.width}")
    wall = f", {est['wall_hours']:.1f} h wall-clock" if gpus > 1 else ""
    if est["basis"] == "measured":
        return (f"{what}: {est['hours']:.1f} GPU-hours{wall} at the measured {est['iterations_per_second']:.2f} it/s "
                "per GPU")
    f = est["flops"]
    return (f"{what}: {f['forward'] / 1e9:.2f} GFLOP per forward pass, {f['langevin_step'] / 1e9:.2f} per Langevin "
            f"step, {gpus * f['total'] / 1e18:.2f} EFLOP in all: **{est['hours']:.1f} GPU-hours{wall} (FLOP estimate, "
            f"assuming {est['flops_per_s'] / 1e12:.0f} TFLOP/s at {est['utilisation']:.0%} utilisation; not measured)**")
