"""Image EBMs trained by a named recipe, saved as small checkpoints that ship with the book.

A :class:`Recipe` fixes everything a training run depends on (data set, network width, conditioning,
Algorithm 1's settings, iterations, seed). :func:`load_or_train` returns the shipped checkpoint when one was
trained by exactly that recipe and trains (and saves) it otherwise, so a reader can skip the CPU-minutes of
training without the book ever showing a model that its recipe did not produce. ``python -m ebmlib train``
is how the shipped files are made.

A checkpoint holds the weights, the recipe, the training history (the curves of the chapter), the wall time,
the last samples of the replay buffer and snapshots of the buffer over training, all as tensors and plain
data (loaded with ``weights_only=True``); images are stored as uint8 to keep the files small.
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor, nn

from ebmlib.core.checkpoint import find_recipe_checkpoint, load_checkpoint, save_checkpoint
from ebmlib.core.images import ImageData, dequantize
from ebmlib.core.nets import CIFARResNetEnergy, MNISTConvEnergy
from ebmlib.core.train import TrainConfig, Trainer

__all__ = ["SHIPPED_DIR", "Recipe", "recipes", "TrainedEBM", "build_model", "default_device", "train_recipe", "save_trained",
           "load_trained", "load_or_train"]

#: where the book's trained demo models live (inside the package, so a pip install carries them)
SHIPPED_DIR = Path(__file__).resolve().parent / "checkpoints"


@dataclass(frozen=True)
class Recipe:
    """Everything one training run depends on. ``train`` overrides :class:`~ebmlib.train.TrainConfig` fields."""

    name: str
    dataset: str = "mnist"
    width: int = 16
    conditional: bool = False
    n_iters: int = 1000
    snapshot_every: int = 100
    keep_buffer: int = 1000
    train: dict = field(default_factory=dict)

    def config(self) -> TrainConfig:
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(self.train) - fields)
        if unknown:
            raise ValueError(f"recipe {self.name!r} sets unknown TrainConfig fields {unknown}")
        return TrainConfig(**self.train)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["train"] = {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(self.train.items())}
        return d


def recipes(models: dict) -> dict[str, Recipe]:
    """Recipes from a chapter preset's ``models`` mapping (name -> Recipe fields); the key is the recipe's name."""
    return {name: Recipe(name=name, **spec) for name, spec in models.items()}


@dataclass
class TrainedEBM:
    model: nn.Module
    recipe: Recipe
    history: list[dict]
    seconds: float
    buffer: Tensor                       # last samples of the replay buffer (or persistent chains), in [0, 1]
    snapshots: dict[int, Tensor]         # iteration -> 64 buffer samples at that point of training
    source: str = "trained"              # "trained" now, or the checkpoint file it was loaded from


def build_model(recipe: Recipe) -> nn.Module:
    """The energy network of ``recipe``'s data set: the MNIST CNN for 28x28 grey images; for CIFAR-10 the paper's
    ResNets (A.6): the conditional model is ResNet32 (Fig. 24a), the unconditional one the larger ResNet32Large
    (Fig. 24b; "unconditional models need additional capacity")."""
    n_classes = 10 if recipe.conditional else None
    if recipe.dataset in ("mnist", "fashion"):
        return MNISTConvEnergy(width=recipe.width, n_classes=n_classes)
    if recipe.dataset == "cifar10":
        return CIFARResNetEnergy(width=recipe.width, layout="resnet32" if recipe.conditional else "resnet32_large",
                                 n_classes=n_classes)
    raise ValueError(f"recipe {recipe.name!r}: no network for data set {recipe.dataset!r}; "
                     "expected 'mnist', 'fashion' or 'cifar10'")


def default_device() -> torch.device:
    """``cuda`` when a GPU is visible, else the CPU. Callers that keep all their tensors on the model's device
    (chapter 5, ``python -m ebmlib train``) pass it; the default of the functions below stays the CPU, because
    chapters that feed CPU tensors to the model would otherwise break on a GPU machine."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _to_uint8(x: Tensor) -> Tensor:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def _latest_samples(trainer: Trainer, n: int) -> Tensor:
    if trainer.config.init == "persistent" and trainer.chains is not None:
        return trainer.chains[-n:].clone()
    return trainer.buffer.newest(n)


def train_recipe(recipe: Recipe, data: ImageData, ckpt_dir: Optional[str | os.PathLike] = None,
                 progress: bool = True, device: Optional[str | torch.device] = None) -> TrainedEBM:
    """Train ``recipe`` on ``data`` (uint8 images, dequantised per batch as in A.3) on ``device``
    (default the CPU; pass :func:`default_device` for the GPU); the returned model stays on that device."""
    torch.manual_seed(recipe.train.get("seed", 0))
    model = build_model(recipe)
    labels = data.labels if recipe.conditional else None
    trainer = Trainer(model, (data.images, labels) if labels is not None else data.images, recipe.config(),
                      transform=dequantize, ckpt_dir=ckpt_dir, device=device if device is not None else "cpu")
    if ckpt_dir is not None and (Path(ckpt_dir) / "last.pt").exists():
        trainer.resume()   # an interrupted run continues exactly where it stopped (earlier snapshots are not kept)
    snapshots: dict[int, Tensor] = {}
    start = time.perf_counter()
    while trainer.iteration < recipe.n_iters:
        todo = min(recipe.snapshot_every - trainer.iteration % recipe.snapshot_every, recipe.n_iters - trainer.iteration)
        trainer.train(todo, progress=progress)
        snapshots[trainer.iteration] = _latest_samples(trainer, 64)
    seconds = time.perf_counter() - start
    trainer.model.eval()
    model = trainer.model.to(memory_format=torch.contiguous_format)
    return TrainedEBM(model, recipe, list(trainer.history), seconds, _latest_samples(trainer, recipe.keep_buffer),
                      snapshots)


def save_trained(t: TrainedEBM, path: str | os.PathLike) -> Path:
    state = {"recipe": t.recipe.as_dict(), "model": t.model.state_dict(), "history": t.history,
             "seconds": t.seconds, "buffer": _to_uint8(t.buffer),
             "snapshots": {str(k): _to_uint8(v) for k, v in t.snapshots.items()}}
    return save_checkpoint(state, path)


def _recipe_from_dict(d: dict) -> Recipe:
    d = dict(d)
    d["train"] = {k: tuple(v) if isinstance(v, list) else v for k, v in d["train"].items()}
    return Recipe(**d)


def load_trained(path: str | os.PathLike) -> TrainedEBM:
    return _from_state(load_checkpoint(path), path)


def _from_state(state: dict, path: str | os.PathLike) -> TrainedEBM:
    recipe = _recipe_from_dict(state["recipe"])
    model = build_model(recipe)
    model.load_state_dict(state["model"])
    model.eval()
    snapshots = {int(k): v.float() / 255 for k, v in state["snapshots"].items()}
    return TrainedEBM(model, recipe, state["history"], state["seconds"], state["buffer"].float() / 255, snapshots,
                      source=str(path))


def load_or_train(recipe: Recipe, data: ImageData, shipped_dir: str | os.PathLike = SHIPPED_DIR,
                  out_dir: Optional[str | os.PathLike] = None, progress: bool = True,
                  device: Optional[str | torch.device] = None) -> TrainedEBM:
    """The shipped model of ``recipe`` if its checkpoint was trained by this exact recipe; else train it.

    A freshly trained model is saved to ``out_dir/<name>.pt`` (when given), so the next call loads it. The model
    is returned on ``device`` (default the CPU; pass :func:`default_device` for the GPU when there is one).
    """
    device = device if device is not None else "cpu"
    found = find_recipe_checkpoint(recipe.name, recipe.as_dict(), (shipped_dir, out_dir))
    if found is not None:
        loaded = _from_state(*found)
        loaded.model.to(device)
        return loaded
    trained = train_recipe(recipe, data, progress=progress, device=device)
    if out_dir is not None:
        save_trained(trained, Path(out_dir) / f"{recipe.name}.pt")
    return trained
