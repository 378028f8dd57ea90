"""The sample replay buffer of section 3.2.

Langevin chains start from past samples 95% of the time and from uniform noise otherwise, which lengthens the
effective chains (like persistent CD) while the 5% restarts keep exploring new modes. The buffer is a FIFO ring
of fixed capacity (10,000 in the paper; A.4 found results insensitive above that); it is only drawn from once
it holds at least one batch, as in the paper's release. Labels are not stored: a conditional model re-labels
replayed samples with the current batch's labels (again as in the release).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

__all__ = ["ReplayBuffer"]


class ReplayBuffer:
    """Fixed-capacity FIFO store of negative samples, with the 95% / 5% initialisation rule.

    Args:
        capacity: number of samples kept (oldest overwritten first).
        sample_shape: shape of one sample, e.g. ``(2,)`` or ``(1, 28, 28)``.
        low, high: the uniform distribution fresh chains start from (the data range).
        replay_fraction: probability that a chain starts from the buffer (0.95 in the paper).
    """

    def __init__(self, capacity: int, sample_shape: tuple[int, ...], low: float = 0.0, high: float = 1.0,
                 replay_fraction: float = 0.95):
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be a positive int, got {capacity!r}")
        if not 0.0 <= replay_fraction <= 1.0:
            raise ValueError(f"replay_fraction must lie in [0, 1], got {replay_fraction!r}")
        if not low < high:
            raise ValueError(f"need low < high for the uniform restarts, got low={low}, high={high}")
        self.capacity = capacity
        self.sample_shape = tuple(sample_shape)
        self.low, self.high = float(low), float(high)
        self.replay_fraction = float(replay_fraction)
        self.storage = torch.empty((0, *self.sample_shape))
        self.next_slot = 0  # ring position of the next write once full

    def __len__(self) -> int:
        return self.storage.shape[0]

    def uniform(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        return self.low + (self.high - self.low) * torch.rand((n, *self.sample_shape), generator=generator)

    def initial_states(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        """x^0 for ``n`` chains: each from the buffer with prob. replay_fraction, else uniform (Algorithm 1)."""
        x = self.uniform(n, generator)
        if len(self) >= n and self.replay_fraction > 0:
            from_buffer = torch.rand(n, generator=generator) < self.replay_fraction
            k = int(from_buffer.sum())
            if k:
                idx = torch.randint(len(self), (k,), generator=generator)  # uniform, with replacement
                x[from_buffer] = self.storage[idx]
        return x

    def push(self, x: Tensor) -> None:
        """Store final chain states (B <- B u x~), overwriting the oldest once full."""
        x = x.detach().to("cpu", torch.float32)
        if x.shape[1:] != self.sample_shape:
            raise ValueError(f"buffer holds samples of shape {self.sample_shape}, got a batch of shape {tuple(x.shape)}")
        if x.shape[0] > self.capacity:
            x = x[-self.capacity:]
        room = self.capacity - len(self)
        if room > 0:
            take = min(room, x.shape[0])
            self.storage = torch.cat([self.storage, x[:take]])
            x = x[take:]
            self.next_slot = len(self) % self.capacity
        for start in range(0, x.shape[0], self.capacity):
            chunk = x[start:start + self.capacity]
            idx = (self.next_slot + torch.arange(chunk.shape[0])) % self.capacity
            self.storage[idx] = chunk
            self.next_slot = int((self.next_slot + chunk.shape[0]) % self.capacity)

    def newest(self, n: int) -> Tensor:
        """The ``n`` most recently pushed samples (fewer if the buffer holds fewer), newest first."""
        k = min(n, len(self))
        last = (self.next_slot - 1) if len(self) == self.capacity else len(self) - 1  # index of the newest
        return self.storage[(last - torch.arange(k)) % max(len(self), 1)].clone()

    def state_dict(self) -> dict:
        return {"storage": self.storage.clone(), "next_slot": self.next_slot, "capacity": self.capacity,
                "sample_shape": list(self.sample_shape), "low": self.low, "high": self.high,
                "replay_fraction": self.replay_fraction}

    def load_state_dict(self, state: dict) -> None:
        if tuple(state["sample_shape"]) != self.sample_shape or state["capacity"] != self.capacity:
            raise ValueError(f"buffer state is for capacity {state['capacity']} and samples {tuple(state['sample_shape'])}, "
                             f"this buffer has capacity {self.capacity} and samples {self.sample_shape}")
        self.storage = state["storage"].clone()
        self.next_slot = int(state["next_slot"])
        self.low, self.high = float(state["low"]), float(state["high"])
        self.replay_fraction = float(state["replay_fraction"])
