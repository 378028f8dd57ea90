"""Training on several processes (one per GPU) started by ``torchrun``: the world a process belongs to, and the few
collectives the trainer and the recipe layer need.

The paper's large runs used many GPUs (32 for ImageNet, A.7's reported compute); A.7's batch of 128 positives and
128 negatives is the batch of one update. Here a run on ``N`` processes keeps that meaning: each process (*rank*)
draws ``batch_size / N`` positives from its own shard of the data and as many negatives from its own replay buffer
(section 3.2) with its own random generator (seeded from the run's seed and the rank: :func:`rank_seed`), and the
parameter gradients are averaged across ranks by ``DistributedDataParallel``; every rank then takes the same Adam
step (see :class:`ebmlib.core.train.Trainer`).

* :class:`World`: rank, world size, local rank, and the collectives on Python objects (gather, broadcast, scatter,
  :meth:`World.on_main`: run something on rank 0 only and raise its error on every rank). ``SINGLE`` is the world
  of one plain process, where every collective is the identity: code written for a world runs unchanged alone.
* :func:`init` / :func:`teardown` / :func:`session`: the process group from torchrun's environment (``RANK``,
  ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``): NCCL when training on CUDA (each rank on
  ``cuda:LOCAL_RANK``), gloo on the CPU. Objects always travel over gloo (a second group when the main one is NCCL),
  so checkpoints and logs never pass through GPU memory. ``torchrun --nproc_per_node 1`` gives ``SINGLE``: one
  process trains exactly as ``python -m ebmlib train`` does.
* :func:`torchrun_command`, :func:`resolve_processes`: how a chapter launches its training on several processes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import pickle
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence

import torch

from ebmlib.core.device import resolve as resolve_device

__all__ = ["World", "SINGLE", "ENV_VARS", "NPROC_VAR", "launched", "from_env", "init", "teardown", "session",
           "current", "allreduce_each", "rank_seed", "resolve_processes", "torchrun_command"]

#: what torchrun sets in each process it starts (and what :func:`init` reads)
ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
#: processes per node a chapter's training is launched on (overrides the preset's ``PROCESSES``): an int or ``gpus``
NPROC_VAR = "EBMLIB_NPROC"

_GOLDEN = 0x9E3779B97F4A7C15     # odd constant of Fibonacci hashing: spreads rank seeds over 64 bits
_TIMEOUT = datetime.timedelta(minutes=30)


def _dist():
    import torch.distributed as dist
    return dist


def _cpu(obj):
    """``obj`` with every tensor in it on the CPU (objects travel over gloo; a CUDA tensor would be rebuilt on the
    sender's GPU index)."""
    if torch.is_tensor(obj):
        return obj.detach().cpu() if obj.device.type != "cpu" else obj
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if type(obj) in (list, tuple):
        return type(obj)(_cpu(v) for v in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: _cpu(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                                           if f.init})
    return obj


@dataclass(frozen=True)
class World:
    """The processes of one training run: this one is ``rank`` of ``size`` (``local_rank`` on its node).

    The collectives work on plain Python objects (tensors inside them included) and must be called by every rank
    in the same order; in ``SINGLE`` (size 1) they are the identity.
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    def __post_init__(self):
        if not (isinstance(self.size, int) and self.size >= 1 and 0 <= self.rank < self.size and self.local_rank >= 0):
            raise ValueError(f"a world needs 0 <= rank < size and local_rank >= 0, got rank {self.rank}, size "
                             f"{self.size}, local rank {self.local_rank}")

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that reads and writes run folders and checkpoints, logs and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def device(self, device: Optional[str | torch.device] = None) -> torch.device:
        """The device rule (:func:`ebmlib.core.device.resolve`), with CUDA meaning this rank's GPU ``cuda:LOCAL_RANK``
        in a world of several processes."""
        device = resolve_device(device)
        if self.distributed and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    # -- collectives (every rank calls them, in the same order) ---------------------------------------------
    def all_gather(self, obj: Any) -> list:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        out = [None] * self.size
        _dist().all_gather_object(out, _cpu(obj), group=_objects_group())
        return out

    def gather(self, obj: Any) -> Optional[list]:
        """Every rank's ``obj`` in rank order on rank 0; ``None`` on the others."""
        if not self.distributed:
            return [obj]
        out = [None] * self.size if self.is_main else None
        _dist().gather_object(_cpu(obj), out, dst=0, group=_objects_group())
        return out

    def broadcast(self, obj: Any = None) -> Any:
        """Rank 0's ``obj`` on every rank (what the others pass is ignored)."""
        if not self.distributed:
            return obj
        box = [_cpu(obj) if self.is_main else None]
        _dist().broadcast_object_list(box, src=0, group=_objects_group())
        return box[0]

    def scatter(self, objs: Optional[Sequence[Any]] = None) -> Any:
        """``objs[r]`` (a sequence of ``size`` objects given on rank 0) on rank ``r``."""
        if not self.distributed:
            return objs[0]
        if self.is_main and (objs is None or len(objs) != self.size):
            raise ValueError(f"scatter needs {self.size} objects on rank 0, got {None if objs is None else len(objs)}")
        out = [None]
        _dist().scatter_object_list(out, [_cpu(o) for o in objs] if self.is_main else None, src=0,
                                    group=_objects_group())
        return out[0]

    def barrier(self) -> None:
        if self.distributed:
            _dist().barrier(group=_objects_group())

    def on_main(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on rank 0 only; what it raises (an ``Exception``) is raised on every rank, so no rank walks on
        into a collective that rank 0 will never join. Returns ``fn()`` on rank 0, ``None`` on the others."""
        if not self.distributed:
            return fn()
        result, error = None, None
        if self.is_main:
            try:
                result = fn()
            except Exception as err:   # noqa: BLE001 - handed to every rank, then raised
                error = err
        theirs = self.broadcast(_portable(error) if self.is_main else None)
        if self.is_main and error is not None:
            raise error
        if theirs is not None:
            raise theirs from None
        return result


def _portable(error: Optional[BaseException]) -> Optional[BaseException]:
    """``error`` if it survives pickling (the other ranks rebuild it), else a ``RuntimeError`` with its type and
    message (an exception whose ``__init__`` takes other arguments than its message cannot be rebuilt)."""
    if error is None:
        return None
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:   # noqa: BLE001 - any failure to round-trip
        return RuntimeError(f"{type(error).__name__}: {error}")


SINGLE = World()

_CURRENT: list[World] = [SINGLE]
_OBJECTS: list = [None]          # the gloo group objects travel over (None: the default group)


def _objects_group():
    return _OBJECTS[0]


def current() -> World:
    """The world :func:`init` set up in this process (``SINGLE`` if none)."""
    return _CURRENT[0]


def launched() -> bool:
    """Whether this process was started by torchrun (or another launcher setting ``RANK``, ``WORLD_SIZE`` and
    ``LOCAL_RANK``)."""
    return all(v in os.environ for v in ENV_VARS)


def from_env() -> World:
    """The world torchrun's environment describes (``SINGLE`` when not launched by it)."""
    if not launched():
        return SINGLE
    try:
        rank, size, local = (int(os.environ[v]) for v in ENV_VARS)
    except ValueError as err:
        raise ValueError(f"torchrun's variables {ENV_VARS} must be integers, got "
                         f"{[os.environ[v] for v in ENV_VARS]}") from err
    return World(rank, size, local)


def init(device: Optional[str | torch.device] = None, backend: Optional[str] = None,
         timeout: datetime.timedelta = _TIMEOUT) -> World:
    """Join the process group torchrun's environment describes and return this process's :class:`World`.

    A world of one process (not launched, or ``--nproc_per_node 1`` on one node) is ``SINGLE`` and starts no group.
    ``backend`` defaults to NCCL when ``device`` (the device rule) is CUDA, else gloo; on CUDA this rank's GPU
    becomes the current device.
    """
    world = from_env()
    if not world.distributed:
        _CURRENT[0] = SINGLE
        return SINGLE
    dist = _dist()
    if dist.is_initialized():
        _CURRENT[0] = world
        return world
    dev = world.device(device)
    if backend is None:
        backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend, timeout=timeout)
    _OBJECTS[0] = dist.new_group(backend="gloo", timeout=timeout) if backend != "gloo" else None
    _CURRENT[0] = world
    return world


def teardown() -> None:
    """Leave the process group (after a barrier, so that no rank exits while rank 0 still writes)."""
    dist = _dist()
    if dist.is_available() and dist.is_initialized():
        try:
            current().barrier()
        finally:
            dist.destroy_process_group()
    _OBJECTS[0] = None
    _CURRENT[0] = SINGLE


@contextlib.contextmanager
def session(device: Optional[str | torch.device] = None, backend: Optional[str] = None) -> Iterator[World]:
    """``with session() as world:`` :func:`init`, then :func:`teardown` (on success; a failing rank exits and
    torchrun stops the others)."""
    world = init(device, backend)
    yield world
    teardown()


def allreduce_each(group, bucket):   # no annotations: DDP checks them, and these would be strings here
    """A ``DistributedDataParallel`` communication hook: the mean over the ranks of each parameter's gradient, by
    an all-reduce of that gradient alone (``group``: the process group, None for the default one); returns a
    completed ``torch.futures.Future`` of the bucket's buffer.

    DDP's own hook all-reduces a bucket's flat buffer, and DDP lays its buckets out anew once, after its first
    iteration, in the order the gradients arrived. With more than 2 ranks a ring all-reduce adds the terms of an
    element in an order that depends on where the element lies in the buffer, so a resumed run (a new DDP, on its
    first layout) would differ from the uninterrupted one in the last bits. One all-reduce per gradient does not
    depend on the layout: a run resumed at the same world size continues bit for bit.
    """
    dist = _dist()
    for grad in bucket.gradients():      # views of the bucket's buffer
        dist.all_reduce(grad, group=group)
    out = bucket.buffer().div_(dist.get_world_size(group))
    future = torch.futures.Future()
    future.set_result(out)
    return future


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s generator in a run seeded ``seed``: ``seed`` itself for rank 0, a far-apart
    64-bit value for the others (every rank draws its own batches, chain starts and noise)."""
    if rank == 0:
        return seed
    return (int(seed) + int(rank) * _GOLDEN) % 2 ** 64


def resolve_processes(value: Optional[int | str] = None) -> int:
    """How many processes a chapter's training runs on, per node: ``$EBMLIB_NPROC`` if set, else ``value`` (a
    preset's ``PROCESSES`` entry, default 1); ``"gpus"`` is one per visible GPU (1 without a GPU)."""
    env = os.environ.get(NPROC_VAR, "").strip()
    raw = env if env else (1 if value is None else value)
    where = f"${NPROC_VAR}" if env else "the preset"
    if isinstance(raw, str) and raw.strip().lower() == "gpus":
        return max(torch.cuda.device_count() if torch.cuda.is_available() else 0, 1)
    try:
        n = int(raw)
    except (TypeError, ValueError):
        n = 0
    if isinstance(raw, bool) or n < 1 or str(n) != str(raw).strip():
        raise ValueError(f"{where} asks for {raw!r} processes; expected an int >= 1 or 'gpus'")
    return n


def torchrun_command(nproc: int, args: Sequence[str], python: Optional[str] = None) -> list[str]:
    """The command that runs ``python -m torch.distributed.run --standalone --nproc_per_node nproc args`` (torchrun on
    one node, with this interpreter: no reliance on ``PATH``)."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc must be an int >= 1, got {nproc!r}")
    return [python or sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            *map(str, args)]
