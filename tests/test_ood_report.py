"""Tests for ebmlib.chapters.ood_robustness.report: the chapter page's experiment loops, tables and sentences."""
import pytest
import torch

from ebmlib.chapters.ood_robustness import adversarial as A
from ebmlib.chapters.ood_robustness import report as R
from ebmlib.core.images import ImageData
from ebmlib.core.nets import MNISTConvEnergy


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def image_data(n, seed):
    g = gen(seed)
    return ImageData(torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g),
                     torch.randint(0, 10, (n,), generator=g), [str(k) for k in range(10)])


class Held:
    def __init__(self, model):
        self.model = model.eval()


# ------------------------------------------------------------------------------------------ OOD section
@pytest.fixture
def ood_models():
    torch.manual_seed(0)
    return {"mnist_uncond_replay": Held(MNISTConvEnergy(width=2)),
            "mnist_cond_replay": Held(MNISTConvEnergy(width=2, n_classes=10))}


def test_ood_experiment_scores_every_set_with_every_scorer(ood_models):
    test, train, other = image_data(12, 1), image_data(40, 2), image_data(12, 3)
    loads = []

    def load(name, split):
        loads.append((name, split))
        return other

    res = R.ood_experiment("mnist", test, train, ood_models, 8, 3, 30, gen(0), load=load)
    assert loads == [("fashion", "test")]
    assert res.x_in.shape == (8, 1, 28, 28) and list(res.sets)[0] == "fashion"
    assert list(res.tables) == ["mnist EBM (unconditional, replay)", "mnist EBM (conditional, free energy)",
                                "PCA Gaussian (3 components)"]
    for table in res.tables.values():
        assert set(table) == set(res.sets) | {"average"} and all(0 <= v <= 1 for v in table.values())
    header, rows = R.auroc_rows(res)
    assert header == ["scorer"] + list(res.sets) + ["average"] and len(rows) == 3 and len(rows[0]) == len(header)
    ex = R.example_rows("mnist", res, k=2)
    assert list(ex)[0] == "MNIST (in)" and all(v.shape[0] == 2 for v in ex.values())
    sentence = R.ood_sentence("mnist", res)
    assert f"{res.tables['mnist EBM (unconditional, replay)']['average']:.3f}" in sentence and "Fashion" in sentence
    with pytest.raises(ValueError, match="fashion_uncond_replay"):
        R.ood_experiment("fashion", test, train, ood_models, 8, 3, 30, gen(0), load=load)


def test_relative_loglik_centres_the_first_group(ood_models):
    m = ood_models["mnist_uncond_replay"].model
    groups = {"train": torch.rand(6, 1, 28, 28, generator=gen(1)), "noise": torch.rand(5, 1, 28, 28, generator=gen(2))}
    rel = R.relative_loglik(m, groups)
    assert abs(float(rel["train"].mean())) < 1e-6 and rel["noise"].shape == (5,)
    with torch.no_grad():
        want = -m(groups["noise"]).double() + m(groups["train"]).double().mean()
    torch.testing.assert_close(rel["noise"], want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="empty"):
        R.relative_loglik(m, {})


# ------------------------------------------------------------------------------------------ attacks
class Linear:
    def __init__(self, seed, classes=2, dim=16):
        self.W = torch.randn(classes, dim, generator=gen(seed))

    def __call__(self, x):
        return x.flatten(1) @ self.W.T


@pytest.fixture
def attack_setup():
    x = 0.3 + 0.4 * torch.rand(6, 1, 4, 4, generator=gen(3))
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    return x, y, Linear(1), Linear(2), Linear(3)


def test_run_attacks_plan_order_and_transfer_sources(attack_setup):
    x, y, ebm, defended, cnn = attack_setup
    eps = {"linf": [0.0, 0.1, 0.3], "l2": [0.0, 0.5]}
    res = R.run_attacks(ebm, defended, cnn, x, y, eps, 4, "DEF", through_norms=("linf",), marginal=ebm,
                        generator=gen(7))
    assert list(res) == [
        ("linf", R.ON_EBM, R.EBM), ("linf", R.ON_EBM, "DEF"), ("linf", R.ON_EBM, R.MARGINAL),
        ("linf", R.THROUGH, "DEF"), ("linf", R.ON_CNN, R.CNN), ("linf", R.ON_CNN, "DEF"), ("linf", R.WORST, "DEF"),
        ("l2", R.ON_EBM, R.EBM), ("l2", R.ON_EBM, "DEF"), ("l2", R.ON_EBM, R.MARGINAL),
        ("l2", R.ON_CNN, R.CNN), ("l2", R.ON_CNN, "DEF"), ("l2", R.WORST, "DEF")]
    # replay the draws: the defended model's "on the EBM" row is its accuracy on examples crafted on the EBM
    g = gen(7)
    on_ebm = [A.pgd(ebm, x, y, e, "linf", steps=4, generator=g) for e in eps["linf"]]
    through = [A.pgd(defended, x, y, e, "linf", steps=4, generator=g) for e in eps["linf"]]
    on_cnn = [A.pgd(cnn, x, y, e, "linf", steps=4, generator=g) for e in eps["linf"]]
    for rows, key in ((on_ebm, R.ON_EBM), (through, R.THROUGH), (on_cnn, R.ON_CNN)):
        want = torch.stack([defended(xa).argmax(1) == y for xa in rows])
        assert torch.equal(res[("linf", key, "DEF")], want)
    assert torch.equal(res[("linf", R.ON_EBM, R.EBM)], torch.stack([ebm(xa).argmax(1) == y for xa in on_ebm]))
    worst = res[("linf", R.ON_EBM, "DEF")] & res[("linf", R.THROUGH, "DEF")] & res[("linf", R.ON_CNN, "DEF")]
    assert torch.equal(res[("linf", R.WORST, "DEF")], worst)
    rows = R.robustness_rows(res, "l2")
    assert len(rows) == 6 and rows[0][:2] == [R.ON_EBM, R.EBM] and len(rows[0]) == 2 + 2
    metrics = R.robustness_metrics(res, eps)
    assert metrics[f"l2 | {R.WORST} | DEF"]["eps"] == [0.0, 0.5]
    with pytest.raises(ValueError, match="'l1'"):
        R.run_attacks(ebm, defended, cnn, x, y, {"l1": [0.1]}, 2, "DEF")


def _results(through, worst, undefended, n=10):
    """Fake results with the given accuracies (as counts of n images) per eps."""
    def correct(counts):
        return torch.stack([torch.arange(n) < k for k in counts])
    return {("linf", R.ON_EBM, R.EBM): correct(undefended), ("linf", R.ON_EBM, "DEF"): correct(worst),
            ("linf", R.THROUGH, "DEF"): correct(through), ("linf", R.WORST, "DEF"): correct(worst)}


def test_masking_measures_the_gap_and_the_sentence_says_it():
    res = _results(through=[9, 8, 5], worst=[9, 5, 4], undefended=[9, 3, 1])
    m = R.masking(res, "linf", "DEF")
    assert [round(v, 6) for v in m["gap"]] == [0.0, 0.3, 0.1] and m["undefended"] == [0.9, 0.3, 0.1]
    text = R.masking_sentence(m, [0.0, 0.1, 0.2], 10)
    assert "80% / 50%" in text and "50% / 40%" in text and "30% / 10%" in text
    assert "overstates its robustness by up to 30 points (at eps 0.1" in text and "+20 / +30" in text
    none = R.masking(_results(through=[9, 5, 4], worst=[9, 5, 4], undefended=[9, 5, 4]), "linf", "DEF")
    assert "no sign of gradient masking" in R.masking_sentence(none, [0.0, 0.1, 0.2], 10)
    with pytest.raises(ValueError, match="'l2'"):
        R.masking(res, "l2", "DEF")
    with pytest.raises(ValueError, match="eps > 0"):
        R.masking_sentence(m, [0.0, 0.0, 0.0], 10)


def test_chain_sentence_reports_whether_the_clip_binds():
    never = A.ChainStats(values=1000, clipped=0, at_bound=250, clamped=100, max_abs_grad=0.004, steps=10).as_dict()
    text = R.chain_sentence(never, 0.01, 0.03)
    assert "0.00% of gradient values" in text and "never binds" in text and "25.0%" in text and "10.0%" in text
    some = A.ChainStats(values=1000, clipped=40, max_abs_grad=0.03, steps=10).as_dict()
    text = R.chain_sentence(some, 0.01, 0.03)
    assert "4.00% of gradient values" in text and "never binds" not in text
    with pytest.raises(ValueError, match="no chain step"):
        R.chain_sentence(A.ChainStats().as_dict(), 0.01, 0.03)


def test_clean_sentence_and_names(attack_setup):
    x, y, ebm, defended, cnn = attack_setup
    res = R.run_attacks(ebm, defended, cnn, x, y, {"linf": [0.0, 0.1]}, 2, "DEF", through_norms=(),
                        generator=gen(0))
    text = R.clean_sentence(res, {"linf": [0.0, 0.1]}, "mnist")
    assert text.startswith("Clean accuracy on 6 MNIST test images: EBM, no defence")
    assert f"DEF {float((defended(x).argmax(1) == y).float().mean()):.2f}" in text
    with pytest.raises(ValueError, match="must be 0"):
        R.clean_sentence(res, {"linf": [0.1, 0.2]}, "mnist")
    assert R.norm_name("linf") == "L-inf" and R.defended_name(10, 0.03) == (
        "EBM + defence (10 Langevin steps per class, bound 0.03)")
    with pytest.raises(ValueError, match="'l3'"):
        R.norm_name("l3")


def test_plot_robustness_one_line_per_series_and_one_colour_per_series(attack_setup):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y, ebm, defended, cnn = attack_setup
    eps = {"linf": [0.0, 0.1], "l2": [0.0, 0.5]}
    res = R.run_attacks(ebm, defended, cnn, x, y, eps, 2, R.defended_name(10, 0.03), through_norms=("linf",),
                        generator=gen(0))
    fig = R.plot_robustness(res, eps, "mnist")
    lines = [{ln.get_label(): ln.get_color() for ln in ax.get_lines()} for ax in fig.axes]
    assert [len(d) for d in lines] == [6, 5]                 # L2 has no through-defence line
    assert all(lines[0][k] == c for k, c in lines[1].items())  # the same series, the same colour
    assert "EBM + defence: PGD through the defence" in lines[0]
    plt.close(fig)
