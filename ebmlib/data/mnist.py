"""MNIST and Fashion-MNIST as continuous data in [0, 1], through torchvision.

Files live in torchvision's layout under the data root (``<root>/MNIST/raw/train-images-idx3-ubyte`` ...; see
:func:`ebmlib.data.root.data_root`). When they are missing, the loader first looks for the four idx files
(gzip'd or not) in an offline source directory, then lets torchvision download them:

* MNIST: the directory named by ``$EBMLIB_MNIST_SRC`` (the project's machines point it at the shared copy).
* Fashion-MNIST: ``$EBMLIB_FASHION_SRC``, else Debian's ``dataset-fashion-mnist`` package
  (``/usr/share/datasets/fashion-mnist``). Its .gz files differ in md5 from torchvision's, so they are
  gunzip'd into place rather than handed to torchvision's downloader.

Images are kept as uint8 and made continuous only when drawn, with the paper's dequantisation (A.3):
x = (pixel + u) / 256 with u ~ U(0, 1), i.e. x*255/256 + U(0, 1/256) for x = pixel/255.
"""
from __future__ import annotations

import gzip
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from ebmlib.core.checkpoint import atomic_write
from ebmlib.core.images import ImageData
from ebmlib.data.root import ENV_VAR, data_root

__all__ = ["DATASETS", "IDX_FILES", "DataMissingError", "load_mnist", "stage_idx_files", "offline_source"]

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class _Spec:
    folder: str            # torchvision's folder name under the root
    source_env: str        # environment variable naming an offline directory of idx files
    system_dir: Optional[str]  # a system-wide offline copy (Debian package), if any
    how_to_get: str


DATASETS = {
    "mnist": _Spec("MNIST", "EBMLIB_MNIST_SRC", None,
                   "run once with download=True on a machine with internet"),
    "fashion": _Spec("FashionMNIST", "EBMLIB_FASHION_SRC", "/usr/share/datasets/fashion-mnist",
                     "run once with download=True on a machine with internet, or `apt-get install dataset-fashion-mnist`"),
}


class DataMissingError(FileNotFoundError):
    """The data set's files are not on disk and could not be fetched."""


def _spec(name: str) -> _Spec:
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; expected one of {sorted(DATASETS)}")
    return DATASETS[name]


def _raw_dir(name: str, root: Optional[str | os.PathLike]) -> Path:
    return data_root(root) / _spec(name).folder / "raw"


def _missing(raw: Path) -> list[str]:
    return [f for f in IDX_FILES if not (raw / f).is_file()]


def offline_source(name: str) -> Optional[Path]:
    """The offline directory holding ``name``'s idx files, if one is configured or installed."""
    spec = _spec(name)
    for candidate in (os.environ.get(spec.source_env), spec.system_dir):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def stage_idx_files(name: str, src_dir: str | os.PathLike, root: Optional[str | os.PathLike] = None) -> Path:
    """Copy the four idx files of ``name`` from ``src_dir`` (``<file>`` or ``<file>.gz``) into the root.

    Each file is written to a temporary name and renamed, so an interrupted copy never leaves a truncated
    file that torchvision would later trust. Returns the raw directory.
    """
    src_dir, raw = Path(src_dir), _raw_dir(name, root)
    sources = {}
    for f in IDX_FILES:
        found = [p for p in (src_dir / f, src_dir / f"{f}.gz") if p.is_file()]
        if not found:
            raise DataMissingError(f"{src_dir} has neither {f} nor {f}.gz; the four {name} files must be: "
                                   f"{', '.join(IDX_FILES)}")
        sources[f] = found[0]
    raw.mkdir(parents=True, exist_ok=True)
    for f, src in sources.items():
        if (raw / f).is_file():
            continue
        opener = gzip.open if src.suffix == ".gz" else open
        with opener(src, "rb") as fin:
            atomic_write(raw / f, lambda fout: shutil.copyfileobj(fin, fout))
    return raw


def _ensure_files(name: str, root: Optional[str | os.PathLike], download: bool) -> None:
    raw = _raw_dir(name, root)
    if not _missing(raw):
        return
    src = offline_source(name)
    if src is not None:
        stage_idx_files(name, src, root)
        return
    if download:
        cls = _torchvision_class(name)
        try:
            cls(str(data_root(root)), train=True, download=True)
        except Exception as err:  # network failures come in many types (URLError, HTTPError, OSError...)
            raise DataMissingError(_missing_message(name, raw) + f"\nDownloading failed: {err}") from err
        return
    raise DataMissingError(_missing_message(name, raw))


def _missing_message(name: str, raw: Path) -> str:
    spec = _spec(name)
    return (f"{name} is not on disk: expected {', '.join(_missing(raw))} in {raw}.\n"
            f"To get it: {spec.how_to_get}; or put the four idx files (gzip'd or not) in a directory and set "
            f"{spec.source_env} to it; or set {ENV_VAR} to a data root that already has {spec.folder}/raw/.")


def _torchvision_class(name: str):
    from torchvision import datasets
    return {"mnist": datasets.MNIST, "fashion": datasets.FashionMNIST}[name]


def load_mnist(name: str = "mnist", split: str = "train", root: Optional[str | os.PathLike] = None,
               download: bool = True) -> ImageData:
    """Load a split of MNIST (``name="mnist"``) or Fashion-MNIST (``name="fashion"``) as uint8 images.

    Args:
        name: "mnist" or "fashion".
        split: "train" (60,000 images) or "test" (10,000).
        root: data root (default: ``$EBMLIB_DATA`` or ``~/.cache/ebmlib/data``).
        download: let torchvision download the files when neither the root nor an offline source has them.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    _ensure_files(name, root, download)
    ds = _torchvision_class(name)(str(data_root(root)), train=split == "train", download=False)
    images = ds.data.to(torch.uint8).unsqueeze(1)  # (N, 1, 28, 28)
    return ImageData(images, ds.targets.to(torch.int64), list(ds.classes))


