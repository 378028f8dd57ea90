"""The run folder and what it may be trusted for: last.pt only after the guard, the log equal to the history, one
writer at a time, no silent reuse of another run, interrupted steps undone, v2 checkpoints with checksums and the
upgrade of v1 files; and the data checks made once when a Trainer is built."""
import json
import math
import os
import subprocess
import sys
import warnings

import pytest
import torch

from ebmlib.core import checkpoint as C
from ebmlib.core import energies
from ebmlib.core.images import dequantize
from ebmlib.core.nets import MLPEnergy, MNISTConvEnergy
from ebmlib.core.samplers import NonFiniteEnergy
from ebmlib.core.train import RunExists, TrainConfig, Trainer, TrainingDiverged

TOY = dict(batch_size=32, n_steps=3, step_size=0.05, noise_std=0.3, grad_clip=None, data_range=(-4.0, 4.0),
           lr=1e-3, alpha=0.1, buffer_capacity=128, checkpoint_every=2)


class Forced(Trainer):
    """Energies forced past the guard at the given (iteration, rollbacks so far)."""

    forced = set()

    def step(self):
        m = super().step()
        if (m["iteration"], self.rollbacks) in self.forced:
            m["max_abs_energy"] = math.inf
        return m


def make(ckpt_dir=None, cls=Trainer, forced=(), **kw):
    torch.manual_seed(0)
    t = cls(MLPEnergy(hidden=16, depth=2), energies.eight_gaussians().sample, TrainConfig(**{**TOY, **kw}),
            ckpt_dir=ckpt_dir)
    t.forced = set(forced)
    return t


def log_of(folder, name="metrics.jsonl"):
    return [json.loads(line) for line in (folder / name).read_text().splitlines()]


def same_params(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))


# -- last.pt and pending.pt ------------------------------------------------------------------------------------------
def test_last_pt_only_holds_states_that_passed_the_guard(tmp_path):
    t = make(tmp_path)
    t.train(4, progress=False)
    assert C.load_checkpoint(tmp_path / "last.pt")["iteration"] == 2           # confirmed by iteration 3
    assert C.load_checkpoint(tmp_path / "pending.pt")["iteration"] == 4        # not yet confirmed
    t.train(1, progress=False)
    assert C.load_checkpoint(tmp_path / "last.pt")["iteration"] == 4 and not (tmp_path / "pending.pt").exists()
    assert log_of(tmp_path) == t.history


def test_a_failed_confirmation_discards_the_pending_snapshot_and_rewrites_last_pt_and_the_log(tmp_path):
    t = make(tmp_path, cls=Forced, forced={(5, 0)})   # iteration 5 would have confirmed the snapshot of 4
    t.train(6, progress=False)
    event = next(h for h in t.history if h.get("event"))
    assert event["to_iteration"] == 2 and event["iteration"] == 5
    assert [h["iteration"] for h in t.undone] == [3, 4]               # undone, out of the history, kept aside
    assert log_of(tmp_path) == t.history and log_of(tmp_path, "undone.jsonl") == t.undone
    last = C.load_checkpoint(tmp_path / "last.pt")
    assert last["iteration"] == 6 or last["iteration"] == 4           # a snapshot of the retried run, confirmed
    assert any(h.get("event") == "rollback" for h in last["history"])


def test_resume_reconfirms_a_pending_snapshot_and_rolls_back_if_it_fails(tmp_path):
    make(tmp_path).train(4, progress=False)                             # last.pt: 2, pending.pt: 4
    t = make(tmp_path, cls=Forced, forced={(5, 0)}).resume()
    assert t.iteration == 4
    t.train(1, progress=False)
    event = t.history[-1] if t.history[-1].get("event") else next(h for h in t.history if h.get("event"))
    assert event["to_iteration"] == 2, "the pending snapshot failed its re-confirmation: back to last.pt"
    assert not (tmp_path / "pending.pt").exists() and log_of(tmp_path) == t.history


def test_rollback_targets_are_not_changed_by_the_steps_after_a_rollback(tmp_path):
    """Two rollbacks in a row to the same snapshot must restore the same optimizer state (Adam updates the
    tensors it was loaded with in place, which used to move the rollback target)."""
    t = make(cls=Forced, forced={(4, 0), (4, 1)}, checkpoint_every=2)   # both back to the snapshot of 2
    states = []
    real = t._revert

    def spy(*args):
        real(*args)
        states.append({k: v.clone() for k, v in t.optimizer.state_dict()["state"][0].items()})
    t._revert = spy
    t.train(5, progress=False)
    assert len(states) == 2
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_giving_up_leaves_the_last_good_state_in_memory_and_on_disk(tmp_path):
    t = make(tmp_path, max_abs_energy=1e-6, max_rollbacks=1)
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    with pytest.raises(TrainingDiverged, match="holds the state of iteration 0 again"):
        t.train(3, progress=False)
    assert all(torch.equal(before[k], v) for k, v in t.model.state_dict().items())
    assert [h["event"] for h in t.history] == ["rollback", "gave_up"] and log_of(tmp_path) == t.history
    assert C.load_checkpoint(tmp_path / "last.pt")["history"] == t.history


def test_an_interrupted_step_is_undone_and_training_continues_exactly(tmp_path):
    straight = make()
    straight.train(7, progress=False)
    t = make(tmp_path)
    real, calls = t.sampler.run, [0]

    def flaky(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 6:
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    t.sampler.run = flaky
    with pytest.raises(KeyboardInterrupt):
        t.train(7, progress=False)
    assert t.iteration == 4 and len(t.history) == 4 and log_of(tmp_path) == t.history   # the pending snapshot
    t.sampler.run = real
    t.train(3, progress=False)
    assert same_params(t, straight) and t.history == straight.history


def test_a_non_finite_energy_in_the_chains_is_a_rollback_not_a_crash(tmp_path):
    t = make(tmp_path)
    real, calls = t.sampler.run, [0]

    def nan_once(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 4:
            raise NonFiniteEnergy("PaperLangevin: the energy is not finite at step 2 of 3", 2)
        return real(*args, **kwargs)
    t.sampler.run = nan_once
    t.train(5, progress=False)
    event = next(h for h in t.history if h.get("event"))
    assert event["iteration"] == 4 and "step 2 of 3" in event["error"] and t.iteration == 5


# -- refusing a run folder ---------------------------------------------------------------------------------------
def test_a_fresh_trainer_refuses_a_folder_holding_a_run(tmp_path):
    make(tmp_path).train(3, progress=False)
    with pytest.raises(RunExists, match=rf"{tmp_path} already holds a training run \(last.pt at iteration 2\).*"
                                        r"resume\(\).*overwrite=True"):
        make(tmp_path).train(1, progress=False)
    assert make(tmp_path).resume().iteration == 2
    torch.manual_seed(0)
    fresh = Trainer(MLPEnergy(hidden=16, depth=2), energies.eight_gaussians().sample, TrainConfig(**TOY),
                    ckpt_dir=tmp_path, overwrite=True)
    fresh.train(1, progress=False)
    assert log_of(tmp_path) == fresh.history and len(fresh.history) == 1      # the old log is gone
    assert C.load_checkpoint(tmp_path / "last.pt")["iteration"] == 0


def test_one_trainer_per_folder_in_a_process(tmp_path):
    first = make(tmp_path)
    first.train(1, progress=False)
    with pytest.raises(C.FolderLocked, match=rf"{tmp_path} is already being written by another Trainer"):
        make(tmp_path).resume()
    first.close()
    second = make(tmp_path).resume()
    del second                                   # a dropped trainer releases the folder
    make(tmp_path).resume()


def _hold_lock(folder):
    code = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); os.ftruncate(fd, 0); os.write(fd, b'%d\\n' % os.getpid()); "
            "print('held', flush=True); time.sleep(60)")
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder / ".lock")], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.skipif(C.fcntl is None, reason="flock")
def test_another_process_is_refused_and_a_dead_one_is_taken_over(tmp_path):
    proc = _hold_lock(tmp_path)
    try:
        with pytest.raises(C.FolderLocked, match=rf"{tmp_path} is in use by process {proc.pid}.*taken over"):
            make(tmp_path).train(1, progress=False)
    finally:
        proc.kill()
        proc.wait()
    t = make(tmp_path)                              # its pid is still in .lock, but the process is gone
    t.train(1, progress=False)
    assert (tmp_path / ".lock").read_text().split()[0] == str(os.getpid())


# -- data checks at construction -----------------------------------------------------------------------------------
def test_construction_draws_from_no_generator():
    calls = []

    def data(n, generator):
        calls.append(n)
        torch.rand(3)                              # a careless source that also uses the global RNG
        return energies.eight_gaussians().sample(n, generator)

    def transform(x, generator):
        return x + 0 * torch.rand(x.shape)
    model = MLPEnergy(hidden=8, depth=1)
    torch.manual_seed(1)
    before = torch.get_rng_state()
    t = Trainer(model, data, TrainConfig(**TOY), transform=transform)
    assert torch.equal(torch.get_rng_state(), before) and calls
    assert torch.equal(t.generator.get_state(), torch.Generator().manual_seed(TOY.get("seed", 0)).get_state())


@pytest.mark.parametrize("case,error,message", [
    ("nan", ValueError, r"data holds 1 NaN or infinite values"),
    ("labels_range", ValueError, r"labels must lie in \[0, 2\) \(the model's n_classes\), got values in \[0, 5\] "
                                 r"\(first bad one at index 3: 5\)"),
    ("float_labels", ValueError, r"labels must be an integer tensor"),
    ("no_labels", ValueError, r"conditional on n_classes=2 classes but data has no labels"),
    ("unconditional_labels", ValueError, r"unconditional \(n_classes=None\) but data comes with labels"),
    ("range", ValueError, r"\d+ of the first 32 training samples \(data\) lie outside data_range=\(-1.0, 1.0\).*"
                          r"dequantize"),
    ("model64", TypeError, r"parameters are torch.float64.*model.float\(\)"),
    ("count", ValueError, r"data\(32, generator\) must return 32 points"),
])
def test_bad_data_is_refused_at_construction(case, error, message):
    x = torch.rand(100, 2, generator=torch.Generator().manual_seed(0)) - 0.5
    model = MLPEnergy(hidden=8, depth=1, n_classes=2 if case in ("labels_range", "float_labels", "no_labels") else None)
    cfg = dict(TOY, data_range=(-1.0, 1.0))
    data = x
    if case == "nan":
        x[7, 1] = math.nan
    elif case == "labels_range":
        y = torch.zeros(100, dtype=torch.long)
        y[3] = 5
        data = (x, y)
    elif case == "float_labels":
        data = (x, torch.zeros(100))
    elif case == "unconditional_labels":
        data = (x, torch.zeros(100, dtype=torch.long))
    elif case == "range":
        data = x * 10 + 5
    elif case == "model64":
        model = model.double()
    elif case == "count":
        data = lambda n, generator: torch.zeros(n - 1, 2)  # noqa: E731
    with pytest.raises(error, match=message):
        Trainer(model, data, TrainConfig(**cfg))


def test_uint8_images_need_their_transform_and_float64_data_is_cast_with_a_note():
    images = torch.randint(0, 256, (20, 1, 28, 28), dtype=torch.uint8)
    cfg = TrainConfig(batch_size=4, n_steps=1)
    with pytest.raises(ValueError, match="uint8 images: transform=dequantize"):
        Trainer(MNISTConvEnergy(width=2), images, cfg)
    Trainer(MNISTConvEnergy(width=2), images, cfg, transform=dequantize)   # in [0, 1) after dequantisation
    with pytest.warns(UserWarning, match="torch.float64; each batch is cast to float32"):
        t = Trainer(MLPEnergy(hidden=8, depth=1), torch.rand(50, 2, dtype=torch.float64) - 0.5, TrainConfig(**TOY))
    assert t.notes and "float64" in t.notes[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")             # float32 data: no note
        Trainer(MLPEnergy(hidden=8, depth=1), torch.rand(50, 2) - 0.5, TrainConfig(**TOY))


# -- checkpoints: v2, checksum, upgrade ------------------------------------------------------------------------------
def _v1(path, state):
    torch.save({"format": C.FORMAT_V1, **state}, path)


def test_v1_files_are_refused_with_the_upgrade_and_the_upgrade_is_exact_and_idempotent(tmp_path):
    state = {"model": {"w": torch.randn(3, 4), "b": torch.arange(3)}, "history": [{"loss": math.nan, "it": 1}],
             "recipe": {"name": "x", "train": {"betas": (0.0, 0.999)}}, "seconds": 1.5, "samples": None}
    path = tmp_path / "m.pt"
    _v1(path, state)
    with pytest.raises(C.CheckpointError, match=r"old format ebmlib-checkpoint-v1.*upgrade_checkpoint\('.*m.pt'\)"):
        C.load_checkpoint(path)
    assert C.upgrade_checkpoint(path) is True
    back = C.load_checkpoint(path)
    assert back["format"] == C.FORMAT and C._same({k: v for k, v in back.items() if k != "format"}, state)
    data = path.read_bytes()
    assert C.upgrade_checkpoint(path) is False and path.read_bytes() == data      # a v2 file is left alone
    assert C.upgrade_checkpoints(tmp_path) == {str(path): False}


def test_an_upgrade_that_does_not_read_back_equal_restores_the_v1_file(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    _v1(path, {"model": {"w": torch.ones(4)}})
    original = path.read_bytes()
    real = C._payload

    def wrong(content):
        out = real({"model": {"w": torch.zeros(4)}})
        return out
    monkeypatch.setattr(C, "_payload", wrong)
    with pytest.raises(C.CheckpointError, match="does not read back equal"):
        C.upgrade_checkpoint(path)
    assert path.read_bytes() == original


def test_every_shipped_checkpoint_is_v2_and_verifies():
    from ebmlib.core.recipes import SHIPPED_DIR
    files = sorted(SHIPPED_DIR.rglob("*.pt"))    # the seed_<s>/ folders too
    assert files
    for path in files:
        assert C.load_checkpoint(path)["format"] == C.FORMAT, path


# -- cases of the issue found after the first pass ---------------------------------------------------------------
def test_orphaned_temp_files_are_removed_when_a_trainer_takes_the_folder(tmp_path):
    import torch
    from ebmlib.core import nets, train
    (tmp_path / ".last.pt.abc123.tmp").write_bytes(b"left by a write killed before its rename")
    t = train.Trainer(nets.MLPEnergy(), torch.randn(64, 2), train.TrainConfig(batch_size=8, n_steps=1,
                      data_range=(-4, 4), checkpoint_every=1), ckpt_dir=tmp_path)
    t.train(1, progress=False)
    assert not list(tmp_path.glob(".*.tmp"))
    t.close()


def test_empty_and_foreign_checkpoints_get_clear_errors(tmp_path):
    import pytest
    import torch
    from ebmlib.core import checkpoint, recipes
    from ebmlib.core.image_ebm import ImageEBMRecipe
    (tmp_path / "zero.pt").write_bytes(b"")
    with pytest.raises(checkpoint.CheckpointError, match=r"is empty \(0 bytes\)"):
        checkpoint.load_checkpoint(tmp_path / "zero.pt")
    checkpoint.save_checkpoint({"model": {"w": torch.zeros(1)}}, tmp_path / "m.pt")   # a checkpoint, not a recipe's
    with pytest.raises(checkpoint.CheckpointError, match=r"not of a trained recipe \(it lacks \['recipe'"):
        recipes.load_trained(ImageEBMRecipe(name="m"), (tmp_path,))


def test_unbounded_guard_and_mismatched_chain_dtype_are_refused():
    import math
    import pytest
    import torch
    from ebmlib.core import nets, samplers, train
    with pytest.raises(ValueError, match=r"max_abs_energy=inf \(expected a finite number > 0"):
        train.TrainConfig(max_abs_energy=math.inf)
    with pytest.raises(TypeError, match=r"x0 is torch.float64 but the energy network's parameters are torch.float32"):
        samplers.PaperLangevin(0.1, 0.01, None).run(nets.MLPEnergy(), torch.zeros(4, 2, dtype=torch.float64), 1)
