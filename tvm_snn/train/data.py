"""Data sets for the trainer: digits (shipped), CIFAR-10 and class-folder trees (local).

- ``"digits"``: scikit-learn's 8x8 hand-written digits (1797 real images, shipped
  inside scikit-learn), split 80/20 with a fixed seed. The default, for the demo
  and the tests.
- ``"cifar10"``: the python pickle batches (``data_batch_1`` .. ``data_batch_5``,
  ``test_batch``) in a local folder, or in its ``cifar-10-batches-py`` subfolder.
  The pickles are read with an unpickler that only accepts numpy arrays.
- ``"imagefolder"``: an ImageNet-style tree ``root/train/<class>/<image>`` and
  ``root/val/<class>/<image>`` (or ``test``); classes are the sorted folder names
  of ``train``. Images are decoded with Pillow, resized (shorter side) and
  center-cropped to ``image_size``.

Nothing is ever downloaded: a missing or corrupt folder raises
:class:`~tvm_snn.errors.DataError` naming the path.

Every data set has ``take(indices) -> (images, labels)``: a normalized float
``[N, C, H, W]`` batch and int64 labels. Training batches are augmented by
:func:`augment_batch` (random crop from a zero-padded image, horizontal flip),
driven by an explicit generator so that a resumed run sees the same batches.
"""

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tvm_snn.errors import ConfigError, DataError
from tvm_snn.train.validate import check_int

DIGITS_SIDE = 8
DIGITS_CLASSES = 10
DIGITS_MAX = 16.0
"""Pixel values of the digits lie in ``[0, DIGITS_MAX]``."""

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0

CIFAR_SIDE = 32
CIFAR_CLASSES = 10
RGB_CHANNELS = 3
CIFAR_CHANNELS = RGB_CHANNELS
CIFAR_TRAIN_FILES = tuple(f"data_batch_{index}" for index in range(1, 6))
CIFAR_TEST_FILE = "test_batch"
CIFAR_SUBFOLDER = "cifar-10-batches-py"
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
CIFAR_PAD = 4

PIXEL_MAX = 255.0
"""8-bit pixel values lie in ``[0, PIXEL_MAX]``."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_IMAGE_SIZE = 224
IMAGE_FOLDER_TRAIN = "train"
IMAGE_FOLDER_TEST = ("val", "test")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".gif", ".tif", ".tiff", ".webp")
IMAGE_PAD_DIVISOR = 8
FLIP_PROBABILITY = 0.5
"""Training crops of class-folder images move by up to ``image_size // 8`` pixels."""

ALLOWED_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}
"""The only globals a CIFAR pickle may reference."""


@dataclass(frozen=True)
class Augment:
    """Training augmentation: random crop from a zero-padded image, horizontal flip.

    Attributes
    ----------
    pad : int
        Zero padding on each side before the random crop (0: no crop).
    flip : bool
        Flip each image horizontally with probability 1/2.
    """

    pad: int = 0
    flip: bool = False


@dataclass(frozen=True)
class DataSpec:
    """What a model needs to know about a data set.

    Attributes
    ----------
    name : str
        The data set's key in ``DATASETS``.
    num_classes, in_channels, image_size : int
        Classes, image channels, image side.
    augment : Augment
        Training augmentation.
    """

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    augment: Augment = Augment()

    def to_dict(self):
        """Return plain data for a checkpoint."""
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "image_size": self.image_size,
            "augment": {"pad": self.augment.pad, "flip": self.augment.flip},
        }

    @classmethod
    def from_dict(cls, data):
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        data["augment"] = Augment(**data.get("augment", {}))
        return cls(**data)


def _normalizer(mean, std):
    mean = torch.tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
    std = torch.tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
    return mean, std


class ArrayDataset:
    """Images held in memory, normalized when taken.

    Parameters
    ----------
    images : torch.Tensor
        ``[N, C, H, W]`` raw pixel values (any dtype).
    labels : torch.Tensor
        int64 ``[N]``.
    scale : float
        Raw values are divided by ``scale`` first.
    mean, std : tuple of float
        Per-channel normalization after scaling.
    """

    def __init__(self, images, labels, scale, mean, std):
        self.images = images
        self.labels = labels.long()
        self.scale = scale
        self.mean, self.std = _normalizer(mean, std)

    def __len__(self):
        return len(self.labels)

    def take(self, indices):
        """Return the normalized float images and the labels at ``indices``."""
        images = self.images[indices].float() / self.scale
        return (images - self.mean) / self.std, self.labels[indices]


class ImageFolderDataset:
    """Image files decoded on demand (Pillow), resized and center-cropped.

    Parameters
    ----------
    samples : list of (Path, int)
        Image paths and class indices.
    image_size : int
        Side of the square output images.
    """

    def __init__(self, samples, image_size):
        self.samples = list(samples)
        self.image_size = image_size
        self.mean, self.std = _normalizer(IMAGENET_MEAN, IMAGENET_STD)

    def __len__(self):
        return len(self.samples)

    def _load(self, path):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
                width, height = image.size
                ratio = self.image_size / min(width, height)
                size = (
                    max(self.image_size, round(width * ratio)),
                    max(self.image_size, round(height * ratio)),
                )
                image = image.resize(size, Image.Resampling.BILINEAR)
                left = (size[0] - self.image_size) // 2
                top = (size[1] - self.image_size) // 2
                image = image.crop((left, top, left + self.image_size, top + self.image_size))
                array = np.asarray(image, dtype=np.uint8).copy()
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise DataError(f"cannot read image {path}: {error}") from None
        return torch.from_numpy(array).permute(2, 0, 1)

    def take(self, indices):
        """Decode, normalize and stack the images at ``indices``; return them and the labels."""
        picked = [self.samples[int(index)] for index in indices]
        images = torch.stack([self._load(path) for path, _ in picked]).float() / PIXEL_MAX
        labels = torch.tensor([label for _, label in picked], dtype=torch.long)
        return (images - self.mean) / self.std, labels


@dataclass(frozen=True)
class DataBundle:
    """A data set: its spec and its train and test splits."""

    spec: DataSpec
    train: object
    test: object

    def example_input(self, batch=1):
        """Return a zero input ``[batch, C, H, W]`` (for export)."""
        side = self.spec.image_size
        return torch.zeros(batch, self.spec.in_channels, side, side)


def augment_batch(images, augment, generator):
    """Randomly crop (from a zero-padded image) and flip a batch.

    Parameters
    ----------
    images : torch.Tensor
        ``[N, C, H, W]``.
    augment : Augment
        What to do.
    generator : torch.Generator
        The only source of randomness.

    Returns
    -------
    torch.Tensor
        The augmented batch, same shape.
    """
    count, _, height, width = images.shape
    if augment.pad:
        padded = F.pad(images, (augment.pad,) * 4)
        span = 2 * augment.pad + 1
        rows = torch.randint(span, (count,), generator=generator).tolist()
        cols = torch.randint(span, (count,), generator=generator).tolist()
        images = torch.stack(
            [
                padded[i, :, r : r + height, c : c + width]
                for i, (r, c) in enumerate(zip(rows, cols, strict=True))
            ]
        )
    if augment.flip:
        flip = torch.rand(count, generator=generator) < FLIP_PROBABILITY
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    return images


def load_digits(data_dir=None, image_size=DIGITS_SIDE):
    """Return scikit-learn's digits, 1x8x8 (or upsampled), split 80/20 with a fixed seed.

    Parameters
    ----------
    data_dir : None
        Unused (the data ships with scikit-learn); must be ``None``.
    image_size : int
        Side of the images: 8, or a multiple of 8 to which each pixel is
        repeated (nearest-neighbour upsampling, exact).

    Returns
    -------
    DataBundle

    Raises
    ------
    ConfigError
        On a data folder, or a size that is not a positive multiple of 8.
    """
    if data_dir is not None:
        raise ConfigError(
            f"digits ships with scikit-learn and takes no data folder, got {data_dir}"
        )
    check_int("image_size", image_size, minimum=DIGITS_SIDE, where="digits")
    if image_size % DIGITS_SIDE:
        raise ConfigError(f"digits: image_size={image_size} is not a multiple of {DIGITS_SIDE}")
    from sklearn.datasets import load_digits as sklearn_digits

    raw = sklearn_digits()
    factor = image_size // DIGITS_SIDE
    images = torch.tensor(raw.images, dtype=torch.float32)[:, None]
    images = images.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)
    labels = torch.tensor(raw.target, dtype=torch.long)
    generator = torch.Generator().manual_seed(DIGITS_SPLIT_SEED)
    order = torch.randperm(len(labels), generator=generator)
    test_count = round(len(labels) * DIGITS_TEST_FRACTION)
    test, train = order[:test_count], order[test_count:]
    scaled = images[train] / DIGITS_MAX
    mean, std = (float(scaled.mean()),), (float(scaled.std()),)
    spec = DataSpec("digits", DIGITS_CLASSES, 1, image_size)
    return DataBundle(
        spec,
        ArrayDataset(images[train], labels[train], DIGITS_MAX, mean, std),
        ArrayDataset(images[test], labels[test], DIGITS_MAX, mean, std),
    )


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that only builds numpy arrays, lists, dicts, bytes and numbers."""

    def find_class(self, module, name):
        if (module, name) in ALLOWED_PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")


def _read_cifar_batch(path):
    if not path.is_file():
        raise DataError(f"CIFAR-10 file {path} is missing (tvm-snn never downloads data)")
    try:
        batch = _ArrayUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, IndexError) as error:
        raise DataError(f"CIFAR-10 file {path} is corrupt: {error}") from None
    pixels = CIFAR_CHANNELS * CIFAR_SIDE * CIFAR_SIDE
    if data.ndim != 2 or data.shape[1] != pixels or len(labels) != len(data):
        raise DataError(
            f"CIFAR-10 file {path} is corrupt: data {data.shape} and {len(labels)} labels, "
            f"expected [N, {pixels}] and N labels"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= CIFAR_CLASSES):
        raise DataError(f"CIFAR-10 file {path} is corrupt: labels outside 0..{CIFAR_CLASSES - 1}")
    images = data.reshape(-1, CIFAR_CHANNELS, CIFAR_SIDE, CIFAR_SIDE)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels)


def _read_cifar_split(folder, names):
    parts = [_read_cifar_batch(folder / name) for name in names]
    return torch.cat([images for images, _ in parts]), torch.cat([labels for _, labels in parts])


def load_cifar10(data_dir):
    """Return CIFAR-10 from the python pickle batches in a local folder.

    Parameters
    ----------
    data_dir : str or Path
        The folder with ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``,
        or its parent holding ``cifar-10-batches-py``.

    Returns
    -------
    DataBundle

    Raises
    ------
    DataError
        If the folder or a file is missing or corrupt.
    """
    folder = _existing_folder(data_dir, "CIFAR-10")
    if (folder / CIFAR_SUBFOLDER).is_dir():
        folder = folder / CIFAR_SUBFOLDER
    train_images, train_labels = _read_cifar_split(folder, CIFAR_TRAIN_FILES)
    test_images, test_labels = _read_cifar_split(folder, (CIFAR_TEST_FILE,))
    spec = DataSpec("cifar10", CIFAR_CLASSES, CIFAR_CHANNELS, CIFAR_SIDE, Augment(CIFAR_PAD, True))
    return DataBundle(
        spec,
        ArrayDataset(train_images, train_labels, PIXEL_MAX, CIFAR_MEAN, CIFAR_STD),
        ArrayDataset(test_images, test_labels, PIXEL_MAX, CIFAR_MEAN, CIFAR_STD),
    )


def _existing_folder(data_dir, what):
    if data_dir is None:
        raise DataError(f"{what} needs a data folder (--data-dir); tvm-snn never downloads data")
    folder = Path(data_dir)
    if not folder.is_dir():
        raise DataError(f"{what} folder {folder} does not exist (tvm-snn never downloads data)")
    return folder


def _list_images(folder, classes):
    samples = []
    for label, name in enumerate(classes):
        class_dir = folder / name
        if not class_dir.is_dir():
            continue
        for path in sorted(class_dir.iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
                samples.append((path, label))
    return samples


def load_image_folder(data_dir, image_size=DEFAULT_IMAGE_SIZE):
    """Return an ImageNet-style class-folder tree.

    Parameters
    ----------
    data_dir : str or Path
        The root, holding ``train/<class>/...`` and ``val/<class>/...`` (or ``test``).
    image_size : int
        Side of the square images after resize and center crop.

    Returns
    -------
    DataBundle

    Raises
    ------
    DataError
        If a split is missing, has no images, or holds a class unknown to ``train``.
    """
    check_int("image_size", image_size, minimum=1, where="imagefolder")
    root = _existing_folder(data_dir, "image folder")
    train_dir = root / IMAGE_FOLDER_TRAIN
    if not train_dir.is_dir():
        raise DataError(f"image folder {root} has no {IMAGE_FOLDER_TRAIN}/ subfolder")
    test_dir = next((root / name for name in IMAGE_FOLDER_TEST if (root / name).is_dir()), None)
    if test_dir is None:
        raise DataError(f"image folder {root} has no {' or '.join(IMAGE_FOLDER_TEST)} subfolder")
    classes = sorted(path.name for path in train_dir.iterdir() if path.is_dir())
    unknown = sorted(
        path.name for path in test_dir.iterdir() if path.is_dir() and path.name not in classes
    )
    if unknown:
        raise DataError(f"{test_dir} has classes that {train_dir} lacks: {unknown}")
    splits = {}
    for split_dir in (train_dir, test_dir):
        samples = _list_images(split_dir, classes)
        if not samples:
            raise DataError(f"{split_dir} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        splits[split_dir] = ImageFolderDataset(samples, image_size)
    pad = max(1, image_size // IMAGE_PAD_DIVISOR)
    spec = DataSpec("imagefolder", len(classes), RGB_CHANNELS, image_size, Augment(pad, True))
    return DataBundle(spec, splits[train_dir], splits[test_dir])


DATASETS = {"digits": load_digits, "cifar10": load_cifar10, "imagefolder": load_image_folder}
"""``name -> loader(data_dir, **options) -> DataBundle``."""


def load_dataset(name="digits", data_dir=None, **options):
    """Load a data set by name.

    Parameters
    ----------
    name : {"digits", "cifar10", "imagefolder"}
        The data set.
    data_dir : str or Path, optional
        Its local folder (not for digits).
    **options
        Passed to the loader (``image_size`` for ``"imagefolder"``).

    Returns
    -------
    DataBundle

    Raises
    ------
    ConfigError
        On an unknown name.
    DataError
        On a missing or corrupt folder.
    """
    if name not in DATASETS:
        raise ConfigError(f"unknown data set {name!r}; choose one of {tuple(DATASETS)}")
    return DATASETS[name](data_dir, **options)
