"""The bibliography parses, every key cited in the book, its notebooks and ebmlib's docstrings exists, and no
entry is there twice: a broken .bib otherwise surfaces only at the end of the book build."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIB = ROOT / "book" / "references.bib"


def test_references_parse_with_unique_keys():
    pybtex = pytest.importorskip("pybtex.database")
    text = BIB.read_text()
    keys = re.findall(r"^@\w+\{([^,]+),", text, flags=re.M)
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)
    assert len(pybtex.parse_file(str(BIB)).entries) == len(keys)


def test_every_cited_key_is_in_the_bibliography():
    keys = set(re.findall(r"^@\w+\{([^,]+),", BIB.read_text(), flags=re.M))
    cited = set()
    for path in [*ROOT.glob("book/*.md"), *ROOT.glob("notebooks/*.py")]:
        for group in re.findall(r"\{cite(?::[tp])?\}`([^`]+)`", path.read_text()):
            cited.update(k.strip() for k in group.split(","))
    for path in ROOT.glob("ebmlib/**/*.py"):
        cited.update(re.findall(r"references\.bib\s+``(\w+)``", path.read_text()))
    assert not cited - keys, sorted(cited - keys)
