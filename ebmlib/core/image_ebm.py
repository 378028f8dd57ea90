"""Image EBMs by recipe: the energy network of a data set trained with Algorithm 1 on dequantised images.

:class:`ImageEBMRecipe` is the recipe kind of chapters 03, 05 and 06 (and of the CIFAR-10 path): data set, network
width, conditioning, Algorithm 1's settings (``train``: :class:`~ebmlib.core.train.TrainConfig` fields),
iterations, and how many buffer samples to keep. Load or train it with :func:`ebmlib.core.recipes.load_or_train`
(``data=`` the training :class:`~ebmlib.core.images.ImageData`); ``python -m ebmlib train`` makes the shipped
files. In a run folder, each buffer snapshot is saved as it is taken (``snapshots/<iteration>.pt``), so a resumed
run keeps the snapshots of its first part.

The recipe trains on several processes together (``world=``; ``torchrun ... -m ebmlib train``): each rank draws
from its shard of the images and keeps its own buffer (:class:`~ebmlib.core.train.Trainer`); the snapshots and the
saved samples take an equal share of every rank's newest samples (:meth:`~ebmlib.core.train.Trainer.newest`), and
rank 0 writes the snapshot files.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from ebmlib.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ebmlib.core.distributed import SINGLE, World
from ebmlib.core.fastpath import sampler_for
from ebmlib.core.images import ImageData, dequantize
from ebmlib.core.nets import CIFARResNetEnergy, MNISTConvEnergy
from ebmlib.core.recipes import Fit, Recipe, load_or_train_all
from ebmlib.core.train import TrainConfig, Trainer, config_from

__all__ = ["ImageEBMRecipe", "image_recipes", "training_inputs", "load_or_train_models"]


@dataclass(frozen=True)
class ImageEBMRecipe(Recipe):
    """Everything one image-EBM training run depends on. ``train`` overrides :class:`TrainConfig` fields."""

    name: str
    dataset: str = "mnist"
    width: int = 16
    conditional: bool = False
    n_iters: int = 1000
    snapshot_every: int = 100          # iterations between the buffer snapshots kept (samples over training)
    keep_buffer: int = 1000            # buffer samples saved with the model
    train: dict = field(default_factory=dict)

    def config(self) -> TrainConfig:
        return config_from(self.name, self.train)

    def build(self) -> nn.Module:
        """The MNIST CNN for 28x28 grey images; for CIFAR-10 the paper's ResNets (A.6): the conditional model is
        ResNet32 (Fig. 24a), the unconditional one the larger ResNet32Large (Fig. 24b; "unconditional models need
        additional capacity")."""
        n_classes = 10 if self.conditional else None
        if self.dataset in ("mnist", "fashion"):
            return MNISTConvEnergy(width=self.width, n_classes=n_classes)
        if self.dataset == "cifar10":
            return CIFARResNetEnergy(width=self.width, layout="resnet32" if self.conditional else "resnet32_large",
                                     n_classes=n_classes)
        raise ValueError(f"recipe {self.name!r}: no network for data set {self.dataset!r}; "
                         "expected 'mnist', 'fashion' or 'cifar10'")

    def snapshot_points(self) -> list[int]:
        """The iterations at which the 64 newest buffer samples are kept: every ``snapshot_every``, and the last."""
        return sorted(set(range(self.snapshot_every, self.n_iters + 1, self.snapshot_every)) | {self.n_iters}) \
            if self.n_iters > 0 else []

    def progress_target(self) -> dict:
        return {"iterations": self.n_iters, "snapshots": self.snapshot_points()}

    def distributes(self) -> bool:
        return True

    def after_iteration(self, model: nn.Module, iteration: int) -> None:
        """Called after each kept training iteration (and again for the iteration a resumed run starts at) with
        the model being trained; nothing here. A subclass keeps what it needs *inside* the model (its state
        dict), so checkpoints, exact resume and rollbacks carry it: chapter 04's historical ensemble keeps the
        weights of its last snapshots this way (section 4.1)."""

    def dequantizer(self) -> Callable:
        """How a batch of uint8 images becomes continuous (A.3's :func:`~ebmlib.core.images.dequantize`; a
        subclass may choose another of :data:`~ebmlib.core.images.DEQUANTIZERS`)."""
        return dequantize

    def training_source(self, data) -> object:
        """What :class:`~ebmlib.core.train.Trainer` draws positives from: the images (and labels, conditional
        models) of an :class:`ImageData`, or ``data`` itself when it is a callable ``data(n, generator)`` returning
        uint8 images (and labels), e.g. a stream over files too large to hold (ImageNet)."""
        if callable(data):
            return data
        return (data.images, data.labels) if self.conditional else data.images

    def fit(self, model: nn.Module, *, device: torch.device, progress: bool, run_dir: Optional[Path],
            data: ImageData, world: Optional[World] = None) -> Fit:
        """Algorithm 1 on ``data`` (uint8 images, dequantised per batch as in A.3; or a callable source, see
        :meth:`training_source`).

        A snapshot is taken whenever the run passes one of :meth:`snapshot_points` (again after a rollback, so
        every snapshot comes from the trajectory the model was trained on) and saved in the run folder.
        ``world``: the processes training together (every rank calls ``fit``).
        """
        world = world if world is not None else SINGLE
        source, transform = self.training_source(data), self.dequantizer()
        points = self.snapshot_points()
        sampler = sampler_for(self.config(), device)   # the fast path on CUDA; PaperLangevin on the CPU
        trainer = Trainer(model, source, self.config(), transform=transform, ckpt_dir=run_dir, device=device,
                          world=world, sampler=sampler)
        snapshots: dict[int, Tensor] = {}
        if trainer.resume_if_any():   # an interrupted run continues exactly where it stopped, with its snapshots
            snapshots = world.broadcast(world.on_main(lambda: _load_snapshots(run_dir, trainer.iteration, points)))
            lost = [k for k in points if k < trainer.iteration and k not in snapshots]
            if lost:
                if world.is_main:
                    warnings.warn(f"run folder {run_dir}: the snapshots of iterations {lost} are lost; starting the "
                                  f"run of recipe {self.name!r} over", stacklevel=2)
                trainer.close()
                trainer = Trainer(model, source, self.config(), transform=transform, ckpt_dir=run_dir,
                                  device=device, overwrite=True, world=world, sampler=sampler)
                snapshots = {}
        elif run_dir is not None:
            world.on_main(lambda: _clear_snapshots(run_dir))

        def keep(m: dict) -> None:
            self.after_iteration(model, m["iteration"])
            if m["iteration"] in points:
                snapshots[m["iteration"]] = _newest(trainer, 64)   # a collective on several processes
                if run_dir is not None:
                    world.on_main(lambda: save_checkpoint({"iteration": m["iteration"], "x": snapshots[m["iteration"]]},
                                                          _snapshot_path(run_dir, m["iteration"])))

        if trainer.iteration in points and trainer.iteration not in snapshots:
            keep({"iteration": trainer.iteration})   # resumed exactly where a snapshot was due but not yet saved
        with trainer:
            trainer.train(self.n_iters - trainer.iteration, progress=progress, callback=keep)
        model.to(memory_format=torch.contiguous_format)
        return Fit(list(trainer.history), _newest(trainer, self.keep_buffer), {k: snapshots[k] for k in sorted(snapshots)})


def _snapshot_path(run_dir: Path, iteration: int) -> Path:
    return run_dir / "snapshots" / f"{iteration:09d}.pt"


def _clear_snapshots(run_dir: Path) -> None:
    for path in (run_dir / "snapshots").glob("*.pt"):
        path.unlink()


def _load_snapshots(run_dir: Path, upto: int, points) -> dict[int, Tensor]:
    """The saved snapshots of a run resumed at iteration ``upto``: those past it (taken before a rollback or
    an interruption; the resumed run takes them again) and unreadable ones are removed."""
    out = {}
    for path in sorted((run_dir / "snapshots").glob("*.pt")):
        try:
            state = load_checkpoint(path)
            k = int(state["iteration"])
        except (CheckpointError, KeyError, ValueError):
            path.unlink()
            continue
        if k <= upto and k in points and path == _snapshot_path(run_dir, k):
            out[k] = state["x"]
        else:
            path.unlink()
    return out


def _newest(trainer: Trainer, n: int) -> Tensor:
    return trainer.newest(n)


def image_recipes(models: dict, seed: int = 0, kind: type = ImageEBMRecipe) -> dict[str, ImageEBMRecipe]:
    """Recipes of class ``kind`` from a preset's ``models`` mapping (name -> fields). A nonzero ``seed`` is written
    into every recipe's ``train`` (so a run at another seed never loads the shipped seed-0 checkpoints)."""
    out = {}
    for name, spec in models.items():
        spec = dict(spec)
        spec["train"] = dict(spec.get("train", {}), **({"seed": seed} if seed else {}))
        out[name] = kind(name=name, **spec)
    return out


def training_inputs(load_train: Callable[[str], ImageData]) -> Callable:
    """The ``inputs`` of :func:`~ebmlib.core.recipes.load_or_train_all` for image recipes: ``data=`` the training
    split of the recipe's data set, read by ``load_train(name)`` once per data set."""
    cache: dict[str, ImageData] = {}

    def inputs(recipe, done):
        if recipe.dataset not in cache:
            cache[recipe.dataset] = load_train(recipe.dataset)
        return {"data": cache[recipe.dataset]}
    return inputs


def load_or_train_models(models: dict, load_train: Callable[[str], ImageData], seed: int = 0, only=None,
                         **options) -> dict:
    """A preset's ``models`` (name -> recipe fields), each loaded from its checkpoint or trained on
    ``load_train(dataset)``; ``options`` go to :func:`~ebmlib.core.recipes.load_or_train_all`."""
    return load_or_train_all(image_recipes(models, seed), training_inputs(load_train), only=only, **options)
