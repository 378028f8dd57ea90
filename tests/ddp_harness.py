"""Run a function on several local CPU processes joined in one gloo world, as torchrun would start them.

The processes are forked from a forkserver that imported torch and ebmlib once (a fresh interpreter per rank would
cost seconds of imports on a 2-core machine). ``fn(world, *args)`` runs on every rank with the environment torchrun
sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) and
:func:`ebmlib.core.distributed.init`; what it returns comes back per rank. When a rank dies (an error, or a
SIGKILL it sends itself to simulate a crash), the others are killed with SIGKILL, as torchrun stops a worker group
that lost a member; a rank that reported an error first gives the others ``grace`` seconds to end on their own (an
error raised on every rank together, such as a refused resume, then comes back from each).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
import socket
import tempfile
import time
import traceback
from pathlib import Path

__all__ = ["run", "Outcome"]

_CTX = []


def _context():
    if not _CTX:
        ctx = mp.get_context("forkserver")
        # torch._dynamo: imported by the first optimizer built (~1 s); DDP: by the first distributed step
        ctx.set_forkserver_preload(["torch", "torch.distributed", "torch._dynamo", "torch.nn.parallel",
                                    "ebmlib.core.train", "ebmlib.core.recipes"])
        _CTX.append(ctx)
    return _CTX[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(fn, rank: int, size: int, port: int, args: tuple, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(size), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), TQDM_DISABLE="1")
    import torch
    from ebmlib.core import distributed
    torch.set_num_threads(1)
    path = Path(out_dir) / f"rank{rank}.pkl"
    try:
        world = distributed.init(device="cpu")
        result = ("ok", fn(world, *args))
        distributed.teardown()
    except BaseException as err:   # noqa: BLE001 - reported to the test
        result = ("error", (type(err).__name__, str(err), traceback.format_exc()))
    with open(path, "wb") as f:
        pickle.dump(result, f)


class Outcome:
    """What each rank did: ``exitcodes`` (negative: killed by that signal), ``results`` (rank -> return value),
    ``errors`` (rank -> (type name, message, traceback))."""

    def __init__(self, exitcodes, results, errors):
        self.exitcodes, self.results, self.errors = exitcodes, results, errors

    def values(self) -> list:
        if self.errors or len(self.results) != len(self.exitcodes):
            raise AssertionError(f"ranks failed: exit codes {self.exitcodes}; "
                                 + "; ".join(f"rank {r}: {e[2]}" for r, e in sorted(self.errors.items())))
        return [self.results[r] for r in range(len(self.exitcodes))]


def run(fn, size: int, *args, timeout: float = 60.0, grace: float = 5.0) -> Outcome:
    """``fn(world, *args)`` on ``size`` ranks; returns their :class:`Outcome` (a killed rank returns nothing)."""
    ctx = _context()
    port = _free_port()
    with tempfile.TemporaryDirectory() as out_dir:
        procs = [ctx.Process(target=_entry, args=(fn, r, size, port, args, out_dir)) for r in range(size)]
        for p in procs:
            p.start()
        deadline = time.monotonic() + timeout
        failed_at = None
        try:
            while any(p.is_alive() for p in procs):
                dead = [p for p in procs if not p.is_alive() and p.exitcode != 0]
                if failed_at is None and any((Path(out_dir) / f"rank{r}.pkl").is_file()
                                             and _read(Path(out_dir) / f"rank{r}.pkl")[0] == "error"
                                             for r in range(size)):
                    failed_at = time.monotonic()
                late = failed_at is not None and time.monotonic() > failed_at + grace
                if dead or late or time.monotonic() > deadline:
                    for p in procs:
                        if p.is_alive():
                            try:
                                os.kill(p.pid, signal.SIGKILL)
                            except ProcessLookupError:   # it ended (and was reaped) since is_alive() looked
                                pass
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"the {size} ranks did not finish within {timeout} s")
                time.sleep(0.02)
        finally:
            for p in procs:
                p.join(5)
        results, errors = {}, {}
        for r in range(size):
            f = Path(out_dir) / f"rank{r}.pkl"
            if f.is_file():
                status, value = _read(f)
                (results if status == "ok" else errors)[r] = value
        return Outcome([p.exitcode for p in procs], results, errors)


def _read(path: Path):
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except (EOFError, pickle.UnpicklingError):
        return ("partial", None)
