"""``python -m ebmlib bench langevin`` at a tiny size: it runs and prints every field (no timing is asserted)."""
from __future__ import annotations

import re

import pytest

from ebmlib import cli


def test_bench_langevin_prints_every_field(capsys):
    assert cli.main(["bench", "langevin", "--width", "4", "--batch", "8", "--steps", "2", "--repeats", "1",
                     "--matmul-size", "64"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"one Langevin step: [\d.]+ GFLOP; measured matmul peak \(64x64\): fp32 [\d.]+ GFLOP/s, "
                     r"bf16 [\d.]+ GFLOP/s; keep_freed_memory: (on|off)", out)
    assert re.search(r"matmul peak, best of 2 measurements interleaved with the repeats: fp32 [\d.]+ GFLOP/s", out)
    one = re.search(r"max \|x_ref - x_lib\| = ([\d.e+-]+), max \|x_ref - x_fast\| = ([\d.e+-]+)", out)
    assert one and float(one.group(1)) < 1e-4 and float(one.group(2)) < 1e-4
    for row in ("reference (NCHW fp32, .backward())", "ebmlib (channels_last, cached SN)",
                "FastPaperLangevin fp32 (written-out grad)", "ebmlib + bf16 autocast",
                "FastPaperLangevin bf16 (written-out grad)"):
        assert re.search(re.escape(row) + r"\s+[\d.]+\s+[\d.]+x\s+[\d.]+\s+[\d.]+%", out), row
    for row in ("reference loop", "ebmlib Trainer.step", "Trainer.step, fast_sampler (fp32)",
                "Trainer.step, fast_sampler (bf16)"):
        assert re.search(re.escape(row) + r"\s+[\d.]+\s+[\d.]+x", out), row


def test_bench_langevin_refuses_bad_sizes():
    with pytest.raises(SystemExit):
        cli.main(["bench", "langevin", "--steps", "0"])
