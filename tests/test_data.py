"""MNIST / Fashion-MNIST loaders on tiny idx files written here in the real on-disk format, and dequantisation."""
import gzip
import struct

import pytest
import torch

from ebmlib.core.images import dequantize
from ebmlib.data import DataMissingError, data_root, load_mnist, stage_idx_files
from ebmlib.data.mnist import IDX_FILES


def write_idx(path, array: torch.Tensor, gz: bool) -> None:
    """The idx format: magic (0, 0, dtype 0x08 = ubyte, ndim), big-endian int32 dims, then the raw bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    payload = header + array.to(torch.uint8).numpy().tobytes()
    if gz:
        with gzip.open(f"{path}.gz", "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def fake_mnist(src, n_train=12, n_test=5, gz=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    data = {
        "train-images-idx3-ubyte": torch.randint(0, 256, (n_train, 28, 28), generator=g),
        "train-labels-idx1-ubyte": torch.randint(0, 10, (n_train,), generator=g),
        "t10k-images-idx3-ubyte": torch.randint(0, 256, (n_test, 28, 28), generator=g),
        "t10k-labels-idx1-ubyte": torch.randint(0, 10, (n_test,), generator=g),
    }
    src.mkdir(parents=True, exist_ok=True)
    for name, arr in data.items():
        write_idx(src / name, arr, gz)
    return data


@pytest.fixture
def no_offline(monkeypatch):
    """No offline sources: neither env variable, nor Debian's Fashion-MNIST package."""
    monkeypatch.delenv("EBMLIB_MNIST_SRC", raising=False)
    monkeypatch.delenv("EBMLIB_FASHION_SRC", raising=False)
    monkeypatch.setattr("ebmlib.data.mnist.DATASETS", {
        k: v.__class__(v.folder, v.source_env, None, v.how_to_get) for k, v in __import__("ebmlib.data.mnist", fromlist=["x"]).DATASETS.items()})


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion", "FashionMNIST")])
def test_loader_reads_idx_files_from_offline_source(tmp_path, monkeypatch, gz, name, folder):
    truth = fake_mnist(tmp_path / "src", gz=gz)
    monkeypatch.setenv("EBMLIB_MNIST_SRC" if name == "mnist" else "EBMLIB_FASHION_SRC", str(tmp_path / "src"))
    root = tmp_path / "root"
    train = load_mnist(name, "train", root=root, download=False)
    test = load_mnist(name, "test", root=root, download=False)
    assert (root / folder / "raw" / "train-images-idx3-ubyte").is_file()
    assert train.images.shape == (12, 1, 28, 28) and train.images.dtype == torch.uint8
    assert test.images.shape == (5, 1, 28, 28) and len(test) == 5
    assert torch.equal(train.images[:, 0], truth["train-images-idx3-ubyte"].to(torch.uint8))
    assert torch.equal(train.labels, truth["train-labels-idx1-ubyte"])
    assert torch.equal(test.labels, truth["t10k-labels-idx1-ubyte"])
    assert train.labels.dtype == torch.int64 and len(train.classes) == 10


def test_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("EBMLIB_DATA", str(tmp_path / "elsewhere"))
    assert data_root() == tmp_path / "elsewhere"
    assert data_root(tmp_path / "given") == tmp_path / "given"


def test_missing_data_error_says_where_and_how(tmp_path, no_offline):
    with pytest.raises(DataMissingError) as err:
        load_mnist("mnist", "train", root=tmp_path, download=False)
    msg = str(err.value)
    assert str(tmp_path / "MNIST" / "raw") in msg and "train-images-idx3-ubyte" in msg
    assert "download=True" in msg and "EBMLIB_MNIST_SRC" in msg


def test_failed_download_is_reported_as_missing_data(tmp_path, no_offline, monkeypatch):
    class Offline:
        def __init__(self, *args, **kwargs):
            raise OSError("network unreachable")
    monkeypatch.setattr("ebmlib.data.mnist._torchvision_class", lambda name: Offline)
    with pytest.raises(DataMissingError, match="network unreachable"):
        load_mnist("fashion", "test", root=tmp_path, download=True)


def test_stage_refuses_incomplete_source(tmp_path):
    fake_mnist(tmp_path / "src")
    (tmp_path / "src" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataMissingError, match="t10k-labels-idx1-ubyte"):
        stage_idx_files("mnist", tmp_path / "src", tmp_path / "root")
    assert not (tmp_path / "root" / "MNIST" / "raw" / IDX_FILES[0]).exists()  # nothing half-staged


def test_bad_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown data set 'cifar'"):
        load_mnist("cifar", root=tmp_path)
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'val'"):
        load_mnist("mnist", "val", root=tmp_path)


def test_dequantize_stays_in_its_bin_and_is_uniform_within_it():
    pixels = torch.arange(256, dtype=torch.uint8).repeat(2000)
    x = dequantize(pixels, torch.Generator().manual_seed(0))
    assert x.dtype == torch.float32 and x.min() >= 0 and x.max() < 1
    assert torch.equal(torch.floor(x * 256).to(torch.uint8), pixels)      # x*255/256 + U(0, 1/256) (A.3)
    frac = x * 256 - pixels.float()                                        # the uniform offset, U(0, 1)
    n = frac.numel()
    assert abs(frac.mean().item() - 0.5) < 4 * (1 / 12) ** 0.5 / n ** 0.5
    assert abs(frac.var().item() - 1 / 12) < 0.01
    # mean of a dequantised pixel is (p + 0.5) / 256: a factor 255 vs 256 mistake would shift it by ~p/65000
    assert abs(x[pixels == 255].mean().item() - 255.5 / 256) < 1e-3


def test_dequantize_refuses_floats():
    with pytest.raises(TypeError, match="uint8"):
        dequantize(torch.rand(3))


def test_subset_and_continuous(tmp_path, monkeypatch):
    fake_mnist(tmp_path / "src")
    monkeypatch.setenv("EBMLIB_MNIST_SRC", str(tmp_path / "src"))
    train = load_mnist("mnist", "train", root=tmp_path / "root", download=False)
    sub = train.subset(4, torch.Generator().manual_seed(1))
    assert len(sub) == 4 and len(train.subset(100)) == 12
    x = sub.continuous(torch.Generator().manual_seed(2))
    assert x.shape == (4, 1, 28, 28) and torch.equal(torch.floor(x * 256).to(torch.uint8), sub.images)


# -- the idx files are checked at every load -----------------------------------------------------------------------
def _staged(tmp_path, monkeypatch):
    fake_mnist(tmp_path / "src")
    monkeypatch.setenv("EBMLIB_MNIST_SRC", str(tmp_path / "src"))
    load_mnist("mnist", "train", root=tmp_path / "root", download=False)
    return tmp_path / "root" / "MNIST" / "raw"


@pytest.mark.parametrize("damage,message", [
    ("truncate", r"train-images-idx3-ubyte is \d+ bytes, but its header announces 12 images .*truncated"),
    ("gzip", r"train-images-idx3-ubyte starts with magic number 0x1f8b0800, not 0x00000803 \(idx images\) "
             r"\(it is gzip'd"),
    ("labels", r"train-labels-idx1-ubyte holds labels up to 200; MNIST labels are 0..9"),
    ("pairing", r"train-labels-idx1-ubyte holds 11 labels but train-images-idx3-ubyte holds 12 images"),
    ("dims", r"t10k-images-idx3-ubyte holds images of 14x56 pixels, not 28x28"),
])
def test_a_bad_idx_file_is_named_with_the_fix(tmp_path, monkeypatch, damage, message):
    from ebmlib.data.mnist import DataCorruptError
    raw = _staged(tmp_path, monkeypatch)
    monkeypatch.delenv("EBMLIB_MNIST_SRC")           # no source to repair from
    if damage == "truncate":
        data = (raw / IDX_FILES[0]).read_bytes()
        (raw / IDX_FILES[0]).write_bytes(data[:-100])
    elif damage == "gzip":
        (raw / IDX_FILES[0]).write_bytes(gzip.compress((raw / IDX_FILES[0]).read_bytes()))
    elif damage == "labels":
        data = bytearray((raw / IDX_FILES[1]).read_bytes())
        data[8] = 200
        (raw / IDX_FILES[1]).write_bytes(bytes(data))
    elif damage == "pairing":
        write_idx(raw / IDX_FILES[1], torch.zeros(11), gz=False)
    else:
        write_idx(raw / IDX_FILES[2], torch.zeros(5, 14, 56), gz=False)
    with pytest.raises(DataCorruptError, match=message) as err:
        load_mnist("mnist", "train", root=tmp_path / "root", download=True)
    assert str(raw) in str(err.value) and "python -m ebmlib data mnist --from DIR" in str(err.value)


def test_staging_replaces_a_bad_staged_file(tmp_path, monkeypatch):
    raw = _staged(tmp_path, monkeypatch)
    good = (raw / IDX_FILES[0]).read_bytes()
    (raw / IDX_FILES[0]).write_bytes(good[:1000])               # an interrupted copy of an older version
    train = load_mnist("mnist", "train", root=tmp_path / "root", download=False)
    assert (raw / IDX_FILES[0]).read_bytes() == good and len(train) == 12


def test_a_bad_source_is_named(tmp_path, monkeypatch):
    from ebmlib.data.mnist import DataCorruptError
    fake_mnist(tmp_path / "src", gz=False)
    write_idx(tmp_path / "src" / IDX_FILES[3], torch.zeros(4), gz=False)     # 5 test images, 4 labels
    with pytest.raises(DataCorruptError, match=r"(?s)src/t10k-labels-idx1-ubyte \(staged as .*\) holds 4 labels.*offline source .*src"):
        stage_idx_files("mnist", tmp_path / "src", tmp_path / "root")


def test_downloads_time_out_and_name_the_offline_route(tmp_path, no_offline, monkeypatch):
    import socket
    from ebmlib.data import mnist
    seen = []

    class Hanging:
        def __init__(self, *args, **kwargs):
            seen.append(socket.getdefaulttimeout())
            raise TimeoutError("timed out")
    monkeypatch.setattr("ebmlib.data.mnist._torchvision_class", lambda name: Hanging)
    before = socket.getdefaulttimeout()
    with pytest.raises(DataMissingError, match=r"(?s)python -m ebmlib data mnist --from DIR.*timeout 60 s.*timed out"):
        load_mnist("mnist", "train", root=tmp_path, download=True)
    assert seen == [mnist.DOWNLOAD_TIMEOUT] and socket.getdefaulttimeout() == before
