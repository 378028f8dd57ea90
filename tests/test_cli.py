"""``python -m ebmlib reproduce``: papermill runs a chapter with its scale and writes notebook + metrics JSON."""
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from ebmlib import cli
from ebmlib import presets as scales


PARAMETERS = "scale = None\nseed = 0\nout_dir = None\noverrides = {}"


def write_chapter(folder, name="01_tiny"):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(PARAMETERS)
    params.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell(
        "from ebmlib.notebook.results import save_metrics\n"
        f"save_metrics(out_dir, {name!r}, scale, {{'scale_seen': scale, 'seed': seed, 'over': overrides}})")
    nb.cells = [params, body]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{name}.ipynb")


def test_reproduce_writes_notebook_and_metrics(tmp_path):
    write_chapter(tmp_path / "nbs")
    out = tmp_path / "out"
    rc = cli.main(["reproduce", "01", "--scale", "smoke", "--seed", "3", "--set", "grid_n=7", "--out", str(out),
                   "--notebooks", str(tmp_path / "nbs")])
    assert rc == 0
    record = json.loads((out / "01_tiny.json").read_text())
    assert record["scale"] == "smoke" and record["metrics"] == {"scale_seen": "smoke", "seed": 3, "over": {"grid_n": 7}}
    executed = nbformat.read(out / "01_tiny.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)


def test_unknown_chapter_and_scale_are_refused(tmp_path):
    write_chapter(tmp_path)
    with pytest.raises(SystemExit, match="unknown chapter '99'"):
        cli.main(["reproduce", "99", "--notebooks", str(tmp_path)])
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "01", "--scale", "huge", "--notebooks", str(tmp_path)])
    run = subprocess.run([sys.executable, "-m", "ebmlib", "list", "--notebooks", str(tmp_path / "missing")],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "cannot find the chapter notebooks" in run.stderr


def test_in_place_is_for_the_committed_demo_only(tmp_path):
    write_chapter(tmp_path / "nbs")
    with pytest.raises(SystemExit, match="in-place re-makes the committed outputs"):
        cli.main(["reproduce", "01", "--scale", "smoke", "--in-place", "--notebooks", str(tmp_path / "nbs")])


def test_presets_scales_overrides_and_errors():
    demo, smoke = scales.preset("03_mnist", "demo"), scales.preset("03", "smoke")
    assert demo.scale == "demo" and demo.models["mnist_cond_replay"]["n_iters"] == 1200
    assert smoke.models["mnist_cond_replay"]["n_iters"] == 6 and smoke.per_class == 2
    assert demo.per_class == 8                                  # SMOKE replaced a copy, not DEMO itself
    cfg = scales.preset("05", "demo", {"models.sens_l2_0.01.n_iters": 7, "n_test": 3})
    assert cfg.models["sens_l2_0.01"]["n_iters"] == 7 and cfg.n_test == 3 and cfg.models["sens_l2_0.1"]["n_iters"] == 500
    with pytest.raises(KeyError, match="has no key 'n_tset'"):
        scales.preset("05", "demo", {"n_tset": 3})
    with pytest.raises(ValueError, match="scale must be one of"):
        scales.preset("03_mnist", "huge")
    with pytest.raises(KeyError, match="unknown chapter 'nope'"):
        scales.preset("nope", "demo")
    with pytest.raises(AttributeError, match="read-only"):
        demo.per_class = 3
    with pytest.raises(ValueError, match="only"):
        scales.preset("03", "demo", shrink=True)
    assert scales.parse_overrides(["a=3", "b.c=0.5", "d=(1, 2)", "e=text"]) == {"a": 3, "b.c": 0.5, "d": (1, 2), "e": "text"}
    with pytest.raises(ValueError, match="key=value"):
        scales.parse_overrides(["nothing"])


@pytest.mark.parametrize("chapter", sorted(scales.CHAPTERS))
def test_every_chapter_has_three_scales_and_a_shrunk_paper_branch(chapter):
    import importlib
    module = importlib.import_module(f"ebmlib.presets.{scales.CHAPTERS[chapter]}")
    assert isinstance(module.DEMO, dict) and isinstance(module.SMOKE, dict) and isinstance(module.PAPER, dict)
    shrunk = scales.preset(chapter, "paper", shrink=True)
    assert shrunk.shrunk and shrunk.get("device") == scales.preset(chapter, "paper").get("device")


def test_data_command_stages_mnist(tmp_path, capsys):
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from test_data import fake_mnist

    fake_mnist(tmp_path / "src", n_train=3, n_test=2)
    assert cli.main(["data", "mnist", "--root", str(tmp_path / "root"), "--from", str(tmp_path / "src")]) == 0
    out = capsys.readouterr().out
    assert "mnist train: 3 images" in out and "mnist test: 2 images" in out
    with pytest.raises(SystemExit):
        cli.main(["list", "--bogus"])


def test_data_command_reads_dtd_and_refuses_from_for_cifar(tmp_path, capsys):
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from ebmlib.data.fixtures import write_dtd

    lines = write_dtd(tmp_path)
    assert cli.main(["data", "dtd", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"dtd test: {len(lines)} images" in out and "dtd val" in out
    with pytest.raises(SystemExit, match="--from is for mnist"):
        cli.main(["data", "cifar10", "--root", str(tmp_path), "--from", str(tmp_path)])


def test_data_command_checks_imagenet_or_says_where_to_get_it(tmp_path, capsys):
    from ebmlib.data.fixtures import write_imagenet128, write_imagenet32

    with pytest.raises(SystemExit, match="(?s)ImageNet32.*image-net.org"):
        cli.main(["data", "imagenet32", "--root", str(tmp_path)])
    write_imagenet32(tmp_path, n_per_batch=2)
    write_imagenet128(tmp_path, per_class=1)
    assert cli.main(["data", "imagenet32", "--root", str(tmp_path)]) == 0
    assert cli.main(["data", "imagenet", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "imagenet32 train: 10 batch files" in out and "imagenet val: 3 images in 3 classes" in out


NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_takes_its_scale_from_the_environment(path):
    """CI runs every chapter with EBMLIB_SCALE=smoke: a committed papermill 'injected-parameters' cell would pin
    the scale it was executed at and silently run CI at demo scale."""
    cells = nbformat.read(path, as_version=4).cells
    tags = [t for c in cells for t in c.metadata.get("tags", [])]
    assert tags.count("parameters") == 1, f"{path.name}: expected one cell tagged 'parameters'"
    assert "injected-parameters" not in tags, f"{path.name}: drop papermill's injected-parameters cell before committing"
    params = next(c for c in cells if "parameters" in c.metadata.get("tags", []))
    names = [line.split("=")[0].strip() for line in params.source.splitlines() if "=" in line and not line.startswith("#")]
    assert names == ["scale", "seed", "out_dir", "overrides"], f"{path.name}: parameters cell sets {names}"
    assert "scale = None" in params.source, f"{path.name}: scale must default to None ($EBMLIB_SCALE then decides)"


def test_reproduce_runs_the_jupytext_source_in_place(tmp_path):
    """The chapter's source is its py:percent file (no notebook metadata); --in-place writes the executed notebook
    over the .ipynb without papermill's injected cell and copies the metrics to book/results/."""
    nbs = tmp_path / "repo" / "notebooks"
    write_chapter(nbs)
    (nbs / "01_tiny.py").write_text('# %% tags=["parameters"]\n' + PARAMETERS + "\n\n# %%\n"
                                    "from ebmlib.notebook.results import save_metrics\n"
                                    "save_metrics(out_dir, '01_tiny', scale, {'from': 'py'})\n")
    cli.main(["reproduce", "01", "--in-place", "--out", str(tmp_path / "out"), "--notebooks", str(nbs)])
    executed = nbformat.read(nbs / "01_tiny.ipynb", as_version=4)
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert "'from': 'py'" in executed.cells[-1].source
    assert json.loads((tmp_path / "repo" / "book" / "results" / "01_tiny.json").read_text())["metrics"] == {"from": "py"}


def test_reproduce_keeps_figures_when_mplbackend_is_agg(tmp_path, monkeypatch):
    """CI exports MPLBACKEND=Agg; a chapter executed by reproduce must still show its figures (inline backend)."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nbs = tmp_path / "nbs"
    write_chapter(nbs)
    nb = nbformat.read(nbs / "01_tiny.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nplt.plot([0, 1])\nplt.show()"))
    nbformat.write(nb, nbs / "01_tiny.ipynb")
    cli.main(["reproduce", "01", "--scale", "smoke", "--out", str(tmp_path / "out"), "--notebooks", str(nbs)])
    outputs = nbformat.read(tmp_path / "out" / "01_tiny.ipynb", as_version=4).cells[-1].outputs
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert __import__("os").environ["MPLBACKEND"] == "Agg"       # restored for the caller


def test_train_at_paper_scale_says_the_runs_cost_before_it_starts(tmp_path, monkeypatch, capsys):
    from ebmlib.chapters import imagenet

    started = []
    monkeypatch.setattr(imagenet, "train_models", lambda cfg, **kw: started.append(capsys.readouterr().out) or {})
    cli.train_models("12", "paper", tmp_path)
    assert "GPU-hours" in started[0] and "imagenet32_cond" in started[0] and "32 GPUs" in started[0]
    cli.train_models("12", "smoke", tmp_path)
    assert "GPU-hours" not in started[1]


def test_metrics_record_the_cpu_capability_their_numbers_depend_on(tmp_path):
    from ebmlib.notebook.results import load_metrics, save_metrics
    record = load_metrics(save_metrics(tmp_path, "01_tiny", "smoke", {"x": 1.0}))
    assert record["cpu_capability"] == torch.backends.cpu.get_cpu_capability() != ""
    assert record["metrics"] == {"x": 1.0} and not list(tmp_path.glob("*.tmp"))
