"""Benchmarks, run by ``python -m ebmlib bench NAME``: each prints ratios against a plain reference loop measured
in the same run and asserts nothing.

* ``langevin``: the MNIST CNN (``ebmlib/bench/langevin.py``);
* ``resnet``: the A.6 CIFAR ResNets, with FLOPs, the fraction of the measured matmul peak and the paper recipes'
  device-hours (``ebmlib/bench/resnet.py``).

The commands, the measured tables and the machine they were measured on: ``benchmarks/README.md``.
"""
