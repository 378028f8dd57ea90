"""One module or subpackage per chapter, named after its notebook (``03_mnist`` -> ``ebmlib.chapters.mnist``).

A chapter module holds that chapter's experiments and imports ``ebmlib.core``, ``ebmlib.data`` and
``ebmlib.notebook``, never another chapter.
"""
