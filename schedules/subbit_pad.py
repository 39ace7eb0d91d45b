"""The sub-bit kernel's padded input, written as plain loops without conditions.

``snn_pad`` holds the input at row ``y * sh + ry - top`` and column
``x * sw + k * step - left`` (see :func:`schedules.subbit_tir._planar_pad`),
0 where that falls outside the image. A TE compute would test every
element (``if_then_else``), which TVM cannot vectorize. Here the bounds
are constants: for each plane ``k``, the columns that read the image form
one range, so a row that reads the image is a zero-filled head, a vector
copy and a zero-filled tail, and a row outside is zero-filled (one branch
per row, none per element). No load leaves the input.

With binary activations the copy stores ``sign(x)`` as int8.
"""

import math
from dataclasses import dataclass

from tvm import te, tirx

from schedules.tir_build import index, loop, seq

BLOCK_PAD = "snn_pad"
# Elements per vector piece of a row (a zmm of int8, four of float32).
PIECE_LANES = 64
# Pads smaller than this run on one core: a parallel region costs a fork and a join.
MIN_PARALLEL_WORK = 1 << 12


@dataclass(frozen=True)
class PadGeometry:
    """Where the padded tensor reads the input.

    Attributes
    ----------
    top, left : int
        Padding before the first row and column.
    stride : tuple of int
        ``(sh, sw)``: row phases and the column step of a plane.
    planes, step : int
        Planes and the column offset from one plane to the next.
    rows, width : int
        Rows per phase and columns per plane.
    row_major : bool
        Memory order ``[n, ry, y, c, k, x]`` (True) or ``[n, c, ry, k, y, x]``.
    """

    top: int
    left: int
    stride: tuple
    planes: int
    step: int
    rows: int
    width: int
    row_major: bool

    def shape(self, n_batch, channels):
        """The padded tensor's shape."""
        sh = self.stride[0]
        if self.row_major:
            return (n_batch, sh, self.rows, channels, self.planes, self.width)
        return (n_batch, channels, sh, self.planes, self.rows, self.width)

    def index(self, n, c, ry, k, y, x):
        """Buffer indices of element ``(n, c, ry, k, y, x)``."""
        if self.row_major:
            return [n, ry, y, c, k, x]
        return [n, c, ry, k, y, x]


def _vector(base, lanes, store):
    return loop(lanes, lambda x: store(index(base) + x), "xv", tirx.ForKind.VECTORIZED)


def _pieces(start, stop, store):
    """Statements storing ``store(x)`` for ``x`` in ``[start, stop)``, in vector pieces.

    Every piece is a power of two wide. A remainder is covered by pieces
    that overlap the ones before (storing the same values twice), not by
    an odd-width vector, which LLVM splits into 16-, 8-, 4-, 2- and
    1-lane parts (a 31-wide row took 12 instructions).
    """
    stmts = []
    length = stop - start
    full = length // PIECE_LANES
    if full:
        stmts.append(
            loop(
                full,
                lambda xo: loop(
                    PIECE_LANES, lambda xi: store(index(start) + xo * PIECE_LANES + xi), "xi", tirx.ForKind.VECTORIZED
                ),
                "xo",
            )
        )
        if length % PIECE_LANES:
            stmts.append(_vector(stop - PIECE_LANES, PIECE_LANES, store))
    elif length:
        lanes = 1 << (length.bit_length() - 1)  # more than half the length: two pieces cover it
        stmts.append(_vector(start, lanes, store))
        if lanes < length:
            stmts.append(_vector(stop - lanes, lanes, store))
    return stmts


def _inside(offset, extent, step, limit):
    """``[lo, hi)``: the ``i`` in ``[0, limit)`` with ``0 <= i * step + offset < extent``."""
    lo = min(max(-(offset // step), 0), limit)  # ceil(-offset / step)
    hi = min(max(-((offset - extent) // step), lo), limit)  # ceil((extent - offset) / step)
    return lo, hi


def padded_input(data, geometry, value, dtype):
    """The padded tensor of ``data`` (NCHW), as a TE extern stage named ``snn_pad``.

    Each padded row is one branch: a zero-filled head, a vector copy and a
    zero-filled tail when the row reads the image, else zeros. Rows are
    spread over the cores by channel (channel-major) or by row (row-major),
    so each core writes contiguous blocks.

    Parameters
    ----------
    data : te.Tensor
    geometry : PadGeometry
    value : callable
        Maps a loaded input element to the stored one (identity, or sign).
    dtype : str
        The padded tensor's dtype.

    Returns
    -------
    te.Tensor
    """
    n_batch, channels, height, width = (int(d) for d in data.shape)
    g = geometry
    sh, sw = g.stride
    zero = tirx.const(0, dtype)
    shape = g.shape(n_batch, channels)
    kind = tirx.ForKind.PARALLEL if math.prod(shape) >= MIN_PARALLEL_WORK else tirx.ForKind.SERIAL

    def build(src, out):
        def row(n, c, ry, k, y):
            """Row ``y`` of phase ``ry``, plane ``k`` (a Python int), channel ``c``."""
            x_lo, x_hi = _inside(k * g.step - g.left, width, sw, g.width)
            iy = y * sh + ry - g.top

            def put(x):
                return tirx.BufferStore(out, zero, g.index(n, c, ry, index(k), y, x))

            def copy(x):
                loaded = src[n, c, iy, x * sw + (k * g.step - g.left)]
                return tirx.BufferStore(out, value(loaded), g.index(n, c, ry, index(k), y, x))

            filled = seq(_pieces(0, x_lo, put) + _pieces(x_lo, x_hi, copy) + _pieces(x_hi, g.width, put))
            inside = tirx.all(iy >= 0, iy < height)
            return tirx.IfThenElse(inside, filled, seq(_pieces(0, g.width, put)))

        def planes(n, c, ry, y):
            return seq([row(n, c, ry, k, y) for k in range(g.planes)])

        if g.row_major:  # [n, ry, y, c, k, x]: a core writes whole rows of all channels

            def by_row(t):
                n, ry, y = tirx.floordiv(t, index(sh * g.rows)), tirx.floordiv(t, index(g.rows)) % sh, t % g.rows
                return loop(channels, lambda c: planes(n, c, ry, y), "c")

            return loop(n_batch * sh * g.rows, by_row, "nyr", kind)

        def by_channel(t):  # [n, c, ry, k, y, x]: a core writes whole channels
            n, c = tirx.floordiv(t, index(channels)), t % channels
            phases = [loop(g.rows, lambda y, ry=ry: planes(n, c, index(ry), y), "y") for ry in range(sh)]
            return seq(phases)

        return loop(n_batch * channels, by_channel, "nc", kind)

    return te.extern([shape], [data], lambda ins, outs: build(ins[0], outs[0]), name=BLOCK_PAD, dtype=[dtype])
