"""Checks over the built HTML of the book: what a reader would see that a build does not report.

``check_site(_build/html)`` lists, per page, Markdown tables that were not rendered (paragraphs of ``| ... |``),
math left as ``$...$`` in the text, Python tracebacks in outputs, paths of the machine that ran the notebook, and
``<Figure size ...>`` lines that matplotlib prints when a figure is returned instead of shown. CI fails on any.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

__all__ = ["page_problems", "check_site"]

#: elements whose text is code or markup, not prose (a ``$`` or ``|`` there is meant)
_VERBATIM = {"script", "style", "code", "pre", "kbd", "samp", "textarea", "svg", "math"}
_MACHINE_PATH = re.compile(r"(?<![\w.:/])/(?:work|tmp|root|home|Users)/[\w.-]+")
_DOLLAR_MATH = re.compile(r"(?<![\\$\w])\$[^\s$][^$]*?\$(?!\w)")


class _Text(HTMLParser):
    """Collects (text, inside_verbatim, inside_math) of every text node, and raw pipe-table paragraphs."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []
        self.chunks: list[tuple[str, bool]] = []
        self.paragraphs: list[str] = []
        self._para: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        classes = dict(attrs).get("class") or ""
        self.stack.append((tag, tag in _VERBATIM or "math" in classes.split() or "highlight" in classes))
        if tag == "p":
            self._para = []

    def handle_endtag(self, tag):
        while self.stack:
            top, _ = self.stack.pop()
            if top == tag:
                break
        if tag == "p" and self._para is not None:
            self.paragraphs.append("".join(self._para))
            self._para = None

    def handle_data(self, data):
        verbatim = any(v for _, v in self.stack)
        self.chunks.append((data, verbatim))
        if self._para is not None:
            self._para.append(data)


def page_problems(html: str) -> list[str]:
    """What is wrong with one built page, as short descriptions (empty when the page is clean)."""
    parser = _Text()
    parser.feed(html)
    problems = []
    for para in parser.paragraphs:
        text = para.strip()
        if text.startswith("|") and text.count("|") >= 4:
            problems.append(f"unrendered table: {text[:60]!r}")
    for text, verbatim in parser.chunks:
        if "Traceback (most recent call last)" in text:
            problems.append("a Python traceback in an output")
        if "<Figure size" in text:
            problems.append(f"a matplotlib repr instead of a figure: {text.strip()[:50]!r}")
        for m in _MACHINE_PATH.finditer(text):
            problems.append(f"a path of the build machine: {m.group(0)!r}")
        if not verbatim:
            for m in _DOLLAR_MATH.finditer(text):
                problems.append(f"unrendered math: {m.group(0)[:40]!r}")
    return problems


def check_site(site: str | Path) -> dict[str, list[str]]:
    """``page -> problems`` for every page of a built book with any (empty when the book is clean)."""
    site = Path(site)
    if not (site / "index.html").is_file():
        raise FileNotFoundError(f"no built book at {site} (expected {site / 'index.html'}); run "
                                "`jupyter-book build .` first")
    out = {}
    for page in sorted(site.rglob("*.html")):
        if "_static" in page.parts or page.name in ("search.html", "genindex.html"):
            continue
        found = page_problems(page.read_text(errors="replace"))
        if found:
            out[str(page.relative_to(site))] = found
    return out
