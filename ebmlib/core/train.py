"""Training an EBM with Algorithm 1: contrastive divergence with Langevin negatives, a replay buffer and an L2
energy regulariser, optimised by Adam(beta1 = 0) with A.7's gradient clipping.

Everything random (data batches, chain initialisation, Langevin noise) draws from one ``torch.Generator``
owned by the trainer, so a run resumed from a checkpoint continues bit for bit as if it had never stopped.

A run folder (``ckpt_dir``) holds what a resumed run and a reader of the run may trust:

* ``last.pt``: the newest state that has passed the divergence guard (the run's initial state at first, then each
  snapshot once the next iteration's energies, computed with its parameters, pass; after a rollback, the state
  rolled back to). A newer snapshot waits in ``pending.pt`` until then: :meth:`Trainer.resume` loads it and the
  first guarded step re-confirms it (or rolls back to ``last.pt``).
* ``metrics.jsonl``: always the trainer's ``history`` (one record per kept iteration, plus rollback events),
  rewritten atomically when a run starts, resumes or rolls back; ``undone.jsonl``: the records of the iterations
  that rollbacks undid.
* ``.lock``: the pid of the one process writing the folder (:class:`~ebmlib.core.checkpoint.FolderLock`).

A fresh Trainer refuses a folder that holds a run unless told :meth:`~Trainer.resume` or ``overwrite=True``.

On several processes (``world``, a :class:`~ebmlib.core.distributed.World` of ``N`` ranks started by torchrun), each
rank holds a Trainer on the same config and run folder: ``batch_size`` stays the batch of one update (A.7's 128),
each rank drawing ``batch_size / N`` positives from its own shard of the data (rows ``rank::N``; a callable source
is drawn with the rank's own generator) and as many negatives from its own replay buffer of ``buffer_capacity / N``
samples (rounded up), with its own generator (:func:`~ebmlib.core.distributed.rank_seed`). The energy of the loss
runs through ``DistributedDataParallel``, which averages the parameter gradients (each on its own:
:func:`~ebmlib.core.distributed.allreduce_each`), so every rank takes the same Adam step (A.7's clip acts on the
averaged gradient); Langevin chains run through the plain module, with no collective.
The divergence guard decides on the ranks' metrics together (one ``all_gather`` per iteration: the log's record is
the mean over ranks, the max for ``max_abs_energy``), so a runaway energy on one rank rolls every rank back to the
same snapshot, each to its own buffer and generator. Only rank 0 touches the run folder (lock, checkpoints, logs):
a checkpoint holds the shared state (weights, optimizer, history: equal on every rank) once and every rank's own
part (buffer, chains, generator, global RNG) under ``ranks``, with ``world_size``; it resumes only at that world
size (:class:`WorldSizeMismatch` otherwise), each rank getting its own part back.
"""
from __future__ import annotations

import copy
import inspect
import json
import math
import numbers
import os
import warnings
import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional, Union

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ebmlib.core.buffer import ReplayBuffer
from ebmlib.core.checkpoint import (CheckpointError, FolderLock, atomic_write, checksum, load_checkpoint,
                                    remove_orphans, save_checkpoint)
from ebmlib.core.distributed import SINGLE, World, allreduce_each, rank_seed
from ebmlib.core.samplers import NonFiniteEnergy, PaperLangevin, Sampler, frozen  # frozen: re-exported

__all__ = ["TrainConfig", "config_from", "lr_factor", "Trainer", "KLTrainer", "TrainingDiverged", "RunExists", "WorldSizeMismatch", "ebm_loss",
           "kl_last_step", "clip_grad_by_adam_moments", "frozen", "RUN_FILES", "RANK_KEYS", "describe_run"]

INIT_MODES = ("replay", "noise", "persistent")

#: the files a Trainer keeps in its run folder (besides ``.lock``)
RUN_FILES = ("last.pt", "pending.pt", "metrics.jsonl", "undone.jsonl")

#: the parts of a trainer's state that are each rank's own in a run on several processes (the rest is shared)
RANK_KEYS = ("buffer", "chains", "generator", "torch_rng")


def _int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and not math.isnan(v)


def _finite(v) -> bool:
    return _real(v) and math.isfinite(v)


def _pair(v, ok) -> bool:
    return isinstance(v, (tuple, list)) and len(v) == 2 and all(ok(a) for a in v)


#: each TrainConfig field: (is the value valid, what is expected)
_RULES: dict[str, tuple[Callable, str]] = {
    "batch_size": (lambda v: _int(v) and v >= 1, "an int >= 1"),
    "n_steps": (lambda v: _int(v) and v >= 0, "an int >= 0"),
    "step_size": (lambda v: _finite(v) and v > 0, "a finite number > 0"),
    "noise_std": (lambda v: _finite(v) and v >= 0, "a finite number >= 0"),
    "grad_clip": (lambda v: v is None or (_finite(v) and v > 0), "None or a finite number > 0"),
    "data_range": (lambda v: _pair(v, _finite) and v[0] < v[1], "a pair (low, high) of finite numbers, low < high"),
    "clamp_chains": (lambda v: isinstance(v, bool), "True or False"),
    "init": (lambda v: isinstance(v, str) and v in INIT_MODES, f"one of {INIT_MODES}"),
    "buffer_capacity": (lambda v: _int(v) and v >= 1, "an int >= 1"),
    "replay_fraction": (lambda v: _finite(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "alpha": (lambda v: _finite(v) and v >= 0, "a finite number >= 0"),
    "lr": (lambda v: _finite(v) and v > 0, "a finite number > 0"),
    "lr_decay_start": (lambda v: v is None or (_int(v) and v >= 0), "None or an int >= 0 (an iteration)"),
    "lr_decay_end": (lambda v: v is None or (_int(v) and v >= 1), "None or an int >= 1 (an iteration)"),
    "lr_decay_to": (lambda v: _finite(v) and 0 < v <= 1, "a number in (0, 1]"),
    "betas": (lambda v: _pair(v, lambda b: _finite(b) and 0 <= b < 1), "a pair of numbers in [0, 1)"),
    "adam_clip_std": (lambda v: v is None or (_finite(v) and v > 0), "None or a finite number > 0"),
    "adam_clip_floor": (lambda v: _finite(v) and v >= 0, "a finite number >= 0"),
    "checkpoint_every": (lambda v: _int(v) and v >= 1, "an int >= 1"),
    "max_abs_energy": (lambda v: _real(v) and math.isfinite(v) and v > 0,
                       "a finite number > 0 (the divergence guard's bound on |E|; inf would switch the guard off)"),
    "max_rollbacks": (lambda v: _int(v) and v >= 0, "an int >= 0"),
    "rollback_lr_factor": (lambda v: _finite(v) and 0 < v <= 1, "a number in (0, 1]"),
    "seed": (lambda v: _int(v) and -2 ** 63 <= v < 2 ** 64, "an int in [-2**63, 2**64)"),
    "autocast_dtype": (lambda v: v in (None, "bfloat16", "float16"), "None, 'bfloat16' or 'float16'"),
    "channels_last": (lambda v: isinstance(v, bool), "True or False"),
}


@dataclass
class TrainConfig:
    """Hyperparameters of Algorithm 1; defaults are the paper's CIFAR-10 settings (A.7). Every field is checked at
    construction; a bad value raises ValueError naming the field, the value and the range expected."""

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
    lr_decay_start: Optional[int] = None   # from this iteration the lr falls linearly ...
    lr_decay_end: Optional[int] = None     # ... to lr_decay_to x lr at this one, and stays there
    lr_decay_to: float = 0.1
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
        bad = []
        for name, (ok, expected) in _RULES.items():
            value = getattr(self, name)
            try:
                good = bool(ok(value))
            except TypeError:
                good = False
            if not good:
                bad.append(f"{name}={value!r} (expected {expected})")
        if (self.lr_decay_start is None) != (self.lr_decay_end is None):
            bad.append(f"lr_decay_start={self.lr_decay_start!r}, lr_decay_end={self.lr_decay_end!r} (expected both "
                       "None, or both set)")
        elif self.lr_decay_start is not None and not self.lr_decay_end > self.lr_decay_start:
            bad.append(f"lr_decay_end={self.lr_decay_end!r} (expected > lr_decay_start={self.lr_decay_start!r})")
        if bad:
            raise ValueError("invalid TrainConfig: " + "; ".join(bad))
        self.data_range = tuple(float(v) for v in self.data_range)
        self.betas = tuple(float(v) for v in self.betas)

    def make_sampler(self) -> Sampler:
        dtype = getattr(torch, self.autocast_dtype) if self.autocast_dtype else None
        return PaperLangevin(self.step_size, self.noise_std, self.grad_clip, autocast_dtype=dtype)


def lr_factor(config: TrainConfig, iteration: int) -> float:
    """The multiplier of ``config.lr`` at training ``iteration`` (counted from 1): 1 until ``lr_decay_start``,
    then linear to ``lr_decay_to`` at ``lr_decay_end``, constant after; 1 throughout without a decay. A late decay
    lets the model settle where its samples are good instead of stopping wherever the lr-1e-3 oscillation of
    the energy happens to be (chapter 03, section 5)."""
    start, end = config.lr_decay_start, config.lr_decay_end
    if start is None or iteration <= start:
        return 1.0
    if iteration >= end:
        return config.lr_decay_to
    return 1.0 - (1.0 - config.lr_decay_to) * (iteration - start) / (end - start)


def config_from(recipe_name: str, fields: Mapping) -> "TrainConfig":
    """A recipe's ``train`` mapping as a TrainConfig; an unknown field is an error naming it and the known ones."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"recipe {recipe_name!r} sets unknown TrainConfig fields {unknown}; known: {sorted(known)}")
    return TrainConfig(**fields)


class RunExists(RuntimeError):
    """A fresh Trainer was pointed at a run folder that already holds a run."""


class WorldSizeMismatch(RuntimeError):
    """A run saved by one number of processes was resumed by another: each rank's buffer and generator belong to
    one rank of one world size, so the run continues only at the size it was saved with."""


class TrainingDiverged(RuntimeError):
    """Raised when energies keep running away after ``max_rollbacks`` rollbacks; the trainer then holds its last
    good state again (and ``ckpt_dir/last.pt`` too), with a ``gave_up`` event at the end of its history."""


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


DataSource = Union[Tensor, tuple, Callable]

_CHECK_ROWS = 64          # rows of the data checked after the transform, at construction
_OUT_OF_RANGE_MAX = 0.01  # fraction of checked samples allowed outside data_range (Gaussian tails of 2D toys)


def _lines(records: list[dict]):
    return lambda f: f.write("".join(json.dumps(r) + "\n" for r in records).encode())


class Trainer:
    """Runs Algorithm 1 on a model and a data source, with checkpoints, exact resume and a divergence guard.

    Args:
        model: an energy network, ``model(x)`` or ``model(x, y)`` -> (N,), with float32 parameters.
        data: a tensor of training points (N, ...); a pair (x, labels); or a callable
            ``data(batch_size, generator)`` returning x or (x, labels), e.g. a 2D target's ``sample``.
        config: :class:`TrainConfig`.
        transform: optional ``transform(x, generator)`` applied to each positive batch (e.g. dequantisation).
        ckpt_dir: the run folder (``last.pt``, ``pending.pt``, ``metrics.jsonl``, ``.lock``; see the module
            docstring); None keeps rollback snapshots in memory only.
        sampler: override the Langevin sampler built from the config.
        overwrite: start a new run in a ``ckpt_dir`` that holds one (without it, :meth:`train` refuses such a
            folder unless :meth:`resume` was called).
        world: the processes training together (:class:`~ebmlib.core.distributed.World`; default one process).
            Every rank builds its Trainer with the same arguments (the same ``ckpt_dir`` too: only rank 0 opens it);
            see the module docstring.

    The data are checked once here, drawing from no generator of the run (the global RNG is restored): finite
    values; labels in [0, n_classes) when the model declares ``n_classes``; after the transform, a sample of the
    data inside ``data_range`` when chains are clamped to it; dtypes other than float32 are cast, with a note in
    :attr:`notes` (and a warning).
    """

    def __init__(self, model: nn.Module, data: DataSource, config: TrainConfig = TrainConfig(),
                 transform: Optional[Callable] = None, ckpt_dir: Optional[str | os.PathLike] = None,
                 sampler: Optional[Sampler] = None, device: str | torch.device = "cpu", overwrite: bool = False,
                 world: Optional[World] = None):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        self.config = config
        self.world = world if world is not None else SINGLE
        n_ranks = self.world.size
        if config.batch_size % n_ranks:
            raise ValueError(f"batch_size={config.batch_size} is the batch of one update, shared by the {n_ranks} "
                             f"processes of this run: it must be a multiple of {n_ranks}")
        self.batch_size = config.batch_size // n_ranks   # this rank's positives (and negatives) per step
        self.device = torch.device(device)
        self.model = model.to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.data, self.labels, self.data_fn = self._split_data(data)
        self.transform = transform
        self.sampler = sampler if sampler is not None else config.make_sampler()
        self.generator = torch.Generator().manual_seed(rank_seed(config.seed, self.world.rank))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, betas=config.betas)
        self.notes: list[str] = []   # what the construction-time checks changed or want known
        self.sample_shape = self._check_data()
        if self.world.distributed:
            self._shard()
        low, high = config.data_range
        self.buffer = ReplayBuffer(-(-config.buffer_capacity // n_ranks), self.sample_shape, low, high,
                                   config.replay_fraction if config.init == "replay" else 0.0)
        self.chains: Optional[Tensor] = None  # persistent chains (init="persistent")
        self.iteration = 0
        self.history: list[dict] = []
        self.undone: list[dict] = []  # records of the iterations that rollbacks undid (not in history)
        self.rollbacks = 0           # total rollbacks so far
        self._streak = 0             # consecutive rollbacks without a newly verified snapshot in between
        self.lr_scale = 1.0
        self.ckpt_dir = Path(ckpt_dir) if ckpt_dir is not None else None
        self.overwrite = bool(overwrite)
        self._lock = FolderLock(self.ckpt_dir, sole=True, owner=self) \
            if self.ckpt_dir is not None and self.world.is_main else None
        self._claimed = False        # whether this trainer owns the run in ckpt_dir (started, resumed or overwrote it)
        self._ddp: Optional[nn.Module] = None   # the DistributedDataParallel wrapper of model (made at the first step)
        if self.world.distributed:
            self._check_world()
            self._share_model()
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

    def _check_data(self) -> tuple[int, ...]:
        """Check the data once (see the class docstring) and return the shape of one sample."""
        params = [p for p in self.model.parameters() if p.is_floating_point()]
        if params and params[0].dtype != torch.float32:
            raise TypeError(f"the model's parameters are {params[0].dtype}, but the trainer runs batches, chains and "
                            "its replay buffer in float32: convert the model with model.float()")
        n = min(self.config.batch_size, _CHECK_ROWS)
        with torch.random.fork_rng(devices=[]):      # nothing here may move the global RNG either
            check_gen = torch.Generator().manual_seed(0)  # a private generator: the run's stream is untouched
            if self.data_fn is not None:
                batch = self.data_fn(n, check_gen)
                x, y = self._unpack(batch)
                if not torch.is_tensor(x) or x.ndim < 1 or x.shape[0] != n:
                    got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
                    raise ValueError(f"data({n}, generator) must return {n} points (a tensor (n, ...)), got {got}")
                self._check_values(x, y, "data(n, generator)")
            else:
                if self.data.ndim < 1 or self.data.shape[0] == 0:
                    raise ValueError("the training data is empty")
                self._check_values(self.data, self.labels, "data")
                x = self.data[:n]
            xt = self.transform(x, check_gen) if self.transform is not None else x
        if not torch.is_tensor(xt) or xt.shape != x.shape:
            raise ValueError(f"transform(x, generator) must return a tensor of x's shape {tuple(x.shape)}, got "
                             f"{tuple(xt.shape) if torch.is_tensor(xt) else type(xt).__name__}")
        where = "data after the transform" if self.transform is not None else "data"
        if xt.is_floating_point() and not bool(torch.isfinite(xt).all()):
            raise ValueError(f"the {where} holds NaN or infinite values")
        if self.config.clamp_chains:
            low, high = self.config.data_range
            flat = xt.reshape(xt.shape[0], -1).double()
            outside = ((flat < low) | (flat > high)).any(1)
            if outside.float().mean().item() > _OUT_OF_RANGE_MAX:
                raise ValueError(
                    f"{int(outside.sum())} of the first {xt.shape[0]} training samples ({where}) lie outside "
                    f"data_range={self.config.data_range} (values in [{flat.min().item():.4g}, {flat.max().item():.4g}]); "
                    "the chains are clamped to data_range, so they could never reach the data: set data_range to the "
                    "data's range, transform the data into it (uint8 images: transform=dequantize), or "
                    "clamp_chains=False")
        if xt.is_floating_point() and xt.dtype != torch.float32:
            note = f"the {where} is {xt.dtype}; each batch is cast to float32 (the dtype of the model and the chains)"
            self.notes.append(note)
            warnings.warn(note, stacklevel=3)
        return tuple(x.shape[1:])

    def _check_values(self, x: Tensor, y: Optional[Tensor], what: str) -> None:
        if not torch.is_tensor(x):
            raise TypeError(f"{what} must give tensors, got {type(x).__name__}")
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            bad = int((~torch.isfinite(x)).sum())
            raise ValueError(f"{what} holds {bad} NaN or infinite values; training data must be finite")
        n_classes = getattr(self.model, "n_classes", "undeclared")
        if isinstance(n_classes, int) and not isinstance(n_classes, bool):
            if y is None:
                raise ValueError(f"the model is conditional on n_classes={n_classes} classes but {what} has no labels")
            if y.is_floating_point() or y.dtype == torch.bool or y.is_complex():
                raise ValueError(f"labels must be an integer tensor (class indices), got {y.dtype}")
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= n_classes):
                i = int(((y < 0) | (y >= n_classes)).reshape(y.shape[0], -1).any(1).nonzero()[0, 0])
                raise ValueError(f"labels must lie in [0, {n_classes}) (the model's n_classes), got values in "
                                 f"[{int(y.min())}, {int(y.max())}] (first bad one at index {i}: {y[i].tolist()})")
        elif n_classes is None and y is not None:
            raise ValueError(f"the model is unconditional (n_classes=None) but {what} comes with labels")
        elif y is not None and y.is_floating_point() and not bool(torch.isfinite(y).all()):
            raise ValueError(f"the labels (conditioning) of {what} hold NaN or infinite values")

    def _shard(self) -> None:
        """Keep this rank's rows of a tensor data set (``rank::N``), from which it draws its batches."""
        if self.data is None:
            return                   # a callable source: every rank draws from it with its own generator
        r, n = self.world.rank, self.world.size
        if self.data.shape[0] < n:
            raise ValueError(f"{self.data.shape[0]} training samples cannot be shared among {n} processes")
        self.data = self.data[r::n]
        if self.labels is not None:
            self.labels = self.labels[r::n]

    def _check_world(self) -> None:
        """Every rank must build the same run: the same config, model shapes and data shapes, all with or all
        without a run folder (a collective; a mismatch would otherwise hang the ranks in mismatched collectives)."""
        mine = {"trainer": type(self).__name__, "config": asdict(self.config), "run folder": self.ckpt_dir is not None,
                "sample shape": list(self.sample_shape),
                "parameters": [list(p.shape) for p in self.model.parameters()]}
        seen = self.world.all_gather(mine)
        bad = [r for r, other in enumerate(seen) if other != seen[0]]
        if bad:
            diff = {k: (seen[0][k], seen[bad[0]][k]) for k in mine if seen[0][k] != seen[bad[0]][k]}
            raise ValueError(f"the processes of this run build different trainers: rank 0 vs rank {bad[0]}: {diff}")

    def _share_model(self) -> None:
        """Every rank starts from rank 0's weights and buffers (a collective), as DistributedDataParallel would make
        them at its first step: a rollback to the initial state must give every rank the same model too."""
        ours = self.world.broadcast({k: v.detach().cpu() for k, v in self.model.state_dict().items()}
                                    if self.world.is_main else None)
        if not self.world.is_main:
            self.model.load_state_dict(ours)

    @staticmethod
    def _unpack(batch):
        return batch if isinstance(batch, tuple) else (batch, None)

    def next_batch(self) -> tuple[Tensor, Optional[Tensor]]:
        """Positives x+ ~ p_D (drawn with replacement using the trainer's generator) and their labels."""
        n = self.batch_size
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

    def newest(self, n: int, chains: bool = True) -> Tensor:
        """The ``n`` newest negatives: the persistent chains' last ``n`` (init="persistent", when ``chains``), else
        the buffer's ``n`` newest. On several processes (a collective) ``ceil(n / N)`` of each rank's, interleaved
        (every rank's newest first), the same tensor on every rank."""
        k = -(-n // self.world.size)
        if chains and self.config.init == "persistent" and self.chains is not None:
            local = self.chains[-k:].detach().cpu().clone()
        else:
            local = self.buffer.newest(k)
        if not self.world.distributed:
            return local
        parts = self.world.all_gather(local)
        m = min(p.shape[0] for p in parts)
        return torch.stack([p[:m] for p in parts], 1).reshape(-1, *local.shape[1:])[:n]

    def run_chains(self, x0: Tensor, n_steps: int, y: Optional[Tensor] = None) -> Tensor:
        """``n_steps`` steps of the trainer's sampler from ``x0`` with the parameters frozen, detached (through the
        plain module also on several processes: no collective runs while sampling)."""
        clamp = self.config.data_range if self.config.clamp_chains else None
        with frozen(self.model):
            return self.sampler.run(self.model, x0, n_steps, y=y, clamp=clamp, generator=self.generator).x

    def extra_loss(self, x_neg: Tensor, y: Optional[Tensor]) -> dict[str, Tensor]:
        """Terms added to Algorithm 1's loss, by name (logged with the metrics); none here."""
        return {}

    # -- one iteration of Algorithm 1 ----------------------------------------------------------------------
    def _energy(self, x: Tensor, y: Optional[Tensor]) -> Tensor:
        """E(x) (or E(x, y)) for the loss: through DistributedDataParallel on several processes, so that the
        backward pass averages the parameter gradients over the ranks."""
        net = self._ddp_model() if self.world.distributed else self.model
        return net(x) if y is None else net(x, y)

    def _ddp_model(self) -> nn.Module:
        if self._ddp is None:
            from torch.nn.parallel import DistributedDataParallel as DDP
            # no buffer sync in forward: the only buffers (spectral norm's power iterates) are a function of the
            # weights, equal on every rank; checkpoint() copies rank 0's to all (see _sync_model)
            sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(DDP).parameters
                    else {"broadcast_buffers": False})
            ids = None
            if self.device.type == "cuda":
                ids = [self.device.index if self.device.index is not None else torch.cuda.current_device()]
            self._ddp = DDP(self.model, device_ids=ids, **sync)
            self._ddp.register_comm_hook(None, allreduce_each)   # exact resume at any world size
        return self._ddp

    def _join_backward(self, x_pos: Tensor, y: Optional[Tensor]) -> None:
        """A backward pass with zero loss through the DDP wrapper: a rank whose chains failed still joins the
        gradient all-reduce of the others (the step is rolled back on every rank anyway)."""
        self.optimizer.zero_grad(set_to_none=True)
        (self._energy(x_pos, y).sum() * 0.0).backward()

    def step(self) -> dict:
        x_pos, y = self.next_batch()
        try:
            x_neg = self.negatives(x_pos.shape[0], y)
        except NonFiniteEnergy:
            if self.world.distributed:
                self._join_backward(x_pos, y)
            raise
        e_pos = self._energy(x_pos, y)
        e_neg = self._energy(x_neg, y)
        loss = ebm_loss(e_pos, e_neg, self.config.alpha)
        extra = self.extra_loss(x_neg, y)
        for term in extra.values():
            loss = loss + term
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for g in self.optimizer.param_groups:
            g["lr"] = self.config.lr * self.lr_scale * lr_factor(self.config, self.iteration + 1)
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

    def _agree(self, m: dict, diverged: bool) -> tuple[dict, bool]:
        """The record of this iteration over every rank, and whether any rank diverged (a collective).

        Kept iterations: the mean over ranks of each metric (each rank's is a mean over its equal share of the
        batch, so this is the mean over the whole batch), the max of ``max_abs_energy``, and ``e_pos_std`` pooled
        over the batch. A diverged one: the mean loss, the max |E| (NaN if any rank's is), the ``ranks`` that
        diverged and their errors (``error``).
        """
        rows = self.world.all_gather((bool(diverged), m))
        records = [r for _, r in rows]
        if len({r["iteration"] for r in records}) != 1:
            raise RuntimeError(f"the ranks are at different iterations: {[r['iteration'] for r in records]}")

        def mean(key):
            return sum(float(r[key]) for r in records) / len(records)

        def top(key):
            values = [float(r[key]) for r in records]
            return math.nan if any(math.isnan(v) for v in values) else max(values)

        tripped = [rank for rank, (d, _) in enumerate(rows) if d]
        if tripped:
            out = {"iteration": m["iteration"], "loss": mean("loss"), "max_abs_energy": top("max_abs_energy"),
                   "ranks": tripped}
            errors = [f"rank {rank}: {r['error']}" for rank, r in enumerate(records) if "error" in r]
            if errors:
                out["error"] = "; ".join(errors)
            return out, True
        out = {}
        for key in m:
            if key == "iteration":
                out[key] = m[key]
            elif key == "max_abs_energy":
                out[key] = top(key)
            elif key == "e_pos_std" and "e_pos" in m:
                out[key] = self._pooled_std(records)
            else:
                out[key] = mean(key)
        return out, False

    def _pooled_std(self, records: list[dict]) -> float:
        """The std of E(x+) over the whole batch from each rank's mean and std over its ``batch_size`` rows."""
        n, total = self.batch_size, self.batch_size * len(records)
        if total < 2:
            return 0.0
        mu = sum(r["e_pos"] for r in records) / len(records)
        ss = sum((n - 1) * r["e_pos_std"] ** 2 + n * (r["e_pos"] - mu) ** 2 for r in records)
        return math.sqrt(ss / (total - 1))

    def train(self, n_iters: int, progress: bool = True, callback: Optional[Callable[[dict], None]] = None) -> list[dict]:
        """Run ``n_iters`` more iterations; returns the full metrics history.

        If anything interrupts an iteration (an error, KeyboardInterrupt), the trainer goes back to its newest
        snapshot before the exception propagates, so its state, ``history`` and log never describe a half-done
        step; calling ``train`` again continues exactly as an uninterrupted run would.
        """
        if not isinstance(n_iters, int) or isinstance(n_iters, bool) or n_iters < 0:
            raise ValueError(f"n_iters must be a non-negative int, got {n_iters!r}")
        self._open_run()
        target = self.iteration + n_iters
        bar = tqdm(total=n_iters, disable=not progress or not self.world.is_main, desc="train", leave=False)
        try:
            while self.iteration < target:
                before = self.iteration
                try:
                    m = self.step()
                except NonFiniteEnergy as err:   # the chains met a NaN/inf energy: the network has diverged
                    m = {"iteration": self.iteration + 1, "loss": math.nan, "max_abs_energy": math.nan,
                         "error": str(err)}
                except BaseException:
                    self._restore_newest()
                    raise
                diverged = self._diverged(m)
                if self.world.distributed:
                    m, diverged = self._agree(m, diverged)
                if diverged:
                    self._rollback(m)
                    bar.update(self.iteration - before)
                    continue
                if self._pending is not None:  # the parameters of the last snapshot just produced sane energies
                    self._good, self._pending, self._streak = self._pending, None, 0
                    self._confirm()
                self.history.append(m)
                self._log(m)
                if callback is not None:
                    callback(m)
                bar.update(1)
                bar.set_postfix(e_pos=f"{m['e_pos']:.3f}", e_neg=f"{m['e_neg']:.3f}")
                if self.iteration % self.config.checkpoint_every == 0:
                    self.checkpoint()
        except BaseException:
            self.close()    # a retry (in this process or another) may take the folder over
            raise
        finally:
            bar.close()
        return self.history

    # -- divergence guard ----------------------------------------------------------------------------------
    def _rollback(self, m: dict) -> None:
        """Revert to the last good checkpoint and continue with a smaller learning rate (A.8 on runs whose
        energies diverge; [nijkamp2019learning] in references.bib discusses such instabilities).

        The RNG is *not* rewound, so the retried iterations see new batches and noise. The state rolled back to
        (with the rollback recorded) becomes the new rollback target and ``last.pt``.
        """
        self._streak += 1
        if self._streak > self.config.max_rollbacks:
            self._give_up(m)
        self._revert(m, "rollback", self.rollbacks + 1, self.lr_scale * self.config.rollback_lr_factor)

    def _give_up(self, m: dict) -> None:
        """Load the last good state again, record that the run gave up, and raise :class:`TrainingDiverged`."""
        msg = (f"energies ran away at iteration {m['iteration']} (loss {m['loss']}, "
               f"max |E| {m['max_abs_energy']:.3g} > {self.config.max_abs_energy}) "
               f"{self._streak} times in a row; last good iteration {self._good['iteration']}")
        self._revert(m, "gave_up", self.rollbacks, self.lr_scale)
        raise TrainingDiverged(msg + f"; the trainer holds the state of iteration {self.iteration} again"
                               + (f" (saved in {self.ckpt_dir / 'last.pt'})" if self.ckpt_dir is not None else ""))

    def _revert(self, m: dict, event: str, rollbacks: int, lr_scale: float) -> None:
        # What the revert must not undo: the RNG stream, the count of rollbacks, the compounding lr cut, and
        # the rollback events logged since the snapshot (the undone iterations' metrics move to ``undone``).
        gen_state = self.generator.get_state()
        since = self.history[len(self._good["history"]):]
        events = [h for h in since if h.get("event") == "rollback"]
        moved = [h for h in since if "event" not in h]
        undone = self.undone + moved
        self._load_state(self._good)
        self._pending = None
        self.generator.set_state(gen_state)
        self.history.extend(events)
        self.undone = undone
        self.rollbacks = rollbacks
        self.lr_scale = lr_scale
        for g in self.optimizer.param_groups:
            g["lr"] = self.config.lr * self.lr_scale
        record = {"iteration": m["iteration"], "event": event, "to_iteration": self.iteration,
                  "loss": m["loss"], "max_abs_energy": m["max_abs_energy"], "lr": self.config.lr * self.lr_scale,
                  "undone": len(moved)}   # how many records this event moved to ``undone`` (the log in time order)
        if "error" in m:
            record["error"] = m["error"]
        if "ranks" in m:
            record["ranks"] = m["ranks"]   # on several processes: the ranks whose energies ran away
        self.history.append(record)
        self._good = self._state(kind=event)
        if self._run_open:
            whole = self._combined(self._good)
            if self.world.is_main:
                (self.ckpt_dir / "pending.pt").unlink(missing_ok=True)   # first: a stale pending must never be resumed
                save_checkpoint(whole, self.ckpt_dir / "last.pt")
                self._rewrite_logs()

    def _restore_newest(self) -> None:
        """Back to the newest snapshot (pending or good) after an interrupted iteration."""
        self._load_state(self._pending if self._pending is not None else self._good)
        if self._writing:
            self._rewrite_logs()

    # -- checkpoints ---------------------------------------------------------------------------------------
    def _state(self, kind: str = "snapshot") -> dict:
        return copy.deepcopy({
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "buffer": self.buffer.state_dict(), "chains": self.chains, "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(), "iteration": self.iteration, "history": self.history,
            "lr_scale": self.lr_scale, "rollbacks": self.rollbacks, "config": asdict(self.config),
            "undone": self.undone, "streak": self._streak, "kind": kind,
        })

    def _load_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        # Optimizer.load_state_dict keeps the very tensors it is given and Adam updates them in place: a copy
        # keeps the snapshot (the rollback target) intact.
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        self.buffer.load_state_dict(state["buffer"])
        self.chains = state["chains"]
        self.generator.set_state(state["generator"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        self.iteration = int(state["iteration"])
        self.history = list(state["history"])
        self.undone = list(state.get("undone", []))
        self.lr_scale = float(state["lr_scale"])
        self.rollbacks = int(state["rollbacks"])

    def _combined(self, state: dict) -> Optional[dict]:
        """What a checkpoint file holds for ``state``: the state itself on one process; on several (a collective),
        on rank 0, the shared state plus every rank's own part (:data:`RANK_KEYS`) under ``ranks`` and the
        ``world_size``, and None on the other ranks."""
        if not self.world.distributed:
            return state
        parts = self.world.gather({**{k: state[k] for k in RANK_KEYS}, "iteration": state["iteration"]})
        if not self.world.is_main:
            return None
        if len({p["iteration"] for p in parts}) != 1:
            raise RuntimeError(f"the ranks' snapshots are of different iterations: {[p['iteration'] for p in parts]}")
        ranks = [{k: p[k] for k in RANK_KEYS} for p in parts]
        ranks[0] = {k: state[k] for k in RANK_KEYS}      # rank 0's own objects: stored once with the top level
        return {**state, "world_size": self.world.size, "ranks": ranks}

    @staticmethod
    def _shared(whole: Optional[dict]) -> Optional[dict]:
        """The part of a checkpoint of a run on several processes that every rank shares (None for None)."""
        if whole is None:
            return None
        return {k: v for k, v in whole.items() if k not in ("ranks", "world_size", *RANK_KEYS)}

    def _sync_model(self) -> None:
        """Before a snapshot on several processes: the weights must be equal on every rank (DDP keeps them so; a
        difference is a bug, raised), and the buffers become rank 0's (the checkpoint stores rank 0's model)."""
        digests = self.world.all_gather(checksum(dict(self.model.named_parameters())))
        if len(set(digests)) != 1:
            raise RuntimeError(f"the ranks' parameters differ at iteration {self.iteration} (digests {digests}): "
                               "they must stay equal under DistributedDataParallel")
        names = [name for name, _ in self.model.named_buffers()]
        if names:
            ours = self.world.broadcast({n: b.detach().cpu() for n, b in self.model.named_buffers()}
                                        if self.world.is_main else None)
            with torch.no_grad():
                for name, b in self.model.named_buffers():
                    b.copy_(ours[name])

    def checkpoint(self) -> Optional[Path]:
        """Snapshot the full training state (in memory, and atomically to ``ckpt_dir/pending.pt`` if set).

        The snapshot becomes the rollback target, and ``last.pt``, once the next iteration passes the guard.
        On several processes every rank calls it (a collective) and rank 0 writes every rank's state.
        """
        self._open_run()
        if self.world.distributed:
            self._sync_model()
        self._pending = self._state()
        if self.ckpt_dir is None:
            return None
        whole = self._combined(self._pending)
        if not self.world.is_main:
            return None
        return save_checkpoint(whole, self.ckpt_dir / "pending.pt")

    def _confirm(self) -> None:
        """The pending snapshot passed the guard: it becomes ``last.pt`` (a rename, atomic)."""
        if not self._run_open:
            return
        pending, last = self.ckpt_dir / "pending.pt", self.ckpt_dir / "last.pt"
        if self.world.broadcast(pending.is_file() if self.world.is_main else None):
            if self.world.is_main:
                os.replace(pending, last)
        else:
            whole = self._combined(self._good)
            if self.world.is_main:
                save_checkpoint(whole, last)

    def _open_run(self) -> None:
        """Take the run folder's lock, and on the first write refuse a folder holding another run (unless
        ``overwrite``); a new run writes its initial state as ``last.pt`` and starts an empty log."""
        if self.ckpt_dir is None:
            return
        self.world.on_main(self._lock_acquire)
        if self._claimed:
            return

        def claim() -> None:   # rank 0, holding the lock
            remove_orphans(self.ckpt_dir)      # temp files of writes killed before their rename (ours, we hold the lock)
            found = [f for f in ("last.pt", "pending.pt") if (self.ckpt_dir / f).is_file()]
            if found and not self.overwrite:
                raise RunExists(f"{self.ckpt_dir} already holds a training run ({describe_run(self.ckpt_dir)}); call "
                                "resume() to continue it, or pass overwrite=True to the Trainer to start over")
            (self.ckpt_dir / "pending.pt").unlink(missing_ok=True)
            (self.ckpt_dir / "undone.jsonl").unlink(missing_ok=True)
        try:
            self.world.on_main(claim)
        except RunExists:
            self.close()
            raise
        whole = self._combined(self._good)
        if self.world.is_main:
            save_checkpoint(whole, self.ckpt_dir / "last.pt")
        self._claimed = True
        if self.world.is_main:
            self._rewrite_logs()

    def _lock_acquire(self) -> None:
        if self._lock is not None:
            self._lock.acquire()

    def resume(self, path: Optional[str | os.PathLike] = None) -> "Trainer":
        """Continue the run in ``ckpt_dir`` (or the one checkpoint file ``path``) exactly where it was saved.

        From a run folder: ``last.pt`` is the rollback target; a newer ``pending.pt`` (a snapshot that no guarded
        step had confirmed yet) is loaded too, and the first guarded step re-confirms it (or rolls back to
        ``last.pt``). The log is rewritten to the resumed history. On several processes every rank calls it: rank 0
        reads the files and hands each rank its own state; a file saved at another world size is refused
        (:class:`WorldSizeMismatch`) on every rank.
        """
        if path is None and self.ckpt_dir is None:
            raise ValueError("resume() needs a path when the trainer has no ckpt_dir")
        found = self.world.on_main(lambda: self._read_run(path))
        if self.world.distributed:   # the shared state travels once to every rank, each rank's own part to it
            shared = self.world.broadcast([self._shared(s) for s in found] if self.world.is_main else None)
            own = self.world.scatter([[s["ranks"][r] if s is not None else None for s in found]
                                      for r in range(self.world.size)] if self.world.is_main else None)
            found = [{**s, **o} if s is not None else None for s, o in zip(shared, own)]
        last, pending = found
        if path is not None:
            self._load_state(last)
            self._good, self._pending = last, None
            self._streak = int(last.get("streak", 0)) if last.get("kind") != "snapshot" else 0
        else:
            current = pending if pending is not None else last
            self._load_state(current)
            self._good, self._pending = last, pending
            # a confirmed snapshot starts a new streak; a pending one, or a rolled-back state, carries its own
            self._streak = 0 if current is last and last.get("kind") == "snapshot" else int(current.get("streak", 0))
        if self.ckpt_dir is not None:
            self._claimed = True
            if self.world.is_main:
                self._rewrite_logs()
        return self

    def _read_run(self, path: Optional[Path]) -> tuple[dict, Optional[dict]]:
        """(rollback target, pending snapshot or None) of the file ``path`` or of the run folder; takes the lock."""
        if path is not None:
            path = Path(path)
            if self._lock is not None:
                self._lock.acquire()
            return self._read(path), None
        self._lock.acquire()
        remove_orphans(self.ckpt_dir)
        last_path, pending_path = self.ckpt_dir / "last.pt", self.ckpt_dir / "pending.pt"
        if not last_path.is_file():
            self.close()
            raise CheckpointError(f"no checkpoint at {last_path}" + (f" (only an unconfirmed {pending_path.name}, "
                                  "which cannot be resumed without it)" if pending_path.is_file() else ""))
        last = self._read(last_path)
        pending = None
        if pending_path.is_file():
            try:
                pending = self._read(pending_path)
            except CheckpointError as err:   # unconfirmed anyway: last.pt replays to it
                self.notes.append(f"ignored {pending_path}: {err}")
            if pending is not None and not (pending["rollbacks"] == last["rollbacks"]
                                            and pending["iteration"] > last["iteration"]):
                pending = None   # older than last.pt (left by a rollback interrupted before it removed it)
            if pending is None:
                pending_path.unlink(missing_ok=True)
        return last, pending

    def resume_if_any(self) -> bool:
        """:meth:`resume` the run in ``ckpt_dir`` if it holds one (a ``last.pt``; on several processes rank 0
        looks); returns whether it did."""
        if self.ckpt_dir is None:
            return False
        there = self.world.broadcast((self.ckpt_dir / "last.pt").exists() if self.world.is_main else None)
        if there:
            self.resume()
        return bool(there)

    def _read(self, path: Path) -> dict:
        state = load_checkpoint(path)
        size = int(state.get("world_size", 1))
        if size != self.world.size:
            self.close()
            raise WorldSizeMismatch(
                f"checkpoint {path} holds a run on {size} process{'es' if size != 1 else ''} (world size {size}) and "
                f"this one has {self.world.size} (world size {self.world.size}): every rank's replay buffer and "
                f"generator belong to one rank of that run, so it resumes only at world size {size} (torchrun's "
                f"--nnodes times --nproc_per_node, e.g. torchrun --nproc_per_node {size} on one node); to start over "
                f"at world size {self.world.size}, delete the run folder (or pass overwrite=True to the Trainer)")
        saved = {k: (tuple(v) if isinstance(v, list) else v) for k, v in state["config"].items()}
        mine = asdict(self.config)
        if saved != mine:
            diff = {k: (saved.get(k), mine.get(k)) for k in mine if saved.get(k) != mine.get(k)}
            self.close()
            raise ValueError(f"checkpoint {path} was written with another config (saved, now): {diff}")
        return state

    def close(self) -> None:
        """Release the run folder (its lock); the trainer keeps its state and takes the folder again when it
        trains or checkpoints next. Also happens when the trainer is garbage-collected."""
        if self._lock is not None:
            self._lock.release()
        self._ddp = None     # drops DDP's gradient hooks from the parameters; the next step wraps the model again

    def __enter__(self) -> "Trainer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- metrics log ---------------------------------------------------------------------------------------
    @property
    def _run_open(self) -> bool:
        """Whether this trainer has started or resumed the run in its run folder (the same on every rank)."""
        return self._claimed and self.ckpt_dir is not None

    @property
    def _writing(self) -> bool:
        """Whether this trainer writes its run folder: the run is open, and this is rank 0."""
        return self._run_open and self.world.is_main

    def _log(self, record: dict) -> None:
        if not self._writing:
            return
        with open(self.ckpt_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def _rewrite_logs(self) -> None:
        atomic_write(self.ckpt_dir / "metrics.jsonl", _lines(self.history))
        if self.undone or (self.ckpt_dir / "undone.jsonl").exists():
            atomic_write(self.ckpt_dir / "undone.jsonl", _lines(self.undone))


def describe_run(folder: str | os.PathLike) -> str:
    """A short description of the run in ``folder`` (which files, at which iteration), for messages."""
    folder = Path(folder)
    parts = []
    for name in ("last.pt", "pending.pt"):
        if (folder / name).is_file():
            try:
                parts.append(f"{name} at iteration {load_checkpoint(folder / name)['iteration']}")
            except (CheckpointError, KeyError) as err:
                parts.append(f"{name}, unreadable: {str(err)[:120]}")
    return ", ".join(parts) or "no checkpoint"


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
