"""Chapter 01: sampling from known 2D energies (MH, ULA, MALA, HMC and the paper's Langevin against exact densities)."""
from __future__ import annotations

__all__: list[str] = []
