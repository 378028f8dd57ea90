"""Algorithm 1: the loss's sign, A.7's gradient clipping, exact resume, refused checkpoints, the divergence guard."""
import math

import pytest
import torch

from ebmlib.core import energies
from ebmlib.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ebmlib.core.nets import MLPEnergy
from ebmlib.core.train import TrainConfig, Trainer, TrainingDiverged, clip_grad_by_adam_moments, ebm_loss, frozen

TOY = dict(batch_size=64, n_steps=10, step_size=0.05, noise_std=0.3, grad_clip=None, data_range=(-4.0, 4.0),
           lr=1e-3, alpha=0.1, buffer_capacity=512, checkpoint_every=2)


def make_trainer(seed=0, ckpt_dir=None, spectral_norm=True, **overrides):
    torch.manual_seed(seed)
    model = MLPEnergy(hidden=32, depth=2, spectral_norm=spectral_norm)
    return Trainer(model, energies.eight_gaussians().sample, TrainConfig(**{**TOY, **overrides}), ckpt_dir=ckpt_dir)


def test_loss_is_algorithm_1():
    e_pos, e_neg = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 3.0])
    expected = ((0.3 * (1 + 0.25) + 1 - 0.5) + (0.3 * (4 + 9) - 2 - 3)) / 2
    assert ebm_loss(e_pos, e_neg, 0.3).item() == pytest.approx(expected)


def test_one_step_lowers_data_energy_and_raises_negative_energy():
    """The gradient of Algorithm 1's loss pushes E(x+) down and E(x-) up (eq. (8)); a wrong sign fails this.

    The energy here is linear in separate parameters for the left and right half-planes, so the two effects
    do not mix: data on the left must go down, negatives on the right must go up.
    """
    weights = torch.nn.Parameter(torch.tensor([0.3, -0.2]))

    def energy(x):
        return torch.stack([torch.relu(-x[:, 0]), torch.relu(x[:, 0])], -1) @ weights

    gen = torch.Generator().manual_seed(1)
    x_pos = torch.randn(256, 2, generator=gen) * 0.3 + torch.tensor([-2.0, 0.0])
    x_neg = torch.randn(256, 2, generator=gen) * 0.3 + torch.tensor([2.0, 0.0])
    with torch.no_grad():
        before = energy(x_pos).mean().item(), energy(x_neg).mean().item()
    ebm_loss(energy(x_pos), energy(x_neg), alpha=0.0).backward()
    with torch.no_grad():
        weights -= 0.1 * weights.grad
        after = energy(x_pos).mean().item(), energy(x_neg).mean().item()
    assert after[0] < before[0], "E(data) must go down"
    assert after[1] > before[1], "E(negatives) must go up"


def test_one_step_on_a_network_widens_the_gap():
    torch.manual_seed(0)
    model = MLPEnergy(hidden=32, depth=2)
    x_pos = energies.eight_gaussians().sample(256, torch.Generator().manual_seed(1))
    x_neg = 8 * torch.rand(256, 2, generator=torch.Generator().manual_seed(2)) - 4
    gap = lambda: (model(x_neg).mean() - model(x_pos).mean()).item()  # noqa: E731
    with torch.no_grad():
        before = gap()
    ebm_loss(model(x_pos), model(x_neg), alpha=0.0).backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 1e-3 * p.grad
        assert gap() > before


def test_training_separates_data_from_uniform_noise():
    trainer = make_trainer(spectral_norm=False, n_steps=5)
    trainer.train(40, progress=False)
    gen = torch.Generator().manual_seed(5)
    x_data = energies.eight_gaussians().sample(1000, gen)
    x_unif = 8 * torch.rand(1000, 2, generator=gen) - 4
    with torch.no_grad():
        gap = trainer.model(x_unif).mean() - trainer.model(x_data).mean()
    assert gap > 0.1, f"after training, data must sit lower in energy than uniform noise; gap {gap:.3f}"


def test_adam_moment_clip():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.Adam([p], lr=1e-3, betas=(0.0, 0.999))
    p.grad = torch.tensor([5.0, -5.0, 0.05])
    clip_grad_by_adam_moments(opt)  # no second moment yet: the bound is the floor, 0.1
    assert p.grad.tolist() == pytest.approx([0.1, -0.1, 0.05])
    opt.step()
    v_hat = opt.state[p]["exp_avg_sq"] / (1 - 0.999)
    p.grad = torch.tensor([100.0, -100.0, 0.0])
    clip_grad_by_adam_moments(opt)
    bound = 3 * v_hat.sqrt() + 0.1
    assert torch.allclose(p.grad.abs()[:2], bound[:2])


def test_frozen_switches_off_parameter_gradients_and_restores_them():
    model = MLPEnergy(hidden=8, depth=1, spectral_norm=True)
    model.head.weight.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    with frozen(model):
        assert not any(p.requires_grad for p in model.parameters())
        x = torch.randn(4, 2, requires_grad=True)
        (g,) = torch.autograd.grad(model(x).sum(), x)
        assert g.shape == x.shape
    assert [p.requires_grad for p in model.parameters()] == flags


@pytest.mark.parametrize("stop", [4, 5])
@pytest.mark.parametrize("init", ["replay", "noise", "persistent"])
def test_resume_is_bit_exact(tmp_path, init, stop):
    """Train 6 iterations straight vs ``stop``, rebuild from scratch, resume, finish: identical parameters.

    checkpoint_every=2. Stopped at 5, last.pt holds iteration 4 (confirmed by iteration 5's energies). Stopped at 4,
    the snapshot of iteration 4 waits unconfirmed in pending.pt: resume loads it and the first guarded step
    re-confirms it."""
    straight = make_trainer(init=init)
    straight.train(6, progress=False)

    first = make_trainer(init=init, ckpt_dir=tmp_path)
    first.train(stop, progress=False)
    assert load_checkpoint(tmp_path / "last.pt")["iteration"] == (4 if stop == 5 else 2)
    assert (tmp_path / "pending.pt").is_file() == (stop == 4)
    first.close()
    resumed = make_trainer(seed=99, init=init, ckpt_dir=tmp_path).resume()
    assert resumed.iteration == 4 and len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 4
    resumed.train(2, progress=False)

    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs after resume"
    assert straight.history == resumed.history
    assert torch.equal(straight.buffer.storage, resumed.buffer.storage)
    log = (tmp_path / "metrics.jsonl").read_text().strip().splitlines()
    assert len(log) == 6


def test_resume_refuses_another_config(tmp_path):
    make_trainer(ckpt_dir=tmp_path).train(3, progress=False)   # the dropped trainer releases the folder
    with pytest.raises(ValueError, match="another config.*alpha"):
        make_trainer(ckpt_dir=tmp_path, alpha=0.5).resume()


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupted_checkpoint_is_refused(tmp_path, damage):
    """Half a file fails to unzip; one flipped bit inside a weight tensor loads fine with torch.load (it does not
    check the zip CRCs) and would give wrong weights: the checksum refuses it."""
    trainer = make_trainer(ckpt_dir=tmp_path)
    trainer.train(3, progress=False)
    trainer.close()
    path = tmp_path / "last.pt"
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:
        weight = load_checkpoint(path)["model"]["head.weight"]
        data[bytes(data).index(weight.numpy().tobytes()) + 5] ^= 0x10
        path.write_bytes(bytes(data))
        assert not torch.equal(torch.load(path, weights_only=True)["model"]["head.weight"], weight)
    with pytest.raises(CheckpointError, match="corrupted"):
        make_trainer(ckpt_dir=tmp_path).resume()


class Payload:
    def __reduce__(self):
        return (print, ("this code must never run",))


def test_pickle_bearing_checkpoint_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "ebmlib-checkpoint-v1", "model": Payload()}, path)
    with pytest.raises(CheckpointError, match="objects other than tensors"):
        load_checkpoint(path)
    assert "must never run" not in capsys.readouterr().out


def test_foreign_or_missing_checkpoint_is_refused(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an ebmlib-checkpoint-v2"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nothing.pt")


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = save_checkpoint({"x": torch.ones(2)}, tmp_path / "c.pt")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        save_checkpoint({"x": torch.zeros(2)}, path)
    assert torch.equal(load_checkpoint(path)["x"], torch.ones(2)), "a failed write must leave the old file intact"
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"], "no temporary file may be left behind"


def test_divergence_guard_rolls_back_and_lowers_lr():
    """A learning rate of 3 blows the energies up; the guard reverts to the last verified state and halves lr."""
    trainer = make_trainer(spectral_norm=False, max_abs_energy=50.0, max_rollbacks=20, checkpoint_every=1)
    trainer.train(2, progress=False)
    trainer.config.lr = 3.0
    for g in trainer.optimizer.param_groups:
        g["lr"] = 3.0
    trainer.train(4, progress=False)
    events = [h for h in trainer.history if h.get("event") == "rollback"]
    assert events, "the run diverged on purpose; the guard must have rolled back"
    assert events[0]["to_iteration"] == 2, "the first rollback returns to the last state whose energies were checked"
    assert events[0]["max_abs_energy"] > 50.0 or not math.isfinite(events[0]["loss"])
    assert trainer.lr_scale == pytest.approx(0.5 ** len(events))
    assert trainer.iteration == 6
    assert all(math.isfinite(h["loss"]) and h["max_abs_energy"] < 50 for h in trainer.history if "event" not in h)


def test_divergence_guard_gives_up_and_keeps_count():
    """Every retry goes back to the same snapshot; the rollbacks must still be counted, logged and compound, and
    the trainer that gives up holds the last good state (here the initial one), not the diverged parameters."""
    trainer = make_trainer(spectral_norm=False, max_abs_energy=1e-6, max_rollbacks=2)
    initial = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(TrainingDiverged, match="3 times in a row.*holds the state of iteration 0 again"):
        trainer.train(5, progress=False)
    events = [h for h in trainer.history if h.get("event") == "rollback"]
    assert trainer.rollbacks == 2 and len(events) == 2
    assert trainer.lr_scale == pytest.approx(0.25)
    assert [e["lr"] for e in events] == pytest.approx([TOY["lr"] * 0.5, TOY["lr"] * 0.25])
    assert trainer.history[-1]["event"] == "gave_up" and trainer.iteration == 0
    assert all(torch.equal(initial[k], v) for k, v in trainer.model.state_dict().items())


BAD_VALUES = {
    "batch_size": [0, 2.5, True], "n_steps": [-1, 1.0], "step_size": [0.0, -1.0, math.inf, math.nan, "0.1"],
    "noise_std": [-0.1, math.nan], "grad_clip": [0.0, -1.0, math.inf], "data_range": [(1.0, 0.0), (0.0,), (0.0, math.inf)],
    "clamp_chains": [1, "yes"], "init": ["pcd", None], "buffer_capacity": [0, 10.0], "replay_fraction": [1.5, -0.1],
    "alpha": [-1.0, math.nan], "lr": [0.0, math.inf, None], "lr_decay_start": [-1, 2.5], "lr_decay_end": [0, "9"],
    "lr_decay_to": [0.0, 1.5, math.nan], "betas": [(0.9,), (1.0, 0.999), (0.0, -0.1)],
    "adam_clip_std": [0.0, math.nan], "adam_clip_floor": [-0.1], "checkpoint_every": [0, 1.5],
    "max_abs_energy": [0.0, -1.0, math.nan], "max_rollbacks": [-1, 2.0], "rollback_lr_factor": [0.0, 1.5],
    "seed": [1.5, 2 ** 64, "0"], "autocast_dtype": ["int8", torch.bfloat16], "channels_last": [0, None],
}


def test_every_config_field_has_bad_values_here():
    assert set(BAD_VALUES) == {f.name for f in __import__("dataclasses").fields(TrainConfig)}


@pytest.mark.parametrize("key,value", [(k, v) for k, vs in BAD_VALUES.items() for v in vs])
def test_bad_config_is_named(key, value):
    """Each field is checked; the message names the field, the value and the range expected."""
    with pytest.raises(ValueError, match=rf"invalid TrainConfig: {key}=.*\(expected "):
        TrainConfig(**{key: value})


def test_good_edge_values_are_accepted():
    TrainConfig(n_steps=0, noise_std=0.0, grad_clip=None, replay_fraction=0.0, alpha=0.0, adam_clip_std=None,
                adam_clip_floor=0.0, max_abs_energy=1e30, max_rollbacks=0, rollback_lr_factor=1.0, seed=-5,
                data_range=[-1, 1], betas=[0, 0.5], autocast_dtype="bfloat16")


def test_bad_data_is_refused():
    model = MLPEnergy()
    with pytest.raises(TypeError, match="data must be"):
        Trainer(model, [1, 2, 3])
    with pytest.raises(ValueError, match="differ in length"):
        Trainer(model, (torch.zeros(5, 2), torch.zeros(4, dtype=torch.long)))
    with pytest.raises(ValueError, match="n_iters"):
        Trainer(model, torch.zeros(5, 2), TrainConfig(**TOY)).train(-1)


def test_conditional_training_runs_on_labelled_tensors():
    torch.manual_seed(0)
    x = torch.randn(200, 2)
    y = (x[:, 0] > 0).long()
    trainer = Trainer(MLPEnergy(hidden=16, depth=2, n_classes=2), (x, y), TrainConfig(**TOY))
    history = trainer.train(3, progress=False)
    assert len(history) == 3 and all(math.isfinite(h["loss"]) for h in history)


def test_lr_decay_factor_and_the_rate_adam_steps_with(tmp_path):
    """The late decay: 1 until lr_decay_start, linear to lr_decay_to at lr_decay_end, constant after; the
    optimizer steps with it (and resumes with it: the factor is a function of the iteration)."""
    from ebmlib.core.train import lr_factor
    c = TrainConfig(**{**TOY, "lr_decay_start": 2, "lr_decay_end": 6, "lr_decay_to": 0.2})
    assert [lr_factor(c, i) for i in (1, 2, 4, 6, 9)] == pytest.approx([1.0, 1.0, 0.6, 0.2, 0.2])
    assert lr_factor(TrainConfig(**TOY), 10 ** 6) == 1.0
    t = make_trainer(lr_decay_start=2, lr_decay_end=6, lr_decay_to=0.2)
    rates = []
    for _ in range(7):
        t.train(1, progress=False)
        rates.append(t.optimizer.param_groups[0]["lr"])
    assert rates == pytest.approx([TOY["lr"] * f for f in (1.0, 1.0, 0.8, 0.6, 0.4, 0.2, 0.2)])
    straight = make_trainer(lr_decay_start=2, lr_decay_end=6)
    straight.train(6, progress=False)
    first = make_trainer(lr_decay_start=2, lr_decay_end=6, ckpt_dir=tmp_path)
    first.train(5, progress=False)
    first.close()
    resumed = make_trainer(seed=99, lr_decay_start=2, lr_decay_end=6, ckpt_dir=tmp_path).resume()
    resumed.train(2, progress=False)
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("bad, match", [(dict(lr_decay_start=5), "both None"),
                                        (dict(lr_decay_start=5, lr_decay_end=5), "lr_decay_end=5"),
                                        (dict(lr_decay_start=1, lr_decay_end=3, lr_decay_to=0.0), "lr_decay_to")])
def test_lr_decay_refuses_bad_settings(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{**TOY, **bad})
