"""``python -m ebmlib``: the one command line of the book.

    python -m ebmlib list                                           # chapters, and which have trained models
    python -m ebmlib reproduce 03 --scale paper --seed 1 --set n_eval=500 --out results/
    python -m ebmlib reproduce all --scale demo --in-place          # re-make the committed outputs
    python -m ebmlib train 03 --scale demo --only mnist_cond_replay --out ebmlib/checkpoints
    torchrun --standalone --nproc_per_node 8 -m ebmlib train 03 --scale paper --out ckpt   # 8 GPUs, one run each
    python -m ebmlib data mnist --from ../shared/data/mnist          # or fashion, cifar10, svhn, dtd, dsprites
    python -m ebmlib data hand --n 1000 --workers 2                  # MuJoCo trajectories of chapter 07
    python -m ebmlib data imagenet32                                 # check ImageNet32 (or imagenet: 128x128), or where to put it
    python -m ebmlib data fixtures --root /tmp/fixture-data          # tiny CIFAR-10/SVHN/DTD/ImageNet, real formats
    python -m ebmlib bench langevin --width 32                       # throughput against a plain loop
    python -m ebmlib bench resnet --quick                            # the CIFAR ResNets (paper size: no --quick)

``reproduce`` executes the chapter's Jupytext source (``notebooks/NN_name.py``) with papermill, passing the
parameters ``scale``, ``seed``, ``out_dir`` and ``overrides``; the executed notebook and the metrics JSON the
chapter writes land in ``--out``. ``--in-place`` writes the executed notebook over ``notebooks/NN_name.ipynb``
instead (the committed demo outputs; demo scale, seed 0, no overrides) and copies its metrics JSON to
``book/results/`` (the committed metrics the results page is made from).

``train`` under ``torchrun`` (found by its environment: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) joins the process
group and trains each model on all the processes together (:mod:`ebmlib.core.distributed`): every rank trains,
rank 0 alone reads and writes ``--out`` (the ``<name>.pt`` files and the run folders) and prints.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path

from ebmlib.presets import CHAPTERS, SCALES, chapter_name, parse_overrides, preset

__all__ = ["main", "find_notebooks", "reproduce", "train_models", "prepare_data"]

DATA_SETS = ("mnist", "fashion", "cifar10", "svhn", "dtd", "imagenet32", "imagenet", "dsprites", "hand", "fixtures")
BENCHMARKS = {"langevin": "ebmlib.bench.langevin", "resnet": "ebmlib.bench.resnet"}


def find_notebooks(explicit: str | None = None) -> Path:
    """The folder of chapter notebooks: --notebooks, $EBMLIB_NOTEBOOKS, ./notebooks, or the source checkout's."""
    candidates = [explicit] if explicit is not None else [
        os.environ.get("EBMLIB_NOTEBOOKS"), "notebooks", str(Path(__file__).resolve().parent.parent / "notebooks")]
    for c in candidates:
        if c and Path(c).is_dir() and any(Path(c).glob("[0-9][0-9]_*.ipynb")):
            return Path(c).resolve()
    where = f"in {explicit}" if explicit is not None else "here"
    raise FileNotFoundError(f"cannot find the chapter notebooks (files like 01_sampling.ipynb) {where}; run from the "
                            "book's checkout or pass --notebooks DIR / set EBMLIB_NOTEBOOKS")


def _chapters(name: str, nb_dir: Path) -> list[str]:
    known = sorted(p.stem for p in nb_dir.glob("[0-9][0-9]_*.ipynb"))
    if name == "all":
        return known
    matches = [c for c in known if name in (c, c.split("_", 1)[0], c.split("_", 1)[-1])]
    if len(matches) != 1:
        raise SystemExit(f"error: unknown chapter {name!r}; expected 'all' or one of {known}")
    return matches


def _source_notebook(nb_dir: Path, chapter: str):
    """The chapter as a notebook: its Jupytext source when there is one (the source of truth), else the .ipynb."""
    import nbformat

    py = nb_dir / f"{chapter}.py"
    if not py.is_file():
        return nbformat.read(nb_dir / f"{chapter}.ipynb", as_version=4)
    import jupytext
    nb = jupytext.read(py)
    # the text source carries no notebook metadata (pyproject's jupytext filter): take the paired notebook's, and
    # papermill needs a kernel
    paired = nb_dir / f"{chapter}.ipynb"
    if paired.is_file():
        kept = {k: v for k, v in nbformat.read(paired, as_version=4).metadata.items()
                if k not in ("papermill", "mystnb")}          # the book's rendering is _config.yml's, for every page
        nb.metadata = {**kept, **nb.metadata}
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    nb.metadata.setdefault("language_info", {"name": "python"})
    return nb


def reproduce(chapter: str, scale: str, out: Path, nb_dir: Path, seed: int = 0, overrides: dict | None = None,
              kernel: str | None = None, in_place: bool = False) -> Path:
    """Execute one chapter with papermill; returns the executed notebook's path."""
    import nbformat
    import papermill

    overrides = dict(overrides or {})
    if in_place and (scale != "demo" or seed != 0 or overrides):
        raise SystemExit("error: --in-place re-makes the committed outputs, which are the demo scale at seed 0 with "
                         "no overrides; drop --scale/--seed/--set or write to --out instead")
    if chapter in CHAPTERS:
        preset(chapter, scale, overrides)               # a bad scale or override fails here, not in the kernel
    out.mkdir(parents=True, exist_ok=True)
    dst = nb_dir / f"{chapter}.ipynb" if in_place else out / f"{chapter}.ipynb"
    params = {"scale": scale, "seed": seed, "out_dir": str(out.resolve()), "overrides": overrides}
    backend = os.environ.pop("MPLBACKEND", None)        # a non-interactive backend would drop every figure
    try:
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / f"{chapter}.ipynb"
            nbformat.write(_source_notebook(nb_dir, chapter), src)
            papermill.execute_notebook(str(src), str(dst), parameters=params, cwd=str(nb_dir), kernel_name=kernel,
                                       progress_bar=False)
    finally:
        if backend is not None:
            os.environ["MPLBACKEND"] = backend
    if in_place:                                        # the committed notebook reads its parameters itself
        nb = nbformat.read(dst, as_version=4)
        nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
        for cell in nb.cells:                           # papermill leaves empty tag lists; Jupytext would copy them
            if cell.metadata.get("tags") == []:
                del cell.metadata["tags"]
        nbformat.write(nb, dst)
        metrics = out / f"{chapter}.json"
        if metrics.is_file():                           # the committed metrics the results page is made from
            committed = nb_dir.parent / "book" / "results" / metrics.name
            committed.parent.mkdir(parents=True, exist_ok=True)
            committed.write_text(metrics.read_text())
            if chapter in CHAPTERS:                     # the results page is made from the committed metrics
                from ebmlib import results_page
                results_page.write(committed.parent.parent / "results.md", committed.parent)
    return dst


def train_models(chapter: str, scale: str, out: Path, only: list[str] | None = None, seed: int = 0,
                 overrides: dict | None = None, world=None) -> list[Path]:
    """Train (or find already trained) every model of ``chapter``'s preset at ``scale`` and save ``<name>.pt``;
    ``world``: the processes training together (:class:`ebmlib.core.distributed.World`, default this one alone)."""
    from ebmlib.core.distributed import SINGLE
    world = world if world is not None else SINGLE
    chapter = chapter_name(chapter)
    module = importlib.import_module(f"ebmlib.chapters.{CHAPTERS[chapter]}")
    if not hasattr(module, "train_models"):
        raise SystemExit(f"error: chapter {chapter} has no trained models")
    cfg = preset(chapter, scale, overrides)
    if scale == "paper" and world.is_main and hasattr(module, "paper_cost"):   # say what the run costs first
        print("[ebmlib] what the paper-scale models cost:\n" + module.paper_cost_lines(module.paper_cost(cfg)),
              flush=True)
    start = time.perf_counter()
    progress = os.environ.get("TQDM_DISABLE", "") in ("", "0")
    trained = module.train_models(cfg, out_dir=out, only=only, seed=seed, shipped_dir=None, progress=progress,
                                  world=world)
    if world.is_main:
        procs = f" on {world.size} processes" if world.distributed else ""
        for name, t in trained.items():
            print(f"[ebmlib] {name}: {t.origin()} ({t.seconds:.0f} s of training)", flush=True)
        print(f"[ebmlib] {len(trained)} models of {chapter} in {time.perf_counter() - start:.0f} s{procs} -> {out}",
              flush=True)
    return [out / f"{t.recipe.name}.pt" for t in trained.values()]


def prepare_data(args) -> int:
    """Put data set ``args.name`` under the data root and say where it is."""
    from ebmlib import data

    name, root = args.name, args.root
    if args.source is not None and name not in ("mnist", "fashion"):
        raise SystemExit(f"error: --from is for mnist/fashion idx files, not {name}")
    if name == "hand":
        from ebmlib.data import hand   # needs MuJoCo
        path = hand.generate_to_file(args.n, seed=args.seed, length=args.length, workers=args.workers, root=root)
        print(f"[ebmlib] hand: {args.n} trajectories -> {path}")
        return 0
    if name == "fixtures":
        from ebmlib.data import fixtures
        if root is None:
            raise SystemExit("error: data fixtures needs --root DIR (tiny stand-in files must never land in your "
                             "real data root)")
        for line in fixtures.write_all(root):
            print(f"[ebmlib] fixture: {line}")
        return 0
    if name in ("imagenet32", "imagenet"):   # cannot be downloaded by a script: check it, or say where to put it
        from ebmlib.data import imagenet
        if name == "imagenet32":
            for split in ("train", "val"):
                files = imagenet.imagenet32_files(split, root)
                print(f"[ebmlib] imagenet32 {split}: {len(files)} batch files in {files[0].parent}")
        else:
            for split in ("train", "val"):
                ds = imagenet.imagenet128_dataset(split, root)
                print(f"[ebmlib] imagenet {split}: {len(ds)} images in {len(ds.classes)} classes")
        return 0
    if name == "dsprites":
        from ebmlib.data import dsprites
        ds = dsprites.load_dsprites(root)
        print(f"[ebmlib] dSprites: {len(ds)} images cached at {ds.source}")
        return 0
    if args.source is not None:
        data.stage_idx_files(name, args.source, root)
    splits = {"cifar10": ("train", "test"), "svhn": ("train", "test"), "dtd": ("train", "val", "test")}
    for split in splits.get(name, ("train", "test")):   # torchvision downloads what is missing
        d = data.load_images(name, split, root=root)
        print(f"[ebmlib] {name} {split}: {len(d)} images under {data.data_root(root)}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ebmlib", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the chapters").add_argument("--notebooks", help="folder of chapter notebooks")
    for verb, help_text in (("reproduce", "run chapters headless with papermill"),
                            ("train", "train a chapter's models and save their checkpoints")):
        p = sub.add_parser(verb, help=help_text)
        p.add_argument("chapter", help="chapter name, number or module (03_mnist, 03, mnist)"
                       + (", or 'all'" if verb == "reproduce" else ""))
        p.add_argument("--scale", choices=SCALES, default="demo", help="smoke | demo | paper (default: demo)")
        p.add_argument("--seed", type=int, default=0, help="seed of the run (default 0: the committed outputs)")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a preset value (dotted keys reach into dicts); repeatable")
    rep = sub.choices["reproduce"]
    rep.add_argument("--out", default="results", help="folder for executed notebooks and metrics JSON")
    rep.add_argument("--notebooks", help="folder of chapter notebooks (default: ./notebooks)")
    rep.add_argument("--kernel", help="Jupyter kernel name (default: the notebook's own)")
    rep.add_argument("--in-place", action="store_true", help="write the executed notebook over the committed one")
    tr = sub.choices["train"]
    tr.add_argument("--out", default="checkpoints", help="folder for <name>.pt (default: ./checkpoints)")
    tr.add_argument("--only", nargs="+", help="train only these models of the chapter")
    tr.add_argument("--threads", type=int, help="torch CPU threads (default: the preset's)")
    dat = sub.add_parser("data", help="put a data set under the data root ($EBMLIB_DATA)")
    dat.add_argument("name", choices=DATA_SETS)
    dat.add_argument("--root", help="data root (default: $EBMLIB_DATA or ~/.cache/ebmlib/data)")
    dat.add_argument("--from", dest="source", help="mnist/fashion: a directory holding the four idx files (.gz or not)")
    dat.add_argument("--n", type=int, default=1000, help="hand: number of trajectories (paper: 200000)")
    dat.add_argument("--seed", type=int, default=0, help="hand: seed; trajectory i uses default_rng([seed, i])")
    dat.add_argument("--length", type=int, default=100, help="hand: transitions per trajectory")
    dat.add_argument("--workers", type=int, default=1, help="hand: worker processes (the result does not depend on it)")
    ben = sub.add_parser("bench", help="run a benchmark (prints ratios against a plain reference)")
    ben.add_argument("name", choices=sorted(BENCHMARKS))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "data":
        for name in ("n", "length", "workers"):
            if getattr(args, name) < 1:
                parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
        from ebmlib.data.mnist import DataMissingError
        try:
            return prepare_data(args)
        except DataMissingError as err:   # the message says where to get the data and where to put it
            raise SystemExit(f"error: {err}") from None
    if args.command == "bench":
        return importlib.import_module(BENCHMARKS[args.name]).main(rest)
    overrides = parse_overrides(getattr(args, "overrides", []) or [])
    if args.command == "train":
        import torch
        threads = args.threads or preset(args.chapter if args.chapter in CHAPTERS else chapter_name(args.chapter),
                                         args.scale).get("threads")
        if threads:                                     # the preset's (one thread on a shared 2-core machine)
            torch.set_num_threads(threads)
        from ebmlib.core import distributed
        from ebmlib.core.checkpoint import CheckpointError, FolderLocked
        from ebmlib.core.recipes import IncompleteRun
        from ebmlib.core.train import RunExists, TrainingDiverged, WorldSizeMismatch
        from ebmlib.data.mnist import DataMissingError
        world = distributed.init() if distributed.launched() else distributed.SINGLE   # torchrun: every rank trains
        try:
            train_models(args.chapter, args.scale, Path(args.out), args.only, args.seed, overrides, world=world)
        except (FolderLocked, RunExists, CheckpointError, IncompleteRun, TrainingDiverged, DataMissingError,
                WorldSizeMismatch) as err:
            where = f"rank {world.rank}: " if world.distributed and not world.is_main else ""
            raise SystemExit(f"error: {where}{err}") from err   # what went wrong and the fix, without a traceback
        distributed.teardown()
        return 0
    try:
        nb_dir = find_notebooks(args.notebooks)
    except FileNotFoundError as err:
        parser.exit(2, f"error: {err}\n")
    if args.command == "list":
        for chapter in _chapters("all", nb_dir):
            module = CHAPTERS.get(chapter)
            print(f"{chapter:20s} ebmlib.chapters.{module}" if module else chapter)
        return 0
    out = Path(args.out)
    for chapter in _chapters(args.chapter, nb_dir):
        start = time.perf_counter()
        print(f"[ebmlib] {chapter}: running at {args.scale} scale, seed {args.seed} ...", flush=True)
        dst = reproduce(chapter, args.scale, out, nb_dir, args.seed, overrides, args.kernel, args.in_place)
        metrics = out / f"{chapter}.json"
        print(f"[ebmlib] {chapter}: done in {time.perf_counter() - start:.0f} s -> {dst}"
              + (f", {metrics}" if metrics.exists() else " (the notebook wrote no metrics JSON)"), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
