"""Metrics a notebook run writes as JSON, so results pages quote runs, never hand-typed numbers."""
from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Optional

import torch

__all__ = ["save_metrics", "load_metrics", "source_commit"]


def _plain(value):
    """Turn tensors / numpy scalars into JSON numbers; NaN and inf become None (JSON has no NaN)."""
    if torch.is_tensor(value):
        value = value.tolist()
    if hasattr(value, "item") and not isinstance(value, (list, dict)):
        value = value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def source_commit() -> Optional[str]:
    """The git commit of the checkout ``ebmlib`` is imported from (``+dirty`` when it has uncommitted changes), or
    None outside a checkout: the results page says which code made a number."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty else "")


def save_metrics(out_dir: str | os.PathLike, chapter: str, scale: str, metrics: dict) -> Path:
    """Write ``out_dir/<chapter>.json`` atomically with the metrics and how they were made."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "chapter": chapter,
        "scale": scale,
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "torch": torch.__version__,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "machine": platform.machine(),
        # floating-point results on CPU depend on the vector instructions torch picks (a rerun on a machine with
        # another capability can differ in the last bits, and a training run drifts from there)
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "commit": source_commit(),
        "metrics": _plain(metrics),
    }
    path = out / f"{chapter}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True))
    os.replace(tmp, path)
    return path


def load_metrics(path: str | os.PathLike) -> dict:
    return json.loads(Path(path).read_text())
