"""Benchmarks, run by ``python -m ebmlib bench NAME``: each prints ratios against a plain reference loop measured
in the same run and asserts nothing."""
