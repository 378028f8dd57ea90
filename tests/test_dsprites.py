"""dSprites regenerator: latent grid, index conversions, renderer, loaders and calibration against the real gif."""
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ebmlib.data import dsprites as D

GIF_CANDIDATES = [
    os.environ.get("EBMLIB_DSPRITES_GIF", ""),
    str(Path(__file__).resolve().parents[2] / "shared" / "data" / "dsprites" / "dsprites.gif"),  # ../shared
]
# Reached by the calibrated renderer on the 320 frames of dsprites.gif: mean 0.99961, min 0.98901 when written.
GIF_MEAN_IOU, GIF_MIN_IOU = 0.999, 0.985


# --- latent grid ------------------------------------------------------------------------------------------------

def test_latent_grid_sizes_and_values():
    assert D.N_IMAGES == 737280
    assert D.LATENT_SIZES.tolist() == [1, 3, 6, 40, 32, 32]
    assert D.LATENT_NAMES == ("color", "shape", "scale", "orientation", "posX", "posY")
    v = D.LATENT_VALUES
    assert v["color"].tolist() == [1.0] and v["shape"].tolist() == [1.0, 2.0, 3.0]
    np.testing.assert_array_equal(v["scale"], np.linspace(0.5, 1, 6))
    np.testing.assert_array_equal(v["orientation"], np.linspace(0, 2 * np.pi, 40))
    np.testing.assert_array_equal(v["posX"], np.linspace(0, 1, 32))
    np.testing.assert_array_equal(v["posY"], np.linspace(0, 1, 32))
    assert v["orientation"][-1] == 2 * np.pi and v["scale"][0] == 0.5


def test_full_latent_arrays_follow_original_ordering():
    cls = D.latents_classes()
    vals = D.latents_values()
    assert cls.shape == (737280, 6) and cls.dtype == np.int64
    assert vals.shape == (737280, 6) and vals.dtype == np.float64
    assert cls[0].tolist() == [0, 0, 0, 0, 0, 0] and cls[-1].tolist() == [0, 2, 5, 39, 31, 31]
    # posY fastest: images 0 and 1 differ only in posY; then posX, orientation, scale, shape
    assert cls[1].tolist() == [0, 0, 0, 0, 0, 1]
    assert cls[32].tolist() == [0, 0, 0, 0, 1, 0]
    assert cls[32 * 32].tolist() == [0, 0, 0, 1, 0, 0]
    assert cls[40 * 32 * 32].tolist() == [0, 0, 1, 0, 0, 0]
    assert cls[6 * 40 * 32 * 32].tolist() == [0, 1, 0, 0, 0, 0]
    np.testing.assert_array_equal(vals[1], [1.0, 1.0, 0.5, 0.0, 0.0, 1 / 31])
    np.testing.assert_array_equal(vals[-1], [1.0, 3.0, 1.0, 2 * np.pi, 1.0, 1.0])
    # every combination exactly once
    assert np.unique(cls @ D._BASES).size == 737280


def test_index_classes_values_round_trip():
    rng = np.random.default_rng(0)
    idx = np.concatenate([[0, 1, 737279], rng.integers(0, 737280, 500)])
    cls = D.index_to_classes(idx)
    np.testing.assert_array_equal(D.classes_to_index(cls), idx)
    np.testing.assert_array_equal(D.latents_classes(idx), cls)
    vals = D.classes_to_values(cls)
    np.testing.assert_array_equal(vals, D.latents_values(idx))
    np.testing.assert_array_equal(D.values_to_classes(vals), cls)
    assert D.classes_to_index([0, 2, 5, 39, 31, 31]).tolist() == [737279]


@pytest.mark.parametrize("bad, match", [
    ([[0, 3, 0, 0, 0, 0]], "shape"),
    ([[0, 0, 6, 0, 0, 0]], "scale"),
    ([[0, 0, 0, 40, 0, 0]], "orientation"),
    ([[0, 0, 0, 0, -1, 0]], "posX"),
    ([[1, 0, 0, 0, 0, 0]], "color"),
    ([[0, 0, 0, 0, 0]], "shape \\(n, 6\\)"),
    (np.zeros((2, 3, 6), int), "shape \\(n, 6\\)"),
])
def test_bad_classes_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        D.classes_to_index(bad)
    with pytest.raises(ValueError, match=match):
        D.render(np.asarray(bad))


def test_bad_values_and_indices_raise():
    ok = [1.0, 1.0, 0.5, 0.0, 0.0, 0.0]
    for col, value, name in [(2, 1.2, "scale"), (4, 1.5, "posX"), (5, -0.1, "posY"), (3, 7.0, "orientation"),
                             (1, 2.5, "shape"), (0, 0.0, "color")]:
        bad = list(ok)
        bad[col] = value
        with pytest.raises(ValueError, match=name):
            D.render([bad], kind="values")
    with pytest.raises(ValueError, match="finite"):
        D.render([[1.0, 1.0, 0.5, np.nan, 0.0, 0.0]])
    with pytest.raises(ValueError, match="not on the dSprites grid"):
        D.values_to_classes([[1.0, 1.0, 0.55, 0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="out of range"):
        D.index_to_classes([737280])
    with pytest.raises(ValueError, match="out of range"):
        D.index_to_classes([-1])
    with pytest.raises(ValueError, match="kind"):
        D.render([ok], kind="pixels")
    with pytest.raises(ValueError, match="whole numbers"):
        D.render([[0, 0, 0.5, 0, 0, 0]], kind="classes")


# --- renderer ---------------------------------------------------------------------------------------------------

def _centroid(img):
    ys, xs = np.nonzero(img)
    return xs.mean(), ys.mean()


def test_render_shapes_dtypes_and_classes_equal_values():
    idx = np.array([0, 1, 5000, 300000, 737279])
    a = D.render(D.index_to_classes(idx))
    assert a.shape == (5, 64, 64) and a.dtype == np.uint8 and set(np.unique(a)) <= {0, 1}
    b = D.render(D.latents_values(idx), dtype=bool)
    assert b.dtype == bool
    np.testing.assert_array_equal(a.astype(bool), b)
    assert D.render([0, 0, 0, 0, 0, 0]).shape == (1, 64, 64)
    assert all(img.sum() > 40 for img in a)
    # every sprite stays inside the canvas with a margin, even the biggest square turned 45 degrees in a corner
    big = D.render(np.array([[0, 0, 5, 5, p, q] for p in (0, 31) for q in (0, 31)]))
    assert big[:, :2].sum() == 0 and big[:, -2:].sum() == 0 and big[:, :, :2].sum() == 0 and big[:, :, -2:].sum() == 0
    # orientation 0 and 2*pi draw the same image
    np.testing.assert_array_equal(D.render([[0, 2, 3, 0, 7, 9]]), D.render([[0, 2, 3, 39, 7, 9]]))


@pytest.mark.parametrize("shape", [0, 1, 2])
def test_area_grows_with_scale(shape):
    cls = np.array([[0, shape, s, 0, 16, 16] for s in range(6)])
    areas = D.render(cls).sum((1, 2))
    assert np.all(np.diff(areas) > 0), areas
    assert 3.2 < areas[-1] / areas[0] < 4.8  # area ~ scale^2 = 4x


def test_known_sizes():
    # square: 20x20 pixels at scale 1, 10x10 at scale 0.5 (orientation 0)
    sq = D.render(np.array([[0, 0, 5, 0, 0, 0], [0, 0, 0, 0, 0, 0]]))
    assert sq[0].sum() == 400 and sq[1].sum() == 100
    ys, xs = np.nonzero(sq[0])
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (6, 25, 6, 25)
    # ellipse is wider than tall; heart is symmetric left-right with its tip at the bottom
    el, he = D.render([[1.0, 2.0, 1.0, 0.0, 0.5, 0.5], [1.0, 3.0, 1.0, 0.0, 0.5, 0.5]])  # centred on (32, 32)
    ys, xs = np.nonzero(el)
    assert np.ptp(xs) > 1.6 * np.ptp(ys)
    np.testing.assert_array_equal(he, he[:, ::-1])
    rows = np.nonzero(he.any(1))[0]
    assert he[rows[-1]].sum() < he[rows[0]].sum()  # narrow tip below, two lobes above


def test_position_moves_centroid():
    for shape in range(3):
        base = np.array([0, shape, 3, 10, 0, 0])
        xs = [D.render(base + [0, 0, 0, 0, p, 0])[0] for p in (0, 15, 31)]
        ys = [D.render(base + [0, 0, 0, 0, 0, p])[0] for p in (0, 15, 31)]
        cx = [_centroid(i)[0] for i in xs]
        cy = [_centroid(i)[1] for i in ys]
        assert cx[0] < cx[1] < cx[2] and abs(cx[2] - cx[0] - 32) < 1.0  # posX: left -> right, 32 px
        assert cy[0] < cy[1] < cy[2] and abs(cy[2] - cy[0] - 32) < 1.0  # posY: top -> bottom
        assert abs(_centroid(xs[2])[1] - _centroid(xs[0])[1]) < 0.6      # posX leaves the row alone


def test_orientation_turns_counter_clockwise_on_screen():
    # the heart's tip starts below the centre and moves to the right after a quarter turn (class 10 ~ 92 deg)
    up, quarter = D.render(np.array([[0, 2, 5, 0, 16, 16], [0, 2, 5, 10, 16, 16]]))
    cx0, cy0 = _centroid(up)
    cx1, cy1 = _centroid(quarter)
    centre = 16 + 32 * 16 / 31 - 0.5  # pixel index of the sprite centre
    assert cy0 < centre and abs(cx0 - centre) < 0.1  # lobes (most mass) above the centre
    assert cx1 < centre - 1  # after turning counter-clockwise the lobes are on the left


def test_continuous_values_render_between_grid_points():
    mid = D.render([[1.0, 1.0, 0.75, 0.3, 0.5, 0.5]])[0]
    lo = D.render([[1.0, 1.0, 0.5, 0.3, 0.5, 0.5]])[0]
    hi = D.render([[1.0, 1.0, 1.0, 0.3, 0.5, 0.5]])[0]
    assert lo.sum() < mid.sum() < hi.sum()


# --- calibration against the real frames -----------------------------------------------------------------------

def gif_frame_latents() -> np.ndarray:
    """Latent classes of the 320 frames of the original dsprites.gif (a traversal, identified by fitting)."""
    rows = []

    def seg(shape, scale, orient, px, py):
        for s, o, x, y in zip(*np.broadcast_arrays(scale, orient, px, py)):
            rows.append((0, shape, s, o, x, y))

    up, down, ramp, turn = np.arange(6), np.arange(5, -1, -1), np.arange(32), np.arange(40)
    for shape in (2, 1, 0):  # heart, ellipse, square
        seg(shape, up, 0, 0, 0), seg(shape, down, 0, 0, 0), seg(shape, up, 0, 0, 0)
        seg(shape, 5, turn, 0, 0)
        if shape == 2:  # only the heart walks round the border
            seg(shape, 5, 0, 0, ramp), seg(shape, 5, 0, ramp, 31)
            seg(shape, 5, 0, 31, ramp[::-1]), seg(shape, 5, 0, ramp[::-1], 0)
        seg(shape, down, 0, 0, 0)
    return np.array(rows, dtype=np.int64)


@pytest.fixture(scope="module")
def gif_frames():
    path = next((p for p in GIF_CANDIDATES if p and os.path.isfile(p)), None)
    if path is None:
        pytest.skip("dsprites.gif (the original dSprites animation) not found; set EBMLIB_DSPRITES_GIF to its path")
    Image = pytest.importorskip("PIL.Image", reason="Pillow is needed to read dsprites.gif")
    frames = []
    with Image.open(path) as im:
        for k in range(im.n_frames):
            im.seek(k)
            frames.append(np.array(im.convert("L")) > 127)
    return np.stack(frames)


def _iou(a, b):
    return (a & b).sum((-1, -2)) / np.maximum((a | b).sum((-1, -2)), 1)


def test_iou_against_real_gif_frames(gif_frames):
    assert gif_frames.shape == (320, 64, 64)
    lat = gif_frame_latents()
    iou = _iou(D.render(lat, dtype=bool), gif_frames)
    assert iou.mean() >= GIF_MEAN_IOU, (iou.mean(), iou.min())
    assert iou.min() >= GIF_MIN_IOU, (iou.mean(), iou.min(), np.argmin(iou))
    for shape in range(3):
        assert iou[lat[:, 1] == shape].mean() >= 0.999


def test_gif_latents_are_the_best_match_on_the_grid(gif_frames):
    """For a sample of frames, no other (shape, scale, orientation) at the frame's position matches better."""
    lat = gif_frame_latents()
    combos = np.array([(0, sh, sc, o) for sh in range(3) for sc in range(6) for o in range(40)])
    for f in range(0, 320, 23):
        cand = np.concatenate([combos, np.broadcast_to(lat[f, 4:], (len(combos), 2))], axis=1)
        iou = _iou(D.render(cand, dtype=bool), gif_frames[f][None])
        assert iou[(cand == lat[f]).all(1)][0] == iou.max(), (f, lat[f], cand[iou.argmax()])


# --- loaders ------------------------------------------------------------------------------------------------------

def _write_original_format(path, idx, py2_keys=False):
    imgs = D.render(D.index_to_classes(idx))
    meta = {"title": "dSprites dataset", "latents_sizes": D.LATENT_SIZES,
            "latents_names": D.LATENT_NAMES, "latents_possible_values": dict(D.LATENT_VALUES)}
    if py2_keys:
        meta = {k.encode(): v for k, v in meta.items()}
    np.savez_compressed(path, imgs=imgs, latents_values=D.latents_values(idx),
                        latents_classes=D.latents_classes(idx), metadata=np.array(meta, dtype=object))
    return imgs


@pytest.mark.parametrize("py2_keys", [False, True])
def test_load_original_npz_fixture(tmp_path, py2_keys):
    idx = np.array([0, 1, 4095, 123456, 737279])
    path = tmp_path / D.ORIGINAL_FILENAME
    imgs = _write_original_format(path, idx, py2_keys)
    ds = D.load_dsprites_npz(path)
    assert len(ds) == 5 and ds.packed.shape == (5, 512)
    np.testing.assert_array_equal(ds.imgs(), imgs)
    np.testing.assert_array_equal(ds.imgs([3, 0]), imgs[[3, 0]])
    np.testing.assert_array_equal(ds.latents_classes, D.latents_classes(idx))
    np.testing.assert_array_equal(ds.latents_values, D.latents_values(idx))
    assert ds.metadata["latents_sizes"].tolist() == [1, 3, 6, 40, 32, 32]
    assert ds.metadata["latents_names"] == D.LATENT_NAMES
    assert D.load_dsprites_npz(path, metadata=False).metadata is None
    with zipfile.ZipFile(path) as zf:  # streaming in several chunks gives the same bits
        np.testing.assert_array_equal(D._packed_from_npz_member(zf, "imgs.npy", path, chunk=2), ds.packed)


def test_load_npz_rejects_foreign_files(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, imgs=np.zeros((2, 64, 64), np.uint8))
    with pytest.raises(ValueError, match="missing"):
        D.load_dsprites_npz(bad)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, imgs=np.zeros((2, 32, 32), np.uint8), latents_values=np.zeros((2, 6)),
             latents_classes=np.zeros((2, 6), int))
    with pytest.raises(ValueError, match="64, 64"):
        D.load_dsprites_npz(wrong)
    with pytest.raises(FileNotFoundError):
        D.load_dsprites_npz(tmp_path / "nothing.npz")


def test_cache_is_built_once_and_written_atomically(tmp_path):
    idx = np.arange(0, 737280, 9001)
    calls = []

    def build():
        calls.append(1)
        return D._render_packed(idx)

    path = tmp_path / "dsprites" / D.CACHE_FILENAME
    first = D._load_or_build(path, build, len(idx), cache=True)
    second = D._load_or_build(path, build, len(idx), cache=True)
    assert len(calls) == 1 and path.is_file()
    np.testing.assert_array_equal(first, second)
    assert [p.name for p in path.parent.iterdir()] == [D.CACHE_FILENAME]  # no temp file left behind
    ds = D.DSprites(second, D.latents_values(idx), D.latents_classes(idx))
    np.testing.assert_array_equal(ds.imgs(), D.render(D.latents_classes(idx)))
    with zipfile.ZipFile(path) as zf:  # compressed npz of packed bits, no pickles
        assert "imgs_packed.npy" in zf.namelist()
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in zf.infolist())
    path.write_bytes(b"garbage")  # a corrupted cache is rebuilt
    third = D._load_or_build(path, build, len(idx), cache=True)
    assert len(calls) == 2
    np.testing.assert_array_equal(third, first)
    D._load_or_build(path, build, len(idx), cache=False)
    assert len(calls) == 3


def test_load_dsprites_uses_the_cache_under_data_root(tmp_path, monkeypatch):
    """Wiring only (writing the full 377 MB of packed bits takes ~5-10 s): path, cache flag, what comes back."""
    seen = []

    def fake_load_or_build(path, build, n_expected, cache):
        seen.append((path, n_expected, cache))
        return np.zeros((n_expected, 512), np.uint8)

    monkeypatch.setattr(D, "_load_or_build", fake_load_or_build)
    ds = D.load_dsprites(root=tmp_path, progress=False)
    assert seen == [(tmp_path / "dsprites" / D.CACHE_FILENAME, 737280, True)]
    assert len(ds) == 737280 and ds.imgs([5, 6]).shape == (2, 64, 64)
    np.testing.assert_array_equal(ds.latents_classes[[0, 1, 737279]], D.index_to_classes([0, 1, 737279]))
    assert ds.latents_values.shape == (737280, 6) and ds.metadata["latents_sizes"].tolist() == [1, 3, 6, 40, 32, 32]
    monkeypatch.setenv("EBMLIB_DATA", str(tmp_path / "env"))
    D.load_dsprites(cache=False, progress=False)
    assert seen[-1] == (tmp_path / "env" / "dsprites" / D.CACHE_FILENAME, 737280, False)
