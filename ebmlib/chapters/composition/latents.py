"""dSprites latents as conditioning signals, and the data sets of the composition chapter (section 6).

Latents travel as raw dSprites ``latents_values`` rows, a float tensor (N, 6) with columns
(color, shape, scale, orientation, posX, posY) exactly as :mod:`ebmlib.data.dsprites` defines them. Each
conditional energy reads the columns it is conditioned on and encodes them as the paper's release does
(the release of [du2019implicit], ``models.py``): shape one-hot, scale a scalar, position (x, y), rotation (cos, sin).
Passing the whole row to every model is what lets a sum of experts ``sum_i E_i(x | y)`` and a jointly
conditioned baseline ``E(x | y)`` share one interface.

Images are rendered on demand (:func:`ebmlib.data.dsprites.render`) and average-pooled to ``resolution``
(32 at demo scale, keeping grey edges in [0, 1]; 64 is the original size).

Data sets of the zero-shot experiment (section 6, Fig. 16), all with orientation 0:

* **D1**: squares of every size at the centre;
* **D2**: squares of the smallest size at every position;
* **D3**: every shape at every size at the centre.

Size and position experts are trained on D1 and D2, shape and position experts on D3 and D2; the unseen test
combinations (:data:`UNSEEN`) are larger squares off the centre and ellipses / hearts off the centre.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ebmlib.data.dsprites import IMAGE_SIZE, LATENT_NAMES, LATENT_VALUES, render

__all__ = ["LATENTS", "COLUMNS", "CENTRE", "encoded_dim", "encode", "coordinate_grid", "render_images", "LatentSet",
           "SETS", "UNSEEN", "latent_set", "MixtureSet"]

#: the latents a model can be conditioned on -> (dSprites columns used, encoded width)
LATENTS = {"shape": ((1,), 3), "scale": ((2,), 1), "rotation": ((3,), 2), "position": ((4, 5), 2)}
COLUMNS = {name: j for j, name in enumerate(LATENT_NAMES)}
#: the "central position" of D1 and D3 (posX = posY = 0.5: pixel 32 of 64, between grid values 15 and 16)
CENTRE = 0.5


def _check_names(latents: Sequence[str]) -> tuple[str, ...]:
    names = tuple(latents)
    bad = [n for n in names if n not in LATENTS]
    if bad or len(set(names)) != len(names):
        raise ValueError(f"latents must be distinct names from {sorted(LATENTS)}, got {list(latents)!r}")
    return names


def encoded_dim(latents: Sequence[str]) -> int:
    """Width of :func:`encode`'s output for these latents."""
    return sum(LATENTS[n][1] for n in _check_names(latents))


def encode(y: Tensor, latents: Sequence[str]) -> Tensor:
    """Raw latent rows (N, 6) -> the conditioning vector (N, encoded_dim) of ``latents``, in their order.

    shape -> one-hot of 3; scale 0.5..1 -> (scale - 0.75) / 0.25 in [-1, 1]; rotation -> (cos, sin);
    position -> (2 posX - 1, 2 posY - 1) in [-1, 1]. Every code is O(1), so one embedding serves them all.
    """
    names = _check_names(latents)
    if not torch.is_tensor(y) or y.ndim != 2 or y.shape[1] != 6 or not y.is_floating_point():
        got = f"{y.dtype} {tuple(y.shape)}" if torch.is_tensor(y) else type(y).__name__
        raise ValueError(f"latents must be a float tensor (N, 6) of dSprites latents_values "
                         f"({', '.join(LATENT_NAMES)}), got {got}")
    parts = []
    for n in names:
        if n == "shape":
            k = torch.round(y[:, 1]).long() - 1
            if (k < 0).any() or (k > 2).any():
                raise ValueError(f"shape latent must be 1, 2 or 3, got values {y[:, 1].unique().tolist()[:5]}")
            parts.append(F.one_hot(k, 3).to(y.dtype))
        elif n == "scale":
            parts.append(((y[:, 2] - 0.75) / 0.25)[:, None])
        elif n == "rotation":
            parts.append(torch.stack([torch.cos(y[:, 3]), torch.sin(y[:, 3])], 1))
        else:
            parts.append(2 * y[:, 4:6] - 1)
    return torch.cat(parts, 1)


def coordinate_grid(resolution: int) -> Tensor:
    """(1, 2, R, R) pixel-centre x and y coordinates in [-1, 1] (the units of the position code of
    :func:`encode`): the CoordConv channels that let a network read *where* something is."""
    g = (torch.arange(resolution) + 0.5) / resolution * 2 - 1
    return torch.stack(torch.meshgrid(g, g, indexing="xy"))[None]


def render_images(y: Tensor | np.ndarray, resolution: int = 32) -> Tensor:
    """Ground-truth images (N, 1, R, R) float32 in [0, 1] of raw latent rows, 64x64 average-pooled to R."""
    if resolution not in (8, 16, 32, 64):
        raise ValueError(f"resolution must divide 64 (8, 16, 32 or 64), got {resolution!r}")
    vals = y.detach().cpu().double().numpy() if torch.is_tensor(y) else np.asarray(y, dtype=np.float64)
    img = torch.from_numpy(render(vals, kind="values")).float()[:, None]
    k = IMAGE_SIZE // resolution
    return F.avg_pool2d(img, k) if k > 1 else img


class _RenderedDraws:
    """A draw of ``n`` latent rows (``self.sample``) together with their rendered images: ``(x, y)``, the
    ``data(n, generator)`` interface the trainers take."""

    def __call__(self, n: int, generator: Optional[torch.Generator] = None, resolution: int = 32):
        y = self.sample(n, generator)
        return render_images(y, resolution), y


@dataclass(frozen=True)
class LatentSet(_RenderedDraws):
    """A set of latent combinations: for each latent the values allowed; a draw picks each uniformly.

    ``exclude_centre``: reject positions within this distance (max norm, in posX/posY units) of the centre, so
    that off-centre test combinations never touch D1 / D3. ``continuous_position``: draw posX and posY uniformly
    in [0, 1] instead of from the 32 grid values (the renderer draws any position), so that a set covers the
    centre 0.5 of D1 / D3, which lies between two grid values.
    """

    name: str
    shape: tuple = (1.0, 2.0, 3.0)
    scale: tuple = tuple(LATENT_VALUES["scale"])
    orientation: tuple = tuple(LATENT_VALUES["orientation"][:-1])   # 0 == 2 pi: keep one of them
    posX: tuple = tuple(LATENT_VALUES["posX"])
    posY: tuple = tuple(LATENT_VALUES["posY"])
    exclude_centre: float = 0.0
    continuous_position: bool = False

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        """n raw latent rows (n, 6) float32, drawn with ``generator``."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        out = torch.empty(n, 6)
        out[:, 0] = 1.0
        filled = torch.zeros(n, dtype=torch.bool)
        while not filled.all():
            todo = (~filled).nonzero().squeeze(1)
            rows = torch.stack([self._pick(getattr(self, c), len(todo), generator)
                                for c in ("shape", "scale", "orientation", "posX", "posY")], 1)
            if self.continuous_position:
                rows[:, 3:5] = torch.rand(len(todo), 2, generator=generator)
            ok = torch.ones(len(todo), dtype=torch.bool)
            if self.exclude_centre > 0:
                ok = (rows[:, 3:5] - CENTRE).abs().amax(1) >= self.exclude_centre
            out[todo[ok], 1:] = rows[ok]
            filled[todo[ok]] = True
        return out

    @staticmethod
    def _pick(values: tuple, n: int, generator) -> Tensor:
        v = torch.tensor(values, dtype=torch.float32)
        return v[torch.randint(len(v), (n,), generator=generator)]


@dataclass(frozen=True)
class MixtureSet(_RenderedDraws):
    """Draws from several sets in equal proportions (e.g. D1 and D2 for the jointly trained baseline)."""

    name: str
    parts: tuple = field(default_factory=tuple)

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        if not self.parts:
            raise ValueError(f"mixture {self.name!r} has no parts")
        which = torch.randint(len(self.parts), (n,), generator=generator)
        out = torch.empty(n, 6)
        for i, part in enumerate(self.parts):
            idx = (which == i).nonzero().squeeze(1)
            if len(idx):
                out[idx] = part.sample(len(idx), generator)
        return out


_SMALLEST = float(LATENT_VALUES["scale"][0])
SETS = {
    "full": LatentSet("full"),   # all of dSprites (Fig. 15's experts)
    # every shape and size, orientation 0, anywhere (the centre of D1 / D3 included): half of the judge's data
    "upright": LatentSet("upright", orientation=(0.0,), continuous_position=True),
    "D1": LatentSet("D1", shape=(1.0,), orientation=(0.0,), posX=(CENTRE,), posY=(CENTRE,)),
    "D2": LatentSet("D2", shape=(1.0,), scale=(_SMALLEST,), orientation=(0.0,)),
    "D3": LatentSet("D3", orientation=(0.0,), posX=(CENTRE,), posY=(CENTRE,)),
}
SETS["D1+D2"] = MixtureSet("D1+D2", (SETS["D1"], SETS["D2"]))
SETS["D2+D3"] = MixtureSet("D2+D3", (SETS["D2"], SETS["D3"]))
SETS["full+upright"] = MixtureSet("full+upright", (SETS["full"], SETS["upright"]))   # the judge's data

#: unseen combinations of the zero-shot test (Fig. 16): never in D1, D2 or D3
UNSEEN = {
    "size_position": LatentSet("size_position", shape=(1.0,), scale=tuple(LATENT_VALUES["scale"][1:]),
                               orientation=(0.0,), exclude_centre=0.2),
    "shape_position": LatentSet("shape_position", shape=(2.0, 3.0), scale=(_SMALLEST,), orientation=(0.0,),
                                exclude_centre=0.2),
}


def latent_set(name: str):
    """A training set or an unseen test set by name (``full``, ``upright``, ``D1``, ``D2``, ``D3``, ``D1+D2``,
    ``D2+D3``, ``full+upright``, ``size_position``, ``shape_position``)."""
    known = {**SETS, **UNSEEN}
    if name not in known:
        raise KeyError(f"unknown latent set {name!r}; expected one of {sorted(known)}")
    return known[name]
