"""Verdicts over training seeds: where another seed's models live, and when a seed mean lies beyond its spread.

A chapter reports a verdict that a run of minutes decides over several training seeds (seed 0's models are the
chapter's own; seed s's are shipped in ``checkpoints/seed_<s>/`` or trained into ``out_dir/seed_<s>/``). A
difference counts only when the seed mean lies more than two standard errors (sd / sqrt(n), the sample sd over
seeds) from the value it is compared with; otherwise the page says it is inside the spread.
"""
from __future__ import annotations

import math
import os
import statistics
from pathlib import Path
from typing import Sequence

__all__ = ["seed_folders", "mean_sd", "mean_sd_text", "beyond_spread"]


def seed_folders(shipped_dir: str | os.PathLike, out_dir: str | os.PathLike, seed: int) -> dict[str, Path]:
    """The ``shipped_dir`` and ``out_dir`` options of a training call for seed ``seed``'s models: the
    ``seed_<s>`` folder under each."""
    return dict(shipped_dir=Path(shipped_dir) / f"seed_{seed}", out_dir=Path(out_dir) / f"seed_{seed}")


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample sd (n - 1) of ``values``; the sd of one value is nan."""
    if len(values) == 0:
        raise ValueError("mean_sd needs at least one value, got none")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


def mean_sd_text(values: Sequence[float], fmt: str) -> str:
    """"mean ± sd" of ``values`` in format ``fmt`` (a sign in ``fmt`` applies to the mean only); the mean alone
    for one value."""
    mean, sd = mean_sd(values)
    return f"{mean:{fmt}}" + (f" ± {sd:{fmt.lstrip('+')}}" if len(values) > 1 else "")


def beyond_spread(values: Sequence[float], reference: float = 0.0, n_sd: float = 2.0) -> int:
    """+1 when the mean of ``values`` (one per seed) lies above ``reference`` by more than ``n_sd`` standard
    errors, -1 when below by as much, 0 inside the spread. Fewer than two values have no spread: 0. Values
    that are all equal have none either, so any difference from ``reference`` then counts."""
    if len(values) < 2:
        return 0
    mean, sd = mean_sd(values)
    margin = n_sd * sd / math.sqrt(len(values))
    if mean - reference > margin:
        return 1
    if reference - mean > margin:
        return -1
    return 0
