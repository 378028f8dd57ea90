"""Are the MNIST CNN's convolutions at the CPU's matmul rate? Each layer of FastPaperLangevin's step timed
alternately with a 1024 x 1024 float32 matmul, so both see the same load on a shared machine.

    OMP_NUM_THREADS=1 python benchmarks/conv_efficiency.py [--width 32] [--batch 128] [--repeats 9]

Prints, per convolution (forward, and the input gradient as FastPaperLangevin computes it), its GFLOP/s and the
ratio of that rate to the matmul's rate measured right next to it (median over repeats). A ratio near 1 means the
layer runs at the matmul rate: only fewer FLOPs or a cheaper number format make it faster.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from ebmlib.core.fastpath import MNISTInputGradient, keep_freed_memory
from ebmlib.core.nets import MNISTConvEnergy
from ebmlib.core.train import frozen


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _flops(fn) -> int:
    with FlopCounterMode(display=False) as c:
        fn()
    return int(c.get_total_flops())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    keep_freed_memory()
    torch.manual_seed(0)
    model = MNISTConvEnergy(width=args.width).to(memory_format=torch.channels_last)
    x = torch.rand(args.batch, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    mm_flops = 2 * 1024 ** 3
    layers = []
    with frozen(model), torch.no_grad():
        grad = MNISTInputGradient(model)
        h = x
        for i, c in enumerate(grad.convs):
            conv = torch.nn.functional.conv2d
            out = conv(h, c["w"], c["b"], c["stride"], c["pad"])
            g = torch.randn_like(out)
            fwd = (lambda h=h, c=c: conv(h, c["w"], c["b"], c["stride"], c["pad"]))
            if c["w_cols"] is not None and c["stride"] == 1:
                bwd = (lambda g=g, c=c, s=h.shape: MNISTInputGradient._conv1ch_input_grad(g, c, s))
            else:
                bwd = (lambda g=g, h=h, c=c: torch.ops.aten.convolution_backward(
                    g, h, c["w"], None, [c["stride"]] * 2, [c["pad"]] * 2, [1, 1], False, [0, 0], 1,
                    [True, False, False])[0])
            layers.append((f"conv{i} forward {tuple(h.shape[1:])}->{tuple(out.shape[1:])}", fwd, _flops(fwd)))
            # the 1-channel input gradient as a 1x1 conv + fold does k*k times fewer useful FLOPs than counted for
            # the 1x1 conv; its FLOPs are taken as the dense input gradient's, i.e. the forward's
            layers.append((f"conv{i} input gradient", bwd, _flops(fwd)))
            h = model.acts[i](out)
        for name, fn, fl in layers:
            fn()
            ratios, rates = [], []
            for _ in range(args.repeats):
                t_mm, t = _time(lambda: a @ b), _time(fn)
                rates.append(fl / t)
                ratios.append((fl / t) / (mm_flops / t_mm))
            print(f"{name:44s} {fl / 1e9:7.3f} GFLOP {statistics.median(rates) / 1e9:7.1f} GFLOP/s "
                  f"{statistics.median(ratios):6.2f} x the matmul rate next to it")


if __name__ == "__main__":
    main()
