"""Unpacking tau-bit indices into bytes, 64 per step, with AVX-512 VBMI.

A step's 64 indices are ``8 * tau`` bytes of the stream (see
:func:`schedules.subbit.pack_indices`): ``vpermb`` gives each qword the
``tau`` bytes of its 8 indices, and ``vpmultishiftqb`` shifts index ``m`` of
a qword down by ``m * tau`` bits. The stream needs ``TAIL_BYTES`` of zero
tail: a step reads 64 bytes.
"""

from tvm import te, tirx

from schedules.knobs import MIN_PARALLEL_INDICES
from schedules.subbit import BITS_PER_BYTE
from schedules.tir_build import BYTE_DTYPE, TIR_INDEX_DTYPE, index, ramp

BLOCK_UNPACK = "snn_unpack"
LANES = 64
TAIL_BYTES = 64
# Indices up to 7 bits fit a signed byte.
UNPACK_MAX_TAU = 7
VPERMB = "llvm.x86.avx512.permvar.qi.512"
MULTISHIFT = "llvm.x86.avx512.pmultishift.qb.512"


def fits(cols, tau):
    """Whether rows of ``cols`` indices of ``tau`` bits unpack in whole steps."""
    return cols % LANES == 0 and tau <= UNPACK_MAX_TAU


def byte_lanes(value):
    """``value`` in all 64 int8 lanes."""
    return tirx.Broadcast(tirx.const(value, BYTE_DTYPE), LANES)


def unpack_bytes(packed, shape, tau, num_cores, name=BLOCK_UNPACK, finish=None, dtype=BYTE_DTYPE):
    """A TE extern stage: the stream ``packed`` as indices of ``shape`` (row-major).

    Parameters
    ----------
    packed : te.Tensor
        uint8, the tau-bit stream and at least ``TAIL_BYTES`` of tail.
    shape : tuple of int
        ``(rows, cols)``, with ``cols`` a multiple of 64.
    tau : int
        Bits per index, at most ``UNPACK_MAX_TAU``.
    num_cores : int
        Cores to spread the steps over (large streams only).
    name : str
        The stage's name.
    finish : callable, optional
        ``finish(indices, row, cols)``: the values stored for 64 int8
        ``indices`` at ``row`` and the column ramp ``cols``; the indices
        themselves by default.
    dtype : str
        The stored values' dtype.

    Returns
    -------
    te.Tensor
    """
    rows, cols = shape
    if not fits(cols, tau):
        raise ValueError(f"cannot unpack {rows}x{cols} indices of {tau} bits in steps of {LANES}")
    steps = rows * cols // LANES
    parallel = num_cores > 1 and steps * LANES >= MIN_PARALLEL_INDICES
    kind = tirx.ForKind.PARALLEL if parallel else tirx.ForKind.SERIAL
    byte_vec = f"{BYTE_DTYPE}x{LANES}"

    def build(src, out):
        lane = tirx.Ramp(tirx.const(0, BYTE_DTYPE), tirx.const(1, BYTE_DTYPE), LANES)
        field = lane & byte_lanes(BITS_PER_BYTE - 1)  # an index's place in its qword
        place = (lane >> byte_lanes(3)) * byte_lanes(tau) + field  # qword k: bytes k * tau ...
        shift = field * byte_lanes(tau)
        g = tirx.Var("step", TIR_INDEX_DTYPE)
        raw = tirx.Cast(byte_vec, tirx.BufferLoad(src, [ramp(g * (BITS_PER_BYTE * tau), LANES)]))
        placed = tirx.call_llvm_pure_intrin(byte_vec, VPERMB, raw, place)
        fields = tirx.call_llvm_pure_intrin(byte_vec, MULTISHIFT, shift, placed)
        first = g * LANES
        row, col = tirx.floordiv(first, index(cols)), ramp(first % cols, LANES)
        indices = fields & byte_lanes((1 << tau) - 1)
        value = indices if finish is None else finish(indices, row, col)
        return tirx.For(g, index(0), index(steps), kind, tirx.BufferStore(out, value, [row, col]))

    return te.extern([shape], [packed], lambda ins, outs: build(ins[0], outs[0]), name=name, dtype=[dtype])
