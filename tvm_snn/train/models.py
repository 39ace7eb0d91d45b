"""Reference float models and the model registry.

Models: ResNet-20 (CIFAR), ResNet-18 and ResNet-34 (basic blocks), ResNet-50
(bottleneck blocks, whose 1x1 convs are the sub-bit 1x1 extension) and
VGG-small. Every model takes ``num_classes``, ``in_channels`` and ``width`` (the
channels of the first stage), so a narrow model runs on the 1x8x8 digits.

The ResNets take a ``stem``: ``"imagenet"`` is the torchvision layout (7x7
stride-2 conv and a max-pool), ``"cifar"`` a 3x3 stride-1 conv and no pool.
Downsample shortcuts are 1x1 conv + batch norm. VGG-small (LQ-Nets, IR-Net) is
six 3x3 convs of widths ``w, w, 2w, 2w, 4w, 4w`` with a max-pool after every
second conv; its classifier reads globally average-pooled features, so any
input size works.

Each model has float, sub-bit and binary-activation variants through
:func:`tvm_snn.train.prepare`; :func:`build_model` builds any of them by name::

    build_model("resnet20", num_classes=10, in_channels=1, config="binary", width=8)
"""

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from tvm_snn.errors import ConfigError
from tvm_snn.train.config import SNNConfig
from tvm_snn.train.data import CIFAR_CLASSES
from tvm_snn.train.prepare import prepare
from tvm_snn.train.validate import check_choice, check_int

STEMS = ("imagenet", "cifar")
STAGE_MULTIPLIERS = (1, 2, 4, 8)
"""Widths of the four ResNet stages, in units of ``width``."""

RESNET_WIDTH = 64
"""First-stage width of ResNet-18/34/50."""

CIFAR_RESNET_WIDTH = 16
"""First-stage width of ResNet-20."""

VGG_WIDTH = 128
"""Width of VGG-small's first two convs."""

BLOCKS_PER_STAGE = (2, 2, 2, 2)
"""ResNet-18."""

RESNET34_BLOCKS = (3, 4, 6, 3)
RESNET50_BLOCKS = (3, 4, 6, 3)
RESNET20_BLOCKS = (3, 3, 3)
BOTTLENECK_EXPANSION = 4
"""Output channels of a bottleneck block, in units of its inner width."""

VGG_MULTIPLIERS = (1, 1, 2, 2, 4, 4)
"""Widths of VGG-small's six convs, in units of ``width``."""

VGG_POOL_EVERY = 2
"""VGG-small max-pools after every second conv."""

IMAGENET_STEM_KERNEL = 7
IMAGENET_STEM_STRIDE = 2
POOL_KERNEL = 3
POOL_STRIDE = 2
VGG_POOL = 2
DOWNSAMPLE_STRIDE = 2
KERNEL = 3
IMAGENET_CLASSES = 1000
RGB = 3

MODEL_REGISTRY: dict[str, Callable] = {}
"""``name -> fn(num_classes, in_channels, width, stem) -> nn.Module``; see :func:`register_model`."""

VARIANTS = {"float": None, "subbit": {}, "binary": {"binary_act": True}}
"""Named variants for :func:`build_model`: ``None`` keeps the float model, a dict
holds the :class:`SNNConfig` fields that differ from the default."""


def register_model(name):
    """Register ``fn(num_classes, in_channels, width, stem)`` under ``name`` for :func:`build_model`."""

    def decorate(fn):
        MODEL_REGISTRY[name] = fn
        return fn

    return decorate


def _conv3x3(in_channels, out_channels, stride=1):
    return nn.Conv2d(in_channels, out_channels, KERNEL, stride=stride, padding=1, bias=False)


def _shortcut(in_channels, out_channels, stride):
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN pairs with an identity or 1x1-conv shortcut."""

    expansion = 1

    def __init__(self, in_channels, channels, stride=1):
        super().__init__()
        self.conv1 = _conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = _conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, channels, stride)

    def forward(self, x):
        """Residual block forward."""
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (with the stride), 1x1 expand; identity or 1x1-conv shortcut."""

    expansion = BOTTLENECK_EXPANSION

    def __init__(self, in_channels, channels, stride=1):
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = _conv3x3(channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, out_channels, stride)

    def forward(self, x):
        """Residual block forward."""
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
    """A ResNet: a stem, one stage per entry of ``blocks``, pooling and a classifier.

    Parameters
    ----------
    blocks : tuple of int
        Blocks per stage (at most four stages); stage ``i`` has inner width
        ``width * STAGE_MULTIPLIERS[i]`` and all but the first downsample by 2.
    num_classes : int
        Width of the classifier.
    stem : {"imagenet", "cifar"}
        The input stem.
    in_channels : int
        Channels of the input image.
    width : int
        Inner width of the first stage.
    block : {"basic", "bottleneck"}
        The residual block.
    """

    def __init__(
        self,
        blocks=BLOCKS_PER_STAGE,
        num_classes=IMAGENET_CLASSES,
        stem="imagenet",
        in_channels=RGB,
        width=RESNET_WIDTH,
        block="basic",
    ):
        super().__init__()
        where = "resnet"
        check_choice("stem", stem, STEMS, where)
        check_choice("block", block, BLOCKS, where)
        check_int("num_classes", num_classes, minimum=1, where=where)
        check_int("in_channels", in_channels, minimum=1, where=where)
        check_int("width", width, minimum=1, where=where)
        if not 1 <= len(blocks) <= len(STAGE_MULTIPLIERS):
            raise ConfigError(
                f"{where}: blocks={blocks} needs 1 to {len(STAGE_MULTIPLIERS)} stages"
            )
        block_type = BLOCKS[block]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(
                in_channels,
                width,
                IMAGENET_STEM_KERNEL,
                stride=IMAGENET_STEM_STRIDE,
                padding=IMAGENET_STEM_KERNEL // 2,
                bias=False,
            )
            pool = nn.MaxPool2d(POOL_KERNEL, stride=POOL_STRIDE, padding=POOL_KERNEL // 2)
        else:
            self.conv1 = _conv3x3(in_channels, width)
            pool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = pool
        channels = width
        self.stages = len(blocks)
        for index, count in enumerate(blocks):
            inner = width * STAGE_MULTIPLIERS[index]
            stride = 1 if index == 0 else DOWNSAMPLE_STRIDE
            layers = [block_type(channels, inner, stride)]
            channels = inner * block_type.expansion
            layers += [block_type(channels, inner) for _ in range(count - 1)]
            setattr(self, f"layer{index + 1}", nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        """Classify a batch of images."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for index in range(self.stages):
            x = getattr(self, f"layer{index + 1}")(x)
        return self.fc(self.avgpool(x).flatten(1))


class VGGSmall(nn.Module):
    """VGG-small: six 3x3 conv-BN-ReLU layers, max-pools, a linear classifier.

    Parameters
    ----------
    num_classes : int
        Width of the classifier.
    in_channels : int
        Channels of the input image.
    width : int
        Channels of the first two convs.
    """

    def __init__(self, num_classes=CIFAR_CLASSES, in_channels=RGB, width=VGG_WIDTH):
        super().__init__()
        where = "vgg_small"
        check_int("num_classes", num_classes, minimum=1, where=where)
        check_int("in_channels", in_channels, minimum=1, where=where)
        check_int("width", width, minimum=1, where=where)
        layers = []
        channels = in_channels
        for index, multiplier in enumerate(VGG_MULTIPLIERS):
            out_channels = width * multiplier
            layers.append(_conv3x3(channels, out_channels))
            if index % VGG_POOL_EVERY == VGG_POOL_EVERY - 1:
                layers.append(nn.MaxPool2d(VGG_POOL))
            layers += [nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
            channels = out_channels
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        """Classify a batch of images."""
        return self.fc(self.avgpool(self.features(x)).flatten(1))


@register_model("resnet18")
def resnet18(num_classes=IMAGENET_CLASSES, stem="imagenet", in_channels=RGB, width=RESNET_WIDTH):
    """Return a float ResNet-18 (basic blocks ``2, 2, 2, 2``).

    Parameters
    ----------
    num_classes : int
        Width of the classifier.
    stem : {"imagenet", "cifar"}
        The input stem.
    in_channels : int
        Channels of the input image.
    width : int
        Width of the first stage.

    Returns
    -------
    ResNet
    """
    return ResNet(BLOCKS_PER_STAGE, num_classes, stem, in_channels, width)


@register_model("resnet34")
def resnet34(num_classes=IMAGENET_CLASSES, stem="imagenet", in_channels=RGB, width=RESNET_WIDTH):
    """Return a float ResNet-34 (basic blocks ``3, 4, 6, 3``); arguments as :func:`resnet18`."""
    return ResNet(RESNET34_BLOCKS, num_classes, stem, in_channels, width)


@register_model("resnet50")
def resnet50(num_classes=IMAGENET_CLASSES, stem="imagenet", in_channels=RGB, width=RESNET_WIDTH):
    """Return a float ResNet-50 (bottleneck blocks ``3, 4, 6, 3``); arguments as :func:`resnet18`."""
    return ResNet(RESNET50_BLOCKS, num_classes, stem, in_channels, width, block="bottleneck")


@register_model("resnet20")
def resnet20(num_classes=CIFAR_CLASSES, stem="cifar", in_channels=RGB, width=CIFAR_RESNET_WIDTH):
    """Return a float ResNet-20: three stages of three basic blocks, widths ``w, 2w, 4w``."""
    return ResNet(RESNET20_BLOCKS, num_classes, stem, in_channels, width)


@register_model("vgg_small")
def vgg_small(num_classes=CIFAR_CLASSES, stem=None, in_channels=RGB, width=VGG_WIDTH):
    """Return a float VGG-small; ``stem`` must be ``None`` (it has no ResNet stem)."""
    if stem is not None:
        raise ConfigError(
            f"vgg_small: stem={stem!r} is not supported (VGG-small has no stem option)"
        )
    return VGGSmall(num_classes, in_channels, width)


def resolve_config(config):
    """Turn a variant name, an ``SNNConfig`` or ``None`` into an ``SNNConfig`` or ``None``.

    Parameters
    ----------
    config : None, str or SNNConfig
        ``None`` or ``"float"``: the float model; ``"subbit"``: ``SNNConfig()``;
        ``"binary"``: ``SNNConfig(binary_act=True)``; or a config.

    Returns
    -------
    SNNConfig or None

    Raises
    ------
    ConfigError
        On an unknown variant or another type.
    """
    if config is None or isinstance(config, SNNConfig):
        return config
    if isinstance(config, str):
        check_choice("variant", config, VARIANTS, "build_model")
        fields = VARIANTS[config]
        return None if fields is None else SNNConfig(**fields)
    raise ConfigError(
        f"build_model: config must be None, a variant name {tuple(VARIANTS)} or an SNNConfig, "
        f"got {type(config).__name__}"
    )


def build_model(
    name,
    num_classes=CIFAR_CLASSES,
    in_channels=RGB,
    config=None,
    *,
    width=None,
    stem=None,
    seed=None,
):
    """Build a registered model, float or prepared.

    Parameters
    ----------
    name : str
        A key of ``MODEL_REGISTRY``: ``"resnet20"``, ``"resnet18"``, ``"resnet34"``,
        ``"resnet50"`` or ``"vgg_small"``.
    num_classes : int
        Width of the classifier.
    in_channels : int
        Channels of the input image.
    config : None, str or SNNConfig
        The variant; see :func:`resolve_config`.
    width : int, optional
        First-stage width; the model's own default when ``None``.
    stem : {"imagenet", "cifar"}, optional
        ResNet stem; the model's own default when ``None``.
    seed : int, optional
        Seed the float initialization (the global torch RNG is restored afterwards).

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    ConfigError
        On an unknown name, variant or option.
    """
    check_choice("model", name, MODEL_REGISTRY, "build_model")
    snn_config = resolve_config(config)
    options = {"num_classes": num_classes, "in_channels": in_channels}
    if width is not None:
        options["width"] = width
    if stem is not None:
        options["stem"] = stem
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            check_int("seed", seed, minimum=0, where="build_model")
            torch.manual_seed(seed)
        model = MODEL_REGISTRY[name](**options)
        if snn_config is not None:
            model = prepare(model, snn_config, inplace=True)
    return model


@dataclass(frozen=True)
class ModelSpec:
    """Everything :func:`build_model` needs; saved in checkpoints so a model can be rebuilt.

    Attributes
    ----------
    name : str
        The registered model name.
    num_classes, in_channels : int
        Classifier width and input channels.
    config : SNNConfig or None
        The SNN config (``None``: float model).
    width : int or None
        First-stage width (``None``: the model's default).
    stem : str or None
        ResNet stem (``None``: the model's default).
    seed : int
        Seed of the float initialization.
    """

    name: str
    num_classes: int = CIFAR_CLASSES
    in_channels: int = RGB
    config: SNNConfig | None = None
    width: int | None = None
    stem: str | None = None
    seed: int = 0

    def build(self):
        """Return the model this spec describes (freshly initialized)."""
        return build_model(
            self.name,
            self.num_classes,
            self.in_channels,
            self.config,
            width=self.width,
            stem=self.stem,
            seed=self.seed,
        )

    def to_dict(self):
        """Return plain data (the config as its ``to_dict``)."""
        data = dataclasses.asdict(self) | {"config": None}
        if self.config is not None:
            data["config"] = self.config.to_dict()
        return data

    @classmethod
    def from_dict(cls, data):
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        ConfigError
            On unknown fields or a bad config.
        """
        names = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"ModelSpec: unknown fields {unknown}")
        data = dict(data)
        if data.get("config") is not None:
            data["config"] = SNNConfig.from_dict(data["config"])
        return cls(**data)
