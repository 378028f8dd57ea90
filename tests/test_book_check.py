"""The HTML check of the built book: each defect it looks for is found on a page that has it and not on one that
does not; and, when CI has just built the book ($EBMLIB_BUILT_BOOK), the built pages are clean."""
import os

import pytest

from ebmlib.notebook.book_check import check_site, page_problems

CLEAN = """<html><body><p>Energy <span class="math notranslate nohighlight">\\(E(x)\\)</span> costs $5? No.</p>
<table><tr><td>a</td></tr></table><pre>x = "$HOME/work"; print("| a | b |")</pre>
<div class="highlight"><pre>Traceback-free code with $x$ in a string</pre></div>
<p>See https://example.org/tmp/page and the folder notebooks/_results.</p></body></html>"""


def test_a_clean_page_has_no_problems():
    assert page_problems(CLEAN) == []


@pytest.mark.parametrize("html,expected", [
    ("<p>| model | FID |\n|---|---|\n| a | 1 |</p>", "unrendered table"),
    ("<p>the step $h = 0.05$ is small</p>", "unrendered math"),
    ("<div class='output'><pre>Traceback (most recent call last):\n  File</pre></div>", "traceback"),
    ("<p>metrics written to /work/main/notebooks/_results/x.json</p>", "path of the build machine"),
    ("<div><pre>&lt;Figure size 640x480 with 1 Axes&gt;</pre></div>", "matplotlib repr"),
])
def test_each_defect_is_found(html, expected):
    found = page_problems(f"<html><body>{html}</body></html>")
    assert any(expected in p for p in found), found


def test_check_site_needs_a_built_book(tmp_path):
    with pytest.raises(FileNotFoundError, match="no built book"):
        check_site(tmp_path)
    (tmp_path / "index.html").write_text(CLEAN)
    (tmp_path / "bad.html").write_text("<p>the step $h$ here</p>")
    assert list(check_site(tmp_path)) == ["bad.html"]


@pytest.mark.skipif(not os.environ.get("EBMLIB_BUILT_BOOK"), reason="set EBMLIB_BUILT_BOOK=_build/html after a build")
def test_the_built_book_is_clean():
    problems = check_site(os.environ["EBMLIB_BUILT_BOOK"])
    assert not problems, "\n".join(f"{page}: {p}" for page, ps in problems.items() for p in ps[:5])
