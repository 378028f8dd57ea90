"""ebmlib: the library behind the EBM book (Du & Mordatch 2019, *Implicit Generation and Generalization in EBMs*)."""
from . import energies, samplers  # noqa: F401

__version__ = "0.1.0"
