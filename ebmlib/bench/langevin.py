"""Langevin and training throughput of the MNIST CNN energy: ebmlib's path vs a plain reference loop.

    python -m ebmlib bench langevin                      # width 32, batch 128, 60 steps, 3 interleaved repeats
    python -m ebmlib bench langevin --width 64           # the paper release's MNIST network (~1.25M parameters)

The reference is the loop a PyTorch user writes first: parameters' ``requires_grad`` switched off, NCHW float32
tensors, ``E(x).sum().backward()`` for grad_x E, spectral norm recomputed at every forward pass. The library
path (``ebmlib.core.samplers.PaperLangevin`` under ``ebmlib.core.train.frozen``) differs in three ways:

* channels_last (NHWC) memory layout for the model and the chains: oneDNN's convolutions are faster in it;
* spectrally normalised weights computed once per chain (``parametrize.cached``) rather than once per step;
* ``torch.autograd.grad`` w.r.t. the input only, no ``.grad`` accumulation.

``FastPaperLangevin`` (``ebmlib.core.fastpath``, what ``fast_sampler(config, device)`` builds) is timed too:
the CNN's E and grad_x E written out layer by layer (no autograd graph per step, the 1-channel input
convolution's input gradient as a 1x1 convolution and a fold), in float32 and with the network in bf16. The
table gives each path's FLOP rate (FLOPs of one step counted by ``torch.utils.flop_counter``) as a fraction of
the matmul peak measured in the same run, float32 paths against the float32 peak, bf16 against the bf16 one.
``--keep-freed-memory`` applies ``fastpath.keep_freed_memory()`` (glibc keeps freed blocks) to the whole process,
reference included: run with and without it for the two tables.

Both draw the same noise from the same seeded generator. One step agrees to float rounding; over 60 steps the
chain amplifies rounding, so the script prints the difference next to the reference's own sensitivity to a
1e-6 nudge of its start, and the mean energies of both sample sets. bf16 autocast is timed too: it pays only on CPUs with native bf16
(AVX512-BF16 / AMX); where the CPU lacks them it is emulated and slower, and the script says which it found.
Ratios are measured in one run, interleaved, and each is the median over repeats; no number here is asserted.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from ebmlib.bench.common import matmul_peak, step_flops
from ebmlib.core.fastpath import FastPaperLangevin, fast_sampler, keep_freed_memory
from ebmlib.core.nets import MNISTConvEnergy
from ebmlib.core.samplers import PaperLangevin
from ebmlib.core.train import TrainConfig, Trainer, ebm_loss, frozen

__all__ = ["main", "reference_langevin", "library_langevin", "fast_langevin"]

A7 = dict(step_size=10.0, noise_std=0.005, grad_clip=0.01)  # the paper's Langevin settings


def reference_langevin(model, x0, n_steps, generator):
    """The plain loop: same update as PaperLangevin (noise, clipped gradient step, clamp to [0, 1])."""
    for p in model.parameters():
        p.requires_grad_(False)
    x = x0.clone()
    for _ in range(n_steps):
        x = x + A7["noise_std"] * torch.randn(x.shape, generator=generator)
        x = x.detach().requires_grad_(True)
        model(x).sum().backward()
        x = (x - A7["step_size"] * x.grad.clamp(-A7["grad_clip"], A7["grad_clip"])).clamp(0, 1).detach()
    for p in model.parameters():
        p.requires_grad_(True)
    return x


def library_langevin(model, x0, n_steps, generator, autocast_dtype=None, energy=None):
    """``energy`` may be a compiled wrapper of ``model``; ``frozen`` always acts on the module itself."""
    sampler = PaperLangevin(**A7, autocast_dtype=autocast_dtype)
    with frozen(model):
        return sampler.run(model if energy is None else energy, x0, n_steps, clamp=(0.0, 1.0), generator=generator).x


def fast_langevin(model, x0, n_steps, generator, autocast_dtype=None):
    """``FastPaperLangevin`` as ``fast_sampler`` builds it on the CPU (the written-out gradient)."""
    sampler = FastPaperLangevin(**A7, autocast_dtype=autocast_dtype)
    return sampler.run(model, x0, n_steps, clamp=(0.0, 1.0), generator=generator).x


def reference_train_step(model, opt, data, n_steps, generator):
    """One plain iteration of Algorithm 1: negatives from uniform noise here (buffer bookkeeping is negligible)."""
    x_pos = data[torch.randint(data.shape[0], (data.shape[0] // 4,), generator=generator)][:128]
    x_neg = reference_langevin(model, torch.rand(x_pos.shape, generator=generator), n_steps, generator)
    loss = ebm_loss(model(x_pos), model(x_neg), alpha=1.0)
    opt.zero_grad()
    loss.backward()
    opt.step()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cpu_has_native_bf16() -> bool:
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ebmlib bench langevin", description=__doc__.split("\n")[0])
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--train-iters", type=int, default=1, help="training iterations per timed repeat")
    ap.add_argument("--no-bf16", action="store_true", help="skip the bf16 autocast timing")
    ap.add_argument("--compile", action="store_true",
                    help="also time torch.compile of the energy (compile time printed separately, not in the rate)")
    ap.add_argument("--keep-freed-memory", action="store_true",
                    help="glibc keeps freed memory (fastpath.keep_freed_memory), for every path in the process")
    ap.add_argument("--matmul-size", type=int, default=1024, help="n of the n x n matmul whose rate is the peak")
    args = ap.parse_args(argv)
    for name in ("width", "batch", "steps", "repeats", "train_iters", "matmul_size"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    kept = keep_freed_memory() if args.keep_freed_memory else False

    torch.manual_seed(0)
    ref_model = MNISTConvEnergy(width=args.width, spectral_norm=True)
    lib_model = MNISTConvEnergy(width=args.width, spectral_norm=True)
    lib_model.load_state_dict(ref_model.state_dict())
    lib_model = lib_model.to(memory_format=torch.channels_last)
    x0 = torch.rand(args.batch, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    x0_cl = x0.contiguous(memory_format=torch.channels_last)
    cpu = torch.device("cpu")
    peaks = {"fp32": matmul_peak(cpu, torch.float32, args.matmul_size),
             "bf16": matmul_peak(cpu, torch.bfloat16, args.matmul_size)}
    flops = step_flops(ref_model, x0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: {cpu_has_native_bf16()}; "
          f"MNIST CNN width {args.width}, batch {args.batch}, {args.steps} Langevin steps (A.7: step 10, noise 0.005, clip 0.01)")
    print(f"one Langevin step: {flops / 1e9:.3f} GFLOP; measured matmul peak ({args.matmul_size}x{args.matmul_size}): "
          f"fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s; "
          f"keep_freed_memory: {'on' if kept else 'off'}")

    # -- agreement: same seed, same noise ------------------------------------------------------------------
    # Over many steps Langevin amplifies float rounding (NHWC and NCHW convolutions sum in different orders),
    # so after K steps the two paths are compared with the reference's own sensitivity: the same reference
    # chain started from x0 + 1e-6 noise. Stated tolerance: one step agrees to 1e-4; after K steps the
    # difference is of the order of that sensitivity, and the mean energies agree.
    fast_copy = copy.deepcopy(lib_model)   # each chain advances the spectral norm's power iteration: same start
    one_ref = reference_langevin(ref_model, x0, 1, torch.Generator().manual_seed(2))
    one_lib = library_langevin(lib_model, x0_cl, 1, torch.Generator().manual_seed(2))
    one_fast = fast_langevin(fast_copy, x0_cl, 1, torch.Generator().manual_seed(2))
    print(f"agreement after 1 step: max |x_ref - x_lib| = {(one_ref - one_lib).abs().max():.1e}, "
          f"max |x_ref - x_fast| = {(one_ref - one_fast).abs().max():.1e} (tolerance 1e-4)")
    ref_x = reference_langevin(ref_model, x0, args.steps, torch.Generator().manual_seed(2))
    lib_x = library_langevin(lib_model, x0_cl, args.steps, torch.Generator().manual_seed(2))
    nudged = (x0 + 1e-6 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(9))).clamp(0, 1)
    ref_nudged = reference_langevin(ref_model, nudged, args.steps, torch.Generator().manual_seed(2))
    with torch.no_grad():
        e_ref, e_lib = ref_model(ref_x).mean().item(), ref_model(lib_x.contiguous()).mean().item()
    print(f"after {args.steps} steps: mean |x_ref - x_lib| = {(ref_x - lib_x).abs().mean():.1e} "
          f"(max {(ref_x - lib_x).abs().max():.1e}); reference vs itself from x0 + 1e-6: mean "
          f"{(ref_x - ref_nudged).abs().mean():.1e} (max {(ref_x - ref_nudged).abs().max():.1e}); "
          f"mean energy {e_ref:.4f} (reference) vs {e_lib:.4f} (ebmlib)")

    # -- Langevin throughput, interleaved ---------------------------------------------------------------------
    variants = {
        "reference (NCHW fp32, .backward())": lambda g, n: reference_langevin(ref_model, x0, n, g),
        "ebmlib (channels_last, cached SN)": lambda g, n: library_langevin(lib_model, x0_cl, n, g),
        "FastPaperLangevin fp32 (written-out grad)": lambda g, n: fast_langevin(lib_model, x0_cl, n, g),
    }
    if not args.no_bf16:
        variants["ebmlib + bf16 autocast"] = lambda g, n: library_langevin(lib_model, x0_cl, n, g, torch.bfloat16)
        variants["FastPaperLangevin bf16 (written-out grad)"] = lambda g, n: fast_langevin(
            lib_model, x0_cl, n, g, torch.bfloat16)
    if args.compile:
        compiled = torch.compile(lib_model)
        variants["ebmlib + torch.compile"] = lambda g, n: library_langevin(lib_model, x0_cl, n, g, energy=compiled)
    for name, fn in variants.items():  # warm-up: a 2-step chain each (compiles, for the compiled variant)
        warm = timed(lambda: fn(torch.Generator().manual_seed(0), 2))
        if "compile" in name:
            print(f"torch.compile warm-up (compilation): {warm:.1f} s, paid once per process")
    times = {k: [] for k in variants}
    for r in range(args.repeats):
        for name, fn in variants.items():
            times[name].append(timed(lambda: fn(torch.Generator().manual_seed(3 + r), args.steps)))
        for dtype, key in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):   # the peak under the same load
            peaks[key] = max(peaks[key], matmul_peak(cpu, dtype, args.matmul_size))
    print(f"matmul peak, best of {args.repeats + 1} measurements interleaved with the repeats: fp32 "
          f"{peaks['fp32'] / 1e9:.1f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s")
    ref_name = next(iter(variants))
    ref_t = statistics.median(times[ref_name])
    print(f"\n{'Langevin sampling':42s} {'image-steps/s':>14s} {'ratio':>7s} {'GFLOP/s':>8s} {'of peak':>8s}")
    for name, ts in times.items():
        t = statistics.median(ts)
        rate = flops * args.steps / t
        peak = peaks["bf16"] if "bf16" in name else peaks["fp32"]
        print(f"{name:42s} {args.batch * args.steps / t:14.1f} {ref_t / t:7.2f}x {rate / 1e9:8.1f} {rate / peak:7.1%}")

    # -- training iterations (Algorithm 1: 60-step negatives + one Adam step) ---------------------------------
    data = torch.rand(1024, 1, 28, 28, generator=torch.Generator().manual_seed(4))
    opt = torch.optim.Adam(ref_model.parameters(), lr=1e-4, betas=(0.0, 0.999))
    cfg = TrainConfig(batch_size=args.batch, n_steps=args.steps, init="noise", channels_last=True)
    trainers = {"ebmlib Trainer.step": Trainer(lib_model, data, cfg)}
    fast_model = MNISTConvEnergy(width=args.width, spectral_norm=True)
    fast_model.load_state_dict(ref_model.state_dict())
    trainers["Trainer.step, fast_sampler (fp32)"] = Trainer(fast_model, data, cfg, sampler=fast_sampler(cfg, "cpu"))
    if not args.no_bf16:
        bf_model = MNISTConvEnergy(width=args.width, spectral_norm=True)
        bf_model.load_state_dict(ref_model.state_dict())
        trainers["Trainer.step, fast_sampler (bf16)"] = Trainer(
            bf_model, data, cfg, sampler=fast_sampler(cfg, "cpu", autocast_dtype=torch.bfloat16))
    gen = torch.Generator().manual_seed(5)
    reference_train_step(ref_model, opt, data, 1, gen)  # warm-up (first optimizer step imports lazily)
    for trainer in trainers.values():
        trainer.config.n_steps, saved = 1, trainer.config.n_steps
        trainer.step()
        trainer.config.n_steps = saved
    t_train = {"reference loop": [], **{k: [] for k in trainers}}
    for _ in range(args.repeats):
        t_train["reference loop"].append(timed(lambda: [reference_train_step(ref_model, opt, data, args.steps, gen)
                                                        for _ in range(args.train_iters)]))
        for k, trainer in trainers.items():
            t_train[k].append(timed(lambda: [trainer.step() for _ in range(args.train_iters)]))
    per_iter = {k: statistics.median(v) / args.train_iters for k, v in t_train.items()}
    tr = per_iter["reference loop"]
    print(f"\n{'training (Algorithm 1)':42s} {'iterations/s':>14s} {'ratio':>7s}")
    for k, t in per_iter.items():
        print(f"{k:42s} {1 / t:14.3f} {tr / t:7.2f}x")
    return 0
