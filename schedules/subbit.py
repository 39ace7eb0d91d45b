"""The sub-bit conv: the one weight format every layer of tvm-snn speaks.

A sub-bit conv stores its weight as a per-layer codebook of binary units and,
for every output channel, one codebook index per unit and one signed scale::

    weight[o, unit u] = alpha[o] * codebook[indices[o, u]]

A *unit* depends on the kernel:

- 3x3: one 3x3 kernel, its 9 signs in row-major order (``kh * 3 + kw``);
  there is one unit per input channel, ``units == in_channels``.
- 1x1: 8 consecutive input channels; unit ``j`` covers input channels
  ``8j .. 8j+7`` and its element ``k`` is channel ``8j + k``.

``tau`` is the number of bits of one index, so a weight costs ``tau / 9``
(3x3) or ``tau / 8`` (1x1) bits. The packed form stores every index in
exactly ``tau`` bits (:func:`pack_indices`) plus the codebook, one bit per
sign. :mod:`schedules.reference` defines what the format computes.

The unit sizes, kernel sizes and tau range come from :mod:`tvm_snn.schema`, the
frontend's and compiler's shared contract, and are re-exported here.

This module is pure NumPy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tvm_snn.errors import FormatError
from tvm_snn.schema import (
    BITS_PER_BYTE,
    KERNEL_1X1,
    KERNEL_3X3,
    MAX_TAU,
    MAX_TAU_1X1,
    MAX_TAU_3X3,
    MIN_TAU,
    UNIT_1X1,
    UNIT_3X3,
    code_to_signs,
    negate_code,
    signs_to_code,
)

__all__ = [
    "UNIT_3X3",
    "UNIT_1X1",
    "MAX_TAU_3X3",
    "MAX_TAU_1X1",
    "MAX_TAU",
    "MIN_TAU",
    "KERNEL_3X3",
    "KERNEL_1X1",
    "ACTIVATIONS",
    "PACKED_FORMAT_VERSION",
    "DENSE_RTOL",
    "DENSE_ATOL",
    "SubBitConv",
    "PackedSubBitConv",
    "pack_indices",
    "unpack_indices",
    "packed_length",
    "encode_signs",
    "decode_signs",
    "as_pair",
    "as_padding",
    "conv_output_hw",
]

# Input channels covered by one unit.
CHANNELS_PER_UNIT_3X3 = 1
CHANNELS_PER_UNIT_1X1 = UNIT_1X1

ACTIVATIONS = ("float", "binary")
SUPPORTED_GROUPS = 1
PACKED_FORMAT_VERSION = 1

INDEX_DTYPE = np.int32
CODEBOOK_DTYPE = np.int8

# from_dense: |w| must equal alpha within atol + rtol * alpha.
DENSE_RTOL = 1e-5
DENSE_ATOL = 0.0

_PAIR_LEN = 2
_PADDING_LEN = 4
_WEIGHT_NDIM = 4
_POSITIVE = 1
_NEGATIVE = -1


# --------------------------------------------------------------------------
# Small validators
# --------------------------------------------------------------------------


def _is_int(value) -> bool:
    """Whether ``value`` is a Python or NumPy integer (bool excluded)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _as_int_tuple(value, name: str, lengths: tuple[int, ...]) -> tuple[int, ...]:
    """Read an int or a sequence of ints of one of ``lengths`` as a tuple."""
    if _is_int(value):
        return (int(value),)
    if isinstance(value, tuple | list) and len(value) in lengths and all(map(_is_int, value)):
        return tuple(int(item) for item in value)
    raise FormatError(f"{name} must be an int or a tuple of {' or '.join(map(str, lengths))} ints, got {value!r}")


def as_pair(value, name: str, minimum: int = 1) -> tuple[int, int]:
    """Normalize an int or an ``(h, w)`` pair, each item ``>= minimum``.

    Parameters
    ----------
    value : int or tuple of int
        ``k`` means ``(k, k)``.
    name : str
        Field name used in error messages.
    minimum : int
        Smallest allowed item.

    Returns
    -------
    tuple of int
        ``(h, w)``.
    """
    items = _as_int_tuple(value, name, (_PAIR_LEN,))
    pair = items * _PAIR_LEN if len(items) == 1 else items
    if min(pair) < minimum:
        raise FormatError(f"{name} must be >= {minimum}, got {value!r}")
    return pair


def as_padding(value) -> tuple[int, int, int, int]:
    """Normalize padding to ``(top, left, bottom, right)``.

    Parameters
    ----------
    value : int or tuple of int
        ``p`` pads every side by ``p``; ``(ph, pw)`` pads top and bottom by
        ``ph``, left and right by ``pw``; a 4-tuple is taken as
        ``(top, left, bottom, right)``, the ONNX and Relax order.

    Returns
    -------
    tuple of int
        ``(top, left, bottom, right)``, all ``>= 0``.
    """
    items = _as_int_tuple(value, "padding", (_PAIR_LEN, _PADDING_LEN))
    if len(items) == 1:
        items = items * _PADDING_LEN
    elif len(items) == _PAIR_LEN:
        items = items * _PAIR_LEN
    if min(items) < 0:
        raise FormatError(f"padding must be >= 0, got {value!r}")
    return items


def conv_output_hw(input_hw, kernel_hw, stride, padding, dilation) -> tuple[int, int]:
    """Spatial output size of a 2-D convolution.

    Parameters
    ----------
    input_hw, kernel_hw, stride, dilation : tuple of int
        ``(h, w)`` pairs.
    padding : tuple of int
        ``(top, left, bottom, right)``.

    Returns
    -------
    tuple of int
        ``(out_h, out_w)``; an item is ``<= 0`` when the input is too small.
    """
    top, left, bottom, right = padding
    padded = (input_hw[0] + top + bottom, input_hw[1] + left + right)
    return tuple(
        (size - dil * (k - 1) - 1) // step + 1
        for size, k, step, dil in zip(padded, kernel_hw, stride, dilation, strict=True)
    )


def _check_kernel_size(value) -> tuple[int, int]:
    kernel = as_pair(value, "kernel_size")
    if kernel not in (KERNEL_3X3, KERNEL_1X1):
        raise FormatError(f"kernel_size must be (3, 3) or (1, 1), got {kernel}")
    return kernel


def _unit_size(kernel: tuple[int, int]) -> int:
    return UNIT_3X3 if kernel == KERNEL_3X3 else UNIT_1X1


def _max_tau(kernel: tuple[int, int]) -> int:
    return MAX_TAU_3X3 if kernel == KERNEL_3X3 else MAX_TAU_1X1


def _channels_per_unit(kernel: tuple[int, int]) -> int:
    return CHANNELS_PER_UNIT_3X3 if kernel == KERNEL_3X3 else CHANNELS_PER_UNIT_1X1


def _check_tau(tau, maximum: int, name: str = "tau") -> int:
    if not _is_int(tau) or not MIN_TAU <= tau <= maximum:
        raise FormatError(f"{name} must be an int in [{MIN_TAU}, {maximum}], got {tau!r}")
    return int(tau)


def _is_real(array: np.ndarray) -> bool:
    """Whether ``array`` holds real numbers (integers or floats, not bool)."""
    return np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)


def _is_integer(array: np.ndarray) -> bool:
    return np.issubdtype(array.dtype, np.integer)


def _frozen(array: np.ndarray, dtype) -> np.ndarray:
    """A read-only copy of ``array`` as ``dtype``."""
    copy = np.array(array, dtype=dtype, copy=True)
    copy.setflags(write=False)
    return copy


def _tau_needed(num_codewords: int) -> int:
    """Bits needed to index ``num_codewords`` codewords (at least one)."""
    return max(MIN_TAU, math.ceil(math.log2(num_codewords)))


# --------------------------------------------------------------------------
# Bit packing
# --------------------------------------------------------------------------


def packed_length(count: int, tau: int) -> int:
    """Bytes that :func:`pack_indices` uses for ``count`` indices of ``tau`` bits."""
    return -(-count * tau // BITS_PER_BYTE)


def pack_indices(indices, tau: int) -> np.ndarray:
    """Pack integers densely, each in exactly ``tau`` bits, little-endian.

    Index ``n`` occupies bits ``n * tau .. n * tau + tau - 1`` of the stream,
    least significant bit first; stream bit ``b`` is bit ``b % 8`` of byte
    ``b // 8``. Unused high bits of the last byte are zero.

    Parameters
    ----------
    indices : array_like of int
        Values in ``[0, 2**tau)``; any shape, read in C order.
    tau : int
        Bits per value, ``1 <= tau <= MAX_TAU``.

    Returns
    -------
    numpy.ndarray
        ``uint8`` of length ``packed_length(indices.size, tau)``.
    """
    tau = _check_tau(tau, MAX_TAU)
    values = np.asarray(indices)
    if not _is_integer(values):
        raise FormatError(f"indices must be integers, got dtype {values.dtype}")
    flat = values.reshape(-1).astype(np.int64)
    out_of_range = (flat < 0) | (flat >= 1 << tau)
    if out_of_range.any():
        where = int(np.argmax(out_of_range))
        raise FormatError(
            f"indices must lie in [0, {1 << tau}) for tau={tau}; "
            f"flat position {where} holds {flat[where]}"
        )
    bits = (flat[:, None] >> np.arange(tau)) & 1
    return np.packbits(bits.astype(np.uint8).reshape(-1), bitorder="little")


def unpack_indices(packed, tau: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_indices`.

    Parameters
    ----------
    packed : array_like of uint8
        One-dimensional, exactly ``packed_length(count, tau)`` bytes.
    tau : int
        Bits per value.
    count : int
        Number of values.

    Returns
    -------
    numpy.ndarray
        ``int32`` of shape ``[count]``.

    Raises
    ------
    FormatError
        On a wrong length or dtype, or when the padding bits are not zero.
    """
    tau = _check_tau(tau, MAX_TAU)
    if not _is_int(count) or count < 0:
        raise FormatError(f"count must be an int >= 0, got {count!r}")
    data = np.asarray(packed)
    expected = packed_length(count, tau)
    if data.dtype != np.uint8 or data.shape != (expected,):
        raise FormatError(
            f"packed must be uint8 of shape ({expected},) for {count} values of {tau} bits, "
            f"got {data.dtype} {data.shape}"
        )
    bits = np.unpackbits(data, bitorder="little")
    used = count * tau
    if bits[used:].any():
        raise FormatError(f"packed has nonzero padding bits after bit {used}")
    values = bits[:used].reshape(count, tau).astype(np.int64) << np.arange(tau)
    return values.sum(axis=1).astype(INDEX_DTYPE)


def encode_signs(signs) -> np.ndarray:
    """Encode +1/-1 units as the packed codebook stores them: bit ``k`` is set when sign ``k`` is +1.

    This is :func:`tvm_snn.schema.signs_to_code` of the negated unit
    (:func:`tvm_snn.schema.negate_code`), with an element ``<= 0`` read as -1.
    :class:`PackedSubBitConv` (version 1) and the codebook order of
    :meth:`SubBitConv.from_dense` use it.

    Parameters
    ----------
    signs : array_like
        Shape ``[..., width]`` of +1/-1.

    Returns
    -------
    numpy.ndarray
        ``int64`` codes of shape ``[...]``.
    """
    signs = np.asarray(signs)
    width = signs.shape[-1]
    return negate_code(signs_to_code(np.where(signs > 0, _POSITIVE, _NEGATIVE)), width)


def decode_signs(codes, width: int) -> np.ndarray:
    """Inverse of :func:`encode_signs`: ``int8`` +1/-1 of shape ``[..., width]``."""
    return code_to_signs(negate_code(np.asarray(codes, dtype=np.int64), width), width).astype(CODEBOOK_DTYPE, copy=False)


# --------------------------------------------------------------------------
# Field validation of SubBitConv
# --------------------------------------------------------------------------


def _check_codebook(codebook, unit: int, tau: int) -> np.ndarray:
    book = np.asarray(codebook)
    capacity = 1 << tau
    if book.ndim != _PAIR_LEN or book.shape[1] != unit or not 1 <= book.shape[0] <= capacity:
        raise FormatError(
            f"codebook must have shape [rows, {unit}] with 1 <= rows <= 2**tau = {capacity}, "
            f"got {book.shape}"
        )
    if not _is_real(book) or not np.all((book == _POSITIVE) | (book == _NEGATIVE)):
        raise FormatError(f"codebook entries must be +1 or -1 (dtype {book.dtype}, shape {book.shape})")
    codes = encode_signs(book)
    _, first, counts = np.unique(codes, return_index=True, return_counts=True)
    if (counts > 1).any():
        row = int(first[np.argmax(counts > 1)])
        twin = int(np.flatnonzero(codes == codes[row])[1])
        raise FormatError(f"codebook rows must be distinct: rows {row} and {twin} are equal")
    return _frozen(book, CODEBOOK_DTYPE)


def _check_indices(indices, num_codewords: int) -> np.ndarray:
    idx = np.asarray(indices)
    if idx.ndim != _PAIR_LEN or min(idx.shape) < 1 or not _is_integer(idx):
        raise FormatError(
            f"indices must be a non-empty integer array [out_channels, units], "
            f"got {idx.dtype} {idx.shape}"
        )
    bad = (idx < 0) | (idx >= num_codewords)
    if bad.any():
        o, u = (int(i) for i in np.argwhere(bad)[0])
        raise FormatError(
            f"indices must lie in [0, {num_codewords}) (codebook rows); "
            f"indices[{o}, {u}] = {idx[o, u]}"
        )
    return _frozen(idx, INDEX_DTYPE)


def _check_in_channels(in_channels, units: int, kernel: tuple[int, int]) -> int:
    derived = units * _channels_per_unit(kernel)
    if in_channels is None:
        return derived
    if not _is_int(in_channels) or in_channels != derived:
        raise FormatError(
            f"in_channels={in_channels!r} does not match indices with {units} units for a "
            f"{kernel[0]}x{kernel[1]} kernel (expected {derived})"
        )
    return int(in_channels)


def _check_channel_vector(values, name: str, out_channels: int) -> np.ndarray:
    vector = np.asarray(values)
    if vector.shape != (out_channels,) or not _is_real(vector):
        raise FormatError(
            f"{name} must be a real vector of shape ({out_channels},) (out_channels), "
            f"got {vector.dtype} {vector.shape}"
        )
    vector = _frozen(vector, np.float32)
    if not np.isfinite(vector).all():
        raise FormatError(f"{name} must be finite in float32; entry {int(np.argmin(np.isfinite(vector)))} is not")
    return vector


def _check_groups(groups) -> int:
    if not _is_int(groups) or groups != SUPPORTED_GROUPS:
        raise FormatError(f"groups={groups!r} is not supported; only groups={SUPPORTED_GROUPS}")
    return int(groups)


def _check_activation(activation) -> str:
    if activation not in ACTIVATIONS:
        raise FormatError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    return activation


# --------------------------------------------------------------------------
# The format
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PackedSubBitConv:
    """The storage form of a :class:`SubBitConv`.

    Attributes
    ----------
    kernel_size, tau, in_channels, out_channels : see :class:`SubBitConv`.
    num_codewords : int
        Rows of the codebook.
    index_bytes : numpy.ndarray
        ``uint8``: the ``indices`` in C order, ``tau`` bits each (:func:`pack_indices`).
    codebook_bytes : numpy.ndarray
        ``uint8``: each codebook row encoded by :func:`encode_signs` and
        packed in ``unit_size`` bits.
    alpha, bias, stride, padding, dilation, groups, activation :
        As in :class:`SubBitConv`.
    version : int
        :data:`PACKED_FORMAT_VERSION` of the writer.
    """

    kernel_size: tuple[int, int]
    tau: int
    in_channels: int
    out_channels: int
    num_codewords: int
    index_bytes: np.ndarray = field(repr=False)
    codebook_bytes: np.ndarray = field(repr=False)
    alpha: np.ndarray = field(repr=False)
    bias: np.ndarray | None = field(repr=False)
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]
    dilation: tuple[int, int]
    groups: int
    activation: str
    version: int = PACKED_FORMAT_VERSION

    @property
    def nbytes(self) -> int:
        """Bytes of the packed indices plus the packed codebook."""
        return int(self.index_bytes.size + self.codebook_bytes.size)


@dataclass(frozen=True, eq=False)
class SubBitConv:
    """A sub-bit 2-D convolution: ``weight[o, u] = alpha[o] * codebook[indices[o, u]]``.

    All fields are validated and normalized on construction; arrays are
    stored as read-only copies. Invalid input raises
    :class:`tvm_snn.errors.FormatError`.

    Attributes
    ----------
    kernel_size : tuple of int
        ``(3, 3)`` or ``(1, 1)`` (an int ``k`` means ``(k, k)``).
    tau : int
        Bits per index, ``1 <= tau <= 9`` (3x3) or ``<= 8`` (1x1).
    codebook : numpy.ndarray
        ``int8 [rows, unit_size]`` of +1/-1, ``1 <= rows <= 2**tau``, rows distinct.
    indices : numpy.ndarray
        ``int32 [out_channels, units]``, values in ``[0, rows)``. ``units`` is
        ``in_channels`` (3x3) or ``in_channels // 8`` (1x1).
    alpha : numpy.ndarray
        ``float32 [out_channels]``, signed scale of each output channel.
    bias : numpy.ndarray or None
        ``float32 [out_channels]``.
    stride, dilation : tuple of int
        ``(h, w)``, positive.
    padding : tuple of int
        ``(top, left, bottom, right)``; an int or an ``(h, w)`` pair is expanded.
    groups : int
        Only 1 is supported.
    activation : str
        ``"float"``, or ``"binary"`` when the conv reads ``sign(x)``.
    in_channels : int or None
        Derived from ``indices`` when None; checked against it otherwise.
    """

    kernel_size: tuple[int, int]
    tau: int
    codebook: np.ndarray = field(repr=False)
    indices: np.ndarray = field(repr=False)
    alpha: np.ndarray = field(repr=False)
    bias: np.ndarray | None = field(default=None, repr=False)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    activation: str = "float"
    in_channels: int | None = None

    def __post_init__(self):
        kernel = _check_kernel_size(self.kernel_size)
        tau = _check_tau(self.tau, _max_tau(kernel))
        codebook = _check_codebook(self.codebook, _unit_size(kernel), tau)
        indices = _check_indices(self.indices, codebook.shape[0])
        out_channels, units = indices.shape
        bias = None if self.bias is None else _check_channel_vector(self.bias, "bias", out_channels)
        normalized = {
            "kernel_size": kernel,
            "tau": tau,
            "codebook": codebook,
            "indices": indices,
            "alpha": _check_channel_vector(self.alpha, "alpha", out_channels),
            "bias": bias,
            "stride": as_pair(self.stride, "stride"),
            "padding": as_padding(self.padding),
            "dilation": as_pair(self.dilation, "dilation"),
            "groups": _check_groups(self.groups),
            "activation": _check_activation(self.activation),
            "in_channels": _check_in_channels(self.in_channels, units, kernel),
        }
        for name, value in normalized.items():
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        kernel = "x".join(map(str, self.kernel_size))
        return (
            f"SubBitConv(kernel={kernel}, in_channels={self.in_channels}, "
            f"out_channels={self.out_channels}, tau={self.tau}, codewords={self.num_codewords}, "
            f"activation={self.activation!r}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, bias={self.bias is not None})"
        )

    # ---- shape properties -------------------------------------------------

    @property
    def out_channels(self) -> int:
        """Number of output channels ``O``."""
        return int(self.indices.shape[0])

    @property
    def num_units(self) -> int:
        """Units per output channel (``in_channels`` or ``in_channels // 8``)."""
        return int(self.indices.shape[1])

    @property
    def unit_size(self) -> int:
        """Signs per unit: 9 (3x3) or 8 (1x1)."""
        return _unit_size(self.kernel_size)

    @property
    def channels_per_unit(self) -> int:
        """Input channels one unit covers: 1 (3x3) or 8 (1x1)."""
        return _channels_per_unit(self.kernel_size)

    @property
    def num_codewords(self) -> int:
        """Rows of the codebook (at most ``2**tau``)."""
        return int(self.codebook.shape[0])

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        """Dense OIHW shape of :meth:`to_dense`."""
        return (self.out_channels, self.in_channels, *self.kernel_size)

    @property
    def bits_per_weight(self) -> float:
        """``tau / 9`` (3x3) or ``tau / 8`` (1x1)."""
        return self.tau / self.unit_size

    @property
    def index_nbytes(self) -> int:
        """Bytes of the packed indices."""
        return packed_length(self.indices.size, self.tau)

    @property
    def codebook_nbytes(self) -> int:
        """Bytes of the packed codebook (one bit per sign)."""
        return packed_length(self.codebook.size, 1)

    @property
    def packed_nbytes(self) -> int:
        """Bytes of the packed weight: indices plus codebook (alpha and bias excluded)."""
        return self.index_nbytes + self.codebook_nbytes

    def output_hw(self, height: int, width: int) -> tuple[int, int]:
        """Spatial output size for an input of ``height x width``."""
        return conv_output_hw((height, width), self.kernel_size, self.stride, self.padding, self.dilation)

    # ---- conversions ------------------------------------------------------

    def to_dense(self) -> np.ndarray:
        """The dense ``float32`` OIHW weight ``alpha[o] * codebook[indices[o, u]]``."""
        units = self.codebook[self.indices].astype(np.float32) * self.alpha[:, None, None]
        return units.reshape(self.weight_shape)

    def packed(self) -> PackedSubBitConv:
        """Pack indices in ``tau`` bits and the codebook in one bit per sign."""
        return PackedSubBitConv(
            kernel_size=self.kernel_size,
            tau=self.tau,
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            num_codewords=self.num_codewords,
            index_bytes=pack_indices(self.indices, self.tau),
            codebook_bytes=pack_indices(encode_signs(self.codebook), self.unit_size),
            alpha=self.alpha.copy(),
            bias=None if self.bias is None else self.bias.copy(),
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            activation=self.activation,
        )

    @classmethod
    def from_packed(cls, packed: PackedSubBitConv) -> SubBitConv:
        """Restore the conv that :meth:`packed` stored; the round trip is exact."""
        if packed.version != PACKED_FORMAT_VERSION:
            raise FormatError(
                f"packed format version {packed.version} is not supported "
                f"(this reader knows version {PACKED_FORMAT_VERSION})"
            )
        kernel = _check_kernel_size(packed.kernel_size)
        unit = _unit_size(kernel)
        units = packed.in_channels // _channels_per_unit(kernel)
        count = packed.out_channels * units
        indices = unpack_indices(packed.index_bytes, packed.tau, count)
        codes = unpack_indices(packed.codebook_bytes, unit, packed.num_codewords)
        return cls(
            kernel_size=kernel,
            tau=packed.tau,
            codebook=decode_signs(codes, unit),
            indices=indices.reshape(packed.out_channels, units),
            alpha=packed.alpha,
            bias=packed.bias,
            stride=packed.stride,
            padding=packed.padding,
            dilation=packed.dilation,
            groups=packed.groups,
            activation=packed.activation,
            in_channels=packed.in_channels,
        )

    @classmethod
    def from_codes(cls, codebook, indices, alpha, *, tau=None, **kwargs) -> SubBitConv:
        """Build a conv from its parts, inferring the kernel and ``tau``.

        The kernel follows from the codebook width (9: 3x3, 8: 1x1) and
        ``tau`` defaults to the fewest bits that index every codebook row.
        ``kwargs`` are the remaining :class:`SubBitConv` fields.
        """
        book = np.asarray(codebook)
        widths = {UNIT_3X3: KERNEL_3X3, UNIT_1X1: KERNEL_1X1}
        if book.ndim != _PAIR_LEN or book.shape[1] not in widths or book.shape[0] < 1:
            raise FormatError(f"codebook must have shape [rows, 9] or [rows, 8], got {book.shape}")
        tau = _tau_needed(book.shape[0]) if tau is None else tau
        return cls(kernel_size=widths[book.shape[1]], tau=tau, codebook=book, indices=indices, alpha=alpha, **kwargs)

    @classmethod
    def from_dense(
        cls,
        weight,
        bias=None,
        *,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        activation="float",
        tau=None,
        rtol=DENSE_RTOL,
        atol=DENSE_ATOL,
    ) -> SubBitConv:
        """Recover the format from a dense OIHW weight ``alpha[o] * (+1/-1 units)``.

        Each output channel's magnitude is ``mean |weight[o]|``; every element
        must match it within ``atol + rtol * magnitude``. A channel whose
        ``max |weight[o]| <= atol`` is a zero channel: alpha 0, every index 0.

        Sign rule: a channel and its negation (``-alpha``, negated units) give
        the same weight, so the sign of each alpha is chosen to keep the
        codebook small, deterministically:

        1. Visit channels greedily: next is the unvisited channel sharing the
           most sign patterns, in either orientation, with the patterns chosen
           so far (ties: lowest channel index); take the orientation that
           shares more (ties: positive alpha). A channel sharing nothing
           starts a new *component* with positive alpha.
        2. In every component, if more channels got a negative alpha than a
           positive one, negate the whole component. Components share no
           pattern up to sign, so this does not change the codebook size.

        When no used pattern's negation is also used, this finds the smallest
        codebook, and when most alphas are positive it returns the original
        codebook and alphas. The codebook holds the distinct patterns sorted
        by :func:`encode_signs` code; an all-zero weight gets the all-(+1) row.

        Parameters
        ----------
        weight : array_like
            Real ``[O, C_in, 3, 3]`` or ``[O, C_in, 1, 1]``; for 1x1, ``C_in % 8 == 0``.
        bias, stride, padding, dilation, groups, activation :
            As in :class:`SubBitConv`.
        tau : int, optional
            Index width; the fewest bits that index every pattern (at least 1)
            by default. A given ``tau`` must be at least that.
        rtol, atol : float
            Tolerance of the ``|weight| == |alpha|`` check.

        Returns
        -------
        SubBitConv
            ``to_dense()`` equals ``weight`` within the tolerance.

        Raises
        ------
        FormatError
            When the weight is not of that form (naming the output channel and
            unit), has a bad shape, or ``tau`` is too small.
        """
        _check_tolerances(rtol, atol)
        dense = _check_dense_weight(weight)
        kernel = _check_kernel_size(dense.shape[2:])
        units = _split_units(dense, kernel)
        magnitude = _channel_magnitudes(units, kernel, rtol, atol)
        live = magnitude > 0
        width = _unit_size(kernel)
        codes = encode_signs(units[live])
        orientation = _orient_channels(codes, width)
        oriented = np.where(orientation[:, None] == _POSITIVE, codes, negate_code(codes, width))
        book_codes = np.unique(oriented) if oriented.size else np.array([negate_code(0, width)])
        indices = np.zeros(units.shape[:2], dtype=INDEX_DTYPE)
        indices[live] = np.searchsorted(book_codes, oriented)
        alpha = np.zeros(units.shape[0], dtype=np.float64)
        alpha[live] = orientation * magnitude[live]
        return cls(
            kernel_size=kernel,
            tau=_choose_tau(tau, len(book_codes), kernel),
            codebook=decode_signs(book_codes, width),
            indices=indices,
            alpha=alpha,
            bias=bias,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            activation=activation,
        )


# --------------------------------------------------------------------------
# from_dense helpers
# --------------------------------------------------------------------------


def _check_tolerances(rtol, atol) -> None:
    if not 0 <= rtol < 1 or not atol >= 0:
        raise FormatError(f"need 0 <= rtol < 1 and atol >= 0, got rtol={rtol!r}, atol={atol!r}")


def _check_dense_weight(weight) -> np.ndarray:
    dense = np.asarray(weight)
    if dense.ndim != _WEIGHT_NDIM or min(dense.shape) < 1 or not _is_real(dense):
        raise FormatError(
            f"weight must be a non-empty real OIHW array, got {dense.dtype} {dense.shape}"
        )
    dense = dense.astype(np.float64)
    if not np.isfinite(dense).all():
        raise FormatError(f"weight {dense.shape} holds non-finite values")
    return dense


def _split_units(dense: np.ndarray, kernel: tuple[int, int]) -> np.ndarray:
    """Reshape an OIHW weight to ``[O, units, unit_size]``."""
    out_channels, in_channels = dense.shape[:2]
    per_unit = _channels_per_unit(kernel)
    if in_channels % per_unit:
        raise FormatError(
            f"a 1x1 sub-bit conv needs in_channels divisible by {per_unit}; "
            f"weight {dense.shape} has {in_channels}"
        )
    return dense.reshape(out_channels, in_channels // per_unit, _unit_size(kernel))


def _unit_label(unit: int, kernel: tuple[int, int]) -> str:
    per_unit = _channels_per_unit(kernel)
    if per_unit == 1:
        return f"unit {unit} (input channel {unit})"
    return f"unit {unit} (input channels {unit * per_unit}..{unit * per_unit + per_unit - 1})"


def _channel_magnitudes(units: np.ndarray, kernel, rtol: float, atol: float) -> np.ndarray:
    """``mean |w|`` per output channel (0 for zero channels); check ``|w|`` is constant.

    An error names the first failing output channel and, in it, the element
    farthest from the channel's median ``|w|``.
    """
    magnitude = np.abs(units)
    alpha = magnitude.mean(axis=(1, 2))
    alpha[magnitude.max(axis=(1, 2)) <= atol] = 0.0
    limit = atol + rtol * alpha[:, None, None]
    bad = np.abs(magnitude - alpha[:, None, None]) > limit
    bad &= (alpha > 0)[:, None, None]
    if bad.any():
        o = int(np.argmax(bad.any(axis=(1, 2))))
        outlier = np.abs(magnitude[o] - np.median(magnitude[o]))
        u, k = (int(i) for i in np.unravel_index(np.argmax(outlier), outlier.shape))
        raise FormatError(
            f"weight is not alpha[o] * (+1/-1): output channel {o}, {_unit_label(u, kernel)}, "
            f"element {k} has |w| = {magnitude[o, u, k]:.6g} but the channel's mean |w| is "
            f"{alpha[o]:.6g} (rtol={rtol}, atol={atol})"
        )
    return alpha


def _orient_channels(codes: np.ndarray, width: int) -> np.ndarray:
    """Choose +1/-1 per channel so the set of oriented codes stays small.

    Parameters
    ----------
    codes : numpy.ndarray
        ``[channels, units]`` sign codes of the nonzero channels.
    width : int
        Signs per unit.

    Returns
    -------
    numpy.ndarray
        ``int8 [channels]``; see :meth:`SubBitConv.from_dense` for the rule.
    """
    channels = codes.shape[0]
    num_codes = 1 << width
    uses = np.zeros((channels, num_codes), dtype=bool)
    uses[np.arange(channels)[:, None], codes] = True
    uses_negated = uses[:, negate_code(np.arange(num_codes), width)]
    shared = np.zeros((2, channels), dtype=np.int64)  # row 0: kept, row 1: negated
    chosen = np.zeros(num_codes, dtype=bool)
    pending = np.ones(channels, dtype=bool)
    orientation = np.full(channels, _POSITIVE, dtype=np.int8)
    component = np.zeros(channels, dtype=np.int64)
    current = -1
    for _ in range(channels):
        score = np.where(pending, shared.max(axis=0), -1)
        channel = int(np.argmax(score))
        current += int(score[channel] == 0)
        negate = shared[1, channel] > shared[0, channel]
        orientation[channel] = _NEGATIVE if negate else _POSITIVE
        component[channel] = current
        pending[channel] = False
        new = (uses_negated if negate else uses)[channel] & ~chosen
        if new.any():
            chosen |= new
            shared[0] += uses[:, new].sum(axis=1)
            shared[1] += uses_negated[:, new].sum(axis=1)
    return _positive_majority(orientation, component)


def _positive_majority(orientation: np.ndarray, component: np.ndarray) -> np.ndarray:
    """Negate every component whose negative alphas outnumber its positive ones."""
    if not orientation.size:
        return orientation
    balance = np.bincount(component, weights=orientation)
    flip = np.where(balance < 0, _NEGATIVE, _POSITIVE).astype(np.int8)
    return orientation * flip[component]


def _choose_tau(tau, num_codewords: int, kernel: tuple[int, int]) -> int:
    needed = _tau_needed(num_codewords)
    if tau is None:
        return needed
    tau = _check_tau(tau, _max_tau(kernel))
    if tau < needed:
        raise FormatError(
            f"tau={tau} is too small: the weight uses {num_codewords} distinct sign patterns "
            f"(up to sign per output channel), which need tau >= {needed}"
        )
    return tau
