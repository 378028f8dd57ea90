"""CIFAR-10 / SVHN / DTD loaders on tiny fixtures written here in the real on-disk formats, so torchvision's own
parsing code runs: CIFAR's python pickle batches + meta, SVHN's MATLAB .mat files (X (32, 32, 3, N), y with 10
for the digit 0), DTD's image folders + label text files."""
import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from ebmlib.data import DISPLAY_NAMES, IMAGE_DATASETS, DataMissingError, image_shape, load_cifar10, load_dtd, load_images, load_svhn
from ebmlib.data.cifar import resize_center_crop

from ebmlib.data.fixtures import CIFAR_CLASSES, DTD_COLOURS, write_dtd, write_svhn
from ebmlib.data.fixtures import write_cifar10 as write_cifar


# ----------------------------------------------------------------------------------------------- CIFAR-10
def test_cifar10_reads_pickle_batches(tmp_path):
    truth = write_cifar(tmp_path)
    train = load_cifar10("train", root=tmp_path, download=False, check_md5=False)
    test = load_cifar10("test", root=tmp_path, download=False, check_md5=False)
    assert train.images.shape == (15, 3, 32, 32) and train.images.dtype == torch.uint8
    assert test.images.shape == (4, 3, 32, 32) and train.labels.dtype == torch.int64
    rows = np.concatenate([truth[f"data_batch_{i}"][0] for i in range(1, 6)])
    assert np.array_equal(train.images.reshape(15, 3072).numpy(), rows)   # CHW order of the rows is kept
    assert train.labels.tolist() == sum((truth[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert np.array_equal(test.images.reshape(4, 3072).numpy(), truth["test_batch"][0])
    assert train.classes == CIFAR_CLASSES
    x = test.continuous(torch.Generator().manual_seed(0))
    assert x.shape == (4, 3, 32, 32) and 0 <= x.min() and x.max() < 1


def test_cifar10_md5_check_rejects_files_that_are_not_the_real_ones(tmp_path):
    write_cifar(tmp_path)
    with pytest.raises(DataMissingError, match="md5"):
        load_cifar10("test", root=tmp_path, download=False)


def test_cifar10_missing_names_files_folder_and_command(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataMissingError) as err:
        load_cifar10("train", root=tmp_path, download=False, check_md5=False)
    msg = str(err.value)
    assert "data_batch_3" in msg and "data_batch_1" not in msg and "cifar-10-batches-py" in msg
    assert "python -m ebmlib data cifar10" in msg


def test_bad_splits_are_named():
    with pytest.raises(ValueError, match="'val'"):
        load_cifar10("val", download=False)
    with pytest.raises(ValueError, match="'valid'"):
        load_svhn("valid", download=False)
    with pytest.raises(ValueError, match="'extra'"):
        load_dtd("extra", download=False)
    with pytest.raises(ValueError, match="partition"):
        load_dtd("test", partition=11, download=False)


# --------------------------------------------------------------------------------------------------- SVHN
def test_svhn_reads_mat_file_and_maps_label_10_to_digit_0(tmp_path):
    x, y = write_svhn(tmp_path / "SVHN")
    d = load_svhn("test", root=tmp_path, download=False, check_md5=False)
    assert d.images.shape == (5, 3, 32, 32) and d.images.dtype == torch.uint8
    assert d.labels.tolist() == [0, 1, 5, 0, 9]
    # X is (H, W, C, N): image k, channel c, row i, column j is X[i, j, c, k]
    assert np.array_equal(d.images[2].numpy(), x[:, :, :, 2].transpose(2, 0, 1))
    assert d.classes == [str(k) for k in range(10)]


def test_svhn_md5_and_missing(tmp_path):
    write_svhn(tmp_path / "SVHN")
    with pytest.raises(DataMissingError, match="md5"):
        load_svhn("test", root=tmp_path, download=False)
    with pytest.raises(DataMissingError, match=r"train_32x32\.mat"):
        load_svhn("train", root=tmp_path, download=False, check_md5=False)


# ---------------------------------------------------------------------------------------------------- DTD
def test_dtd_reads_folders_and_label_files_at_32x32(tmp_path):
    lines = write_dtd(tmp_path)
    d = load_dtd("test", root=tmp_path, download=False)
    assert d.images.shape == (len(lines), 3, 32, 32) and d.images.dtype == torch.uint8
    assert d.classes == sorted(DTD_COLOURS)
    assert d.labels.tolist() == [d.classes.index(line.split("/")[0]) for line in lines]
    for img, label in zip(d.images, d.labels):
        colour = torch.tensor(DTD_COLOURS[d.classes[label]], dtype=torch.float32)
        assert (img.float().mean((1, 2)) - colour).abs().max() < 6   # JPEG keeps a flat colour to a few levels


def test_dtd_missing_label_file_and_image(tmp_path):
    with pytest.raises(DataMissingError, match="test1.txt"):
        load_dtd("test", root=tmp_path, download=False)
    lines = write_dtd(tmp_path)
    (tmp_path / "dtd" / "dtd" / "images" / lines[1]).unlink()
    with pytest.raises(DataMissingError, match=lines[1].split("/")[1]):
        load_dtd("test", root=tmp_path, download=False)


def test_resize_center_crop_keeps_the_centre():
    # 96 wide x 32 high: left third red, middle green, right third blue -> the 32x32 centre crop is all green
    a = np.zeros((32, 96, 3), dtype=np.uint8)
    a[:, :32, 0] = 255
    a[:, 32:64, 1] = 255
    a[:, 64:, 2] = 255
    out = resize_center_crop(Image.fromarray(a), 32)
    assert out.shape == (3, 32, 32)
    assert out[1, :, 4:28].min() > 200 and out[0, :, 4:28].max() < 50 and out[2, :, 4:28].max() < 50
    # a large image is scaled down (shorter side -> 32) before cropping: a 128x64 half-and-half image keeps both halves
    b = np.zeros((64, 128, 3), dtype=np.uint8)
    b[:, 64:] = 255
    out = resize_center_crop(Image.fromarray(b), 32)
    assert out[:, :, :12].max() < 30 and out[:, :, 20:].min() > 225


# ---------------------------------------------------------------------------------------- one entry point
def test_load_images_dispatches_by_name(tmp_path):
    write_cifar(tmp_path)
    write_dtd(tmp_path)
    assert image_shape("cifar10") == (3, 32, 32) and image_shape("mnist") == (1, 28, 28)
    assert set(DISPLAY_NAMES) == set(IMAGE_DATASETS)
    d = load_images("dtd", "val", root=tmp_path, download=False)
    assert d.images.shape[1:] == image_shape("dtd")
    with pytest.raises(DataMissingError, match="md5"):   # load_images keeps torchvision's md5 check on
        load_images("cifar10", "test", root=tmp_path, download=False)
    with pytest.raises(ValueError, match="'imagenet'"):
        load_images("imagenet", "train")
