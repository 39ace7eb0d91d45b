"""The NumPy reference: what a :class:`~schedules.subbit.SubBitConv` computes.

Every kernel, the FPGA simulator and the detector's reconstruction are tested
against this module. It follows the precompute + gather definition:

1. Unit patches: at output position ``p``, unit ``u`` of the input is a
   vector of ``unit_size`` values: the 3x3 window of channel ``u`` in
   row-major order (3x3), or channels ``8u .. 8u+7`` at one pixel (1x1).
2. Responses: ``r[u, j, p] = <patch_u(p), codebook[j]>`` for every codeword ``j``.
3. Gather: ``acc[o, p] = sum_u r[u, indices[o, u], p]``.
4. Epilogue: ``y[o, p] = alpha[o] * acc[o, p] + bias[o]``.

Binary activation: the conv reads ``sign(x)`` with ONNX ``Sign`` semantics
(``sign(0) = 0``), and padding inserts 0 after the sign, never -1. The
responses are then exact integers (:func:`responses_binary`).

Float arithmetic is done in float64; outputs are float32. Tensors are NCHW.
This module is pure NumPy.
"""

from __future__ import annotations

import numpy as np

from schedules.subbit import CODEBOOK_DTYPE, SubBitConv, as_padding, as_pair, conv_output_hw
from tvm_snn.errors import InputError

__all__ = [
    "unit_patches",
    "responses_float",
    "responses_binary",
    "gather_accumulate",
    "accumulate_binary",
    "apply_epilogue",
    "conv2d_reference",
    "conv2d_dense_reference",
    "binarize",
]

_INPUT_NDIM = 4
ACCUMULATOR_DTYPE = np.int32


def _check_input(x, in_channels: int) -> np.ndarray:
    data = np.asarray(x)
    real = np.issubdtype(data.dtype, np.floating) or np.issubdtype(data.dtype, np.integer)
    if data.ndim != _INPUT_NDIM or not real or data.shape[1] != in_channels:
        raise InputError(
            f"input must be a real NCHW array with {in_channels} channels, "
            f"got {data.dtype} {data.shape}"
        )
    return data


def _output_hw(input_hw, kernel_hw, stride, padding, dilation) -> tuple[int, int]:
    out_hw = conv_output_hw(input_hw, kernel_hw, stride, padding, dilation)
    if min(out_hw) < 1:
        raise InputError(
            f"input {input_hw[0]}x{input_hw[1]} is too small for kernel {kernel_hw}, "
            f"stride {stride}, padding {padding}, dilation {dilation}"
        )
    return out_hw


def _pad(x: np.ndarray, padding) -> np.ndarray:
    """Zero-pad the two spatial axes by ``(top, left, bottom, right)``."""
    top, left, bottom, right = padding
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))


def _window(padded: np.ndarray, kh: int, kw: int, stride, dilation, out_hw) -> np.ndarray:
    """The input values that kernel tap ``(kh, kw)`` sees: ``[N, C, out_h, out_w]``."""
    row, col = kh * dilation[0], kw * dilation[1]
    rows = slice(row, row + stride[0] * (out_hw[0] - 1) + 1, stride[0])
    cols = slice(col, col + stride[1] * (out_hw[1] - 1) + 1, stride[1])
    return padded[:, :, rows, cols]


def binarize(x) -> np.ndarray:
    """``sign(x)`` as ``int8`` with ``sign(0) = 0`` (ONNX ``Sign``); ``x`` must be finite."""
    data = np.asarray(x)
    if not np.isfinite(data).all():
        raise InputError(f"binary activation needs a finite input; input {data.shape} is not")
    return np.sign(data).astype(CODEBOOK_DTYPE)


def unit_patches(x, conv: SubBitConv) -> np.ndarray:
    """Unit patches of the (already activated) input.

    Parameters
    ----------
    x : array_like
        ``[N, in_channels, H, W]``; used as given (no sign applied).
    conv : SubBitConv
        Supplies the kernel, stride, padding and dilation.

    Returns
    -------
    numpy.ndarray
        ``[N, units, unit_size, out_h, out_w]`` of ``x``'s dtype; element
        ``k`` is tap ``(k // 3, k % 3)`` (3x3) or channel ``8u + k`` (1x1).
        Padded positions hold 0.
    """
    data = _check_input(x, conv.in_channels)
    out_hw = _output_hw(data.shape[2:], conv.kernel_size, conv.stride, conv.padding, conv.dilation)
    padded = _pad(data, conv.padding)
    taps = [
        _window(padded, kh, kw, conv.stride, conv.dilation, out_hw)
        for kh in range(conv.kernel_size[0])
        for kw in range(conv.kernel_size[1])
    ]
    stacked = np.stack(taps, axis=2)  # [N, C, taps, out_h, out_w]
    batch = data.shape[0]
    return stacked.reshape(batch, conv.num_units, conv.unit_size, *out_hw)


def responses_float(x, conv: SubBitConv) -> np.ndarray:
    """Float responses ``r[n, u, j, p] = <patch_u(p), codebook[j]>`` on ``x`` as given.

    Returns
    -------
    numpy.ndarray
        ``float64 [N, units, codewords, out_h, out_w]``.
    """
    patches = unit_patches(x, conv).astype(np.float64)
    return np.einsum("nukhw,jk->nujhw", patches, conv.codebook.astype(np.float64))


def responses_binary(x, conv: SubBitConv) -> np.ndarray:
    """Integer responses on ``sign(x)``: exact, in ``[-unit_size, unit_size]``.

    Parameters
    ----------
    x : array_like
        ``[N, in_channels, H, W]``, finite; binarized with :func:`binarize`.
    conv : SubBitConv
        The conv (its ``activation`` field is not consulted).

    Returns
    -------
    numpy.ndarray
        ``int32 [N, units, codewords, out_h, out_w]``.
    """
    signs = unit_patches(binarize(x), conv).astype(ACCUMULATOR_DTYPE)
    return np.einsum("nukhw,jk->nujhw", signs, conv.codebook.astype(ACCUMULATOR_DTYPE))


def gather_accumulate(responses: np.ndarray, conv: SubBitConv) -> np.ndarray:
    """``acc[n, o, p] = sum_u responses[n, u, indices[o, u], p]``.

    Returns
    -------
    numpy.ndarray
        ``[N, out_channels, out_h, out_w]`` of the responses' dtype.
    """
    units = np.arange(conv.num_units)
    per_channel = [responses[:, units, conv.indices[o]].sum(axis=1) for o in range(conv.out_channels)]
    return np.stack(per_channel, axis=1).astype(responses.dtype)


def accumulate_binary(x, conv: SubBitConv) -> np.ndarray:
    """Exact integer accumulators on ``sign(x)``: ``int32 [N, out_channels, out_h, out_w]``."""
    return gather_accumulate(responses_binary(x, conv), conv)


def apply_epilogue(accumulator: np.ndarray, conv: SubBitConv) -> np.ndarray:
    """``alpha[o] * acc + bias[o]`` in float64, returned as float32."""
    scale = conv.alpha.astype(np.float64)[None, :, None, None]
    y = accumulator.astype(np.float64) * scale
    if conv.bias is not None:
        y = y + conv.bias.astype(np.float64)[None, :, None, None]
    return y.astype(np.float32)


def conv2d_reference(x, conv: SubBitConv) -> np.ndarray:
    """Forward of a sub-bit conv by precompute + gather.

    Parameters
    ----------
    x : array_like
        ``[N, in_channels, H, W]``. For ``activation == "binary"`` the conv
        reads ``sign(x)`` (``sign(0) = 0``) and pads with 0.
    conv : SubBitConv
        The layer; its ``activation`` selects the float or the integer path.

    Returns
    -------
    numpy.ndarray
        ``float32 [N, out_channels, out_h, out_w]``.
    """
    if conv.activation == "binary":
        accumulator = accumulate_binary(x, conv)
    else:
        accumulator = gather_accumulate(responses_float(x, conv), conv)
    return apply_epilogue(accumulator, conv)


def _im2col(padded: np.ndarray, kernel_hw, stride, dilation, out_hw) -> np.ndarray:
    """Columns ``[N, C * kh * kw, out_h * out_w]`` in the order of an OIHW weight."""
    taps = [
        _window(padded, kh, kw, stride, dilation, out_hw)
        for kh in range(kernel_hw[0])
        for kw in range(kernel_hw[1])
    ]
    columns = np.stack(taps, axis=2)  # [N, C, taps, out_h, out_w]
    batch = padded.shape[0]
    return columns.reshape(batch, -1, out_hw[0] * out_hw[1])


def conv2d_dense_reference(x, weight, bias=None, stride=1, padding=0, dilation=1) -> np.ndarray:
    """Plain dense conv2d (groups 1) by im2col and a float64 matmul.

    Parameters
    ----------
    x : array_like
        ``[N, C, H, W]``, used as given.
    weight : array_like
        ``[O, C, KH, KW]``.
    bias : array_like, optional
        ``[O]``.
    stride, dilation : int or tuple of int
    padding : int or tuple of int
        As :func:`schedules.subbit.as_padding`; pads with 0.

    Returns
    -------
    numpy.ndarray
        ``float32 [N, O, out_h, out_w]``.
    """
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != _INPUT_NDIM:
        raise InputError(f"weight must be OIHW, got shape {w.shape}")
    data = _check_input(x, w.shape[1]).astype(np.float64)
    stride, dilation = as_pair(stride, "stride"), as_pair(dilation, "dilation")
    padding = as_padding(padding)
    kernel_hw = w.shape[2:]
    out_hw = _output_hw(data.shape[2:], kernel_hw, stride, padding, dilation)
    columns = _im2col(_pad(data, padding), kernel_hw, stride, dilation, out_hw)
    y = np.matmul(w.reshape(w.shape[0], -1), columns)
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)[None, :, None]
    return y.reshape(data.shape[0], w.shape[0], *out_hw).astype(np.float32)
