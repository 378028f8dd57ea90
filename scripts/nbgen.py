"""Tiny helpers for the scripts that write chapter notebooks as plain Python (``make_XX_*.py``)."""
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


class Notebook:
    """Collects markdown and code cells, then writes an unexecuted notebook that papermill can run."""

    def __init__(self):
        self.cells = []

    def md(self, text):
        self.cells.append(new_markdown_cell(text.strip("\n")))

    def code(self, text, tags=None):
        cell = new_code_cell(text.strip("\n"))
        if tags:
            cell.metadata["tags"] = tags
        self.cells.append(cell)

    def parameters(self):
        """The cell papermill overrides (tagged ``parameters``); the environment variables let CI and
        ``python -m ebmlib reproduce`` pick the scale without papermill."""
        self.code('''
import os
scale = os.environ.get("EBMLIB_SCALE", "demo")   # "smoke" | "demo" | "paper"
out_dir = os.environ.get("EBMLIB_OUT", "_results")
''', tags=["parameters"])

    def write(self, path):
        nb = new_notebook(cells=self.cells)
        nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
        nb.metadata["language_info"] = {"name": "python"}
        nb.metadata["mystnb"] = {"render_markdown_format": "gfm"}   # markdown tables from display(Markdown(...))
        nbformat.write(nb, path)
        print("wrote", path, "with", len(self.cells), "cells")
