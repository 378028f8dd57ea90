"""JEM: a classifier's logits as a joint energy, trained by Trainer plus cross-entropy; calibration error."""
import pytest
import torch

from ebmlib.core.calibration import calibration
from ebmlib.core.classifiers import MNISTClassifier
from ebmlib.core.jem import JEMEnergy, JEMRecipe, JEMTrainer
from ebmlib.core.images import ImageData
from ebmlib.core.train import TrainConfig, Trainer


def test_the_joint_energy_gives_the_classifiers_softmax_and_the_marginal():
    net = JEMEnergy(MNISTClassifier(width=4), n_labels=10)
    x = torch.rand(5, 1, 28, 28)
    logits = net.logits(x)
    e_x = net(x)
    for y in range(10):
        e_xy = net(x, torch.full((5,), y))
        # p(y | x) = exp(-E(x, y)) / exp(-E(x)): one normaliser for the joint
        assert torch.allclose(torch.exp(e_x - e_xy), torch.softmax(logits, 1)[:, y], atol=1e-6)
    assert torch.allclose(e_x, -torch.logsumexp(logits, 1))


def _toy_digits(n=256, seed=0):
    """Two classes: a bright left half or a bright right half, uint8."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randint(0, 60, (n, 1, 28, 28), generator=g)
    x[y == 0, :, :, :14] += 180
    x[y == 1, :, :, 14:] += 180
    return ImageData(x.to(torch.uint8), y, ["left", "right"])


def test_one_step_is_algorithm_1_on_the_marginal_plus_the_cross_entropy():
    data = _toy_digits()
    x, labels = data.images.float() / 255, data.labels
    cfg = TrainConfig(batch_size=16, n_steps=2, lr=1e-3, seed=3)

    def after_one_step(trainer_cls, source, **kw):
        torch.manual_seed(0)
        model = JEMEnergy(MNISTClassifier(width=4), n_labels=10)
        trainer = trainer_cls(model, source, cfg, **kw)
        m = trainer.step()
        return torch.cat([p.detach().flatten() for p in model.parameters()]), m

    plain, m0 = after_one_step(Trainer, x)                              # unlabelled: the marginal EBM only
    no_ce, m1 = after_one_step(JEMTrainer, (x, labels), ce_weight=0.0)
    with_ce, m2 = after_one_step(JEMTrainer, (x, labels), ce_weight=1.0)
    assert torch.equal(plain, no_ce) and m0["e_pos"] == m1["e_pos"]     # same batch, same chains, same update
    assert not torch.allclose(plain, with_ce) and m2["ce"] > 0
    assert m2["loss"] == pytest.approx(m1["loss"] + m2["ce"], rel=1e-5)
    with pytest.raises(ValueError, match="labelled data"):
        JEMTrainer(JEMEnergy(MNISTClassifier(width=4), 10), x, cfg)
    with pytest.raises(ValueError, match=r"in \[0, 10\)"):
        JEMTrainer(JEMEnergy(MNISTClassifier(width=4), 10), (x, labels + 9), cfg)


def test_a_short_jem_run_learns_to_classify():
    data = _toy_digits()
    recipe = JEMRecipe("toy", n_iters=30, width=4, train=dict(batch_size=32, n_steps=5, lr=3e-3, seed=0,
                                                              step_size=1.0, noise_std=0.01, grad_clip=None))
    model = recipe.build()
    fit = recipe.fit(model, device=torch.device("cpu"), progress=False, run_dir=None, data=data)
    test = _toy_digits(200, seed=1)
    with torch.no_grad():
        acc = (model.logits(test.images.float() / 255).argmax(1) == test.labels).float().mean()
    assert acc > 0.9 and len(fit.history) == 30 and fit.samples.shape[1:] == (1, 28, 28)
    assert all("ce" in row for row in fit.history)


def test_calibration_error_on_known_cases():
    n = 20000
    g = torch.Generator().manual_seed(0)
    conf = 0.5 + 0.5 * torch.rand(n, generator=g)
    probs = torch.stack([conf, 1 - conf], 1)
    calibrated = (torch.rand(n, generator=g) >= conf).long()   # class 0 with probability conf: calibrated
    assert calibration(probs, calibrated).ece < 0.02
    wrong_half = torch.arange(n) % 2                           # 50% right whatever the confidence
    c = calibration(probs, wrong_half, n_bins=10)
    assert c.ece == pytest.approx(float(conf.mean()) - 0.5, abs=0.01)   # overconfident by mean conf - 0.5
    assert int(c.count.sum()) == n and torch.isnan(c.accuracy[:5]).all()   # no confidence below 0.5
    with pytest.raises(ValueError, match="softmax"):
        calibration(torch.ones(3, 2), torch.zeros(3, dtype=torch.long))
