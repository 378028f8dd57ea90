"""dSprites, regenerated: the 737,280 binary 64x64 sprites of Matthey et al. (2017), drawn on demand with numpy.

**What dSprites is.** A disentanglement benchmark (https://github.com/deepmind/dsprites-dataset): one white
sprite on a black 64x64 canvas, set by six independent latent factors, every combination present exactly once.

======== ======= ======================================  ==================================
index    name    values (``latents_values`` column)      classes (``latents_classes``)
======== ======= ======================================  ==================================
0        color   1.0 (white)                              0
1        shape   1.0 square, 2.0 ellipse, 3.0 heart       0, 1, 2
2        scale   ``linspace(0.5, 1, 6)``                  0..5
3        orient. ``linspace(0, 2*pi, 40)`` (radians)      0..39 (0 and 39 draw the same image)
4        posX    ``linspace(0, 1, 32)``                   0..31
5        posY    ``linspace(0, 1, 32)``                   0..31
======== ======= ======================================  ==================================

Images are stored in row-major order over (color, shape, scale, orientation, posX, posY): posY varies fastest,
so images 0 and 1 differ only in posY (``latents_sizes = [1, 3, 6, 40, 32, 32]``, as in the original npz).

**How the sprite is drawn.** A pixel (row ``r``, column ``c``) is on when its centre ``(c + 0.5, r + 0.5)``
lies inside the sprite's outline (point sampling, no anti-aliasing). The outline, in pixels at scale 1 and
orientation 0 (``u`` right, ``v`` down, around the sprite's centre), is scaled by ``scale``, turned
counter-clockwise on screen by ``orientation`` and moved to column ``16 + 32 * posX``, row ``16 + 32 * posY``
(posX 0 -> 1 moves the sprite left -> right, posY 0 -> 1 top -> bottom; the 16 px margin keeps every sprite
inside the canvas, the largest reaching pixel 2 from an edge):

* square: ``|u|, |v| <= 9.6`` (side 19.2 px, 0.3 of the canvas);
* ellipse: ``(u / 12.75)**2 + (v / 7.22)**2 <= 1`` (long axis horizontal at orientation 0);
* heart: the classic curve ``x = sin(t)**3``, ``y = 13 cos t - 5 cos 2t - 2 cos 3t - cos 4t`` (lobes up, tip
  down), its bounding box stretched to 2 * 9.595 px wide by 2 * 9.575 px tall and moved 0.245 px down. It is
  tabulated once as, for each of 4096 horizontal slices (0.005 px thick), the interval of ``|u|`` inside it,
  so drawing a heart costs one table look-up per pixel.

All of it is vectorised numpy over a small window around each sprite: the 737,280 images render in 6 to 13 s on
one (busy, shared) core.

**Calibration.** The numbers above were fitted to the 320 frames of the dataset's own animation
(``dsprites.gif`` from the dSprites repository, Apache-2.0). Its latents were identified first: the animation
is a traversal in which, for the heart, then the ellipse, then the square, the scale goes up, down and up through
its 6 values (orientation 0, position (0, 0)), the orientation sweeps its 40 values at scale 1, the heart alone
walks its position round the border (posY 0->31, posX 0->31, posY 31->0, posX 31->0), and the scale goes back
down. A search over all 737,280 rendered images (pruned to centroids within 2.5 px and areas within -25%/+33% of
the frame's, which any image matching better than the best found, IoU >= 0.989, must have) ranks these
latents best for all 320 frames; the best match is unique for 310 frames up to orientation 0 == 2*pi, and
the other 10 are squares whose quarter-turn orientations (classes 0, 10, 29 or 5, 34) draw the same pixels. The position walk pins the geometry: its boundary crossings, seen at 31 sub-pixel
offsets, agree exactly with ``16 + 32 * pos`` and point sampling, and give the heart's outline to ~0.01 px,
which the classic curve fits to within 0.015 px. The sizes were then tuned to minimise wrong pixels. Result:
**IoU mean 0.9996, min 0.989** over the 320 frames (square 0.9997, ellipse 0.9994, heart 0.9997 on average);
304 frames are pixel-identical and the other 16 differ by 1 to 4 edge pixels (32 pixels in all), e.g. at the
corners of turned squares, as if the original drew slightly different outlines (polygons?). One convention could
not be checked against the animation: that posX is the horizontal axis (the animation walks down first, then
right); we follow the names (x = column).

**Loading.** :func:`load_dsprites` renders all images once (with a tqdm bar) and caches them as packed bits in
one compressed ``.npz`` (about 5.5 MB) under ``data_root(root) / "dsprites"``; :func:`load_dsprites_npz` reads
the original ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` instead. Both return a :class:`DSprites` that
keeps the images bit-packed (377 MB instead of 3 GB) and unpacks the subsets asked for with
:meth:`DSprites.imgs`.
"""
from __future__ import annotations

import os
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np

from ebmlib.core.checkpoint import atomic_write
from ebmlib.data.root import data_root

__all__ = [
    "LATENT_NAMES", "LATENT_SIZES", "LATENT_VALUES", "SHAPE_NAMES", "N_IMAGES", "IMAGE_SIZE", "ORIGINAL_FILENAME",
    "CACHE_FILENAME", "METADATA", "DSprites", "latents_classes", "latents_values", "classes_to_index",
    "index_to_classes", "classes_to_values", "values_to_classes", "render", "load_dsprites", "load_dsprites_npz",
]

LATENT_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")
LATENT_SIZES = np.array([1, 3, 6, 40, 32, 32], dtype=np.int64)
SHAPE_NAMES = ("square", "ellipse", "heart")
LATENT_VALUES = {  # latents_possible_values of the original metadata
    "color": np.array([1.0]),
    "shape": np.array([1.0, 2.0, 3.0]),
    "scale": np.linspace(0.5, 1.0, 6),
    "orientation": np.linspace(0.0, 2 * np.pi, 40),
    "posX": np.linspace(0.0, 1.0, 32),
    "posY": np.linspace(0.0, 1.0, 32),
}
N_IMAGES = int(np.prod(LATENT_SIZES))  # 737,280
IMAGE_SIZE = 64
ORIGINAL_FILENAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
CACHE_FILENAME = "dsprites_ebmlib_v1.npz"
CACHE_FORMAT = "ebmlib-dsprites-v1"
METADATA = {
    "title": "dSprites dataset (regenerated by ebmlib)",
    "description": "Procedurally generated 2D shapes from 6 latent factors (color, shape, scale, orientation, "
                   "posX, posY); every combination present once, posY varying fastest. Regenerated with "
                   "ebmlib.data.dsprites.render, calibrated against the original dsprites.gif.",
    "latents_sizes": LATENT_SIZES.copy(),
    "latents_names": LATENT_NAMES,
    "latents_possible_values": {k: v.copy() for k, v in LATENT_VALUES.items()},
}

_BASES = np.concatenate([np.cumprod(LATENT_SIZES[::-1])[::-1][1:], [1]]).astype(np.int64)  # [245760, ..., 32, 1]
_VALUE_TOL = 1e-6

# --- calibrated geometry (pixels at scale 1; see the module docstring) ---------------------------------------
_CANVAS_OFFSET = 16.0   # centre of a sprite at pos 0, in pixels from the top/left edge
_CANVAS_SPAN = 32.0     # pixels travelled from pos 0 to pos 1
_SQUARE_HALF = 9.6
_ELLIPSE_A, _ELLIPSE_B = 12.75, 7.22
_HEART_HALF_W, _HEART_HALF_H, _HEART_SHIFT = 9.595, 9.575, 0.245
_HEART_ROWS, _HEART_TABLE_HALF = 4096, 10.5


# --- latent grid ------------------------------------------------------------------------------------------------

def _as_index_array(indices, name="indices") -> np.ndarray:
    idx = np.asarray(indices).reshape(-1)
    if idx.size == 0:
        return idx.astype(np.int64)
    if idx.dtype == bool or not (np.issubdtype(idx.dtype, np.integer) or np.issubdtype(idx.dtype, np.floating)):
        raise ValueError(f"{name} must be integers, got dtype {idx.dtype}")
    if np.issubdtype(idx.dtype, np.floating) and not (np.all(np.isfinite(idx)) and np.all(idx == np.round(idx))):
        raise ValueError(f"{name} must be whole numbers")
    idx = idx.astype(np.int64)
    bad = (idx < 0) | (idx >= N_IMAGES)
    if bad.any():
        raise ValueError(f"{name} must lie in [0, {N_IMAGES}); got {idx[bad][:5].tolist()} (out of range)")
    return idx


def _as_latent_rows(latents, what: str) -> np.ndarray:
    arr = np.asarray(latents)
    if arr.ndim == 1 and arr.shape[0] == 6:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 6:
        raise ValueError(f"{what} must have shape (n, 6) (columns {', '.join(LATENT_NAMES)}), got shape {arr.shape}")
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{what} must be numeric, got dtype {arr.dtype}")
    return arr


def _check_classes(classes) -> np.ndarray:
    arr = _as_latent_rows(classes, "latent classes")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError("latent classes must be whole numbers (did you pass latents_values? use kind='values')")
    arr = arr.astype(np.int64)
    for j, (name, size) in enumerate(zip(LATENT_NAMES, LATENT_SIZES)):
        bad = (arr[:, j] < 0) | (arr[:, j] >= size)
        if bad.any():
            raise ValueError(f"latent class {name!r} (column {j}) must lie in [0, {size - 1}], "
                             f"got {arr[bad, j][:5].tolist()} (out of range)")
    return arr


def _check_values(values) -> np.ndarray:
    arr = _as_latent_rows(values, "latent values").astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("latent values must be finite")
    tol = _VALUE_TOL
    checks = [
        ("color", np.abs(arr[:, 0] - 1.0) > tol, "1.0 (white)"),
        ("shape", np.abs(arr[:, 1] - np.clip(np.round(arr[:, 1]), 1, 3)) > tol, "1.0, 2.0 or 3.0"),
        ("scale", (arr[:, 2] < 0.5 - tol) | (arr[:, 2] > 1.0 + tol), "[0.5, 1]"),
        ("orientation", (arr[:, 3] < -tol) | (arr[:, 3] > 2 * np.pi + tol), "[0, 2*pi]"),
        ("posX", (arr[:, 4] < -tol) | (arr[:, 4] > 1.0 + tol), "[0, 1]"),
        ("posY", (arr[:, 5] < -tol) | (arr[:, 5] > 1.0 + tol), "[0, 1]"),
    ]
    for j, (name, bad, allowed) in enumerate(checks):
        if bad.any():
            raise ValueError(f"latent value {name!r} (column {j}) must be {allowed}, "
                             f"got {arr[bad, j][:5].tolist()} (out of range)")
    arr[:, 2:] = np.clip(arr[:, 2:], [0.5, 0.0, 0.0, 0.0], [1.0, 2 * np.pi, 1.0, 1.0])
    return arr


def classes_to_index(classes) -> np.ndarray:
    """Image indices (n,) int64 of latent classes (n, 6) (or one row (6,)), in the original ordering."""
    return _check_classes(classes) @ _BASES


def index_to_classes(indices) -> np.ndarray:
    """Latent classes (n, 6) int64 of image indices (any shape, flattened); inverse of :func:`classes_to_index`."""
    idx = _as_index_array(indices)
    return (idx[:, None] // _BASES[None, :]) % LATENT_SIZES[None, :]


def classes_to_values(classes) -> np.ndarray:
    """Latent values (n, 6) float64 of latent classes, exactly as in the original ``latents_values``."""
    cls = _check_classes(classes)
    out = np.empty(cls.shape, dtype=np.float64)
    for j, name in enumerate(LATENT_NAMES):
        out[:, j] = LATENT_VALUES[name][cls[:, j]]
    return out


def values_to_classes(values, atol: float = 1e-4) -> np.ndarray:
    """Latent classes (n, 6) int64 of latent values on the grid (nearest grid value, which must be within ``atol``).

    Orientation ``2*pi`` maps to class 39, ``0`` to class 0 (the grid holds both; they draw the same image).
    """
    arr = _check_values(values)
    out = np.empty(arr.shape, dtype=np.int64)
    for j, name in enumerate(LATENT_NAMES):
        grid = LATENT_VALUES[name]
        k = np.abs(arr[:, j, None] - grid[None, :]).argmin(1)
        off = np.abs(grid[k] - arr[:, j]) > atol
        if off.any():
            raise ValueError(f"latent value {name!r} (column {j}) is not on the dSprites grid: "
                             f"{arr[off, j][:5].tolist()} (grid: {np.round(grid, 6).tolist()})")
        out[:, j] = k
    return out


def _full_grid(columns) -> np.ndarray:
    """(N_IMAGES, 6) array whose column j runs through ``columns[j]`` in the original row-major order."""
    out = np.empty((N_IMAGES, 6), dtype=np.asarray(columns[0]).dtype)
    for j, col in enumerate(columns):
        inner = int(np.prod(LATENT_SIZES[j + 1:]))
        block = np.repeat(np.asarray(col), inner)  # one sweep of column j with everything after it inside
        out[:, j] = np.tile(block, N_IMAGES // block.size)
    return out


def latents_classes(indices=None) -> np.ndarray:
    """``latents_classes`` of the original npz: (737280, 6) int64, or the rows of ``indices``."""
    if indices is None:
        return _full_grid([np.arange(k, dtype=np.int64) for k in LATENT_SIZES])
    return index_to_classes(indices)


def latents_values(indices=None) -> np.ndarray:
    """``latents_values`` of the original npz: (737280, 6) float64, or the rows of ``indices``."""
    if indices is None:
        return _full_grid([LATENT_VALUES[name] for name in LATENT_NAMES])
    return classes_to_values(index_to_classes(indices))


# --- renderer -------------------------------------------------------------------------------------------------

def _heart_curve(n: int = 8192) -> np.ndarray:
    """Closed heart outline (n, 2) as (u, v) pixels at scale 1, v down, lobes up."""
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    x = np.sin(t) ** 3
    y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    tt = np.linspace(0.0, np.pi, 200001)  # extent of y: min -17 at t = pi, max ~11.923 at t ~ 0.908
    yy = 13 * np.cos(tt) - 5 * np.cos(2 * tt) - 2 * np.cos(3 * tt) - np.cos(4 * tt)
    y_mid, y_half = (yy.max() + yy.min()) / 2, (yy.max() - yy.min()) / 2
    return np.stack([_HEART_HALF_W * x, -_HEART_HALF_H * (y - y_mid) / y_half + _HEART_SHIFT], axis=1)


@lru_cache(maxsize=1)
def _heart_rows() -> np.ndarray:
    """The heart over thin horizontal slices (0.005 px at scale 1): inside iff lo[row] <= |u| <= hi[row].

    Each horizontal line meets the (left-right symmetric) heart in one interval around u = 0 below the notch and
    in two mirrored intervals through the lobes above it, so one interval of |u| per slice describes it exactly
    in u. Returned as complex64 ``lo + 1j * hi`` so that one gather fetches both bounds.
    """
    n, half = _HEART_ROWS, _HEART_TABLE_HALF
    centres = -half + (np.arange(n) + 0.5) * (2 * half / n)
    poly = _heart_curve()
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    rows, edges = np.nonzero((y0[None, :] <= centres[:, None]) != (y1[None, :] <= centres[:, None]))
    yr = centres[rows]
    xc = x0[edges] + (yr - y0[edges]) * (x1[edges] - x0[edges]) / (y1[edges] - y0[edges])
    lo = np.full(n, np.inf)
    hi = np.full(n, -np.inf)
    right = xc > 0
    np.maximum.at(hi, rows[right], xc[right])
    np.minimum.at(lo, rows[right], xc[right])
    lo[np.bincount(rows[right], minlength=n) == 1] = 0.0  # one crossing on the right: the slice spans the middle
    bounds = np.empty(n, dtype=np.complex64)
    bounds.real, bounds.imag = lo, hi
    return bounds


@lru_cache(maxsize=3)
def _reach(shape: int) -> float:
    """Largest distance (pixels at scale 1) of the outline from the sprite's centre."""
    if shape == 0:
        return _SQUARE_HALF * np.sqrt(2.0)
    if shape == 1:
        return max(_ELLIPSE_A, _ELLIPSE_B)
    return float(np.hypot(*_heart_curve().T).max())


def _draw(shape: int, scale, theta, px, py, out: np.ndarray) -> None:
    """Draw n sprites of one shape into ``out`` (n, 64, 64) bool (zeroed), each in a w x w window around it."""
    n = len(scale)
    reach = _reach(shape) * scale
    w = int(np.ceil(2 * reach.max())) + 2
    cx = _CANVAS_OFFSET + _CANVAS_SPAN * px
    cy = _CANVAS_OFFSET + _CANVAS_SPAN * py
    c0 = np.clip(np.floor(cx - reach).astype(np.int64), 0, IMAGE_SIZE - w)
    r0 = np.clip(np.floor(cy - reach).astype(np.int64), 0, IMAGE_SIZE - w)
    k = np.arange(w)
    inv = 1.0 / scale
    # pixel centres relative to the sprite centre, in pixels at scale 1 (float32 is ample: |d| < 64)
    dx = (((c0[:, None] + k + 0.5) - cx[:, None]) * inv[:, None]).astype(np.float32)  # (n, w)
    dy = (((r0[:, None] + k + 0.5) - cy[:, None]) * inv[:, None]).astype(np.float32)
    cos = np.cos(theta).astype(np.float32)[:, None, None]
    sin = np.sin(theta).astype(np.float32)[:, None, None]
    # sprite coordinates of each pixel centre; the sprite turns counter-clockwise on screen (v points down)
    u = dx[:, None, :] * cos - dy[:, :, None] * sin  # (n, w, w)
    v = dx[:, None, :] * sin + dy[:, :, None] * cos
    if shape == 0:
        np.abs(u, out=u)
        np.abs(v, out=v)
        inside = np.maximum(u, v, out=u) <= np.float32(_SQUARE_HALF)
    elif shape == 1:
        u *= np.float32(1.0 / _ELLIPSE_A)
        v *= np.float32(1.0 / _ELLIPSE_B)
        u *= u
        v *= v
        u += v
        inside = u <= np.float32(1.0)
    else:
        v += np.float32(_HEART_TABLE_HALF)
        v *= np.float32(_HEART_ROWS / (2 * _HEART_TABLE_HALF))
        np.clip(v, 0, _HEART_ROWS - 1, out=v)  # the outermost slices are empty
        bounds = np.take(_heart_rows(), v.astype(np.intp)).view(np.float32)  # (n, w, 2w): lo, hi interleaved
        np.abs(u, out=u)
        inside = (u >= bounds[..., 0::2]) & (u <= bounds[..., 1::2])
    # paste the windows: first into (n, w, 64) bands by column offset, then into the images by row offset
    band = np.zeros((n, w, IMAGE_SIZE), dtype=bool)
    for c in np.unique(c0):
        sel = np.nonzero(c0 == c)[0]
        band[sel, :, c:c + w] = inside[sel]
    for r in np.unique(r0):
        sel = np.nonzero(r0 == r)[0]
        out[sel, r:r + w, :] = band[sel]


def _render_values(vals: np.ndarray, chunk_size: int) -> np.ndarray:
    n = len(vals)
    out = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    shape = np.rint(vals[:, 1]).astype(np.int64) - 1
    for s in range(3):
        sel = np.nonzero(shape == s)[0]
        if sel.size == 0:
            continue
        # group by window width so that small sprites get small windows
        widths = np.ceil(2 * _reach(s) * vals[sel, 2]).astype(np.int64)
        for wid in np.unique(widths):
            grp = sel[widths == wid]
            for a in range(0, grp.size, chunk_size):
                g = grp[a:a + chunk_size]
                if g.size == n:  # a single group (e.g. a chunk of the ordered grid): draw in place
                    _draw(s, vals[g, 2], vals[g, 3], vals[g, 4], vals[g, 5], out)
                    continue
                contiguous = g[-1] - g[0] == g.size - 1
                buf = out[g[0]:g[-1] + 1] if contiguous else np.zeros((g.size, IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
                _draw(s, vals[g, 2], vals[g, 3], vals[g, 4], vals[g, 5], buf)
                if not contiguous:
                    out[g] = buf
    return out


def render(latents, kind: str = "auto", dtype=np.uint8, chunk_size: int = 512) -> np.ndarray:
    """Draw dSprites images for any latents: (n, 6) -> (n, 64, 64) of 0/1 (``dtype`` uint8 as in the original, or bool).

    Args:
        latents: (n, 6) array (or one row of 6) in the column order ``LATENT_NAMES``: latent classes
            (integers, as ``latents_classes``) or latent values (floats, as ``latents_values``; any value in the
            ranges, not only grid points: scale in [0.5, 1], orientation in [0, 2*pi], posX/posY in [0, 1]).
        kind: ``"classes"``, ``"values"``, or ``"auto"``: integer dtype -> classes, float dtype -> values.
        dtype: ``np.uint8`` (0/1, like the original ``imgs``) or ``bool``.
        chunk_size: sprites drawn per vectorised batch (small batches stay in the CPU cache).

    Raises:
        ValueError: wrong shape, out-of-range latents, or an unknown ``kind``.
    """
    arr = _as_latent_rows(latents, "latents")
    if kind == "auto":
        kind = "classes" if np.issubdtype(arr.dtype, np.integer) else "values"
    if kind == "classes":
        vals = classes_to_values(arr)
    elif kind == "values":
        vals = _check_values(arr)
    else:
        raise ValueError(f"kind must be 'auto', 'classes' or 'values', got {kind!r}")
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    imgs = _render_values(vals, int(chunk_size))
    return imgs if np.dtype(dtype) == np.bool_ else imgs.astype(dtype)


# --- the data set object --------------------------------------------------------------------------------------

_ROW_BYTES = IMAGE_SIZE * IMAGE_SIZE // 8  # 512 bytes per packed image


class DSprites:
    """dSprites images (bit-packed in memory) with their latents.

    Attributes:
        packed: (n, 512) uint8, ``np.packbits`` of each flattened 64x64 image (big-endian bit order).
        latents_values: (n, 6) float64.  latents_classes: (n, 6) int64.
        metadata: dict like the original's (``latents_sizes``, ``latents_names``, ``latents_possible_values``,
            ...), or None when not read.
        source: where the images came from (a path).
    """

    def __init__(self, packed: np.ndarray, latents_values: np.ndarray, latents_classes: np.ndarray,
                 metadata: Optional[dict] = None, source: str = ""):
        packed = np.asarray(packed)
        if packed.dtype != np.uint8 or packed.ndim != 2 or packed.shape[1] != _ROW_BYTES:
            raise ValueError(f"packed images must be (n, {_ROW_BYTES}) uint8, got {packed.shape} {packed.dtype}")
        n = packed.shape[0]
        for name, arr in (("latents_values", latents_values), ("latents_classes", latents_classes)):
            if np.shape(arr) != (n, 6):
                raise ValueError(f"{name} must have shape ({n}, 6) to match the images, got {np.shape(arr)}")
        self.packed = packed
        self.latents_values = np.asarray(latents_values)
        self.latents_classes = np.asarray(latents_classes)
        self.metadata = metadata
        self.source = source

    def __len__(self) -> int:
        return self.packed.shape[0]

    def __repr__(self) -> str:
        return f"DSprites(n={len(self)}, source={self.source!r})"

    @property
    def latents_sizes(self) -> np.ndarray:
        return LATENT_SIZES.copy()

    def imgs(self, indices=None, dtype=np.uint8) -> np.ndarray:
        """Unpack images: ``indices`` (int array, slice, or None for all: 3 GB!) -> (k, 64, 64) of 0/1."""
        if indices is None:
            rows = self.packed
        elif isinstance(indices, slice):
            rows = self.packed[indices]
        else:
            idx = np.asarray(indices)
            if idx.dtype == bool or not np.issubdtype(idx.dtype, np.integer):
                raise ValueError(f"indices must be integers or a slice, got dtype {idx.dtype}")
            idx = idx.reshape(-1)
            n = len(self)
            if idx.size and (idx.min() < -n or idx.max() >= n):
                raise ValueError(f"indices must lie in [-{n}, {n}), got values out of range")
            rows = self.packed[idx]
        out = np.unpackbits(rows, axis=1).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
        return out.view(bool) if np.dtype(dtype) == np.bool_ else out.astype(dtype, copy=False)


# --- building and caching -------------------------------------------------------------------------------------

def _render_packed(indices: np.ndarray, progress: bool = False, chunk: int = 4096) -> np.ndarray:
    """Render the images of ``indices`` and pack their bits: (k, 512) uint8."""
    from tqdm.auto import tqdm

    out = np.empty((len(indices), _ROW_BYTES), dtype=np.uint8)
    with tqdm(total=len(indices), desc="rendering dSprites", unit="img", unit_scale=True,
              disable=not progress) as bar:
        for a in range(0, len(indices), chunk):
            sel = indices[a:a + chunk]
            imgs = _render_values(latents_values(sel), chunk_size=512)
            out[a:a + len(sel)] = np.packbits(imgs.reshape(len(sel), -1), axis=1)
            bar.update(len(sel))
    return out


def _save_packed(path: Path, packed: np.ndarray) -> None:
    """Atomically write the packed images to ``path`` (compressed npz): temp file, fsync, os.replace."""
    atomic_write(path, lambda f: np.savez_compressed(f, imgs_packed=packed, format=np.array(CACHE_FORMAT),
                                                     latents_sizes=LATENT_SIZES))


def _read_packed(path: Path, n_expected: int) -> Optional[np.ndarray]:
    """The packed images of a cache file, or None if it is unreadable, of another format or of the wrong size."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["format"]) != CACHE_FORMAT:
                return None
            packed = z["imgs_packed"]
    except Exception:  # truncated or foreign file: rebuild
        return None
    if packed.dtype != np.uint8 or packed.shape != (n_expected, _ROW_BYTES):
        return None
    return packed


def _load_or_build(path: Path, build, n_expected: int, cache: bool) -> np.ndarray:
    if cache and path.is_file():
        packed = _read_packed(path, n_expected)
        if packed is not None:
            return packed
    packed = build()
    if cache:
        _save_packed(path, packed)
    return packed


def load_dsprites(root: Optional[str | os.PathLike] = None, cache: bool = True, progress: bool = True) -> DSprites:
    """All 737,280 dSprites, rendered by :func:`render` (seconds on one core) and cached.

    The cache is one compressed npz of packed bits (``np.packbits``, about 5.5 MB) at
    ``data_root(root) / "dsprites" / CACHE_FILENAME``, written atomically; an unreadable or foreign cache file is
    rebuilt. ``cache=False`` renders without reading or writing it. ``progress`` shows a tqdm bar while rendering.
    Holds 377 MB of packed bits in memory; unpack subsets with ``ds.imgs(indices)``.
    """
    path = data_root(root) / "dsprites" / CACHE_FILENAME
    packed = _load_or_build(path, lambda: _render_packed(np.arange(N_IMAGES), progress=progress), N_IMAGES, cache)
    return DSprites(packed, latents_values(), latents_classes(), metadata=_copy_metadata(METADATA),
                    source=str(path) if cache else "rendered")


def _copy_metadata(meta: dict) -> dict:
    return {k: (_copy_metadata(v) if isinstance(v, dict) else (v.copy() if isinstance(v, np.ndarray) else v))
            for k, v in meta.items()}


def _decode_keys(obj):
    """Metadata pickled by Python 2 may have bytes keys/strings: make them str."""
    if isinstance(obj, dict):
        return {(k.decode("latin1") if isinstance(k, bytes) else k): _decode_keys(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_decode_keys(v) for v in obj)
    if isinstance(obj, bytes):
        return obj.decode("latin1")
    return obj


def _read_npy_header(f):
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    if version in ((2, 0), (3, 0)):
        return np.lib.format.read_array_header_2_0(f)
    raise ValueError(f"unsupported .npy format version {version}")


def _packed_from_npz_member(zf: zipfile.ZipFile, member: str, path, chunk: int = 16384) -> np.ndarray:
    """Stream a (n, 64, 64) uint8/bool array out of a zip member into packed bits, never holding all of it."""
    with zf.open(member) as f:
        shape, fortran, dtype = _read_npy_header(f)
        if len(shape) != 3 or tuple(shape[1:]) != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"{path}: imgs must have shape (n, 64, 64), got {shape}")
        if dtype not in (np.dtype(np.uint8), np.dtype(bool)):
            raise ValueError(f"{path}: imgs must be uint8 (0/1), got {dtype}")
        if fortran:
            raise ValueError(f"{path}: imgs is stored in Fortran order, which this reader does not stream")
        n = shape[0]
        out = np.empty((n, _ROW_BYTES), dtype=np.uint8)
        row = IMAGE_SIZE * IMAGE_SIZE
        for a in range(0, n, chunk):
            k = min(chunk, n - a)
            buf = f.read(k * row)
            if len(buf) != k * row:
                raise ValueError(f"{path}: imgs is truncated")
            block = np.frombuffer(buf, dtype=np.uint8).reshape(k, row)
            out[a:a + k] = np.packbits(block != 0, axis=1)
    return out


def load_dsprites_npz(path: str | os.PathLike, metadata: bool = True) -> DSprites:
    """Read the ORIGINAL ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (or any npz in its format).

    ``imgs`` is streamed into packed bits chunk by chunk (377 MB held for the full file, not 3 GB); ``imgs``,
    ``latents_values`` and ``latents_classes`` are read without unpickling. ``metadata`` is a pickled dict in that format, so it is
    unpickled (``allow_pickle=True``, Python 2 strings decoded) only when ``metadata=True``: pass False for a
    file you do not trust.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no dSprites npz at {path}")
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        missing = [k for k in ("imgs", "latents_values", "latents_classes") if k + ".npy" not in names]
        if missing:
            raise ValueError(f"{path} is not a dSprites npz: missing {missing} (has {sorted(names)})")
        packed = _packed_from_npz_member(zf, "imgs.npy", path)
    with np.load(path, allow_pickle=False) as z:
        values = np.asarray(z["latents_values"], dtype=np.float64)
        classes = np.asarray(z["latents_classes"]).astype(np.int64)
    meta = None
    if metadata and "metadata.npy" in names:
        with np.load(path, allow_pickle=True, encoding="latin1") as z:
            raw = z["metadata"]
            meta = _decode_keys(raw[()] if raw.dtype == object and raw.ndim == 0 else raw)
    return DSprites(packed, values, classes, metadata=meta, source=str(path))
