"""Compositional generation on dSprites (section 6, Fig. 15 and 16, A.5): latent-conditional EBMs whose energies add.

* :class:`LatentConvEnergy`: ``E(x | y)`` for a 32x32 (or 64x64) sprite conditioned on some latents (scale,
  position, rotation, shape) of the raw latent row ``y``. The latent code goes through a small embedding to
  per-layer gains and biases (A.6's conditional gains and biases, with a continuous code instead of a class).
  A network conditioned on position also sees two coordinate channels (CoordConv), since "where" is not
  something a convolution can tell otherwise; the others do not, so their energy barely depends on where the
  sprite is (the head averages over space). That is the inductive bias the zero-shot sum relies on.
* :class:`LatentProduct`: ``E(x | y) = sum_i E_i(x | y)``, a product of experts (section 6; Hinton 1999).
  :func:`sample_joint` samples it with one Langevin step on each expert in turn (:func:`ebmlib.core.compose.sequential_langevin`).
* :func:`finetune_kl`: the A.5 fine-tuning of a sum on the union of the experts' training sets: Algorithm 1's loss
  on the sum plus the KL term ``E_{x~q}[stopgrad(E)(x)]``, whose gradient flows through the last Langevin step.
* :class:`LatentJudge` / :func:`train_judge` / :func:`judge_scores`: a CNN trained on all of dSprites that reads
  shape, scale and position off an image, used to score how often generated images show the requested latents.
* :class:`LatentRecipe` / :func:`load_or_train`: named, shipped checkpoints (loaded only when the recipe matches).

``python -m ebmlib.zeroshot train --scale demo --out ebmlib/checkpoints`` trains and saves the chapter's models.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm
from tqdm.auto import tqdm

from ebmlib.core.buffer import ReplayBuffer
from ebmlib.core.checkpoint import find_recipe_checkpoint, save_checkpoint
from ebmlib.core.compose import sequential_langevin
from ebmlib.chapters.composition.latents import LATENTS, encode, encoded_dim, latent_set, render_images
from ebmlib.core.nets import activation
from ebmlib.core.pretrained import SHIPPED_DIR
from ebmlib.core.train import TrainConfig, Trainer, clip_grad_by_adam_moments, ebm_loss, frozen

__all__ = ["LatentConvEnergy", "LatentProduct", "LatentRecipe", "TrainedModel", "build", "load_or_train",
           "train_recipe", "sample_joint", "finetune_kl", "kl_last_step", "LatentJudge", "train_judge",
           "judge_predict", "judge_scores", "chance_scores", "SHIPPED_DIR"]



# --- networks -------------------------------------------------------------------------------------------------

def _coordinate_grid(resolution: int) -> Tensor:
    """(1, 2, R, R) pixel-centre x and y coordinates in [-1, 1]: the CoordConv channels that let a network read
    *where* something is."""
    g = (torch.arange(resolution) + 0.5) / resolution * 2 - 1
    return torch.stack(torch.meshgrid(g, g, indexing="xy"))[None]


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
            self.register_buffer("grid", _coordinate_grid(resolution), persistent=False)

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


# --- recipes and shipped checkpoints ---------------------------------------------------------------------------

@dataclass(frozen=True)
class LatentRecipe:
    """One model of the chapter. ``kind``: "ebm" (one expert by Algorithm 1 on ``data``), "finetune" (the sum of
    the ``parts`` recipes fine-tuned on ``data`` with the KL term, A.5), or "judge" (the latent classifier)."""

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
        if self.kind not in ("ebm", "finetune", "judge"):
            raise ValueError(f"recipe {self.name!r}: kind must be 'ebm', 'finetune' or 'judge', got {self.kind!r}")
        bad = [n for n in self.latents if n not in LATENTS]
        if bad:
            raise ValueError(f"recipe {self.name!r}: unknown latents {bad}; expected names from {sorted(LATENTS)}")
        if self.kind == "finetune" and not self.parts:
            raise ValueError(f"recipe {self.name!r}: a finetune recipe needs its expert recipes in parts")

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["latents"] = list(self.latents)
        d["train"] = {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(self.train.items())}
        d["parts"] = [dict(p) for p in self.parts]
        return _listify(d)

    @classmethod
    def from_spec(cls, name: str, spec: dict) -> "LatentRecipe":
        spec = dict(spec)
        spec["latents"] = tuple(spec.get("latents", ()))
        spec["parts"] = tuple(_listify(_part(p).as_dict()) if isinstance(p, dict) else p for p in spec.get("parts", ()))
        return cls(name=name, **spec)

    def config(self) -> TrainConfig:
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(self.train) - fields - {"kl_weight", "batch", "lr_judge"})
        if unknown:
            raise ValueError(f"recipe {self.name!r} sets unknown training fields {unknown}")
        return TrainConfig(**{k: v for k, v in self.train.items() if k in fields})


def _listify(obj):
    if isinstance(obj, dict):
        return {k: _listify(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_listify(v) for v in obj]
    return obj


@dataclass
class TrainedModel:
    model: nn.Module
    recipe: LatentRecipe
    history: list
    seconds: float
    samples: Optional[Tensor] = None   # the newest replay-buffer samples (ebm) or chain samples (finetune)
    source: str = "trained"


def build(recipe: LatentRecipe) -> nn.Module:
    """The untrained network of a recipe."""
    if recipe.kind == "judge":
        return LatentJudge(recipe.resolution, recipe.width)
    if recipe.kind == "finetune":
        return LatentProduct([build(_part(p)) for p in recipe.parts])
    return LatentConvEnergy(recipe.latents, recipe.resolution, recipe.width)


def _part(p: dict) -> LatentRecipe:
    return LatentRecipe.from_spec(p["name"], {k: v for k, v in p.items() if k != "name"})


def _data_fn(recipe: LatentRecipe):
    return functools.partial(latent_set(recipe.data).__call__, resolution=recipe.resolution)


def train_recipe(recipe: LatentRecipe, progress: bool = True, base: Optional[nn.Module] = None) -> TrainedModel:
    """Train a recipe from scratch (``base``: for "finetune", the product of the already trained experts)."""
    torch.manual_seed(recipe.train.get("seed", 0))
    start = time.perf_counter()
    if recipe.kind == "judge":
        model, history = train_judge(recipe, progress=progress)
        samples = None
    elif recipe.kind == "finetune":
        if base is None:
            raise ValueError(f"finetune recipe {recipe.name!r} needs the trained product of its parts as base")
        model, history, samples = finetune_kl(copy.deepcopy(base), _data_fn(recipe), recipe, progress=progress)
    else:
        trainer = Trainer(build(recipe), _data_fn(recipe), recipe.config())
        trainer.train(recipe.n_iters, progress=progress)
        model, history, samples = trainer.model, list(trainer.history), trainer.buffer.newest(64)
    model.eval()
    return TrainedModel(model, recipe, history, time.perf_counter() - start, samples)


def save_trained(t: TrainedModel, path: str | os.PathLike) -> Path:
    state = {"recipe": t.recipe.as_dict(), "model": t.model.state_dict(), "history": t.history, "seconds": t.seconds}
    if t.samples is not None:
        state["samples"] = (t.samples.clamp(0, 1) * 255).round().to(torch.uint8)
    return save_checkpoint(state, path)


def _from_state(state: dict, recipe: LatentRecipe, path) -> TrainedModel:
    model = build(recipe)
    model.load_state_dict(state["model"])
    model.eval()
    samples = state["samples"].float() / 255 if "samples" in state else None
    return TrainedModel(model, recipe, state["history"], state["seconds"], samples, source=str(path))


def load_or_train(recipe: LatentRecipe, shipped_dir: Optional[str | os.PathLike] = SHIPPED_DIR,
                  out_dir: Optional[str | os.PathLike] = None, progress: bool = True,
                  base: Optional[nn.Module] = None) -> TrainedModel:
    """The checkpoint ``<name>.pt`` (shipped, or in ``out_dir``) if it was made by exactly this recipe; else train
    (and save to ``out_dir``). A checkpoint of another recipe under the same name is ignored, never loaded."""
    found = find_recipe_checkpoint(recipe.name, recipe.as_dict(), (shipped_dir, out_dir))
    if found is not None:
        state, path = found
        return _from_state(state, recipe, path)
    trained = train_recipe(recipe, progress=progress, base=base)
    if out_dir is not None:
        save_trained(trained, Path(out_dir) / f"{recipe.name}.pt")
    return trained


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
        return sequential_langevin(product.energies(y), x0, n_steps, step_size, noise_std, grad_clip,
                                   clamp=(0.0, 1.0), generator=generator).x


# --- A.5: fine-tuning the sum with the KL term ----------------------------------------------------------------

def _soft_clip(g: Tensor, c: Optional[float]) -> Tensor:
    # A.7 clips grad_x E per value; a hard clip has zero derivative where it binds, so the differentiable step
    # uses c * tanh(g / c): the same within |g| << c and at the bound, but with a gradient everywhere.
    return g if c is None else c * torch.tanh(g / c)


def kl_last_step(product: LatentProduct, x: Tensor, y: Tensor, step_size: float, grad_clip: Optional[float]) -> Tensor:
    """A.5's KL term through one differentiable Langevin step from ``x`` (detached): mean of stopgrad(E)(x').

    x' = x - step * clip(grad_x E_theta(x)) depends on theta through the gradient (create_graph); the energy of x'
    is read with the parameters held fixed (E-bar in eq. (9)), so the loss only moves theta to make the sampler
    land lower. The entropy term is dropped, as in the paper.
    """
    x = x.detach().requires_grad_(True)
    e = product(x, y)
    (g,) = torch.autograd.grad(e.sum(), x, create_graph=True)
    x_new = (x - step_size * _soft_clip(g, grad_clip)).clamp(0, 1)
    with frozen(product):
        return product(x_new, y).mean()


def finetune_kl(product: LatentProduct, data: Callable, recipe: LatentRecipe, progress: bool = True):
    """Fine-tune a sum of experts on ``data`` (n, gen) -> (x, y) jointly: CD loss on the sum + kl_weight * KL (A.5).

    Negatives: K - 1 sequential Langevin rounds on the experts (from a replay buffer, 95% replayed), then one
    differentiable round for the KL term. Adam with beta1 = 0 (PAPER.md: 300 iterations, lr 1e-3).
    """
    cfg = recipe.config()
    kl_weight = float(recipe.train.get("kl_weight", 1.0))
    gen = torch.Generator().manual_seed(cfg.seed)
    r = recipe.resolution
    buffer = ReplayBuffer(cfg.buffer_capacity, (1, r, r), 0.0, 1.0, cfg.replay_fraction)
    opt = torch.optim.Adam(product.parameters(), lr=cfg.lr, betas=cfg.betas)
    history = []
    for it in tqdm(range(recipe.n_iters), disable=not progress, desc="KL fine-tune", leave=False):
        x_pos, y = data(cfg.batch_size, gen)
        x0 = buffer.initial_states(cfg.batch_size, gen)
        x_neg = sample_joint(product, y, max(cfg.n_steps - 1, 0), cfg.step_size, cfg.noise_std, cfg.grad_clip, x0, gen)
        kl = kl_last_step(product, x_neg, y, cfg.step_size, cfg.grad_clip)
        with torch.no_grad():   # the CD negatives take the last step too, without a graph
            x_neg = sample_joint(product, y, 1, cfg.step_size, cfg.noise_std, cfg.grad_clip, x_neg, gen)
        e_pos, e_neg = product(x_pos, y), product(x_neg, y)
        loss = ebm_loss(e_pos, e_neg, cfg.alpha) + kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.adam_clip_std is not None:
            clip_grad_by_adam_moments(opt, cfg.adam_clip_std, cfg.adam_clip_floor)
        opt.step()
        buffer.push(x_neg)
        m = {"iteration": it + 1, "loss": loss.item(), "kl": kl.item(), "e_pos": e_pos.mean().item(),
             "e_neg": e_neg.mean().item()}
        if not all(math.isfinite(v) for v in m.values()):
            raise RuntimeError(f"KL fine-tuning of {recipe.name!r} diverged at iteration {it + 1}: {m}")
        history.append(m)
    return product, history, buffer.newest(64)


# --- the judge ------------------------------------------------------------------------------------------------

class LatentJudge(nn.Module):
    """A CNN that reads the latents off an image: shape logits (3), and scale, posX, posY regressed in their units.

    Used only to *measure* generated images (like chapter 3's classifier), never as an energy. It has the
    coordinate channels too, so reading a position is easy.
    """

    def __init__(self, resolution: int = 32, width: int = 16):
        super().__init__()
        self.resolution = resolution
        w = width
        self.register_buffer("grid", _coordinate_grid(resolution), persistent=False)
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 3, 1, 1), nn.ReLU(), nn.Conv2d(w, 2 * w, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(2 * w, 4 * w, 3, 2, 1), nn.ReLU(), nn.Conv2d(4 * w, 4 * w, 3, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(4 * w * (resolution // 8) ** 2, 128), nn.ReLU(), nn.Linear(128, 6))

    def forward(self, x: Tensor) -> Tensor:
        r = self.resolution
        if x.ndim != 4 or x.shape[1:] != (1, r, r):
            raise ValueError(f"LatentJudge expects images (N, 1, {r}, {r}), got {tuple(x.shape)}")
        return self.body(torch.cat([x, self.grid.expand(x.shape[0], -1, -1, -1)], 1))


def _judge_loss(out: Tensor, y: Tensor) -> Tensor:
    # shape as a class index; scale and position in the conditioning code's units (judge_predict inverts them)
    shape = torch.round(y[:, 1]).long() - 1
    return F.cross_entropy(out[:, :3], shape) + F.mse_loss(out[:, 3:], encode(y, ("scale", "position"))) * 10


def train_judge(recipe: LatentRecipe, progress: bool = True):
    """Train the judge on all of dSprites rendered on demand (``n_iters`` batches of ``train['batch']``)."""
    gen = torch.Generator().manual_seed(recipe.train.get("seed", 0))
    torch.manual_seed(recipe.train.get("seed", 0))   # the initial weights too: a judge is a function of its recipe
    model = LatentJudge(recipe.resolution, recipe.width)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.train.get("lr_judge", 2e-3))
    data = latent_set(recipe.data)
    history = []
    for it in tqdm(range(recipe.n_iters), disable=not progress, desc="judge", leave=False):
        x, y = data(recipe.train.get("batch", 128), gen, resolution=recipe.resolution)
        loss = _judge_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append({"iteration": it + 1, "loss": loss.item()})
    return model, history


@torch.no_grad()
def judge_predict(judge: LatentJudge, x: Tensor, batch: int = 256) -> Tensor:
    """Latent rows (N, 6) read off images: shape (argmax), scale, posX, posY; color 1 and orientation NaN (not read)."""
    outs = torch.cat([judge(x[i:i + batch]) for i in range(0, x.shape[0], batch)])
    pred = torch.full((x.shape[0], 6), float("nan"))
    pred[:, 0] = 1.0
    pred[:, 1] = outs[:, :3].argmax(1).float() + 1
    pred[:, 2] = outs[:, 3] * 0.25 + 0.75
    pred[:, 4:6] = (outs[:, 4:6] + 1) / 2
    return pred


def _hits(pred: Tensor, req: Tensor, position_tol: float) -> dict[str, Tensor]:
    # scale: the nearest of the 6 grid sizes (0.1 apart) must be the requested one; position: both coordinates
    # within position_tol (units of the posX / posY range, 1 = 32 px at 64x64)
    return {"shape": pred[:, 1] == req[:, 1], "scale": (pred[:, 2] - req[:, 2]).abs() < 0.05,
            "position": (pred[:, 4:6] - req[:, 4:6]).abs().amax(1) <= position_tol}


def judge_scores(judge: LatentJudge, x: Tensor, requested: Tensor, latents: Sequence[str],
                 position_tol: float = 0.1) -> dict[str, float]:
    """Fractions of images whose judged latents match the requested ones, per latent and for all of ``latents``."""
    return _match_fractions(judge_predict(judge, x), requested, latents, position_tol)


def chance_scores(requested: Tensor, guesses: Tensor, latents: Sequence[str], position_tol: float = 0.1) -> dict[str, float]:
    """The same fractions for ``guesses`` latent rows that ignore the request (e.g. random dSprites latents):
    what a generator that never looked at the requested latents would score."""
    return _match_fractions(guesses, requested, latents, position_tol)


def _match_fractions(pred: Tensor, requested: Tensor, latents: Sequence[str], position_tol: float) -> dict[str, float]:
    hits = _hits(pred.float(), requested.float(), position_tol)
    out = {k: hits[k].float().mean().item() for k in latents}
    out["all"] = torch.stack([hits[k] for k in latents]).all(0).float().mean().item()
    return out


# --- command line: make the shipped checkpoints ----------------------------------------------------------------

def chapter_models(cfg, shipped_dir=SHIPPED_DIR, out_dir=None, progress: bool = True, log=print,
                   only: Optional[Sequence[str]] = None) -> dict[str, TrainedModel]:
    """Every model of a chapter preset (``cfg.experts``, ``cfg.finetune``, ``cfg.judge``), loaded or trained.

    ``only``: just these models (and the experts a fine-tuned sum among them is made of).
    """
    known = set(cfg.experts) | set(cfg.finetune) | {"judge"}
    unknown = sorted(set(only or ()) - known)
    if unknown:
        raise ValueError(f"unknown models {unknown}; the chapter has {sorted(known)}")
    wanted = set(only) if only else known
    for name in cfg.finetune:
        if name in wanted:
            wanted |= set(cfg.finetune[name]["parts"])
    out = {}
    for name, spec in cfg.experts.items():
        if name not in wanted:
            continue
        out[name] = load_or_train(LatentRecipe.from_spec(name, spec), shipped_dir, out_dir, progress)
        log(f"{name}: {_where(out[name])} ({out[name].seconds:.0f} s of training)")
    for name, spec in cfg.finetune.items():
        if name not in wanted:
            continue
        spec = dict(spec)
        parts = [dict(cfg.experts[p], name=p) for p in spec.pop("parts")]
        recipe = LatentRecipe.from_spec(name, dict(spec, kind="finetune", parts=parts))
        base = LatentProduct([out[p["name"]].model for p in parts])
        out[name] = load_or_train(recipe, shipped_dir, out_dir, progress, base=base)
        log(f"{name}: {_where(out[name])} ({out[name].seconds:.0f} s of training)")
    if "judge" not in wanted:
        return out
    out["judge"] = load_or_train(LatentRecipe.from_spec("dsprites_judge", dict(cfg.judge, kind="judge")),
                                 shipped_dir, out_dir, progress)
    log(f"judge: {_where(out['judge'])} ({out['judge'].seconds:.0f} s of training)")
    return out


def _where(t: TrainedModel) -> str:
    return "trained in this run" if t.source == "trained" else f"loaded from {os.path.relpath(t.source)}"


def main(argv: Optional[list[str]] = None) -> int:
    from ebmlib import presets as scales

    parser = argparse.ArgumentParser(prog="python -m ebmlib.zeroshot", description="train the composition chapter's models")
    parser.add_argument("command", choices=["train"])
    parser.add_argument("--scale", choices=scales.SCALES, default="demo")
    parser.add_argument("--out", default=str(SHIPPED_DIR), help="folder for <name>.pt")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="+", help="train only these models (default: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    chapter_models(scales.preset("07_composition", args.scale), shipped_dir=None, out_dir=args.out, only=args.only,
                   log=lambda s: print("[ebmlib.zeroshot]", s, flush=True))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
