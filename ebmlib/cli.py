"""``python -m ebmlib``: reproduce chapters headless with papermill.

    python -m ebmlib list
    python -m ebmlib reproduce 01_sampling --scale demo --out results/
    python -m ebmlib reproduce all --scale paper --out results/
    python -m ebmlib train 03_mnist --scale demo --only mnist_cond_replay --out ebmlib/checkpoints
    python -m ebmlib data mnist --from ../shared/data/mnist     # or: fashion, dsprites, hand --n 1000
    python -m ebmlib data cifar10                                # or: svhn, dtd (torchvision downloads them)

``reproduce`` runs the chapter notebook with papermill, setting its ``scale`` and ``out_dir`` parameters; the
executed notebook (``<chapter>.ipynb``) and the metrics JSON the notebook writes (``<chapter>.json``) land in
the output folder.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ebmlib.presets import SCALES

__all__ = ["main", "find_notebooks", "chapters", "reproduce", "train_models", "prepare_data"]


def find_notebooks(explicit: str | None = None) -> Path:
    """The folder of chapter notebooks: --notebooks, $EBMLIB_NOTEBOOKS, ./notebooks, or the source checkout's."""
    if explicit is not None:
        candidates = [explicit]
    else:
        candidates = [os.environ.get("EBMLIB_NOTEBOOKS"), "notebooks", str(Path(__file__).resolve().parent.parent / "notebooks")]
    for c in candidates:
        if c and Path(c).is_dir() and any(Path(c).glob("[0-9][0-9]_*.ipynb")):
            return Path(c).resolve()
    where = f"in {explicit}" if explicit is not None else "here"
    raise FileNotFoundError(f"cannot find the chapter notebooks (files like 01_sampling.ipynb) {where}; run from the "
                            "book's checkout or pass --notebooks DIR / set EBMLIB_NOTEBOOKS")


def chapters(nb_dir: Path) -> list[str]:
    return sorted(p.stem for p in nb_dir.glob("[0-9][0-9]_*.ipynb"))


def _resolve(name: str, known: list[str]) -> list[str]:
    if name == "all":
        return known
    matches = [c for c in known if c == name or c.split("_", 1)[0] == name or c.split("_", 1)[-1] == name]
    if len(matches) != 1:
        raise SystemExit(f"error: unknown chapter {name!r}; expected 'all' or one of {known}")
    return matches


def reproduce(chapter: str, scale: str, out: Path, nb_dir: Path, kernel: str | None = None) -> Path:
    """Execute one chapter with papermill at ``scale``; returns the executed notebook's path."""
    import papermill  # imported here so the library itself does not need it

    out.mkdir(parents=True, exist_ok=True)
    src = nb_dir / f"{chapter}.ipynb"
    dst = out / f"{chapter}.ipynb"
    env_scale = os.environ.get("EBMLIB_SCALE")
    os.environ["EBMLIB_SCALE"] = scale  # also seen by code that reads the scale from the environment
    try:
        papermill.execute_notebook(str(src), str(dst), parameters={"scale": scale, "out_dir": str(out.resolve())},
                                   cwd=str(nb_dir), kernel_name=kernel, progress_bar=False)
    finally:
        if env_scale is None:
            os.environ.pop("EBMLIB_SCALE", None)
        else:
            os.environ["EBMLIB_SCALE"] = env_scale
    return dst


def train_models(chapter: str, scale: str, out: Path, only: list[str] | None = None,
                 threads: int | None = None) -> list[Path]:
    """Train the image EBMs of ``chapter``'s preset at ``scale`` (all, or those named in ``only``)."""
    import torch

    from ebmlib.core import pretrained
    from ebmlib import presets as scales
    from ebmlib.data import load_images

    cfg = scales.preset(chapter, scale)
    if not hasattr(cfg, "models"):
        raise SystemExit(f"error: chapter {chapter!r} has no image models to train")
    todo = pretrained.recipes(cfg.models)
    unknown = sorted(set(only or []) - set(todo))
    if unknown:
        raise SystemExit(f"error: unknown models {unknown}; chapter {chapter!r} has {sorted(todo)}")
    if threads:
        torch.set_num_threads(threads)
    paths, datasets = [], {}
    for key, recipe in todo.items():
        if only and key not in only:
            continue
        if recipe.dataset not in datasets:
            datasets[recipe.dataset] = load_images(recipe.dataset, "train")
        data = datasets[recipe.dataset]
        print(f"[ebmlib] training {recipe.name} ({recipe.n_iters} iterations) ...", flush=True)
        trained = pretrained.train_recipe(recipe, data, ckpt_dir=out / f".{recipe.name}_run",
                                           device=pretrained.default_device())
        paths.append(pretrained.save_trained(trained, out / f"{recipe.name}.pt"))
        print(f"[ebmlib] {recipe.name}: {trained.seconds:.0f} s -> {paths[-1]}", flush=True)
    return paths


def prepare_data(name: str, root: str | None = None, source: str | None = None, rest: list[str] | None = None) -> int:
    """Put data set ``name`` under the data root and say where it is."""
    from ebmlib import data

    if name == "hand":
        from ebmlib.data import hand  # needs mujoco
        return hand.main((rest or []) + (["--root", root] if root else []))
    if rest:
        raise SystemExit(f"error: unexpected arguments for {name}: {rest}")
    if name == "dsprites":
        from ebmlib.data import dsprites
        ds = dsprites.load_dsprites(root)
        print(f"[ebmlib] dSprites: {len(ds)} images cached at {ds.source}")
        return 0
    if name in ("cifar10", "svhn", "dtd"):
        if source is not None:
            raise SystemExit(f"error: --from is for mnist/fashion idx files, not {name}")
        splits = {"cifar10": ("train", "test"), "svhn": ("train", "test"), "dtd": ("train", "val", "test")}[name]
        for split in splits:   # torchvision downloads what is missing (cifar10: one archive; svhn: a file per split)
            d = data.load_images(name, split, root=root)
            print(f"[ebmlib] {name} {split}: {len(d)} images under {data.data_root(root)}")
        return 0
    if source is not None:
        data.stage_idx_files(name, source, root)
    for split in ("train", "test"):
        d = data.load_mnist(name, split, root=root)
        print(f"[ebmlib] {name} {split}: {len(d)} images under {data.data_root(root)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ebmlib", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the chapters").add_argument("--notebooks", help="folder of chapter notebooks")
    rep = sub.add_parser("reproduce", help="run chapter notebooks headless with papermill")
    rep.add_argument("chapter", help="chapter name (e.g. 01_sampling, or 01), or 'all'")
    rep.add_argument("--scale", choices=SCALES, default="demo", help="smoke | demo | paper (default: demo)")
    rep.add_argument("--out", default="results", help="output folder for executed notebooks and metrics JSON")
    rep.add_argument("--notebooks", help="folder of chapter notebooks (default: ./notebooks)")
    rep.add_argument("--kernel", help="Jupyter kernel name (default: the notebook's own)")
    tr = sub.add_parser("train", help="train a chapter's image EBMs and save their checkpoints")
    tr.add_argument("chapter", help="chapter with image models (e.g. 03_mnist)")
    tr.add_argument("--scale", choices=SCALES, default="demo", help="smoke | demo | paper (default: demo)")
    tr.add_argument("--out", default="checkpoints", help="folder for <name>.pt (default: ./checkpoints)")
    tr.add_argument("--only", nargs="+", help="train only these models of the chapter (e.g. mnist_cond_replay)")
    tr.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    dat = sub.add_parser("data", help="put a data set under the data root ($EBMLIB_DATA)")
    dat.add_argument("name", choices=["mnist", "fashion", "dsprites", "hand", "cifar10", "svhn", "dtd"])
    dat.add_argument("--root", help="data root (default: $EBMLIB_DATA or ~/.cache/ebmlib/data)")
    dat.add_argument("--from", dest="source", help="mnist/fashion: a directory holding the four idx files (.gz or not)")
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "data":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")

    if args.command == "data":
        return prepare_data(args.name, args.root, args.source, rest)
    if args.command == "train":
        train_models(args.chapter, args.scale, Path(args.out), args.only, args.threads)
        return 0
    try:
        nb_dir = find_notebooks(args.notebooks)
    except FileNotFoundError as err:
        parser.exit(2, f"error: {err}\n")
    known = chapters(nb_dir)
    if args.command == "list":
        print("\n".join(known))
        return 0
    out = Path(args.out)
    for chapter in _resolve(args.chapter, known):
        start = time.perf_counter()
        print(f"[ebmlib] {chapter}: running at {args.scale} scale ...", flush=True)
        dst = reproduce(chapter, args.scale, out, nb_dir, args.kernel)
        metrics = out / f"{chapter}.json"
        print(f"[ebmlib] {chapter}: done in {time.perf_counter() - start:.0f} s -> {dst}"
              + (f", {metrics}" if metrics.exists() else " (the notebook wrote no metrics JSON)"), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
