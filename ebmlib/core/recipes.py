"""Every trained model of the book by recipe: one way to train, save, ship and load them.

A *recipe* is a frozen dataclass that fixes everything one training run depends on (data, network, Algorithm 1's
settings, iterations, seed). Each kind of model (image EBMs, classifiers, dSprites experts and their sums, the
latent judge, hand dynamics models) is a :class:`Recipe` subclass that says how to ``build`` its untrained network
and how to ``fit`` it. :func:`load_or_train` is the one entry point: it returns the checkpoint ``<name>.pt``
from the shipped folder or ``out_dir`` when that file was made by exactly this recipe (its stored
``as_dict()`` is equal), and trains and saves it otherwise, so the book never shows a model that its recipe did
not produce. Models are placed by the one device rule (:func:`ebmlib.core.device.resolve`).

A checkpoint holds the weights, the recipe, the training history, what the run did (``progress``: iterations and
the snapshot iterations kept), the wall time and, for generative models, samples as uint8 images; it loads with
``weights_only=True`` and a verified checksum (:mod:`ebmlib.core.checkpoint`).

Nothing partial is ever passed off as whole: :func:`train` checks that the fit did every iteration of its recipe
(and kept every snapshot) before anything is saved, and :func:`load_trained` refuses a file that did not. The
resumable run folder ``out_dir/.<name>_run`` is locked while in use (:class:`~ebmlib.core.checkpoint.FolderLock`)
and records its recipe (``recipe.json``): a folder left by another recipe is started over, not resumed (one that
differs only in a smaller ``n_iters`` is resumed and extended).

On several processes (``world=``, a :class:`~ebmlib.core.distributed.World` under torchrun) every rank calls the
same functions in the same order: rank 0 alone reads and writes files (shipped and ``out_dir`` checkpoints, the run
folder and its lock) and hands what it read to the others. A recipe kind whose :meth:`Recipe.distributes` is true
(the image EBMs, chapter 06's transition EBMs, chapter 07's latent EBMs) trains on all ranks together; any other
kind is fitted by every rank the same way on its own (rank 0 with the run folder) and rank 0's result is given to
all. A model trained on several processes records ``world_size`` in its file (:attr:`Trained.world_size`).
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from ebmlib.core.checkpoint import CheckpointError, FolderLock, atomic_write, find_recipe_checkpoint, save_checkpoint
from ebmlib.core.distributed import SINGLE, World
from ebmlib.core.train import RUN_FILES

__all__ = ["SHIPPED_DIR", "Recipe", "Fit", "Trained", "IncompleteRun", "load_or_train", "load_or_train_all", "train",
           "save_trained", "load_trained", "plain", "progress_of", "RUN_RECIPE"]

#: the file in a run folder that says which recipe the run in it belongs to
RUN_RECIPE = "recipe.json"


class IncompleteRun(RuntimeError):
    """A training run did not do everything its recipe asks (iterations, snapshots): it is never saved or loaded
    as the recipe's model."""

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
        folder for resumable training state; ``inputs`` are what the kind needs (data, parts ...). A kind that
        :meth:`distributes` also takes ``world=`` (every rank calls ``fit``; see the module docstring)."""
        raise NotImplementedError

    def distributes(self) -> bool:
        """Whether :meth:`fit` trains on several processes together when given ``world=``; a kind that does not is
        fitted by each rank alone (see the module docstring)."""
        return False

    def requires(self) -> tuple[str, ...]:
        """Names of the recipes whose trained models this one starts from (a fine-tuned sum: its experts)."""
        return ()

    def progress_target(self) -> Optional[dict]:
        """What a whole run of this recipe has done: ``{"iterations": n}`` (and ``"snapshots"``: the iterations
        of the snapshots kept, where the kind keeps some), or ``None`` when the kind has no iteration count. The
        default reads an int field ``n_iters``."""
        n = getattr(self, "n_iters", None)
        return {"iterations": n} if isinstance(n, int) and not isinstance(n, bool) else None

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
    world_size: int = 1                # the processes that trained it together (torchrun's world size)

    @property
    def loaded(self) -> bool:
        return self.source != "trained"

    def origin(self) -> str:
        """``"trained in this run"`` or ``"loaded from <file>"``, for the chapters' model tables."""
        return f"loaded from {os.path.relpath(self.source)}" if self.loaded else "trained in this run"


def _to_uint8(x: Tensor) -> Tensor:
    return (x.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8)


def progress_of(history: Sequence[dict], snapshots) -> dict:
    """What a run did, read off its history and snapshots: ``{"iterations": k, "snapshots": [sorted iterations]}``.
    The history's iteration records (events aside) must be 1, 2, ..., k."""
    its = [h.get("iteration") for h in history if isinstance(h, dict) and "event" not in h]
    if its != list(range(1, len(its) + 1)):
        raise IncompleteRun(f"the history's iterations are not 1..{len(its)} in order (found {its[:3]}...{its[-3:]})")
    return {"iterations": len(its), "snapshots": sorted(int(k) for k in snapshots)}


def _shortfall(target: Optional[dict], done: dict) -> list[str]:
    if target is None:
        return []
    out = []
    if done["iterations"] != target["iterations"]:
        out.append(f"{done['iterations']} of {target['iterations']} iterations")
    if "snapshots" in target and done["snapshots"] != sorted(target["snapshots"]):
        missing = sorted(set(target["snapshots"]) - set(done["snapshots"]))
        extra = sorted(set(done["snapshots"]) - set(target["snapshots"]))
        out.append(f"snapshots {done['snapshots']} instead of {sorted(target['snapshots'])}"
                   + (f" (missing {missing})" if missing else "") + (f" (not of this recipe: {extra})" if extra else ""))
    return out


def _clear_run_dir(run_dir: Path) -> None:
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "snapshots", ignore_errors=True)
    for tmp in run_dir.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def _adopt_run_dir(recipe: Recipe, run_dir: Path) -> None:
    """Make ``run_dir`` this recipe's: keep a run of this recipe (or of the same recipe with a smaller ``n_iters``,
    which this one extends), start over where it holds another recipe's run or one of unknown recipe."""
    mine = recipe.as_dict()
    record = run_dir / RUN_RECIPE
    holds = any((run_dir / name).exists() for name in RUN_FILES) or (run_dir / "snapshots").exists()
    why = None
    if record.is_file():
        try:
            theirs = json.loads(record.read_text())
        except ValueError:
            theirs, why = None, f"its {RUN_RECIPE} is unreadable"
        if theirs == mine:
            return
        if isinstance(theirs, dict):
            diff = sorted(k for k in set(theirs) | set(mine) if theirs.get(k) != mine.get(k))
            if (diff == ["n_iters"] and isinstance(theirs.get("n_iters"), int)
                    and isinstance(mine.get("n_iters"), int) and theirs["n_iters"] <= mine["n_iters"]):
                why = None   # the same run, continued further
            else:
                why = f"it holds a run of another recipe (differing in {diff})"
    elif holds:
        why = f"it holds a run that records no recipe (no {RUN_RECIPE})"
    if holds and why is not None:
        warnings.warn(f"run folder {run_dir}: {why}; starting recipe {recipe.name!r} over in it", stacklevel=3)
        _clear_run_dir(run_dir)
    atomic_write(record, lambda f: f.write(json.dumps(mine, indent=1).encode()))


def train(recipe: Recipe, *, device: Optional[str | torch.device] = None, progress: bool = True,
          run_dir: Optional[str | os.PathLike] = None, world: Optional[World] = None, **inputs) -> Trained:
    """Train ``recipe`` from scratch (or resume it from ``run_dir``); the model ends in eval mode on ``device``.

    ``run_dir`` is locked for the whole fit (a second process is refused) and made this recipe's first (see the
    module docstring). Raises :class:`IncompleteRun` if the fit did not do all its recipe asks. ``world``: the
    processes training together (every rank calls this; ``device`` "cuda" is each rank's own GPU).
    """
    world = world if world is not None else SINGLE
    device = world.device(device)
    run_dir = Path(run_dir) if run_dir else None
    lock = FolderLock(run_dir) if run_dir is not None and world.is_main else None
    together = world.distributed and recipe.distributes()
    world.on_main(lambda: lock.acquire() if lock is not None else None)
    try:
        if run_dir is not None and world.distributed:
            world.on_main(lambda: _adopt_run_dir(recipe, run_dir))
        elif run_dir is not None:
            _adopt_run_dir(recipe, run_dir)
        torch.manual_seed(recipe.seeded())   # the initial weights are a function of the recipe
        model = recipe.build().to(device)
        start = time.perf_counter()
        if together:
            fit = recipe.fit(model, device=device, progress=progress and world.is_main, run_dir=run_dir, world=world,
                             **inputs)
        elif world.distributed:   # every rank fits alone; rank 0's model (with its run folder) is everyone's
            fit = recipe.fit(model, device=device, progress=progress and world.is_main,
                             run_dir=run_dir if world.is_main else None, **inputs)
            shared = world.broadcast({"model": model.state_dict(), "fit": fit} if world.is_main else None)
            if not world.is_main:
                model.load_state_dict(shared["model"])
                fit = shared["fit"]
        else:
            fit = recipe.fit(model, device=device, progress=progress, run_dir=run_dir, **inputs)
        model.eval()
        short = _shortfall(recipe.progress_target(), progress_of(fit.history, fit.snapshots))
        if short:
            raise IncompleteRun(f"recipe {recipe.name!r}: the run is not whole ({'; '.join(short)}); nothing was saved"
                                + (f"; its run folder {run_dir} resumes it" if run_dir is not None else ""))
    finally:
        if lock is not None:
            lock.release()
    return Trained(model, recipe, list(fit.history), time.perf_counter() - start, fit.samples, dict(fit.snapshots),
                   world_size=world.size if together else 1)


def save_trained(t: Trained, path: str | os.PathLike) -> Path:
    """Save a trained model with its recipe, history, ``progress`` and samples; refuses a run that is not whole."""
    done = progress_of(t.history, t.snapshots)
    short = _shortfall(t.recipe.progress_target(), done)
    if short:
        raise IncompleteRun(f"recipe {t.recipe.name!r}: will not save a run that is not whole ({'; '.join(short)})")
    state = {"recipe": t.recipe.as_dict(), "model": t.model.state_dict(), "history": t.history, "seconds": t.seconds,
             "progress": done}
    if t.world_size != 1:
        state["world_size"] = int(t.world_size)
    if t.samples is not None:
        state["samples"] = _to_uint8(t.samples)
    if t.snapshots:
        state["snapshots"] = {str(k): _to_uint8(v) for k, v in t.snapshots.items()}
    return save_checkpoint(state, path)


def _check_whole(recipe: Recipe, state: dict, path) -> None:
    """A file of ``recipe`` must hold a whole run: its history, snapshots and recorded progress agree and match
    what the recipe asks."""
    try:
        done = progress_of(state.get("history", []), state.get("snapshots", {}))
    except IncompleteRun as err:
        raise CheckpointError(f"{path}: {err}") from err
    recorded = state.get("progress")
    if recorded is not None and dict(recorded) != done:
        raise CheckpointError(f"{path} records progress {recorded} but its history and snapshots say {done}")
    short = _shortfall(recipe.progress_target(), done)
    if short:
        raise CheckpointError(f"{path} holds an interrupted run of recipe {recipe.name!r} ({'; '.join(short)}), not "
                              "its model; delete it to train the recipe (an interrupted run resumes from its run folder)")


def _from_state(recipe: Recipe, state: dict, path, device: torch.device) -> Trained:
    _check_whole(recipe, state, path)
    model = recipe.build()
    model.load_state_dict(state["model"])
    model.to(device).eval()
    samples = state["samples"].float() / 255 if "samples" in state else None
    snapshots = {int(k): v.float() / 255 for k, v in state.get("snapshots", {}).items()}
    return Trained(model, recipe, state["history"], state["seconds"], samples, snapshots, source=str(path),
                   world_size=int(state.get("world_size", 1)))


def load_trained(recipe: Recipe, folders=(SHIPPED_DIR,), device: Optional[str | torch.device] = None,
                 world: Optional[World] = None) -> Optional[Trained]:
    """The checkpoint of ``recipe`` from the first of ``folders`` holding ``<name>.pt`` made by this exact recipe,
    or ``None``. A file of another recipe under the same name is passed over, never loaded as if it matched.
    In a ``world`` of several processes rank 0 reads the file and every rank gets the model."""
    world = world if world is not None else SINGLE
    found = world.on_main(lambda: find_recipe_checkpoint(recipe.name, recipe.as_dict(), folders))
    found = world.broadcast(found)
    return _from_state(recipe, *found, world.device(device)) if found is not None else None


def load_or_train(recipe: Recipe, *, out_dir: Optional[str | os.PathLike] = None,
                  shipped_dir: Optional[str | os.PathLike] = SHIPPED_DIR, device: Optional[str | torch.device] = None,
                  progress: bool = True, world: Optional[World] = None, **inputs) -> Trained:
    """The model of ``recipe``: loaded from ``shipped_dir`` or ``out_dir`` when a checkpoint of exactly this recipe is
    there, else trained (resumably under ``out_dir/.<name>_run``) and saved to ``out_dir/<name>.pt``.

    ``inputs`` go to the recipe's ``fit`` (training data, trained parts ...) and are not used when loading.
    ``world``: the processes training together (rank 0 reads and saves the files; see the module docstring).
    """
    world = world if world is not None else SINGLE
    loaded = load_trained(recipe, (shipped_dir, out_dir), device, world)
    if loaded is not None:
        return loaded
    run_dir = Path(out_dir) / f".{recipe.name}_run" if out_dir is not None else None
    trained = train(recipe, device=device, progress=progress, run_dir=run_dir, world=world, **inputs)
    if out_dir is not None:
        world.on_main(lambda: save_trained(trained, Path(out_dir) / f"{recipe.name}.pt"))
    return trained


def load_or_train_all(recipes: Mapping[str, Recipe], inputs: Callable[[Recipe, dict], dict] = lambda recipe, done: {},
                      *, only: Optional[Sequence[str]] = None, log: Optional[Callable[[str], None]] = None,
                      **options) -> dict[str, Trained]:
    """:func:`load_or_train` for each recipe of a chapter, in order: ``inputs(recipe, done)`` gives a recipe's fit
    inputs (``done``: the models so far, by name); ``only`` restricts to some names and the recipes they require;
    ``options`` go to :func:`load_or_train` (out_dir, shipped_dir, device, progress, world)."""
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
    main = (options.get("world") or SINGLE).is_main
    for name, recipe in recipes.items():
        if name in wanted:
            done[name] = load_or_train(recipe, **options, **inputs(recipe, done))
            if log is not None and main:
                log(f"{name}: {done[name].origin()} ({done[name].seconds:.0f} s of training)")
    return done
