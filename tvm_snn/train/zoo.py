"""Ready-made exported models for the demo and the benchmarks: the CIFAR ResNet-18.

The frontend's CIFAR ResNet-18 (``build_model("resnet18", stem="cifar")``) as a
sub-bit model at 0.56 bit, ``tau = 5`` for the 3x3 convs and the 1x1 shortcuts
(W/A 0.56/32 with float activations, 0.56/1 with binary ones), or as the dense
float model it is compared with. Each builder exports its model to ONNX at
batch 1 (``tvm_snn.compile`` reads the file) and returns the path. Imports
torch, never tvm.

Examples
--------
>>> model, path = build_resnet18(binary=True, out_dir="out")  # doctest: +SKIP
>>> dense_path = build_float_resnet18("out")  # doctest: +SKIP
"""

from pathlib import Path

import torch

from tvm_snn.train.config import SNNConfig
from tvm_snn.train.data import CIFAR_CHANNELS, CIFAR_CLASSES, CIFAR_SIDE
from tvm_snn.train.exporter import export
from tvm_snn.train.models import build_model
from tvm_snn.train.prepare import convert

RESNET18 = "resnet18"
RESNET18_STEM = "cifar"
RESNET18_TAU = 5
"""Bits per unit of every sub-bit conv of the zoo's ResNet-18 (0.56 bit per 3x3 weight)."""

SNN_A32_NAME = "resnet18_snn_a32"
SNN_A1_NAME = "resnet18_snn_a1"
FLOAT_NAME = "resnet18_float"
ONNX_SUFFIX = ".onnx"


def cifar_input_shape(batch=1):
    """Return the NCHW shape of a batch of CIFAR images: ``(batch, 3, 32, 32)``."""
    return (batch, CIFAR_CHANNELS, CIFAR_SIDE, CIFAR_SIDE)


def _export(model, out_dir, name):
    path = Path(out_dir) / f"{name}{ONNX_SUFFIX}"
    export(model, torch.zeros(cifar_input_shape()), str(path), write_pt2=False)
    return str(path)


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
    model = build_model(RESNET18, CIFAR_CLASSES, CIFAR_CHANNELS, config, stem=RESNET18_STEM, seed=seed).eval()
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
