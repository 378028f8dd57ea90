"""Training an EBM with Algorithm 1: contrastive divergence with Langevin negatives, a replay buffer and an L2
energy regulariser, optimised by Adam(beta1 = 0) with A.7's gradient clipping.

Everything random (data batches, chain initialisation, Langevin noise) draws from one ``torch.Generator``
owned by the trainer, so a run resumed from a checkpoint continues bit for bit as if it had never stopped.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from tqdm.auto import tqdm

from ebmlib.core.buffer import ReplayBuffer
from ebmlib.core.checkpoint import load_checkpoint, save_checkpoint
from ebmlib.core.samplers import PaperLangevin, Sampler

__all__ = ["TrainConfig", "Trainer", "KLTrainer", "TrainingDiverged", "ebm_loss", "kl_last_step",
           "clip_grad_by_adam_moments", "frozen"]

INIT_MODES = ("replay", "noise", "persistent")


@dataclass
class TrainConfig:
    """Hyperparameters of Algorithm 1; defaults are the paper's CIFAR-10 settings (A.7)."""

    batch_size: int = 128            # positives per step; as many negatives
    n_steps: int = 60                # Langevin steps K per negative
    step_size: float = 10.0          # Langevin step on the (clipped) gradient
    noise_std: float = 0.005         # Langevin noise std, decoupled from the step (A.7)
    grad_clip: Optional[float] = 0.01  # per-value clip of grad_x E in Langevin (A.7)
    data_range: tuple[float, float] = (0.0, 1.0)  # uniform restarts and chain clamping
    clamp_chains: bool = True
    init: str = "replay"             # "replay" (section 3.2), "noise" (short-run from U), "persistent" (PCD)
    buffer_capacity: int = 10_000
    replay_fraction: float = 0.95
    alpha: float = 1.0               # L2 energy coefficient (section 3.3)
    lr: float = 1e-4
    betas: tuple[float, float] = (0.0, 0.999)
    adam_clip_std: Optional[float] = 3.0   # clip grads beyond 3 std of Adam's 2nd moment (A.7)
    adam_clip_floor: float = 0.1
    checkpoint_every: int = 100      # iterations between checkpoints / rollback snapshots
    max_abs_energy: float = 1e4      # divergence guard: |E| above this (or NaN) triggers a rollback
    max_rollbacks: int = 3           # consecutive rollbacks before giving up
    rollback_lr_factor: float = 0.5  # learning rate multiplier applied at each rollback
    seed: int = 0
    autocast_dtype: Optional[str] = None  # "bfloat16" to run the energy net in bf16 during sampling
    channels_last: bool = False      # NHWC memory layout for image models (faster convolutions on CPU)

    def __post_init__(self):
        checks = {
            "batch_size": self.batch_size >= 1, "n_steps": self.n_steps >= 0, "step_size": self.step_size > 0,
            "noise_std": self.noise_std >= 0, "alpha": self.alpha >= 0, "lr": self.lr > 0,
            "buffer_capacity": self.buffer_capacity >= 1, "replay_fraction": 0 <= self.replay_fraction <= 1,
            "checkpoint_every": self.checkpoint_every >= 1, "max_abs_energy": self.max_abs_energy > 0,
            "data_range": self.data_range[0] < self.data_range[1], "init": self.init in INIT_MODES,
            "autocast_dtype": self.autocast_dtype in (None, "bfloat16", "float16"),
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError("invalid TrainConfig: " + ", ".join(f"{k}={getattr(self, k)!r}" for k in bad)
                             + f" (init must be one of {INIT_MODES})")
        self.data_range = tuple(float(v) for v in self.data_range)
        self.betas = tuple(float(v) for v in self.betas)

    def make_sampler(self) -> Sampler:
        dtype = getattr(torch, self.autocast_dtype) if self.autocast_dtype else None
        return PaperLangevin(self.step_size, self.noise_std, self.grad_clip, autocast_dtype=dtype)


class TrainingDiverged(RuntimeError):
    """Raised when energies keep running away after ``max_rollbacks`` rollbacks."""


def ebm_loss(e_pos: Tensor, e_neg: Tensor, alpha: float) -> Tensor:
    """Algorithm 1: mean of alpha (E(x+)^2 + E(x-)^2) + E(x+) - E(x-).

    The ML gradient (eq. (8)) lowers the energy of data and raises that of negatives; the L2 term keeps both
    near zero so the energies stay numerically tame (section 3.3). ``e_neg`` must come from detached x-.
    """
    return (alpha * (e_pos.pow(2) + e_neg.pow(2)) + e_pos - e_neg).mean()


@torch.no_grad()
def clip_grad_by_adam_moments(optimizer: torch.optim.Adam, n_std: float = 3.0, floor: float = 0.1) -> None:
    """A.7: clip each gradient element to +-(n_std * sqrt(v_hat) + floor), v_hat Adam's bias-corrected 2nd moment.

    Before Adam's first step v_hat is 0, so the bound is ``floor`` (as in the paper's release).
    """
    for group in optimizer.param_groups:
        beta2 = group["betas"][1]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = optimizer.state.get(p, {})
            if "exp_avg_sq" in state and float(state["step"]) > 0:
                v_hat = state["exp_avg_sq"] / (1 - beta2 ** float(state["step"]))
                bound = n_std * v_hat.sqrt() + floor
                p.grad.copy_(torch.maximum(torch.minimum(p.grad, bound), -bound))
            else:
                p.grad.clamp_(-floor, floor)


@contextlib.contextmanager
def frozen(model: nn.Module):
    """Switch off parameter gradients (sampling needs grad_x E only) and compute spectrally normalised weights once."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        with parametrize.cached():
            yield model
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)


DataSource = Union[Tensor, tuple, Callable]


class Trainer:
    """Runs Algorithm 1 on a model and a data source, with checkpoints, exact resume and a divergence guard.

    Args:
        model: an energy network, ``model(x)`` or ``model(x, y)`` -> (N,).
        data: a tensor of training points (N, ...); a pair (x, labels); or a callable
            ``data(batch_size, generator)`` returning x or (x, labels), e.g. a 2D target's ``sample``.
        config: :class:`TrainConfig`.
        transform: optional ``transform(x, generator)`` applied to each positive batch (e.g. dequantisation).
        ckpt_dir: where ``last.pt`` and ``metrics.jsonl`` go; None keeps rollback snapshots in memory only.
        sampler: override the Langevin sampler built from the config.
    """

    def __init__(self, model: nn.Module, data: DataSource, config: TrainConfig = TrainConfig(),
                 transform: Optional[Callable] = None, ckpt_dir: Optional[str | os.PathLike] = None,
                 sampler: Optional[Sampler] = None, device: str | torch.device = "cpu"):
        self.config = config
        self.device = torch.device(device)
        self.model = model.to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.data, self.labels, self.data_fn = self._split_data(data)
        self.transform = transform
        self.sampler = sampler if sampler is not None else config.make_sampler()
        self.generator = torch.Generator().manual_seed(config.seed)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, betas=config.betas)
        self.sample_shape = self._sample_shape()
        low, high = config.data_range
        self.buffer = ReplayBuffer(config.buffer_capacity, self.sample_shape, low, high,
                                   config.replay_fraction if config.init == "replay" else 0.0)
        self.chains: Optional[Tensor] = None  # persistent chains (init="persistent")
        self.iteration = 0
        self.history: list[dict] = []
        self.rollbacks = 0           # total rollbacks so far
        self._streak = 0             # consecutive rollbacks without a newly verified snapshot in between
        self.lr_scale = 1.0
        self.ckpt_dir = Path(ckpt_dir) if ckpt_dir is not None else None
        # A step's energies are measured *before* its update, so a snapshot is only known to be good once the
        # next step's energies, computed with its parameters, pass the guard: it waits in _pending until then.
        self._good = self._state()
        self._pending: Optional[dict] = None

    # -- data ----------------------------------------------------------------------------------------------
    @staticmethod
    def _split_data(data):
        if torch.is_tensor(data):
            return data, None, None
        if isinstance(data, tuple) and len(data) == 2 and all(torch.is_tensor(t) for t in data):
            x, y = data
            if x.shape[0] != y.shape[0]:
                raise ValueError(f"data and labels differ in length: {x.shape[0]} vs {y.shape[0]}")
            return x, y, None
        if callable(data):
            return None, None, data
        raise TypeError(f"data must be a tensor, a (tensor, labels) pair or a callable(n, generator); got {type(data).__name__}")

    def _sample_shape(self) -> tuple[int, ...]:
        if self.data is not None:
            if self.data.shape[0] == 0:
                raise ValueError("the training data is empty")
            return tuple(self.data.shape[1:])
        x, _ = self._unpack(self.data_fn(1, torch.Generator().manual_seed(0)))
        return tuple(x.shape[1:])

    @staticmethod
    def _unpack(batch):
        return batch if isinstance(batch, tuple) else (batch, None)

    def next_batch(self) -> tuple[Tensor, Optional[Tensor]]:
        """Positives x+ ~ p_D (drawn with replacement using the trainer's generator) and their labels."""
        n = self.config.batch_size
        if self.data_fn is not None:
            x, y = self._unpack(self.data_fn(n, self.generator))
        else:
            idx = torch.randint(self.data.shape[0], (n,), generator=self.generator)
            x, y = self.data[idx], (self.labels[idx] if self.labels is not None else None)
        if self.transform is not None:
            x = self.transform(x, self.generator)
        return self._to_device(x), (y.to(self.device) if y is not None else None)

    def _to_device(self, x: Tensor) -> Tensor:
        x = x.to(self.device, torch.float32)
        if self.config.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    # -- negatives -----------------------------------------------------------------------------------------
    def initial_states(self, n: int) -> Tensor:
        if self.config.init == "persistent":
            if self.chains is None:
                self.chains = self.buffer.uniform(n, self.generator)
            return self.chains.clone()
        return self.buffer.initial_states(n, self.generator)  # replay_fraction 0 for init="noise"

    def negatives(self, n: int, y: Optional[Tensor] = None, n_steps: Optional[int] = None) -> Tensor:
        """x- = Omega(x~^K): K Langevin steps from the buffer / noise / persistent chains, detached."""
        x0 = self._to_device(self.initial_states(n))
        return self.run_chains(x0, self.config.n_steps if n_steps is None else n_steps, y)

    def run_chains(self, x0: Tensor, n_steps: int, y: Optional[Tensor] = None) -> Tensor:
        """``n_steps`` steps of the trainer's sampler from ``x0`` with the parameters frozen, detached."""
        clamp = self.config.data_range if self.config.clamp_chains else None
        with frozen(self.model):
            return self.sampler.run(self.model, x0, n_steps, y=y, clamp=clamp, generator=self.generator).x

    def extra_loss(self, x_neg: Tensor, y: Optional[Tensor]) -> dict[str, Tensor]:
        """Terms added to Algorithm 1's loss, by name (logged with the metrics); none here."""
        return {}

    # -- one iteration of Algorithm 1 ----------------------------------------------------------------------
    def step(self) -> dict:
        x_pos, y = self.next_batch()
        x_neg = self.negatives(x_pos.shape[0], y)
        e_pos = self.model(x_pos) if y is None else self.model(x_pos, y)
        e_neg = self.model(x_neg) if y is None else self.model(x_neg, y)
        loss = ebm_loss(e_pos, e_neg, self.config.alpha)
        extra = self.extra_loss(x_neg, y)
        for term in extra.values():
            loss = loss + term
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.adam_clip_std is not None:
            clip_grad_by_adam_moments(self.optimizer, self.config.adam_clip_std, self.config.adam_clip_floor)
        self.optimizer.step()
        if self.config.init == "persistent":
            self.chains = x_neg.detach().cpu()
        else:
            self.buffer.push(x_neg)
        self.iteration += 1
        return {"iteration": self.iteration, "loss": loss.item(), "e_pos": e_pos.mean().item(),
                "e_neg": e_neg.mean().item(), "e_pos_std": e_pos.std().item() if e_pos.numel() > 1 else 0.0,
                "max_abs_energy": torch.cat([e_pos, e_neg]).abs().max().item(),
                **{k: v.item() for k, v in extra.items()}}

    def _diverged(self, m: dict) -> bool:
        return not math.isfinite(m["loss"]) or not m["max_abs_energy"] < self.config.max_abs_energy

    def train(self, n_iters: int, progress: bool = True, callback: Optional[Callable[[dict], None]] = None) -> list[dict]:
        """Run ``n_iters`` more iterations; returns the full metrics history."""
        if not isinstance(n_iters, int) or n_iters < 0:
            raise ValueError(f"n_iters must be a non-negative int, got {n_iters!r}")
        target = self.iteration + n_iters
        bar = tqdm(total=n_iters, disable=not progress, desc="train", leave=False)
        while self.iteration < target:
            before = self.iteration
            m = self.step()
            if self._diverged(m):
                self._rollback(m)
                bar.update(self.iteration - before)
                continue
            if self._pending is not None:  # the parameters of the last snapshot just produced sane energies
                self._good, self._pending, self._streak = self._pending, None, 0
            self.history.append(m)
            self._log(m)
            if callback is not None:
                callback(m)
            bar.update(1)
            bar.set_postfix(e_pos=f"{m['e_pos']:.3f}", e_neg=f"{m['e_neg']:.3f}")
            if self.iteration % self.config.checkpoint_every == 0:
                self.checkpoint()
        bar.close()
        return self.history

    # -- divergence guard ----------------------------------------------------------------------------------
    def _rollback(self, m: dict) -> None:
        """Revert to the last good checkpoint and continue with a smaller learning rate (A.8 on runs whose
        energies diverge; [nijkamp2019learning] in references.bib discusses such instabilities).

        The RNG is *not* rewound, so the retried iterations see new batches and noise.
        """
        self._streak += 1
        if self._streak > self.config.max_rollbacks:
            raise TrainingDiverged(f"energies ran away at iteration {m['iteration']} (loss {m['loss']}, "
                                   f"max |E| {m['max_abs_energy']:.3g} > {self.config.max_abs_energy}) "
                                   f"{self._streak} times in a row; last good iteration {self._good['iteration']}")
        # What the rollback must not undo: the RNG stream, the count of rollbacks, the compounding lr cut, and
        # the rollback events logged since the snapshot (the undone iterations' metrics are dropped).
        gen_state, rollbacks, lr_scale = self.generator.get_state(), self.rollbacks, self.lr_scale
        events = [h for h in self.history[len(self._good["history"]):] if h.get("event") == "rollback"]
        self._load_state(self._good)
        self._pending = None
        self.generator.set_state(gen_state)
        self.history.extend(events)
        self.rollbacks = rollbacks + 1
        self.lr_scale = lr_scale * self.config.rollback_lr_factor
        for g in self.optimizer.param_groups:
            g["lr"] = self.config.lr * self.lr_scale
        event = {"iteration": m["iteration"], "event": "rollback", "to_iteration": self.iteration,
                 "loss": m["loss"], "max_abs_energy": m["max_abs_energy"], "lr": self.config.lr * self.lr_scale}
        self.history.append(event)
        self._log(event)

    # -- checkpoints ---------------------------------------------------------------------------------------
    def _state(self) -> dict:
        return copy.deepcopy({
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "buffer": self.buffer.state_dict(), "chains": self.chains, "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(), "iteration": self.iteration, "history": self.history,
            "lr_scale": self.lr_scale, "rollbacks": self.rollbacks, "config": asdict(self.config),
        })

    def _load_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.buffer.load_state_dict(state["buffer"])
        self.chains = state["chains"]
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.iteration = int(state["iteration"])
        self.history = list(state["history"])
        self.lr_scale = float(state["lr_scale"])
        self.rollbacks = int(state["rollbacks"])

    def checkpoint(self) -> Optional[Path]:
        """Snapshot the full training state (in memory, and atomically to ``ckpt_dir/last.pt`` if set).

        The in-memory snapshot becomes the rollback target once the next iteration passes the guard.
        """
        self._pending = self._state()
        if self.ckpt_dir is None:
            return None
        return save_checkpoint(self._pending, self.ckpt_dir / "last.pt")

    def resume(self, path: Optional[str | os.PathLike] = None) -> "Trainer":
        """Load ``path`` (default ``ckpt_dir/last.pt``) and continue exactly where it was written."""
        if path is None:
            if self.ckpt_dir is None:
                raise ValueError("resume() needs a path when the trainer has no ckpt_dir")
            path = self.ckpt_dir / "last.pt"
        state = load_checkpoint(path, map_location=self.device)
        saved = {k: (tuple(v) if isinstance(v, list) else v) for k, v in state["config"].items()}
        mine = asdict(self.config)
        if saved != mine:
            diff = {k: (saved.get(k), mine.get(k)) for k in mine if saved.get(k) != mine.get(k)}
            raise ValueError(f"checkpoint {path} was written with another config (saved, now): {diff}")
        self._load_state(state)
        self._good, self._pending = self._state(), None
        if self.ckpt_dir is not None:  # the log may hold iterations past the checkpoint: rewrite it
            self._rewrite_log()
        return self

    # -- metrics log ---------------------------------------------------------------------------------------
    def _log(self, record: dict) -> None:
        if self.ckpt_dir is None:
            return
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        with open(self.ckpt_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def _rewrite_log(self) -> None:
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        with open(self.ckpt_dir / "metrics.jsonl", "w") as f:
            for record in self.history:
                f.write(json.dumps(record) + "\n")


# -- A.5: the KL term ------------------------------------------------------------------------------------------
def _soft_clip(g: Tensor, c: Optional[float]) -> Tensor:
    # A.7 clips grad_x E per value; a hard clip has zero derivative where it binds, so the differentiable step
    # uses c * tanh(g / c): the same within |g| << c and at the bound, but with a gradient everywhere.
    return g if c is None else c * torch.tanh(g / c)


def kl_last_step(model: nn.Module, x: Tensor, y: Optional[Tensor], step_size: float,
                 grad_clip: Optional[float], data_range: tuple[float, float] = (0.0, 1.0)) -> Tensor:
    """A.5's KL term through one differentiable Langevin step from ``x`` (detached): mean of stopgrad(E)(x').

    x' = x - step * clip(grad_x E_theta(x)) depends on theta through the gradient (create_graph); the energy of x'
    is read with the parameters held fixed (E-bar in eq. (9)), so the loss only moves theta to make the sampler
    land lower. The entropy term is dropped, as in the paper.
    """
    x = x.detach().requires_grad_(True)
    e = model(x) if y is None else model(x, y)
    (g,) = torch.autograd.grad(e.sum(), x, create_graph=True)
    x_new = (x - step_size * _soft_clip(g, grad_clip)).clamp(*data_range)
    with frozen(model):
        return (model(x_new) if y is None else model(x_new, y)).mean()


class KLTrainer(Trainer):
    """Algorithm 1 plus A.5's KL term: ``loss = CD + kl_weight * E_q[stopgrad(E)(x-)]``.

    Negatives take K - 1 steps of the sampler, then one more; the KL term differentiates through a noiseless
    copy of that last step (:func:`kl_last_step`). Everything else (replay buffer, checkpoints, exact resume,
    the divergence guard) is :class:`Trainer`'s.
    """

    def __init__(self, *args, kl_weight: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        if not kl_weight >= 0:
            raise ValueError(f"kl_weight must be >= 0, got {kl_weight!r}")
        self.kl_weight = float(kl_weight)
        self._before_last: Optional[Tensor] = None

    def negatives(self, n: int, y: Optional[Tensor] = None, n_steps: Optional[int] = None) -> Tensor:
        k = self.config.n_steps if n_steps is None else n_steps
        x = self.run_chains(self._to_device(self.initial_states(n)), max(k - 1, 0), y)
        self._before_last = x
        return self.run_chains(x, 1, y) if k >= 1 else x

    def extra_loss(self, x_neg: Tensor, y: Optional[Tensor]) -> dict[str, Tensor]:
        kl = kl_last_step(self.model, self._before_last, y, self.config.step_size, self.config.grad_clip,
                          self.config.data_range)
        return {"kl": self.kl_weight * kl}
