"""ImageNet32 / ImageNet128 loaders on tiny files in the real on-disk formats, and the release's ImageNet nets."""
import pickle

import numpy as np
import pytest
import torch

from ebmlib.core.nets import IMAGENET_LAYOUTS, count_parameters, imagenet128_energy, imagenet32_energy
from ebmlib.data.fixtures import IMAGENET_WNIDS, write_imagenet128, write_imagenet32
from ebmlib.data.imagenet import (ImageNet32Stream, imagenet128_dataset, imagenet32_files, load_imagenet32,
                                  read_imagenet32_batch)
from ebmlib.data.mnist import DataMissingError


# ------------------------------------------------------------------------------------------------ ImageNet32
@pytest.mark.parametrize("fmt", ["npz", "pickle"])
def test_batches_read_in_channel_first_order_with_labels_from_zero(tmp_path, fmt):
    truth = write_imagenet32(tmp_path, n_per_batch=5, n_val=6, fmt=fmt)
    x, y = read_imagenet32_batch(imagenet32_files("val", tmp_path)[0])
    data, labels = truth["val_data"]
    assert x.dtype == torch.uint8 and x.shape == (6, 3, 32, 32)
    # row layout: 1024 red values, then green, then blue; pixel (r, c) of a plane is at r * 32 + c
    assert x[2, 0, 3, 7] == data[2, 3 * 32 + 7] and x[2, 1, 0, 0] == data[2, 1024]
    assert x[4, 2, 31, 31] == data[4, 3071]
    assert y.tolist() == [v - 1 for v in labels] and y[0] == 0 and y[1] == 999


def test_npz_is_preferred_and_every_missing_batch_is_named(tmp_path):
    write_imagenet32(tmp_path, fmt="pickle")
    write_imagenet32(tmp_path, fmt="npz", seed=1)
    assert all(p.suffix == ".npz" for p in imagenet32_files("train", tmp_path))
    for k in (3, 7):
        (tmp_path / "imagenet32" / f"train_data_batch_{k}.npz").unlink()
        (tmp_path / "imagenet32" / f"train_data_batch_{k}").unlink()
    with pytest.raises(DataMissingError, match="(?s)train_data_batch_3, train_data_batch_7.*image-net.org"):
        imagenet32_files("train", tmp_path)
    with pytest.raises(ValueError, match="split must be one of"):
        imagenet32_files("test", tmp_path)


def test_bad_batches_are_refused_with_the_reason(tmp_path):
    folder = tmp_path / "imagenet32"
    folder.mkdir()
    np.savez(folder / "a.npz", data=np.zeros((2, 3072), np.uint8), labels=np.array([1, 1001]))
    with pytest.raises(ValueError, match="label 1001 is at index 1"):
        read_imagenet32_batch(folder / "a.npz")
    np.savez(folder / "b.npz", data=np.zeros((2, 1024), np.uint8), labels=np.array([1, 2]))
    with pytest.raises(ValueError, match="rows of 3072"):
        read_imagenet32_batch(folder / "b.npz")
    np.savez(folder / "c.npz", data=np.zeros((2, 3072), np.uint8), labels=np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="3 labels for 2 images"):
        read_imagenet32_batch(folder / "c.npz")


class _Boom:
    def __reduce__(self):
        return (print, ("this would run",))


def test_a_pickled_batch_cannot_execute_code(tmp_path):
    path = tmp_path / "evil"
    with open(path, "wb") as f:
        pickle.dump({"data": np.zeros((1, 3072), np.uint8), "labels": [1], "x": _Boom()}, f)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load builtins.print"):
        read_imagenet32_batch(path)


def test_load_reads_only_the_files_it_needs(tmp_path):
    write_imagenet32(tmp_path, n_per_batch=4)
    for k in range(3, 11):   # only batches 1 and 2 exist...
        (tmp_path / "imagenet32" / f"train_data_batch_{k}.npz").unlink()
    with pytest.raises(DataMissingError):   # ...so the whole set is missing
        load_imagenet32("train", tmp_path)
    data = load_imagenet32("val", tmp_path, max_images=3)
    assert data.images.shape == (3, 3, 32, 32) and len(data.classes) == 1000


def _stream_images(stream):
    return [(x.clone(), y.clone()) for x, y in stream]


def test_stream_visits_every_image_once_per_epoch_and_ranks_split_it(tmp_path):
    truth = write_imagenet32(tmp_path, n_per_batch=6)
    rows = {bytes(r) for k in range(1, 11) for r in truth[f"train_data_batch_{k}"][0]}
    whole = _stream_images(ImageNet32Stream(6, root=tmp_path, seed=3))
    assert all(x.shape == (6, 3, 32, 32) for x, _ in whole) and len(whole) == 10
    assert {bytes(r.reshape(-1).numpy()) for x, _ in whole for r in x} == rows
    halves = [_stream_images(ImageNet32Stream(3, root=tmp_path, seed=3, rank=r, world=2)) for r in (0, 1)]
    seen = [{bytes(i.reshape(-1).numpy()) for x, _ in h for i in x} for h in halves]
    assert not seen[0] & seen[1] and seen[0] | seen[1] == rows   # disjoint shards that cover the set
    again = ImageNet32Stream(6, root=tmp_path, seed=3)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(whole, _stream_images(again)))   # reproducible
    again.set_epoch(1)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(whole, _stream_images(again)))   # reshuffled


def test_stream_carries_partial_minibatches_across_files(tmp_path):
    write_imagenet32(tmp_path, n_per_batch=5)
    batches = _stream_images(ImageNet32Stream(4, root=tmp_path))
    assert len(batches) == 12 and all(len(y) == 4 for _, y in batches)   # 50 images -> 12 full batches of 4
    with pytest.raises(ValueError, match="rank < world"):
        ImageNet32Stream(4, root=tmp_path, rank=2, world=2)


# ----------------------------------------------------------------------------------------------- ImageNet128
def test_image_folder_gives_uint8_centre_crops_with_sorted_labels(tmp_path):
    write_imagenet128(tmp_path, per_class=2)
    ds = imagenet128_dataset("val", tmp_path)
    assert len(ds) == 6 and ds.classes == sorted(IMAGENET_WNIDS)
    x, y = ds[3]
    assert x.dtype == torch.uint8 and x.shape == (3, 128, 128) and int(y) == 1
    small = imagenet128_dataset("train", tmp_path, size=32)
    assert small[0][0].shape == (3, 32, 32)
    with pytest.raises(DataMissingError, match="(?s)class folders.*image-net.org"):
        imagenet128_dataset("train", tmp_path / "nowhere")


# ---------------------------------------------------------------------------------------------- the networks
def test_release_networks_have_the_papers_parameter_counts():
    # ResNet32Wider ~90M, ResNet128 ~21M with 1000 classes (the release's ImageNet models)
    assert abs(count_parameters(imagenet32_energy()) / 1e6 - 90) < 1
    assert abs(count_parameters(imagenet128_energy()) / 1e6 - 21) < 0.5


@pytest.mark.parametrize("make,size", [(imagenet32_energy, 32), (imagenet128_energy, 128)])
def test_small_imagenet_nets_condition_on_labels_and_pool_to_4x4(make, size):
    net = make(n_classes=5, width=2)
    for block in net.blocks:   # the gains start at zero (every block its shortcut): move them
        torch.nn.init.normal_(block.gain.weight)
    x = torch.rand(2, 3, size, size, requires_grad=True)
    e0, e1 = net(x, torch.tensor([0, 0])), net(x, torch.tensor([4, 4]))
    assert e0.shape == (2,) and not torch.allclose(e0, e1)
    (g,) = torch.autograd.grad(e0.sum(), x)
    assert g.abs().sum() > 0
    h = net.conv_in(x)
    for block in net.blocks:
        h = block(h, None if net.n_classes is None else torch.tensor([0, 0]))
    assert h.shape[2:] == (4, 4)
    assert set(IMAGENET_LAYOUTS) == {"resnet32_wider", "resnet128"}
