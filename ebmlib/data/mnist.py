"""MNIST and Fashion-MNIST as continuous data in [0, 1], through torchvision.

Files live in torchvision's layout under the data root (``<root>/MNIST/raw/train-images-idx3-ubyte`` ...; see
:func:`ebmlib.data.root.data_root`). When they are missing, the loader first looks for the four idx files
(gzip'd or not) in an offline source directory, then lets torchvision download them:

* MNIST: the directory named by ``$EBMLIB_MNIST_SRC`` (the project's machines point it at the shared copy).
* Fashion-MNIST: ``$EBMLIB_FASHION_SRC``, else Debian's ``dataset-fashion-mnist`` package
  (``/usr/share/datasets/fashion-mnist``). Its .gz files differ in md5 from torchvision's, so they are
  gunzip'd into place rather than handed to torchvision's downloader.

Every load checks the four files before torchvision reads them: the idx magic numbers (0x803 images, 0x801
labels), 28x28 images, a size matching the count in the header (a truncated download is caught), labels in 0..9,
and as many labels as images in each split. A bad file is named with the fix; a bad *staged* copy is replaced from
the offline source when there is one. Downloads time out after :data:`DOWNLOAD_TIMEOUT` seconds.

Images are kept as uint8 and made continuous only when drawn, with the paper's dequantisation (A.3):
x = (pixel + u) / 256 with u ~ U(0, 1), i.e. x*255/256 + U(0, 1/256) for x = pixel/255.
"""
from __future__ import annotations

import gzip
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from ebmlib.core.checkpoint import atomic_write
from ebmlib.core.images import ImageData
from ebmlib.data.root import ENV_VAR, data_root

__all__ = ["DATASETS", "IDX_FILES", "DOWNLOAD_TIMEOUT", "DataMissingError", "DataCorruptError", "load_mnist",
           "stage_idx_files", "offline_source", "check_idx_files"]

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
PAIRS = (("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))
#: seconds a download may wait on the network before it fails (socket timeout for torchvision's downloader)
DOWNLOAD_TIMEOUT = 60.0
_MAGIC = {"images": 0x00000803, "labels": 0x00000801}   # idx: 0, 0, dtype 0x08 (ubyte), number of dimensions


@dataclass(frozen=True)
class _Spec:
    folder: str            # torchvision's folder name under the root
    source_env: str        # environment variable naming an offline directory of idx files
    system_dir: Optional[str]  # a system-wide offline copy (Debian package), if any
    how_to_get: str


DATASETS = {
    "mnist": _Spec("MNIST", "EBMLIB_MNIST_SRC", None,
                   "run `python -m ebmlib data mnist --from DIR` (DIR holding the four idx files), or run once with "
                   "download=True on a machine with internet"),
    "fashion": _Spec("FashionMNIST", "EBMLIB_FASHION_SRC", "/usr/share/datasets/fashion-mnist",
                     "run `python -m ebmlib data fashion --from DIR` (DIR holding the four idx files), run once with "
                     "download=True on a machine with internet, or `apt-get install dataset-fashion-mnist`"),
}


class DataMissingError(FileNotFoundError):
    """The data set's files are not on disk and could not be fetched."""


class DataCorruptError(DataMissingError):
    """A data set file is on disk but is not what it should be (wrong format, truncated, labels out of range)."""


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


def _check_file(path: Path) -> tuple[Optional[int], Optional[str]]:
    """(number of items, None) for a good idx file of MNIST's layout, else (None, what is wrong with it)."""
    kind = "images" if "images" in path.name else "labels"
    header = 16 if kind == "images" else 8
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(header)
        if len(head) < header:
            return None, f"is {size} bytes, shorter than the {header}-byte header of an idx {kind} file"
        magic = int.from_bytes(head[:4], "big")
        if magic != _MAGIC[kind]:
            gz = " (it is gzip'd: it must be decompressed)" if head[:2] == b"\x1f\x8b" else ""
            return None, f"starts with magic number 0x{magic:08x}, not 0x{_MAGIC[kind]:08x} (idx {kind}){gz}"
        n = int.from_bytes(head[4:8], "big")
        item = 1
        if kind == "images":
            dims = (int.from_bytes(head[8:12], "big"), int.from_bytes(head[12:16], "big"))
            if dims != (28, 28):
                return None, f"holds images of {dims[0]}x{dims[1]} pixels, not 28x28"
            item = 28 * 28
        if size != header + n * item:
            return None, (f"is {size} bytes, but its header announces {n} {kind} ({header + n * item} bytes): "
                          + ("truncated (an interrupted copy or download?)" if size < header + n * item else "padded"))
        if kind == "labels":
            labels = f.read()
            if labels and max(labels) > 9:
                return None, f"holds labels up to {max(labels)}; MNIST labels are 0..9"
    return n, None


def check_idx_files(raw: str | os.PathLike) -> dict[str, str]:
    """Problems of the four idx files in ``raw`` by file name (missing ones are not listed); ``{}`` if all is well.
    Each file is checked on its own (magic number, 28x28, size, labels 0..9), then images against labels."""
    raw = Path(raw)
    problems, counts = {}, {}
    for f in IDX_FILES:
        if (raw / f).is_file():
            counts[f], problem = _check_file(raw / f)
            if problem:
                problems[f] = problem
    for images, labels in PAIRS:
        if counts.get(images) is not None and counts.get(labels) is not None and counts[images] != counts[labels]:
            problems[labels] = (f"holds {counts[labels]} labels but {images} holds {counts[images]} images: "
                                "the two files do not belong together")
    return problems


def _corrupt(name: str, raw: Path, problems: dict[str, str], src: Optional[Path],
             sources: Optional[dict] = None) -> DataCorruptError:
    spec = _spec(name)
    lines = [(f"{sources[f]} (staged as {raw / f})" if sources else f"{raw / f}") + f" {p}" for f, p in problems.items()]
    if src is not None:
        fix = (f"the offline source {src} ({spec.source_env}) holds this bad copy: replace its files with good ones, "
               "then load again (bad staged files are replaced from it)")
    else:
        fix = (f"delete the bad file(s) and run `python -m ebmlib data {name} --from DIR` (DIR holding the four idx "
               f"files, gzip'd or not), or set {spec.source_env} to such a DIR")
    return DataCorruptError(f"{name}: bad idx file(s):\n  " + "\n  ".join(lines) + f"\nFix: {fix}")


def stage_idx_files(name: str, src_dir: str | os.PathLike, root: Optional[str | os.PathLike] = None) -> Path:
    """Copy the four idx files of ``name`` from ``src_dir`` (``<file>`` or ``<file>.gz``) into the root.

    Each file is written to a temporary name and renamed, so an interrupted copy never leaves a truncated file.
    A staged file that is already there is kept only if it checks out (and pairs with its labels or images);
    a bad one is replaced from ``src_dir``. Raises :class:`DataCorruptError` if the source itself is bad.
    Returns the raw directory.
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
    stale = set(check_idx_files(raw))
    for images, labels in PAIRS:     # a pair that does not belong together is copied anew as a pair
        if images in stale or labels in stale:
            stale |= {images, labels}
    for f, src in sources.items():
        if (raw / f).is_file() and f not in stale:
            continue
        opener = gzip.open if src.suffix == ".gz" else open
        try:
            with opener(src, "rb") as fin:
                atomic_write(raw / f, lambda fout: shutil.copyfileobj(fin, fout))
        except (OSError, EOFError) as err:   # a truncated .gz, unreadable file
            raise DataCorruptError(f"{name}: cannot read {src}: {err}; replace it with a good copy") from err
    problems = check_idx_files(raw)
    if problems:
        raise _corrupt(name, raw, problems, src_dir, sources)
    return raw


def _download(name: str, root: Optional[str | os.PathLike], raw: Path) -> None:
    cls = _torchvision_class(name)
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)    # torchvision's urllib calls take no timeout of their own
    try:
        cls(str(data_root(root)), train=True, download=True)
    except Exception as err:  # network failures come in many types (URLError, HTTPError, OSError, timeouts...)
        raise DataMissingError(_missing_message(name, raw) + f"\nDownloading failed (timeout {DOWNLOAD_TIMEOUT:.0f} s "
                               f"per request): {type(err).__name__}: {err}") from err
    finally:
        socket.setdefaulttimeout(before)


def _ensure_files(name: str, root: Optional[str | os.PathLike], download: bool) -> None:
    raw = _raw_dir(name, root)
    problems = check_idx_files(raw)
    if not _missing(raw) and not problems:
        return
    src = offline_source(name)
    if src is not None:
        stage_idx_files(name, src, root)
        return
    if problems:
        raise _corrupt(name, raw, problems, None)
    if download:
        _download(name, root, raw)
        problems = check_idx_files(raw)
        if problems or _missing(raw):
            raise _corrupt(name, raw, problems, None) if problems else DataMissingError(_missing_message(name, raw))
        return
    raise DataMissingError(_missing_message(name, raw))


def _missing_message(name: str, raw: Path) -> str:
    spec = _spec(name)
    return (f"{name} is not on disk: expected {', '.join(_missing(raw))} in {raw}.\n"
            f"To get it: {spec.how_to_get}; or put the four idx files (gzip'd or not) in a directory DIR and set "
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


