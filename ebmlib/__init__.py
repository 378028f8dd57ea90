"""ebmlib: the library behind the EBM book (Du & Mordatch 2019, *Implicit Generation and Generalization in EBMs*).

Four floors, each importing only the ones below it (``tests/test_layout.py`` walks the imports):

* ``ebmlib.core``: the machinery of every chapter: exact energies, samplers, energy networks, the replay
  buffer, Algorithm 1, checkpoints and recipes, metrics, composition, AIS, restoration, classifiers.
* ``ebmlib.data``: every data set, real loaders with offline sources, and tiny real-format fixtures.
* ``ebmlib.notebook``: what the chapter notebooks call around the science: set-up, tables, plots, results JSON.
* ``ebmlib.chapters``: one module (or subpackage) per chapter with that chapter's experiments only; a chapter
  never imports another chapter.

``ebmlib.presets`` holds each chapter's sizes per scale as plain data; ``python -m ebmlib`` is the one command line.
"""
__version__ = "0.1.0"
