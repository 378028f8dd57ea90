"""What every chapter does first, in one call: its preset, threads, seeds, plot style, a timer and the metrics file.

    ch = start("03_mnist", scale, seed, out_dir, overrides)   # the notebook's papermill parameters
    cfg = ch.cfg                                              # the preset (ebmlib.presets)
    ch.metrics["fid"] = 12.3                                  # everything worth quoting
    ch.table(["model", "FID"], rows)                          # a Markdown table in the page
    ch.save()                                                 # <out_dir>/03_mnist.json, with timing and settings

The parameters come from papermill (``python -m ebmlib reproduce``); a notebook run any other way (JupyterLab,
nbval in CI) leaves them at ``None`` and they are read from ``$EBMLIB_SCALE``, ``$EBMLIB_OUT``, ``$EBMLIB_SET``
(JSON of overrides) and ``$EBMLIB_SHRINK`` (``1``: the paper branch at CI's size).
"""
from __future__ import annotations

import json
import os
import platform
import random
import time
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch

from ebmlib.core.device import resolve as resolve_device
from ebmlib.notebook.results import save_metrics
from ebmlib.notebook.tables import markdown_table
from ebmlib.presets import preset, scale_from_env

__all__ = ["Chapter", "start", "set_threads", "PLOT_STYLE"]

#: one plot style for the whole book (110 dpi: multi-panel figures stay legible when scaled to the column)
PLOT_STYLE = {"figure.dpi": 110, "savefig.dpi": 110, "font.size": 9}


def set_threads(n: Optional[int] = 1) -> int:
    """Set torch's CPU threads (``None`` keeps torch's choice). Small models run faster on one thread than on two
    contending ones on a busy 2-core machine."""
    if n:
        torch.set_num_threads(int(n))
    return torch.get_num_threads()


class Chapter:
    """One run of a chapter: its preset ``cfg``, ``seed``, ``out_dir``, ``device``, ``metrics`` and a timer."""

    def __init__(self, name: str, cfg, seed: int, out_dir: Path, overrides: Mapping[str, Any]):
        self.name, self.cfg, self.seed, self.out_dir = name, cfg, int(seed), Path(out_dir)
        self.overrides = dict(overrides)
        self.device = resolve_device(cfg.get("device", "cpu"))
        self.metrics: dict[str, Any] = {}
        self._wall, self._cpu = time.time(), time.process_time()

    @property
    def scale(self) -> str:
        return self.cfg.scale

    def rng(self, k: int = 0) -> torch.Generator:
        """A fresh generator for the ``k``-th random stream of this run (seed 0 gives ``manual_seed(k)``)."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + k)

    def elapsed(self) -> tuple[float, float]:
        """(wall seconds, CPU seconds of this kernel) since :func:`start`."""
        return time.time() - self._wall, time.process_time() - self._cpu

    def show(self, markdown: str) -> None:
        """Display Markdown in the page (plain text outside a notebook)."""
        try:
            from IPython.display import Markdown, display
        except ImportError:   # pragma: no cover - the book always runs under IPython
            print(markdown)
            return
        display(Markdown(markdown))

    def table(self, header: Sequence[str], rows: Sequence[Sequence], digits: int = 3, caption: str = "") -> None:
        self.show((caption + "\n\n" if caption else "") + markdown_table(header, rows, digits))

    def describe(self) -> str:
        """One line saying what ran: scale, seed, overrides, device, threads."""
        extra = f", overrides {self.overrides}" if self.overrides else ""
        shrunk = " (paper branch shrunk to CI size)" if self.cfg.shrunk else ""
        return (f"scale `{self.scale}`{shrunk}, seed {self.seed}{extra}; torch {torch.__version__} on "
                f"{self.device}, {torch.get_num_threads()} CPU thread(s)")

    def save(self) -> Path:
        """Write ``<out_dir>/<chapter>.json``: the metrics, the settings that made them and the time taken."""
        wall, cpu = self.elapsed()
        record = dict(self.metrics, wall_seconds=wall, cpu_seconds=cpu, seed=self.seed, overrides=self.overrides,
                      shrunk=self.cfg.shrunk, preset=self.cfg.as_dict(), python=platform.python_version())
        return save_metrics(self.out_dir, self.name, self.scale, record)


def _env_overrides() -> dict:
    text = os.environ.get("EBMLIB_SET", "").strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"EBMLIB_SET must be a JSON object of preset overrides, e.g. "
                         f"'{{\"n_iters\": 100}}'; got {text!r} ({err})") from err
    if not isinstance(value, dict):
        raise ValueError(f"EBMLIB_SET must be a JSON object, got {text!r}")
    return value


def start(name: str, scale: Optional[str] = None, seed: int = 0, out_dir: Optional[str | os.PathLike] = None,
          overrides: Optional[Mapping[str, Any]] = None) -> Chapter:
    """Set up a chapter run; see the module docstring for where unset parameters come from."""
    scale = scale or scale_from_env()
    overrides = {**_env_overrides(), **(overrides or {})}
    shrink = os.environ.get("EBMLIB_SHRINK", "") not in ("", "0") and scale == "paper"
    cfg = preset(name, scale, overrides, shrink=shrink)
    set_threads(cfg.get("threads", 1))
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    try:
        import matplotlib.pyplot as plt
        plt.rcParams.update(PLOT_STYLE)
    except ImportError:   # pragma: no cover
        pass
    out = Path(out_dir or os.environ.get("EBMLIB_OUT") or "_results")
    return Chapter(cfg.chapter, cfg, seed, out, overrides)
