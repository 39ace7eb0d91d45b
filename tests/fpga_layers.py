"""Random accelerator layers and their expected outputs, written independently of ``hw_targets``.

The expected output comes from :mod:`schedules.reference` (the sub-bit conv)
or from its dense conv on ``sign(x)`` (the BNN conv), then the ALU's
documented epilogue: ``alpha * acc + bias`` in float64 rounded to float32, the
residual added in float32, ``sign`` with 0 at 0.
"""

import numpy as np

from hw_targets.layer import FpgaConv
from schedules import reference
from schedules.bnn_xnor import BinaryConv
from schedules.subbit import SubBitConv

SMALL_SPEC = {
    "name": "small",
    "description": "tiny buffers, so every layer takes many tiles",
    "pe_count": 4,
    "pe_adders": 72,
    "alu_lanes": 4,
    "clock_mhz": 100,
    "max_tau": 8,
    "accumulator_bits": 16,
    "buffers_kib": {
        "input": 1,
        "index": 1,
        "codebook": 1,
        "weight": 2,
        "response": 8,
        "accumulator": 8,
        "output": 2,
        "params": 1,
    },
    "dram_bytes_per_cycle": 4,
    "dram_latency_cycles": 10,
    "device": None,
}


def random_codebook(rng, rows, unit):
    """``rows`` distinct +-1 units of ``unit`` signs."""
    codes = rng.choice(1 << unit, size=rows, replace=False)
    return np.where((codes[:, None] >> np.arange(unit)) & 1, -1, 1).astype(np.int8)


def subbit_conv(rng, kernel, tau, in_channels, out_channels, stride=1, padding=0, rows=None):
    """A random binary-input sub-bit conv with a bias; ``rows`` codewords (random, at most ``2**tau``)."""
    unit = 9 if kernel == 3 else 8
    units = in_channels if kernel == 3 else in_channels // 8
    rows = rows or int(rng.integers(1, (1 << tau) + 1))
    return SubBitConv(
        kernel_size=kernel,
        tau=tau,
        codebook=random_codebook(rng, rows, unit),
        indices=rng.integers(0, rows, (out_channels, units)),
        alpha=(rng.random(out_channels) - 0.5).astype(np.float32),
        bias=rng.standard_normal(out_channels).astype(np.float32),
        stride=stride,
        padding=padding,
        activation="binary",
    )


def binary_conv(rng, kernel, in_channels, out_channels, stride=1, padding=0):
    """A random BNN conv."""
    signs = rng.choice(
        np.array([-1, 1], dtype=np.int8), size=(out_channels, in_channels, kernel, kernel)
    )
    alpha = rng.uniform(0.1, 2.0, out_channels).astype(np.float32)
    return BinaryConv(signs=signs, alpha=alpha, stride=(stride, stride), padding=(padding,) * 4)


def ternary_input(rng, shape):
    """Float input with some exact zeros (``sign(0) = 0`` must survive)."""
    x = rng.standard_normal(shape).astype(np.float32)
    x[rng.random(shape) < 0.1] = 0.0
    return x


def expected_output(layer: FpgaConv, x, residual=None):
    """What the accelerator must compute for ``layer`` on ``x``."""
    conv = layer.conv
    if layer.subbit:
        y = reference.conv2d_reference(x, conv)
    else:
        acc = reference.conv2d_dense_reference(
            reference.binarize(x), conv.signs, None, conv.stride, conv.padding
        )
        scaled = acc.astype(np.float64) * conv.alpha.astype(np.float64)[None, :, None, None]
        if layer.bias is not None:
            scaled = scaled + np.asarray(layer.bias, dtype=np.float64)[None, :, None, None]
        y = scaled.astype(np.float32)
    if residual is not None:
        y = y + residual
    if layer.relu:
        y = np.maximum(y, np.float32(0))
    if layer.sign:
        y = np.sign(y)
    return y
