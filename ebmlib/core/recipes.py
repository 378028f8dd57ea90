"""Every trained model of the book by recipe: one way to train, save, ship and load them.

A *recipe* is a frozen dataclass that fixes everything one training run depends on (data, network, Algorithm 1's
settings, iterations, seed). Each kind of model (image EBMs, classifiers, dSprites experts and their sums, the
latent judge, hand dynamics models) is a :class:`Recipe` subclass that says how to ``build`` its untrained network
and how to ``fit`` it. :func:`load_or_train` is the one entry point: it returns the checkpoint ``<name>.pt``
from the shipped folder or ``out_dir`` when that file was made by exactly this recipe (its stored
``as_dict()`` is equal), and trains and saves it otherwise, so the book never shows a model that its recipe did
not produce. Models are placed by the one device rule (:func:`ebmlib.core.device.resolve`).

A checkpoint holds the weights, the recipe, the training history, the wall time and, for generative models,
samples as uint8 images; it loads with ``weights_only=True`` (:mod:`ebmlib.core.checkpoint`).
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from ebmlib.core.checkpoint import find_recipe_checkpoint, save_checkpoint
from ebmlib.core.device import resolve as resolve_device

__all__ = ["SHIPPED_DIR", "Recipe", "Fit", "Trained", "load_or_train", "load_or_train_all", "train", "save_trained",
           "load_trained", "plain"]

#: where the book's trained demo models live (inside the package, so a pip install carries them)
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "checkpoints"


def plain(obj):
    """Tuples to lists, recursively: the JSON-like form a recipe is stored and compared in."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


@dataclass
class Fit:
    """What training produced besides the weights: the metrics history, and for generative models the newest
    samples (images in [0, 1]) and snapshots of them over training (iteration -> images)."""

    history: list[dict]
    samples: Optional[Tensor] = None
    snapshots: dict[int, Tensor] = field(default_factory=dict)


class Recipe:
    """Base of every recipe. Subclasses are frozen dataclasses with a ``name`` field and define :meth:`build`
    and :meth:`fit`; ``as_dict`` is what a checkpoint stores and compares."""

    name: str

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if isinstance(d.get("train"), dict):
            d["train"] = dict(sorted(d["train"].items()))
        return plain(d)

    def build(self) -> nn.Module:
        """The untrained network of this recipe."""
        raise NotImplementedError

    def fit(self, model: nn.Module, *, device: torch.device, progress: bool, run_dir: Optional[Path],
            **inputs) -> Fit:
        """Train ``model`` (built by :meth:`build`, already on ``device``) in place. ``run_dir``, when given, is a
        folder for resumable training state; ``inputs`` are what the kind needs (data, parts ...)."""
        raise NotImplementedError

    def requires(self) -> tuple[str, ...]:
        """Names of the recipes whose trained models this one starts from (a fine-tuned sum: its experts)."""
        return ()

    def seeded(self) -> int:
        """The recipe's seed (``train["seed"]``, default 0): the initial weights are drawn from it too."""
        train = getattr(self, "train", None) or {}
        return int(train.get("seed", 0))


@dataclass
class Trained:
    """A trained (or loaded) model with its recipe and how it came about."""

    model: nn.Module
    recipe: Recipe
    history: list[dict]
    seconds: float
    samples: Optional[Tensor] = None
    snapshots: dict[int, Tensor] = field(default_factory=dict)
    source: str = "trained"            # "trained" in this run, or the checkpoint file it was loaded from

    @property
    def loaded(self) -> bool:
        return self.source != "trained"

    def origin(self) -> str:
        """``"trained in this run"`` or ``"loaded from <file>"``, for the chapters' model tables."""
        return f"loaded from {os.path.relpath(self.source)}" if self.loaded else "trained in this run"


def _to_uint8(x: Tensor) -> Tensor:
    return (x.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8)


def train(recipe: Recipe, *, device: Optional[str | torch.device] = None, progress: bool = True,
          run_dir: Optional[str | os.PathLike] = None, **inputs) -> Trained:
    """Train ``recipe`` from scratch (or resume it from ``run_dir``); the model ends in eval mode on ``device``."""
    device = resolve_device(device)
    torch.manual_seed(recipe.seeded())   # the initial weights are a function of the recipe
    model = recipe.build().to(device)
    start = time.perf_counter()
    fit = recipe.fit(model, device=device, progress=progress, run_dir=Path(run_dir) if run_dir else None, **inputs)
    model.eval()
    return Trained(model, recipe, list(fit.history), time.perf_counter() - start, fit.samples, dict(fit.snapshots))


def save_trained(t: Trained, path: str | os.PathLike) -> Path:
    state = {"recipe": t.recipe.as_dict(), "model": t.model.state_dict(), "history": t.history, "seconds": t.seconds}
    if t.samples is not None:
        state["samples"] = _to_uint8(t.samples)
    if t.snapshots:
        state["snapshots"] = {str(k): _to_uint8(v) for k, v in t.snapshots.items()}
    return save_checkpoint(state, path)


def _from_state(recipe: Recipe, state: dict, path, device: torch.device) -> Trained:
    model = recipe.build()
    model.load_state_dict(state["model"])
    model.to(device).eval()
    samples = state["samples"].float() / 255 if "samples" in state else None
    snapshots = {int(k): v.float() / 255 for k, v in state.get("snapshots", {}).items()}
    return Trained(model, recipe, state["history"], state["seconds"], samples, snapshots, source=str(path))


def load_trained(recipe: Recipe, folders=(SHIPPED_DIR,), device: Optional[str | torch.device] = None) -> Optional[Trained]:
    """The checkpoint of ``recipe`` from the first of ``folders`` holding ``<name>.pt`` made by this exact recipe,
    or ``None``. A file of another recipe under the same name is passed over, never loaded as if it matched."""
    found = find_recipe_checkpoint(recipe.name, recipe.as_dict(), folders)
    return _from_state(recipe, *found, resolve_device(device)) if found is not None else None


def load_or_train(recipe: Recipe, *, out_dir: Optional[str | os.PathLike] = None,
                  shipped_dir: Optional[str | os.PathLike] = SHIPPED_DIR, device: Optional[str | torch.device] = None,
                  progress: bool = True, **inputs) -> Trained:
    """The model of ``recipe``: loaded from ``shipped_dir`` or ``out_dir`` when a checkpoint of exactly this recipe is
    there, else trained (resumably under ``out_dir/.<name>_run``) and saved to ``out_dir/<name>.pt``.

    ``inputs`` go to the recipe's ``fit`` (training data, trained parts ...) and are not used when loading.
    """
    loaded = load_trained(recipe, (shipped_dir, out_dir), device)
    if loaded is not None:
        return loaded
    run_dir = Path(out_dir) / f".{recipe.name}_run" if out_dir is not None else None
    trained = train(recipe, device=device, progress=progress, run_dir=run_dir, **inputs)
    if out_dir is not None:
        save_trained(trained, Path(out_dir) / f"{recipe.name}.pt")
    return trained


def load_or_train_all(recipes: Mapping[str, Recipe], inputs: Callable[[Recipe, dict], dict] = lambda recipe, done: {},
                      *, only: Optional[Sequence[str]] = None, log: Optional[Callable[[str], None]] = None,
                      **options) -> dict[str, Trained]:
    """:func:`load_or_train` for each recipe of a chapter, in order: ``inputs(recipe, done)`` gives a recipe's fit
    inputs (``done``: the models so far, by name); ``only`` restricts to some names and the recipes they require;
    ``options`` go to :func:`load_or_train` (out_dir, shipped_dir, device, progress)."""
    unknown = sorted(set(only or ()) - set(recipes))
    if unknown:
        raise ValueError(f"unknown models {unknown}; this chapter has {sorted(recipes)}")
    wanted = set(only) if only else set(recipes)
    todo = list(wanted)
    while todo:
        for name in recipes[todo.pop()].requires():
            if name not in recipes:
                raise ValueError(f"a recipe requires {name!r}, which the chapter does not define")
            if name not in wanted:
                wanted.add(name)
                todo.append(name)
    done: dict[str, Trained] = {}
    for name, recipe in recipes.items():
        if name in wanted:
            done[name] = load_or_train(recipe, **options, **inputs(recipe, done))
            if log is not None:
                log(f"{name}: {done[name].origin()} ({done[name].seconds:.0f} s of training)")
    return done
