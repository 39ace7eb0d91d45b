"""The dense direct conv in TE: the kernel for float convs the SNN path leaves dense.

NCHW in, NCHW out, so it sits between any two ops (the sub-bit kernels take
NCHW) with no layout transform between them. Output pixels of a row are the
vector lanes and the weights are broadcast, so the layout is the blocked one
only for the weight, packed at compile time (:func:`pack_weight`):
``[O / block, I, KH, KW, block]``, the block's weights of one tap adjacent.

Stages (the schedule, :mod:`schedules.dense_conv_schedule`, reads its knobs
from the :class:`~schedules.dense_conv_plan.DenseConvPlan` on the output block):

1. ``dense_pad``: the input, zero-padded and split by stride phase
   (:func:`padded_input`), so a tap of a strided conv reads contiguous
   vectors; each row is as wide as whole tiles of the output row need;
2. ``dense_acc``: the sums on the padded grid ``[N, O_blocks * block, OH, tiles * tile]``;
3. ``dense_out``: the real outputs, plus the bias if there is one (a folded
   batch norm's shift); FuseOps appends what follows (residual add, ReLU).
"""

from dataclasses import dataclass

import numpy as np
from tvm import te, tirx

from schedules.dense_conv_plan import DenseConvPlan, ceil_div
from schedules.plan import PLAN_ANNOTATION
from schedules.tir_build import FLOAT_DTYPE, TIR_INDEX_DTYPE
from tvm_snn.errors import FormatError

DENSE_BLOCK_PAD = "dense_pad"
DENSE_BLOCK_ACC = "dense_acc"
DENSE_BLOCK_OUT = "dense_out"
NCHW_RANK = 4
_PAIR = 2


@dataclass(frozen=True)
class DenseConvGeometry:
    """A float conv2d (NCHW data, OIHW weight, one group, no dilation) on one input shape.

    Attributes
    ----------
    data_shape : tuple of int
        ``(N, I, H, W)``.
    weight_shape : tuple of int
        ``(O, I, KH, KW)``.
    strides : tuple of int
        ``(stride_h, stride_w)``.
    padding : tuple of int
        ``(top, left, bottom, right)``.
    """

    data_shape: tuple
    weight_shape: tuple
    strides: tuple = (1, 1)
    padding: tuple = (0, 0, 0, 0)

    def __post_init__(self):
        shapes = {"data_shape": self.data_shape, "weight_shape": self.weight_shape}
        for name, shape in shapes.items():
            if len(shape) != NCHW_RANK or any(int(d) < 1 for d in shape):
                raise FormatError(f"DenseConvGeometry.{name} must be 4 positive sizes, got {shape}")
        if self.data_shape[1] != self.weight_shape[1]:
            raise FormatError(
                f"DenseConvGeometry: the input has {self.data_shape[1]} channels, the weight {self.weight_shape[1]}"
            )
        if len(self.strides) != _PAIR or min(self.strides) < 1:
            raise FormatError(f"DenseConvGeometry.strides must be 2 positive ints, got {self.strides}")
        if len(self.padding) != NCHW_RANK or min(self.padding) < 0:
            raise FormatError(f"DenseConvGeometry.padding must be 4 ints >= 0, got {self.padding}")
        if min(self.out_hw) < 1:
            raise FormatError(f"DenseConvGeometry: kernel {self.kernel_hw} is larger than the padded input")

    @property
    def out_channels(self):
        return self.weight_shape[0]

    @property
    def kernel_hw(self):
        return self.weight_shape[2], self.weight_shape[3]

    @property
    def out_hw(self):
        """The output's ``(OH, OW)``."""
        (_, _, h, w), (kh, kw) = self.data_shape, self.kernel_hw
        top, left, bottom, right = self.padding
        return (h + top + bottom - kh) // self.strides[0] + 1, (w + left + right - kw) // self.strides[1] + 1

    @property
    def out_shape(self):
        return (self.data_shape[0], self.out_channels, *self.out_hw)


@dataclass(frozen=True)
class DenseConvKernel:
    """A built dense conv: its PrimFunc and the constants it takes after the input.

    Attributes
    ----------
    func : tvm.tirx.PrimFunc
        ``func(data, packed_weight[, bias], out)``.
    constants : list of numpy.ndarray
        The packed weight, then the bias if the kernel has one.
    out_shape : tuple of int
    plan : DenseConvPlan
    """

    func: object
    constants: list
    out_shape: tuple
    plan: DenseConvPlan


def pack_weight(weight, block):
    """``[O, I, KH, KW]`` -> ``[ceil(O / block), I, KH, KW, block]``, zero channels padding the last block."""
    weight = np.asarray(weight, np.float32)
    out_channels = weight.shape[0]
    blocks = ceil_div(out_channels, block)
    padded = np.zeros((blocks * block, *weight.shape[1:]), np.float32)
    padded[:out_channels] = weight
    return np.ascontiguousarray(padded.reshape(blocks, block, *weight.shape[1:]).transpose(0, 2, 3, 4, 1))


def padded_input(data, kernel_hw, strides, padding, out_hw, row, fill=0.0):
    """Stage 1: the padded input, rows and columns split by stride phase.

    ``[N, C, row phases, OH + (KH - 1) // SH, column phases, row + (KW - 1) // SW]``
    where padded row ``r * SH + p`` is row ``r`` of phase ``p`` (columns alike):
    tap ``(ry, rx)`` of output ``(y, x)`` is at phase ``(ry % SH, rx % SW)``,
    position ``(y + ry // SH, x + rx // SW)``, so a row of outputs reads one
    contiguous run whatever the stride. Only the phases the taps use are kept
    (a 1x1/2 conv keeps a quarter of the input). ``row`` is the output row as
    the kernel computes it (whole tiles); outside the input it holds ``fill``.
    """
    n, channels, height, width = (int(d) for d in data.shape)
    (kh, kw), (sh, sw) = kernel_hw, strides
    top, left = padding[0], padding[1]
    value = tirx.const(fill, data.dtype)
    shape = (n, channels, min(sh, kh), out_hw[0] + (kh - 1) // sh, min(sw, kw), row + (kw - 1) // sw)

    def pad(b, c, row_phase, r, column_phase, q):
        ih = r * sh + row_phase - top
        iw = q * sw + column_phase - left
        inside = tirx.all(ih >= 0, ih < height, iw >= 0, iw < width)
        clamped = data[b, c, tirx.max(tirx.min(ih, height - 1), 0), tirx.max(tirx.min(iw, width - 1), 0)]
        return tirx.if_then_else(inside, clamped, value)

    return te.compute(shape, pad, name=DENSE_BLOCK_PAD)


def tap(padded, b, c, y, x, ry, rx, strides):
    """The padded input that tap ``(ry, rx)`` of output ``(y, x)`` reads (see :func:`padded_input`)."""
    sh, sw = strides
    return padded[b, c, ry % sh, y + ry // sh, rx % sw, x + rx // sw]


def build_te(geometry, plan, with_bias):
    """The TE tensors of the kernel: ``[data, packed_weight, (bias,) out]``."""
    n, channels, _, _ = geometry.data_shape
    (kh, kw), (sh, sw) = geometry.kernel_hw, geometry.strides
    out_h, out_w = geometry.out_hw
    block = plan.channel_block
    blocks = ceil_div(geometry.out_channels, block)
    row = ceil_div(out_w, plan.tile_pixels) * plan.tile_pixels
    data = te.placeholder(geometry.data_shape, FLOAT_DTYPE, name="data")
    weight = te.placeholder((blocks, channels, kh, kw, block), FLOAT_DTYPE, name="packed_weight")
    padded = padded_input(data, (kh, kw), (sh, sw), geometry.padding, (out_h, out_w), row)
    ic = te.reduce_axis((0, channels), name="ic")
    ry = te.reduce_axis((0, kh), name="ry")
    rx = te.reduce_axis((0, kw), name="rx")
    acc = te.compute(
        (n, blocks * block, out_h, row),
        lambda b, o, y, x: te.sum(
            tap(padded, b, ic, y, x, ry, rx, (sh, sw)) * weight[o // block, ic, ry, rx, o % block],
            axis=[ic, ry, rx],
        ),
        name=DENSE_BLOCK_ACC,
    )
    inputs = [data, weight]
    bias = te.placeholder((geometry.out_channels,), FLOAT_DTYPE, name="bias") if with_bias else None
    if bias is not None:
        inputs.append(bias)

    def value(b, o, y, x):
        return acc[b, o, y, x] if bias is None else acc[b, o, y, x] + bias[o]

    out = te.compute(geometry.out_shape, value, name=DENSE_BLOCK_OUT, attrs={PLAN_ANNOTATION: plan.to_json()})
    return [*inputs, out]


def build_dense_conv(geometry, plan, weight, bias=None):
    """The unscheduled dense conv kernel for ``geometry`` with ``weight`` (OIHW) and an optional bias.

    Returns
    -------
    DenseConvKernel
    """
    weight = np.asarray(weight, np.float32)
    if tuple(weight.shape) != tuple(geometry.weight_shape):
        raise FormatError(f"build_dense_conv: weight {weight.shape} does not match {geometry.weight_shape}")
    constants = [pack_weight(weight, plan.channel_block)]
    if bias is not None:
        constants.append(np.asarray(bias, np.float32).reshape(geometry.out_channels))
    func = te.create_prim_func(build_te(geometry, plan, bias is not None), index_dtype_override=TIR_INDEX_DTYPE)
    return DenseConvKernel(func=func, constants=constants, out_shape=geometry.out_shape, plan=plan)
