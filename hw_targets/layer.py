"""What the accelerator runs: one binary-input conv with its fused epilogue.

:class:`FpgaConv` is the compiler's input. Its weight is a
:class:`~schedules.subbit.SubBitConv` with binary activations (the sub-bit
conv, run by PRECOMPUTE + GATHER) or a :class:`~schedules.bnn_xnor.BinaryConv`
(the BNN baseline, run by XNOR on the same array). The input is ternary: the
conv reads ``sign(x)`` with ``sign(0) = 0`` and pads with 0, as
:mod:`schedules.reference` defines. The epilogue is the ALU's: ``alpha[o] *
acc + bias[o]``, then optionally ``+ residual``, ReLU and ``sign``.

:func:`check_layer` refuses, with :class:`~tvm_snn.errors.FpgaLayerError`
naming the reason, what the accelerator cannot run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw_targets.spec import AcceleratorSpec
from schedules.bnn_xnor import BinaryConv
from schedules.subbit import SubBitConv, conv_output_hw
from tvm_snn.errors import FpgaLayerError

__all__ = ["FpgaConv", "check_layer", "UNIT_CHANNELS"]

# Input channels of one unit: a 3x3 unit is one channel, a 1x1 unit eight.
UNIT_CHANNELS = {(3, 3): 1, (1, 1): 8}
_MAX_STRIDE = 7  # 3-bit stride fields
_MAX_PAD = 15  # 4-bit pad fields


@dataclass(frozen=True, eq=False)
class FpgaConv:
    """A conv for the accelerator.

    Attributes
    ----------
    conv : SubBitConv or BinaryConv
        The weight; a SubBitConv must have ``activation == "binary"``.
    input_shape : tuple of int
        ``(N, C, H, W)``.
    residual : bool
        Add a float32 tensor of the output's shape after the bias.
    relu : bool
        ``max(y, 0)`` after the residual.
    sign : bool
        Binarize the result (``sign``, 0 at 0) for the next binary layer.
    bias : numpy.ndarray or None
        float32 ``[O]`` for a BinaryConv (a SubBitConv carries its own).
    """

    conv: object
    input_shape: tuple
    residual: bool = False
    relu: bool = False
    sign: bool = False
    bias: np.ndarray | None = None

    @property
    def subbit(self) -> bool:
        """True for a sub-bit conv, False for the BNN baseline."""
        return isinstance(self.conv, SubBitConv)

    @property
    def kernel(self) -> tuple[int, int]:
        if self.subbit:
            return self.conv.kernel_size
        return tuple(self.conv.signs.shape[2:])

    @property
    def out_channels(self) -> int:
        return self.conv.out_channels if self.subbit else int(self.conv.signs.shape[0])

    @property
    def in_channels(self) -> int:
        return self.conv.in_channels if self.subbit else int(self.conv.signs.shape[1])

    @property
    def units(self) -> int:
        """Units per output channel: input channels over :data:`UNIT_CHANNELS`."""
        return self.in_channels // UNIT_CHANNELS[self.kernel]

    @property
    def unit_size(self) -> int:
        """Elements of a unit: 9 (3x3) or 8 (1x1)."""
        return self.kernel[0] * self.kernel[1] * UNIT_CHANNELS[self.kernel]

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        n, _, h, w = self.input_shape
        oh, ow = conv_output_hw((h, w), self.kernel, self.conv.stride, self.conv.padding, (1, 1))
        return (n, self.out_channels, oh, ow)

    def scale_and_bias(self) -> np.ndarray:
        """float32 ``[O, 2]``: each channel's ``alpha`` and ``bias`` (0 without one)."""
        bias = self.conv.bias if self.subbit else self.bias
        params = np.zeros((self.out_channels, 2), dtype=np.float32)
        params[:, 0] = self.conv.alpha
        if bias is not None:
            params[:, 1] = bias
        return params

    def codebook(self) -> np.ndarray:
        """int8 ``[rows, unit_size]`` signs (sub-bit only)."""
        return np.asarray(self.conv.codebook, dtype=np.int8)

    def weight_signs(self) -> np.ndarray:
        """int8 ``[O, units, unit_size]`` signs in unit order (BNN only)."""
        signs = np.asarray(self.conv.signs, dtype=np.int8)
        if self.kernel == (1, 1):  # unit u is channels 8u..8u+7
            return signs.reshape(self.out_channels, self.units, UNIT_CHANNELS[(1, 1)])
        return signs.reshape(self.out_channels, self.units, self.unit_size)


def check_layer(layer: FpgaConv, spec: AcceleratorSpec) -> None:
    """Raise :class:`FpgaLayerError` when ``spec``'s accelerator cannot run ``layer``."""
    conv = layer.conv
    if not isinstance(conv, (SubBitConv, BinaryConv)):
        raise FpgaLayerError(
            f"the accelerator runs a SubBitConv or a BinaryConv, got {type(conv).__name__}"
        )
    if layer.subbit and conv.activation != "binary":
        raise FpgaLayerError(
            "the accelerator takes binary inputs only; this sub-bit conv reads float activations"
        )
    shape = tuple(layer.input_shape)
    if len(shape) != 4 or any(not isinstance(d, (int, np.integer)) or d < 1 for d in shape):
        raise FpgaLayerError(
            f"input_shape must be four positive ints (N, C, H, W), got {layer.input_shape!r}"
        )
    if shape[1] != layer.in_channels:
        raise FpgaLayerError(
            f"input_shape has {shape[1]} channels but the conv takes {layer.in_channels}"
        )
    if layer.kernel not in UNIT_CHANNELS:
        raise FpgaLayerError(
            f"unsupported kernel {layer.kernel}: the accelerator runs 3x3 and 1x1 convs"
        )
    if layer.in_channels % UNIT_CHANNELS[layer.kernel]:
        raise FpgaLayerError(
            f"a 1x1 conv needs a multiple of 8 input channels, got {layer.in_channels}"
        )
    if layer.subbit and tuple(conv.dilation) != (1, 1):
        raise FpgaLayerError(
            f"unsupported dilation {conv.dilation}: the accelerator runs dilation 1"
        )
    if max(conv.stride) > _MAX_STRIDE:
        raise FpgaLayerError(f"stride {conv.stride} is above the ISA's {_MAX_STRIDE}")
    if max(conv.padding) > _MAX_PAD:
        raise FpgaLayerError(f"padding {conv.padding} is above the ISA's {_MAX_PAD}")
    if min(layer.output_shape[2:]) < 1:
        raise FpgaLayerError(
            f"input {shape[2]}x{shape[3]} is too small for the kernel, stride and padding"
        )
    if layer.subbit and conv.tau > spec.max_tau:
        raise FpgaLayerError(
            f"tau={conv.tau} is above the '{spec.name}' datapath's max_tau={spec.max_tau}"
        )
    widest = layer.units * layer.unit_size
    if widest >= 1 << (spec.accumulator_bits - 1):
        raise FpgaLayerError(
            f"sums of {layer.units} units of {layer.unit_size} may reach {widest}, "
            f"beyond the {spec.accumulator_bits}-bit accumulators of '{spec.name}'"
        )
    bias = conv.bias if layer.subbit else layer.bias
    if bias is not None and np.asarray(bias).shape != (layer.out_channels,):
        raise FpgaLayerError(f"bias must be [{layer.out_channels}], got {np.asarray(bias).shape}")
