"""Ready-made exported models for the demo and the benchmarks: sub-bit ResNets.

The frontend's ResNets (``build_model("resnet18" | "resnet34", stem=...)``) as
sub-bit models at 0.56 bit, ``tau = 5`` for the 3x3 convs and the 1x1
shortcuts (W/A 0.56/32 with float activations, 0.56/1 with binary ones), on
CIFAR shapes (32x32, 3x3 stem) or ImageNet ones (224x224, 7x7/2 stem and
maxpool; the stem and the classifier stay float), or the dense float CIFAR
ResNet-18 they are compared with. Each builder exports its model to ONNX
(``tvm_snn.compile`` reads the file) and returns the path. Imports torch,
never tvm.

Examples
--------
>>> model, path = build_resnet18(binary=True, out_dir="out")  # doctest: +SKIP
>>> model, path = build_snn_resnet("resnet34", "imagenet", binary=False, out_dir="out", batch=8)  # doctest: +SKIP
>>> dense_path = build_float_resnet18("out")  # doctest: +SKIP
"""

from pathlib import Path

import torch

from tvm_snn.errors import ConfigError
from tvm_snn.train.config import SNNConfig
from tvm_snn.train.data import CIFAR_CHANNELS, CIFAR_CLASSES, CIFAR_SIDE
from tvm_snn.train.exporter import export
from tvm_snn.train.models import IMAGENET_CLASSES, build_model
from tvm_snn.train.prepare import convert

RESNET18 = "resnet18"
RESNET18_STEM = "cifar"
RESNET18_TAU = 5
"""Bits per unit of every sub-bit conv of the zoo's ResNets (0.56 bit per 3x3 weight)."""

IMAGENET_SIDE = 224
ZOO_RESNETS = ("resnet18", "resnet34")
ZOO_STEMS = {"cifar": (CIFAR_CLASSES, CIFAR_SIDE), "imagenet": (IMAGENET_CLASSES, IMAGENET_SIDE)}
"""Per stem: the classes and the input side of the zoo's models."""

SNN_A32_NAME = "resnet18_snn_a32"
SNN_A1_NAME = "resnet18_snn_a1"
FLOAT_NAME = "resnet18_float"
ONNX_SUFFIX = ".onnx"


def cifar_input_shape(batch=1):
    """Return the NCHW shape of a batch of CIFAR images: ``(batch, 3, 32, 32)``."""
    return (batch, CIFAR_CHANNELS, CIFAR_SIDE, CIFAR_SIDE)


def input_shape(stem, batch=1):
    """Return the NCHW input shape of the zoo's models with ``stem`` (``"cifar"`` or ``"imagenet"``)."""
    side = ZOO_STEMS[stem][1]
    return (batch, CIFAR_CHANNELS, side, side)


def _export(model, out_dir, name, shape=None):
    path = Path(out_dir) / f"{name}{ONNX_SUFFIX}"
    export(model, torch.zeros(shape or cifar_input_shape()), str(path), write_pt2=False)
    return str(path)


def build_snn_resnet(name, stem, binary, out_dir, batch=1, seed=0):
    """Build a ResNet at 0.56 bit, freeze it and export it to ONNX at ``batch``.

    Parameters
    ----------
    name : {"resnet18", "resnet34"}
    stem : {"cifar", "imagenet"}
        CIFAR shapes (10 classes, 32x32) or ImageNet ones (1000 classes, 224x224).
    binary : bool
        Binary activations (W/A 0.56/1) or float ones (0.56/32).
    out_dir : str or Path
        The folder of the ONNX file (it must exist).
    batch : int
        The batch the ONNX file is exported at.
    seed : int
        Seeds the float initialization and the subsets.

    Returns
    -------
    tuple
        ``(model, onnx_path)``: the frozen model and the path of its ONNX file.

    Raises
    ------
    ConfigError
        On another model or stem.
    """
    if name not in ZOO_RESNETS or stem not in ZOO_STEMS:
        raise ConfigError(
            f"the zoo has {ZOO_RESNETS} with stems {tuple(ZOO_STEMS)}, not {name!r} / {stem!r}"
        )
    classes = ZOO_STEMS[stem][0]
    config = SNNConfig(tau_3x3=RESNET18_TAU, tau_1x1=RESNET18_TAU, binary_act=binary, seed=seed)
    model = build_model(name, classes, CIFAR_CHANNELS, config, stem=stem, seed=seed).eval()
    label = f"{name}_{stem}_snn_a{1 if binary else 32}_b{batch}"
    path = _export(model, out_dir, label, input_shape(stem, batch))
    return convert(model).eval(), path


def build_resnet18(binary, out_dir, seed=0):
    """Build the CIFAR ResNet-18 at 0.56 bit, freeze it and export it to ONNX.

    Parameters
    ----------
    binary : bool
        Binary activations (W/A 0.56/1, exported as ``resnet18_snn_a1.onnx``),
        or float ones (0.56/32, ``resnet18_snn_a32.onnx``).
    out_dir : str or Path
        The folder of the ONNX file (it must exist).
    seed : int
        Seeds the float initialization and the subsets.

    Returns
    -------
    tuple
        ``(model, onnx_path)``: the frozen model (:func:`tvm_snn.train.convert`,
        plain convs, eval mode) and the path of its ONNX file, as a string.
    """
    config = SNNConfig(tau_3x3=RESNET18_TAU, tau_1x1=RESNET18_TAU, binary_act=binary, seed=seed)
    model = build_model(
        RESNET18, CIFAR_CLASSES, CIFAR_CHANNELS, config, stem=RESNET18_STEM, seed=seed
    ).eval()
    path = _export(model, out_dir, SNN_A1_NAME if binary else SNN_A32_NAME)
    return convert(model).eval(), path


def build_float_resnet18(out_dir):
    """Build the dense float CIFAR ResNet-18 (the SNNs' baseline) and export it to ONNX.

    Parameters
    ----------
    out_dir : str or Path
        The folder of ``resnet18_float.onnx`` (it must exist).

    Returns
    -------
    str
        The path of the ONNX file.
    """
    model = build_model(RESNET18, CIFAR_CLASSES, CIFAR_CHANNELS, None, stem=RESNET18_STEM).eval()
    return _export(model, out_dir, FLOAT_NAME)
