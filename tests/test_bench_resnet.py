"""``python -m ebmlib bench resnet`` at a tiny size: it runs and prints every field (no timing is asserted)."""
from __future__ import annotations

import re

import pytest

from ebmlib import cli
from ebmlib.bench import resnet


def test_bench_resnet_prints_every_field(capsys):
    assert cli.main(["bench", "resnet", "--quick", "--width", "2", "--batch", "4", "--steps", "2",
                     "--repeats", "1", "--models", "resnet32,imagenet32", "--matmul-size", "64",
                     "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"matmul peak \(64x64\): fp32 [\d.]+ TFLOP/s, bf16 [\d.]+ TFLOP/s", out)
    assert out.count("matmul peak, best of the measurements so far") == 2
    for name, batch in (("resnet32", 4), ("imagenet32", 1)):     # ImageNet32 runs a quarter of the batch
        assert re.search(rf"== {name}: width \d+, [\d.]+ M parameters, batch {batch}, K = 2; one Langevin step: "
                         r"[\d.]+ GFLOP", out), name
    for row in ("reference (NCHW fp32, .backward())", "PaperLangevin (channels_last, cached SN)",
                "FastPaperLangevin fp32", "FastPaperLangevin bf16 autocast"):
        assert len(re.findall(re.escape(row) + r"\s+[\d.]+\s+[\d.]+x\s+[\d.]+\s+[\d.]+%", out)) == 2, row
    for row in ("reference loop", "ebmlib Trainer.step (PaperLangevin)", "ebmlib Trainer.step (fast_sampler)"):
        assert len(re.findall(re.escape(row) + r"\s+[\d.]+\s+[\d.]+x", out)) == 2, row
    # one step of every path agrees with PaperLangevin's on the CPU (same noise); bf16 within its tolerance
    diffs = dict(re.findall(r"one step, max \|x - x_PaperLangevin\|: (.+?)\s+([\d.e+-]+)\n", out))
    assert float(diffs["reference (NCHW fp32, .backward())"]) < 1e-5
    assert float(diffs["FastPaperLangevin fp32"]) < 1e-5
    assert float(diffs["FastPaperLangevin bf16 autocast"]) < 2e-2
    assert "CPU-hours (this machine, not a GPU)" in out and "not the paper's 128 / 128 / 60" in out
    assert out.count("h per 1,000 iterations") == 6
    assert "ImageNet32: paper budget 32 GPU x 5 days = 3840 GPU-hours" in out


def test_recipe_hours_arithmetic():
    """1 s per iteration, 40,000 iterations on 32 workers: 40,000 * 32 / 3600 device-hours."""
    r = dict(gpus=32, days=5, iters=40_000)
    h = resnet.recipe_hours(1.0, r)
    assert h["hours"] == pytest.approx(40_000 * 32 / 3600)
    assert h["wall_days"] == pytest.approx(40_000 / 3600 / 24)
    assert h["budget_iters"] == pytest.approx(5 * 24 * 3600)
    assert resnet.RECIPES["CIFAR-10"]["gpus"] == 1 and resnet.RECIPES["ImageNet32"]["gpus"] == 32


def test_step_flops_counts_forward_and_input_gradient():
    """FLOPs of forward + input gradient are linear in the batch, and counting leaves the model as it was."""
    import torch
    model = resnet.build_model("resnet32", 2)
    x = torch.rand(2, 3, 32, 32)
    y = torch.tensor([0, 1])
    f2 = resnet.step_flops(model, x, y)
    assert resnet.step_flops(model, torch.cat([x, x]), torch.cat([y, y])) == 2 * f2
    assert all(p.requires_grad for p in model.parameters())      # counted on a copy


def test_bench_resnet_refuses_bad_arguments():
    with pytest.raises(SystemExit):
        resnet.main(["--models", "resnet99"])
    with pytest.raises(SystemExit):
        resnet.main(["--quick", "--steps", "0"])
