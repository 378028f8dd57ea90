"""The dSprites latent judge of chapter 08 (ebmlib.chapters.composition.judge): its recipe, its scoring, its
scale confusion check, and the shipped demo judge read against real images of every set the chapter scores."""
import math

import pytest
import torch
from torch import nn

from ebmlib.chapters.composition import judge as J
from ebmlib.chapters.composition import latents as L
from ebmlib.chapters.composition import zeroshot as Z
from ebmlib.core import recipes
from ebmlib.core.recipes import SHIPPED_DIR, load_trained
from ebmlib.presets import preset


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


class FixedJudge(nn.Module):
    """A stand-in judge that reads every image as the same latents: scale class ``k``, shape 1, the centre."""

    def __init__(self, k, resolution=32):
        super().__init__()
        self.register_buffer("grid", torch.zeros(1))
        self.k = k

    def forward(self, x):
        out = torch.zeros(x.shape[0], J.LatentJudge.N_OUT)
        out[:, 0] = 1.0
        out[:, 3 + self.k] = 1.0
        return out


class ShiftedJudge(nn.Module):
    """A stand-in for the defect, on squares: it reads the size class off the image's mass (a square of scale s
    is 19.2 s px wide at 64x64, a quarter of its area at 32x32) and adds ``shift``."""

    def __init__(self, shift):
        super().__init__()
        self.register_buffer("grid", torch.zeros(1))
        self.shift = shift

    def forward(self, x):
        side = (x.sum((1, 2, 3)) * (64 / x.shape[-1]) ** 2).sqrt() / 19.2
        k = J.scale_class(side)
        out = torch.zeros(x.shape[0], J.LatentJudge.N_OUT)
        out[torch.arange(x.shape[0]), 3 + (k + self.shift).clamp(0, 5)] = 1.0
        return out


# --- classes, scoring, confusion -----------------------------------------------------------------------------------

def test_scale_class_maps_the_six_sizes():
    assert J.SCALES == pytest.approx((0.5, 0.6, 0.7, 0.8, 0.9, 1.0))
    assert J.scale_class(torch.tensor(J.SCALES)).tolist() == [0, 1, 2, 3, 4, 5]
    assert J.scale_class(torch.tensor([0.54, 0.56, 0.98])).tolist() == [0, 1, 5]


def test_judge_output_and_input_checks():
    torch.manual_seed(0)
    j = J.LatentJudge(32, 2)
    assert j(torch.zeros(3, 1, 32, 32)).shape == (3, 13)
    with pytest.raises(ValueError, match=r"\(N, 1, 32, 32\)"):
        j(torch.zeros(3, 1, 28, 28))
    with pytest.raises(ValueError, match="resolution"):
        J.LatentJudge(30, 2)


def test_predict_reads_the_class_heads():
    pred = J.judge_predict(FixedJudge(4), torch.zeros(5, 1, 32, 32))
    assert torch.allclose(pred[:, 2], torch.full((5,), 0.9)) and (pred[:, 1] == 1).all()
    assert (pred[:, 3] == 0).all()                 # rotation code (0, 0): angle 0
    assert torch.allclose(pred[:, 4:6], torch.full((5, 2), 0.5))


def test_scores_and_chance_count_the_right_hits():
    req = torch.tensor([[1.0, 2.0, 0.7, 0.0, 0.2, 0.8]] * 4)
    guess = req.clone()
    guess[1, 1] = 3.0                 # wrong shape
    guess[2, 2] = 0.8                 # wrong size (one class off)
    guess[3, 4] = 0.35                # position off by 0.15 > tol
    s = J.chance_scores(req, guess, ("shape", "scale", "position"), position_tol=0.1)
    assert s == {"shape": 0.75, "scale": 0.75, "position": 0.75, "all": 0.25}
    with pytest.raises(ValueError, match="colour"):
        J.chance_scores(req, guess, ("colour",))
    with pytest.raises(ValueError, match="differ in shape"):
        J.chance_scores(req, guess[:2], ("shape",))


def test_rotation_is_read_modulo_each_shapes_symmetry():
    """A square turned a quarter turn, or an ellipse a half turn, draws the same image and reads as right; a heart
    turned a quarter turn does not; a turn of a bit under an eighth of the period is right, a bit over is not."""
    req = torch.tensor([[1.0, s, 0.7, 0.3, 0.5, 0.5] for s in (1.0, 2.0, 3.0)])
    k = torch.tensor([4.0, 2.0, 1.0])

    def right(turn):
        guess = req.clone()
        guess[:, 3] += turn
        return J.chance_scores(req, guess, ("rotation",))["rotation"]
    assert right(2 * math.pi / k) == 1.0 and right(-2 * math.pi / k) == 1.0    # one period: the same image
    assert right(math.pi / k) == 0.0                                           # half a period: the farthest pose
    assert right(0.9 * J.ROTATION_TOL / k) == 1.0 and right(1.1 * J.ROTATION_TOL / k) == 0.0
    quarter = req.clone()
    quarter[:, 3] += math.pi / 2
    assert J.chance_scores(req, quarter, ("rotation",))["rotation"] == pytest.approx(1 / 3)  # the square only
    codes = J.rotation_code(torch.cat([req, quarter]))
    assert torch.allclose(codes[0], codes[3], atol=1e-6) and not torch.allclose(codes[2], codes[5], atol=0.1)
    x = L.render_images(torch.cat([req[:1], quarter[:1]]))
    assert (x[0] - x[1]).abs().max() < 0.05                 # the square's two poses draw (nearly) the same pixels


def test_random_rotations_are_right_a_quarter_of_the_time():
    y = L.latent_set("full").sample(4000, gen(3))
    guess = L.latent_set("full").sample(4000, gen(4))
    assert J.chance_scores(y, guess, ("rotation",))["rotation"] == pytest.approx(0.25, abs=0.03)


def test_confusion_of_a_constant_judge_is_one_column():
    x, y = L.latent_set("D1")(60, gen(1))
    conf = J.scale_confusion(FixedJudge(2), x, y)
    assert conf.shape == (6, 6) and conf.sum() == 60
    assert conf[:, 2].sum() == 60
    assert conf.sum(1).tolist() == torch.bincount(J.scale_class(y[:, 2]), minlength=6).tolist()


@pytest.mark.parametrize("shift", [0, 1, -1])
def test_confusion_shift_catches_a_shifted_judge(shift):
    """A judge reading every size one class too large (the defect of the old judge) shows up as shift +1."""
    x, y = L.latent_set("D1")(300, gen(2))
    conf = J.scale_confusion(ShiftedJudge(shift), x, y)
    assert J.confusion_shift(conf) == shift
    assert J.confusion_shift(torch.eye(6, dtype=torch.long) * 10) == 0
    assert J.confusion_shift(torch.diag(torch.ones(5, dtype=torch.long), 1)) == 1


def test_a_shifted_judge_would_count_a_size_too_small_as_right():
    """Why the check matters: under a +1 shift, squares one size smaller than requested score as right."""
    y = L.latent_set("size_position").sample(100, gen(4))
    smaller = y.clone()
    smaller[:, 2] = torch.tensor(J.SCALES)[J.scale_class(y[:, 2]) - 1]
    x_small = L.render_images(smaller)
    assert J.judge_scores(ShiftedJudge(1), x_small, y, ("scale",))["scale"] > 0.9
    assert J.judge_scores(ShiftedJudge(0), x_small, y, ("scale",))["scale"] < 0.05


@pytest.mark.parametrize("name", ["full", "D1", "D2", "D3", "size_position", "shape_position"])
def test_every_real_image_holds_one_sprite(name):
    x, _ = L.latent_set(name)(300, gen(6))
    assert (J.sprite_count(x) == 1).all() and J.single_sprite(x).all()
    assert (x > 0.5).flatten(1).float().mean(1).max() < 0.7 * J.MAX_SPRITE_FRACTION     # with room to spare


def test_sprite_count_sees_several_blobs_and_ignores_specks():
    two = L.render_images(torch.tensor([[1.0, 1.0, 0.5, 0.0, 0.1, 0.1], [1.0, 1.0, 0.5, 0.0, 0.9, 0.9]]))
    both = two.sum(0, keepdim=True).clamp(max=1)
    speck = torch.zeros(1, 1, 32, 32)
    speck[0, 0, 3, 3] = 1.0                                   # one bright pixel: below min_pixels
    three = L.render_images(torch.tensor([[1.0, 2.0, 0.5, 0.0, p, 0.1] for p in (0.0, 0.5, 1.0)]))
    three = three.sum(0, keepdim=True).clamp(max=1)           # three small ellipses in a row
    counts = J.sprite_count(torch.cat([both, speck, two[:1] + speck, three]))
    assert counts.tolist() == [2, 0, 1, 3]
    with pytest.raises(ValueError, match=r"\(N, 1, R, R\)"):
        J.sprite_count(torch.zeros(32, 32))
    bright = torch.ones(1, 1, 32, 32)                         # one blob, but the whole canvas
    assert J.sprite_count(bright).tolist() == [1] and J.single_sprite(torch.cat([bright, two[:1]])).tolist() == [
        False, True]


def test_a_panel_counts_a_latent_only_where_every_judge_reads_it():
    """The panel's hit is the AND of its judges': a judge right on every image and one that reads every size a
    class too large give the second's count, never the first's; a panel of one is that judge."""
    x, y = L.latent_set("D1")(120, gen(3))
    right, shifted = ShiftedJudge(0), ShiftedJudge(1)
    assert J.judge_scores(right, x, y, ("scale",))["scale"] > 0.95
    alone = J.judge_hits(shifted, x, y, ("scale",))
    both = J.judge_hits(J.JudgePanel([right, shifted]), x, y, ("scale",))
    assert torch.equal(both["all"], alone["all"] & J.judge_hits(right, x, y, ("scale",))["all"])
    # only the largest size (a sixth of D1) survives the shift, which clamps there
    assert J.judge_scores(J.JudgePanel([right, shifted]), x, y, ("scale",))["scale"] < 0.2
    assert J.judge_scores(J.JudgePanel([right]), x, y, ("scale",)) == J.judge_scores(right, x, y, ("scale",))
    each = J.judge_hits_each(J.JudgePanel([right, shifted]), x, y, ("scale",))
    assert [torch.equal(e["all"], J.judge_hits(j, x, y, ("scale",))["all"]) for e, j in zip(each, (right, shifted))] \
        == [True, True] and all(torch.equal(J.panel_hits(each)[k], both[k]) for k in both)
    conf = J.scale_confusion(J.JudgePanel([right, shifted]), x, y)
    assert conf.sum() == 240 and torch.equal(conf, J.scale_confusion(right, x, y) + J.scale_confusion(shifted, x, y))
    with pytest.raises(ValueError, match="one or more judge networks"):
        J.JudgePanel([])


def test_the_judges_of_the_panel_differ_only_in_their_seed():
    cfg = preset("08_composition", "demo")
    assert Z.judge_names(cfg) == ("dsprites_judge", "dsprites_judge_2")
    for seed in (0, 2):
        first, second = (Z.recipes(cfg, seed)[n] for n in Z.judge_names(cfg))
        assert (first.seeded(), second.seeded()) == (seed, seed + 1)
        assert {**first.train, "seed": 0} == {**second.train, "seed": 0} and first.n_iters == second.n_iters
    with pytest.raises(ValueError, match="judges must be at least 1.*got 0"):
        Z.judge_names(preset("08_composition", "demo", {"judges": 0}))


# --- the recipe --------------------------------------------------------------------------------------------------------

def test_recipe_checks_its_fields():
    with pytest.raises(ValueError, match="unknown training fields.*batchsize"):
        J.JudgeRecipe(train=dict(batchsize=3))
    with pytest.raises(KeyError, match="unknown latent set 'everything'"):
        J.JudgeRecipe(data="everything")
    with pytest.raises(ValueError, match="n_iters"):
        J.JudgeRecipe(n_iters=0)


def test_judge_learns_position_quickly_and_predicts_rows():
    # D2 is upright squares only (a constant rotation code), so the rotation term is turned down to leave the 150
    # iterations to the position
    r = J.JudgeRecipe("j", data="D2", width=8, n_iters=150, train=dict(batch=32, lr=3e-3, rotation_weight=1.0))
    t = recipes.train(r, progress=False, device="cpu")
    judge, hist = t.model, t.history
    assert hist[-1]["loss"] < hist[0]["loss"]
    x, y = L.latent_set("D2")(64, gen(9))
    pred = J.judge_predict(judge, x)
    assert pred.shape == (64, 6) and (pred[:, 3] >= 0).all() and (pred[:, 3] < math.pi / 2).all()  # squares
    err = (pred[:, 4:6] - y[:, 4:6]).abs().mean().item()
    assert err < 0.1                                  # predicting the centre gives ~0.25


def test_the_chapter_judge_trains_on_upright_sprites_too():
    cfg = preset("08_composition", "demo")
    r = Z.recipes(cfg)["dsprites_judge"]
    assert isinstance(r, J.JudgeRecipe) and r.name == "dsprites_judge" and r.data == "full+upright"
    y = L.latent_set(r.data).sample(2000, gen(5))
    assert 0.45 < (y[:, 3] == 0).float().mean() < 0.6          # about half upright (plus 1/39 of full)


# --- the shipped demo judge on real images ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped_judge():
    """The shipped panel: every judge of the demo preset, each loaded from ebmlib/checkpoints."""
    cfg = preset("08_composition", "demo")
    judges = []
    for name in Z.judge_names(cfg):
        t = load_trained(Z.recipes(cfg)[name], (SHIPPED_DIR,))
        assert t is not None, f"ebmlib/checkpoints/{name}.pt is missing or was made by another recipe"
        judges.append(t.model)
    return J.JudgePanel(judges), cfg


@pytest.mark.parametrize("name", ["full", "D1", "D2", "D3", "size_position", "shape_position"])
def test_shipped_judge_reads_real_images_of_every_scored_set(shipped_judge, name):
    """At least 95% right per latent, every judge agreeing, on 500 real images of each set the chapter scores (and
    the training sets)."""
    judge, cfg = shipped_judge
    acc = J.judge_accuracy(judge, {name: J.SCORED}, 500, gen(11), cfg.judge["resolution"], cfg.position_tol)[name]
    assert min(acc[k] for k in J.SCORED) >= 0.95, acc


def test_shipped_judge_reads_the_size_of_upright_squares(shipped_judge):
    """Upright squares of every size, at the centre (D1) and off it (the unseen size x position set): the scale
    confusion matrix is diagonal (no +1 shift) and each size is read right at least 95% of the time."""
    judge, cfg = shipped_judge
    conf = torch.zeros(6, 6, dtype=torch.long)
    for name in ("D1", "size_position"):
        x, y = L.latent_set(name)(600, gen(12), resolution=cfg.judge["resolution"])
        conf += J.scale_confusion(judge, x, y)
    assert J.confusion_shift(conf) == 0, conf
    per_size = conf.diagonal().float() / conf.sum(1).float()
    assert (per_size >= 0.95).all(), (per_size, conf)
