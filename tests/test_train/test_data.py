"""Tests of the data sets: digits (shipped), CIFAR-10 pickles and class folders (faked in tmp_path)."""

import pickle
import socket

import numpy as np
import pytest
import torch
from PIL import Image

from tvm_snn.errors import ConfigError, DataError
from tvm_snn.train import load_dataset
from tvm_snn.train.data import (
    CIFAR_MEAN,
    CIFAR_STD,
    CIFAR_SUBFOLDER,
    CIFAR_TEST_FILE,
    CIFAR_TRAIN_FILES,
    PIXEL_MAX,
    Augment,
    augment_batch,
)

from common import NORMALIZED_MEAN_ATOL, NORMALIZED_STD_ATOL

DIGITS_TOTAL = 1797
CIFAR_PIXELS = 3 * 32 * 32
PER_BATCH = 2
TEST_IMAGES = 3
IMAGE_SIZE = 6


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any download attempt fails loudly instead of reaching the network."""

    def refuse(*args, **kwargs):
        raise AssertionError("a data loader tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def _write_batch(path, count, seed):
    rng = np.random.default_rng(seed)
    batch = {
        b"data": rng.integers(0, 256, size=(count, CIFAR_PIXELS), dtype=np.uint8),
        b"labels": rng.integers(0, 10, size=count).tolist(),
        b"batch_label": b"fake",
    }
    path.write_bytes(pickle.dumps(batch))
    return batch


@pytest.fixture
def cifar_dir(tmp_path):
    folder = tmp_path / CIFAR_SUBFOLDER
    folder.mkdir()
    batches = [_write_batch(folder / name, PER_BATCH, i) for i, name in enumerate(CIFAR_TRAIN_FILES)]
    test = _write_batch(folder / CIFAR_TEST_FILE, TEST_IMAGES, 99)
    return tmp_path, batches, test


def test_digits_ship_with_the_package_and_split_80_20():
    data = load_dataset("digits")
    assert (data.spec.num_classes, data.spec.in_channels, data.spec.image_size) == (10, 1, 8)
    assert len(data.train) + len(data.test) == DIGITS_TOTAL
    assert len(data.test) == round(DIGITS_TOTAL * 0.2)
    images, labels = data.train.take(torch.arange(len(data.train)))
    assert images.shape == (len(data.train), 1, 8, 8)
    assert abs(float(images.mean())) < NORMALIZED_MEAN_ATOL and abs(float(images.std()) - 1) < NORMALIZED_STD_ATOL
    assert set(labels.tolist()) == set(range(10))
    first, _ = load_dataset("digits").test.take(torch.arange(5))
    assert torch.equal(first, data.test.take(torch.arange(5))[0])


def test_digits_upsample_by_repeating_each_pixel():
    small = load_dataset("digits")
    large = load_dataset("digits", image_size=16)
    assert large.spec.image_size == 16
    images, labels = small.test.take(torch.arange(4))
    upsampled, same_labels = large.test.take(torch.arange(4))
    assert upsampled.shape == (4, 1, 16, 16) and torch.equal(labels, same_labels)
    # Every 2x2 block is one pixel of the 8x8 image (the normalization is the same).
    torch.testing.assert_close(upsampled[:, :, ::2, ::2], images, rtol=0, atol=NORMALIZED_MEAN_ATOL)
    assert torch.equal(upsampled[:, :, ::2, ::2], upsampled[:, :, 1::2, 1::2])


@pytest.mark.parametrize(("size", "message"), [(12, "not a multiple of 8"), (4, "image_size")])
def test_digits_refuse_other_sizes(size, message):
    with pytest.raises(ConfigError, match=message):
        load_dataset("digits", image_size=size)


def test_cifar_pickles_load_and_normalize(cifar_dir):
    root, batches, test = cifar_dir
    data = load_dataset("cifar10", root)  # finds the cifar-10-batches-py subfolder
    assert len(data.train) == PER_BATCH * len(CIFAR_TRAIN_FILES) and len(data.test) == TEST_IMAGES
    assert data.spec.augment == Augment(4, True)
    images, labels = data.train.take(torch.tensor([PER_BATCH]))  # first image of data_batch_2
    raw = batches[1][b"data"][0].reshape(3, 32, 32)
    mean, std = torch.tensor(CIFAR_MEAN)[:, None, None], torch.tensor(CIFAR_STD)[:, None, None]
    expected = (torch.tensor(raw / PIXEL_MAX, dtype=torch.float32) - mean) / std
    torch.testing.assert_close(images[0], expected)
    assert labels.tolist() == [batches[1][b"labels"][0]]
    assert data.test.take(torch.arange(TEST_IMAGES))[1].tolist() == test[b"labels"]


def test_missing_cifar_folder_or_file_is_a_data_error(tmp_path, cifar_dir):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("cifar10", tmp_path / "nowhere")
    with pytest.raises(DataError, match="needs a data folder"):
        load_dataset("cifar10")
    root, _, _ = cifar_dir
    (root / CIFAR_SUBFOLDER / CIFAR_TEST_FILE).unlink()
    with pytest.raises(DataError, match=CIFAR_TEST_FILE):
        load_dataset("cifar10", root)


@pytest.mark.parametrize(
    "content",
    [
        b"not a pickle",
        pickle.dumps({b"data": np.zeros((2, CIFAR_PIXELS), np.uint8), b"labels": [0, 1]})[:-9],
        pickle.dumps({b"data": np.zeros((2, 7), np.uint8), b"labels": [0, 1]}),
        pickle.dumps({b"labels": [0]}),
        pickle.dumps({b"data": np.zeros((2, CIFAR_PIXELS), np.uint8), b"labels": [0, 10]}),
    ],
    ids=["garbage", "truncated", "wrong-shape", "no-data", "bad-label"],
)
def test_corrupt_cifar_batch_is_a_data_error(cifar_dir, content):
    root, _, _ = cifar_dir
    (root / CIFAR_SUBFOLDER / CIFAR_TRAIN_FILES[2]).write_bytes(content)
    with pytest.raises(DataError, match=CIFAR_TRAIN_FILES[2]):
        load_dataset("cifar10", root)


class _Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar_batch_with_foreign_globals_is_refused(cifar_dir, capsys):
    root, _, _ = cifar_dir
    (root / CIFAR_SUBFOLDER / CIFAR_TEST_FILE).write_bytes(pickle.dumps({b"data": _Exploit()}))
    with pytest.raises(DataError, match="not allowed"):
        load_dataset("cifar10", root)
    assert "pwned" not in capsys.readouterr().out


def _image(path, size, color):
    Image.new("RGB", size, color).save(path)


@pytest.fixture
def image_root(tmp_path):
    for split in ("train", "val"):
        for name, color in (("cat", (250, 0, 0)), ("dog", (0, 0, 250))):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            _image(folder / "a.png", (12, 8), color)
            _image(folder / "b.jpg", (9, 9), color)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    return tmp_path


def test_image_folder_loads_resized_center_crops_with_sorted_classes(image_root):
    data = load_dataset("imagefolder", image_root, image_size=IMAGE_SIZE)
    assert data.spec.num_classes == 2 and data.spec.image_size == IMAGE_SIZE
    assert len(data.train) == 4 and len(data.test) == 4
    images, labels = data.train.take(torch.arange(4))
    assert images.shape == (4, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert labels.tolist() == [0, 0, 1, 1]
    red, blue = images[0].mean(dim=(1, 2)), images[3].mean(dim=(1, 2))
    assert red[0] > red[2] and blue[2] > blue[0]


def test_corrupt_image_is_a_data_error_naming_the_file(image_root):
    (image_root / "val" / "dog" / "b.jpg").write_bytes(b"\xff\xd8 truncated")
    data = load_dataset("imagefolder", image_root, image_size=IMAGE_SIZE)
    with pytest.raises(DataError, match="b.jpg"):
        data.test.take(torch.arange(4))


@pytest.mark.parametrize("broken", ["no-val", "unknown-class", "empty"])
def test_malformed_image_folder_is_a_data_error(image_root, broken):
    if broken == "no-val":
        (image_root / "val").rename(image_root / "validation")
    elif broken == "unknown-class":
        (image_root / "val" / "cow").mkdir()
    else:
        for path in (image_root / "val").rglob("*.*"):
            path.unlink()
    with pytest.raises(DataError):
        load_dataset("imagefolder", image_root, image_size=IMAGE_SIZE)


def test_unknown_data_set_and_folder_for_digits_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown data set"):
        load_dataset("mnist")
    with pytest.raises(ConfigError, match="no data folder"):
        load_dataset("digits", tmp_path)


def test_augmentation_is_seeded_and_keeps_content():
    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    augment = Augment(pad=1, flip=True)
    first = augment_batch(images, augment, torch.Generator().manual_seed(0))
    again = augment_batch(images, augment, torch.Generator().manual_seed(0))
    assert first.shape == images.shape and torch.equal(first, again)
    assert torch.equal(augment_batch(images, Augment(), torch.Generator()), images)
    flipped = augment_batch(images, Augment(flip=True), torch.Generator().manual_seed(1))
    for original, out in zip(images, flipped, strict=True):
        assert torch.equal(out, original) or torch.equal(out, original.flip(-1))
