"""A chapter's models trained on several processes from inside the chapter (a notebook at paper scale).

When the preset asks for more than one process per node (its file's ``PROCESSES``, e.g. ``{"paper": "gpus"}``:
one per visible GPU; ``$EBMLIB_NPROC`` overrides it, ``EBMLIB_NPROC=1`` switches it off), a chapter's
``train_models`` first runs the command line's entry point under torchrun, as a subprocess:

    python -m torch.distributed.run --standalone --nproc_per_node N -m ebmlib train CHAPTER --scale S --seed K
        --out OUT_DIR [--set key=value ...] [--only NAME ...]

which trains every model of the chapter on the N processes together and saves ``OUT_DIR/<name>.pt`` (rank 0);
the chapter then goes on as always, and :func:`~ebmlib.core.recipes.load_or_train` finds the files there. The
preset's values that differ from the named scale (overrides, the shrunk paper branch) travel as ``--set`` of the
whole top-level value, so both processes build the same recipes. Nothing is launched inside a world already
(under torchrun, or when ``world=`` is passed: the command line), nor without an ``out_dir``.
"""
from __future__ import annotations

import ast
import os
import subprocess
from typing import Optional, Sequence

from ebmlib.core.distributed import launched, resolve_processes, torchrun_command
from ebmlib.presets import preset, processes

__all__ = ["processes_for", "launch_command", "train_in_processes"]


def processes_for(cfg) -> int:
    """Processes per node the chapter's training asks for (the preset's ``PROCESSES``, ``$EBMLIB_NPROC``)."""
    return resolve_processes(processes(cfg.chapter, cfg.scale))


def _sets(cfg) -> list[str]:
    base = preset(cfg.chapter, cfg.scale).as_dict()
    out = []
    for key, value in cfg.as_dict().items():
        if key in base and base[key] == value:
            continue
        text = repr(value)
        try:
            same = ast.literal_eval(text) == value
        except (ValueError, SyntaxError):
            same = False
        if not same:
            raise ValueError(f"preset value {key}={value!r} cannot be passed to the launched processes as a "
                             "Python literal")
        out += ["--set", f"{key}={text}"]
    return out


def launch_command(cfg, nproc: int, out_dir: str | os.PathLike, seed: int = 0,
                   only: Optional[Sequence[str]] = None) -> list[str]:
    """The torchrun command that trains ``cfg``'s models (the chapter and scale of the preset ``cfg``) on ``nproc``
    processes and saves them in ``out_dir``."""
    args = ["-m", "ebmlib", "train", cfg.chapter, "--scale", cfg.scale, "--seed", str(int(seed)),
            "--out", os.fspath(out_dir), *_sets(cfg)]
    if only:
        args += ["--only", *only]
    return torchrun_command(nproc, args)


def train_in_processes(cfg, seed: int = 0, only: Optional[Sequence[str]] = None, *, out_dir=None, world=None,
                       progress: bool = True, **_options) -> bool:
    """If ``cfg`` asks for several processes (and this is not one of them already), train its models under
    torchrun (see the module docstring) and return True; else do nothing and return False. Raises
    ``RuntimeError`` naming the command when the launched run fails."""
    if world is not None or launched():
        return False
    nproc = processes_for(cfg)
    if nproc <= 1:
        return False
    if out_dir is None:
        raise ValueError(f"the preset asks for {nproc} processes, which save the models they train in out_dir: "
                         "pass out_dir (or set EBMLIB_NPROC=1 to train in this process)")
    cmd = launch_command(cfg, nproc, out_dir, seed, only)
    env = dict(os.environ)
    if not progress:
        env["TQDM_DISABLE"] = "1"
    done = subprocess.run(cmd, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"training on {nproc} processes failed (exit status {done.returncode}): "
                           + " ".join(cmd))
    return True
