"""Section 4.1's historical ensemble: a model that keeps the weights of its last training snapshots, the chains
on which those snapshots take turns, and the evaluation sampler of the authors' code release.

* :class:`SnapshotEnergy`: an energy network that also stores up to ``n_keep`` weight snapshots in its state dict
  (so checkpoints, exact resume and rollbacks keep them consistent with training).
* :class:`SnapshotRecipe`: an :class:`~ebmlib.core.image_ebm.ImageEBMRecipe` whose model is a
  :class:`SnapshotEnergy` keeping ``ensemble`` snapshots ``ensemble_every`` iterations apart, the last at the end
  of training (the release: 10, 300 apart). A subclass says which network through :meth:`SnapshotRecipe.network`
  (chapter 04's CIFAR-10 ResNets, chapter 12's ImageNet ResNets).
* :func:`ensemble_chains` and :func:`evaluation_samples`: the snapshots take turns on the chains.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from ebmlib.core.image_ebm import ImageEBMRecipe
from ebmlib.core.restore import restore
from ebmlib.core.samplers import PaperLangevin

__all__ = ["SnapshotEnergy", "SnapshotRecipe", "ensemble_chains", "evaluation_samples"]


class SnapshotEnergy(nn.Module):
    """An energy network ``net`` that also holds the weights of up to ``n_keep`` of its training snapshots.

    ``forward`` is ``net``'s: the model is trained, sampled and scored as ``net`` is. The snapshots live in the
    module's state dict (a buffer of shape (n_keep, P), stored as ``dtype``: float16 halves the shipped files;
    each weight is then rounded to ~1e-3 relative), so checkpoints, an exact resume and the trainer's rollbacks
    keep them consistent with the trajectory the weights took. :meth:`members` rebuilds them as networks.
    """

    def __init__(self, net: nn.Module, n_keep: int, dtype: torch.dtype = torch.float16):
        super().__init__()
        self.net = net
        self.n_classes = getattr(net, "n_classes", None)
        self.input_shape = getattr(net, "input_shape", ())
        size = sum(v.numel() for v in net.state_dict().values() if v.is_floating_point())
        self.register_buffer("snapshots", torch.zeros(n_keep, size, dtype=dtype))
        self.register_buffer("snapshot_iterations", torch.full((n_keep,), -1, dtype=torch.int64))

    def forward(self, x: Tensor, y: Optional[Tensor] = None) -> Tensor:
        return self.net(x) if y is None else self.net(x, y)

    def keep(self, slot: int, iteration: int) -> None:
        """Store the current weights of ``net`` in ``slot``, taken at ``iteration``."""
        flat = torch.cat([v.detach().reshape(-1).float().cpu() for v in self.net.state_dict().values()
                          if v.is_floating_point()])
        self.snapshots[slot] = flat.to(self.snapshots.device, self.snapshots.dtype)
        self.snapshot_iterations[slot] = iteration

    def member(self, slot: int) -> nn.Module:
        """A copy of ``net`` (eval mode, float32) with the weights of ``slot``."""
        if int(self.snapshot_iterations[slot]) < 0:
            raise ValueError(f"snapshot slot {slot} is empty (the run kept iterations "
                             f"{self.snapshot_iterations.tolist()})")
        net = copy.deepcopy(self.net).eval()
        state, flat, at = net.state_dict(), self.snapshots[slot].float(), 0
        for k, v in state.items():
            if v.is_floating_point():
                state[k] = flat[at: at + v.numel()].view_as(v).to(v.dtype)
                at += v.numel()
        net.load_state_dict(state)
        return net

    def members(self) -> list[nn.Module]:
        """Every kept snapshot as a network, oldest first."""
        slots = [i for i in range(len(self.snapshot_iterations)) if int(self.snapshot_iterations[i]) >= 0]
        return [self.member(i) for i in sorted(slots, key=lambda i: int(self.snapshot_iterations[i]))]


@dataclass(frozen=True)
class SnapshotRecipe(ImageEBMRecipe):
    """An image-EBM recipe whose model keeps the weights of ``ensemble`` snapshots ``ensemble_every`` iterations
    apart, the last at the end of training (section 4.1; the release: 10, 300 apart). Subclasses give
    :meth:`network`."""

    ensemble: int = 10
    ensemble_every: int = 300
    ensemble_dtype: str = "float16"

    def ensemble_points(self) -> list[int]:
        """The iterations whose weights are kept, oldest first."""
        points = [self.n_iters - k * self.ensemble_every for k in reversed(range(self.ensemble))]
        if points and points[0] < 1:
            raise ValueError(f"recipe {self.name!r}: {self.ensemble} snapshots {self.ensemble_every} iterations apart "
                             f"need at least {(self.ensemble - 1) * self.ensemble_every + 1} iterations, "
                             f"it has {self.n_iters}")
        return points

    def network(self) -> nn.Module:
        """The energy network the recipe trains (without its snapshots)."""
        raise NotImplementedError

    def build(self) -> nn.Module:
        if self.ensemble_dtype not in ("float16", "float32"):
            raise ValueError(f"ensemble_dtype must be 'float16' or 'float32', got {self.ensemble_dtype!r}")
        self.ensemble_points()
        return SnapshotEnergy(self.network(), self.ensemble, getattr(torch, self.ensemble_dtype))

    def after_iteration(self, model: nn.Module, iteration: int) -> None:
        points = self.ensemble_points()
        if iteration in points:
            model.keep(points.index(iteration), iteration)


def ensemble_chains(members: Sequence[nn.Module], x0: Tensor, n_turns: int, steps_per_turn: int,
                    y: Optional[Tensor] = None, sampler=None, generator: Optional[torch.Generator] = None) -> Tensor:
    """Section 4.1's historical ensemble as the release runs it: the snapshots take turns on the chains, turn
    ``j`` running ``steps_per_turn`` Langevin steps under ``members[j % len(members)]`` (oldest first)."""
    if not members:
        raise ValueError("the ensemble has no members")
    x = x0
    for j in range(n_turns):
        x = restore(members[j % len(members)], x, steps_per_turn, y=y, sampler=sampler, generator=generator)
    return x


def _image_shape(member: nn.Module) -> tuple[int, ...]:
    shape = tuple(getattr(member, "input_shape", ()))
    return shape if len(shape) == 3 else (3, 32, 32)


def evaluation_samples(members: Sequence[nn.Module], n: int, spec: Mapping, conditional: bool,
                       generator: Optional[torch.Generator] = None,
                       n_classes: Optional[int] = None) -> tuple[Tensor, Optional[Tensor]]:
    """The evaluation sampler of the authors' code release (references.bib ``du2019implicit``; the paper's text does
    not describe it): chains from uniform noise in batches of
    ``spec["batch"]``, ``rounds`` rounds of ``steps`` Langevin steps (``step_size``, ``noise_std``, ``grad_clip``:
    10, 0.005, 0.05), after each round but the last ``settle`` a fraction ``reinit`` of the chains restarts from
    noise and (conditional models) a fraction ``relabel`` draws a new label. ``members`` take turns by round: one
    network is the single model, the snapshots are the historical ensemble. Images have the first member's
    ``input_shape`` (3 x 32 x 32 when it has none); labels are drawn from ``n_classes`` (default: the first
    member's ``n_classes``, else 10). Returns (n images, their labels)."""
    if not members:
        raise ValueError("the ensemble has no members")
    shape = _image_shape(members[0])
    k = n_classes or getattr(members[0], "n_classes", None) or 10
    sampler = PaperLangevin(spec["step_size"], spec["noise_std"], spec["grad_clip"])
    xs, ys = [], []
    for start in range(0, n, spec["batch"]):
        m = min(spec["batch"], n - start)
        x = torch.rand(m, *shape, generator=generator)
        y = torch.randint(k, (m,), generator=generator) if conditional else None
        for r in range(spec["rounds"]):
            x = restore(members[r % len(members)], x, spec["steps"], y=y, sampler=sampler, generator=generator)
            if r < spec["rounds"] - spec["settle"]:
                fresh = torch.rand(m, generator=generator) < spec["reinit"]
                x = torch.where(fresh[:, None, None, None], torch.rand(m, *shape, generator=generator), x)
                if y is not None:
                    flip = torch.rand(m, generator=generator) < spec["relabel"]
                    y = torch.where(flip, torch.randint(k, (m,), generator=generator), y)
        xs.append(x)
        ys.append(y)
    return torch.cat(xs), (torch.cat(ys) if conditional else None)
