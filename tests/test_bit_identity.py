"""A run that does not diverge must stay bit-identical to the code that made the shipped checkpoints: the same
random draws in the same order and the same arithmetic. Two pins:

* the Trainer against a frozen copy of the step loop (Algorithm 1 with the replay buffer of section 3.2, A.7's
  Langevin and Adam clipping) as it stood when the shipped checkpoints were made; exact equality, on any machine;
* digests of short fixed-seed runs (2D toys in the three chain initialisations, a conditional model, A.5's KL
  trainer, the image-EBM recipe with its snapshots) computed by that code, for the torch build they were made with.
"""
import hashlib
import json
import math
from pathlib import Path

import pytest
import torch

from ebmlib.core import energies, recipes
from ebmlib.core.image_ebm import ImageEBMRecipe
from ebmlib.core.images import ImageData
from ebmlib.core.nets import MLPEnergy
from ebmlib.core.train import KLTrainer, TrainConfig, Trainer

TOY = dict(batch_size=64, n_steps=10, step_size=0.05, noise_std=0.3, grad_clip=None, data_range=(-4.0, 4.0),
           lr=1e-3, alpha=0.1, buffer_capacity=512, checkpoint_every=2)


# -- the frozen step loop ------------------------------------------------------------------------------------------
def frozen_run(model, sample, cfg: TrainConfig, n_iters: int, labels=None):
    """The non-diverging path of Algorithm 1 exactly as the shipped checkpoints were trained (a copy, not an import:
    a change to the trainer, the buffer or the sampler that moves a draw or a rounding shows up here)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas)
    low, high = cfg.data_range
    storage, next_slot, chains, history = torch.empty((0, 2)), 0, None, []
    frac = cfg.replay_fraction if cfg.init == "replay" else 0.0
    for it in range(1, n_iters + 1):
        if labels is None:
            x_pos, y = sample(cfg.batch_size, gen), None
        else:
            idx = torch.randint(sample.shape[0], (cfg.batch_size,), generator=gen)
            x_pos, y = sample[idx], labels[idx]
        x_pos = x_pos.to(torch.float32)
        n = x_pos.shape[0]
        if cfg.init == "persistent":
            if chains is None:
                chains = low + (high - low) * torch.rand((n, 2), generator=gen)
            x = chains.clone()
        else:
            x = low + (high - low) * torch.rand((n, 2), generator=gen)
            if storage.shape[0] >= n and frac > 0:
                pick = torch.rand(n, generator=gen) < frac
                k = int(pick.sum())
                if k:
                    x[pick] = storage[torch.randint(storage.shape[0], (k,), generator=gen)]
        flags = [p.requires_grad for p in model.parameters()]
        for p in model.parameters():
            p.requires_grad_(False)
        x = x.clamp(low, high)
        for _ in range(cfg.n_steps):
            x = x + cfg.noise_std * torch.randn(x.shape, generator=gen)
            with torch.enable_grad():
                xg = x.detach().requires_grad_(True)
                e = model(xg) if y is None else model(xg, y)
                (g,) = torch.autograd.grad(e.sum(), xg)
            if cfg.grad_clip is not None:
                g = g.clamp(-cfg.grad_clip, cfg.grad_clip)
            x = (x - cfg.step_size * g).clamp(low, high)
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
        x_neg = x.detach()
        e_pos = model(x_pos) if y is None else model(x_pos, y)
        e_neg = model(x_neg) if y is None else model(x_neg, y)
        loss = (cfg.alpha * (e_pos.pow(2) + e_neg.pow(2)) + e_pos - e_neg).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                st = opt.state.get(p, {})
                if "exp_avg_sq" in st and float(st["step"]) > 0:
                    bound = cfg.adam_clip_std * (st["exp_avg_sq"] / (1 - cfg.betas[1] ** float(st["step"]))).sqrt() \
                        + cfg.adam_clip_floor
                    p.grad.copy_(torch.maximum(torch.minimum(p.grad, bound), -bound))
                else:
                    p.grad.clamp_(-cfg.adam_clip_floor, cfg.adam_clip_floor)
        opt.step()
        if cfg.init == "persistent":
            chains = x_neg.cpu()
        else:
            room, rest = cfg.buffer_capacity - storage.shape[0], x_neg
            if room > 0:
                storage, rest = torch.cat([storage, x_neg[:room]]), x_neg[room:]
                next_slot = storage.shape[0] % cfg.buffer_capacity
            if rest.shape[0]:
                idx = (next_slot + torch.arange(rest.shape[0])) % cfg.buffer_capacity
                storage[idx] = rest
                next_slot = int((next_slot + rest.shape[0]) % cfg.buffer_capacity)
        history.append({"iteration": it, "loss": loss.item(), "e_pos": e_pos.mean().item(),
                        "e_neg": e_neg.mean().item(), "e_pos_std": e_pos.std().item(),
                        "max_abs_energy": torch.cat([e_pos, e_neg]).abs().max().item()})
    return history


@pytest.mark.parametrize("init", ["replay", "noise", "persistent"])
@pytest.mark.parametrize("with_dir", [False, True])
def test_trainer_equals_the_frozen_loop(tmp_path, init, with_dir):
    """With checkpoints, the log, the lock and the checks of this version, not one bit of the run moves."""
    cfg = dict(TOY, init=init, buffer_capacity=96)   # the ring buffer wraps within the run
    torch.manual_seed(0)
    ref_model = MLPEnergy(hidden=16, depth=2, spectral_norm=False)
    torch.manual_seed(0)
    model = MLPEnergy(hidden=16, depth=2, spectral_norm=False)
    ref = frozen_run(ref_model, energies.eight_gaussians().sample, TrainConfig(**cfg), 7)
    trainer = Trainer(model, energies.eight_gaussians().sample, TrainConfig(**cfg),
                      ckpt_dir=tmp_path if with_dir else None)
    assert trainer.train(7, progress=False) == ref
    for a, b in zip(ref_model.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)


def test_conditional_trainer_equals_the_frozen_loop():
    torch.manual_seed(3)
    x = torch.randn(200, 2).clamp(-3.9, 3.9)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    ref_model = MLPEnergy(hidden=16, depth=2, n_classes=2)
    torch.manual_seed(0)
    model = MLPEnergy(hidden=16, depth=2, n_classes=2)
    ref = frozen_run(ref_model, x, TrainConfig(**TOY), 5, labels=y)
    assert Trainer(model, (x, y), TrainConfig(**TOY)).train(5, progress=False) == ref
    assert all(torch.equal(a, b) for a, b in zip(ref_model.state_dict().values(), model.state_dict().values()))


# -- digests computed by the code that made the shipped checkpoints ---------------------------------------------------
def digest(*objs, history=None) -> str:
    h = hashlib.sha256()
    for obj in objs:
        for k, t in (obj.items() if isinstance(obj, dict) else enumerate([obj])):
            h.update(str(k).encode())
            h.update(t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    if history is not None:
        h.update(json.dumps(history).encode())
    return h.hexdigest()[:16]


#: computed before this version's changes, with torch 2.14.1 on CPU, one thread (AVX2 machines and the one that
#: made the checkpoints)
BEFORE = {"toy_replay": "ebc8f80939d7b254", "toy_noise": "36163683651bacaf", "toy_persistent": "a73918223400572a",
          "toy_cond": "649b346c0921d8b9", "toy_kl": "f3137fd736485fb0"}
#: the same runs on stop 26's AVX512 machine (its vector kernels round the MLPs differently in the last bits; an
#: AMD EPYC with AVX512 gives BEFORE, so the capability alone does not tell which set a machine gives)
TOY_AVX512 = {"toy_replay": "edf29e86cff713b7", "toy_noise": "9959812b215029fb", "toy_persistent": "bbcd9d563270be47",
              "toy_cond": "dcef9271d5b0fc5f", "toy_kl": "dd11cd7424e4a0b2"}
#: the image recipe's convolutions round differently with the vector instructions torch picks: on the machine that
#: made the shipped checkpoints, an AVX2 machine and stop 26's AVX512 one
IMAGE = {"made the checkpoints": {"image_False": "2cda25880b567727", "image_True": "233c849bf87fffc6"},
         "AVX2": {"image_False": "fbe1a70eaeea2394", "image_True": "c64fa3cf64d2f2ec"},
         "AVX512": {"image_False": "405d0e53b438d965", "image_True": "7d50e614e5c2f721"}}
#: machines whose every digest was measured, by :func:`machine`: there any other digest is a change (an AMD EPYC
#: with AVX512 gives the digests of the machine that made the checkpoints)
MEASURED = {"AVX512, AMD EPYC": {**BEFORE, **IMAGE["made the checkpoints"]}}
#: every digest measured for each run, on any machine
KNOWN = {key: {d[key] for d in (BEFORE, TOY_AVX512, *IMAGE.values(), *MEASURED.values()) if key in d}
         for key in (*BEFORE, "image_False", "image_True")}


def machine() -> str:
    """This machine as :data:`MEASURED` names machines: torch's CPU capability and the CPU's model name."""
    model = "unknown CPU"
    if Path("/proc/cpuinfo").is_file():
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        model = names[0] if names else model
    return f"{torch.backends.cpu.get_cpu_capability()}, {model}"


def check_digest(key: str, got: str) -> None:
    """On a measured machine (:data:`MEASURED`), ``got`` must be its digest; elsewhere it must be one measured on
    some machine, and an unknown one skips (the last bits of a run depend on the CPU's vector kernels, so an
    unmeasured machine cannot tell a change of the code from its own rounding)."""
    here = machine()
    if here in MEASURED:
        assert got == MEASURED[here][key], f"{key}: {got} on {here}, which gave {MEASURED[here][key]}"
    elif got not in KNOWN[key]:
        pytest.skip(f"{key}: digest {got} on {here}, a machine not measured (known: {sorted(KNOWN[key])})")


same_build = pytest.mark.skipif(not torch.__version__.startswith("2.14.1"),
                                reason="digests pinned for torch 2.14.1 on CPU")


@same_build
@pytest.mark.parametrize("init", ["replay", "noise", "persistent"])
def test_toy_runs_match_the_pinned_digests(init):
    torch.manual_seed(0)
    t = Trainer(MLPEnergy(hidden=32, depth=2, spectral_norm=True), energies.eight_gaussians().sample,
                TrainConfig(**{**TOY, "init": init}))
    t.train(12, progress=False)
    extra = [t.chains] if t.chains is not None else []
    check_digest(f"toy_{init}", digest(t.model.state_dict(), t.buffer.storage, *extra, history=t.history))


@same_build
def test_conditional_and_kl_runs_match_the_pinned_digests():
    torch.manual_seed(0)
    x = torch.randn(200, 2).clamp(-3.9, 3.9)
    y = (x[:, 0] > 0).long()
    t = Trainer(MLPEnergy(hidden=16, depth=2, n_classes=2), (x, y), TrainConfig(**TOY))
    t.train(6, progress=False)
    check_digest("toy_cond", digest(t.model.state_dict(), history=t.history))
    torch.manual_seed(0)
    t = KLTrainer(MLPEnergy(hidden=16, depth=2), energies.two_moons().sample, TrainConfig(**TOY), kl_weight=0.5)
    t.train(6, progress=False)
    check_digest("toy_kl", digest(t.model.state_dict(), history=t.history))


@same_build
@pytest.mark.parametrize("conditional", [False, True])
def test_image_recipe_matches_the_pinned_digest(tmp_path, conditional):
    """Weights, kept samples and snapshots of the image-EBM recipe, trained straight and through a run folder."""
    g = torch.Generator().manual_seed(0)
    data = ImageData(torch.randint(0, 256, (64, 1, 28, 28), generator=g, dtype=torch.uint8),
                     torch.randint(0, 10, (64,), generator=g), [str(i) for i in range(10)])
    r = ImageEBMRecipe(name="tiny", width=2, n_iters=5, snapshot_every=2, keep_buffer=16, conditional=conditional,
                       train=dict(batch_size=8, n_steps=2, checkpoint_every=2, lr=1e-3))
    key, got = f"image_{conditional}", []
    for run_dir in (None, tmp_path / "run"):
        tr = recipes.train(r, data=data, progress=False, device="cpu", run_dir=run_dir)
        snaps = {str(k): v for k, v in tr.snapshots.items()}
        got.append(digest(tr.model.state_dict(), tr.samples, snaps, history=tr.history))
        assert math.isfinite(tr.history[-1]["loss"])
    assert got[0] == got[1]                                    # through a run folder as straight, on any machine
    check_digest(key, got[0])
