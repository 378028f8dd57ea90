"""The fast Langevin path (ebmlib.core.fastpath) against PaperLangevin, the reference it must agree with.

Everything here runs on the CPU in seconds; the CUDA-only switches (bf16 by default, device noise, deferred
finiteness checks) are tested for what they do on the CPU and for the choices fast_sampler makes for "cuda",
never on a GPU.
"""
from __future__ import annotations

import copy

import pytest
import torch

from ebmlib.core.fastpath import (FAST_DEFAULTS, FastPaperLangevin, MNISTInputGradient, chain_weights,
                                  fast_sampler, functional_energy_and_grad, keep_freed_memory, plain_twin)
from ebmlib.core.nets import CIFARResNetEnergy, MLPEnergy, MNISTConvEnergy, labels_checked
from ebmlib.core.samplers import NonFiniteEnergy, PaperLangevin
from ebmlib.core.train import TrainConfig, Trainer, frozen

A7 = dict(step_size=10.0, noise_std=0.005, grad_clip=0.01)   # A.7's Langevin settings


def mnist(seed=0, **kw):
    torch.manual_seed(seed)
    return MNISTConvEnergy(**{"width": 4, "spectral_norm": True, **kw})


def images(n=6, seed=1, channels=1, side=28):
    return torch.rand(n, channels, side, side, generator=torch.Generator().manual_seed(seed))


def reference_run(model, x0, n_steps, seed, y=None, **kw):
    with frozen(model):
        return PaperLangevin(**{**A7, **kw}).run(model, x0, n_steps, y=y, clamp=(0.0, 1.0),
                                                 generator=torch.Generator().manual_seed(seed))


def fast_run(model, x0, n_steps, seed, y=None, sampler=None, **kw):
    sampler = sampler or FastPaperLangevin(**A7, **kw)
    return sampler.run(model, x0, n_steps, y=y, clamp=(0.0, 1.0), generator=torch.Generator().manual_seed(seed))


def autograd_energy_and_grad(model, x, y=None):
    with frozen(model), torch.enable_grad():
        x = x.detach().requires_grad_(True)
        e = model(x) if y is None else model(x, y)
        (g,) = torch.autograd.grad(e.sum(), x)
    return e.detach(), g.detach()


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


# --------------------------------------------------------------------------------- the written-out gradient
@pytest.mark.parametrize("act", ["swish", "leaky_relu", "relu", "softplus"])
@pytest.mark.parametrize("n_classes", [None, 10])
def test_manual_gradient_equals_autograd(act, n_classes):
    """E and grad_x E of MNISTInputGradient equal autograd on the module to float32 rounding (1e-5 relative)."""
    model = mnist(act=act, n_classes=n_classes).eval()     # eval: the spectral norm's power iteration is fixed
    with torch.no_grad():                                   # non-zero conditional gains/biases
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = images().contiguous(memory_format=torch.channels_last)
    y = torch.arange(6) % 10 if n_classes else None
    e_ref, g_ref = autograd_energy_and_grad(model, x, y)
    with frozen(model):
        e, g = MNISTInputGradient(model).energy_and_grad(x, y)
        e_only = MNISTInputGradient(model).energy(x, y)
    assert e.shape == (6,) and g.shape == x.shape and e.dtype == g.dtype == torch.float32
    assert rel(e, e_ref) < 1e-5 and rel(e_only, e_ref) < 1e-5
    assert rel(g, g_ref) < 1e-5, f"manual grad_x E differs from autograd by {rel(g, g_ref):.1e} (relative)"


def test_manual_gradient_refuses_other_networks():
    with pytest.raises(TypeError, match="MNISTConvEnergy"):
        MNISTInputGradient(MLPEnergy(hidden=8, depth=1))
    with pytest.raises(TypeError, match="gradient='manual'.*MLPEnergy"):
        FastPaperLangevin(gradient="manual").run(MLPEnergy(hidden=8, depth=1), torch.zeros(3, 2), 1)
    with pytest.raises(ValueError, match="gradient must be one of.*'bogus'"):
        FastPaperLangevin(gradient="bogus")
    with pytest.raises(ValueError, match="check_every.*-1"):
        FastPaperLangevin(check_every=-1)


# ------------------------------------------------------------------------------ agreement with PaperLangevin
@pytest.mark.parametrize("gradient", ["manual", "autograd"])
@pytest.mark.parametrize("n_classes", [None, 10])
def test_fast_sampler_agrees_with_paper_langevin(gradient, n_classes):
    """Same generator, same noise: one step agrees to 1e-6 and 8 steps to 1e-5 in x (float32, training mode:
    each sampler gets its own copy of the network, so both run the same spectral-norm power iteration)."""
    model = mnist(n_classes=n_classes)
    x0 = images()
    y = torch.arange(6) % 10 if n_classes else None
    for n_steps, tol in ((1, 1e-6), (8, 1e-5)):
        ref = reference_run(copy.deepcopy(model), x0, n_steps, seed=2, y=y)
        fast = fast_run(copy.deepcopy(model), x0, n_steps, seed=2, y=y, gradient=gradient)
        moved = float((ref.x - x0).abs().max())
        assert moved > 1e-3, "the chain did not move: the comparison would be empty"
        diff = float((ref.x - fast.x).abs().max())
        assert diff < tol, f"{n_steps} steps: max |x_ref - x_fast| = {diff:.1e} > {tol}"
        assert torch.allclose(ref.energy, fast.energy, rtol=1e-5, atol=1e-6)


def test_fast_sampler_leaves_the_model_as_it_found_it():
    model = mnist()
    flags = [p.requires_grad for p in model.parameters()]
    fast_run(model, images(), 2, seed=0)
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(m.check_label_values for m in model.modules() if hasattr(m, "check_label_values"))


def test_labels_are_checked_once_per_chain():
    model = mnist(n_classes=10)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\), got values in \[0, 12\]"):
        fast_run(model, images(), 2, seed=0, y=torch.tensor([0, 1, 2, 3, 4, 12]))
    with labels_checked(model):   # inside: no range check per call; outside again: checked
        model(images(), torch.tensor([0, 1, 2, 3, 4, 9]))
    with pytest.raises(ValueError, match="labels"):
        model(images(), torch.tensor([0, 1, 2, 3, 4, 12]))


# ----------------------------------------------------------------------------------------------- bf16
@pytest.mark.parametrize("gradient", ["manual", "autograd"])
def test_bf16_is_within_stated_tolerance_of_fp32(gradient):
    """The tolerances FastPaperLangevin's docstring states: E within 2e-2 relative, grad_x E within 0.1
    (relative to its largest value), one Langevin step within 2e-3 of the float32 step in x."""
    model = mnist(width=8).eval()
    x = images(16).contiguous(memory_format=torch.channels_last)
    e32, g32 = autograd_energy_and_grad(model, x)
    with frozen(model):
        if gradient == "manual":
            e16, g16 = MNISTInputGradient(model, torch.bfloat16).energy_and_grad(x)
        else:
            with torch.enable_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                xg = x.detach().requires_grad_(True)
                e16 = model(xg)
                (g16,) = torch.autograd.grad(e16.sum(), xg)
            e16, g16 = e16.detach().float(), g16.detach()
    assert rel(e16, e32) < 2e-2, f"bf16 energies off by {rel(e16, e32):.1e} (relative)"
    assert rel(g16.float(), g32) < 0.1, f"bf16 gradient off by {rel(g16.float(), g32):.1e} (relative)"
    one32 = fast_run(model, x, 1, seed=3, gradient=gradient)
    one16 = fast_run(model, x, 1, seed=3, gradient=gradient, autocast_dtype=torch.bfloat16)
    assert one16.x.dtype == torch.float32     # the chain state stays float32
    assert float((one32.x - one16.x).abs().max()) < 2e-3


# ---------------------------------------------------------------------------------------------- compile
def test_functional_twin_equals_the_module():
    """The parametrization-free twin, called with the chain's weights, is the module (no compile needed)."""
    model = CIFARResNetEnergy(width=4, n_classes=10).eval()
    x, y = images(3, channels=3, side=32), torch.tensor([0, 5, 9])
    e_ref, g_ref = autograd_energy_and_grad(model, x, y)
    twin = plain_twin(model)
    assert not any(p.requires_grad for p in twin.parameters())
    with frozen(model):
        e, g = functional_energy_and_grad(twin, None)(x, y, chain_weights(model, twin))
    assert rel(e, e_ref) < 1e-5 and rel(g, g_ref) < 1e-5
    model(x, y)      # the original keeps its spectral norm (the twin's class change did not leak)
    assert hasattr(model.conv_in, "parametrizations")


def test_compiled_path_agrees_with_paper_langevin():
    """torch.compile of (E, grad_x E) through torch.func: 3 steps agree with PaperLangevin to 1e-5 (the first
    call compiles, ~10 s on a CPU); skipped where this machine cannot compile (no C++ compiler)."""
    model = mnist().eval()
    x0 = images(4)
    sampler = FastPaperLangevin(**A7, compile=True)
    try:
        fast = fast_run(model, x0, 3, seed=2, sampler=sampler)
    except Exception as err:   # inductor needs a working C++ toolchain
        if "compile" in type(err).__module__ or "inductor" in repr(err).lower() or "dynamo" in repr(err).lower():
            pytest.skip(f"torch.compile does not work on this machine: {type(err).__name__}: {err}"[:300])
        raise
    ref = reference_run(model, x0, 3, seed=2)
    assert float((ref.x - fast.x).abs().max()) < 1e-5
    again = fast_run(model, x0, 3, seed=2, sampler=sampler)   # a new chain reuses the compiled function
    assert torch.equal(again.x, fast.x) and len(sampler._compiled) == 1


# ------------------------------------------------------------------------------------------ exact replay
def test_a_resumed_chain_replays_exactly():
    """5 steps in one go == 3 steps, generator state saved, then 2 more by a fresh sampler from a fresh generator
    set to that state (eval mode: the spectral norm's power iteration, which a checkpoint holds, stays put)."""
    model = mnist().eval()
    x0 = images()
    straight = fast_run(model, x0, 5, seed=4).x
    gen = torch.Generator().manual_seed(4)
    half = FastPaperLangevin(**A7).run(model, x0, 3, clamp=(0.0, 1.0), generator=gen).x
    restored = torch.Generator()
    restored.set_state(gen.get_state())
    resumed = FastPaperLangevin(**A7).run(model, half, 2, clamp=(0.0, 1.0), generator=restored).x
    assert torch.equal(straight, resumed)
    assert float((straight - x0).abs().max()) > 1e-3


def test_training_with_the_fast_sampler_resumes_bit_exactly(tmp_path):
    """Trainer(..., sampler=fast_sampler(config)): 4 iterations straight == 2, checkpoint, rebuild, resume, 2."""
    data = images(64, seed=7)
    cfg = TrainConfig(batch_size=8, n_steps=3, buffer_capacity=64, checkpoint_every=2, channels_last=True)

    def trainer(ckpt=None):
        return Trainer(mnist(), data, cfg, ckpt_dir=ckpt, sampler=fast_sampler(cfg, "cpu"))

    straight = trainer()
    straight.train(4, progress=False)
    first = trainer(tmp_path)
    first.train(3, progress=False)
    first.close()
    resumed = trainer(tmp_path).resume()
    resumed.train(4 - resumed.iteration, progress=False)
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs after resume"
    assert straight.history == resumed.history


# --------------------------------------------------------------------------- CUDA switches, on the CPU
def test_fast_sampler_choices_per_device():
    """What fast_sampler turns on: on the CPU fp32 (the committed numbers' dtype), on CUDA bf16 autocast and
    device noise; built without a GPU (nothing here touches CUDA)."""
    cfg = TrainConfig()
    cpu, cuda = fast_sampler(cfg, "cpu"), fast_sampler(cfg, "cuda")
    assert cpu.autocast_dtype is None and cuda.autocast_dtype is torch.bfloat16
    assert cuda.device_noise and not cuda.compile and FAST_DEFAULTS["cuda"]["compile"] is False
    assert (cpu.step_size, cpu.noise_std, cpu.grad_clip) == (cfg.step_size, cfg.noise_std, cfg.grad_clip)
    assert fast_sampler(cfg, "cuda", compile=True, autocast_dtype=None).compile
    assert fast_sampler(TrainConfig(autocast_dtype="bfloat16"), "cpu").autocast_dtype is torch.bfloat16
    assert isinstance(fast_sampler(cfg, "cpu"), FastPaperLangevin)


def test_device_noise_on_the_cpu_is_the_callers_generator():
    """On the CPU device_noise changes nothing: the caller's generator draws the noise, as in PaperLangevin."""
    s = FastPaperLangevin(**A7, device_noise=True)
    gen = torch.Generator()
    assert s._chain_generator(gen, torch.device("cpu")) is gen
    assert s._chain_generator(None, torch.device("cpu")) is None


def test_deferred_finiteness_check_names_the_same_step():
    """check_every=0 (the GPU default: read once at the end of the chain) raises the same error as the per-step
    check (the CPU default), naming the first bad step."""
    calls = {"n": 0}

    def energy(x):
        calls["n"] += 1
        e = (x ** 2).flatten(1).sum(1)
        return e * float("nan") if calls["n"] >= 3 else e

    messages = []
    for every in (1, 0, 2):
        calls["n"] = 0
        with pytest.raises(NonFiniteEnergy) as err:
            FastPaperLangevin(**A7, check_every=every).run(energy, torch.rand(4, 2), 6, clamp=(0.0, 1.0))
        messages.append((str(err.value), err.value.step))
        ran = calls["n"]
        assert ran == (3 if every == 1 else 4 if every == 2 else 7)   # 6 steps and the final energy
    assert messages[0] == messages[1] == messages[2] and messages[0][1] == 3


def test_keep_freed_memory_reports_whether_it_applied():
    assert isinstance(keep_freed_memory(), bool)


def test_sampler_for_keeps_the_cpu_default(monkeypatch):
    """'auto' (the default): PaperLangevin on the CPU, so committed CPU numbers do not move; the fast path on CUDA
    (chosen, not run: nothing here needs a GPU); 'on'/'off' and $EBMLIB_FAST_SAMPLER override."""
    from ebmlib.core.fastpath import FAST_ENV, sampler_for
    cfg = TrainConfig()
    monkeypatch.delenv(FAST_ENV, raising=False)
    cpu = sampler_for(cfg, "cpu")
    assert type(cpu) is PaperLangevin and repr(cpu) == repr(cfg.make_sampler())
    assert isinstance(sampler_for(cfg, "cuda"), FastPaperLangevin)
    assert isinstance(sampler_for(cfg, "cpu", fast=True), FastPaperLangevin)
    assert type(sampler_for(cfg, "cuda", fast="off")) is PaperLangevin
    monkeypatch.setenv(FAST_ENV, "on")
    assert isinstance(sampler_for(cfg, "cpu"), FastPaperLangevin)
    monkeypatch.setenv(FAST_ENV, "sometimes")
    with pytest.raises(ValueError, match=r"\$EBMLIB_FAST_SAMPLER must be 'auto', 'on' or 'off'.*'sometimes'"):
        sampler_for(cfg, "cpu")
