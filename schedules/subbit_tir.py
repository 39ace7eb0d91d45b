"""TensorIR kernels for sub-bit convs: precompute responses, then gather by index.

For a :class:`~schedules.subbit.SubBitConv` and a static input shape, the
kernel is one PrimFunc with these stages (NCHW):

1. ``snn_idx[o, u]``: where codeword ``idx[o, u]`` starts in a tile's
   responses (``idx * T`` for tiles of ``T`` pixels), unpacked at run time
   from the packed tau-bit stream, so the artifact stores ``tau`` bits per
   unit;
2. ``snn_seg[n, u, s, q, oh, ow]``: each segment of a unit (a row of a 3x3
   kernel, a half of a 1x1 unit) summed under every sign pattern ``q``
   whose last element is positive (k/-k symmetry: the other patterns are
   their negations, folded into a subtraction): 4 row patterns are shared
   by all 2**tau codewords;
   ``snn_resp[n, th, tw, u, j * T + t]``: per output tile ``(th, tw)``, the
   response of unit ``u`` to codeword ``j`` at tile pixel ``t``, the sum of
   its segments' entries;
3. ``snn_acc[n, o, oh, ow] = sum_u resp[n, th, tw, u, off[o, u] + t]``: the
   gather, one vector load at a precomputed offset per unit and channel;
4. ``snn_out = alpha[o] * acc + bias[o]``.

Outputs are computed on a grid padded to whole tiles (:class:`~schedules.subbit_plan.Tile`): rows
up to a multiple of 8 or 16, and short rows stacked, so every gather is a
full vector load.

With binary activations the kernel takes ``x`` or ``sign(x)`` and applies
the sign itself (``sign(sign(x)) = sign(x)``), so a standalone ``sign`` op
before the conv is not needed (see :mod:`relay_passes.lower_subbit_conv`); the
responses are int8 (at most 9 in magnitude), so a vector holds 64 pixels.
The gather sums a group of units in int8 (``snn_partial``, at most
``127 // 9`` units, so exact) and adds each group's sum to an int16 (or
int32, for very wide layers) accumulator; only the epilogue is float.

The schedule is in :mod:`schedules.subbit_schedule`.
"""

from dataclasses import dataclass

import numpy as np
from tvm import te, tirx

from schedules import subbit_unpack as unpack
from schedules.knobs import MAX_BAKED_TAU
from schedules.plan import PLAN_ANNOTATION
from schedules.subbit import BITS_PER_BYTE, KERNEL_1X1, SubBitConv
from schedules.subbit_pad import column_tap, tiled_input
from schedules.subbit_plan import segment_shape
from schedules.tir_build import (
    BYTE_DTYPE,
    FLOAT_DTYPE,
    INT16_LIMIT,
    INT_DTYPE,
    PACKED_DTYPE,
    TIR_INDEX_DTYPE,
)
from tvm_snn.errors import FormatError
from tvm_snn.schema import element_sign, signs_to_code

# Unpacking reads two bytes per index (tau <= 9 spans at most two), 64 per
# step with VBMI (schedules.subbit_unpack): the packed stream's zero tail.
UNPACK_TAIL_BYTES = unpack.TAIL_BYTES
BLOCK_IDX = "snn_idx"
BLOCK_SEG = "snn_seg"
BLOCK_RESP = "snn_resp"
BLOCK_ACC = "snn_acc"
BLOCK_PARTIAL = "snn_partial"
BLOCK_OUT = "snn_out"


@dataclass(frozen=True)
class SubBitKernel:
    """A built kernel: its PrimFunc and the constant arguments it takes after the input.

    Attributes
    ----------
    func : tvm.tirx.PrimFunc
        Arguments: data, then the constants, then the output.
    constants : tuple of numpy.ndarray
        See :func:`kernel_constants` (or ``schedules.subbit_lane.lane_constants``).
    out_shape : tuple of int
    plan : SubBitPlan or LanePlan
        The knobs it was built with (also annotated on its output block).
    """

    func: object
    constants: tuple
    out_shape: tuple
    plan: object

    @property
    def kind(self):
        """``"pixel-lane"`` or ``"lane"``: which kernel this is."""
        return self.plan.KIND

    @property
    def stored_bytes(self):
        """Bytes of the constants the kernel stores: its weights in the artifact."""
        return sum(array.nbytes for array in self.constants)


def kernel_constants(conv):
    """Return the constant arrays the kernel reads.

    Packed indices (uint8), the codebook as segment sign patterns (int32
    ``[K, segments]``, see :func:`segment_table`), alpha[, bias].
    """
    return with_scales(conv, conv.packed().index_bytes, segment_table(conv))


def with_scales(conv, index_bytes, table):
    """``(index_bytes + zero tail, table, alpha[, bias])``: a kernel's constants."""
    constants = [
        np.concatenate([index_bytes, np.zeros(UNPACK_TAIL_BYTES, np.uint8)]),
        table,
        np.ascontiguousarray(conv.alpha, dtype=np.float32),
    ]
    if conv.bias is not None:
        constants.append(np.ascontiguousarray(conv.bias, dtype=np.float32))
    return tuple(constants)


def accumulator_dtype(conv):
    """float32 for float activations; int16 or int32 (exact) for binary ones."""
    if conv.activation != "binary":
        return FLOAT_DTYPE
    return "int16" if conv.num_units * conv.unit_size <= INT16_LIMIT else INT_DTYPE


def unpacked_index(packed, tau, position):
    """Index number ``position`` of the tau-bit stream ``packed`` (int32; see
    :func:`schedules.subbit.pack_indices`), read from the two bytes it spans."""
    bit = position * tau
    byte = bit // BITS_PER_BYTE
    low = packed[byte].astype(INT_DTYPE)
    high = packed[byte + 1].astype(INT_DTYPE)
    return ((low | (high << BITS_PER_BYTE)) >> (bit % BITS_PER_BYTE)) & ((1 << tau) - 1)


def _offset_stage(packed, conv, pixels, group, plan):
    """``off[o, u]``: where unit ``u``'s response to codeword ``idx[o, u]`` starts
    in its group's responses, ``((u % group) * 2**tau + idx[o, u]) * pixels``
    (int16 when every offset fits).

    Unpacked from the tau-bit stream on every call, so the artifact keeps
    ``tau`` bits per unit: with ``plan.byte_unpack`` (AVX-512 VBMI), 64 at a time
    by :mod:`schedules.subbit_unpack` where the unit count allows.
    """
    units, tau = conv.num_units, conv.tau
    codewords = 1 << tau
    # int16 when the group's responses allow: half the bytes the gather streams.
    dtype = "int16" if group * codewords * pixels <= INT16_LIMIT + 1 else INT_DTYPE
    shape = (conv.out_channels, units)
    if plan.byte_unpack:
        lanes = f"{dtype}x{unpack.LANES}"

        def finish(indices, _row, cols):
            group_base = tirx.Cast(lanes, cols % group) * tirx.Broadcast(tirx.const(codewords, dtype), unpack.LANES)
            return (tirx.Cast(lanes, indices) + group_base) * tirx.Broadcast(tirx.const(pixels, dtype), unpack.LANES)

        return unpack.unpack_bytes(packed, shape, tau, plan.num_cores, name=BLOCK_IDX, finish=finish, dtype=dtype)

    def offset(o, u):
        index = unpacked_index(packed, tau, o * units + u)
        return ((index + (u % group) * codewords) * pixels).astype(dtype)

    return te.compute(shape, offset, name=BLOCK_IDX)


def segment_table(conv):
    """Per codeword and segment, the segment's sign pattern as an integer.

    Bit ``e`` of entry ``[j, s]`` is set when element ``e`` of segment ``s``
    of codeword ``j`` is -1. There are ``2**tau`` rows; rows past the
    codebook repeat row 0 and are never gathered.
    """
    segments, seg_len = segment_shape(conv)
    signs = np.asarray(conv.codebook).reshape(conv.num_codewords, segments, seg_len)
    table = signs_to_code(signs).astype(np.int32)
    # Rows up to 2**tau (copies of row 0), so an index masked to tau bits is in range.
    filler = np.repeat(table[:1], (1 << conv.tau) - conv.num_codewords, axis=0)
    return np.concatenate([table, filler])


def segment_value(padded, conv, tile, dtype):
    """``f(n, u, seg, q, oh, ow)``: segment ``seg`` of unit ``u`` at output ``(oh, ow)``
    under sign pattern ``q`` (bit ``e`` set: element ``e`` is negative), in ``dtype``."""
    _, seg_len = segment_shape(conv)
    sh, dh = conv.stride[0], conv.dilation[0]

    def tap(n, u, seg, e, oh, ow):
        if conv.kernel_size == KERNEL_1X1:
            return padded.at(n, u * conv.channels_per_unit + seg * seg_len + e, 0, 0, oh, ow)
        if padded.shifted_taps:  # one unshifted plane, read shifted (and masked if the tail is short)
            col = ow + e * conv.dilation[1] - conv.padding[1]
            value = padded.at(n, u, 0, 0, oh + seg * dh + padded.guard_rows, col)
            if not padded.mask_width:
                return value
            inside = tirx.all(col >= 0, col < padded.mask_width)
            return tirx.Select(inside, value, tirx.const(0, value.dtype))
        plane, col = column_tap(conv, tile, e, ow)
        return padded.at(n, u, (seg * dh) % sh, plane, oh + (seg * dh) // sh, col)

    def segment(n, u, seg, q, oh, ow):
        total = None
        for e in range(seg_len):  # the sign folds to a constant once q is unrolled
            sign = element_sign(q, e).astype(dtype)
            term = tap(n, u, seg, e, oh, ow).astype(dtype) * sign
            total = term if total is None else total + term
        return total

    return segment


def _segment_stage(padded, conv, tile, out_hw, width, dtype):
    """``seg[n, u, s, q, oh, ow]``: segment ``s`` of unit ``u`` under sign pattern ``q``."""
    segments, seg_len = segment_shape(conv)
    # Patterns with the last element positive: the others are their negations.
    shape = (padded.tensor.shape[0], conv.num_units, segments, 1 << (seg_len - 1), out_hw[0], width)
    return te.compute(shape, segment_value(padded, conv, tile, dtype), name=BLOCK_SEG)


def _baked_lookup(values, bits, index):
    """``values[index]`` as an expression of immediates: ``values`` packed
    ``bits`` per entry into int64 constants, picked by a short Select chain.

    With ``index`` a constant (an unrolled loop), it folds to a constant.
    """
    per_word = 63 // bits
    words = []
    for start in range(0, len(values), per_word):
        word = 0
        for k, value in enumerate(values[start : start + per_word]):
            word |= int(value) << (bits * k)
        words.append(word)
    mask = (1 << bits) - 1
    index = index.astype("int64")
    expr = None
    for w in reversed(range(len(words))):
        local = index - w * per_word
        pick = (tirx.const(words[w], "int64") >> (local * bits)) & mask
        expr = pick if expr is None else tirx.Select(index < (w + 1) * per_word, pick, expr)
    return expr


def _response_stage(seg, table, conv, tile, group):
    """``resp[n, th, tw, g, f]``: for tile ``(th, tw)``, the response of unit
    ``g * group + f // (K * T)`` to codeword ``f // T % K`` at tile pixel
    ``f % T`` (``K = 2**tau``, ``T = tile.pixels``): a group's responses are
    one flat block that the stored offsets address.

    Up to ``MAX_BAKED_TAU`` the codeword's segment patterns are immediates
    (:func:`_baked_lookup`): once the codeword loop is unrolled they are
    constants, so a unit's segment sums stay in registers. Above it they
    are read from the ``table`` argument.
    """
    segments, seg_len = segment_shape(conv)
    mask = (1 << seg_len) - 1  # a no-op on the table that bounds the index for the schedule
    n_batch, units, _, _, out_h, row = seg.shape
    pixels = tile.pixels
    codes = segment_table(conv) if conv.tau <= MAX_BAKED_TAU else None

    codewords = 1 << conv.tau

    def response(n, th, tw, g, f):
        u, j, t = g * group + f // (codewords * pixels), f // pixels % codewords, f % pixels
        oh, ow = th * tile.rows + t // tile.width, tw * tile.width + t % tile.width
        total = None
        for s in range(segments):
            pattern = _baked_lookup(codes[:, s], seg_len, j) if codes is not None else table[j, s] & mask
            # k/-k symmetry: a pattern with the last element negative is minus its complement.
            flip = pattern >> (seg_len - 1)
            term = seg[n, u, s, (pattern ^ (flip * mask)) & (mask >> 1), oh, ow]
            term = tirx.Select(flip == 1, -term, term)
            total = term if total is None else total + term
        return total

    shape = (n_batch, out_h // tile.rows, row // tile.width, units // group, group * codewords * pixels)
    return te.compute(shape, response, name=BLOCK_RESP)


def checked_output_hw(conv, data_shape):
    """The output size of ``conv`` on an NCHW input of ``data_shape``, whose channels it checks."""
    channels, height, width = data_shape[1:]
    if channels != conv.in_channels:
        raise FormatError(f"input has {channels} channels, the conv takes {conv.in_channels}")
    return conv.output_hw(height, width)


def kernel_placeholders(conv, data_shape, constants, table_name):
    """Placeholders ``(data, packed, table, alpha, bias)`` for a kernel taking ``constants``
    (see :func:`with_scales`); ``bias`` is None for a conv without one."""
    data = te.placeholder(data_shape, FLOAT_DTYPE, "data")
    packed = te.placeholder(constants[0].shape, PACKED_DTYPE, "packed")
    table = te.placeholder(constants[1].shape, str(constants[1].dtype), table_name)
    alpha = te.placeholder(constants[2].shape, FLOAT_DTYPE, "alpha")
    bias = te.placeholder(constants[3].shape, FLOAT_DTYPE, "bias") if conv.bias is not None else None
    return data, packed, table, alpha, bias


def build_te(conv, data_shape, plan):
    """Define the kernel in TE.

    Parameters
    ----------
    conv : SubBitConv
    data_shape : tuple of int
        The NCHW input shape.
    plan : SubBitPlan
        The tile, the unit group and the index unpacking (annotated on the
        output block for the schedule).

    Returns
    -------
    list of te.Tensor
        Placeholders (data, packed, alpha[, bias]) then the output.
    """
    n_batch = data_shape[0]
    out_hw = checked_output_hw(conv, data_shape)
    binary = conv.activation == "binary"
    tile = plan.tile(out_hw)
    resp_dtype = BYTE_DTYPE if binary else FLOAT_DTYPE
    acc_dtype = accumulator_dtype(conv)
    data, packed, table, alpha, bias = kernel_placeholders(conv, data_shape, kernel_constants(conv), "segments")
    padded = tiled_input(data, conv, tile, binary)
    group = plan.unit_group
    offsets = _offset_stage(packed, conv, tile.pixels, group, plan)
    seg = _segment_stage(padded, conv, tile, (tile.out_h, out_hw[1]), tile.row, resp_dtype)
    resp = _response_stage(seg, table, conv, tile, group)
    # A no-op on offsets (powers of two) that bounds the gather for the schedule.
    last = (group * (1 << conv.tau) - 1) * tile.pixels
    shape = (n_batch, conv.out_channels, tile.out_h, tile.row)

    def response_at(n, o, oh, ow, u, dtype):
        offset = (offsets[o, u].astype(INT_DTYPE) & last) + (oh % tile.rows) * tile.width + ow % tile.width
        return resp[n, oh // tile.rows, ow // tile.width, u // group, offset].astype(dtype)

    if binary:
        u_i = te.reduce_axis((0, group), "u_i")
        partial = te.compute(
            (n_batch, conv.out_channels, conv.num_units // group, tile.out_h, tile.row),
            lambda n, o, g, oh, ow: te.sum(response_at(n, o, oh, ow, g * group + u_i, BYTE_DTYPE), axis=u_i),
            name=BLOCK_PARTIAL,
        )
        g = te.reduce_axis((0, conv.num_units // group), "g")
        acc = te.compute(
            shape, lambda n, o, oh, ow: te.sum(partial[n, o, g, oh, ow].astype(acc_dtype), axis=g), name=BLOCK_ACC
        )
    else:
        u = te.reduce_axis((0, conv.num_units), "u")
        acc = te.compute(
            shape, lambda n, o, oh, ow: te.sum(response_at(n, o, oh, ow, u, acc_dtype), axis=u), name=BLOCK_ACC
        )

    def epilogue(n, o, oh, ow):
        value = acc[n, o, oh, ow].astype(FLOAT_DTYPE) * alpha[o]
        return value + bias[o] if bias is not None else value

    out = te.compute(
        (n_batch, conv.out_channels, *out_hw), epilogue, name=BLOCK_OUT, attrs={PLAN_ANNOTATION: plan.to_json()}
    )
    inputs = [data, packed, table, alpha] + ([bias] if bias is not None else [])
    return [*inputs, out]


def build_kernel(conv, data_shape, plan):
    """Build the unscheduled pixel-lane kernel for ``conv`` on inputs of ``data_shape``.

    The schedule (:func:`schedules.subbit_schedule.schedule_kernel`) runs
    later, after FuseTIR has merged an epilogue into it; use
    :func:`schedules.kernels.build_scheduled` for a kernel ready to run.

    Parameters
    ----------
    conv : SubBitConv
    data_shape : tuple of int
        NCHW input shape; C must equal ``conv.in_channels``.
    plan : SubBitPlan
        Its knobs (see :meth:`SubBitPlan.default`).

    Returns
    -------
    SubBitKernel
    """
    if not isinstance(conv, SubBitConv):
        raise TypeError(f"expected a SubBitConv, got {type(conv).__name__}")
    args = build_te(conv, tuple(int(d) for d in data_shape), plan)
    func = te.create_prim_func(args, index_dtype_override=TIR_INDEX_DTYPE)
    out_shape = tuple(int(d) for d in args[-1].shape)
    return SubBitKernel(func=func, constants=kernel_constants(conv), out_shape=out_shape, plan=plan)
