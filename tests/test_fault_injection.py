"""Fault injection: a real training process (a tiny 2D MLP, checkpoints every 4 iterations, forced divergences so
that rollbacks happen) is killed with SIGKILL at random moments and in the middle of rollbacks, and resumed each
time. The final state must equal the uninterrupted run's bit for bit, and the log must equal the history.

Run as a script, this file is a *zygote*: it imports torch once, then forks one training process per line
``RUN_DIR OUT DIE`` read on stdin, printing ``pid N``, the child's ``ready ITERATION`` and ``exit N STATUS``; the
test kills the forked children (saving a torch import per restart keeps the test within seconds).
"""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ebmlib.core import checkpoint, energies
from ebmlib.core import train as T
from ebmlib.core.checkpoint import FolderLocked, load_checkpoint
from ebmlib.core.nets import MLPEnergy

N_ITERS = 100
CONFIG = dict(batch_size=16, n_steps=3, step_size=0.05, noise_std=0.3, grad_clip=None, data_range=(-4.0, 4.0),
              lr=1e-3, alpha=0.1, buffer_capacity=48, checkpoint_every=4, max_rollbacks=3)
#: (iteration, rollbacks so far) whose energies are forced past the guard: iteration 49 is the step that would
#: confirm the snapshot of 48 (so a pending snapshot is discarded), 81 follows the rollback of 80 directly (a
#: streak of two); the condition depends only on saved state, so a resumed run diverges where the first one did.
FORCED = {(49, 0), (80, 1), (81, 2)}
ROOT = Path(__file__).resolve().parents[1]


class ForcedTrainer(T.Trainer):
    in_rollback = False

    def step(self):
        m = super().step()
        if (m["iteration"], self.rollbacks) in FORCED:
            m["max_abs_energy"] = float("inf")
        return m

    def _revert(self, *args):
        ForcedTrainer.in_rollback = True
        try:
            super()._revert(*args)
        finally:
            ForcedTrainer.in_rollback = False


def build(run_dir) -> ForcedTrainer:
    torch.manual_seed(0)
    return ForcedTrainer(MLPEnergy(hidden=16, depth=2), energies.eight_gaussians().sample, T.TrainConfig(**CONFIG),
                         ckpt_dir=run_dir)


def final_state(t: T.Trainer) -> dict:
    return {"model": t.model.state_dict(), "optimizer": t.optimizer.state_dict(), "buffer": t.buffer.storage,
            "generator": t.generator.get_state(), "history": t.history, "undone": t.undone,
            "rollbacks": t.rollbacks, "lr_scale": t.lr_scale, "iteration": t.iteration}


def _die_in_rollback(spec: str) -> None:
    """``"K:mid"``: SIGKILL this process while writing the K-th file of a rollback (before its rename);
    ``"K:after"``: right after that file is in place."""
    k, when = spec.split(":")
    real, count = checkpoint.atomic_write, [0]

    def atomic_write(path, write):
        if ForcedTrainer.in_rollback:
            count[0] += 1
            if count[0] == int(k):
                if when == "mid":
                    real(path, lambda f: (write(f), os.kill(os.getpid(), signal.SIGKILL)))
                real(path, write)
                os.kill(os.getpid(), signal.SIGKILL)
        return real(path, write)
    checkpoint.atomic_write = atomic_write   # what save_checkpoint calls
    T.atomic_write = atomic_write            # what the log rewrite calls


def child(run_dir: str, out: str, die: str) -> None:
    """One training process: resume the run in ``run_dir`` if there is one, train to the end, save the result."""
    if die != "-":
        _die_in_rollback(die)
    t = build(run_dir)
    if (Path(run_dir) / "last.pt").exists():
        t.resume()
    print("ready", t.iteration, flush=True)
    t.train(N_ITERS - t.iteration, progress=False)
    checkpoint.save_checkpoint(final_state(t), out)


def zygote() -> None:
    torch.set_num_threads(1)
    for line in sys.stdin:
        run_dir, out, die = line.split()
        pid = os.fork()
        if pid == 0:
            try:
                child(run_dir, out, die)
                code = 0
            except BaseException as err:  # noqa: BLE001 - reported to the test through stderr and the status
                print(f"child failed: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
                code = 1
            sys.stdout.flush()
            os._exit(code)
        print("pid", pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print("exit", pid, -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status), flush=True)


def _expect(proc, word: str) -> list[str]:
    line = proc.stdout.readline().split()
    if not line or line[0] != word:
        proc.kill()
        raise AssertionError(f"expected {word!r} from the training process, got {line}: {proc.stderr.read()[-2000:]}")
    return line[1:]


def _check_folder(run_dir: Path) -> None:
    """What a kill may leave: a verified last.pt, a pending.pt only if newer, a log of whole lines but the last."""
    last = load_checkpoint(run_dir / "last.pt")
    if (run_dir / "pending.pt").exists():
        assert load_checkpoint(run_dir / "pending.pt")["iteration"] > last["iteration"] or \
            load_checkpoint(run_dir / "pending.pt")["rollbacks"] != last["rollbacks"]
    lines = (run_dir / "metrics.jsonl").read_text().split("\n")
    for line in lines[:-2]:
        json.loads(line)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkilled_runs_resume_to_the_uninterrupted_result(tmp_path):
    ref = build(tmp_path / "ref")
    ref.train(N_ITERS, progress=False)
    ref.close()
    events = [h for h in ref.history if h.get("event")]
    assert [(e["iteration"], e["event"]) for e in events] == [(49, "rollback"), (80, "rollback"), (81, "rollback")]
    assert ref.undone and all("event" not in h for h in ref.undone)

    run_dir, out, rng = tmp_path / "run", tmp_path / "final.pt", random.Random(15)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               TQDM_DISABLE="1", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, text=True)
    # two kills inside the first rollback (mid-write of last.pt; after it, before the log is rewritten), one in the
    # middle of rewriting the log of the second rollback, kills at random moments, then a run to the end
    plan = ["1:mid", "1:after", "2:mid", "random", "random", "-"]
    runs = []
    try:
        for die in plan:
            proc.stdin.write(f"{run_dir} {out} {'-' if die == 'random' else die}\n")
            proc.stdin.flush()
            pid = int(_expect(proc, "pid")[0])
            start = int(_expect(proc, "ready")[0])
            if die == "random":
                if len(runs) == 3:    # a second writer is refused while the first one runs
                    with pytest.raises(FolderLocked, match=rf"{run_dir}.*process {pid}"):
                        build(run_dir).resume()
                time.sleep(rng.uniform(0.0, 0.25))
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass          # it had finished
            status = int(_expect(proc, "exit")[1])
            assert status in (0, -signal.SIGKILL), proc.stderr.read()[-2000:]
            runs.append((die, start, status))
            if status == 0:
                break
            _check_folder(run_dir)
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    assert runs[-1][2] == 0 and out.is_file(), runs
    kill = -signal.SIGKILL   # the injected kills fired where planned (the snapshot of 48 was discarded at 49)
    assert runs[:3] == [("1:mid", 0, kill), ("1:after", 44, kill), ("2:mid", 44, kill)], runs

    got, want = load_checkpoint(out), final_state(ref)
    for key in ("history", "undone", "rollbacks", "lr_scale", "iteration"):
        assert got[key] == want[key], key
    assert torch.equal(got["buffer"], want["buffer"]) and torch.equal(got["generator"], want["generator"])
    for name, tensor in want["model"].items():
        assert torch.equal(got["model"][name], tensor), name
    for a, b in zip(want["optimizer"]["state"].values(), got["optimizer"]["state"].values()):
        assert all(torch.equal(a[k], b[k]) for k in a)
    log = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert log == want["history"]
    undone = [json.loads(line) for line in (run_dir / "undone.jsonl").read_text().splitlines()]
    assert undone == want["undone"]


if __name__ == "__main__":
    zygote()
