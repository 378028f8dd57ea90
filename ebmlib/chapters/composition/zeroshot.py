"""Compositional generation on dSprites (section 6, Fig. 15 and 16, A.5): latent-conditional EBMs whose energies add.

* :class:`LatentConvEnergy`: ``E(x | y)`` for a 32x32 (or 64x64) sprite conditioned on some latents (scale,
  position, rotation, shape) of the raw latent row ``y``. The latent code goes through a small embedding to
  per-layer gains and biases (A.6's conditional gains and biases, with a continuous code instead of a class).
  A network conditioned on position also sees two coordinate channels (CoordConv), since "where" is not
  something a convolution can tell otherwise; the others do not, so their energy barely depends on where the
  sprite is (the head averages over space). That is the inductive bias the zero-shot sum relies on.
* :class:`LatentProduct`: ``E(x | y) = sum_i E_i(x | y)``, a product of experts (section 6; [hinton2002training]).
  :func:`sample_joint` samples it with one Langevin step on each expert in turn
  (:class:`ebmlib.core.compose.SequentialLangevin`).
* :class:`LatentRecipe`: an expert (Algorithm 1) or a sum of trained experts fine-tuned with A.5's KL term
  (:class:`ebmlib.core.train.KLTrainer`: CD on the sum plus ``E_{x~q}[stopgrad(E)(x)]`` through the last step).
* :func:`train_models`: every model of the chapter's preset, each loaded from its checkpoint or trained
  (``python -m ebmlib train 08 --scale demo --out ebmlib/checkpoints`` makes the shipped files), the latent
  judge of :mod:`ebmlib.chapters.composition.judge` last.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from ebmlib.chapters.composition.judge import JudgeRecipe
from ebmlib.chapters.composition.latents import LATENTS, coordinate_grid, encode, encoded_dim, latent_set
from ebmlib.core.compose import SequentialLangevin
from ebmlib.core.distributed import World
from ebmlib.core.nets import activation
from ebmlib.core.recipes import Fit, Recipe, load_or_train_all, plain
from ebmlib.core.train import KLTrainer, TrainConfig, Trainer, frozen
from ebmlib.notebook.launch import train_in_processes

__all__ = ["LatentConvEnergy", "LatentProduct", "LatentRecipe", "sample_joint", "judge_names", "recipes",
           "train_models"]


# --- networks -------------------------------------------------------------------------------------------------


class LatentConvEnergy(nn.Module):
    """E(x | y) for (N, 1, R, R) images in [0, 1] and raw latent rows y (N, 6); returns (N,).

    conv3 1(+2)->w, then strided 4x4 convs w->2w->4w->4w (R -> R/8), each followed by latent gains and biases
    and Swish; mean over space; linear to a scalar. Spectral norm on the convolutions (section 3.3); the
    embedding and the head are free. ``latents=()`` gives an unconditional energy.
    """

    def __init__(self, latents: Sequence[str] = (), resolution: int = 32, width: int = 16, act: str = "swish",
                 sn: bool = True, coords: Optional[bool] = None, embed: int = 64):
        super().__init__()
        if resolution not in (16, 32, 64) or width < 1:
            raise ValueError(f"need resolution in (16, 32, 64) and width >= 1, got {resolution}, {width}")
        self.latents = tuple(latents)
        self.cond_dim = encoded_dim(self.latents)
        self.resolution = resolution
        self.coords = ("position" in self.latents) if coords is None else bool(coords)
        w = width
        chans = [w, 2 * w, 4 * w, 4 * w]
        layers = [nn.Conv2d(1 + 2 * self.coords, w, 3, 1, 1), nn.Conv2d(w, 2 * w, 4, 2, 1),
                  nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.Conv2d(4 * w, 4 * w, 4, 2, 1)]
        self.convs = nn.ModuleList(spectral_norm(c) if sn else c for c in layers)
        self.acts = nn.ModuleList(activation(act) for _ in layers)
        self.chans = chans
        if self.cond_dim:
            # latent code -> gains and biases of every layer (A.6, with a continuous code)
            self.embed = nn.Sequential(nn.Linear(self.cond_dim, embed), activation(act), nn.Linear(embed, 2 * sum(chans)))
            nn.init.zeros_(self.embed[-1].weight)
            nn.init.zeros_(self.embed[-1].bias)
        else:
            self.embed = None
        self.head = nn.Linear(4 * w, 1)
        if self.coords:
            self.register_buffer("grid", coordinate_grid(resolution), persistent=False)

    def forward(self, x: Tensor, y: Optional[Tensor] = None) -> Tensor:
        r = self.resolution
        if x.ndim != 4 or x.shape[1:] != (1, r, r):
            raise ValueError(f"LatentConvEnergy expects images (N, 1, {r}, {r}), got {tuple(x.shape)}")
        if self.cond_dim and y is None:
            raise ValueError(f"this energy is conditioned on {list(self.latents)}: pass the latent rows y (N, 6)")
        h = torch.cat([x, self.grid.expand(x.shape[0], -1, -1, -1)], 1) if self.coords else x
        film = self.embed(encode(y.to(x.dtype), self.latents)) if self.embed is not None else None
        offset = 0
        for conv, act, c in zip(self.convs, self.acts, self.chans):
            h = conv(h)
            if film is not None:
                gain, bias = film[:, offset:offset + c], film[:, offset + sum(self.chans):offset + sum(self.chans) + c]
                h = h * (1 + gain[:, :, None, None]) + bias[:, :, None, None]
                offset += c
            h = act(h)
        return self.head(h.mean((2, 3))).squeeze(-1)


class LatentProduct(nn.Module):
    """AND of latent experts: E(x | y) = sum_i E_i(x | y), each expert reading its own latents of y (section 6)."""

    def __init__(self, experts: Sequence[nn.Module]):
        super().__init__()
        if len(experts) == 0:
            raise ValueError("a product needs at least one expert")
        self.experts = nn.ModuleList(experts)

    def forward(self, x: Tensor, y: Optional[Tensor] = None) -> Tensor:
        return sum(e(x, y) for e in self.experts)

    def energies(self, y: Tensor) -> list[Callable[[Tensor], Tensor]]:
        """One callable x -> E_i(x | y) per expert, for :func:`ebmlib.core.compose.sequential_langevin`."""
        return [functools.partial(_conditioned, e, y) for e in self.experts]


def _conditioned(model: nn.Module, y: Tensor, x: Tensor) -> Tensor:
    return model(x, y)


# --- recipes ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LatentRecipe(Recipe):
    """One energy of the chapter. ``kind``: "ebm" (one expert trained by Algorithm 1 on ``data``) or "finetune"
    (the sum of the ``parts`` recipes, given as their recipe dicts, fine-tuned on ``data`` with A.5's KL term).
    ``train`` holds :class:`~ebmlib.core.train.TrainConfig` fields, plus ``kl_weight`` for a finetune."""

    name: str
    kind: str = "ebm"
    latents: tuple = ()
    data: str = "full"
    resolution: int = 32
    width: int = 16
    n_iters: int = 300
    train: dict = field(default_factory=dict)
    parts: tuple = ()          # finetune: the expert recipes (as dicts)

    def __post_init__(self):
        if self.kind not in ("ebm", "finetune"):
            raise ValueError(f"recipe {self.name!r}: kind must be 'ebm' or 'finetune', got {self.kind!r}")
        bad = [n for n in self.latents if n not in LATENTS]
        if bad:
            raise ValueError(f"recipe {self.name!r}: unknown latents {bad}; expected names from {sorted(LATENTS)}")
        if self.kind == "finetune" and not self.parts:
            raise ValueError(f"recipe {self.name!r}: a finetune recipe needs its expert recipes in parts")

    @classmethod
    def from_spec(cls, name: str, spec: dict) -> "LatentRecipe":
        spec = dict(spec)
        spec["latents"] = tuple(spec.get("latents", ()))
        spec["parts"] = tuple(plain(_part(p).as_dict()) if isinstance(p, dict) else p for p in spec.get("parts", ()))
        return cls(name=name, **spec)

    def config(self) -> TrainConfig:
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(self.train) - fields - {"kl_weight"})
        if unknown:
            raise ValueError(f"recipe {self.name!r} sets unknown training fields {unknown}")
        return TrainConfig(**{k: v for k, v in self.train.items() if k in fields})

    def requires(self) -> tuple[str, ...]:
        return tuple(p["name"] for p in self.parts)

    def distributes(self) -> bool:
        return True

    def build(self) -> nn.Module:
        if self.kind == "finetune":
            return LatentProduct([_part(p).build() for p in self.parts])
        return LatentConvEnergy(self.latents, self.resolution, self.width)

    def fit(self, model: nn.Module, *, device: torch.device, progress: bool, run_dir: Optional[Path],
            parts: Sequence[nn.Module] = (), world: Optional[World] = None) -> Fit:
        """An expert: Algorithm 1 with a replay buffer. A finetune: the trained ``parts`` summed, then
        :class:`~ebmlib.core.train.KLTrainer` (CD on the sum + the KL term), sampling one expert at a time.
        ``world``: the processes training together (each draws its own sprites with its own generator)."""
        data = functools.partial(latent_set(self.data).__call__, resolution=self.resolution)
        cfg = self.config()
        if self.kind == "finetune":
            if len(parts) != len(self.parts):
                raise ValueError(f"finetune recipe {self.name!r} needs its {len(self.parts)} trained parts, "
                                 f"got {len(parts)}")
            for mine, trained in zip(model.experts, parts):
                mine.load_state_dict(trained.state_dict())
            trainer = KLTrainer(model, data, cfg, ckpt_dir=run_dir, device=device,
                                sampler=SequentialLangevin(cfg.step_size, cfg.noise_std, cfg.grad_clip),
                                kl_weight=float(self.train.get("kl_weight", 1.0)), world=world)
        else:
            trainer = Trainer(model, data, cfg, ckpt_dir=run_dir, device=device, world=world)
        trainer.resume_if_any()
        trainer.train(self.n_iters - trainer.iteration, progress=progress)
        return Fit(list(trainer.history), trainer.newest(64, chains=False))


def _part(p: dict) -> LatentRecipe:
    return LatentRecipe.from_spec(p["name"], {k: v for k, v in p.items() if k != "name"})


# --- sampling the sum -----------------------------------------------------------------------------------------

def sample_joint(product: LatentProduct, y: Tensor, n_steps: int, step_size: float, noise_std: float = 0.005,
                 grad_clip: Optional[float] = 0.01, x0: Optional[Tensor] = None,
                 generator: Optional[torch.Generator] = None) -> Tensor:
    """Section 6: sample ``sum_i E_i(x | y)`` from uniform noise (or ``x0``), one Langevin step per expert in turn.

    ``noise_std`` is the per-round noise (split over the experts by sequential_langevin).
    """
    r = product.experts[0].resolution
    if x0 is None:
        x0 = torch.rand(y.shape[0], 1, r, r, generator=generator)
    with frozen(product):
        return SequentialLangevin(step_size, noise_std, grad_clip).run(product, x0, n_steps, y=y, clamp=(0.0, 1.0),
                                                                       generator=generator).x


# --- every model of the chapter ------------------------------------------------------------------------------

def judge_names(cfg) -> tuple[str, ...]:
    """The judges of the preset's panel (``cfg.judges`` of them, alike but for their seed): ``dsprites_judge``,
    then ``dsprites_judge_2``, ..."""
    n = int(cfg.judges)
    if n < 1:
        raise ValueError(f"the preset's judges must be at least 1 (the judges that score every image), got {n}")
    return ("dsprites_judge", *(f"dsprites_judge_{k + 1}" for k in range(1, n)))


def recipes(cfg, seed: int = 0) -> dict:
    """The chapter's recipes from its preset: experts, fine-tuned sums (after their experts) and the judges
    (:func:`judge_names`, last). A nonzero ``seed`` is written into every recipe's ``train``; the k-th judge
    (from 0) trains with seed ``seed + k``."""
    def seeded(spec):
        return dict(spec, train=dict(spec.get("train", {}), **({"seed": seed} if seed else {})))
    out = {name: LatentRecipe.from_spec(name, seeded(spec)) for name, spec in cfg.experts.items()}
    for name, spec in cfg.finetune.items():
        spec = dict(seeded(spec), kind="finetune")
        spec["parts"] = [dict(seeded(cfg.experts[p]), name=p) for p in spec["parts"]]
        out[name] = LatentRecipe.from_spec(name, spec)
    for k, name in enumerate(judge_names(cfg)):
        spec = seeded(cfg.judge) if k == 0 else dict(cfg.judge, train=dict(cfg.judge.get("train", {}), seed=seed + k))
        out[name] = JudgeRecipe(name=name, **spec)
    return out


def _inputs(recipe, done: dict) -> dict:
    return {"parts": [done[n].model for n in recipe.requires()]} if recipe.requires() else {}


def train_models(cfg, seed: int = 0, only=None, **options) -> dict:
    """Every model of the preset (``cfg.experts``, ``cfg.finetune``, ``cfg.judge``), loaded or trained; ``only``:
    just these names (:func:`judge_names` for the judges) and the experts a fine-tuned sum among them is made of;
    ``options``: ``out_dir``, ``shipped_dir``, ``device``, ``progress``, ``log``, ``world``. When the preset asks
    for several processes they train under torchrun first (:func:`ebmlib.notebook.launch.train_in_processes`)."""
    train_in_processes(cfg, seed, only, **options)
    return load_or_train_all(recipes(cfg, seed), _inputs, only=only, **options)
