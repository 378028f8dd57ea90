"""The one device rule: where models are built, trained and loaded when the caller does not say.

``resolve(None)`` gives ``$EBMLIB_DEVICE`` if set (``cpu``, ``cuda``, ``cuda:1`` ...), else ``cuda`` when a GPU is
visible, else the CPU. A chapter passes its preset's ``device`` ("cpu" at the CPU scales, "auto" at paper
scale) through the same function, so one place decides.
"""
from __future__ import annotations

import os
from typing import Optional

import torch

__all__ = ["ENV_VAR", "resolve"]

ENV_VAR = "EBMLIB_DEVICE"


def resolve(device: Optional[str | torch.device] = None) -> torch.device:
    """``device`` itself; for ``None`` or ``"auto"``: ``$EBMLIB_DEVICE``, else CUDA when available, else CPU."""
    if device is None or device == "auto":
        device = os.environ.get(ENV_VAR) or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r} (from {ENV_VAR} or the caller); expected e.g. 'cpu', 'cuda', "
                         f"'cuda:0' or 'auto'") from err
