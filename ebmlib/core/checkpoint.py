"""Checkpoints that survive crashes, prove their integrity and refuse anything but tensors and plain data.

Writes go to a temporary file in the same directory, are flushed to disk, then renamed over the target: a crash
mid-write leaves the previous checkpoint intact. Loads use ``torch.load(weights_only=True)``, which refuses
pickled code objects.

Format ``ebmlib-checkpoint-v2`` is the dict of tensors and plain data of v1 plus a ``checksum``: SHA-256 over every
value in a canonical order (each tensor's dtype, shape and bytes; each number, string, list and dict with its
type), verified at every load. A truncated, bit-flipped or hand-edited file raises :class:`CheckpointError` naming
the file instead of loading wrong weights. Files of the old format v1 carry no checksum and are refused with the
one call that upgrades them in place, :func:`upgrade_checkpoint` (weights unchanged, verified after the rewrite).

:class:`FolderLock` keeps a second writer out of a training run folder (``<folder>/.lock``, holding the pid).
"""
from __future__ import annotations

import gc
import hashlib
import io
import json
import math
import os
import tempfile
import weakref
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Optional

import torch

try:  # POSIX: the kernel drops the lock when its process dies, however it dies
    import fcntl
except ImportError:  # pragma: no cover - Windows: a pid file, taken over when that pid is gone
    fcntl = None

__all__ = ["CheckpointError", "remove_orphans", "FolderLocked", "FolderLock", "atomic_write", "save_checkpoint", "load_checkpoint",
           "upgrade_checkpoint", "upgrade_checkpoints", "checksum", "find_recipe_checkpoint", "FORMAT", "FORMAT_V1"]

FORMAT = "ebmlib-checkpoint-v2"
FORMAT_V1 = "ebmlib-checkpoint-v1"
_RESERVED = ("format", "checksum")


class CheckpointError(RuntimeError):
    """A checkpoint could not be read: missing, corrupted, of another format, or carrying pickled objects."""


def remove_orphans(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that :func:`atomic_write` leaves when a process is killed mid-write
    (``.<name>.*.tmp``); returns what was removed. Call it only while holding the folder (its lock)."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        try:
            tmp.unlink()
            removed.append(tmp)
        except FileNotFoundError:
            pass
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Create ``path`` by ``write(file)`` on a temporary file in the same folder, fsync'd, then renamed over it.

    A crash mid-write leaves the previous file (or none) and no partial one: every file ebmlib writes that a
    later run trusts (checkpoints, logs, data caches, generated data sets) goes through here.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


# -- the checksum ------------------------------------------------------------------------------------------------
def _feed(h, obj, where: str) -> None:
    if torch.is_tensor(obj):
        if obj.layout != torch.strided:
            raise TypeError(f"cannot checksum {where}: a {obj.layout} tensor (only dense tensors are stored)")
        t = obj.detach().cpu().contiguous()
        h.update(b"T" + f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, (list, tuple, dict)):
        try:  # plain data (a history of thousands of records) as canonical JSON, in C; tensors inside: walk
            text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError):
            pass
        else:
            h.update(b"J" + str(len(text)).encode() + b":" + text.encode())
            return
        if isinstance(obj, dict):
            h.update(b"D" + str(len(obj)).encode() + b"{")
            for k in sorted(obj, key=lambda k: (type(k).__name__, repr(k))):
                _feed(h, k, f"{where} key")
                _feed(h, obj[k], f"{where}[{k!r}]")
        else:
            h.update((b"L" if isinstance(obj, list) else b"U") + str(len(obj)).encode() + b"[")
            for i, v in enumerate(obj):
                _feed(h, v, f"{where}[{i}]")
    elif obj is None:
        h.update(b"N")
    elif isinstance(obj, bool):
        h.update(b"B1" if obj else b"B0")
    elif isinstance(obj, int):
        h.update(b"I" + str(int(obj)).encode() + b";")
    elif isinstance(obj, float):
        h.update(b"F" + float(obj).hex().encode() + b";")
    elif isinstance(obj, (str, bytes)):
        raw = obj.encode("utf-8") if isinstance(obj, str) else obj
        h.update((b"S" if isinstance(obj, str) else b"Y") + str(len(raw)).encode() + b":" + raw)
    else:
        raise TypeError(f"cannot checksum {where}: a {type(obj).__name__}; a checkpoint holds tensors, numbers, "
                        "strings, None, lists, tuples and dicts only")


def checksum(state: dict) -> str:
    """``"sha256:<hex>"`` of ``state`` without its ``checksum`` key: every tensor's dtype, shape and bytes, and the
    plain data (numbers, strings, lists, dicts) as canonical JSON (keys sorted, floats exact)."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in state.items() if k != "checksum"}, "state")
    return "sha256:" + h.hexdigest()


def _same(a, b) -> bool:
    """Exactly equal, types included: tensors by dtype, shape and bytes; NaN equals NaN."""
    if torch.is_tensor(a) or torch.is_tensor(b):
        return (torch.is_tensor(a) and torch.is_tensor(b) and a.dtype == b.dtype and a.shape == b.shape
                and bytes(a.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
                == bytes(b.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


# -- save and load -----------------------------------------------------------------------------------------------
def _payload(state: dict) -> dict:
    out = {"format": FORMAT, **{k: v for k, v in state.items() if k not in _RESERVED}}
    out["checksum"] = checksum(out)
    return out


def save_checkpoint(state: dict, path: str | os.PathLike) -> Path:
    """Atomically write ``state`` (tensors, numbers, strings, lists, dicts) to ``path`` in format v2, checksummed.
    Keys ``format`` and ``checksum`` of ``state`` (from a loaded file) are replaced."""
    payload = _payload(state)
    return atomic_write(path, lambda f: torch.save(payload, f))


def _read(path: Path, source=None) -> dict:
    if source is None and path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): a write that never finished or a copy that "
                              "failed; delete it and retrain or copy it again")
    try:
        state = torch.load(path if source is None else source, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, random bytes, or a pickle that weights_only refuses
        first = (str(err).splitlines() or [""])[0][:200] or "no message"
        raise CheckpointError(f"cannot load checkpoint {path}: it is corrupted or holds objects other than "
                              f"tensors and plain data ({type(err).__name__}: {first})") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not an ebmlib checkpoint (it holds a {type(state).__name__}, not a dict)")
    return state


def _upgrade_hint(path: Path) -> str:
    return (f"upgrade it in place (weights unchanged, verified) with: python -c \"from ebmlib.core.checkpoint import "
            f"upgrade_checkpoint; upgrade_checkpoint('{path}')\"")


def _verified(state: dict, path: Path) -> dict:
    fmt = state.get("format")
    if fmt == FORMAT_V1:
        raise CheckpointError(f"{path} is in the old format {FORMAT_V1}, which carries no checksum, so its integrity "
                              f"cannot be checked; {_upgrade_hint(path)}")
    if fmt != FORMAT:
        raise CheckpointError(f"{path} is not an {FORMAT} file (found format {fmt!r})")
    stored = state.pop("checksum", None)
    if not isinstance(stored, str):
        raise CheckpointError(f"{path} is corrupted: it has no checksum")
    try:
        computed = checksum(state)
    except TypeError as err:
        raise CheckpointError(f"{path} is corrupted: {err}") from err
    if computed != stored:
        raise CheckpointError(f"{path} is corrupted: its contents do not match the checksum stored in it (stored "
                              f"{stored[:23]}..., computed {computed[:23]}...); restore it from a copy or retrain it")
    return state


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`, verifying its checksum; never unpickles arbitrary
    objects. The returned dict has the ``format`` key and not the ``checksum``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    state = _verified(_read(path), path)
    if torch.device(map_location) != torch.device("cpu"):
        state = _to_device(state, torch.device(map_location))
    return state


def _to_device(obj, device):
    if torch.is_tensor(obj):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj


def upgrade_checkpoint(path: str | os.PathLike) -> bool:
    """Rewrite the v1 file ``path`` in place as v2; ``True`` if it was upgraded, ``False`` if it already was v2.

    Idempotent and safe: a v2 file is only verified; a v1 file is rewritten atomically (a crash leaves the v1 file),
    then read back, and every tensor (dtype, shape, bytes) and plain value must equal the v1 file's, else the v1
    bytes are put back and :class:`CheckpointError` is raised. A file that changes while it is being upgraded
    (another process writing it) is left to that process and reported.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    raw = path.read_bytes()
    state = _read(path, io.BytesIO(raw))
    if state.get("format") == FORMAT:
        _verified(state, path)
        return False
    if state.get("format") != FORMAT_V1:
        raise CheckpointError(f"{path} is not an ebmlib checkpoint (found format {state.get('format')!r})")
    content = {k: v for k, v in state.items() if k != "format"}
    want = checksum({"format": FORMAT, **content})
    payload = _payload(content)
    if path.read_bytes() != raw:
        raise CheckpointError(f"{path} changed while it was being upgraded; run the upgrade again")
    atomic_write(path, lambda f: torch.save(payload, f))
    try:
        back = _verified(_read(path), path)
        if checksum(back) != want or not _same({k: v for k, v in back.items() if k != "format"}, content):
            raise CheckpointError(f"{path}: the upgraded file does not read back equal to the v1 file")
    except CheckpointError:
        atomic_write(path, lambda f: f.write(raw))
        raise
    return True


def upgrade_checkpoints(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> dict[str, bool]:
    """:func:`upgrade_checkpoint` on each file of ``paths`` (a folder means its ``*.pt`` files); returns
    ``{path: upgraded}``. Files that are already v2 are verified and left as they are."""
    if isinstance(paths, (str, os.PathLike)) and Path(paths).is_dir():
        paths = sorted(Path(paths).glob("*.pt"))
    elif isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return {str(p): upgrade_checkpoint(p) for p in paths}


def find_recipe_checkpoint(name: str, recipe: dict, folders) -> tuple[dict, Path] | None:
    """The first ``<folder>/<name>.pt`` (folders in order, ``None`` skipped) whose stored ``recipe`` equals
    ``recipe``, as ``(state, path)``; ``None`` if there is none. A file of another recipe under the same name is
    passed over, never loaded as if it matched."""
    for folder in folders:
        if folder is None:
            continue
        path = Path(folder) / f"{name}.pt"
        if path.is_file():
            state = load_checkpoint(path)
            missing = [k for k in ("recipe", "model", "history", "seconds") if k not in state]
            if missing:
                raise CheckpointError(f"{path} is an ebmlib checkpoint but not of a trained recipe (it lacks "
                                      f"{missing}; a trainer's last.pt, perhaps): move it out of {folder}")
            if state["recipe"] == recipe:
                return state, path
    return None


# -- one writer per run folder -----------------------------------------------------------------------------------
class FolderLocked(RuntimeError):
    """A run folder is being written by another process, or by another live Trainer of this process."""


class _Held:
    """The lock on one folder as this process holds it: the open lock file and who in this process holds it."""

    def __init__(self, fd: Optional[int], lock_path: Path):
        self.fd, self.lock_path, self.holders = fd, lock_path, []


_HELD: dict[str, _Held] = {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _read_pid(path: Path) -> Optional[int]:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _busy(folder: Path, lock_path: Path, pid: Optional[int]) -> FolderLocked:
    who = f"process {pid}" if pid is not None else "another process"
    return FolderLocked(f"{folder} is in use by {who}: two writers would corrupt its checkpoints and log. Wait for it "
                        f"to finish or stop it; the lock ({lock_path}) is taken over once that process has exited.")


def _take(folder: Path) -> _Held:
    lock_path = folder / ".lock"
    if fcntl is not None:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise _busy(folder, lock_path, _read_pid(lock_path)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return _Held(fd, lock_path)
    for _ in range(2):  # pragma: no cover - no flock: an exclusive pid file, taken over when its pid is dead
        try:
            fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            pid = _read_pid(lock_path)
            if pid is not None and pid != os.getpid() and _pid_alive(pid):
                raise _busy(folder, lock_path, pid) from None
            lock_path.unlink(missing_ok=True)
            continue
        os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
        return _Held(None, lock_path)
    raise _busy(folder, lock_path, _read_pid(lock_path))  # pragma: no cover


class FolderLock:
    """The right to write a run folder: ``<folder>/.lock`` holds the writer's pid and is locked (``flock``) while
    held, so a second process is refused with a message naming the folder and that pid, and a writer that died
    (even by SIGKILL) leaves a lock that the next one simply takes over.

    Within one process, locks nest (the recipe layer holds the folder while its Trainer writes in it), but only one
    ``sole`` holder (a :class:`~ebmlib.core.train.Trainer`) at a time: a second live Trainer on the same folder is
    refused. Release with :meth:`release` (or use it as a context manager); an ``owner`` object releases it when it
    is garbage-collected.
    """

    def __init__(self, folder: str | os.PathLike, sole: bool = False, owner: object = None):
        self.folder, self.sole, self.held = Path(folder), sole, False
        self._key: Optional[str] = None
        if owner is not None:
            weakref.finalize(owner, self.release)

    def acquire(self) -> "FolderLock":
        if self.held:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        key = os.path.realpath(self.folder)
        for attempt in range(2):
            held = _HELD.get(key)
            if held is None:
                held = _HELD[key] = _take(self.folder)
            if self.sole and any(h.sole for h in held.holders):
                if attempt == 0:
                    gc.collect()  # a Trainer that was dropped but not yet collected releases its lock now
                    continue
                raise FolderLocked(f"{self.folder} is already being written by another Trainer of this process "
                                   f"(pid {os.getpid()}); call that trainer's close() (or drop it) first")
            break
        held.holders.append(self)
        self.held, self._key = True, key
        return self

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        held = _HELD.get(self._key)
        if held is None:
            return
        if self in held.holders:
            held.holders.remove(self)
        if not held.holders:
            del _HELD[self._key]
            if held.fd is not None:
                os.close(held.fd)        # closing the file releases the flock
            else:  # pragma: no cover
                held.lock_path.unlink(missing_ok=True)

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
