"""What the benchmarks share: timing with device synchronisation, the measured matmul peak, FLOP counting."""
from __future__ import annotations

import copy
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["sync", "timed", "matmul_peak", "step_flops"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device = torch.device("cpu")) -> float:
    """Seconds of ``fn()``, the device's queue drained before and after (a GPU runs kernels asynchronously)."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, repeats: int = 5) -> float:
    """FLOP/s of the best of ``repeats`` n x n matmuls (one warm-up first): the device's practical peak, measured
    in the same run as the rates compared with it."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = min(timed(lambda: a @ b, device) for _ in range(repeats))
    return 2 * n ** 3 / best


def step_flops(model, x, y=None) -> int:
    """FLOPs of one Langevin step at this batch: E(x) and grad_x E with the parameters frozen, on a copy of the
    model (counted with ``.backward()``: FlopCounterMode's module tracking does not support
    ``torch.autograd.grad``)."""
    model = copy.deepcopy(model)
    for p in model.parameters():
        p.requires_grad_(False)
    x = x.detach().clone().requires_grad_(True)
    with FlopCounterMode(display=False) as counter:
        (model(x) if y is None else model(x, y)).sum().backward()
    return int(counter.get_total_flops())
