"""CIFAR-10, SVHN and the Describable Textures Dataset (DTD) as uint8 32x32 colour images, through torchvision.

These are the paper's data for section 4.3/4.4 (CIFAR-10 in distribution; SVHN and Textures out of it). Each
loader reads torchvision's on-disk format under the data root (:func:`ebmlib.data.root.data_root`) with
torchvision's own dataset class, and returns the same :class:`~ebmlib.data.mnist.ImageData` as the MNIST
loader (images (N, 3, 32, 32) uint8, int64 labels, class names):

* CIFAR-10: ``<root>/cifar-10-batches-py/`` (python pickle batches ``data_batch_1..5``, ``test_batch`` and
  ``batches.meta``), as unpacked from ``cifar-10-python.tar.gz``.
* SVHN: ``<root>/SVHN/{train,test,extra}_32x32.mat`` (MATLAB files: ``X`` of shape (32, 32, 3, N), ``y`` with
  label 10 for the digit 0; torchvision maps it to 0).
* DTD: ``<root>/dtd/dtd/images/<class>/<file>.jpg`` and ``<root>/dtd/dtd/labels/{train,val,test}<k>.txt``
  (k = 1..10 partitions), as unpacked from ``dtd-r1.0.1.tar.gz``. The photos are 300-640 pixels wide; they are
  scaled so the shorter side is 32 pixels (antialiased) and centre-cropped to 32x32, the usual way Textures
  enters CIFAR-scale OOD benchmarks.

None of them can be downloaded on the book's build machines, so missing files raise :class:`DataMissingError`
naming the files, the folder and ``python -m ebmlib data <name>`` (which downloads on a machine with
internet). torchvision checks CIFAR-10's and SVHN's md5 sums; ``check_md5=False`` checks only that the files
exist (torchvision's ``check_integrity`` with no md5), for re-packed copies and the tiny fixtures of
:mod:`ebmlib.data.fixtures`; left at ``None`` it follows ``$EBMLIB_CHECK_MD5`` (``0`` turns the check off, as CI's
paper-branch run on fixtures does), else checks.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ebmlib.core.images import ImageData
from ebmlib.data.mnist import DataMissingError
from ebmlib.data.root import ENV_VAR, data_root

__all__ = ["IMAGE_SIZE", "SVHN_FOLDER", "load_cifar10", "load_svhn", "load_dtd", "resize_center_crop"]

IMAGE_SIZE = 32
SVHN_FOLDER = "SVHN"   # torchvision's SVHN takes the folder holding the .mat files; the book keeps it under the root
_CIFAR_SPLITS = ("train", "test")
_SVHN_SPLITS = ("train", "test", "extra")
_DTD_SPLITS = ("train", "val", "test")


def _md5_wanted(check_md5: Optional[bool]) -> bool:
    return os.environ.get("EBMLIB_CHECK_MD5", "1") != "0" if check_md5 is None else bool(check_md5)


def _check_split(split: str, allowed: tuple[str, ...], name: str) -> None:
    if split not in allowed:
        raise ValueError(f"{name} split must be one of {allowed}, got {split!r}")


def _missing_error(name: str, folder: Path, missing: list[str], extra: str = "") -> DataMissingError:
    return DataMissingError(
        f"{name} is not on disk: expected {', '.join(missing)} in {folder}.\n"
        f"To get it: run `python -m ebmlib data {name}` (or load with download=True) on a machine with internet; "
        f"or set {ENV_VAR} to a data root that already has it.{extra}")


def _download(name: str, folder: Path, missing: list[str], make) -> None:
    """Let torchvision download (``make()`` builds its dataset with download=True); wrap failures clearly."""
    try:
        make()
    except Exception as err:  # network failures come in many types (URLError, HTTPError, OSError...)
        raise DataMissingError(str(_missing_error(name, folder, missing)) + f"\nDownloading failed: {err}") from err


# ------------------------------------------------------------------------------------------------- CIFAR-10
def _cifar_class(check_md5: bool):
    from torchvision import datasets

    if check_md5:
        return datasets.CIFAR10

    class CIFAR10ExistenceOnly(datasets.CIFAR10):
        # torchvision's check_integrity(path, md5=None) only checks that the file exists
        train_list = [[f, None] for f, _ in datasets.CIFAR10.train_list]
        test_list = [[f, None] for f, _ in datasets.CIFAR10.test_list]
        meta = dict(datasets.CIFAR10.meta, md5=None)

    return CIFAR10ExistenceOnly


def load_cifar10(split: str = "train", root: Optional[str | os.PathLike] = None, download: bool = True,
                 check_md5: Optional[bool] = None) -> ImageData:
    """CIFAR-10 ``split`` ("train": 50,000 images, "test": 10,000) as uint8 (N, 3, 32, 32) with labels 0..9."""
    _check_split(split, _CIFAR_SPLITS, "CIFAR-10")
    from torchvision import datasets

    base = data_root(root)
    folder = base / datasets.CIFAR10.base_folder
    files = [f for f, _ in datasets.CIFAR10.train_list + datasets.CIFAR10.test_list] + [datasets.CIFAR10.meta["filename"]]
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        if not download:
            raise _missing_error("cifar10", folder, missing)
        _download("cifar10", folder, missing, lambda: datasets.CIFAR10(str(base), train=True, download=True))
    try:
        ds = _cifar_class(_md5_wanted(check_md5))(str(base), train=split == "train", download=False)
    except RuntimeError as err:   # torchvision: "Dataset not found or corrupted"
        raise DataMissingError(f"CIFAR-10 files in {folder} failed torchvision's md5 check ({err}); re-download them, "
                               "or pass check_md5=False for a trusted re-packed copy") from err
    images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))   # NHWC -> NCHW
    return ImageData(images, torch.as_tensor(ds.targets, dtype=torch.int64), list(ds.classes))


# ------------------------------------------------------------------------------------------------------ SVHN
def _svhn_class(check_md5: bool):
    from torchvision import datasets

    if check_md5:
        return datasets.SVHN

    class SVHNExistenceOnly(datasets.SVHN):
        split_list = {k: [url, f, None] for k, (url, f, _) in datasets.SVHN.split_list.items()}

        def _check_integrity(self) -> bool:   # torchvision's version reads the md5 from its own split_list
            from torchvision.datasets.utils import check_integrity
            return check_integrity(os.path.join(self.root, self.filename), None)

    return SVHNExistenceOnly


def load_svhn(split: str = "test", root: Optional[str | os.PathLike] = None, download: bool = True,
              check_md5: Optional[bool] = None) -> ImageData:
    """SVHN ``split`` ("train" 73,257, "test" 26,032, "extra" 531,131 digits) as uint8 (N, 3, 32, 32); the digit
    0 has label 0 (the .mat files say 10; torchvision remaps it)."""
    _check_split(split, _SVHN_SPLITS, "SVHN")
    from torchvision import datasets

    folder = data_root(root) / SVHN_FOLDER
    fname = datasets.SVHN.split_list[split][1]
    if not (folder / fname).is_file():
        if not download:
            raise _missing_error("svhn", folder, [fname])
        _download("svhn", folder, [fname], lambda: datasets.SVHN(str(folder), split=split, download=True))
    try:
        ds = _svhn_class(_md5_wanted(check_md5))(str(folder), split=split, download=False)
    except RuntimeError as err:
        raise DataMissingError(f"SVHN file {folder / fname} failed torchvision's md5 check ({err}); re-download it, "
                               "or pass check_md5=False for a trusted re-packed copy") from err
    images = torch.from_numpy(np.ascontiguousarray(ds.data))   # torchvision already gives (N, 3, 32, 32)
    return ImageData(images, torch.as_tensor(ds.labels, dtype=torch.int64), [str(d) for d in range(10)])


# ------------------------------------------------------------------------------------------------------- DTD
def resize_center_crop(image, size: int = IMAGE_SIZE) -> np.ndarray:
    """A PIL image -> uint8 (3, size, size): RGB, shorter side scaled to ``size`` (antialiased), centre crop."""
    from PIL import Image

    if size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    image = image.convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((nw, nh), Image.BICUBIC, reducing_gap=None)
    left, top = (nw - size) // 2, (nh - size) // 2
    arr = np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)
    return arr.transpose(2, 0, 1)


def load_dtd(split: str = "test", root: Optional[str | os.PathLike] = None, download: bool = True,
             partition: int = 1, size: int = IMAGE_SIZE) -> ImageData:
    """The Describable Textures Dataset ``split`` of ``partition`` (1..10; 1,880 images per split, 47 classes)
    as uint8 (N, 3, size, size): every photo scaled to shorter side ``size`` and centre-cropped.

    DTD has no checksums per file; torchvision checks that ``dtd/dtd`` exists and reads the split's label file.
    """
    _check_split(split, _DTD_SPLITS, "DTD")
    if not isinstance(partition, int) or not 1 <= partition <= 10:
        raise ValueError(f"DTD partition must be an int in 1..10, got {partition!r}")
    from torchvision import datasets

    base = data_root(root)
    folder = base / "dtd" / "dtd"
    needed = [f"labels/{split}{partition}.txt", "images/"]
    missing = [f for f in needed if not (folder / f).exists()]
    if missing:
        if not download:
            raise _missing_error("dtd", folder, missing)
        _download("dtd", folder, missing, lambda: datasets.DTD(str(base), split=split, partition=partition, download=True))
    ds = datasets.DTD(str(base), split=split, partition=partition, download=False,
                      transform=lambda im: resize_center_crop(im, size))
    images = np.empty((len(ds), 3, size, size), dtype=np.uint8)
    labels = np.empty(len(ds), dtype=np.int64)
    for i in range(len(ds)):
        try:
            images[i], labels[i] = ds[i]
        except FileNotFoundError as err:
            raise _missing_error("dtd", folder / "images", [Path(err.filename or "?").name],
                                 f"\nThe label file labels/{split}{partition}.txt names an image that is not on disk.") from err
    return ImageData(torch.from_numpy(images), torch.from_numpy(labels), list(ds.classes))
