"""What a reader's machine installs: declared dependencies and extras, Binder's configuration, and one repository
address that _config.yml and the README agree on."""
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
REPOSITORY = PROJECT["urls"]["Repository"]


def test_one_repository_address():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["url"] == REPOSITORY
    assert REPOSITORY in (ROOT / "book" / "preface.md").read_text()


def test_every_import_of_the_package_is_declared():
    """Each third-party module that ebmlib imports is a dependency or belongs to a declared extra."""
    import ast
    declared = {d.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip().lower().replace("-", "_")
                for group in [PROJECT["dependencies"], *PROJECT["optional-dependencies"].values()] for d in group}
    module_to_package = {"sklearn": "scikit_learn", "skimage": "scikit_image", "PIL": "pillow", "yaml": "pyyaml",
                         "gymnasium_robotics": "gymnasium_robotics", "IPython": "ipykernel"}
    provided_by = {"pillow": "torchvision", "pyyaml": "jupyter_book"}   # installed with a declared package
    stdlib = set(__import__("sys").stdlib_module_names)
    missing = set()
    for path in (ROOT / "ebmlib").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            for name in names:
                top = name.split(".")[0]
                if top in stdlib or top in ("ebmlib", "__future__"):
                    continue
                package = module_to_package.get(top, top).lower()
                if package not in declared and provided_by.get(package) not in declared:
                    missing.add(f"{top} ({path.relative_to(ROOT)})")
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"


def test_extras_for_the_heavy_parts():
    extras = PROJECT["optional-dependencies"]
    assert {"hand", "lab", "book", "test", "run"} <= set(extras)
    assert any(d.startswith("mujoco") for d in extras["hand"])
    assert any(d.startswith("jupyterlab") for d in extras["lab"])


def test_binder_installs_the_package_with_its_extras():
    post = (ROOT / "binder" / "postBuild").read_text()
    assert 'pip install' in post and ".[hand,lab]" in post
    assert (ROOT / "binder" / "postBuild").stat().st_mode & 0o111, "postBuild must be executable"


def test_every_chapter_installs_the_package_first():
    """On Colab the first code cell installs ebmlib (with the chapter's extras) from the one repository address;
    where ebmlib is importable it does nothing. scripts/test-wheel.sh runs chapter 03's cell in a fresh venv."""
    import jupytext
    for source in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        cells = [c for c in jupytext.read(source).cells if c.cell_type == "code"]
        first = cells[0]
        assert "install" in first.metadata.get("tags", []), f"{source.name}: the first code cell is not the install cell"
        assert f"git+{REPOSITORY}" in first.source, f"{source.name}: the install cell names another repository"
        assert 'find_spec("ebmlib") is None' in first.source
        extras = "run,hand" if source.stem == "07_robot_hand" else "run"
        assert f"ebmlib[{extras}]" in first.source, f"{source.name}: the install cell lacks extras [{extras}]"
