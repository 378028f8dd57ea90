"""ImageNet for the paper's largest models (section 4.1, Fig. 4, 8, 18): 32x32 and 128x128 colour images.

* **ImageNet32**, the downsampled release of Chrabaszcz et al. 2017
  (references.bib ``chrabaszcz2017downsampled``), under
  ``<root>/imagenet32/``: ``train_data_batch_1`` .. ``train_data_batch_10`` and ``val_data``, each either a
  NumPy ``.npz`` (the "npz" download) or a pickled dict (the other download, no extension). Each holds ``data``,
  uint8 rows of 3072 values in channel-first order (1024 red, then green, then blue), and ``labels`` counted
  from 1 (1..1000). 1,281,167 training and 50,000 validation images. The training set (3.7 GB as uint8) is never
  loaded at once: :class:`ImageNet32Stream` reads one batch file at a time.
* **ImageNet128** from an ``ImageFolder`` tree ``<root>/imagenet/{train,val}/<wnid>/<image>`` (the ILSVRC-2012
  layout; ``val`` sorted into class folders), each photo scaled to shorter side 128 and centre-cropped, or a
  pre-resized copy of the tree (then scaling is a no-op). :func:`imagenet128_dataset` is a map-style
  ``torch.utils.data.Dataset`` of uint8 (3, 128, 128) images for a ``DataLoader`` with workers.

For training at paper scale, :func:`imagenet32_memmap` memory-maps the ImageNet32 training set from one array
file (written once from the batch files) and :func:`imagenet128_source` decodes each minibatch's photos as it is
drawn; both draw random minibatches from the trainer's generator, so an interrupted run resumes exactly.

Neither can be downloaded by a script (ImageNet needs an account), so a missing file raises
:class:`~ebmlib.data.mnist.DataMissingError` saying where to get it and where to put it. Pickled batches are
read by an unpickler that accepts only NumPy arrays, lists and numbers: loading data never executes code.
"""
from __future__ import annotations

import os
import pickle
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch
from torch import Tensor

from ebmlib.core.images import ImageData
from ebmlib.data.cifar import resize_center_crop
from ebmlib.data.mnist import DataMissingError
from ebmlib.data.root import ENV_VAR, data_root

__all__ = ["IMAGENET32_FOLDER", "IMAGENET_FOLDER", "N_CLASSES", "imagenet32_files", "read_imagenet32_batch",
           "load_imagenet32", "ImageNet32Stream", "imagenet128_dataset", "imagenet32_memmap", "FolderSource",
           "imagenet128_source", "imagenet128_images"]

IMAGENET32_FOLDER = "imagenet32"
IMAGENET_FOLDER = "imagenet"
N_CLASSES = 1000
_N_TRAIN_BATCHES = 10
_SPLITS = ("train", "val")
_WHERE = ("Download it from https://image-net.org/download-images (an ImageNet account is needed): "
          "'Downsampled ImageNet 32x32', the files Imagenet32_train_npz.zip and Imagenet32_val_npz.zip (or the "
          "pickle versions), and unzip both into {folder}; or set " + ENV_VAR + " to a data root that has it.")


def _check_split(split: str) -> None:
    if split not in _SPLITS:
        raise ValueError(f"ImageNet split must be one of {_SPLITS}, got {split!r}")


def _batch_names(split: str) -> list[str]:
    _check_split(split)
    if split == "val":
        return ["val_data"]
    return [f"train_data_batch_{k}" for k in range(1, _N_TRAIN_BATCHES + 1)]


def imagenet32_files(split: str = "train", root: Optional[str | os.PathLike] = None) -> list[Path]:
    """The batch files of ``split`` on disk (``name.npz`` preferred over the pickled ``name``), in order.

    Raises DataMissingError naming every missing batch, the folder, and where to get the release."""
    folder = data_root(root) / IMAGENET32_FOLDER
    found, missing = [], []
    for name in _batch_names(split):
        path = next((p for p in (folder / f"{name}.npz", folder / name) if p.is_file()), None)
        (found.append(path) if path is not None else missing.append(name))
    if missing:
        raise DataMissingError(f"ImageNet32 ({split}) is not on disk: expected {', '.join(missing)} (.npz or "
                               f"pickle) in {folder}.\n" + _WHERE.format(folder=folder))
    return found


class _ArraysOnly(pickle.Unpickler):
    """Unpickles the release's dicts of NumPy arrays and lists, refusing every other global (no code runs)."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("builtins", "int"), ("builtins", "list")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from an ImageNet32 batch file: it "
                                         "should hold only NumPy arrays and lists")
        return super().find_class(module, name)


def _read_fields(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            if "data" not in f or "labels" not in f:
                raise ValueError(f"{path} lacks 'data' or 'labels' (it has {sorted(f.files)}): not an ImageNet32 batch")
            return f["data"], np.asarray(f["labels"])
    with open(path, "rb") as fh:
        d = _ArraysOnly(fh).load()
    if not isinstance(d, dict) or "data" not in d or "labels" not in d:
        raise ValueError(f"{path} is not a pickled ImageNet32 batch (a dict with 'data' and 'labels')")
    return np.asarray(d["data"]), np.asarray(d["labels"])


def read_imagenet32_batch(path: str | os.PathLike) -> tuple[Tensor, Tensor]:
    """One batch file -> (uint8 images (n, 3, 32, 32), int64 labels 0..999), checked.

    The rows are channel-first already (red plane, green, blue), so a reshape gives CHW; labels shift from
    1..1000 to 0..999."""
    path = Path(path)
    data, labels = _read_fields(path)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: 'data' should be uint8 rows of 3072 values, got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise ValueError(f"{path}: {labels.shape[0] if labels.ndim else 0} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 1 or labels.max() > N_CLASSES):
        bad = int(np.flatnonzero((labels < 1) | (labels > N_CLASSES))[0])
        raise ValueError(f"{path}: labels are counted 1..{N_CLASSES}, but label {int(labels[bad])} is at index {bad}")
    images = torch.from_numpy(np.ascontiguousarray(data).reshape(-1, 3, 32, 32))
    return images, torch.from_numpy(labels.astype(np.int64) - 1)


def load_imagenet32(split: str = "val", root: Optional[str | os.PathLike] = None,
                    max_images: Optional[int] = None) -> ImageData:
    """``split`` as one :class:`ImageData` (the 50,000 validation images are 150 MB); ``max_images`` stops after
    that many, reading only the files needed (for the training set, use :class:`ImageNet32Stream`)."""
    if max_images is not None and (not isinstance(max_images, int) or max_images < 1):
        raise ValueError(f"max_images must be None or a positive int, got {max_images!r}")
    images, labels, n = [], [], 0
    for path in imagenet32_files(split, root):
        x, y = read_imagenet32_batch(path)
        images.append(x), labels.append(y)
        n += len(y)
        if max_images is not None and n >= max_images:
            break
    x, y = torch.cat(images)[:max_images], torch.cat(labels)[:max_images]
    return ImageData(x, y, [str(k) for k in range(N_CLASSES)])


class ImageNet32Stream:
    """Minibatches of ImageNet32 ``split``, one batch file in memory at a time (one 128k-image file is 390 MB).

    Every epoch visits the files in a shuffled order and each file's images in a shuffled order, both drawn from
    ``seed`` and the epoch, so all ranks agree on them; rank ``rank`` of ``world`` takes every world-th image of
    each shuffled file (its own shard, as the release's workers each read their own data). The last partial
    minibatch of a file is carried into the next one, so every minibatch has ``batch_size`` images.
    Iterating yields (uint8 (batch_size, 3, 32, 32), int64 labels); :meth:`set_epoch` moves to another epoch.
    """

    def __init__(self, batch_size: int, split: str = "train", root: Optional[str | os.PathLike] = None,
                 seed: int = 0, rank: int = 0, world: int = 1, shuffle: bool = True):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not (isinstance(world, int) and world >= 1 and isinstance(rank, int) and 0 <= rank < world):
            raise ValueError(f"need 0 <= rank < world, got rank={rank!r}, world={world!r}")
        self.files = imagenet32_files(split, root)
        self.batch_size, self.seed, self.rank, self.world, self.shuffle = batch_size, seed, rank, world, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _order(self, n: int, salt: int) -> Tensor:
        if not self.shuffle:
            return torch.arange(n)
        # one seed per (run seed, epoch, file): the same on every rank, different across epochs and files
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 1_009 + salt + 1)
        return torch.randperm(n, generator=g)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        carry_x, carry_y = [], []
        for f in self._order(len(self.files), -1).tolist():
            x, y = read_imagenet32_batch(self.files[f])
            mine = self._order(len(y), f)[self.rank::self.world]
            carry_x.append(x[mine]), carry_y.append(y[mine])
            xs, ys = torch.cat(carry_x), torch.cat(carry_y)
            full = len(ys) // self.batch_size * self.batch_size
            for i in range(0, full, self.batch_size):
                yield xs[i:i + self.batch_size], ys[i:i + self.batch_size]
            carry_x, carry_y = [xs[full:]], [ys[full:]]


class _FolderImages(torch.utils.data.Dataset):
    """An ImageFolder whose items are uint8 (3, size, size) tensors and int64 labels."""

    def __init__(self, folder: Path, size: int):
        from torchvision import datasets

        self.size = size
        self.folder = datasets.ImageFolder(str(folder), loader=self._load)
        self.classes = self.folder.classes

    def _load(self, path: str):
        from PIL import Image

        with Image.open(path) as im:
            return torch.from_numpy(np.array(resize_center_crop(im, self.size)))   # a writable copy

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        x, y = self.folder[i]
        return x, torch.tensor(y, dtype=torch.int64)


def imagenet128_dataset(split: str = "train", root: Optional[str | os.PathLike] = None,
                        size: int = 128) -> torch.utils.data.Dataset:
    """ImageNet ``split`` from ``<root>/imagenet/<split>/<wnid>/*``: uint8 (3, size, size) images (shorter side
    scaled to ``size``, centre crop) with labels in the sorted order of the class folders; ``.classes`` names
    them. Wrap it in a ``DataLoader`` (with a ``DistributedSampler`` under torchrun)."""
    _check_split(split)
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    folder = data_root(root) / IMAGENET_FOLDER / split
    if not folder.is_dir() or not any(p.is_dir() for p in folder.iterdir()):
        raise DataMissingError(
            f"ImageNet ({split}) is not on disk: expected class folders <wnid>/ with images in {folder}.\n"
            "Download ILSVRC-2012 from https://image-net.org/download-images (an account is needed), unpack the "
            f"{split} images into one folder per class there (or a copy already resized to {size} pixels); or set "
            f"{ENV_VAR} to a data root that has it.")
    return _FolderImages(folder, size)


# --------------------------------------------------------------------------------------------------------
# Training sources at paper scale: random access without holding the data set in memory

def _memmap_paths(split: str, root) -> tuple[Path, Path]:
    folder = data_root(root) / IMAGENET32_FOLDER
    return folder / f"{split}_images.u8", folder / f"{split}_labels.npy"


@contextmanager
def _exclusive(path: Path):
    """Hold an exclusive lock on ``path`` while the block runs, waiting for it: under torchrun every rank reaches
    the conversion at once, and only one may write while the others wait for its result."""
    try:
        import fcntl
    except ImportError:          # pragma: no cover - no flock: the per-process temporary names still keep it safe
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_memmap(split: str, root, images_path: Path, labels_path: Path) -> None:
    """Append every batch file of ``split`` (one in memory at a time) to a raw uint8 file, then its labels;
    each written under a temporary name of this process and renamed, so an interrupted conversion leaves nothing
    half-written under the final names."""
    labels, tmp = [], images_path.with_name(f"{images_path.name}.{os.getpid()}.partial")
    with open(tmp, "wb") as out:
        for path in imagenet32_files(split, root):
            x, y = read_imagenet32_batch(path)
            out.write(x.numpy().tobytes())
            labels.append(y.numpy())
    tmp_labels = labels_path.with_name(f"{labels_path.name}.{os.getpid()}.partial.npy")
    np.save(tmp_labels, np.concatenate(labels))
    os.replace(tmp_labels, labels_path)
    os.replace(tmp, images_path)


def imagenet32_memmap(split: str = "train", root: Optional[str | os.PathLike] = None) -> ImageData:
    """ImageNet32 ``split`` as an :class:`ImageData` whose images are memory-mapped from
    ``<root>/imagenet32/<split>_images.u8`` (written once from the batch files: 3.9 GB for the training set), so a
    trainer drawing random minibatches reads only the rows it draws and the 1.28 M images are never loaded at
    once. The map is copy-on-write: nothing the program does changes the file. Processes that arrive together
    (the ranks of a torchrun) convert once: one writes under a lock while the others wait for it."""
    images_path, labels_path = _memmap_paths(split, root)
    if not (images_path.is_file() and labels_path.is_file()):
        imagenet32_files(split, root)                    # missing data: the message that says where to get it
        with _exclusive(images_path.with_name(f".{split}_memmap.lock")):
            if not (images_path.is_file() and labels_path.is_file()):    # another rank may have written it
                _write_memmap(split, root, images_path, labels_path)
    labels = np.load(labels_path, allow_pickle=False)
    n = images_path.stat().st_size // (3 * 32 * 32)
    if n != len(labels):
        raise ValueError(f"{images_path} holds {n} images but {labels_path} {len(labels)} labels: delete both "
                         "and they are written again from the batch files")
    images = np.memmap(images_path, dtype=np.uint8, mode="c", shape=(n, 3, 32, 32))
    return ImageData(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)),
                     [str(k) for k in range(N_CLASSES)])


class FolderSource:
    """Minibatches drawn at random (with replacement, by the caller's generator) from an image-folder data set,
    each photo decoded when it is drawn, ``threads`` at a time: the training source of ImageNet128, which does not
    fit in memory (1.28 M x 49 kB). ``source(n, generator)`` -> (uint8 (n, 3, size, size), int64 labels), the
    callable :class:`~ebmlib.core.train.Trainer` draws positives from; the draw depends only on the generator, so
    a resumed run draws the same minibatches."""

    def __init__(self, dataset: torch.utils.data.Dataset, threads: int = 8):
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive int, got {threads!r}")
        self.dataset, self.threads = dataset, threads
        self.classes = getattr(dataset, "classes", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __call__(self, n: int, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
        from concurrent.futures import ThreadPoolExecutor

        idx = torch.randint(len(self.dataset), (n,), generator=generator).tolist()
        with ThreadPoolExecutor(self.threads) as pool:     # PIL decodes outside the GIL
            items = list(pool.map(self.dataset.__getitem__, idx))
        return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])


def imagenet128_source(split: str = "train", root: Optional[str | os.PathLike] = None, size: int = 128,
                       threads: int = 8) -> FolderSource:
    """ImageNet ``split`` at ``size`` pixels as a :class:`FolderSource` (see :func:`imagenet128_dataset`)."""
    return FolderSource(imagenet128_dataset(split, root, size), threads)


def imagenet128_images(split: str = "val", n: Optional[int] = None, seed: int = 0,
                       root: Optional[str | os.PathLike] = None, size: int = 128) -> ImageData:
    """``n`` photos of ImageNet ``split`` drawn without replacement (all when None or more than there are) as an
    :class:`ImageData` of uint8 (n, 3, size, size): the held-out and reference images the chapter scores against."""
    source = imagenet128_source(split, root, size)
    total = len(source)
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be None or a positive int, got {n!r}")
    order = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[: n or total].tolist()
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(source.threads) as pool:           # 50,000 JPEG decodes at paper scale
        items = list(pool.map(source.dataset.__getitem__, order))
    return ImageData(torch.stack([x for x, _ in items]), torch.stack([y for _, y in items]), list(source.classes))
