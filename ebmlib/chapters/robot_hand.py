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
:class:`~ebmlib.core.samplers.PaperLangevin` on ``E(z | s_t [, a_t])``. Prediction runs the very same chain, so the
model is trained for the sampler it is used with (short-run sampling); the random start is what makes its
predictions diverse. The paper does not say how its chains were initialised: this is our choice.

**Evaluation.** :func:`rollout` feeds each prediction back as the next input for many steps; the
action-conditional models use the test trajectory's recorded actions. :func:`frechet_curve` fits a Gaussian to
all predicted states and to all true states at each time step and takes their Frechet distance
(:func:`ebmlib.core.metrics.frechet_distance`, section 5.1); :func:`mse_curve` is the multi-step MSE the paper found
insufficient.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ebmlib.core.checkpoint import load_checkpoint, save_checkpoint
from ebmlib.core.metrics import gaussian_frechet
from ebmlib.core.nets import MLPEnergy, maybe_spectral_norm, activation
from ebmlib.core.device import resolve as resolve_device
from ebmlib.core.samplers import PaperLangevin
from ebmlib.core.train import TrainConfig, Trainer, frozen

__all__ = [
    "STATE_DIM", "ACTION_DIM", "Normaliser", "SamplingConfig", "TransitionEnergy", "FCDynamics", "TransitionTrainer", "DynamicsModel",
    "transition_tensors", "train_ebm", "train_fc", "rollout", "frechet_curve", "mse_curve", "load_or_generate",
    "save_models", "load_models", "render_rows",
]

STATE_DIM = 31   # 24 joint angles + cube position (3) + cube quaternion (4); ebmlib.data.hand
ACTION_DIM = 20  # position-actuator targets in [-1, 1]


def _as_tensor(a, name: str, last: int) -> Tensor:
    t = torch.as_tensor(np.asarray(a) if not torch.is_tensor(a) else a, dtype=torch.float32)
    if t.ndim < 1 or t.shape[-1] != last:
        raise ValueError(f"{name} must have a last dimension of {last}, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return t


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
    def fit(cls, states, min_std: float = 1e-4) -> "Normaliser":
        """Fit on training ``states`` of shape ``(n, length + 1, 31)``."""
        s = _as_tensor(states, "states", STATE_DIM).double()
        if s.ndim != 3 or s.shape[1] < 2:
            raise ValueError(f"states must have shape (n, length + 1, {STATE_DIM}) with length >= 1, got {tuple(s.shape)}")
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
                             f"({'state + action' if self.conditional else 'state only'}), got {tuple(context.shape)}")
        return self.net(torch.cat([context, z], -1))


class FCDynamics(nn.Module):
    """The feed-forward baseline of section 5.1: context -> 3 x 128 (swish) -> the normalised displacement
    ``z`` (N, 31). Spectral normalisation on the hidden layers bounds their Lipschitz constant and so the growth
    of errors fed back over a roll-out ("to prevent multi-step explosion"); the output layer is left free, as in
    the energy networks (:class:`ebmlib.core.nets.MLPEnergy`), because a network of 1-Lipschitz layers only cannot
    represent the gain from an action to its displacement (in these units about 2)."""

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


class DynamicsModel:
    """A trained network with its normaliser: ``predict`` one step, ``rollout`` many (EBM or FC alike)."""

    def __init__(self, net: nn.Module, norm: Normaliser, sampling: Optional[SamplingConfig] = None):
        if not isinstance(net, (TransitionEnergy, FCDynamics)):
            raise TypeError(f"net must be a TransitionEnergy or FCDynamics, got {type(net).__name__}")
        self.net, self.norm = net.eval(), norm
        self.kind = "ebm" if isinstance(net, TransitionEnergy) else "fc"
        self.conditional = net.conditional
        self.sampling = sampling if sampling is not None else SamplingConfig()

    def __repr__(self) -> str:
        return f"DynamicsModel({self.kind}, {'action-conditional' if self.conditional else 'unconditional'})"

    def predict(self, s: Tensor, a: Optional[Tensor] = None, generator: Optional[torch.Generator] = None) -> Tensor:
        """``s_{t+1}`` (N, 31) from ``s_t`` (N, 31) [and ``a_t`` (N, 20)]: the FC's output, or one Langevin
        sample of the EBM started from ``N(0, init_std^2)``."""
        s = _as_tensor(s, "s", STATE_DIM)
        if self.conditional and a is None:
            raise ValueError("an action-conditional model needs the actions a")
        if not self.conditional and a is not None:
            raise ValueError("an unconditional model takes no actions")
        a = _as_tensor(a, "a", ACTION_DIM) if a is not None else None
        context = _context(self.norm, s, a)
        if self.kind == "fc":
            with torch.no_grad():
                z = self.net(context)
        else:
            cfg = self.sampling
            z0 = cfg.init_std * torch.randn(s.shape, generator=generator)
            with frozen(self.net):
                z = cfg.sampler().run(self.net, z0, cfg.n_steps, y=context, generator=generator).x
        return self.norm.next_state(s, z)


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
            raise ValueError(f"actions must have shape ({s.shape[0]}, >= {horizon}, {ACTION_DIM}), got {tuple(actions.shape)}")
    elif actions is not None:
        raise ValueError("an unconditional model takes no actions")
    out = [s]
    for t in tqdm(range(horizon), disable=not progress, desc=f"roll-out {model.kind}", leave=False):
        s = model.predict(s, actions[:, t] if model.conditional else None, generator)
        out.append(s)
    return torch.stack(out, 1)


# ---------------------------------------------------------------------------------------------------- training
class TransitionTrainer(Trainer):
    """Algorithm 1 on ``E(z | context)`` (:class:`ebmlib.core.train.Trainer`: Adam(beta1=0), A.7's gradient clip,
    divergence guard), with the negatives' chains started from ``N(0, init_std^2)`` instead of the replay buffer:
    a replayed ``z`` belongs to another context, and prediction starts from noise too."""

    def __init__(self, model: TransitionEnergy, z: Tensor, context: Tensor, config: TrainConfig,
                 init_std: float = 1.0, **kwargs):
        super().__init__(model, (z, context), config, **kwargs)
        self.init_std = float(init_std)

    def initial_states(self, n: int) -> Tensor:
        return self.init_std * torch.randn((n, *self.sample_shape), generator=self.generator)


def train_ebm(data: Dict[str, Any], norm: Normaliser, conditional: bool, n_iters: int,
              sampling: SamplingConfig = SamplingConfig(), batch_size: int = 128, lr: float = 1e-4,
              alpha: float = 1.0, hidden: int = 128, seed: int = 0, progress: bool = True,
              device: Optional[str | torch.device] = None) -> tuple[DynamicsModel, list]:
    """Train an EBM dynamics model on the training trajectories ``data``; returns it (on the CPU) and the
    metrics history. ``device`` defaults to CUDA when available.

    Defaults are A.7's: batch 128, Adam(0, 0.999) at 1e-4, L2 coefficient 1, Langevin step 10, noise 0.005,
    per-value gradient clip 0.01, and 10 steps for the robot.
    """
    torch.manual_seed(seed)  # network initialisation
    net = TransitionEnergy(conditional, hidden=hidden)
    z, context = transition_tensors(data, norm, conditional)
    cfg = TrainConfig(batch_size=batch_size, n_steps=sampling.n_steps, step_size=sampling.step_size,
                      noise_std=sampling.noise_std, grad_clip=sampling.grad_clip, clamp_chains=False, init="noise",
                      buffer_capacity=batch_size, alpha=alpha, lr=lr, seed=seed, checkpoint_every=100)
    trainer = TransitionTrainer(net, z, context, cfg, init_std=sampling.init_std, device=_device(device))
    history = trainer.train(n_iters, progress=progress)
    return DynamicsModel(trainer.model.cpu(), norm, sampling), history


def train_fc(data: Dict[str, Any], norm: Normaliser, conditional: bool, n_iters: int, batch_size: int = 128,
             lr: float = 1e-3, hidden: int = 128, seed: int = 0, progress: bool = True,
             device: Optional[str | torch.device] = None) -> tuple[DynamicsModel, list]:
    """Train the spectrally normalised FC baseline by mean squared error on the normalised displacement;
    returns it (on the CPU) and the loss history. ``device`` defaults to CUDA when available."""
    if not isinstance(n_iters, int) or n_iters < 0:
        raise ValueError(f"n_iters must be an int >= 0, got {n_iters!r}")
    torch.manual_seed(seed)
    dev = _device(device)
    net = FCDynamics(conditional, hidden=hidden).to(dev)
    z, context = transition_tensors(data, norm, conditional)
    z, context = z.to(dev), context.to(dev)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    history = []
    for it in tqdm(range(n_iters), disable=not progress, desc="train FC", leave=False):
        idx = torch.randint(z.shape[0], (batch_size,), generator=gen).to(dev)
        loss = (net(context[idx]) - z[idx]).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append({"iteration": it + 1, "loss": loss.item()})
    return DynamicsModel(net.cpu(), norm), history


def _device(device: Optional[str | torch.device]) -> torch.device:
    return resolve_device(device)


# ---------------------------------------------------------------------------------------------------- metrics
def _check_pair(pred, truth) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred.detach().cpu() if torch.is_tensor(pred) else pred, dtype=np.float64)
    t = np.asarray(truth.detach().cpu() if torch.is_tensor(truth) else truth, dtype=np.float64)
    if p.ndim != 3 or p.shape[0] < 2 or p.shape[2] != STATE_DIM:
        raise ValueError(f"predictions must have shape (N >= 2, T, {STATE_DIM}), got {p.shape}")
    if t.shape[0] < 2 or t.shape[1:] != p.shape[1:] or t.ndim != 3:
        raise ValueError(f"true states must have shape (M >= 2, {p.shape[1]}, {STATE_DIM}) like the predictions "
                         f"{p.shape}, got {t.shape}")
    return p, t


def frechet_curve(pred, truth, norm: Optional[Normaliser] = None) -> np.ndarray:
    """Section 5.1: at each time step t, the Frechet distance between Gaussians fitted to all predicted states
    ``pred[:, t]`` and all true states ``truth[:, t]`` (N, T, 31 each). With ``norm`` the states are first put
    in normalised units (each coordinate's training spread = 1); without, in raw units (rad, m, quaternion)."""
    p, t = _check_pair(pred, truth)
    if norm is not None:
        mean, std = norm.mean.double().numpy(), norm.std.double().numpy()
        p, t = (p - mean) / std, (t - mean) / std
    return np.array([gaussian_frechet(p[:, k], t[:, k]) for k in range(p.shape[1])])


def mse_curve(pred, truth, norm: Optional[Normaliser] = None) -> np.ndarray:
    """Multi-step mean squared error per time step, averaged over trajectories and coordinates (pred and truth
    paired trajectory by trajectory), in normalised units if ``norm`` is given."""
    p, t = _check_pair(pred, truth)
    if p.shape[0] != t.shape[0]:
        raise ValueError(f"MSE pairs predictions with their own trajectories: {p.shape[0]} vs {t.shape[0]}")
    if norm is not None:
        std = norm.std.double().numpy()
        p, t = p / std, t / std
    return ((p - t) ** 2).mean(axis=(0, 2))


# ---------------------------------------------------------------------------------------------------- data and files
def load_or_generate(n_traj: int, seed: int = 0, length: int = 100, workers: int = 1,
                     root: Optional[str | os.PathLike] = None, progress: bool = True) -> tuple[Dict[str, Any], str]:
    """The hand data set of ``n_traj`` trajectories: loaded from ``hand.default_path`` if it is there, else
    generated and saved there. Returns the data and ``"loaded <path>"`` or ``"generated <path>"``."""
    from ebmlib.data import hand  # needs mujoco

    path = hand.default_path(n_traj, seed, length, root)
    if path.is_file():
        return hand.load_trajectories(path), f"loaded {path}"
    data = hand.generate_trajectories(n_traj, seed=seed, length=length, workers=workers, progress=progress)
    hand.save_trajectories(path, data)
    return data, f"generated {path}"


def save_models(path: str | os.PathLike, models: Dict[str, DynamicsModel]) -> Path:
    """Write trained models (weights, normaliser, settings) to one checkpoint, atomically."""
    state = {}
    for name, m in models.items():
        state[name] = {"kind": m.kind, "conditional": m.conditional, "net": m.net.state_dict(),
                       "norm": m.norm.state_dict(), "sampling": asdict(m.sampling),
                       "hidden": m.net.hidden}
    return save_checkpoint({"models": state}, path)


def load_models(path: str | os.PathLike) -> Dict[str, DynamicsModel]:
    """Read :func:`save_models`'s checkpoint (``weights_only`` loading) back into :class:`DynamicsModel` s."""
    out = {}
    for name, s in load_checkpoint(path)["models"].items():
        cls = TransitionEnergy if s["kind"] == "ebm" else FCDynamics
        net = cls(s["conditional"], hidden=s["hidden"])
        net.load_state_dict(s["net"])
        norm = Normaliser(s["norm"]["mean"], s["norm"]["std"], s["norm"]["delta_std"])
        out[name] = DynamicsModel(net, norm, SamplingConfig(**s["sampling"]))
    return out


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
        a = np.asarray(v.detach().cpu() if torch.is_tensor(v) else v, dtype=np.float64)
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
            raise RuntimeError(f"rendering failed in the child process (exit {run.returncode}): {run.stderr[-1500:]}")
        with np.load(dst) as f:
            return {k: f[k] for k in rows}
