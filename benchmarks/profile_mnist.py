"""Where a CPU Langevin step of the MNIST CNN spends its time: the reference loop against FastPaperLangevin.

    OMP_NUM_THREADS=1 python benchmarks/profile_mnist.py [--width 32] [--batch 128] [--steps 10] [--keep-freed-memory]

Runs ``torch.profiler`` over ``--steps`` steps of each path (after a warm-up chain) and groups the operators:
convolutions forward, convolutions' input gradient, activations and their backward, memory copies (layout
conversions), the rest. Prints ms per step per group, and the FLOP rate of the whole step (FLOPs counted by
torch.utils.flop_counter) and of the convolution groups alone against the fp32 / bf16 matmul peak measured in the
same run: a path whose convolutions already run near the matmul peak cannot be made faster without fewer FLOPs
or a cheaper number format.
"""
from __future__ import annotations

import argparse
import collections

import torch
from torch.profiler import ProfilerActivity, profile

from ebmlib.bench.common import matmul_peak, step_flops
from ebmlib.bench.langevin import fast_langevin, reference_langevin
from ebmlib.core.fastpath import keep_freed_memory
from ebmlib.core.nets import MNISTConvEnergy

GROUPS = {
    "conv forward": ("aten::mkldnn_convolution", "aten::_convolution", "aten::convolution", "aten::conv2d"),
    "conv input gradient": ("aten::convolution_backward", "aten::col2im", "aten::im2col", "aten::col2im_out"),
    "matmul (fc layers)": ("aten::mm", "aten::addmm", "aten::addmv_", "aten::linear", "aten::matmul"),
    "activations (fwd + bwd)": ("aten::silu", "aten::silu_backward", "aten::leaky_relu",
                                "aten::leaky_relu_backward"),
    "copies / layout": ("aten::copy_", "aten::contiguous", "aten::clone", "aten::to", "aten::_to_copy"),
}


def grouped(prof) -> dict[str, float]:
    """Self CPU time (ms) per group, over every operator of the profile."""
    out = collections.defaultdict(float)
    for ev in prof.key_averages():
        group = next((g for g, names in GROUPS.items() if ev.key in names), "other")
        out[group] += ev.self_cpu_time_total / 1e3
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--keep-freed-memory", action="store_true", help="fastpath.keep_freed_memory() for the process")
    args = ap.parse_args()
    kept = keep_freed_memory() if args.keep_freed_memory else False
    torch.manual_seed(0)
    ref = MNISTConvEnergy(width=args.width, spectral_norm=True)
    lib = MNISTConvEnergy(width=args.width, spectral_norm=True)
    lib.load_state_dict(ref.state_dict())
    lib = lib.to(memory_format=torch.channels_last)
    x0 = torch.rand(args.batch, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    x0_cl = x0.contiguous(memory_format=torch.channels_last)
    flops = step_flops(ref, x0)
    cpu = torch.device("cpu")
    peak = {"fp32": matmul_peak(cpu, torch.float32, 1024), "bf16": matmul_peak(cpu, torch.bfloat16, 1024)}
    paths = {
        "reference fp32": ("fp32", lambda n: reference_langevin(ref, x0, n, torch.Generator().manual_seed(3))),
        "FastPaperLangevin fp32": ("fp32", lambda n: fast_langevin(lib, x0_cl, n, torch.Generator().manual_seed(3))),
        "FastPaperLangevin bf16": ("bf16", lambda n: fast_langevin(lib, x0_cl, n, torch.Generator().manual_seed(3),
                                                                   torch.bfloat16)),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; MNIST CNN width {args.width}, batch "
          f"{args.batch}; one step {flops / 1e9:.3f} GFLOP; matmul peak fp32 {peak['fp32'] / 1e9:.1f}, "
          f"bf16 {peak['bf16'] / 1e9:.1f} GFLOP/s (1024x1024); keep_freed_memory: {'on' if kept else 'off'}")
    rows = {}
    for name, (dtype, fn) in paths.items():
        fn(2)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn(args.steps)
        rows[name] = (dtype, {k: v / args.steps for k, v in grouped(prof).items()})
    groups = list(GROUPS) + ["other"]
    print(f"\n{'ms per Langevin step':26s}" + "".join(f"{n:>24s}" for n in rows))
    for g in groups:
        print(f"{g:26s}" + "".join(f"{r[g]:24.1f}" for _, r in rows.values()))
    print(f"{'total':26s}" + "".join(f"{sum(r.values()):24.1f}" for _, r in rows.values()))
    print(f"{'step GFLOP/s, of peak':26s}" + "".join(
        f"{flops / sum(r.values()) / 1e6:15.1f} ({flops / sum(r.values()) * 1e3 / peak[d]:5.1%})"
        for d, r in rows.values()))
    conv = ("conv forward", "conv input gradient", "matmul (fc layers)")
    print(f"{'conv+fc GFLOP/s, of peak':26s}" + "".join(
        f"{flops / sum(r[g] for g in conv) / 1e6:15.1f} ({flops / sum(r[g] for g in conv) * 1e3 / peak[d]:5.1%})"
        for d, r in rows.values()))


if __name__ == "__main__":
    main()
