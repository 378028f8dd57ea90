"""The architecture as a test: which floor may import which, public names, and the notebook pairs.

Floors (``ebmlib/__init__.py``): core <- data <- notebook <- chapters; presets are plain data; the command line
sits on top. A chapter imports no other chapter.
"""
from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "ebmlib"
NOTEBOOKS = ROOT / "notebooks"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every ebmlib module that ``path`` imports, relative imports resolved, lazy imports inside functions too."""
    tree = ast.parse(path.read_text())
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found |= {f"{mod}.{a.name}" for a in node.names}   # "from ebmlib.core import train" imports a module
    return {m for m in found if m == "ebmlib" or m.startswith("ebmlib.")}


def _floor(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "top"
    if parts[1] == "chapters" and len(parts) > 2:
        return "chapters." + parts[2]
    return parts[1] if parts[1] in ("core", "data", "notebook", "presets", "chapters") else "top"


ALLOWED = {
    "core": {"core"},
    "data": {"core", "data"},
    "presets": {"presets"},
    "notebook": {"core", "data", "notebook", "presets"},
}
SOURCES = sorted(p for p in PKG.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path):
    me = _module_name(path)
    floor = _floor(me)
    if floor == "top" or floor == "chapters":
        return                                        # the command line and the chapters package's face
    allowed = ALLOWED.get(floor, {"core", "data", "notebook", "presets", floor})
    bad = []
    for mod in _imports(path):
        target = _floor(mod)
        if target == "top" and mod != "ebmlib":
            bad.append(mod)
        elif target not in allowed and target != "top":
            bad.append(mod)
    assert not bad, f"{me} ({floor}) imports {sorted(bad)}; it may import only {sorted(allowed)}"


def test_no_chapter_imports_another():
    for path in SOURCES:
        me = _floor(_module_name(path))
        if not me.startswith("chapters."):
            continue
        others = {_floor(m) for m in _imports(path)} - {me}
        assert not {o for o in others if o.startswith("chapters")}, f"{path.relative_to(ROOT)} imports {others}"


def test_the_test_sees_a_violation(tmp_path):
    """The walker itself: a relative import from core into a chapter is found."""
    f = PKG / "core" / "_probe_layout.py"
    f.write_text("from ..chapters import sampling\nfrom . import samplers\n")
    try:
        found = _imports(f)
    finally:
        f.unlink()
    assert "ebmlib.chapters.sampling" in found and "ebmlib.core.samplers" in found


@pytest.mark.parametrize("path", [p for p in SOURCES if p.name not in ("__init__.py", "__main__.py")],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_lists_its_public_names(path):
    tree = ast.parse(path.read_text())
    names = [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)]
    names += [node.target.id for node in tree.body if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)]
    if _floor(_module_name(path)) == "presets":
        return                                        # a preset file is plain data: SMOKE, DEMO, PAPER, ...
    assert "__all__" in names, f"{path.relative_to(ROOT)} has no __all__"
    module = importlib.import_module(_module_name(path))
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{_module_name(path)}.__all__ names {missing}, which it does not define"


# ------------------------------------------------------------------------------------------ notebook pairs
def _chapter_sources() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def test_every_chapter_is_a_pair():
    py = {p.stem for p in _chapter_sources()}
    nb = {p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")}
    assert py == nb and py, f"unpaired chapters: .py only {sorted(py - nb)}, .ipynb only {sorted(nb - py)}"


@pytest.mark.parametrize("source", _chapter_sources(), ids=lambda p: p.stem)
def test_pair_in_sync(source):
    """The .ipynb's cells are the .py's cells (run ``jupytext --sync notebooks/*.py`` after editing either)."""
    jupytext = pytest.importorskip("jupytext")
    text = jupytext.read(source)
    committed = json.loads(source.with_suffix(".ipynb").read_text())

    def cells(cs):
        return [(c["cell_type"], "".join(c["source"]).strip()) for c in cs]

    a, b = cells(text.cells), cells(committed["cells"])
    first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    assert a == b, (f"{source.name} and its .ipynb differ from cell {first} on "
                    f"({len(a)} vs {len(b)} cells); run `jupytext --sync {source.relative_to(ROOT)}`")


@pytest.mark.parametrize("source", _chapter_sources(), ids=lambda p: p.stem)
def test_notebooks_use_public_names_only(source):
    """Every ``from ebmlib.X import name`` in a chapter names something in ``X.__all__``."""
    tree = ast.parse(source.read_text())
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ebmlib"):
            module = importlib.import_module(node.module)
            for a in node.names:
                is_module = importlib.util.find_spec(f"{node.module}.{a.name}") is not None \
                    if hasattr(module, "__path__") else False
                if not is_module and a.name not in getattr(module, "__all__", ()):
                    bad.append(f"{node.module}.{a.name}")
    assert not bad, f"{source.name} imports names that are not public: {bad}"


MAX_CELL_LINES, MAX_LINE = 15, 90


@pytest.mark.parametrize("source", _chapter_sources(), ids=lambda p: p.stem)
def test_code_cells_are_short_and_fit_the_column(source):
    """Notebooks narrate and call: a code cell of at most ~15 lines, each of at most 90 characters (the book's
    column); experiments live in the chapter's module."""
    jupytext = pytest.importorskip("jupytext")
    long, wide = [], []
    for i, cell in enumerate(jupytext.read(source).cells):
        if cell.cell_type != "code":
            continue
        lines = [line for line in cell.source.splitlines() if line.strip()]
        if len(lines) > MAX_CELL_LINES:
            long.append(f"cell {i} ({len(lines)} lines)")
        wide += [f"cell {i}: {line[:40]}... ({len(line)})" for line in lines if len(line) > MAX_LINE]
    assert not long and not wide, f"{source.name}: long cells {long}; wide lines {wide[:5]}"


@pytest.mark.parametrize("source", _chapter_sources(), ids=lambda p: p.stem)
def test_one_setup_call_and_no_scale_branches(source):
    import re
    jupytext = pytest.importorskip("jupytext")
    code = "\n".join(c.source for c in jupytext.read(source).cells if c.cell_type == "code")
    assert len(re.findall(r"\bstart\(", code)) == 1, f"{source.name}: call ebmlib.notebook.setup.start once"
    assert not re.search(r"\bscale\s*[!=]=", code), f"{source.name}: branch on the preset's values, not the scale"
    assert not re.search(r"^\s*(def|class)\s", code, re.M), f"{source.name}: functions and classes live in ebmlib"


@pytest.mark.parametrize("source", _chapter_sources(), ids=lambda p: p.stem)
def test_no_chapter_overrides_the_books_rendering(source):
    """_config.yml renders displayed Markdown as MyST for every page; a notebook's own ``mystnb`` setting (the old
    generators wrote ``render_markdown_format: gfm``) would leave its $math$ unrendered."""
    meta = json.loads(source.with_suffix(".ipynb").read_text())["metadata"]
    assert "mystnb" not in meta, f"{source.stem}.ipynb overrides the book's rendering: {meta['mystnb']}"
