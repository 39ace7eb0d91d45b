"""TensorIR kernels for sub-bit convs: precompute responses, then gather by index.

For a :class:`~schedules.subbit.SubBitConv` and a static input shape, the
kernel is one PrimFunc with these stages (NCHW):

1. ``idx[o, u]``: the tau-bit indices, unpacked at run time from the packed
   bytes, so the artifact stores ``tau`` bits per unit, not a dense weight;
2. ``resp[n, u, j, oh, ow]``: the response of unit ``u`` of the input to
   codeword ``j`` (one 3x3 window of channel ``u``, or channels ``8u..8u+7``
   at one pixel for 1x1);
3. ``acc[n, o, oh, ow] = sum_u resp[n, u, idx[o, u], oh, ow]``: the gather;
4. ``out = alpha[o] * acc + bias[o]``.

With binary activations the input holds ``sign(x)`` (values -1, 0, +1); the
responses and the gather are int32, so they are exact, and only the epilogue
is float. The schedule is a plain tiled loop nest: parallel over channels,
vectorized along output columns. The fast kernels are a later stage.
"""

from dataclasses import dataclass

import numpy as np
import tvm
from tvm import te, topi

from schedules.subbit import BITS_PER_BYTE, KERNEL_1X1, SubBitConv
from tvm_snn.errors import FormatError

FLOAT_DTYPE = "float32"
INT_DTYPE = "int32"
CODEBOOK_DTYPE = "int8"
PACKED_DTYPE = "uint8"
# Unpacking reads two bytes per index (tau <= 9 spans at most two), so the
# packed stream gets one zero byte of tail padding.
UNPACK_TAIL_BYTES = 1
VECTOR_LANES = 16
BLOCK_IDX = "snn_idx"
BLOCK_SIGNS = "snn_signs"
BLOCK_PAD = "snn_pad"
BLOCK_RESP = "snn_resp"
BLOCK_ACC = "snn_acc"
BLOCK_OUT = "snn_out"
# Relax legalizes ops with int64 shapes; FuseTIR needs the same buffer types.
INDEX_DTYPE = "int64"


@dataclass(frozen=True)
class SubBitKernel:
    """A built kernel: its PrimFunc and the constant arguments it takes after the input.

    Attributes
    ----------
    func : tvm.tirx.PrimFunc
        Arguments: data, packed indices, codebook, alpha, [bias,] output.
    constants : tuple of numpy.ndarray
        Packed indices (uint8), codebook (int8), alpha (float32)[, bias (float32)].
    out_shape : tuple of int
    """

    func: object
    constants: tuple
    out_shape: tuple


def kernel_constants(conv):
    """Return the constant arrays the kernel reads: packed indices, codebook, alpha[, bias]."""
    packed = conv.packed()
    tail = np.zeros(UNPACK_TAIL_BYTES, np.uint8)
    constants = [
        np.concatenate([packed.index_bytes, tail]),
        np.ascontiguousarray(conv.codebook, dtype=np.int8),
        np.ascontiguousarray(conv.alpha, dtype=np.float32),
    ]
    if conv.bias is not None:
        constants.append(np.ascontiguousarray(conv.bias, dtype=np.float32))
    return tuple(constants)


def _unpack_stage(packed, conv):
    units, tau = conv.num_units, conv.tau
    mask = (1 << tau) - 1

    def unpack(o, u):
        bit = (o * units + u) * tau
        byte = bit // BITS_PER_BYTE
        low = packed[byte].astype(INT_DTYPE)
        high = packed[byte + 1].astype(INT_DTYPE)
        return ((low | (high << BITS_PER_BYTE)) >> (bit % BITS_PER_BYTE)) & mask

    return te.compute((conv.out_channels, units), unpack, name=BLOCK_IDX)


def _response_stage(padded, codebook, conv, out_hw, acc_dtype):
    n_batch = padded.shape[0]
    k = conv.num_codewords
    r = te.reduce_axis((0, conv.unit_size), "r")
    (sh, sw), (dh, dw) = conv.stride, conv.dilation
    if conv.kernel_size == KERNEL_1X1:
        group = conv.channels_per_unit

        def tap(n, u, oh, ow):
            return padded[n, u * group + r, oh * sh, ow * sw]
    else:
        width = conv.kernel_size[1]

        def tap(n, u, oh, ow):
            return padded[n, u, oh * sh + (r // width) * dh, ow * sw + (r % width) * dw]

    return te.compute(
        (n_batch, conv.num_units, k, *out_hw),
        lambda n, u, j, oh, ow: te.sum(
            tap(n, u, oh, ow).astype(acc_dtype) * codebook[j, r].astype(acc_dtype), axis=r
        ),
        name=BLOCK_RESP,
    )


def build_te(conv, data_shape):
    """Define the kernel in TE.

    Parameters
    ----------
    conv : SubBitConv
    data_shape : tuple of int
        The NCHW input shape.

    Returns
    -------
    args : list of te.Tensor
        Placeholders (data, packed, codebook, alpha[, bias]) then the output.
    """
    n_batch, channels, height, width = data_shape
    if channels != conv.in_channels:
        raise FormatError(f"input has {channels} channels, the conv takes {conv.in_channels}")
    out_hw = conv.output_hw(height, width)
    binary = conv.activation == "binary"
    acc_dtype = INT_DTYPE if binary else FLOAT_DTYPE
    consts = kernel_constants(conv)
    data = te.placeholder(data_shape, FLOAT_DTYPE, "data")
    packed = te.placeholder(consts[0].shape, PACKED_DTYPE, "packed")
    codebook = te.placeholder(consts[1].shape, CODEBOOK_DTYPE, "codebook")
    alpha = te.placeholder(consts[2].shape, FLOAT_DTYPE, "alpha")
    bias = te.placeholder(consts[3].shape, FLOAT_DTYPE, "bias") if conv.bias is not None else None
    source = data
    if binary:  # sign(x) is exact in int8, so the responses are exact ints
        source = te.compute(data_shape, lambda *i: data(*i).astype(CODEBOOK_DTYPE), name=BLOCK_SIGNS)
    top, left, bottom, right = conv.padding
    padded = topi.nn.pad(source, [0, 0, top, left], [0, 0, bottom, right], name=BLOCK_PAD)
    idx = _unpack_stage(packed, conv)
    resp = _response_stage(padded, codebook, conv, out_hw, acc_dtype)
    u = te.reduce_axis((0, conv.num_units), "u")
    acc = te.compute(
        (n_batch, conv.out_channels, *out_hw),
        lambda n, o, oh, ow: te.sum(resp[n, u, idx[o, u], oh, ow], axis=u),
        name=BLOCK_ACC,
    )

    def epilogue(n, o, oh, ow):
        value = acc[n, o, oh, ow].astype(FLOAT_DTYPE) * alpha[o]
        return value + bias[o] if bias is not None else value

    out = te.compute((n_batch, conv.out_channels, *out_hw), epilogue, name=BLOCK_OUT)
    inputs = [data, packed, codebook, alpha] + ([bias] if bias is not None else [])
    return [*inputs, out]


def is_subbit_kernel(func):
    """Whether a PrimFunc contains the sub-bit kernel's stages (also after fusion)."""
    sch = tvm.s_tir.Schedule(func)
    return all(_has_block(sch, name) for name in (BLOCK_RESP, BLOCK_ACC, BLOCK_OUT))


def _inline_epilogue(sch, block):
    """Merge the chain of elementwise consumers (bias, residual add, ReLU, sign) into ``block``."""
    while True:
        consumers = sch.get_consumers(block)
        if len(consumers) != 1:
            return
        try:
            sch.reverse_compute_inline(consumers[0])
        except tvm.s_tir.schedule.ScheduleError:
            return


def schedule_kernel(func):
    """Schedule a sub-bit kernel, alone or fused with an elementwise epilogue.

    The responses are computed per (image, unit), vectorized along output
    columns; the gather runs per (image, output channel) and row, vectorized
    along columns, and the epilogue follows each row while it is in cache.

    Parameters
    ----------
    func : tvm.tirx.PrimFunc
        A function for which :func:`is_subbit_kernel` holds.

    Returns
    -------
    tvm.tirx.PrimFunc
    """
    sch = tvm.s_tir.Schedule(func)
    if _has_block(sch, BLOCK_SIGNS):
        sch.compute_inline(sch.get_sblock(BLOCK_SIGNS))
    resp = sch.get_sblock(BLOCK_RESP)
    n, u, j, oh, ow, r = sch.get_loops(resp)
    sch.reorder(n, u, oh, j, r, ow)
    sch.parallel(sch.fuse(n, u))
    sch.vectorize(_vector_split(sch, ow))
    sch.decompose_reduction(resp, r)

    acc = sch.get_sblock(BLOCK_ACC)
    n, o, oh, ow, u = sch.get_loops(acc)
    sch.reorder(n, o, oh, u, ow)
    sch.parallel(sch.fuse(n, o))
    out = sch.get_sblock(BLOCK_OUT)
    _inline_epilogue(sch, out)
    sch.reverse_compute_at(out, oh)
    sch.vectorize(_vector_split(sch, sch.get_loops(out)[-1]))
    sch.vectorize(_vector_split(sch, ow))
    sch.decompose_reduction(acc, u)
    return sch.mod["main"]


def _vector_split(sch, loop):
    """Split ``loop`` by its largest divisor up to VECTOR_LANES; return the inner loop."""
    extent = int(sch.get(loop).extent)
    if extent <= VECTOR_LANES:
        return loop
    lanes = max(d for d in range(1, VECTOR_LANES + 1) if extent % d == 0)
    return sch.split(loop, [None, lanes])[-1]


def _has_block(sch, name):
    try:
        sch.get_sblock(name)
    except Exception:  # s_tir raises a ScheduleError subclass; any failure means absent
        return False
    return True


def build_kernel(conv, data_shape, schedule=True):
    """Build the sub-bit conv kernel for ``conv`` on inputs of ``data_shape``.

    Parameters
    ----------
    conv : SubBitConv
    data_shape : tuple of int
        NCHW input shape; C must equal ``conv.in_channels``.
    schedule : bool
        Apply the CPU schedule (True) or return the naive loop nest.

    Returns
    -------
    SubBitKernel
    """
    if not isinstance(conv, SubBitConv):
        raise TypeError(f"expected a SubBitConv, got {type(conv).__name__}")
    args = build_te(conv, tuple(int(d) for d in data_shape))
    func = te.create_prim_func(args, index_dtype_override=INDEX_DTYPE)
    if schedule:
        func = schedule_kernel(func)
    out_shape = tuple(int(d) for d in args[-1].shape)
    return SubBitKernel(func=func, constants=kernel_constants(conv), out_shape=out_shape)
