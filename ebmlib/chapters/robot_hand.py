"""EBMs as dynamics models of the Shadow hand and cube (Du & Mordatch 2019, section 5, Fig. 12 and 13).

A dynamics model predicts the next state ``s_{t+1}`` (31 numbers: 24 joint angles, cube position and
quaternion; see :mod:`ebmlib.data.hand`) from the current one ``s_t``, and in the *action-conditional* setting
also from the action ``a_t``. Two kinds are compared, both 3 hidden layers of 128 units (section 5.1):

* the **EBM** ``E(s_t, s_{t+1})`` or ``E(s_t, a_t, s_{t+1})`` (:class:`TransitionEnergy`), trained with
  Algorithm 1 (contrastive divergence + L2 energy term) with 10 Langevin steps per negative (A.7), and
  predicting by Langevin sampling of ``s_{t+1}`` with ``s_t`` (and ``a_t``) held fixed: a *sample* of the next
  state, so two roll-outs from one start state can differ (Fig. 13);
* the **FC baseline** (:class:`FCDynamics`), a feed-forward network with spectral normalisation on its hidden
  layers "to prevent multi-step explosion" (section 5.1), trained by mean squared error: one deterministic
  prediction, the conditional mean.

**Coordinates.** Both models work in normalised units fitted on the training set (:class:`Normaliser`): the
conditioning state is ``(s_t - mean) / std`` and the predicted quantity is the normalised displacement
``z = (s_{t+1} - s_t) / delta_std``. This is an invertible change of variables (``s_{t+1} = s_t + delta_std z``),
so the EBM is still an energy of ``(s_t, s_{t+1})``, but one step's small change is not drowned by the spread of
states across trajectories, and the Langevin settings of A.7 act on numbers of order one.

**Langevin negatives.** Each negative chain starts from ``N(0, init_std^2)`` in ``z`` (the marginal of one
step's displacement has unit variance per coordinate in these units) and takes ``n_steps`` steps of
:class:`~ebmlib.core.samplers.PaperLangevin` on ``E(z | s_t [, a_t])``. Prediction runs the very same chain, so
the model is trained for the sampler it is used with (short-run sampling); the random start is what makes its
predictions diverse. The paper does not say how its chains were initialised: this is our choice.

**Models by recipe.** Each model (of each training run) is a :class:`DynamicsRecipe` (kind, conditioning, iterations,
batch, learning rate, sampler, width, seed, and a description of the training data with a fingerprint of its
arrays), loaded or trained through :func:`ebmlib.core.recipes.load_or_train_all` by :func:`train_models`; the
saved :class:`DynamicsModel` holds the network *and* the normaliser fitted on that training data.

**Evaluation.** The test trajectories are cut into two disjoint halves of equal size (:func:`split_halves`).
:func:`rollout` starts every model from the first states of half A and feeds each prediction back as the next
input for many steps (the action-conditional models get half A's recorded actions). :func:`frechet_curve` fits a
Gaussian to all predicted states and to all true states of half **B** at each time step and takes their Frechet
distance (:func:`ebmlib.core.metrics.frechet_distance`, section 5.1). The same distance between the true states
of half A and of half B is the **floor** (:func:`frechet_floor`): what a perfect model, whose roll-outs are new
draws of the true process, would score at this sample size. The floor covers the evaluation's sampling noise,
not the spread between training runs, so every model is trained ``train_seeds`` times (:func:`recipes`), and
:func:`verdict` calls one kind better only when every run of it is lower than every run of the other by more
than the floor. :func:`mse_curve` is the multi-step MSE the paper found insufficient (paired with half A's own
true states).

**Settings chosen on a validation split.** :func:`prepare_data` holds ``val_fraction`` of the training
trajectories out and halves them as it halves the test set; :func:`tune` trains every candidate of the preset's
grid (:func:`tuning_grid`) once, with :data:`TUNING_SEED`, scores it on the validation halves as the test halves
score the final models, and keeps the lowest per model; :func:`train_models` then trains the chosen settings
``train_seeds`` times with the test runs' own seeds. The test split is read by the evaluation alone.
"""
from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ebmlib.core.distributed import World
from ebmlib.core.metrics import gaussian_frechet
from ebmlib.core.nets import MLPEnergy, activation, maybe_spectral_norm
from ebmlib.core.recipes import Fit, Recipe, Trained, load_or_train_all
from ebmlib.core.samplers import PaperLangevin, draw_random
from ebmlib.core.train import TrainConfig, Trainer, frozen
from ebmlib.data import hand
from ebmlib.notebook.launch import train_in_processes

__all__ = [
    "STATE_DIM", "ACTION_DIM", "SETTINGS", "KINDS", "MODEL_NAMES", "PAPER_FRECHET", "paper_rows",
    "Normaliser", "SamplingConfig", "TransitionEnergy", "FCDynamics", "TransitionTrainer", "DynamicsModel",
    "DynamicsRecipe", "HandData", "Evaluation",
    "transition_tensors", "rollout", "frechet_curve", "mse_curve", "frechet_floor", "split_halves",
    "load_or_generate", "prepare_data", "data_fingerprint", "data_description", "recipes", "train_models",
    "TUNABLE", "TUNING_SEED", "Tuning", "tuning_grid", "candidate_label", "tuning_recipes", "tune",
    "tuning_table", "tuning_sentence",
    "model_name", "models_by_key", "model_runs", "one_step_errors", "evaluate", "evaluate_runs", "run_averages",
    "average", "motion_per_step", "paired_mse_gap",
    "fig13_rollouts", "sample_gap", "gap_sentence", "verdict", "verdicts", "mse_sentence", "summary",
    "data_metrics", "data_table", "settings_table", "origin_table", "one_step_table", "frechet_table",
    "mse_table", "evaluation_metrics", "STATE_PARTS", "action_determinism", "determinism_table",
    "determinism_sentence",
    "trajectory_figure", "training_figure", "frechet_figure", "mse_figure", "frames_figure", "render_rows",
    "try_render",
]

STATE_DIM = 31   # 24 joint angles + cube position (3) + cube quaternion (4); ebmlib.data.hand
ACTION_DIM = 20  # position-actuator targets in [-1, 1]

#: the two settings of section 5.2 and whether the model sees the action
SETTINGS = (("unconditional", False), ("conditional", True))
#: the two kinds of model of section 5.1
KINDS = ("EBM", "FC")
#: (kind, setting) -> the name of the first training run's recipe (its checkpoint is ``<name>.pt``)
MODEL_NAMES = {("EBM", "unconditional"): "hand_ebm_uncond", ("FC", "unconditional"): "hand_fc_uncond",
               ("EBM", "conditional"): "hand_ebm_cond", ("FC", "conditional"): "hand_fc_cond"}
#: section 5.2: average Frechet distance over the roll-out's time steps
PAPER_FRECHET = {("EBM", "unconditional"): 5.96, ("FC", "unconditional"): 33.28,
                 ("EBM", "conditional"): 8.97, ("FC", "conditional"): 19.75}


def _as_tensor(a, name: str, last: int) -> Tensor:
    t = torch.as_tensor(np.asarray(a) if not torch.is_tensor(a) else a, dtype=torch.float32)
    if t.ndim < 1 or t.shape[-1] != last:
        raise ValueError(f"{name} must have a last dimension of {last}, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return t


def _numpy(a) -> np.ndarray:
    return np.asarray(a.detach().cpu() if torch.is_tensor(a) else a, dtype=np.float64)


# ---------------------------------------------------------------------------------------------------- units
class Normaliser(nn.Module):
    """Per-coordinate state mean / std and displacement std, fitted on training trajectories.

    ``std`` and ``delta_std`` are floored at ``min_std`` so a coordinate that barely moves cannot blow up.
    """

    def __init__(self, mean: Tensor, std: Tensor, delta_std: Tensor):
        super().__init__()
        for name, t in (("mean", mean), ("std", std), ("delta_std", delta_std)):
            if t.shape != (STATE_DIM,):
                raise ValueError(f"{name} must have shape ({STATE_DIM},), got {tuple(t.shape)}")
        if not ((std > 0).all() and (delta_std > 0).all()):
            raise ValueError("std and delta_std must be positive")
        self.register_buffer("mean", mean.float().clone())
        self.register_buffer("std", std.float().clone())
        self.register_buffer("delta_std", delta_std.float().clone())

    @classmethod
    def identity(cls) -> "Normaliser":
        """Mean 0, std 1: the placeholder an untrained model is built with (fitting sets the real values)."""
        return cls(torch.zeros(STATE_DIM), torch.ones(STATE_DIM), torch.ones(STATE_DIM))

    @classmethod
    def fit(cls, states, min_std: float = 1e-4) -> "Normaliser":
        """Fit on training ``states`` of shape ``(n, length + 1, 31)``."""
        s = _as_tensor(states, "states", STATE_DIM).double()
        if s.ndim != 3 or s.shape[1] < 2:
            raise ValueError(f"states must have shape (n, length + 1, {STATE_DIM}) with length >= 1, "
                             f"got {tuple(s.shape)}")
        flat = s.reshape(-1, STATE_DIM)
        delta = (s[:, 1:] - s[:, :-1]).reshape(-1, STATE_DIM)
        return cls(flat.mean(0), flat.std(0).clamp_min(min_std), delta.pow(2).mean(0).sqrt().clamp_min(min_std))

    def state(self, s: Tensor) -> Tensor:
        return (s - self.mean) / self.std

    def displacement(self, s: Tensor, s_next: Tensor) -> Tensor:
        return (s_next - s) / self.delta_std

    def next_state(self, s: Tensor, z: Tensor) -> Tensor:
        return s + z * self.delta_std


def _context(norm: Normaliser, s: Tensor, a: Optional[Tensor]) -> Tensor:
    """What the model conditions on: the normalised state, followed by the action if there is one."""
    c = norm.state(s)
    return c if a is None else torch.cat([c, a], -1)


def transition_tensors(data: Dict[str, Any], norm: Normaliser, conditional: bool) -> tuple[Tensor, Tensor]:
    """All transitions of ``data`` as ``(z, context)``: normalised displacements (n*L, 31) and the
    conditioning (n*L, 31 [+ 20])."""
    states = _as_tensor(data["states"], "states", STATE_DIM)
    actions = _as_tensor(data["actions"], "actions", ACTION_DIM) if conditional else None
    s, s_next = states[:, :-1].reshape(-1, STATE_DIM), states[:, 1:].reshape(-1, STATE_DIM)
    a = actions.reshape(-1, ACTION_DIM) if actions is not None else None
    with torch.no_grad():
        return norm.displacement(s, s_next), _context(norm, s, a)


# ---------------------------------------------------------------------------------------------------- networks
class TransitionEnergy(nn.Module):
    """``E(z | c)``: the energy of a normalised next-state displacement ``z`` (N, 31) given the context ``c``
    (N, 31) or (N, 51) = normalised ``s_t`` [and ``a_t``]; an MLP on ``[c, z]`` (3 x 128, swish, spectral norm
    on the hidden layers as in the paper's networks, A.7) returning (N,)."""

    def __init__(self, conditional: bool, hidden: int = 128, depth: int = 3, act: str = "swish",
                 spectral_norm: bool = True):
        super().__init__()
        self.conditional, self.hidden = bool(conditional), int(hidden)
        self.context_dim = STATE_DIM + (ACTION_DIM if conditional else 0)
        self.net = MLPEnergy(self.context_dim + STATE_DIM, hidden, depth, act, spectral_norm)

    def forward(self, z: Tensor, context: Tensor) -> Tensor:
        if z.ndim != 2 or z.shape[1] != STATE_DIM:
            raise ValueError(f"z must have shape (N, {STATE_DIM}), got {tuple(z.shape)}")
        if context.shape != (z.shape[0], self.context_dim):
            raise ValueError(f"context must have shape ({z.shape[0]}, {self.context_dim}) "
                             f"({'state + action' if self.conditional else 'state only'}), "
                             f"got {tuple(context.shape)}")
        return self.net(torch.cat([context, z], -1))


class FCDynamics(nn.Module):
    """The feed-forward baseline of section 5.1: context -> 3 x 128 (swish) -> the normalised displacement
    ``z`` (N, 31). Spectral normalisation on the hidden layers bounds their Lipschitz constant and so the growth
    of errors fed back over a roll-out ("to prevent multi-step explosion"); the output layer is left free, as in
    the energy networks (:class:`ebmlib.core.nets.MLPEnergy`), because a network of 1-Lipschitz layers only
    cannot represent the gain from an action to its displacement (in these units about 2)."""

    def __init__(self, conditional: bool, hidden: int = 128, depth: int = 3, act: str = "swish",
                 spectral_norm: bool = True):
        super().__init__()
        if hidden < 1 or depth < 1:
            raise ValueError(f"need hidden, depth >= 1; got {hidden}, {depth}")
        self.conditional, self.hidden = bool(conditional), int(hidden)
        self.context_dim = STATE_DIM + (ACTION_DIM if conditional else 0)
        dims = [self.context_dim] + [hidden] * depth
        layers = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [maybe_spectral_norm(nn.Linear(a, b), spectral_norm), activation(act)]
        self.net = nn.Sequential(*layers, nn.Linear(hidden, STATE_DIM))

    def forward(self, context: Tensor) -> Tensor:
        if context.ndim != 2 or context.shape[1] != self.context_dim:
            raise ValueError(f"context must have shape (N, {self.context_dim}), got {tuple(context.shape)}")
        return self.net(context)


# ---------------------------------------------------------------------------------------------------- models
@dataclass
class SamplingConfig:
    """How the EBM draws ``z`` (A.7 for the robot: 10 steps, otherwise the image settings)."""

    n_steps: int = 10
    step_size: float = 10.0
    noise_std: float = 0.005
    grad_clip: Optional[float] = 0.01
    init_std: float = 1.0

    def __post_init__(self):
        if not isinstance(self.n_steps, int) or self.n_steps < 0:
            raise ValueError(f"n_steps must be an int >= 0, got {self.n_steps!r}")
        if not self.init_std >= 0:
            raise ValueError(f"init_std must be >= 0, got {self.init_std!r}")

    def sampler(self) -> PaperLangevin:
        return PaperLangevin(self.step_size, self.noise_std, self.grad_clip)


class DynamicsModel(nn.Module):
    """A network with the normaliser of its training data (both saved in its ``state_dict``): ``predict`` one
    step, :func:`rollout` many (EBM or FC alike). Computes on the device its weights are on; returns states on
    the device of the input."""

    def __init__(self, net: nn.Module, norm: Normaliser, sampling: Optional[SamplingConfig] = None):
        super().__init__()
        if not isinstance(net, (TransitionEnergy, FCDynamics)):
            raise TypeError(f"net must be a TransitionEnergy or FCDynamics, got {type(net).__name__}")
        if not isinstance(norm, Normaliser):
            raise TypeError(f"norm must be a Normaliser, got {type(norm).__name__}")
        self.net, self.norm = net, norm
        self.kind = "ebm" if isinstance(net, TransitionEnergy) else "fc"
        self.conditional = net.conditional
        self.sampling = sampling if sampling is not None else SamplingConfig()

    def extra_repr(self) -> str:
        return f"{self.kind}, {'action-conditional' if self.conditional else 'unconditional'}"

    def predict(self, s: Tensor, a: Optional[Tensor] = None, generator: Optional[torch.Generator] = None) -> Tensor:
        """``s_{t+1}`` (N, 31) from ``s_t`` (N, 31) [and ``a_t`` (N, 20)]: the FC's output, or one Langevin
        sample of the EBM started from ``N(0, init_std^2)`` (drawn with ``generator``)."""
        s = _as_tensor(s, "s", STATE_DIM)
        if self.conditional and a is None:
            raise ValueError("an action-conditional model needs the actions a")
        if not self.conditional and a is not None:
            raise ValueError("an unconditional model takes no actions")
        a = _as_tensor(a, "a", ACTION_DIM) if a is not None else None
        where, dev = s.device, self.norm.mean.device
        s_dev = s.to(dev)
        context = _context(self.norm, s_dev, a.to(dev) if a is not None else None)
        if self.kind == "fc":
            with torch.no_grad():
                z = self.net(context)
        else:
            cfg = self.sampling
            z0 = cfg.init_std * draw_random(torch.randn, s.shape, generator, torch.float32, dev)
            with frozen(self.net):
                z = cfg.sampler().run(self.net, z0, cfg.n_steps, y=context, generator=generator).x
        with torch.no_grad():
            return self.norm.next_state(s_dev, z).to(where)


def rollout(model: DynamicsModel, s0, horizon: int, actions=None, generator: Optional[torch.Generator] = None,
            progress: bool = False) -> Tensor:
    """Feed ``model``'s predictions back for ``horizon`` steps from start states ``s0`` (N, 31).

    ``actions`` (N, >= horizon, 20) are required by action-conditional models (the recorded test actions) and
    refused by unconditional ones. Returns ``(N, horizon + 1, 31)``, the start states first.
    """
    if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 0:
        raise ValueError(f"horizon must be an int >= 0, got {horizon!r}")
    s = _as_tensor(s0, "s0", STATE_DIM)
    if s.ndim != 2:
        raise ValueError(f"s0 must have shape (N, {STATE_DIM}), got {tuple(s.shape)}")
    if model.conditional:
        if actions is None:
            raise ValueError("an action-conditional model needs actions of shape (N, horizon, 20)")
        actions = _as_tensor(actions, "actions", ACTION_DIM)
        if actions.ndim != 3 or actions.shape[0] != s.shape[0] or actions.shape[1] < horizon:
            raise ValueError(f"actions must have shape ({s.shape[0]}, >= {horizon}, {ACTION_DIM}), "
                             f"got {tuple(actions.shape)}")
    elif actions is not None:
        raise ValueError("an unconditional model takes no actions")
    out = [s]
    for t in tqdm(range(horizon), disable=not progress, desc=f"roll-out {model.kind}", leave=False):
        s = model.predict(s, actions[:, t] if model.conditional else None, generator)
        out.append(s)
    return torch.stack(out, 1)


# ---------------------------------------------------------------------------------------------------- training
class TransitionTrainer(Trainer):
    """Algorithm 1 on ``E(z | context)`` (:class:`ebmlib.core.train.Trainer`: Adam(beta1=0), A.7's gradient
    clip, divergence guard), with the negatives' chains started from ``N(0, init_std^2)`` instead of the replay
    buffer: a replayed ``z`` belongs to another context, and prediction starts from noise too."""

    def __init__(self, model: TransitionEnergy, z: Tensor, context: Tensor, config: TrainConfig,
                 init_std: float = 1.0, **kwargs):
        super().__init__(model, (z, context), config, **kwargs)
        self.init_std = float(init_std)

    def initial_states(self, n: int) -> Tensor:
        return self.init_std * torch.randn((n, *self.sample_shape), generator=self.generator)


@dataclass(frozen=True)
class DynamicsRecipe(Recipe):
    """One dynamics model of the chapter: everything its training depends on.

    ``kind`` "ebm" (Algorithm 1 with ``sampling``'s Langevin chains, L2 coefficient ``alpha``) or "fc" (mean
    squared error; ``sampling`` must be empty). ``data`` describes the training trajectories (sizes, seeds and a
    fingerprint of the arrays, :func:`data_description`), so a checkpoint fitted on other data never matches.
    Defaults are A.7's: batch 128, Adam(0, 0.999) at 1e-4, 3 x 128 hidden units (section 5.1).
    """

    name: str
    kind: str = "ebm"
    conditional: bool = False
    n_iters: int = 1000
    batch_size: int = 128
    lr: float = 1e-4
    hidden: int = 128
    alpha: float = 1.0
    sampling: dict = field(default_factory=dict)
    seed: int = 1
    data: dict = field(default_factory=dict)

    def __post_init__(self):
        where = f"recipe {self.name!r}"
        if self.kind not in ("ebm", "fc"):
            raise ValueError(f"{where}: kind must be 'ebm' or 'fc', got {self.kind!r}")
        for key, low in (("n_iters", 0), ("batch_size", 1), ("hidden", 1), ("seed", 0)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{where}: {key} must be an int >= {low}, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"{where}: lr must be > 0, got {self.lr!r}")
        if self.kind == "fc" and self.sampling:
            raise ValueError(f"{where}: an FC model does not sample; sampling must be empty, got {self.sampling}")
        if self.kind == "ebm":
            SamplingConfig(**self.sampling)      # a bad sampler setting fails here, with its name

    def seeded(self) -> int:
        return self.seed

    def distributes(self) -> bool:
        """An EBM trains on several processes together (:class:`~ebmlib.core.train.Trainer` with a world); the FC
        baseline is fitted by each process alone."""
        return self.kind == "ebm"

    def sampling_config(self) -> Optional[SamplingConfig]:
        return SamplingConfig(**self.sampling) if self.kind == "ebm" else None

    def build(self) -> DynamicsModel:
        net_cls = TransitionEnergy if self.kind == "ebm" else FCDynamics
        return DynamicsModel(net_cls(self.conditional, hidden=self.hidden), Normaliser.identity(),
                             self.sampling_config())

    def fit(self, model: nn.Module, *, device: torch.device, progress: bool, run_dir: Optional[Path],
            data: Dict[str, Any], norm: Normaliser, world: Optional[World] = None) -> Fit:
        """Train ``model`` on the training trajectories ``data`` in the units of ``norm`` (fitted on ``data``,
        copied into the model). An EBM run resumes from ``run_dir`` when interrupted; ``world``: the processes
        training an EBM together."""
        if not isinstance(norm, Normaliser):
            raise TypeError(f"recipe {self.name!r}: norm must be a Normaliser, got {type(norm).__name__}")
        model.norm.load_state_dict(norm.state_dict())
        z, context = transition_tensors(data, norm, self.conditional)
        if self.kind == "fc":
            return Fit(self._fit_fc(model.net, z.to(device), context.to(device), progress))
        s = self.sampling_config()
        cfg = TrainConfig(batch_size=self.batch_size, n_steps=s.n_steps, step_size=s.step_size,
                          noise_std=s.noise_std, grad_clip=s.grad_clip, clamp_chains=False, init="noise",
                          buffer_capacity=self.batch_size, alpha=self.alpha, lr=self.lr, seed=self.seed,
                          checkpoint_every=100)
        trainer = TransitionTrainer(model.net, z, context, cfg, init_std=s.init_std, device=device,
                                    ckpt_dir=run_dir, world=world)
        trainer.resume_if_any()
        trainer.train(self.n_iters - trainer.iteration, progress=progress)
        return Fit(list(trainer.history))

    def _fit_fc(self, net: FCDynamics, z: Tensor, context: Tensor, progress: bool) -> list:
        """Mean squared error on the normalised displacement, Adam at ``lr``, batches drawn with the seed."""
        gen = torch.Generator().manual_seed(self.seed)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        history = []
        for it in tqdm(range(self.n_iters), disable=not progress, desc="train FC", leave=False):
            idx = torch.randint(z.shape[0], (self.batch_size,), generator=gen).to(z.device)
            loss = (net(context[idx]) - z[idx]).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history.append({"iteration": it + 1, "loss": loss.item()})
        return history


# ---------------------------------------------------------------------------------------------------- metrics
def _check_pair(pred, truth) -> tuple[np.ndarray, np.ndarray]:
    p, t = _numpy(pred), _numpy(truth)
    if p.ndim != 3 or p.shape[0] < 2 or p.shape[2] != STATE_DIM:
        raise ValueError(f"predictions must have shape (N >= 2, T, {STATE_DIM}), got {p.shape}")
    if t.ndim != 3 or t.shape[0] < 2 or t.shape[1:] != p.shape[1:]:
        raise ValueError(f"true states must have shape (M >= 2, {p.shape[1]}, {STATE_DIM}) like the "
                         f"predictions {p.shape}, got {t.shape}")
    return p, t


def frechet_curve(pred, truth, norm: Optional[Normaliser] = None) -> np.ndarray:
    """Section 5.1: at each time step t, the Frechet distance between Gaussians fitted to all predicted states
    ``pred[:, t]`` and all true states ``truth[:, t]`` (N, T, 31 each). With ``norm`` the states are first put
    in normalised units (each coordinate's training spread = 1); without, in raw units (rad, m, quaternion)."""
    p, t = _check_pair(pred, truth)
    if norm is not None:
        mean, std = norm.mean.detach().cpu().double().numpy(), norm.std.detach().cpu().double().numpy()
        p, t = (p - mean) / std, (t - mean) / std
    return np.array([gaussian_frechet(p[:, k], t[:, k]) for k in range(p.shape[1])])


def frechet_floor(truth_a, truth_b, norm: Optional[Normaliser] = None) -> np.ndarray:
    """The truth-against-truth floor: :func:`frechet_curve` between two *disjoint* sets of true trajectories of
    the same size (N, T, 31 each). A perfect model's roll-outs are new draws of the true process, so scored
    against one set they land, on average, at this curve: a distance below it is sampling noise, not skill.
    Refuses sets of different sizes (the floor depends on the sample size) and sets sharing a trajectory."""
    a, b = _check_pair(truth_a, truth_b)
    if a.shape != b.shape:
        raise ValueError(f"the floor compares two sets of the same size, got {a.shape[0]} and {b.shape[0]} "
                         f"trajectories")
    shared = {r.tobytes() for r in a.reshape(a.shape[0], -1)} & {r.tobytes() for r in b.reshape(b.shape[0], -1)}
    if shared:
        raise ValueError(f"the two truth sets must be disjoint; {len(shared)} trajectories are in both")
    return frechet_curve(a, b, norm)


def mse_curve(pred, truth, norm: Optional[Normaliser] = None) -> np.ndarray:
    """Multi-step mean squared error per time step, averaged over trajectories and coordinates (pred and truth
    paired trajectory by trajectory), in normalised units if ``norm`` is given."""
    return _mse_per_trajectory(pred, truth, norm).mean(axis=0)


def _mse_per_trajectory(pred, truth, norm: Optional[Normaliser]) -> np.ndarray:
    p, t = _check_pair(pred, truth)
    if p.shape[0] != t.shape[0]:
        raise ValueError(f"MSE pairs predictions with their own trajectories: {p.shape[0]} vs {t.shape[0]}")
    if norm is not None:
        std = norm.std.detach().cpu().double().numpy()
        p, t = p / std, t / std
    return ((p - t) ** 2).mean(axis=2)       # (N, T)


def paired_mse_gap(pred_a, pred_b, truth, norm: Optional[Normaliser] = None) -> tuple[float, float]:
    """Average multi-step MSE of ``pred_a`` minus that of ``pred_b`` (steps 1 onwards, both paired with
    ``truth``), and the standard error of that difference over trajectories."""
    ea = _mse_per_trajectory(pred_a, truth, norm)[:, 1:].mean(1)
    eb = _mse_per_trajectory(pred_b, truth, norm)[:, 1:].mean(1)
    d = ea - eb
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))


def average(curve) -> float:
    """A curve's average over the roll-out's steps 1..T (step 0 holds the start states)."""
    c = np.asarray(curve, dtype=np.float64)
    if c.ndim != 1 or len(c) < 2:
        raise ValueError(f"a curve needs steps 0..T with T >= 1, got shape {c.shape}")
    return float(c[1:].mean())


def motion_per_step(traj, norm: Normaliser) -> float:
    """Average size of one step, ``|s_{t+1} - s_t|`` in normalised units, over trajectories (N, T, 31)."""
    t = _as_tensor(traj, "traj", STATE_DIM)
    if t.ndim != 3 or t.shape[1] < 2:
        raise ValueError(f"traj must have shape (N, T >= 2, {STATE_DIM}), got {tuple(t.shape)}")
    with torch.no_grad():
        return float((norm.state(t[:, 1:]) - norm.state(t[:, :-1])).norm(dim=-1).mean())


# ---------------------------------------------------------------------------------------------------- data
def load_or_generate(n_traj: int, seed: int = 0, length: int = 100, workers: int = 1,
                     root: Optional[str | os.PathLike] = None, progress: bool = True) -> tuple[Dict[str, Any], str]:
    """The hand data set of ``n_traj`` trajectories: loaded from ``hand.default_path`` if it is there, else
    generated and saved there. Returns the data and ``"loaded <file>"`` or ``"generated <file>"`` (the file's
    name under the data root's ``hand/`` folder: the page shows no path of the machine that ran it)."""
    path = hand.default_path(n_traj, seed, length, root)
    if path.is_file():
        return hand.load_trajectories(path), f"loaded hand/{path.name} from the data root"
    data = hand.generate_trajectories(n_traj, seed=seed, length=length, workers=workers, progress=progress)
    hand.save_trajectories(path, data)
    return data, f"generated hand/{path.name} under the data root"


def split_halves(data: Dict[str, Any], seed: int = 1) -> tuple[Dict[str, Any], Dict[str, Any]]:
    """Two disjoint halves of equal size of the trajectories in ``data`` (random, by ``seed``; with an odd count
    one trajectory is left out). Entries that are not per trajectory are copied to both."""
    n = len(data["states"])
    if n < 4:
        raise ValueError(f"two halves of at least 2 trajectories need at least 4 test trajectories, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    idx = (np.sort(order[: n // 2]), np.sort(order[n // 2: 2 * (n // 2)]))
    per = [k for k in hand.PER_TRAJECTORY_KEYS if k in data]
    return tuple({k: (np.asarray(v)[i] if k in per else v) for k, v in data.items()} for i in idx)


@dataclass
class HandData:
    """The chapter's data: all trajectories, the train / test split, the two test halves of the evaluation
    (A: start states and actions of the roll-outs; B: the truth they are scored against) and the normaliser
    fitted on the training set."""

    data: Dict[str, Any]
    train: Dict[str, Any]
    test: Dict[str, Any]
    half_a: Dict[str, Any]
    half_b: Dict[str, Any]
    norm: Normaliser
    how: str
    seconds: float
    val_a: Optional[Dict[str, Any]] = None    # the validation halves: settings are chosen on these, never on
    val_b: Optional[Dict[str, Any]] = None    # the test halves (:func:`tune`)

    @property
    def n_half(self) -> int:
        return len(self.half_a["states"])

    def halves(self, on: str = "test") -> tuple[Dict[str, Any], Dict[str, Any]]:
        """The two halves a roll-out is started from and scored against: ``"test"`` or ``"validation"``."""
        if on == "test":
            return self.half_a, self.half_b
        if on != "validation":
            raise ValueError(f"on must be 'test' or 'validation', got {on!r}")
        if self.val_a is None:
            raise ValueError("this data has no validation split: prepare it with a preset that has "
                             "val_fraction > 0 (prepare_data)")
        return self.val_a, self.val_b


def _fraction(cfg, key: str) -> float:
    value = cfg.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{key} must be a fraction in [0, 1), got {value!r}")
    return float(value)


def prepare_data(cfg, root: Optional[str | os.PathLike] = None, progress: bool = False) -> HandData:
    """Load (or simulate and cache) ``cfg.n_traj`` trajectories, split them ``1 - cfg.test_fraction`` /
    ``cfg.test_fraction`` (section 5: 90/10), halve the test set, hold ``cfg.val_fraction`` of the training
    trajectories out as the validation split (halved too; :func:`tune` chooses settings on it) and fit the
    normaliser on the rest, the trajectories the models are trained on (``train``)."""
    start = time.time()
    data, how = load_or_generate(cfg.n_traj, seed=cfg.data_seed, length=cfg.length, workers=cfg.workers,
                                 root=root, progress=progress)
    train, test = hand.split(data, test_fraction=cfg.test_fraction, seed=0)
    half_a, half_b = split_halves(test, seed=1)
    val_a = val_b = None
    if _fraction(cfg, "val_fraction") > 0:
        train, val = hand.split(train, test_fraction=cfg.val_fraction, seed=2)
        val_a, val_b = split_halves(val, seed=3)
    return HandData(data, train, test, half_a, half_b, Normaliser.fit(train["states"]), how,
                    time.time() - start, val_a, val_b)


def data_fingerprint(data: Dict[str, Any]) -> str:
    """SHA-1 (first 16 hex digits) of the states and actions arrays: which trajectories a model was fitted on."""
    h = hashlib.sha1()
    for key in ("states", "actions"):
        a = np.ascontiguousarray(np.asarray(data[key], dtype=np.float32))
        h.update(key.encode() + str(a.shape).encode() + a.tobytes())
    return h.hexdigest()[:16]


def data_description(cfg, train: Dict[str, Any]) -> dict:
    """What a recipe records of its training data: source, sizes, seeds, split and the arrays' fingerprint."""
    return {"source": "ebmlib.data.hand", "n_traj": int(cfg.n_traj), "length": int(cfg.length),
            "data_seed": int(cfg.data_seed), "test_fraction": float(cfg.test_fraction), "split_seed": 0,
            "val_fraction": _fraction(cfg, "val_fraction"),
            "n_train": int(len(train["states"])), "mujoco_version": str(train.get("mujoco_version", "?")),
            "sha1": data_fingerprint(train)}


# ---------------------------------------------------------------------------------------------------- recipes
def model_name(kind: str, setting: str, run: int = 0) -> str:
    """The recipe name of training run ``run`` (0, 1, ...) of a model: ``hand_ebm_cond``, ``hand_ebm_cond_s1``."""
    if (kind, setting) not in MODEL_NAMES:
        raise ValueError(f"no model {(kind, setting)}; expected one of {list(MODEL_NAMES)}")
    if isinstance(run, bool) or not isinstance(run, int) or run < 0:
        raise ValueError(f"run must be an int >= 0, got {run!r}")
    return MODEL_NAMES[(kind, setting)] + (f"_s{run}" if run else "")


def _n_runs(cfg) -> int:
    n = cfg.train_seeds
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"train_seeds must be an int >= 1 (training runs per model), got {n!r}")
    return n


#: what :func:`tune` may vary per kind of model (``step_size``: the Langevin step of training and prediction)
TUNABLE = {"EBM": ("n_iters", "lr", "step_size"), "FC": ("n_iters", "lr")}
#: the training seed of every candidate of :func:`tune` (run seed 0): none of the test runs' seeds (1, 2, ...),
#: so the runs scored on the test split are fresh draws, not the ones that won the choice
TUNING_SEED = 1000


def tuning_grid(cfg) -> dict[str, list[dict]]:
    """The candidates :func:`tune` chooses among, per kind: every combination of ``cfg.tune[kind]``'s values
    (``{"EBM": {"n_iters": (2500, 7500), "step_size": (5.0, 10.0)}, ...}``), in order; a kind the preset does not
    name has one candidate, the preset's own settings (``{}``)."""
    grid = cfg.get("tune", {})
    if not isinstance(grid, Mapping) or set(grid) - set(KINDS):
        raise ValueError(f"tune must map kinds {list(KINDS)} to their grids, got {grid!r}")
    out = {}
    for kind in KINDS:
        axes = dict(grid.get(kind, {}))
        bad = sorted(set(axes) - set(TUNABLE[kind]))
        if bad:
            raise ValueError(f"tune[{kind!r}] names {bad}; a {kind} can vary {list(TUNABLE[kind])}")
        for key, values in axes.items():
            if not isinstance(values, (list, tuple)) or not values:
                raise ValueError(f"tune[{kind!r}][{key!r}] must be a non-empty list of values, got {values!r}")
        out[kind] = [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]
    return out


def candidate_label(candidate: Mapping[str, Any]) -> str:
    """``{"n_iters": 2500, "step_size": 5.0}`` -> ``"2500 it., step 5"``; ``{}`` -> ``"preset"``."""
    words = {"n_iters": "{:g} it.", "lr": "lr {:g}", "step_size": "step {:g}"}
    return ", ".join(words[k].format(v) for k, v in candidate.items()) or "preset"


def _candidate_suffix(candidate: Mapping[str, Any]) -> str:
    short = {"n_iters": "it", "lr": "lr", "step_size": "step"}
    return "_".join(f"{short[k]}{v:g}" for k, v in candidate.items())


def _recipe(cfg, kind: str, setting: str, name: str, candidate: Mapping[str, Any], **common) -> DynamicsRecipe:
    """One recipe of ``kind`` and ``setting`` with the preset's settings, ``candidate``'s replacing them."""
    conditional = dict(SETTINGS)[setting]
    if kind == "FC":
        return DynamicsRecipe(name=name, kind="fc", conditional=conditional,
                              n_iters=int(candidate.get("n_iters", cfg.fc_iters)),
                              lr=float(candidate.get("lr", cfg.fc_lr)), **common)
    sampling = dict(cfg.sampling)
    if "step_size" in candidate:
        sampling["step_size"] = float(candidate["step_size"])
    return DynamicsRecipe(name=name, kind="ebm", conditional=conditional,
                          n_iters=int(candidate.get("n_iters", cfg.ebm_iters)),
                          lr=float(candidate.get("lr", cfg.ebm_lr)), sampling=sampling, **common)


def recipes(cfg, train: Dict[str, Any], seed: int = 0,
            chosen: Optional[Mapping[tuple, Mapping[str, Any]]] = None) -> dict[str, DynamicsRecipe]:
    """The preset's recipes, fitted on ``train``: EBM and FC, unconditional and action-conditional, each trained
    ``cfg.train_seeds`` times with different seeds (run ``k`` of run seed 0 uses seed ``k + 1``; run seed ``s``
    shifts every seed by ``1_000_003 s``). ``chosen``: (kind, setting) -> the settings :func:`tune` chose for
    that model (none: the preset's)."""
    desc = data_description(cfg, train)
    chosen = chosen or {}
    out = {}
    for run in range(_n_runs(cfg)):
        common = dict(batch_size=cfg.batch_size, hidden=cfg.hidden, seed=int(seed) * 1_000_003 + 1 + run,
                      data=desc)
        for setting, _ in SETTINGS:
            for kind in KINDS:
                name = model_name(kind, setting, run)
                out[name] = _recipe(cfg, kind, setting, name, chosen.get((kind, setting), {}), **common)
    return out


def tuning_recipes(cfg, train: Dict[str, Any], seed: int = 0) -> dict[str, tuple[tuple, dict, DynamicsRecipe]]:
    """name -> ((kind, setting), candidate, recipe) for every candidate of :func:`tuning_grid`, trained once
    with :data:`TUNING_SEED`; a kind with one candidate has nothing to choose and trains none."""
    common = dict(batch_size=cfg.batch_size, hidden=cfg.hidden, seed=int(seed) * 1_000_003 + TUNING_SEED,
                  data=data_description(cfg, train))
    out = {}
    for kind, candidates in tuning_grid(cfg).items():
        if len(candidates) < 2:
            continue
        for setting, _ in SETTINGS:
            for c in candidates:
                name = f"{MODEL_NAMES[(kind, setting)]}_tune_{_candidate_suffix(c)}"
                out[name] = ((kind, setting), c, _recipe(cfg, kind, setting, name, c, **common))
    return out


@dataclass
class Tuning:
    """:func:`tune`'s result: every candidate's average Frechet distance on the validation halves, the choice
    per model (the lowest) and the validation floor (truth against truth at that size)."""

    scores: dict          # (kind, setting) -> [(candidate, validation distance), ...]
    chosen: dict          # (kind, setting) -> candidate ({} where there was nothing to choose)
    floor: float
    n: int                # trajectories per validation half
    seconds: float        # training and scoring of the candidates

    def metrics(self) -> dict:
        key = lambda k: f"{k[0]} {k[1]}"   # noqa: E731
        return {"chosen": {key(k): c for k, c in self.chosen.items()},
                "validation_frechet": {key(k): [[candidate_label(c), d] for c, d in v]
                                       for k, v in self.scores.items()},
                "validation_floor": self.floor, "n_per_validation_half": self.n, "seconds": self.seconds}


def tune(cfg, seed: int = 0, hand_data: Optional[HandData] = None, **options) -> Tuning:
    """Choose each model's settings on the validation split, never the test split: every candidate of
    :func:`tuning_recipes` is trained (or loaded) on the training trajectories, rolled out ``cfg.horizon`` steps
    from validation half A and scored by its average Frechet distance against half B; the lowest wins.
    ``options`` as :func:`train_models`'. The roll-outs draw from a generator of their own, seeded by ``seed``, so
    a notebook and the command line choose alike."""
    start = time.time()
    hd = hand_data if hand_data is not None else prepare_data(cfg, progress=options.get("progress", True))
    train_in_processes(cfg, seed, None, **options)   # several processes: every model, candidates and final, there
    cands = tuning_recipes(cfg, hd.train, seed)
    trained = load_or_train_all({n: r for n, (_, _, r) in cands.items()},
                                lambda recipe, done: {"data": hd.train, "norm": hd.norm}, **options)
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + TUNING_SEED)
    scores, floor, n = {key: [] for key in MODEL_NAMES}, float("nan"), 0
    for name, (key, c, _) in cands.items():
        ev = evaluate({key: trained[name].model}, hd, cfg.horizon, gen, on="validation")
        scores[key].append((c, ev.averages()[key]))
        floor, n = ev.floor_average, ev.n
    chosen = {key: (min(v, key=lambda cd: cd[1])[0] if v else {}) for key, v in scores.items()}
    return Tuning(scores, chosen, floor, n, time.time() - start)


def train_models(cfg, seed: int = 0, only=None, hand_data: Optional[HandData] = None,
                 tuning: Optional[Tuning] = None, **options) -> dict:
    """The preset's dynamics models (:func:`recipes` with the settings ``tuning`` chose; none given: :func:`tune`
    chooses them first), each loaded from its checkpoint or trained on the training split (``hand_data``, else
    :func:`prepare_data` of ``cfg``); ``options``: ``out_dir``, ``shipped_dir``, ``device``, ``progress``,
    ``log``, ``world``. Returns name -> :class:`~ebmlib.core.recipes.Trained`. When the preset asks for several
    processes every model (candidates and final) trains under torchrun first, launched by :func:`tune`
    (:func:`ebmlib.notebook.launch.train_in_processes`), after this process simulated and cached the
    trajectories (on several processes rank 0 does, then the others read its cache: one simulation, one
    writer)."""
    world = options.get("world")
    progress = options.get("progress", True) and (world is None or world.is_main)
    if hand_data is None and world is not None and world.distributed:
        world.on_main(lambda: prepare_data(cfg, progress=progress))
    hd = hand_data if hand_data is not None else prepare_data(cfg, progress=progress)
    tuning = tuning if tuning is not None else tune(cfg, seed, hd, **options)   # launches the processes, if any
    return load_or_train_all(recipes(cfg, hd.train, seed, tuning.chosen),
                             lambda recipe, done: {"data": hd.train, "norm": hd.norm}, only=only, **options)


def models_by_key(trained: Mapping[str, Trained], run: int = 0) -> dict[tuple[str, str], DynamicsModel]:
    """``(kind, setting) -> model`` (e.g. ``("EBM", "conditional")``) of training run ``run`` from
    :func:`train_models`' result."""
    names = {key: model_name(*key, run) for key in MODEL_NAMES}
    missing = [n for n in names.values() if n not in trained]
    if missing:
        raise ValueError(f"models {missing} are missing; got {sorted(trained)}")
    return {key: trained[name].model for key, name in names.items()}


def model_runs(trained: Mapping[str, Trained], n_runs: int) -> list[dict[tuple[str, str], DynamicsModel]]:
    """:func:`models_by_key` for each of the ``n_runs`` training runs."""
    return [models_by_key(trained, run) for run in range(n_runs)]


# ---------------------------------------------------------------------------------------------------- evaluation
def one_step_errors(models: Mapping[tuple, DynamicsModel], data: Dict[str, Any], norm: Normaliser,
                    generator: Optional[torch.Generator] = None, chunk: int = 50_000) -> dict[str, float]:
    """One-step mean squared error of ``z`` on every transition of ``data`` (true ``s_t`` in, ``s_{t+1}`` out),
    for each model and for "no change" (``z = 0``)."""
    z_true, _ = transition_tensors(data, norm, conditional=False)
    s = _as_tensor(data["states"], "states", STATE_DIM)[:, :-1].reshape(-1, STATE_DIM)
    a = _as_tensor(data["actions"], "actions", ACTION_DIM).reshape(-1, ACTION_DIM)
    out = {"no change (z = 0)": z_true.pow(2).mean().item()}
    for (kind, setting), m in models.items():
        err = 0.0
        for i in range(0, len(s), chunk):
            pred = m.predict(s[i:i + chunk], a[i:i + chunk] if m.conditional else None, generator)
            err += (norm.displacement(s[i:i + chunk], pred) - z_true[i:i + chunk]).pow(2).sum().item()
        out[f"{kind} {setting}"] = err / z_true.numel()
    return out


@dataclass
class Evaluation:
    """Roll-outs from half A's start states, scored against half B's true states (section 5.1's Frechet
    distance per step, normalised and raw units), with the truth-against-truth floor and a hand that never
    moves (half A's start states held) scored the same way."""

    horizon: int
    n: int
    rollouts: dict
    truth_a: Tensor
    truth_b: Tensor
    frechet: dict
    frechet_raw: dict
    floor: np.ndarray
    floor_raw: np.ndarray
    no_motion: np.ndarray
    no_motion_raw: np.ndarray
    seconds: float

    def averages(self) -> dict:
        return {key: average(c) for key, c in self.frechet.items()}

    @property
    def floor_average(self) -> float:
        return average(self.floor)

    def still(self) -> Tensor:
        """Half A's start states held for the whole roll-out."""
        return self.truth_a[:, :1].expand_as(self.truth_a)


def evaluate(models: Mapping[tuple, DynamicsModel], hd: HandData, horizon: int,
             generator: Optional[torch.Generator] = None, progress: bool = False, on: str = "test") -> Evaluation:
    """Roll every model out for ``horizon`` steps from half A (with half A's actions when conditional) and
    compute the Frechet curves against half B, the floor (half A's truth against half B's) and the no-motion
    baseline; ``on``: the test halves or the validation halves (:meth:`HandData.halves`)."""
    half_a, half_b = hd.halves(on)
    length = np.asarray(half_a["states"]).shape[1] - 1
    if not isinstance(horizon, int) or not 1 <= horizon <= length:
        raise ValueError(f"horizon must be an int in [1, {length}] (the trajectories' length), got {horizon!r}")
    start = time.time()
    truth_a = torch.as_tensor(half_a["states"][:, : horizon + 1])
    truth_b = torch.as_tensor(half_b["states"][:, : horizon + 1])
    s0, actions = truth_a[:, 0], torch.as_tensor(half_a["actions"])
    rollouts = {key: rollout(m, s0, horizon, actions if m.conditional else None, generator, progress)
                for key, m in models.items()}
    still = truth_a[:, :1].expand_as(truth_a)
    norm = hd.norm
    return Evaluation(
        horizon, len(truth_a), rollouts, truth_a, truth_b,
        {k: frechet_curve(r, truth_b, norm) for k, r in rollouts.items()},
        {k: frechet_curve(r, truth_b) for k, r in rollouts.items()},
        frechet_floor(truth_a, truth_b, norm), frechet_floor(truth_a, truth_b),
        frechet_curve(still, truth_b, norm), frechet_curve(still, truth_b), time.time() - start)


def evaluate_runs(runs: Sequence[Mapping[tuple, DynamicsModel]], hd: HandData, horizon: int,
                  generator: Optional[torch.Generator] = None) -> list[Evaluation]:
    """:func:`evaluate` for each training run's models, on the same two test halves (so one floor serves all)."""
    if not runs:
        raise ValueError("runs is empty: give at least one training run's models")
    return [evaluate(models, hd, horizon, generator) for models in runs]


def run_averages(evs: Sequence[Evaluation]) -> dict[tuple, list[float]]:
    """``(kind, setting) -> [average Frechet distance of each training run]``."""
    return {key: [ev.averages()[key] for ev in evs] for key in MODEL_NAMES}


def fig13_rollouts(ev: Evaluation, models: Mapping[tuple, DynamicsModel], k: int = 0,
                   generator: Optional[torch.Generator] = None) -> dict[str, Tensor]:
    """Fig. 13's rows from half A's ``k``-th start state: the true trajectory, the unconditional FC's roll-out
    and two unconditional EBM roll-outs that differ only in their Langevin noise, each (T + 1, 31)."""
    if not 0 <= k < ev.n:
        raise ValueError(f"k must index one of the {ev.n} roll-outs, got {k}")
    two = rollout(models[("EBM", "unconditional")], ev.truth_a[k:k + 1, 0].expand(2, -1), ev.horizon,
                  generator=generator)
    return {"Ground truth": ev.truth_a[k], "Fully connected": ev.rollouts[("FC", "unconditional")][k],
            "EBM sample 1": two[0], "EBM sample 2": two[1]}


def sample_gap(rows: Mapping[str, Tensor], norm: Normaliser) -> float:
    """How far apart Fig. 13's two EBM samples end: the Euclidean distance of their last states over the 31
    normalised coordinates."""
    a, b = (_as_tensor(rows[k], k, STATE_DIM) for k in ("EBM sample 1", "EBM sample 2"))
    with torch.no_grad():
        return float((norm.state(a[-1]) - norm.state(b[-1])).norm())


def gap_sentence(gap: float, horizon: int) -> str:
    return (f"The two EBM samples end {gap:.2f} normalised units apart at T = {horizon} (Euclidean distance "
            f"over the 31 coordinates).")


# ---------------------------------------------------------------------------------------------------- verdicts
def _check_floor(floor: float) -> float:
    floor = float(floor)
    if not np.isfinite(floor) or floor < 0:
        raise ValueError(f"the floor must be a finite distance >= 0, got {floor!r}")
    return floor


def _runs(values, name: str) -> list[float]:
    v = [float(x) for x in (values if isinstance(values, (list, tuple, np.ndarray)) else [values])]
    if not v or not all(np.isfinite(v)):
        raise ValueError(f"{name} must be one or more finite distances, got {values!r}")
    return v


def _spread(v: Sequence[float]) -> str:
    return f"{v[0]:.2f}" if len(v) == 1 else f"{np.mean(v):.2f} (runs {min(v):.2f} to {max(v):.2f})"


def verdict(setting: str, ebm, fc, floor: float, n: int, paper: Mapping[tuple, float] = PAPER_FRECHET) -> str:
    """One sentence on one setting's average Frechet distances, ``ebm`` and ``fc`` each one number or one per
    training run. A model is called better only when *every* run of it is lower than every run of the other by
    more than ``floor`` (the truth-against-truth distance at the comparison's sample size ``n``); otherwise the
    sentence says that this run ranks neither."""
    if setting not in dict(SETTINGS):
        raise ValueError(f"setting must be one of {[s for s, _ in SETTINGS]}, got {setting!r}")
    floor = _check_floor(floor)
    e, f = _runs(ebm, "ebm"), _runs(fc, "fc")
    pe, pf = paper[("EBM", setting)], paper[("FC", setting)]
    name, runs = setting.capitalize(), max(len(e), len(f))
    each = "" if runs == 1 else f" over {runs} training runs each"
    where = (f"average Frechet distance EBM {_spread(e)} vs FC {_spread(f)}{each}; the floor (two disjoint sets "
             f"of {n} true test trajectories) is {floor:.2f}")
    if min(f) - max(e) > floor:
        return (f"**{name}: the EBM beats the FC** here: {where}, and every EBM run is lower than every FC run "
                f"by more than that ({min(f) - max(e):.2f}). Paper: {pe} vs {pf}.")
    if min(e) - max(f) > floor:
        return (f"**{name}: the FC beats the EBM** here: {where}, and every FC run is lower than every EBM run "
                f"by more than that ({min(e) - max(f):.2f}). The paper's finding (EBM {pe} vs FC {pf}) is not "
                f"reproduced here.")
    if runs == 1:
        detail = f"the gap {abs(e[0] - f[0]):.2f} is no larger than that"
    else:
        lo, hi = ("EBM", "FC") if np.mean(e) < np.mean(f) else ("FC", "EBM")
        worst_lo, best_hi = (max(e), min(f)) if lo == "EBM" else (max(f), min(e))
        detail = (f"the {lo} is lower on average, but the best {hi} run ({best_hi:.2f}) "
                  f"{'comes within the floor of' if best_hi >= worst_lo else 'is below'} the worst {lo} run "
                  f"({worst_lo:.2f})")
    return (f"**{name}: no winner**: {where}; {detail}, so this experiment does not rank them (paper: EBM {pe} "
            f"vs FC {pf}).")


def verdicts(averages: Mapping[tuple, Any], floor: float, n: int) -> str:
    """:func:`verdict` for both settings (``averages``: (kind, setting) -> a distance or one per training
    run, e.g. :func:`run_averages`), as one Markdown paragraph each."""
    return "\n\n".join(verdict(s, averages[("EBM", s)], averages[("FC", s)], floor, n) for s, _ in SETTINGS)


def _rank(gap: float, margin: float) -> Optional[str]:
    """``"first"`` when ``gap`` (first minus second, lower is better) is below ``-margin``, ``"second"`` above
    ``margin``, else ``None``."""
    return "first" if gap < -margin else "second" if gap > margin else None


def mse_sentence(mse_avg: Mapping[str, float], mse_gap: tuple[float, float], motion: Mapping[str, float],
                 frechet: Mapping[tuple, float], floor: float) -> str:
    """Section 5.1's point on this run's unconditional roll-outs: does multi-step MSE rank the FC and the EBM as
    the Frechet distance does? MSE ranks them only when their paired gap ``mse_gap`` (FC minus EBM, standard
    error) exceeds two standard errors; the Frechet distance only beyond ``floor``."""
    floor = _check_floor(floor)
    e, f = mse_avg["EBM unconditional"], mse_avg["FC unconditional"]
    gap, se = mse_gap
    by_mse = _rank(gap, 2 * se)
    by_fd = _rank(frechet[("FC", "unconditional")] - frechet[("EBM", "unconditional")], floor)
    text = (f"Unconditional roll-outs in this run: the FC's average MSE is {f:.2f} against the EBM's {e:.2f} "
            f"(paired gap {gap:+.2f} +- {se:.2f} standard error), while its hand moves "
            f"{motion['FC unconditional']:.2f} per step against the EBM's {motion['EBM unconditional']:.2f} and "
            f"the data's {motion['truth']:.2f}; a hand that never moves scores an MSE of {mse_avg['no motion']:.2f}. ")
    if by_mse is None or by_fd is None:
        which = "MSE" if by_mse is None else "the Frechet distance"
        return text + f"Here {which} does not separate the two models beyond its noise, so no ranking is compared."
    if by_mse != by_fd:
        return text + "MSE and the Frechet distance rank the two models **the opposite way**."
    return text + "Here MSE and the Frechet distance rank the two models the same way."


def summary(cfg, hd: HandData, evs: Sequence[Evaluation], seconds: float) -> str:
    """The chapter's closing paragraph: sizes, our average distances beside the paper's, the floor, verdicts."""
    ev, avg = evs[0], run_averages(evs)
    ours = "; ".join(f"{s} EBM {_spread(avg[('EBM', s)])} [{PAPER_FRECHET[('EBM', s)]}], FC "
                     f"{_spread(avg[('FC', s)])} [{PAPER_FRECHET[('FC', s)]}]" for s, _ in SETTINGS)
    return (f"**Scale `{cfg.scale}`**: {cfg.n_traj} trajectories of {cfg.length} steps "
            f"({len(hd.train['states'])} train, {_n_val(hd)} validation, {len(hd.test['states'])} test, halved "
            f"into {ev.n} start states "
            f"and {ev.n} true trajectories), {len(evs)} training run(s) per model, roll-outs of {ev.horizon} "
            f"steps; whole notebook {seconds:.0f} s.\n\n"
            f"Average Frechet distance (normalised units), ours [paper]: {ours}. Two disjoint halves of the true "
            f"test trajectories are {ev.floor_average:.2f} apart (the floor); a roll-out that never moves "
            f"scores {average(ev.no_motion):.2f}.\n\n" + verdicts(avg, ev.floor_average, ev.n))


# ---------------------------------------------------------------------------------------------------- tables
def _n_val(hd: HandData) -> int:
    return 0 if hd.val_a is None else len(hd.val_a["states"]) + len(hd.val_b["states"])


def data_metrics(cfg, hd: HandData) -> dict:
    n_train = len(hd.train["states"])
    return {"n_traj": cfg.n_traj, "length": cfg.length, "n_train": n_train, "n_validation": _n_val(hd),
            "n_test": len(hd.test["states"]), "n_half": hd.n_half, "train_transitions": int(n_train * cfg.length),
            "in_hand_fraction": hand.in_hand_fraction(hd.data), "mujoco_version": hd.data["mujoco_version"],
            "fingerprint": data_fingerprint(hd.train), "how": hd.how.split()[0], "seconds": hd.seconds}


def data_table(cfg, hd: HandData) -> tuple[list, list]:
    m = data_metrics(cfg, hd)
    header = ["trajectories", "steps each", "train / validation / test", "test halves (starts / truth)",
              "train transitions", "cube in hand throughout", "paper"]
    return header, [[cfg.n_traj, cfg.length, f"{m['n_train']} / {m['n_validation']} / {m['n_test']}",
                     f"{m['n_half']} / {m['n_half']}", m["train_transitions"], f"{m['in_hand_fraction']:.1%}",
                     "200,000 x 100, 90/10 split"]]


def settings_table(cfg, tuning: Optional[Tuning] = None) -> tuple[list, list]:
    """The settings each model is trained with: the preset's, with what ``tuning`` chose in their place."""
    chosen, runs = (tuning.chosen if tuning is not None else {}), _n_runs(cfg)
    header = ["model", "iterations", "batch", "learning rate", "Langevin steps", "step size", "noise std",
              "gradient clip", "chain start std", "training runs"]
    rows = []
    for setting, _ in SETTINGS:
        for kind in KINDS:
            r = _recipe(cfg, kind, setting, "settings", chosen.get((kind, setting), {}))
            s = r.sampling_config()
            sampler = [s.n_steps, s.step_size, s.noise_std, s.grad_clip, s.init_std] if s else ["-"] * 5
            rows.append([f"{kind} {setting}", r.n_iters, r.batch_size, r.lr, *sampler, runs])
    return header, rows


def tuning_table(tuning: Tuning) -> tuple[list, list]:
    """One row per candidate: its model, settings, average Frechet distance on the validation halves, and
    whether it was chosen."""
    rows = [[f"{k} {s}", candidate_label(c), d, "chosen" if c == tuning.chosen[(k, s)] else ""]
            for (k, s), v in tuning.scores.items() for c, d in v]
    return ["model", "candidate", "validation Frechet (average)", ""], rows


def tuning_sentence(tuning: Tuning) -> str:
    """Which settings won per model, by how much over the runner-up, against the validation floor."""
    if not any(tuning.scores.values()):
        return "The preset names one setting per model, so there is nothing to choose on the validation split."
    parts = []
    for (k, s), v in tuning.scores.items():
        if len(v) < 2:
            continue
        best, second = sorted(v, key=lambda cd: cd[1])[:2]
        parts.append(f"{k} {s}: {candidate_label(best[0])} ({best[1]:.2f}; next {candidate_label(second[0])}, "
                     f"{second[1]:.2f})")
    return (f"Chosen on the validation split ({tuning.n} start states against {tuning.n} other true "
            f"trajectories, whose floor is {tuning.floor:.2f}): " + "; ".join(parts) + f". Training and scoring "
            f"the candidates took {tuning.seconds:.0f} s. The test split below is used for nothing but the "
            "scores, and the runs it scores are trained with other seeds than the candidates.")


def origin_table(trained: Mapping[str, Trained]) -> tuple[list, list]:
    """One row per trained model: which model and run, its recipe (and seed), where it came from, how long."""
    rows = []
    for name, t in trained.items():
        r = t.recipe
        model = f"{r.kind.upper()} {'conditional' if r.conditional else 'unconditional'}"
        rows.append([model, f"`{name}` (seed {r.seed})", t.origin(), f"{t.seconds:.0f} s"])
    return ["model", "recipe", "how", "training time"], rows


#: the parts of the state :func:`action_determinism` scores separately
STATE_PARTS = {"hand joints": slice(0, 24), "cube position": slice(24, 27), "cube orientation": slice(27, 31)}


def _design(data: Dict[str, Any], norm: Normaliser, with_action: bool) -> tuple[Tensor, Tensor]:
    z, context = transition_tensors(data, norm, conditional=with_action)
    return torch.cat([torch.ones(len(context), 1), context], 1).double(), z.double()


def action_determinism(train: Dict[str, Any], test: Dict[str, Any], norm: Normaliser,
                       ridge: float = 1e-3) -> dict[str, dict[str, float]]:
    """How much of the next state the action decides: the share of the variance of the normalised displacement
    ``z`` on ``test``'s transitions that a ridge regression fitted on ``train`` explains (held-out R^2, 1 = fully
    determined, 0 = no better than the mean), from ``s_t`` alone and from ``(s_t, a_t)``, per part of the state
    (:data:`STATE_PARTS`) and for all of it. Where ``(s_t, a_t)`` explains nearly everything, the next state is
    close to a deterministic function of them: the conditional mean that an MSE regressor (the FC) learns is then
    almost the whole answer, and a sampler's spread can only add error; without the action the future is
    uncertain and a model of the distribution has something to win."""
    if not ridge >= 0:
        raise ValueError(f"ridge must be >= 0, got {ridge!r}")
    out = {}
    for name, with_action in (("from s_t", False), ("from s_t and a_t", True)):
        x, z = _design(train, norm, with_action)
        xt, zt = _design(test, norm, with_action)
        w = torch.linalg.solve(x.T @ x + ridge * len(x) * torch.eye(x.shape[1], dtype=x.dtype), x.T @ z)
        resid, centred = zt - xt @ w, zt - z.mean(0)           # the training mean: R^2 against a no-input model
        parts = dict(STATE_PARTS, **{"whole state": slice(0, STATE_DIM)})
        out[name] = {part: float(1 - resid[:, sl].pow(2).sum() / centred[:, sl].pow(2).sum())
                     for part, sl in parts.items()}
    return out


def determinism_table(r2: Mapping[str, Mapping[str, float]]) -> tuple[list, list]:
    header = ["part of the state"] + [f"R^2 {k}" for k in r2]
    parts = list(next(iter(r2.values())))
    return header, [[p] + [f"{r2[k][p]:.3f}" for k in r2] for p in parts]


def determinism_sentence(r2: Mapping[str, Mapping[str, float]], one_step: Mapping[str, float]) -> str:
    """What drives the action-conditional comparison, read off :func:`action_determinism` and the one-step errors."""
    a, b = r2["from s_t"], r2["from s_t and a_t"]
    fc, ebm = one_step.get("FC conditional"), one_step.get("EBM conditional")
    errs = "" if fc is None or ebm is None else (
        f" One step ahead (section 2) the action-conditional EBM's squared error is {ebm:.3f}, **{ebm / fc:.2f} "
        f"times** the FC's {fc:.3f}; a perfect sampler of the next state scores exactly twice the error of the "
        f"perfect mean (for independent draws x, x' of one distribution, E|x' - x|^2 = 2 Var x), so a ratio near 2 says the EBM "
        f"spreads its predictions about as widely as the data spread: it pays for sampling, not for a worse model.")
    return (f"A linear map fitted on the training transitions explains **{b['whole state']:.1%}** of the variance of "
            f"the next step's displacement on held-out transitions from $(s_t, a_t)$, against {a['whole state']:.1%} "
            f"from $s_t$ alone: the hand joints, which the actions drive as position targets, go from "
            f"{a['hand joints']:.1%} to {b['hand joints']:.1%}, the cube's position to {b['cube position']:.1%} and "
            f"its orientation to {b['cube orientation']:.1%}. Given the action, most of the next state is a function "
            f"of the present (a linear one already; a network can do more), so the conditional mean that the FC's "
            f"squared error trains it to output is most of the answer, and an EBM that *samples* the next state adds "
            f"its spread around that mean.{errs} Without the action only {a['whole state']:.1%} is predictable, the "
            f"future is uncertain, and a model of the distribution has something to win: the unconditional case.")


def one_step_table(one_step: Mapping[str, float]) -> tuple[list, list]:
    return ["model", "MSE (z units)"], [[k, float(v)] for k, v in one_step.items()]


def frechet_table(evs: Sequence[Evaluation]) -> tuple[list, list]:
    """Average Frechet distance per model: mean over training runs, each run's value, raw units, paper; then the
    floor and the no-motion baseline."""
    ev, avg = evs[0], run_averages(evs)
    rows = [[s, k, float(np.mean(avg[(k, s)])), " / ".join(f"{v:.2f}" for v in avg[(k, s)]),
             float(np.mean([average(e.frechet_raw[(k, s)]) for e in evs])), PAPER_FRECHET[(k, s)]]
            for s, _ in SETTINGS for k in KINDS]
    rows.append(["-", "truth vs truth (floor)", ev.floor_average, "-", average(ev.floor_raw), "-"])
    rows.append(["-", "no motion", average(ev.no_motion), "-", average(ev.no_motion_raw), "-"])
    header = ["setting", "model", "ours, normalised units (mean)", "each training run", "ours, raw units (mean)",
              "paper"]
    return header, rows


def mse_table(ev: Evaluation, norm: Normaliser, at: int = 10) -> tuple[list, list, dict]:
    """Multi-step MSE (paired with half A's truth) at step ``at`` and averaged, and motion per step; returns
    the header, the rows and the numbers (``mse_average``, ``motion_per_step``, ``mse_gap``, ``curves``)."""
    at = min(at, ev.horizon)
    curves = {f"{k} {s}": mse_curve(r, ev.truth_a, norm) for (k, s), r in ev.rollouts.items()}
    curves["no motion"] = mse_curve(ev.still(), ev.truth_a, norm)
    motion = {f"{k} {s}": motion_per_step(r, norm) for (k, s), r in ev.rollouts.items()}
    motion.update({"no motion": 0.0, "truth": motion_per_step(ev.truth_a, norm)})
    mse_avg = {k: average(c) for k, c in curves.items()}
    rows = [[s, k, float(curves[f"{k} {s}"][at]), mse_avg[f"{k} {s}"], motion[f"{k} {s}"]]
            for s, _ in SETTINGS for k in KINDS]
    rows.append(["-", "no motion (start state)", float(curves["no motion"][at]), mse_avg["no motion"], 0.0])
    rows.append(["-", "ground truth", 0.0, 0.0, motion["truth"]])
    gap = paired_mse_gap(ev.rollouts[("FC", "unconditional")], ev.rollouts[("EBM", "unconditional")],
                         ev.truth_a, norm)
    header = ["setting", "model", f"MSE at t = {at}", "average MSE", "motion per step"]
    return header, rows, {"mse_average": mse_avg, "motion_per_step": motion, "mse_gap": gap, "curves": curves}


def evaluation_metrics(evs: Sequence[Evaluation]) -> dict:
    """The numbers of the Frechet evaluation for the metrics file (curves of the first training run; averages
    of every run and their mean)."""
    ev, runs = evs[0], run_averages(evs)
    key = lambda k: f"{k[0]} {k[1]}"   # noqa: E731
    return {"n_per_half": ev.n, "rollout_seconds": sum(e.seconds for e in evs), "training_runs": len(evs),
            "frechet_curve": {key(k): c.tolist() for k, c in ev.frechet.items()},
            "frechet_average_runs": {key(k): v for k, v in runs.items()},
            "frechet_average": {key(k): float(np.mean(v)) for k, v in runs.items()},
            "frechet_average_raw_units": {key(k): float(np.mean([average(e.frechet_raw[k]) for e in evs]))
                                          for k in MODEL_NAMES},
            "frechet_floor_curve": ev.floor.tolist(), "frechet_floor_average": ev.floor_average,
            "frechet_floor_average_raw_units": average(ev.floor_raw),
            "frechet_curve_no_motion": ev.no_motion.tolist(), "frechet_average_no_motion": average(ev.no_motion)}


# ---------------------------------------------------------------------------------------------------- figures
def _smooth(values, width: int = 50) -> np.ndarray:
    """Running mean over ``width`` iterations (single mini-batches are noisy)."""
    v = np.asarray(values, dtype=float)
    w = max(1, min(width, len(v)))
    return np.convolve(v, np.ones(w) / w, mode="valid")


def trajectory_figure(states, names: Sequence[str] = ("FFJ2", "MFJ2", "THJ1", "cube_z", "cube_qw", "cube_qx")):
    """One trajectory's coordinates ``names`` (of :data:`ebmlib.data.hand.STATE_NAMES`) over time."""
    import matplotlib.pyplot as plt

    states = _numpy(states)
    unknown = [n for n in names if n not in hand.STATE_NAMES]
    if unknown:
        raise ValueError(f"unknown state names {unknown}; expected names from {hand.STATE_NAMES}")
    fig, axes = plt.subplots(1, len(names), figsize=(2 * len(names), 2.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        ax.plot(np.arange(len(states)) * hand.CONTROL_DT, states[:, hand.STATE_NAMES.index(name)])
        ax.set_title(name)
        ax.set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def training_figure(trained: Mapping[str, Trained], width: int = 50):
    """EBM energies and loss (Algorithm 1) and the FC's mean squared error, running means over ``width``."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3))
    for setting, _ in SETTINGS:
        h = [r for r in trained[MODEL_NAMES[("EBM", setting)]].history if "e_pos" in r]
        axes[0].plot(_smooth([r["e_pos"] for r in h], width), label=f"E(data), {setting}")
        axes[0].plot(_smooth([r["e_neg"] for r in h], width), "--", label=f"E(Langevin samples), {setting}")
        axes[1].plot(_smooth([r["loss"] for r in h], width), label=setting)
        fc = trained[MODEL_NAMES[("FC", setting)]].history
        axes[2].semilogy(_smooth([r["loss"] for r in fc], width), label=setting)
    for ax, title in zip(axes, ("EBM energies", "EBM loss (Algorithm 1)", "FC mean squared error (z units)")):
        ax.set_title(title)
        ax.set_xlabel("iteration")
        ax.legend(fontsize=7)
    fig.suptitle(f"training curves, running means over {width} iterations", fontsize=9)
    fig.tight_layout()
    return fig


def frechet_figure(evs: Sequence[Evaluation]):
    """Fig. 12: Frechet distance per step for each setting (the mean over training runs, shaded between the
    lowest and highest run), with the truth-against-truth floor beside it."""
    import matplotlib.pyplot as plt

    ev = evs[0]
    steps = np.arange(ev.horizon + 1)[1:]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), sharey=True)
    for ax, (setting, _) in zip(axes, SETTINGS):
        for i, (kind, style) in enumerate((("EBM", "-"), ("FC", "--"))):
            curves = np.stack([e.frechet[(kind, setting)][1:] for e in evs])
            label = kind if len(evs) == 1 else f"{kind} (mean of {len(evs)} runs, band: range)"
            ax.plot(steps, curves.mean(0), style, lw=1.8, color=f"C{i}", label=label)
            if len(evs) > 1:
                ax.fill_between(steps, curves.min(0), curves.max(0), color=f"C{i}", alpha=0.2, lw=0)
        ax.plot(steps, ev.floor[1:], "-", color="0.55", lw=1.0, label=f"truth vs truth ({ev.n} each): floor")
        ax.plot(steps, ev.no_motion[1:], ":", color="grey", label="no motion (start state)")
        ax.set_yscale("log")
        ax.set_xlabel("time step t")
        ax.set_title(f"{setting} roll-outs")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("Frechet distance (normalised units)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def mse_figure(curves: Mapping[str, np.ndarray]):
    """Multi-step MSE per step for every model and the no-motion baseline."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    for name, c in curves.items():
        steps = np.arange(len(c))[1:]
        style = ":" if name == "no motion" else "-" if name.startswith("EBM") else "--"
        ax.plot(steps, c[1:], style, color="grey" if name == "no motion" else None, label=name)
    ax.set_xlabel("time step t")
    ax.set_ylabel("MSE (normalised units)")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def frames_figure(frames: Mapping[str, np.ndarray], times: Sequence[int]):
    """Fig. 13's grid: one row per roll-out, one column per time in ``times``."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(frames), len(times), figsize=(1.7 * len(times), 1.35 * len(frames)),
                             squeeze=False)
    for i, (name, row) in enumerate(frames.items()):
        for j, t in enumerate(times):
            ax = axes[i, j]
            ax.imshow(row[j])
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"T = {t}")
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------- rendering
_RENDER_SCRIPT = """
import sys, numpy as np
from ebmlib.data import hand
src, dst, width, height, view = sys.argv[1:6]
rows = np.load(src)
frames = {k: hand.render_states(rows[k], width=int(width), height=int(height), view=view) for k in rows.files}
np.savez(dst, **frames)
"""


def render_rows(rows: Dict[str, Any], width: int = 160, height: int = 120, view: str = "top",
                timeout: float = 300.0) -> Dict[str, np.ndarray]:
    """Render each row of states (name -> (T, 31)) with :func:`ebmlib.data.hand.render_states` in a *child*
    process with ``MUJOCO_GL=egl``; returns name -> (T, height, width, 3) uint8 frames.

    A child process because an EGL context in a process that later imports triton (torch's first Adam step
    does) crashes it. Raises RuntimeError with the child's error when no offscreen GL context can be made.
    """
    if not rows:
        raise ValueError("rows is empty: give at least one name -> (T, 31) array of states")
    arrays = {}
    for k, v in rows.items():
        a = _numpy(v)
        if a.ndim != 2 or a.shape[1] != STATE_DIM:
            raise ValueError(f"row {k!r} must have shape (T, {STATE_DIM}), got {a.shape}")
        arrays[k] = a
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "states.npz"), os.path.join(tmp, "frames.npz")
        np.savez(src, **arrays)
        env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
        run = subprocess.run([sys.executable, "-c", _RENDER_SCRIPT, src, dst, str(width), str(height), view],
                             capture_output=True, text=True, timeout=timeout, env=env)
        if run.returncode != 0 or not os.path.exists(dst):
            raise RuntimeError(f"rendering failed in the child process (exit {run.returncode}): "
                               f"{run.stderr[-1500:]}")
        with np.load(dst) as f:
            return {k: f[k] for k in rows}


def try_render(rows: Mapping[str, Tensor], times: Sequence[int], size: Sequence[int]) -> tuple[Optional[dict], str]:
    """:func:`render_rows` of each row's states at ``times`` (width, height = ``size``): ``(frames, "")``, or
    ``(None, why)`` when no offscreen OpenGL context can be made here."""
    try:
        return render_rows({k: r[list(times)] for k, r in rows.items()}, width=size[0], height=size[1]), ""
    except RuntimeError as err:
        return None, f"offscreen rendering unavailable here: {str(err)[:300]}"


def paper_rows(record: Mapping) -> list[dict]:
    """The results page's rows for Fig. 12 / Table 2 and Fig. 13, from this chapter's metrics JSON ``record``.

    Fig. 12 counts as reproduced for a setting when every EBM run beats every FC run by more than the floor (the
    rule of :func:`verdict`); the item is "reproduced" when both settings are, "partly" when one is."""
    m = record["metrics"]
    runs, floor, n = m["frechet_average_runs"], m["frechet_floor_average"], m["n_per_half"]
    won, parts = [], []
    for setting, _ in SETTINGS:
        e, f = runs[f"EBM {setting}"], runs[f"FC {setting}"]
        won.append(min(f) - max(e) > floor)
        parts.append(f"{setting} EBM {_spread(e)} vs FC {_spread(f)}")
    verdict_12 = "reproduced" if all(won) else "partly reproduced" if any(won) else "not reproduced"
    chosen = ", settings chosen on a validation split" if m.get("tuning", {}).get("seconds") else ""
    data = (f"scripted-policy MuJoCo hand, {m['data']['n_train']} training trajectories, {n} roll-outs "
            f"({m['training_runs']} training runs{chosen})")
    note = "normalised units; a difference counts only beyond the truth-against-truth floor"
    r2 = m.get("action_determinism_r2")
    if r2 is not None:
        note += (f"; a linear map of (s_t, a_t) explains {r2['from s_t and a_t']['whole state']:.0%} of the next "
                 f"displacement, of s_t alone {r2['from s_t']['whole state']:.0%}")
    return [dict(item="Fig. 12 / Table 2", ours="; ".join(parts) + f"; floor {floor:.2f}", verdict=verdict_12,
                 note=note, data=data),
            dict(item="Fig. 13", ours=f"two EBM roll-outs from one start state end {m['fig13_sample_gap']:.2f} "
                 "normalised units apart; the unconditional FC moves "
                 f"{m['motion_per_step']['FC unconditional']:.2f} per step vs truth {m['motion_per_step']['truth']:.2f}",
                 verdict="shown (qualitative)", note="", data=data)]
