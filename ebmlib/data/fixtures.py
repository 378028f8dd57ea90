"""Tiny CIFAR-10, SVHN and DTD files written in their real on-disk formats, so the real loaders' parsing runs.

The tests use them, and so does CI's run of the paper branches (``python -m ebmlib data fixtures --root DIR``,
then ``EBMLIB_DATA=DIR EBMLIB_CHECK_MD5=0``): the paper's data sets cannot be downloaded on the book's machines.
The pixels are random (CIFAR-10, SVHN) or constant colours (DTD): they prove that code runs, never a result.

* CIFAR-10: ``cifar-10-batches-py/data_batch_1..5``, ``test_batch`` (pickled ``{'data': uint8 (n, 3072) rows in
  CHW order, 'labels': list}``) and ``batches.meta`` (``{'label_names': [...]}``).
* SVHN: ``SVHN/<split>_32x32.mat`` with ``X`` (32, 32, 3, N) uint8 and ``y`` (N, 1) in 1..10 (10 is the digit 0).
* DTD: ``dtd/dtd/images/<class>/<class>_000k.jpg`` and ``dtd/dtd/labels/{train,val,test}<k>.txt``.
* ImageNet32: ``imagenet32/train_data_batch_1..10`` and ``val_data``, as ``.npz`` or pickled dicts (``data``:
  uint8 (n, 3072) rows in CHW order, ``labels``: 1..1000, ``mean`` in the training files).
* ImageNet128: ``imagenet/{train,val}/<wnid>/<wnid>_k.JPEG``, photos of odd sizes (not 128x128).
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from ebmlib.data.cifar import SVHN_FOLDER

__all__ = ["CIFAR_CLASSES", "DTD_COLOURS", "IMAGENET_WNIDS", "write_cifar10", "write_svhn", "write_dtd",
           "write_imagenet32", "write_imagenet128", "write_all"]

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
DTD_COLOURS = {"banded": (200, 30, 30), "dotted": (20, 180, 60), "zigzagged": (40, 60, 220)}
IMAGENET_WNIDS = ["n01440764", "n01443537", "n01484850"]   # the first three ILSVRC-2012 synsets


def write_cifar10(root: str | os.PathLike, n_per_batch: int = 3, n_test: int = 4, seed: int = 0) -> dict:
    """The five training batches of ``n_per_batch`` images, the test batch and the meta file; returns
    ``{batch name: (data, labels)}``."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for name, n in [(f"data_batch_{i}", n_per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "data": data, "labels": labels,
                         "filenames": [f"{k}.png" for k in range(n)]}, f)
        truth[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": CIFAR_CLASSES, "num_cases_per_batch": n_per_batch, "num_vis": 3072}, f)
    return truth


def write_svhn(folder: str | os.PathLike, split: str = "test", n: int = 5, seed: int = 0):
    """``<folder>/<split>_32x32.mat``; the first labels are 10, 1, 5, 10, 9 (then random); returns (X, y)."""
    import scipy.io

    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    first = [10, 1, 5, 10, 9]
    y = np.array([[v] for v in first[:n]] + [[int(v)] for v in rng.integers(1, 11, max(n - len(first), 0))],
                 dtype=np.uint8)
    scipy.io.savemat(folder / f"{split}_32x32.mat", {"X": x, "y": y})
    return x, y


def write_dtd(root: str | os.PathLike, partition: int = 1, per_class: int = 2) -> list[str]:
    """Constant-colour photos of odd sizes (landscape and portrait, neither 32x32) in each class folder, and the
    label files of ``partition`` listing all of them; returns the listed '<class>/<file>' lines."""
    from PIL import Image

    base = Path(root) / "dtd" / "dtd"
    sizes = [(64, 48), (45, 90)]   # (width, height)
    lines = []
    for cls, colour in DTD_COLOURS.items():
        (base / "images" / cls).mkdir(parents=True, exist_ok=True)
        for k in range(1, per_class + 1):
            Image.new("RGB", sizes[(k - 1) % 2], colour).save(base / "images" / cls / f"{cls}_{k:04d}.jpg", quality=95)
            lines.append(f"{cls}/{cls}_{k:04d}.jpg")
    (base / "labels").mkdir(exist_ok=True)
    for split in ("train", "val", "test"):
        (base / "labels" / f"{split}{partition}.txt").write_text("\n".join(lines) + "\n")
    return lines


def write_imagenet32(root: str | os.PathLike, n_per_batch: int = 3, n_val: int = 4, fmt: str = "npz",
                     seed: int = 0) -> dict:
    """The ten training batches of ``n_per_batch`` images and ``val_data`` of ``n_val``, as ``fmt`` ("npz" or
    "pickle"); the first label of every file is 1 and the second 1000 (the ends of the range); returns
    ``{batch name: (data, labels)}``."""
    if fmt not in ("npz", "pickle"):
        raise ValueError(f"fmt must be 'npz' or 'pickle', got {fmt!r}")
    rng = np.random.default_rng(seed)
    folder = Path(root) / "imagenet32"
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for name, n in [(f"train_data_batch_{k}", n_per_batch) for k in range(1, 11)] + [("val_data", n_val)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = ([1, 1000] + rng.integers(1, 1001, max(n - 2, 0)).tolist())[:n]
        fields = {"data": data, "labels": labels}
        if name != "val_data":
            fields["mean"] = data.mean(axis=0) if n else np.zeros(3072)
        if fmt == "npz":
            np.savez(folder / f"{name}.npz", **fields)
        else:
            with open(folder / name, "wb") as f:
                pickle.dump(fields, f)
        truth[name] = (data, labels)
    return truth


def write_imagenet128(root: str | os.PathLike, per_class: int = 2, seed: int = 0) -> dict:
    """JPEG photos of random colour blocks, landscape and portrait (neither 128x128), ``per_class`` per class
    folder of :data:`IMAGENET_WNIDS` in ``train`` and ``val``; returns ``{split: [relative paths]}``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    sizes = [(200, 150), (130, 260)]   # (width, height)
    written = {}
    for split in ("train", "val"):
        written[split] = []
        for wnid in IMAGENET_WNIDS:
            folder = Path(root) / "imagenet" / split / wnid
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(per_class):
                w, h = sizes[k % 2]
                blocks = rng.integers(0, 256, (h // 10, w // 10, 3), dtype=np.uint8)
                Image.fromarray(blocks.repeat(10, 0).repeat(10, 1)).save(folder / f"{wnid}_{k}.JPEG", quality=95)
                written[split].append(f"{wnid}/{wnid}_{k}.JPEG")
    return written


def write_all(root: str | os.PathLike, n: int = 64) -> list[str]:
    """Every fixture under one data root, ``n`` images per CIFAR-10 / SVHN split (enough for CI's paper branch)."""
    write_cifar10(root, n_per_batch=max(1, n // 5), n_test=n)
    for split in ("train", "test"):
        write_svhn(Path(root) / SVHN_FOLDER, split, n)
    dtd = write_dtd(root, per_class=max(2, n // 6))
    write_imagenet32(root, n_per_batch=max(1, n // 10), n_val=n)
    in128 = write_imagenet128(root, per_class=4)
    return [f"CIFAR-10 {5 * max(1, n // 5)} train + {n} test images", f"SVHN {n} train + {n} test images",
            f"DTD {len(dtd)} images", f"ImageNet32 {10 * max(1, n // 10)} train + {n} val images",
            f"ImageNet128 {len(in128['train'])} train + {len(in128['val'])} val photos", f"under {Path(root).resolve()} (random pixels: for running code, not results)"]
