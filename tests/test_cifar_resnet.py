"""The paper's CIFAR-10 energy ResNets (A.6) and the chapter-5 paper-scale path (CIFAR-10 + SVHN + DTD), run end
to end at tiny size on fixture data written in the real on-disk formats (no GPU, no download)."""
import sys
from pathlib import Path

import pytest
import torch
from torch.nn.utils import parametrize

from ebmlib.chapters.ood_robustness import adversarial as A
from ebmlib.chapters.ood_robustness import ood
from ebmlib.chapters.ood_robustness import report as RP
from ebmlib import presets as scales
from ebmlib.core import recipes as R
from ebmlib.core.image_ebm import ImageEBMRecipe, image_recipes
from ebmlib.data import load_cifar10, load_dtd, load_svhn
from ebmlib.core.nets import CIFAR_LAYOUTS, CIFARResNetEnergy, ResidualBlock, count_parameters

sys.path.insert(0, str(Path(__file__).parent))
from ebmlib.data.fixtures import write_cifar10 as write_cifar, write_dtd, write_svhn  # noqa: E402


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------------- the network
@pytest.mark.parametrize("layout,n_classes", [("resnet32", 10), ("resnet32_large", None)])
def test_shapes_downsampling_and_input_gradient(layout, n_classes):
    net = CIFARResNetEnergy(width=4, layout=layout, n_classes=n_classes)
    x = torch.rand(3, 3, 32, 32, requires_grad=True)
    y = torch.tensor([0, 4, 9]) if n_classes else None
    e = net(x, y)
    assert e.shape == (3,) and torch.isfinite(e).all()
    (g,) = torch.autograd.grad(e.sum(), x)   # Langevin needs grad_x E
    assert g.shape == x.shape and g.abs().sum() > 0
    # three average-pooling blocks: 32 -> 4 before the spatial sum
    h = net.conv_in(x)
    for block in net.blocks:
        h = block(h, y)
    assert h.shape[2:] == (4, 4) and sum(d for _, d in CIFAR_LAYOUTS[layout]) == 3


def test_paper_widths_give_the_papers_parameter_counts():
    # the release's ResNet32 ~5.3M, unconditional ResNet32Large ~18.6M parameters at 128 filters
    assert abs(count_parameters(CIFARResNetEnergy(128, "resnet32", n_classes=10)) / 1e6 - 5.3) < 0.1
    assert abs(count_parameters(CIFARResNetEnergy(128, "resnet32_large")) / 1e6 - 18.6) < 0.1


def test_conditioning_by_class_gains_and_biases():
    torch.manual_seed(0)
    net = CIFARResNetEnergy(width=4, n_classes=10).eval()
    x = torch.rand(2, 3, 32, 32)
    e = torch.stack([net(x, torch.full((2,), c)) for c in range(10)])
    assert torch.allclose(e, e[:1].expand_as(e))          # gains and biases start equal (zero) for every class
    with torch.no_grad():                                   # give class 3 its own gains and biases
        for block in net.blocks:
            for emb in (block.gain, block.bias1, block.bias2):
                emb.weight[3].normal_(0, 0.5)
    e2 = torch.stack([net(x, torch.full((2,), c)) for c in range(10)])
    assert not torch.allclose(e2[3], e[3]) and torch.allclose(e2[torch.arange(10) != 3], e[torch.arange(10) != 3])
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        net(x, torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="pass labels"):
        net(x)
    with pytest.raises(ValueError, match="unconditional"):
        CIFARResNetEnergy(width=4)(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"\(N, 3, 32, 32\)"):
        net(torch.rand(2, 1, 28, 28), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="layout"):
        CIFARResNetEnergy(layout="resnet18")


def test_blocks_start_as_their_shortcut():
    # A.6: the second conv starts at zero, so a block begins as act(avgpool(shortcut(x)))
    block = ResidualBlock(4, 8, downsample=True).eval()   # eval: no power iteration between the two calls
    x = torch.randn(2, 4, 8, 8)
    assert torch.allclose(block(x), block.act2(block.pool(block.shortcut(x))))
    same = ResidualBlock(4, 4, downsample=False)
    assert isinstance(same.shortcut, torch.nn.Identity) and torch.allclose(same(x), same.act2(x))


def test_spectral_norm_on_every_conv_not_on_the_head():
    torch.manual_seed(0)
    net = CIFARResNetEnergy(width=4, layout="resnet32", n_classes=10)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 + 2 * 6 + 1 and all(parametrize.is_parametrized(c, "weight") for c in convs)
    assert not parametrize.is_parametrized(net.head, "weight")
    x, y = torch.rand(2, 3, 32, 32), torch.tensor([1, 2])
    for _ in range(30):                                     # power iterations run in train-mode forward passes
        net(x, y)
    net.eval()
    sigmas = [torch.linalg.matrix_norm(c.weight.flatten(1), 2).item() for c in convs]
    assert max(abs(s - 1) for s in sigmas) < 0.05


# ------------------------------------------------------------------------------------ the paper-scale path
def test_paper_preset_is_cifar10_with_a7_settings():
    cfg = scales.preset("06_ood_robustness", "paper")
    assert cfg.datasets == ("cifar10",) and cfg.ood_in == ("cifar10",) and cfg.adv_dataset == "cifar10"
    recipes = image_recipes(cfg.models)
    for name, r in recipes.items():
        c = r.config()
        assert (r.dataset, r.width, c.batch_size, c.n_steps, c.step_size, c.noise_std, c.grad_clip, c.lr, c.alpha,
                c.buffer_capacity, c.betas) == ("cifar10", 128, 128, 60, 10.0, 0.005, 0.01, 1e-4, 1.0, 10000, (0.0, 0.999))
    layouts = {n: r.__class__(**{**r.__dict__, "width": 2}).build().layout for n, r in recipes.items()}
    assert layouts == {"cifar10_uncond_replay": "resnet32_large", "cifar10_cond_replay": "resnet32"}
    assert cfg.pgd_steps == 20 and set(cfg.defended_norms) == {"linf", "l2"}
    assert cfg.defence == dict(n_steps=10, bound=0.03, step_size=10.0, noise_std=0.005, grad_clip=0.01)   # 4.4, A.7


@pytest.fixture
def cifar_root(tmp_path):
    write_cifar(tmp_path, n_per_batch=4, n_test=8)
    write_svhn(tmp_path / "SVHN")
    write_dtd(tmp_path)
    return tmp_path


def test_cifar_branch_end_to_end_on_fixtures(cifar_root, tmp_path):
    """The chapter's CIFAR-10 cells, through the same ebmlib calls, at tiny size: train both recipes, score the
    OOD sets, fit the baseline, attack the defended classifier."""
    train = load_cifar10("train", root=cifar_root, download=False, check_md5=False)
    test = load_cifar10("test", root=cifar_root, download=False, check_md5=False)
    load = {"svhn": lambda s: load_svhn(s, root=cifar_root, download=False, check_md5=False),
            "dtd": lambda s: load_dtd(s, root=cifar_root, download=False)}
    tiny = dict(batch_size=4, n_steps=2, buffer_capacity=16, checkpoint_every=1)
    models = {}
    for name, spec in scales.preset("06_ood_robustness", "paper").models.items():
        recipe = ImageEBMRecipe(name=name, **{**spec, "width": 2, "n_iters": 2, "snapshot_every": 1, "keep_buffer": 4,
                                                 "train": {**spec["train"], **tiny}})
        models[name] = R.load_or_train(recipe, data=train, shipped_dir=tmp_path / "none", out_dir=tmp_path / "out",
                                       progress=False, device="cpu")
        assert models[name].source == "trained" and (tmp_path / "out" / f"{name}.pt").is_file()
        again = R.load_or_train(recipe, data=train, shipped_dir=tmp_path / "none", out_dir=tmp_path / "out",
                                progress=False, device="cpu")
        assert again.source.endswith(f"{name}.pt") and isinstance(again.model, CIFARResNetEnergy)
    g = gen(0)
    x_in = test.subset(6, g).continuous(g)
    sets = ood.ood_sets("cifar10", x_in, 6, g, load=lambda n, s: load[n](s))
    assert list(sets) == ["svhn", "textures", "constant", "uniform noise", "interpolation"]
    assert sets["svhn"].shape == (5, 3, 32, 32) and sets["textures"].shape == (6, 3, 32, 32)
    for key in ("cifar10_uncond_replay", "cifar10_cond_replay"):
        table = ood.ood_table(lambda x: ood.energy_scores(models[key].model, x), x_in, sets)
        assert set(table) == set(sets) | {"average"} and all(0 <= v <= 1 for v in table.values())
    pca = ood.PCAGaussian(3).fit(train.continuous(g))
    lp = pca.log_prob(x_in)   # one call: sklearn inverts the 3072 x 3072 covariance per call (the slow part here)
    assert lp.shape == (6,) and torch.isfinite(lp).all()
    cond = models["cifar10_cond_replay"].model
    from ebmlib.core.classifiers import ClassifierRecipe
    cnn = R.train(ClassifierRecipe("cnn", "cifar10"), data=train, progress=False, device="cpu").model
    x, y = x_in[:4], test.labels[:4]
    ends = A.class_chains(cond, x, n_steps=1, bound=8 / 255)   # section 4.4: one chain per CIFAR-10 class
    assert ends.shape == (4, 10, 3, 32, 32) and (ends - x.unsqueeze(1)).abs().max() <= 8 / 255 + 1e-6
    stats = A.ChainStats()
    defended = A.defended_logits(cond, n_steps=1, bound=0.03, stats=stats)
    marginal = A.defended_logits(cond, n_steps=1, bound=0.03, chains="marginal")
    eps = {"linf": [0.0, 8 / 255], "l2": [0.0, 40 / 255]}
    res = RP.run_attacks(lambda v: A.ebm_logits(cond, v), defended, cnn, x, y, eps, 1, "DEF", ("linf", "l2"),
                         marginal, g, 2)
    assert len(res) == 2 * 7 and all(c.shape == (2, 4) for c in res.values())
    assert stats.values > 0 and 0 <= stats.fraction("clipped") <= 1
    assert all(0 <= v <= 1 for v in RP.masking(res, "l2", "DEF")["gap"])
