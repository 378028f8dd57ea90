"""Every chapter's sizes at three scales, as plain data: one flat file per chapter in this folder.

* ``smoke``: seconds on 2 CPU cores; proves that every cell runs (CI).
* ``demo``: CPU minutes; the committed outputs of the book, already showing the paper's point.
* ``paper``: the paper's settings (A.7), for a GPU.

A preset file holds ``DEMO`` written out whole, and ``SMOKE`` and ``PAPER`` as the keys they change: a key named
there replaces DEMO's value whole, so every value of a scale is found by grep in one file. ``PAPER_SHRUNK``
lists the sizes CI shrinks when it runs the paper branch (same code, same data-set choice, seconds of compute).

    cfg = preset("03_mnist", "demo", overrides={"models.mnist_cond_replay.n_iters": 100})
    cfg.models["mnist_cond_replay"]["n_iters"]   # 100

A file may also hold ``PROCESSES``: scale -> how many processes per node the chapter's models train on (an int,
or ``"gpus"``: one per visible GPU), read by :func:`processes`; it is kept out of the settings (and out of the
metrics JSON that records them), since it says where the same training runs, not what it computes.
"""
from __future__ import annotations

import ast
import copy
import importlib
import os
from typing import Any, Mapping, Optional, Sequence

__all__ = ["SCALES", "CHAPTERS", "Preset", "preset", "chapter_name", "parse_overrides", "scale_from_env", "processes"]

SCALES = ("smoke", "demo", "paper")

#: chapter (notebook name) -> preset module in this folder (also the chapter's module in ebmlib.chapters)
CHAPTERS = {
    "01_sampling": "sampling",
    "02_training_2d": "training_2d",
    "03_mnist": "mnist",
    "04_cifar10": "cifar10",
    "05_likelihood": "likelihood",
    "06_ood_robustness": "ood_robustness",
    "07_robot_hand": "robot_hand",
    "08_composition": "composition",
    "09_boltzmann": "boltzmann",
    "10_denoising": "denoising",
    "11_jem": "jem",
    "12_imagenet": "imagenet",
}


class Preset:
    """Read-only settings of one chapter at one scale: ``cfg.n_chains``; ``cfg.as_dict()`` for the JSON."""

    def __init__(self, chapter: str, scale: str, values: Mapping[str, Any], shrunk: bool = False):
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "chapter", chapter)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "shrunk", shrunk)

    def __getattr__(self, key: str):
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"preset {self.chapter} ({self.scale}) has no setting {key!r}; "
                                 f"it has {sorted(self._values)}") from None

    def __setattr__(self, key, value):
        raise AttributeError("presets are read-only: pass overrides to preset() or --set key=value")

    def get(self, key: str, default=None):
        return self._values.get(key, default)

    def as_dict(self) -> dict:
        return copy.deepcopy(self._values)

    def __repr__(self) -> str:
        return f"Preset({self.chapter!r}, {self.scale!r}{', shrunk' if self.shrunk else ''})"


def chapter_name(name: str) -> str:
    """``"03"``, ``"mnist"`` or ``"03_mnist"`` -> ``"03_mnist"``; a clear error for anything else."""
    for chapter, module in CHAPTERS.items():
        if name in (chapter, module, chapter.split("_", 1)[0]):
            return chapter
    raise KeyError(f"unknown chapter {name!r}; expected one of {list(CHAPTERS)} (or their number or module name)")


def _check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    return scale


def scale_from_env(default: str = "demo") -> str:
    """The scale named by ``$EBMLIB_SCALE`` (CI sets it to ``smoke``; nbval cannot pass parameters)."""
    return _check_scale(os.environ.get("EBMLIB_SCALE") or default)


def _set_path(values: dict, dotted: str, value) -> None:
    """``values["a"]["b"] = value`` for ``"a.b"``; every key on the path must exist (a typo is an error). Keys
    may hold dots themselves (``models.sens_l2_0.01.n_iters``): the longest key that fits is taken."""
    node, rest, walked = values, dotted, []
    while True:
        fits = [k for k in node if isinstance(k, str) and (rest == k or rest.startswith(k + "."))] \
            if isinstance(node, dict) else []
        if not fits:
            where = ".".join(walked) or "the preset"
            known = sorted(node) if isinstance(node, dict) else f"a {type(node).__name__}, not a mapping"
            raise KeyError(f"override {dotted!r}: {where} has no key {rest.split('.')[0]!r}; it has {known}")
        key = max(fits, key=len)
        if rest == key:
            node[key] = value
            return
        node, rest = node[key], rest[len(key) + 1:]
        walked.append(key)


def preset(chapter: str, scale: str = "demo", overrides: Optional[Mapping[str, Any]] = None,
           shrink: bool = False) -> Preset:
    """The settings of ``chapter`` at ``scale``; ``overrides`` maps dotted keys to new values; ``shrink`` applies
    the file's ``PAPER_SHRUNK`` (only with ``scale="paper"``: the paper branch at CI's size)."""
    chapter = chapter_name(chapter)
    _check_scale(scale)
    module = importlib.import_module(f"{__name__}.{CHAPTERS[chapter]}")
    values = copy.deepcopy(module.DEMO)
    changes = {"smoke": getattr(module, "SMOKE", {}), "demo": {}, "paper": getattr(module, "PAPER", {})}[scale]
    unknown = sorted(set(changes) - set(values))
    if unknown:
        raise KeyError(f"{module.__name__}.{scale.upper()} sets keys DEMO does not have: {unknown}")
    values.update(copy.deepcopy(changes))
    if shrink:
        if scale != "paper":
            raise ValueError(f"shrink applies to the paper scale only, got scale {scale!r}")
        for key, value in module.PAPER_SHRUNK.items():
            _set_path(values, key, copy.deepcopy(value))
    for key, value in (overrides or {}).items():
        _set_path(values, key, value)
    return Preset(chapter, scale, values, shrunk=shrink)


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["n_iters=100", "models.a.width=8", "name=x"]`` -> a dict; values are Python literals, else strings."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not of the form key=value (e.g. n_iters=100)")
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = text
    return out


def processes(chapter: str, scale: str) -> int | str:
    """How many processes per node ``chapter``'s training asks for at ``scale``: its file's ``PROCESSES[scale]``
    (an int, or ``"gpus"``), 1 when it names none. ``ebmlib.core.distributed.resolve_processes`` turns it into a
    count (``$EBMLIB_NPROC`` overrides it)."""
    chapter = chapter_name(chapter)
    _check_scale(scale)
    module = importlib.import_module(f"{__name__}.{CHAPTERS[chapter]}")
    return getattr(module, "PROCESSES", {}).get(scale, 1)
