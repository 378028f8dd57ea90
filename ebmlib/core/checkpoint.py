"""Checkpoints that survive crashes and refuse anything but tensors and plain data.

Writes go to a temporary file in the same directory, are flushed to disk, then renamed over the target: a crash
mid-write leaves the previous checkpoint intact. Loads use ``torch.load(weights_only=True)``, which refuses
pickled code objects, and a truncated or foreign file raises :class:`CheckpointError` naming the file.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

import torch

__all__ = ["CheckpointError", "atomic_write", "save_checkpoint", "load_checkpoint", "find_recipe_checkpoint", "FORMAT"]

FORMAT = "ebmlib-checkpoint-v1"


class CheckpointError(RuntimeError):
    """A checkpoint could not be read: missing, corrupted, of another format, or carrying pickled objects."""


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Create ``path`` by ``write(file)`` on a temporary file in the same folder, fsync'd, then renamed over it.

    A crash mid-write leaves the previous file (or none) and no partial one: every file ebmlib writes that a
    later run trusts (checkpoints, data caches, generated data sets) goes through here.
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


def save_checkpoint(state: dict, path: str | os.PathLike) -> Path:
    """Atomically write ``state`` (tensors, numbers, strings, lists, dicts) to ``path``."""
    return atomic_write(path, lambda f: torch.save({"format": FORMAT, **state}, f))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`; never unpickles arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, random bytes, or a pickle that weights_only refuses
        raise CheckpointError(f"cannot load checkpoint {path}: it is corrupted or holds objects other than "
                              f"tensors and plain data ({type(err).__name__}: {str(err).splitlines()[0][:200]})") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} is not an {FORMAT} file (found format {found!r})")
    return state


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
            if state["recipe"] == recipe:
                return state, path
    return None
