"""Training on several processes (issue 16): 2 CPU processes joined over gloo, started by ``ddp_harness`` as torchrun
starts them (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``).

One distributed step equals the single-process step at the same global batch; a run killed and resumed equals the
uninterrupted run bit for bit; a guard trip on one rank rolls every rank back; a checkpoint of one world size is
refused by another with both sizes named; only rank 0 writes files; the command line trains under torchrun.
"""
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
from ddp_harness import run  # noqa: E402

from ebmlib.core import distributed, energies, recipes  # noqa: E402
from ebmlib.core.checkpoint import load_checkpoint  # noqa: E402
from ebmlib.core.image_ebm import ImageEBMRecipe  # noqa: E402
from ebmlib.core.images import ImageData  # noqa: E402
from ebmlib.core.nets import MLPEnergy  # noqa: E402
from ebmlib.core.samplers import NonFiniteEnergy  # noqa: E402
from ebmlib.core.train import KLTrainer, TrainConfig, Trainer, WorldSizeMismatch  # noqa: E402

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="this torch build has no gloo backend")

# batch_size: the batch of one update (6 positives per rank on 2 ranks, 4 on 3); buffer 48: 24 per rank on 2
TOY = dict(batch_size=12, n_steps=5, step_size=0.05, noise_std=0.3, grad_clip=None, data_range=(-4.0, 4.0),
           lr=1e-3, alpha=0.1, buffer_capacity=48, checkpoint_every=2)
ROOT = Path(__file__).resolve().parents[1]


def config(**kw) -> TrainConfig:
    return TrainConfig(**{**TOY, **kw})


def points(conditional=False):
    x = energies.eight_gaussians().sample(256, torch.Generator().manual_seed(1))
    return (x, (x[:, 0] > 0).long()) if conditional else x


def source(kind):
    """Training data of each kind a Trainer takes: a tensor (sharded over the ranks), a tensor with labels, or a
    callable ``(n, generator) -> x`` (each rank draws with its own generator)."""
    return {"tensor": points(), "labelled": points(True), "callable": energies.eight_gaussians().sample,
            "kl": points()}[kind]


def build(seed=0, spectral_norm=True, conditional=False):
    torch.manual_seed(seed)
    return MLPEnergy(hidden=16, depth=2, spectral_norm=spectral_norm, n_classes=2 if conditional else None)


def weights(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def grads(model) -> dict:
    """The gradients of the last step (after A.7's clip), by parameter name."""
    return {k: p.grad.detach().clone() for k, p in model.named_parameters()}


def summary(t: Trainer) -> dict:
    """What must be equal between two runs: the shared state and this rank's own."""
    return {"model": weights(t.model), "optimizer": t.optimizer.state_dict(), "history": t.history,
            "iteration": t.iteration, "buffer": t.buffer.state_dict(), "chains": t.chains,
            "generator": t.generator.get_state(), "torch_rng": torch.get_rng_state()}


def assert_same(a, b, where=""):
    """Bit-for-bit equality of nested states (tensors with torch.equal)."""
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys {a.keys()} vs {b.keys()}"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


# -- (a) one distributed step is the single-process step at the same global batch -----------------------------
class Recording(Trainer):
    """A Trainer that keeps every step's positives, labels and negatives."""

    def __init__(self, *args, **kwargs):
        self.seen = []
        super().__init__(*args, **kwargs)

    def next_batch(self):
        x, y = super().next_batch()
        self.seen.append({"x": x.clone(), "y": None if y is None else y.clone()})
        return x, y

    def negatives(self, n, y=None, n_steps=None):
        x = super().negatives(n, y, n_steps)
        self.seen[-1]["neg"] = x.clone()
        before = getattr(self, "_before_last", None)    # KLTrainer: the chains one step before the end
        self.seen[-1]["before"] = None if before is None else before.clone()
        return x


class Replaying(Trainer):
    """A Trainer whose steps take the given positives, labels and negatives instead of drawing them."""

    def __init__(self, *args, batches, **kwargs):
        self.batches = list(batches)
        super().__init__(*args, **kwargs)

    def next_batch(self):
        return self.batches[0]["x"], self.batches[0]["y"]

    def negatives(self, n, y=None, n_steps=None):
        batch = self.batches.pop(0)
        self._before_last = batch["before"]
        return batch["neg"]


class RecordingKL(Recording, KLTrainer):
    pass


class ReplayingKL(Replaying, KLTrainer):
    pass


def _recorded_steps(world, kind, n_iters):
    # no spectral norm: its power iteration runs at every forward, also in the chains the replay skips
    kind_of = RecordingKL if kind == "kl" else Recording
    t = kind_of(build(spectral_norm=False, conditional=kind == "labelled"), source(kind), config(), world=world)
    t.train(n_iters, progress=False)
    return {"model": weights(t.model), "seen": t.seen, "history": t.history, "grads": grads(t.model)}


def _cat(parts, key):
    return None if parts[0][key] is None else torch.cat([p[key] for p in parts])


@pytest.mark.parametrize("kind", ["tensor", "labelled", "callable", "kl"])
def test_distributed_steps_equal_single_process_steps_at_the_same_global_batch(kind):
    n_iters, conditional = 2, kind == "labelled"
    ranks = run(_recorded_steps, 2, kind, n_iters).values()
    assert_same(ranks[0]["model"], ranks[1]["model"], "the ranks' weights")
    assert ranks[0]["history"] == ranks[1]["history"]
    first = [r["seen"][0] for r in ranks]
    assert first[0]["x"].shape[0] == TOY["batch_size"] // 2, "each rank draws its share of the batch"
    assert not torch.equal(first[0]["x"], first[1]["x"]), "the ranks must draw different positives"
    assert not torch.equal(first[0]["neg"], first[1]["neg"]), "the ranks must draw different negatives"

    whole = [{k: _cat([r["seen"][i] for r in ranks], k) for k in ("x", "y", "neg", "before")}
             for i in range(n_iters)]
    replaying = ReplayingKL if kind == "kl" else Replaying
    single = replaying(build(spectral_norm=False, conditional=conditional), source(kind), config(),
                       batches=whole)
    single.train(n_iters, progress=False)
    for name, value in weights(single.model).items():
        torch.testing.assert_close(ranks[0]["model"][name], value, rtol=1e-5, atol=1e-6, msg=name)
    for name, value in grads(single.model).items():   # the mean over the ranks, not their sum (Adam hides a scale)
        torch.testing.assert_close(ranks[0]["grads"][name], value, rtol=1e-5, atol=1e-7, msg=f"grad of {name}")
    for mine, theirs in zip(single.history, ranks[0]["history"]):   # the log: means over the whole batch
        assert theirs.keys() == mine.keys() and {"loss", "e_pos_std"} <= mine.keys()
        for key in set(mine) - {"iteration"}:      # loss, e_pos, e_neg, e_pos_std, max_abs_energy (and kl)
            assert theirs[key] == pytest.approx(mine[key], rel=1e-5, abs=1e-6), key

    # the control: a step on rank 0's half alone lands measurably elsewhere (the tolerance above means something)
    half = replaying(build(spectral_norm=False, conditional=conditional), source(kind), config(),
                     batches=ranks[0]["seen"])
    half.train(n_iters, progress=False)
    gap = max((half.model.state_dict()[k] - v).abs().max().item() for k, v in ranks[0]["model"].items())
    assert gap > 1e-4, f"half a batch gave nearly the same step ({gap:.2e}): the test could not tell"


# -- (b) killed and resumed == uninterrupted, bit for bit -------------------------------------------------------
class Crashing(Trainer):
    """A Trainer whose rank ``die_rank`` kills itself (SIGKILL, as a lost node) as it starts iteration
    ``die_at + 1``."""

    def __init__(self, *args, die_at, die_rank, **kwargs):
        self.die_at, self.die_rank = die_at, die_rank
        super().__init__(*args, **kwargs)

    def step(self):
        if self.iteration == self.die_at:
            # every rank waits here, so rank 0 has written iteration die_at's snapshot before anyone dies: without
            # it the launcher could stop rank 0 mid-write (seen on a loaded machine) and pending.pt never appear
            self.world.barrier()
            if self.world.rank == self.die_rank:
                os.kill(os.getpid(), signal.SIGKILL)
        return super().step()


def _straight(world, init, n_iters):
    t = Trainer(build(), points(), config(init=init), world=world)
    t.train(n_iters, progress=False)
    return summary(t)


def _crash(world, init, folder, die_at, die_rank):
    Crashing(build(), points(), config(init=init), ckpt_dir=folder, world=world, die_at=die_at,
             die_rank=die_rank).train(100, progress=False)


def _resume(world, init, folder, n_iters):
    t = Trainer(build(seed=99), points(), config(init=init), ckpt_dir=folder, world=world).resume()
    at = t.iteration
    t.train(n_iters - t.iteration, progress=False)
    return {**summary(t), "resumed_at": at}


@pytest.mark.parametrize("size,init,die_at,die_rank", [(2, "replay", 5, 0), (2, "persistent", 4, 1),
                                                       (2, "noise", 3, 1), (3, "replay", 5, 2)])
def test_killed_and_resumed_run_equals_the_uninterrupted_run_bit_for_bit(tmp_path, size, init, die_at, die_rank):
    """checkpoint_every=2. Killed as iteration 6 starts: last.pt holds iteration 4 (confirmed by iteration 5),
    and iteration 5 is done again. As iteration 5 starts: iteration 4's snapshot waits unconfirmed in pending.pt
    (resumed, then confirmed). As iteration 4 starts: last.pt holds 2, and iteration 3 is done again.

    3 processes: where DDP's own bucket all-reduce would add a gradient's terms in another order after the resume
    (its buckets are laid out anew after a first iteration), ``distributed.allreduce_each`` keeps it exact."""
    n_iters = 7
    straight = run(_straight, size, init, n_iters).values()

    crashed = run(_crash, size, init, tmp_path, die_at, die_rank)
    assert crashed.exitcodes[die_rank] == -signal.SIGKILL and not crashed.results
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["iteration"] == (4 if die_at == 5 else 2)
    assert last["world_size"] == size and len(last["ranks"]) == size
    assert (tmp_path / "pending.pt").is_file() == (die_at == 4)

    resumed = run(_resume, size, init, tmp_path, n_iters).values()
    for rank in range(size):
        assert resumed[rank]["resumed_at"] == {5: 4, 4: 4, 3: 2}[die_at]
        mine = {k: v for k, v in resumed[rank].items() if k != "resumed_at"}
        assert_same(straight[rank], mine, f"rank {rank}")
    own = "chains" if init == "persistent" else "buffer"
    mine, theirs = (r["chains"] if own == "chains" else r["buffer"]["storage"] for r in resumed[:2])
    assert mine.shape[0] > 0 and not torch.equal(mine, theirs), f"each rank keeps its own {own}"
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == n_iters


# -- (c) a guard trip on one rank rolls every rank back ---------------------------------------------------------
class Tripping(Trainer):
    """A Trainer whose rank ``trip_rank`` meets a runaway energy at iteration ``trip_at``, once: ``how`` is
    "energy" (|E| over the guard's bound) or "nonfinite" (the chains meet an infinite energy, as the sampler
    reports it). Keeps its snapshots and the states it rolled back to."""

    def __init__(self, *args, trip_at, trip_rank, how, **kwargs):
        self.trip_at, self.trip_rank, self.how = trip_at, trip_rank, how
        self.snapshots, self.reverted = {}, []
        super().__init__(*args, **kwargs)

    def _trips(self) -> bool:
        due = self.iteration + 1 == self.trip_at and self.world.rank == self.trip_rank and self.rollbacks == 0
        return due

    def negatives(self, n, y=None, n_steps=None):
        if self.how == "nonfinite" and self._trips():
            raise NonFiniteEnergy("energy inf at step 3 of the chains (injected)", 3)
        return super().negatives(n, y, n_steps)

    def step(self):
        trips = self.how == "energy" and self._trips()
        m = super().step()
        if trips:
            m["max_abs_energy"] = 10 * self.config.max_abs_energy
        return m

    def checkpoint(self):
        out = super().checkpoint()
        self.snapshots[self.iteration] = {"model": weights(self.model), "buffer": self.buffer.state_dict()}
        return out

    def _revert(self, m, event, rollbacks, lr_scale):
        super()._revert(m, event, rollbacks, lr_scale)
        self.reverted.append({"iteration": self.iteration, "model": weights(self.model),
                              "buffer": self.buffer.state_dict()})


def _tripped(world, how, root, n_iters):
    folder = Path(root) / f"rank{world.rank}"   # what rank 1 would write lands apart from rank 0's files
    t = Tripping(build(), points(), config(), ckpt_dir=folder, world=world, trip_at=4, trip_rank=1, how=how)
    t.train(n_iters, progress=False)
    return {**summary(t), "snapshots": t.snapshots, "reverted": t.reverted, "lr_scale": t.lr_scale,
            "lr": [g["lr"] for g in t.optimizer.param_groups]}


@pytest.mark.parametrize("how", ["energy", "nonfinite"])
def test_a_guard_trip_on_one_rank_rolls_back_every_rank(tmp_path, how):
    n_iters = 6
    ranks = run(_tripped, 2, how, tmp_path, n_iters).values()
    factor = TOY.get("rollback_lr_factor", TrainConfig().rollback_lr_factor)
    for rank, r in enumerate(ranks):
        events = [h for h in r["history"] if h.get("event") == "rollback"]
        assert len(events) == 1, f"rank {rank}: {events}"
        assert events[0]["iteration"] == 4 and events[0]["to_iteration"] == 2 and events[0]["ranks"] == [1]
        if how == "nonfinite":
            assert "rank 1" in events[0]["error"] and "injected" in events[0]["error"]
        assert len(r["reverted"]) == 1 and r["reverted"][0]["iteration"] == 2
        # back to its own snapshot of iteration 2: the shared weights and this rank's own buffer
        assert_same(r["snapshots"][2], {k: r["reverted"][0][k] for k in ("model", "buffer")}, f"rank {rank}")
        assert r["iteration"] == n_iters and r["lr_scale"] == pytest.approx(factor)
        assert r["lr"] == [pytest.approx(TOY["lr"] * factor)]
    assert json.dumps(ranks[0]["history"]) == json.dumps(ranks[1]["history"])   # NaN == NaN there
    assert_same(ranks[0]["model"], ranks[1]["model"], "the ranks' weights after the rollback")
    assert not torch.equal(ranks[0]["reverted"][0]["buffer"]["storage"], ranks[1]["reverted"][0]["buffer"]["storage"])

    # (e) only rank 0 wrote: its folder holds every rank's state; rank 1's was never made
    assert not (tmp_path / "rank1").exists()
    last, pending = (load_checkpoint(tmp_path / "rank0" / f) for f in ("last.pt", "pending.pt"))
    assert last["world_size"] == 2 and last["iteration"] == 4 and last["rollbacks"] == 1
    assert pending["world_size"] == 2 and pending["iteration"] == n_iters   # the final state, unconfirmed
    for rank in range(2):
        for key in ("buffer", "generator"):
            assert_same(pending["ranks"][rank][key], ranks[rank][key], f"rank {rank}'s {key} in pending.pt")
    log = (tmp_path / "rank0" / "metrics.jsonl").read_text().splitlines()
    assert len(log) == n_iters + 1 and '"rollback"' in log[2]


# -- (d) another world size is refused, naming both -----------------------------------------------------------
def _train_in(world, folder, n_iters, overwrite=False):
    t = Trainer(build(), points(), config(), ckpt_dir=folder, world=world, overwrite=overwrite)
    t.train(n_iters, progress=False)
    return t.iteration


def _resume_in(world, folder):
    return Trainer(build(), points(), config(), ckpt_dir=folder, world=world).resume().iteration


def test_resume_at_another_world_size_is_refused_naming_both_sizes(tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    assert run(_train_in, 2, two, 3).values() == [3, 3]
    with pytest.raises(WorldSizeMismatch, match=r"2 processes \(world size 2\).*has 1 \(world size 1\)") as err:
        Trainer(build(), points(), config(), ckpt_dir=two).resume()
    assert "--nproc_per_node 2" in str(err.value)

    _train_in(distributed.SINGLE, one, 3)
    refused = run(_resume_in, 2, one)
    assert sorted(refused.errors) == [0, 1], refused.exitcodes     # every rank refuses, none hangs
    for kind, message, _ in refused.errors.values():
        assert kind == "WorldSizeMismatch"
        assert "1 process (world size 1)" in message and "has 2 (world size 2)" in message
    # the refusal left the folder unlocked and whole: it resumes at its own size, or starts over at 2
    assert Trainer(build(), points(), config(), ckpt_dir=one).resume().iteration == 2   # last.pt: iteration 2
    assert run(_train_in, 2, one, 2, True).values() == [2, 2]
    assert load_checkpoint(one / "last.pt")["world_size"] == 2


# -- (e) only rank 0 writes, logs and shows progress: the recipe layer -----------------------------------------
def _images(n=64):
    g = torch.Generator().manual_seed(0)
    return ImageData(torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8),
                     torch.randint(0, 10, (n,), generator=g), [str(i) for i in range(10)])


TINY = ImageEBMRecipe(name="mnist_tiny", width=2, n_iters=4, snapshot_every=2, keep_buffer=16,
                      train=dict(batch_size=8, n_steps=2, checkpoint_every=2, lr=1e-3))


def _recipe(world, root):
    out = Path(root) / f"rank{world.rank}"       # rank 1's writes, if any, would land here
    err, log = io.StringIO(), []
    with contextlib.redirect_stderr(err):
        done = recipes.load_or_train_all({TINY.name: TINY}, lambda recipe, done: {"data": _images()},
                                         out_dir=out, shipped_dir=Path(root) / "none", device="cpu",
                                         progress=True, world=world, log=log.append)
    t = done[TINY.name]
    return {"model": weights(t.model), "samples": t.samples, "snapshots": t.snapshots,
            "world_size": t.world_size, "stderr": err.getvalue(), "log": log}


def test_only_rank_0_writes_logs_and_shows_progress(tmp_path):
    ranks = run(_recipe, 2, tmp_path).values()
    assert not (tmp_path / "rank1").exists()
    saved = load_checkpoint(tmp_path / "rank0" / "mnist_tiny.pt")
    assert saved["world_size"] == 2 and len(saved["history"]) == TINY.n_iters
    run_dir = tmp_path / "rank0" / ".mnist_tiny_run"
    assert load_checkpoint(run_dir / "last.pt")["world_size"] == 2
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == TINY.n_iters
    for rank in range(2):   # every rank ends with the same trained model and samples
        assert ranks[rank]["world_size"] == 2
        assert_same(ranks[0]["model"], ranks[rank]["model"], f"rank {rank}'s model")
        assert_same(ranks[0]["snapshots"], ranks[rank]["snapshots"], f"rank {rank}'s snapshots")
    assert ranks[0]["samples"].shape[0] == TINY.keep_buffer
    assert "train" in ranks[0]["stderr"] and ranks[1]["stderr"] == ""
    assert len(ranks[0]["log"]) == 1 and ranks[1]["log"] == []


# -- the command line under torchrun ---------------------------------------------------------------------------
def _cli(world, out, env):
    from ebmlib import cli
    os.environ.update(env)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = cli.main(["train", "03", "--scale", "smoke", "--only", "mnist_cond_replay", "--out", str(out),
                         "--set", "models.mnist_cond_replay.n_iters=3"])
    return code, printed.getvalue()


@pytest.fixture
def fake_mnist_env(tmp_path):
    from test_data import fake_mnist
    fake_mnist(tmp_path / "src", n_train=64, n_test=8)
    return {"EBMLIB_MNIST_SRC": str(tmp_path / "src"), "EBMLIB_DATA": str(tmp_path / "data"),
            "TQDM_DISABLE": "1"}


def test_the_train_command_under_torchrun_environment(tmp_path, fake_mnist_env):
    """``ebmlib train`` as torchrun starts it on every rank (the harness sets torchrun's variables)."""
    out = tmp_path / "out"
    ranks = run(_cli, 2, out, fake_mnist_env, timeout=120).values()
    assert [code for code, _ in ranks] == [0, 0]
    assert "on 2 processes" in ranks[0][1] and ranks[1][1] == ""
    saved = load_checkpoint(out / "mnist_cond_replay.pt")
    assert saved["world_size"] == 2 and len(saved["history"]) == 3
    assert sorted(p.name for p in out.iterdir()) == [".mnist_cond_replay_run", "mnist_cond_replay.pt"]


def test_a_chapter_launches_torchrun_when_asked_for_several_processes(tmp_path, fake_mnist_env, monkeypatch):
    """The papermill path: a chapter's train_models with ``EBMLIB_NPROC=2`` runs ``torchrun --nproc_per_node 2 -m
    ebmlib train ...`` (a real torchrun, two fresh processes), then loads what it saved."""
    from ebmlib.chapters import mnist
    from ebmlib.presets import preset
    for key, value in {**fake_mnist_env, "EBMLIB_NPROC": "2", "OMP_NUM_THREADS": "1",
                       "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}.items():
        monkeypatch.setenv(key, value)
    cfg = preset("03_mnist", "smoke", {"models.mnist_cond_replay.n_iters": 3})
    done = mnist.train_models(cfg, only=["mnist_cond_replay"], out_dir=tmp_path / "out", shipped_dir=None,
                              progress=False, device="cpu")
    t = done["mnist_cond_replay"]
    assert t.source == str(tmp_path / "out" / "mnist_cond_replay.pt"), "loaded from the file torchrun saved"
    assert t.world_size == 2 and len(t.history) == 3


def test_a_failed_launch_names_the_command(tmp_path, monkeypatch):
    from ebmlib.notebook import launch
    from ebmlib.presets import preset
    monkeypatch.setenv("EBMLIB_NPROC", "2")
    monkeypatch.setattr(subprocess, "run", lambda cmd, env: subprocess.CompletedProcess(cmd, 3))
    cfg = preset("03_mnist", "smoke", {"n_eval": 7})
    with pytest.raises(RuntimeError, match=r"exit status 3.*--nproc_per_node=2 -m ebmlib train 03_mnist"):
        launch.train_in_processes(cfg, 0, ["mnist_cond_replay"], out_dir=tmp_path)
    cmd = launch.launch_command(cfg, 2, tmp_path, seed=1, only=["mnist_cond_replay"])
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    assert cmd[cmd.index("--set") + 1] == "n_eval=7" and cmd[-2:] == ["--only", "mnist_cond_replay"]
    assert not launch.train_in_processes(cfg, out_dir=tmp_path, world=distributed.SINGLE), "inside a world: no"
    with pytest.raises(ValueError, match="out_dir"):
        launch.train_in_processes(cfg)


@pytest.mark.parametrize("value,expected", [("2", 2), (" 3 ", 3), ("gpus", None)])
def test_processes_from_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv(distributed.NPROC_VAR, value)
    gpus = max(torch.cuda.device_count() if torch.cuda.is_available() else 0, 1)
    assert distributed.resolve_processes(1) == (expected if expected is not None else gpus)


@pytest.mark.parametrize("value", ["0", "two", "1.5", "-1"])
def test_bad_process_counts_are_named(monkeypatch, value):
    monkeypatch.setenv(distributed.NPROC_VAR, value)
    with pytest.raises(ValueError, match=f"EBMLIB_NPROC asks for '{value}' processes"):
        distributed.resolve_processes()


def test_a_batch_that_does_not_split_over_the_ranks_is_refused():
    with pytest.raises(ValueError, match="batch_size=15 .* 2 processes .* multiple of 2"):
        Trainer(build(), points(), config(batch_size=15), world=distributed.World(0, 2))
