"""What every chapter does first: threads, seeds, plot style, a timer and the metrics file."""
from __future__ import annotations

import torch

__all__ = ["set_threads"]


def set_threads(n: int = 1) -> int:
    """Set torch's CPU threads (small 2D MLPs run faster on one thread than on two contending ones)."""
    torch.set_num_threads(int(n))
    return torch.get_num_threads()
