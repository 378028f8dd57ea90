"""Langevin and training throughput of the A.6 CIFAR ResNets: ebmlib's paths vs a plain reference loop.

    python -m ebmlib bench resnet                       # paper size: width 128, batch 128, K = 60 (a GPU job)
    python -m ebmlib bench resnet --quick               # width 8, batch 16, K = 4: seconds on a CPU
    python -m ebmlib bench resnet --models resnet32,imagenet32 --compile

Models (``nets.CIFARResNetEnergy``): ``resnet32`` (conditional CIFAR-10, 10 classes, 5.35 M parameters at width
128), ``resnet32_large`` (unconditional CIFAR-10, 18.6 M) and ``imagenet32``, the release's ImageNet32
ResNet32Wider (``nets.imagenet32_energy``: input conv 3 -> 128, blocks of F, 2F, 4F with F = 256, 1000 classes,
89.6 M parameters at width 128), run at the ImageNet32 recipe's per-GPU batch, 32, i.e. a quarter of ``--batch``.

Per model the script prints, all measured in this one run:

* the FLOPs of one Langevin step (forward and input gradient, counted by ``torch.utils.flop_counter``);
* Langevin image-steps/s of: the reference loop (NCHW float32, ``E(x).sum().backward()``, spectral norm recomputed
  at every forward pass, noise drawn on the chains' device), ``PaperLangevin`` as the Trainer runs it
  (channels_last, spectral norm cached per chain), ``FastPaperLangevin`` in float32 (noise drawn on the device, no
  host read inside the loop on a GPU) and with bf16 autocast, optionally compiled (``--compile``), each with its
  ratio to the reference and its fraction of the device's matmul peak, measured here too (a square matmul in
  float32 and in bf16, the best of a few repeats);
* training iterations/s of Algorithm 1 (K-step negatives, both energies, Adam): the reference loop,
  ``Trainer.step`` with the default sampler and with ``fast_sampler(config, device)``;
* the hours the paper's recipes would take at the measured rate (the iteration counts assumed, and where they
  come from, are printed with them).

One step of each path is compared with the reference's from the same start and the same noise. Timings are
interleaved and each rate is the median over ``--repeats``; nothing is asserted.
"""
from __future__ import annotations

import argparse
import copy
import statistics

import torch

from ebmlib.bench.common import matmul_peak, step_flops, timed
from ebmlib.core.fastpath import FastPaperLangevin, fast_sampler
from ebmlib.core.nets import CIFARResNetEnergy, count_parameters
from ebmlib.core.samplers import PaperLangevin
from ebmlib.core.train import TrainConfig, Trainer, ebm_loss, frozen

__all__ = ["main", "MODELS", "RECIPES", "build_model", "reference_langevin", "step_flops", "matmul_peak",
           "recipe_hours"]

A7 = dict(step_size=10.0, noise_std=0.005, grad_clip=0.01)  # the paper's Langevin settings

#: name -> (layout, width multiplier, classes, batch divisor): see the module docstring
MODELS = {
    "resnet32": ("resnet32", 1, 10, 1),
    "resnet32_large": ("resnet32_large", 1, None, 1),
    "imagenet32": ("resnet32_wider", 1, 1000, 4),
}


def _recipes():
    """The paper's compute (A.7: CIFAR-10 on 1 GPU for 2 days, ImageNet32 on 32 GPUs for 5 days) and the
    iteration counts assumed. The paper gives no iteration count; for CIFAR-10 the book's paper preset's
    (``ebmlib/presets/ood_robustness.py``, itself an estimate of the 2-day budget); for ImageNet32 the same count
    per worker, an assumption stated with the result."""
    from ebmlib.presets import ood_robustness
    n_cifar = ood_robustness.PAPER["models"]["cifar10_cond_replay"]["n_iters"]
    return {
        "CIFAR-10": dict(gpus=1, days=2, iters=n_cifar,
                         source="ebmlib/presets/ood_robustness.py PAPER (an estimate; the paper gives none)"),
        "ImageNet32": dict(gpus=32, days=5, iters=n_cifar,
                           source="assumed equal to CIFAR-10's per worker (the paper gives none)"),
    }


RECIPES = _recipes()


def build_model(name: str, width: int, seed: int = 0) -> CIFARResNetEnergy:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    layout, mult, classes, _ = MODELS[name]
    torch.manual_seed(seed)
    return CIFARResNetEnergy(width=width * mult, layout=layout, n_classes=classes)


def reference_langevin(model, x0, n_steps, generator, y=None):
    """The plain loop: PaperLangevin's update (noise, clipped gradient step, clamp to [0, 1]) written as a PyTorch
    user writes it first; ``generator`` lives on the chains' device."""
    for p in model.parameters():
        p.requires_grad_(False)
    x = x0.clone()
    for _ in range(n_steps):
        x = x + A7["noise_std"] * torch.randn(x.shape, generator=generator, device=x.device)
        x = x.detach().requires_grad_(True)
        (model(x) if y is None else model(x, y)).sum().backward()
        x = (x - A7["step_size"] * x.grad.clamp(-A7["grad_clip"], A7["grad_clip"])).clamp(0, 1).detach()
    for p in model.parameters():
        p.requires_grad_(True)
    return x


def reference_train_step(model, opt, data, labels, batch, n_steps, generator):
    """One plain iteration of Algorithm 1, negatives from uniform noise (buffer bookkeeping is negligible)."""
    idx = torch.randint(data.shape[0], (batch,), generator=generator, device=data.device)
    x_pos, y = data[idx], (labels[idx] if labels is not None else None)
    x0 = torch.rand(x_pos.shape, generator=generator, device=data.device)
    x_neg = reference_langevin(model, x0, n_steps, generator, y)
    e_pos, e_neg = (model(x_pos), model(x_neg)) if y is None else (model(x_pos, y), model(x_neg, y))
    loss = ebm_loss(e_pos, e_neg, alpha=1.0)
    opt.zero_grad()
    loss.backward()
    opt.step()


def recipe_hours(seconds_per_iter: float, recipe: dict) -> dict:
    """Device-hours of ``recipe`` at ``seconds_per_iter`` per iteration per worker (every worker runs its own
    batch; communication not counted), and the iterations the paper's own budget buys at that rate."""
    budget = recipe["gpus"] * recipe["days"] * 24
    hours = recipe["iters"] * seconds_per_iter * recipe["gpus"] / 3600
    return dict(hours=hours, wall_days=hours / recipe["gpus"] / 24, per_1000=1000 * seconds_per_iter / 3600,
                budget=budget, budget_iters=budget * 3600 / (seconds_per_iter * recipe["gpus"]))


def _variants(args, device, ref_model, lib_model, x0, x0_cl, y):
    def gen(seed):
        return torch.Generator(device=device).manual_seed(seed)

    def library(sampler):
        # each path on its own copy: in training mode every chain advances the spectral norm's power iteration,
        # so copies that ran the same number of chains hold the same weights (the one-step comparison needs it)
        model = copy.deepcopy(lib_model)

        def run(seed, n):
            with frozen(model):
                return sampler.run(model, x0_cl, n, y=y, clamp=(0.0, 1.0),
                                   generator=torch.Generator().manual_seed(seed)).x
        return run

    variants = {
        "reference (NCHW fp32, .backward())": lambda s, n: reference_langevin(ref_model, x0, n, gen(s), y),
        "PaperLangevin (channels_last, cached SN)": library(PaperLangevin(**A7)),
        "FastPaperLangevin fp32": library(FastPaperLangevin(**A7)),
    }
    if not args.no_bf16:
        variants["FastPaperLangevin bf16 autocast"] = library(FastPaperLangevin(**A7, autocast_dtype=torch.bfloat16))
    if args.compile:
        dtype = None if args.no_bf16 else torch.bfloat16
        variants["FastPaperLangevin compiled" + (" bf16" if dtype else "")] = library(
            FastPaperLangevin(**A7, autocast_dtype=dtype, compile=True))
    return variants


def bench_model(name: str, args, device: torch.device, peaks: dict) -> dict:
    batch = max(1, args.batch // MODELS[name][3])
    ref_model = build_model(name, args.width).to(device)
    lib_model = copy.deepcopy(ref_model).to(memory_format=torch.channels_last)
    classes = MODELS[name][2]
    x0 = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(1)).to(device)
    x0_cl = x0.contiguous(memory_format=torch.channels_last)
    y = (torch.arange(batch) % classes).to(device) if classes else None
    flops = step_flops(ref_model, x0, y)
    print(f"\n== {name}: width {args.width * MODELS[name][1]}, {count_parameters(ref_model) / 1e6:.2f} M parameters, "
          f"batch {batch}, K = {args.steps}; one Langevin step: {flops / 1e9:.3f} GFLOP "
          f"({flops / batch / 1e9:.4f} GFLOP per image)")

    variants = _variants(args, device, ref_model, lib_model, x0, x0_cl, y)
    # agreement after one step, same start and noise stream: the reference draws its noise from a generator on
    # the device, the library paths from the CPU generator (FastPaperLangevin on a GPU seeds a device generator
    # from it), so on a GPU only the library paths share noise; on the CPU all do
    one = {k: fn(2, 1) for k, fn in variants.items()}
    base = one["PaperLangevin (channels_last, cached SN)"]
    for k, v in one.items():
        if k.startswith("reference") and device.type != "cpu":
            continue
        print(f"one step, max |x - x_PaperLangevin|: {k:42s} {(v.float() - base.float()).abs().max().item():.1e}")
    for k, fn in variants.items():                       # warm-up (compiles, for the compiled variant)
        t = timed(lambda: fn(0, 2), device)
        if "compiled" in k:
            print(f"torch.compile warm-up (compilation): {t:.1f} s, paid once per process")
    times = {k: [] for k in variants}
    for r in range(args.repeats):
        for k, fn in variants.items():
            times[k].append(timed(lambda: fn(3 + r, args.steps), device))
        for dtype, key in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):   # the peak under the same load
            if peaks[key] == peaks[key]:                                         # not NaN (--no-bf16)
                peaks[key] = max(peaks[key], matmul_peak(device, dtype, peaks["n"]))
    print(f"matmul peak, best of the measurements so far (one per repeat): fp32 {peaks['fp32'] / 1e12:.3f} "
          f"TFLOP/s, bf16 {peaks['bf16'] / 1e12:.3f} TFLOP/s")
    ref_t = statistics.median(next(iter(times.values())))
    print(f"\n{'Langevin sampling':44s} {'image-steps/s':>14s} {'ratio':>7s} {'TFLOP/s':>8s} {'of peak':>8s}")
    rates = {}
    for k, ts in times.items():
        t = statistics.median(ts)
        achieved = flops * args.steps / t
        peak = peaks["bf16"] if "bf16" in k else peaks["fp32"]
        rates[k] = batch * args.steps / t
        print(f"{k:44s} {rates[k]:14.1f} {ref_t / t:6.2f}x {achieved / 1e12:8.3f} {achieved / peak:7.1%}")

    # -- training iterations (Algorithm 1) ------------------------------------------------------------------
    n_data = 4 * batch
    data = torch.rand(n_data, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    labels = (torch.arange(n_data) % classes) if classes else None
    cfg = TrainConfig(batch_size=batch, n_steps=args.steps, init="noise", channels_last=True)
    source = (data, labels) if classes else data
    trainers = {
        "ebmlib Trainer.step (PaperLangevin)": Trainer(copy.deepcopy(ref_model), source, cfg, device=device),
        "ebmlib Trainer.step (fast_sampler)": Trainer(copy.deepcopy(ref_model), source, cfg, device=device,
                                                      sampler=fast_sampler(cfg, device)),
    }
    opt = torch.optim.Adam(ref_model.parameters(), lr=1e-4, betas=(0.0, 0.999))
    data_d, labels_d = data.to(device), (labels.to(device) if labels is not None else None)
    gen = torch.Generator(device=device).manual_seed(5)
    reference_train_step(ref_model, opt, data_d, labels_d, batch, 1, gen)     # warm-up
    for tr in trainers.values():
        tr.config.n_steps, saved = 1, tr.config.n_steps
        tr.step()
        tr.config.n_steps = saved
    t_train = {"reference loop": [], **{k: [] for k in trainers}}
    for _ in range(args.repeats):
        t_train["reference loop"].append(timed(lambda: [reference_train_step(
            ref_model, opt, data_d, labels_d, batch, args.steps, gen) for _ in range(args.train_iters)], device))
        for k, tr in trainers.items():
            t_train[k].append(timed(lambda: [tr.step() for _ in range(args.train_iters)], device))
    per_iter = {k: statistics.median(v) / args.train_iters for k, v in t_train.items()}
    tr_ref = per_iter["reference loop"]
    print(f"\n{'training (Algorithm 1)':44s} {'iterations/s':>14s} {'ratio':>7s}")
    for k, t in per_iter.items():
        print(f"{k:44s} {1 / t:14.4f} {tr_ref / t:6.2f}x")
    return dict(name=name, batch=batch, flops=flops, rates=rates, per_iter=per_iter)


def _print_hours(results: list[dict], args, device: torch.device) -> None:
    unit = "GPU-hours" if device.type == "cuda" else f"{device.type.upper()}-hours (this machine, not a GPU)"
    paper_size = args.width == 128 and args.batch == 128 and args.steps == 60
    print(f"\n== the paper's recipes at the measured training rate ({unit})")
    if not paper_size:
        print(f"   measured at width {args.width}, batch {args.batch}, K = {args.steps}, not the paper's "
              "128 / 128 / 60: the hours below are for that size, not the paper's")
    for recipe_name, models in (("CIFAR-10", ("resnet32", "resnet32_large")), ("ImageNet32", ("imagenet32",))):
        r = RECIPES[recipe_name]
        print(f"{recipe_name}: paper budget {r['gpus']} GPU x {r['days']} days = {r['gpus'] * r['days'] * 24} "
              f"GPU-hours; iterations assumed {r['iters']:,} per worker ({r['source']})")
        done = [m for m in results if m["name"] in models]
        if not done:
            print(f"   not measured (add --models {','.join(models)})")
        for m in done:
            for k, t in m["per_iter"].items():
                h = recipe_hours(t, r)
                print(f"   {m['name']:15s} {k:38s} {h['hours']:10.1f} h total ({h['wall_days']:.2f} days on "
                      f"{r['gpus']}), {h['per_1000']:.2f} h per 1,000 iterations; the paper's budget buys "
                      f"{h['budget_iters']:,.0f} iterations")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ebmlib bench resnet", description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="resnet32,resnet32_large",
                    help=f"comma-separated, of {sorted(MODELS)}")
    ap.add_argument("--width", type=int, default=128, help="base width (the paper's: 128)")
    ap.add_argument("--batch", type=int, default=128, help="the paper's: 128 (ImageNet32 runs a quarter)")
    ap.add_argument("--steps", type=int, default=60, help="Langevin steps K (A.7: 60)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--train-iters", type=int, default=1, help="training iterations per timed repeat")
    ap.add_argument("--quick", action="store_true",
                    help="defaults width 8, batch 16, K = 4, 2 repeats: seconds on a CPU")
    ap.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    ap.add_argument("--matmul-size", type=int, default=None, help="n of the n x n peak matmul (default by device)")
    ap.add_argument("--no-bf16", action="store_true", help="skip the bf16 autocast variant")
    ap.add_argument("--compile", action="store_true", help="also time the torch.compile'd fast path")
    if ap.parse_known_args(argv)[0].quick:       # --quick sets the defaults; explicit sizes still win
        ap.set_defaults(width=8, batch=16, steps=4, repeats=2)
    args = ap.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in MODELS]
    if bad:
        ap.error(f"unknown model(s) {bad}; expected a comma-separated list of {sorted(MODELS)}")
    for name in ("width", "batch", "steps", "repeats", "train_iters"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        # cuDNN convolutions use TF32 by default while float32 matmuls do not: a float32 path's "of peak" (the
        # float32 matmul's rate) can then pass 100%; printed so the table can be read
        what = (f"{torch.cuda.get_device_name(device)} (TF32: convolutions {torch.backends.cudnn.allow_tf32}, "
                f"matmul {torch.backends.cuda.matmul.allow_tf32})")
    else:
        what = f"CPU, {torch.get_num_threads()} threads"
    n = args.matmul_size or (8192 if device.type == "cuda" else 1024)
    peaks = {"n": n, "fp32": matmul_peak(device, torch.float32, n),
             "bf16": matmul_peak(device, torch.bfloat16, n) if not args.no_bf16 else float("nan")}
    print(f"torch {torch.__version__}, device {what}; measured matmul peak ({n}x{n}): fp32 "
          f"{peaks['fp32'] / 1e12:.3f} TFLOP/s, bf16 {peaks['bf16'] / 1e12:.3f} TFLOP/s")
    print(f"Langevin: A.7 step 10, noise 0.005, clip 0.01; batch {args.batch}, K = {args.steps}, "
          f"{args.repeats} interleaved repeats (medians)")
    results = [bench_model(m, args, device, peaks) for m in models]
    _print_hours(results, args, device)
    return 0
