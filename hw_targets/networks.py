"""The binary convs of the ImageNet ResNet-18 and ResNet-34, as accelerator layers.

The cycle model's table (``benchmarks/bench_fpga.py``) runs these: every conv
between the stem and the classifier, binary-input, in both forms on the same
array:

- sub-bit (W0.56/A1 at tau=5): a codebook of ``2**tau`` distinct 3x3 (or 1x1)
  units, random indices;
- BNN (W1/A1): random +-1 weights.

The two 3x3 convs of each basic block (16 in ResNet-18, 32 in ResNet-34) and,
on request, the 1x1 stride-2 shortcuts of stages 2 to 4.
Weights are random: the cycle model depends only on the shapes and tau.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw_targets.layer import FpgaConv
from schedules.bnn_xnor import BinaryConv
from schedules.subbit import SubBitConv

__all__ = ["RESNET_BLOCKS", "ConvShape", "resnet_convs", "subbit_layer", "bnn_layer"]

RESNET_BLOCKS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}
_STAGE_CHANNELS = (64, 128, 256, 512)
_STEM_OUTPUT = 56  # 224 input after the stride-2 stem and the stride-2 max pool


@dataclass(frozen=True)
class ConvShape:
    """One conv: stage (1 to 4), name, in/out channels, kernel, stride, padding, input size."""

    stage: int
    name: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    padding: int
    size: int


def resnet_convs(name: str, shortcuts: bool = False) -> list[ConvShape]:
    """The binary convs of ``name`` (``resnet18`` or ``resnet34``) at 224x224, in order.

    The paper's networks (Bi-Real / ReActNet style) keep the 1x1 stride-2
    shortcut convs in full precision, so they are not binary convs of either
    network; ``shortcuts=True`` adds them, as tvm-snn's own ResNets make them
    sub-bit (units of 8 channels).
    """
    shapes = []
    channels, size = _STAGE_CHANNELS[0], _STEM_OUTPUT
    for stage, (blocks, width) in enumerate(
        zip(RESNET_BLOCKS[name], _STAGE_CHANNELS, strict=True), start=1
    ):
        for block in range(blocks):
            stride = 2 if block == 0 and stage > 1 else 1
            prefix = f"layer{stage}.{block}"
            shapes.append(ConvShape(stage, f"{prefix}.conv1", channels, width, 3, stride, 1, size))
            shapes.append(
                ConvShape(stage, f"{prefix}.conv2", width, width, 3, 1, 1, size // stride)
            )
            if stride == 2 and shortcuts:
                shapes.append(
                    ConvShape(stage, f"{prefix}.downsample", channels, width, 1, 2, 0, size)
                )
            channels, size = width, size // stride
    return shapes


def _codebook(rng, rows: int, unit: int) -> np.ndarray:
    codes = rng.choice(1 << unit, size=rows, replace=False)
    return np.where((codes[:, None] >> np.arange(unit)) & 1, -1, 1).astype(np.int8)


def subbit_layer(shape: ConvShape, tau: int, rng, batch: int = 1) -> FpgaConv:
    """A random sub-bit conv of ``shape`` with a full ``2**tau``-row codebook."""
    unit = 9 if shape.kernel == 3 else 8
    units = shape.in_channels if shape.kernel == 3 else shape.in_channels // 8
    rows = 1 << tau
    conv = SubBitConv(
        kernel_size=shape.kernel,
        tau=tau,
        codebook=_codebook(rng, rows, unit),
        indices=rng.integers(0, rows, (shape.out_channels, units)),
        alpha=rng.uniform(0.5, 1.5, shape.out_channels).astype(np.float32),
        stride=shape.stride,
        padding=shape.padding,
        activation="binary",
    )
    return FpgaConv(conv, (batch, shape.in_channels, shape.size, shape.size), sign=True)


def bnn_layer(shape: ConvShape, rng, batch: int = 1) -> FpgaConv:
    """A random BNN conv of ``shape``."""
    k = shape.kernel
    signs = rng.choice(
        np.array([-1, 1], dtype=np.int8), size=(shape.out_channels, shape.in_channels, k, k)
    )
    alpha = rng.uniform(0.5, 1.5, shape.out_channels).astype(np.float32)
    conv = BinaryConv(
        signs=signs, alpha=alpha, stride=(shape.stride,) * 2, padding=(shape.padding,) * 4
    )
    return FpgaConv(conv, (batch, shape.in_channels, shape.size, shape.size), sign=True)
