"""Tests of the composition chapter (latents, zeroshot): latent codes, the D1/D2/D3 sets, latent energies, the sum and its
sequential sampling, the A.5 KL term's gradient, recipes/checkpoints and the judge's data (the judge itself:
test_judge.py)."""
import math

import pytest
import torch

from ebmlib.chapters.composition import latents as L
from ebmlib.chapters.composition import zeroshot as Z
from ebmlib.core import recipes
from ebmlib.core.train import kl_last_step
from ebmlib.data.dsprites import LATENT_VALUES


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- latents --------------------------------------------------------------------------------------------------

def test_encode_codes_and_errors():
    y = torch.tensor([[1.0, 3.0, 0.5, math.pi / 2, 0.0, 1.0], [1.0, 1.0, 1.0, 0.0, 0.5, 0.25]])
    code = L.encode(y, ("shape", "scale", "rotation", "position"))
    assert code.shape == (2, L.encoded_dim(("shape", "scale", "rotation", "position"))) == (2, 8)
    assert torch.allclose(code[0], torch.tensor([0, 0, 1, -1, 0, 1, -1, 1.0]), atol=1e-6)
    assert torch.allclose(code[1], torch.tensor([1, 0, 0, 1, 1, 0, 0, -0.5]), atol=1e-6)
    with pytest.raises(ValueError, match="distinct names"):
        L.encode(y, ("size",))
    with pytest.raises(ValueError, match=r"\(N, 6\)"):
        L.encode(y[:, :5], ("scale",))
    with pytest.raises(ValueError, match="shape latent must be 1, 2 or 3"):
        L.encode(torch.tensor([[1.0, 4.0, 0.5, 0.0, 0.0, 0.0]]), ("shape",))


@pytest.mark.parametrize("name", ["D1", "D2", "D3"])
def test_training_sets_hold_what_the_paper_says(name):
    y = L.latent_set(name).sample(400, gen())
    centre = (y[:, 4:6] == L.CENTRE).all(1)
    assert (y[:, 3] == 0).all()                                   # orientation fixed
    if name == "D1":   # squares of every size at the centre
        assert (y[:, 1] == 1).all() and centre.all() and len(y[:, 2].unique()) == 6
    if name == "D2":   # smallest squares at every position
        assert (y[:, 1] == 1).all() and (y[:, 2] == 0.5).all() and len(y[:, 4].unique()) > 20
    if name == "D3":   # every shape at the centre
        assert centre.all() and set(y[:, 1].tolist()) == {1.0, 2.0, 3.0}


@pytest.mark.parametrize("name", ["size_position", "shape_position"])
def test_unseen_combinations_are_in_no_training_set(name):
    y = L.latent_set(name).sample(500, gen(1))
    off_centre = (y[:, 4:6] - L.CENTRE).abs().amax(1) >= 0.2
    assert off_centre.all()                                        # never D1 or D3
    if name == "size_position":
        assert (y[:, 2] > 0.5).all() and (y[:, 1] == 1).all()     # never D2 (smallest size only)
    else:
        assert (y[:, 1] != 1).all()                                # D2 holds squares only


def test_mixture_draws_from_both_parts():
    y = L.latent_set("D1+D2").sample(300, gen(2))
    in_d1 = (y[:, 4:6] == L.CENTRE).all(1)
    assert 0.3 < in_d1.float().mean() < 0.7


def test_render_images_pools_the_renderer():
    y = torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.5, 0.5]])
    x64 = L.render_images(y, 64)
    x32 = L.render_images(y, 32)
    assert x32.shape == (1, 1, 32, 32) and 0 <= x32.min() and x32.max() <= 1
    assert torch.isclose(x32.sum() * 4, x64.sum())                # average pooling keeps the mass
    assert abs(x64.sum().item() - 19.2 ** 2) < 40                  # the square's side is 19.2 px at scale 1
    with pytest.raises(ValueError, match="resolution"):
        L.render_images(y, 30)


# --- energies, sums and sampling ---------------------------------------------------------------------------------

def test_latent_energy_shapes_conditioning_and_coords():
    torch.manual_seed(0)
    e = Z.LatentConvEnergy(("position",), 32, 4)
    assert e.coords
    x, y = L.latent_set("D2")(5, gen())
    assert e(x, y).shape == (5,)
    with pytest.raises(ValueError, match="pass the latent rows"):
        e(x)
    with pytest.raises(ValueError, match=r"\(N, 1, 32, 32\)"):
        e(torch.zeros(2, 1, 28, 28), y[:2])
    # the embedding's last layer starts at zero: the energy does not depend on the latents at initialisation...
    e.eval()   # (spectral norm's power iteration moves in training mode)
    y2 = y.clone()
    y2[:, 4] = 1 - y2[:, 4]
    assert torch.allclose(e(x, y), e(x, y2))
    # ...and a scale expert without coordinate channels is translation invariant away from the borders
    s = Z.LatentConvEnergy(("scale",), 32, 4, sn=False)
    assert not s.coords
    ya = torch.tensor([[1.0, 1.0, 0.5, 0.0, 0.25, 0.25]])   # shifts by 8 px at 32x32: the nets total stride
    yb = torch.tensor([[1.0, 1.0, 0.5, 0.0, 0.75, 0.75]])
    xa, xb = L.render_images(ya), L.render_images(yb)
    assert not torch.equal(xa, xb)
    assert abs(s(xa, ya).item() - s(xb, ya).item()) < 1e-4


def test_sum_and_sequential_sampling_run_on_the_sum():
    torch.manual_seed(0)
    a, b = Z.LatentConvEnergy(("scale",), 32, 2), Z.LatentConvEnergy(("position",), 32, 2)
    p = Z.LatentProduct([a, b]).eval()
    x, y = L.latent_set("D1")(3, gen())
    assert torch.allclose(p(x, y), a(x, y) + b(x, y))
    out = Z.sample_joint(p, y, 3, 100.0, generator=gen(3))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    again = Z.sample_joint(p, y, 3, 100.0, generator=gen(3))
    assert torch.equal(out, again)
    assert all(q.requires_grad for q in p.parameters())           # sampling leaves the parameters trainable


def test_kl_term_gradient_flows_only_through_the_sampling_step():
    torch.manual_seed(0)
    p = Z.LatentProduct([Z.LatentConvEnergy(("scale",), 32, 2, sn=False)])
    x, y = L.latent_set("D1")(4, gen())
    x0 = torch.rand_like(x)

    def grad_norm(h):
        p.zero_grad()
        kl_last_step(p, x0, y, h, None).backward()
        return sum(q.grad.abs().sum() for q in p.parameters() if q.grad is not None).item()

    # E-bar is a constant target: with a vanishing step x' = x and no gradient reaches theta (it would if the
    # energy itself were differentiated); the gradient grows with the step, i.e. it comes through the sampler
    tiny, small = grad_norm(1e-7), grad_norm(1e-3)
    assert small > 0 and tiny < 1e-2 * small


def test_kl_gradient_matches_finite_differences_on_a_quadratic():
    # E_theta(x) = theta * |x - 0.5|^2 summed: x' = x - h * 2 theta (x - 0.5); d/dtheta of E_bar(x') with E_bar's
    # theta held fixed is grad E_bar(x') . dx'/dtheta
    class Quad(torch.nn.Module):
        resolution = 32

        def __init__(self):
            super().__init__()
            self.theta = torch.nn.Parameter(torch.tensor(0.7))

        def forward(self, x, y=None):
            return self.theta * (x - 0.5).pow(2).flatten(1).sum(1)

    p = Z.LatentProduct([Quad()])
    x = torch.rand(3, 1, 32, 32, generator=gen(7))
    h = 0.1
    kl = kl_last_step(p, x, None, h, None)
    kl.backward()
    theta = 0.7
    x_new = x - h * 2 * theta * (x - 0.5)
    expected = (theta * 2 * (x_new - 0.5) * (-h * 2 * (x - 0.5))).flatten(1).sum(1).mean()
    assert torch.isclose(p.experts[0].theta.grad, expected, rtol=1e-4)


def test_finetune_runs_and_keeps_its_history():
    torch.manual_seed(0)
    parts = [dict(name="a", latents=["scale"], data="D1", width=2), dict(name="b", latents=["position"], data="D2", width=2)]
    r = Z.LatentRecipe.from_spec("ft", dict(kind="finetune", data="D1+D2", width=2, n_iters=2, parts=parts,
                                            train=dict(batch_size=4, n_steps=2, step_size=50.0, lr=1e-3, kl_weight=1.0)))
    experts = [Z._part(q).build() for q in r.parts]
    before = [q.clone() for e in experts for q in e.parameters()]
    t = recipes.train(r, parts=experts, progress=False, device="cpu")
    assert len(t.history) == 2 and {"kl", "loss"} <= set(t.history[0])
    assert any(not torch.equal(a, b) for a, b in zip(before, t.model.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(before, [q for e in experts for q in e.parameters()]))   # untouched
    assert r.requires() == ("a", "b")


def test_finetune_resumes_exactly(tmp_path):
    """KL fine-tuning is a Trainer: killed and resumed from its run folder it ends where the whole run ends."""
    parts = [dict(name="a", latents=["scale"], data="D1", width=2), dict(name="b", latents=["position"], data="D2", width=2)]
    spec = dict(kind="finetune", data="D1+D2", width=2, parts=parts,
                train=dict(batch_size=4, n_steps=2, step_size=50.0, lr=1e-3, kl_weight=1.0, checkpoint_every=2))
    whole = Z.LatentRecipe.from_spec("ft", dict(spec, n_iters=4))
    experts = [Z._part(q).build() for q in whole.parts]
    full = recipes.train(whole, parts=experts, progress=False, device="cpu", run_dir=tmp_path / "a")
    recipes.train(Z.LatentRecipe.from_spec("ft", dict(spec, n_iters=2)), parts=experts, progress=False, device="cpu",
                  run_dir=tmp_path / "b")                       # "killed" after its checkpoint at iteration 2
    resumed = recipes.train(whole, parts=experts, progress=False, device="cpu", run_dir=tmp_path / "b")
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    assert all(torch.equal(a, b) for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()))


# --- recipes and checkpoints --------------------------------------------------------------------------------------

def test_recipe_checks():
    with pytest.raises(ValueError, match="unknown latents"):
        Z.LatentRecipe("x", latents=("colour",))
    with pytest.raises(ValueError, match="kind must be"):
        Z.LatentRecipe("x", kind="gan")
    with pytest.raises(ValueError, match="needs its expert recipes"):
        Z.LatentRecipe("x", kind="finetune")
    with pytest.raises(ValueError, match="unknown training fields"):
        Z.LatentRecipe("x", train=dict(stepsize=1.0)).config()


def test_load_or_train_uses_only_a_matching_checkpoint(tmp_path):
    spec = dict(latents=["scale"], data="D1", width=2, n_iters=2, train=dict(batch_size=4, n_steps=1, checkpoint_every=1))
    r = Z.LatentRecipe.from_spec("m", spec)
    t = recipes.load_or_train(r, shipped_dir=None, out_dir=tmp_path, progress=False)
    assert t.source == "trained" and (tmp_path / "m.pt").is_file()
    again = recipes.load_or_train(r, shipped_dir=None, out_dir=tmp_path, progress=False)
    assert again.source.endswith("m.pt")
    x, y = L.latent_set("D1")(3, gen())
    assert torch.allclose(t.model(x, y), again.model(x, y))
    other = Z.LatentRecipe.from_spec("m", dict(spec, n_iters=3))
    assert recipes.load_or_train(other, shipped_dir=tmp_path, out_dir=None, progress=False).source == "trained"


# --- the judge's data -------------------------------------------------------------------------------------------------

def test_upright_set_covers_the_canvas_and_the_centre():
    y = L.latent_set("upright").sample(3000, gen(3))
    assert (y[:, 3] == 0).all() and set(y[:, 1].tolist()) == {1.0, 2.0, 3.0} and len(y[:, 2].unique()) == 6
    assert 0 <= y[:, 4:6].min() and y[:, 4:6].max() <= 1
    grid = torch.tensor(LATENT_VALUES["posX"], dtype=torch.float32)
    off_grid = (y[:, 4:, None] - grid).abs().amin(-1) > 1e-4
    assert off_grid.float().mean() > 0.9                          # continuous positions, not the 32 grid values
    near_centre = ((y[:, 4:6] - L.CENTRE).abs().amax(1) < 0.05).float().mean()
    assert near_centre > 0.005                  # around the centre of D1 / D3, which lies between grid values
    L.render_images(y[:5])                                         # and the renderer draws them


def test_continuous_positions_leave_the_grid_sets_alone():
    a = L.latent_set("D2").sample(50, gen(4))
    grid = torch.tensor(LATENT_VALUES["posX"], dtype=torch.float32)
    assert ((a[:, 4:, None] - grid).abs().amin(-1) < 1e-6).all()
    off = L.LatentSet("off", continuous_position=True, exclude_centre=0.2).sample(200, gen(5))
    assert ((off[:, 4:6] - L.CENTRE).abs().amax(1) >= 0.2).all()


def test_coordinate_grid_spans_the_position_code():
    g = L.coordinate_grid(4)
    assert g.shape == (1, 2, 4, 4)
    assert torch.allclose(g[0, 0, 0], torch.tensor([-0.75, -0.25, 0.25, 0.75]))   # x along a row
    assert torch.allclose(g[0, 1, :, 0], torch.tensor([-0.75, -0.25, 0.25, 0.75]))  # y down a column
