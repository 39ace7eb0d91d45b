"""Small Relax modules for the pass tests, built with ``relax.BlockBuilder``."""

import numpy as np
from tvm import relax

from schedules.subbit import UNIT_1X1, UNIT_3X3


def subbit_weight(out_channels, in_channels, kernel=3, tau=5, seed=0, negative=True, patterns=None):
    """A dense OIHW weight that is exactly ``alpha[o] * P[idx]`` with ``2**tau`` random patterns."""
    rng = np.random.default_rng(seed)
    unit = UNIT_3X3 if kernel == 3 else UNIT_1X1
    units = in_channels if kernel == 3 else in_channels // UNIT_1X1
    rows = patterns if patterns is not None else 1 << tau
    codes = rng.choice(1 << unit, rows, replace=False)
    codebook = 2 * ((codes[:, None] >> np.arange(unit)) & 1) - 1
    idx = np.arange(out_channels * units) % rows  # every pattern is used
    rng.shuffle(idx)
    alpha = rng.uniform(0.5, 1.5, out_channels)
    if negative:
        alpha[::3] *= -1
    units_w = alpha[:, None, None] * codebook[idx.reshape(out_channels, units)]
    return units_w.reshape(out_channels, in_channels, kernel, kernel).astype(np.float32)


def conv_module(weight, shape, binary=False, padding=1, stride=1, groups=1, weight_is_param=False):
    """``main(x) = conv2d([sign](x), W)`` as a Relax module."""
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(shape, "float32"))
    params = [x]
    w = relax.const(weight)
    if weight_is_param:
        w = relax.Var("w", relax.TensorType(weight.shape, "float32"))
        params.append(w)
    with builder.function("main", params):
        with builder.dataflow():
            data = builder.emit(relax.op.sign(x)) if binary else x
            conv = relax.op.nn.conv2d(data, w, strides=stride, padding=padding, groups=groups)
            out = builder.emit_output(conv)
        builder.emit_func_output(out)
    return builder.get()


def conv_epilogue_module(weight, shape, bias, residual=None, binary=False):
    """``relu(conv2d([sign](x), W) + bias [+ residual])``: a conv with a ResNet block's epilogue."""
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(shape, "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            data = relax.op.sign(x) if binary else x
            y = builder.emit(relax.op.nn.conv2d(data, relax.const(weight), padding=1))
            y = builder.emit(relax.op.add(y, relax.const(bias.reshape(1, -1, 1, 1))))
            if residual is not None:
                y = builder.emit(relax.op.add(y, relax.const(residual)))
            out = builder.emit_output(relax.op.nn.relu(y))
        builder.emit_func_output(out)
    return builder.get()
