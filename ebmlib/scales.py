"""Named size presets: every chapter runs at ``smoke``, ``demo`` or ``paper`` scale.

* smoke: seconds on 2 CPU cores; proves every cell runs (CI).
* demo: CPU minutes; the committed outputs of the book, already showing the paper's point.
* paper: the paper's settings (A.7), for a GPU.

A notebook asks for its preset once: ``cfg = ebmlib.scales.preset("01_sampling", scale)`` and reads its sizes
from ``cfg``; the scale never appears as an ``if`` in the notebook.
"""
from __future__ import annotations

import os
from types import MappingProxyType, SimpleNamespace

__all__ = ["SCALES", "PRESETS", "preset", "scale_from_env", "register"]

SCALES = ("smoke", "demo", "paper")

#: chapter -> scale -> settings. Chapters register their presets here (one dict per chapter, below).
PRESETS: dict[str, dict[str, dict]] = {}


def register(chapter: str, presets: dict[str, dict]) -> None:
    """Register a chapter's presets; each of smoke, demo and paper must be given."""
    missing = [s for s in SCALES if s not in presets]
    if missing:
        raise ValueError(f"presets for chapter {chapter!r} lack scales {missing}; need all of {SCALES}")
    PRESETS[chapter] = {s: MappingProxyType(dict(presets[s])) for s in SCALES}


def scale_from_env(default: str = "demo") -> str:
    """The scale named by the EBMLIB_SCALE environment variable (CI sets it to ``smoke``)."""
    return check_scale(os.environ.get("EBMLIB_SCALE", default))


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    return scale


def preset(chapter: str, scale: str) -> SimpleNamespace:
    """The settings of ``chapter`` at ``scale`` as an attribute namespace (``cfg.n_chains`` ...)."""
    check_scale(scale)
    if chapter not in PRESETS:
        raise KeyError(f"no presets for chapter {chapter!r}; known chapters: {sorted(PRESETS)}")
    return SimpleNamespace(scale=scale, **PRESETS[chapter][scale])


# ---------------------------------------------------------------------------------------------------------
# Chapter presets. Keep each chapter's block together; sizes only, no logic.
