"""The sub-bit kernels' padded input: its layout, and the stage written as plain loops.

:func:`tiled_input` picks the layout that the tiles of a kernel read
(:class:`PaddedInput`: the planes, the memory order, shifted taps), and
:func:`padded_input` builds it. ``snn_pad`` holds the input at row
``y * sh + ry - top`` and column ``x * sw + k * step - left`` (see
:func:`_planar_pad`),
0 where that falls outside the image. A TE compute would test every
element (``if_then_else``), which TVM cannot vectorize. Here the bounds
are constants: for each plane ``k``, the columns that read the image form
one range, so a row that reads the image is a zero-filled head, a vector
copy and a zero-filled tail, and a row outside is zero-filled (one branch
per row, none per element). No load leaves the input.

With binary activations the copy stores ``sign(x)`` as int8.
"""

import dataclasses
import math
from dataclasses import dataclass

from tvm import te, tirx

from schedules.knobs import MIN_PARALLEL_WORK
from schedules.tir_build import FLOAT_DTYPE, SIGN_DTYPE, index, loop, seq, sign_int8

BLOCK_PAD = "snn_pad"
# Elements per vector piece of a row (a zmm of int8, four of float32).
PIECE_LANES = 64


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


@dataclass(frozen=True)
class PaddedInput:
    """The zero-padded input (see :func:`_planar_pad`) and its memory order.

    Row-major (``[n, ry, y, c, k, x]``) keeps the rows one tile reads, of
    every channel, in one contiguous block, so a batch larger than L2 still
    streams through the prefetchers; channel-major (``[n, c, ry, k, y, x]``)
    keeps a channel's rows adjacent, which stacked-row tiles need.
    """

    tensor: te.Tensor
    row_major: bool
    # One plane of unshifted rows (see _shifted_taps): taps read it shifted,
    # masked to columns [0, mask_width) when mask_width > 0; zero guard rows
    # above and below each channel take the reads past the first and last row.
    shifted_taps: bool = False
    mask_width: int = 0
    guard_rows: int = 0

    def at(self, n, c, ry, k, y, x):
        """The padded input at channel ``c``, row phase ``ry``, plane ``k``, row ``y``, column ``x``."""
        if self.row_major:
            return self.tensor[n, ry, y, c, k, x]
        return self.tensor[n, c, ry, k, y, x]


def _planar_pad(data, padding, stride, planes, step, width, row_major, binary):
    """The zero-padded input at row ``y * sh + ry``, column ``x * sw + k * step``,
    for ``x < width``, as a :class:`PaddedInput` (``sign(x)`` in int8 if ``binary``).

    The planes make every tap a contiguous read (see :func:`column_tap`):
    ``sw`` column phases (``step = 1``), or, when short rows are stacked into
    one vector, one plane per column tap (``step = dw``), each as wide as a
    padded output row, so the stacked rows are contiguous too. The stage is
    built by :func:`schedules.subbit_pad.padded_input`.
    """
    height = int(data.shape[2])
    top, left, bottom, _ = padding
    rows = -(-(height + top + bottom) // stride[0])
    geometry = PadGeometry(top, left, tuple(stride), planes, step, rows, width, row_major)
    if binary:
        tensor = padded_input(data, geometry, sign_int8, SIGN_DTYPE)
    else:
        tensor = padded_input(data, geometry, lambda value: value, FLOAT_DTYPE)
    return PaddedInput(tensor, row_major)


def _shifted_taps(conv, tile, in_width):
    """Whether stacked-row tiles read one plane of unshifted rows, instead of
    one shifted plane per column tap (a third of the pad's writes).

    That needs stride 1 and rows at least as wide as the input: a tap is the
    stacked rows' vector shifted by the tap's column offset. A tap that
    falls past a row's end reads the row's zero tail, or the next row's
    head, which is masked (see :func:`_column_reach`).
    """
    return tile.rows > 1 and conv.kernel_size[1] > 1 and conv.stride == (1, 1) and in_width <= tile.row


def _column_reach(conv):
    """How far a column tap reaches before or after its output column."""
    left, dw = conv.padding[1], conv.dilation[1]
    return max(left, (conv.kernel_size[1] - 1) * dw - left)


def _column_layout(conv, tile, padded_width):
    """``(planes, step, width)`` of the padded input for :func:`_planar_pad`."""
    sw, dw, kw = conv.stride[1], conv.dilation[1], conv.kernel_size[1]
    if tile.rows > 1 and kw > 1:
        return kw, dw, tile.row
    return sw, 1, -(-padded_width // sw)


def column_tap(conv, tile, e, ow):
    """(plane, column) holding column tap ``e`` of output column ``ow``."""
    sw, dw, kw = conv.stride[1], conv.dilation[1], conv.kernel_size[1]
    if tile.rows > 1 and kw > 1:
        return e, ow
    return (e * dw) % sw, ow + (e * dw) // sw


def tiled_input(data, conv, tile, binary):
    """The padded input (:func:`_planar_pad`) that tiles of ``tile`` read, for
    outputs padded to whole tiles (``sign(x)`` in int8 if ``binary``)."""
    height, width = (int(d) for d in data.shape[2:])
    top, left, bottom, right = conv.padding
    (sh, sw), (dh, dw) = conv.stride, conv.dilation
    # Padded rows and columns are read this far (outputs padded to whole tiles).
    right = max(right, (tile.row - 1) * sw + (conv.kernel_size[1] - 1) * dw + 1 - width - left)
    bottom = max(bottom, (tile.out_h - 1) * sh + (conv.kernel_size[0] - 1) * dh + 1 - height - top)
    if _shifted_taps(conv, tile, width):
        reach = _column_reach(conv)
        guard = -(-reach // tile.row)  # rows that a tap reaches past a row's ends
        padding = (top + guard, 0, bottom + guard, 0)
        padded = _planar_pad(data, padding, conv.stride, 1, 1, tile.row, False, binary)
        # A zero tail at least as long as the reach needs no mask: the taps past
        # a row's ends read zeros, at the end of their row or of the row before.
        mask = width if tile.row - width < reach else 0
        return dataclasses.replace(padded, shifted_taps=True, mask_width=mask, guard_rows=guard)
    layout = _column_layout(conv, tile, left + width + right)
    # With binary activations the pad stores sign(x) in int8, so the responses are exact ints.
    return _planar_pad(data, (top, left, bottom, right), conv.stride, *layout, tile.rows == 1, binary)
