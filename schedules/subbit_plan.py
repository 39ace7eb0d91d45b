"""``SubBitPlan``: every knob of the pixel-lane sub-bit kernel, with its legal range.

The kernel (:mod:`schedules.subbit_tir`) cuts its outputs into tiles of
``tile_rows x tile_width`` pixels (rows shorter than a vector are padded to a
power of two and stacked), computes the responses ``unit_group`` units at a
time, and its schedule (:mod:`schedules.subbit_schedule`) splits the output
channels into ``channel_splits`` parallel parts and keeps the accumulators of
``register_block`` channels in registers. :meth:`SubBitPlan.default` makes the
hand choices; :meth:`SubBitPlan.space` gives the legal values of each knob.
"""

import math
from dataclasses import dataclass

import numpy as np

from schedules import subbit_unpack as unpack
from schedules.knobs import (
    BYTE_LANES,
    FLOAT_LANES,
    ITEMS_PER_CORE,
    MAX_CHANNEL_SPLITS,
    RESP_BUDGET_BYTES,
    TILE_VECTORS,
    VECTOR_BYTES,
    VECTOR_WIDTHS,
)
from schedules.plan import Plan, divisors, powers_of_two_dividing
from schedules.schedule_helpers import largest_divisor
from schedules.subbit import KERNEL_1X1
from schedules.tir_build import FLOAT_DTYPE, INT8_LIMIT, SIGN_DTYPE
from tvm_snn.errors import FormatError

PIXEL_LANE_KIND = "pixel-lane"
# Segments a unit's sum is split into, as (segments, segment length).
SEGMENTS_3X3 = (3, 3)
SEGMENTS_1X1 = (2, 4)
# The most vectors of pixels a tile may span.
MAX_TILE_VECTORS = 4
# Bytes of the accumulators held in registers: int8 group sums (binary) or float32.
_BINARY_SUM_BYTES = 1
_FLOAT_BYTES = 4


def segment_shape(conv):
    """(segments, segment length) of a unit: 3x3 rows, or 1x1 halves."""
    return SEGMENTS_1X1 if conv.kernel_size == KERNEL_1X1 else SEGMENTS_3X3


@dataclass(frozen=True)
class Tile:
    """The output pixels one unit of work covers: ``rows`` x ``width``.

    Outputs are computed on a padded grid of ``out_h x row`` (whole tiles);
    ``width`` divides ``row``, and ``width < row`` only when ``rows == 1``,
    so a tile's pixels are contiguous in the accumulator.
    """

    rows: int
    width: int
    row: int
    out_h: int

    @property
    def pixels(self):
        return self.rows * self.width

    @property
    def grid(self):
        """Tiles per image, as ``(tiles_h, tiles_w)``."""
        return self.out_h // self.rows, self.row // self.width


def padded_width(out_width):
    """``out_width`` rounded up to a power of two (short rows) or whole vectors.

    Short rows then stack into full vectors without gaps: a 4x4 output is
    one vector of 16.
    """
    if out_width <= FLOAT_LANES:
        return 1 << (out_width - 1).bit_length()
    return -(-out_width // FLOAT_LANES) * FLOAT_LANES


def make_tile(out_hw, rows, width):
    """The tile of ``rows x width`` pixels on outputs of ``out_hw``."""
    out_h, out_w = out_hw
    row = padded_width(out_w)
    if rows == 1:
        return Tile(rows=1, width=width, row=row, out_h=out_h)
    return Tile(rows=rows, width=row, row=row, out_h=-(-out_h // rows) * rows)


def choose_tile(out_hw, binary, vectors=TILE_VECTORS):
    """The tile for outputs of ``out_hw``: ``vectors`` full vectors of pixels.

    A vector is 16 float32 or 64 int8 lanes (binary activations). Rows
    shorter than a tile are stacked, so a vector may span rows; a small
    image gets a smaller tile rather than rows of padding.
    """
    out_h, out_w = out_hw
    lanes = BYTE_LANES if binary else FLOAT_LANES
    row = padded_width(out_w)
    target = min(lanes * vectors, max(row, (1 << (out_h - 1).bit_length()) * row))
    if row >= target:
        return make_tile(out_hw, 1, math.gcd(row, target))
    return make_tile(out_hw, target // row, row)  # rows of 1, 2, 4, 8 or 16 outputs stack into a vector


def _group_limit(conv):
    """The most units per group: a binary group's int8 sums stay exact."""
    return INT8_LIMIT // conv.unit_size if conv.activation == "binary" else conv.num_units


def unit_group(conv, pixels):
    """Units whose responses are computed together: a power of two dividing the unit count.

    The group's responses fit ``RESP_BUDGET_BYTES`` (so they stay in L1);
    with binary activations the group's int8 sums are exact, so at most
    ``127 // max|response|`` units. A power of two lets one mask of the
    stored offset address the group's responses.
    """
    binary = conv.activation == "binary"
    resp_bytes = np.dtype(SIGN_DTYPE if binary else FLOAT_DTYPE).itemsize
    limit = min(RESP_BUDGET_BYTES // ((1 << conv.tau) * pixels * resp_bytes), _group_limit(conv))
    return powers_of_two_dividing(conv.num_units, max(1, limit))[-1]


def channel_splits(tiles, out_channels, num_cores):
    """Parts to split the output channels into, so the cores get even work.

    Every part computes its tile's responses again, so the fewest parts
    that give each core the same number of items, or enough items to even
    out (``ITEMS_PER_CORE``). A power of two dividing the channels, at
    most ``MAX_CHANNEL_SPLITS``.
    """
    splits = 1
    while splits < MAX_CHANNEL_SPLITS and out_channels % (splits * 2) == 0:
        items = tiles * splits
        if items % num_cores == 0 or items >= ITEMS_PER_CORE * num_cores:
            break
        splits *= 2
    return splits


@dataclass(frozen=True)
class SubBitPlan(Plan):
    """The knobs of one pixel-lane sub-bit kernel.

    Attributes
    ----------
    tile_rows, tile_width : int
        The tile: stacked rows (then the width is the padded row) or one
        row's ``tile_width`` pixels.
    unit_group : int
        Units whose responses are computed together (a power of two
        dividing the unit count).
    channel_splits : int
        Parts the output channels are split into, each a parallel item
        per tile (each part recomputes its tile's responses).
    register_block : int
        Output channels whose accumulators stay in registers.
    unroll_unpack : bool
        Unroll the scalar index unpacking over a period of the bit stream.
    vector_bytes : int
        Bytes of the vectors the pixel loops are cut to.
    byte_unpack : bool
        Unpack the indices 64 at a time with AVX-512 VBMI.
    num_cores : int
        Cores the VBMI unpacking spreads over.
    """

    KIND = PIXEL_LANE_KIND

    tile_rows: int
    tile_width: int
    unit_group: int
    channel_splits: int
    register_block: int
    unroll_unpack: bool = True
    vector_bytes: int = VECTOR_BYTES
    byte_unpack: bool = False
    num_cores: int = 1

    def tile(self, out_hw):
        """The :class:`Tile` on outputs of ``out_hw``."""
        return make_tile(out_hw, self.tile_rows, self.tile_width)

    @classmethod
    def default(cls, conv, data_shape, cpu):
        """The hand schedule's plan for ``conv`` on inputs of ``data_shape`` on ``cpu``."""
        out_hw = conv.output_hw(*data_shape[2:])
        binary = conv.activation == "binary"
        tile = choose_tile(out_hw, binary)
        tiles_h, tiles_w = tile.grid
        splits = channel_splits(data_shape[0] * tiles_h * tiles_w, conv.out_channels, cpu.num_cores)
        acc_bytes = _BINARY_SUM_BYTES if binary else _FLOAT_BYTES
        vectors = max(1, tile.pixels * acc_bytes // cpu.vector_bytes)  # registers per channel's accumulator
        block = largest_divisor(conv.out_channels // splits, max(1, cpu.acc_registers // vectors))
        return cls(
            tile_rows=tile.rows,
            tile_width=tile.width,
            unit_group=unit_group(conv, tile.pixels),
            channel_splits=splits,
            register_block=block,
            byte_unpack=cpu.vbmi and unpack.fits(conv.num_units, conv.tau),
            num_cores=cpu.num_cores,
        )

    @classmethod
    def space(cls, conv, data_shape, cpu):
        """``{knob: legal values}`` for ``conv`` on inputs of ``data_shape`` on ``cpu``."""
        out_h, out_w = conv.output_hw(*data_shape[2:])
        row = padded_width(out_w)
        most_pixels = MAX_TILE_VECTORS * BYTE_LANES
        stacked = powers_of_two_dividing(1 << (out_h - 1).bit_length(), max(1, most_pixels // row))
        return {
            "tile_rows": stacked,
            "tile_width": powers_of_two_dividing(row, min(row, most_pixels)) + ((row,) if row & (row - 1) else ()),
            "unit_group": powers_of_two_dividing(conv.num_units, _group_limit(conv)),
            "channel_splits": powers_of_two_dividing(conv.out_channels, MAX_CHANNEL_SPLITS),
            "register_block": divisors(conv.out_channels, cpu.acc_registers),
            "unroll_unpack": (False, True),
            "vector_bytes": VECTOR_WIDTHS,
            "byte_unpack": (False, True) if cpu.vbmi and unpack.fits(conv.num_units, conv.tau) else (False,),
            "num_cores": tuple(range(1, cpu.num_cores + 1)),
        }

    def check_joint(self, conv, data_shape):
        """Check the knobs that bound each other."""
        row = padded_width(conv.output_hw(*data_shape[2:])[1])
        if self.tile_rows > 1 and self.tile_width != row:
            raise FormatError(f"SubBitPlan: a tile of {self.tile_rows} stacked rows is a whole padded row ({row}) wide")
        if self.tile_rows == 1 and row % self.tile_width:
            raise FormatError(f"SubBitPlan: tile_width={self.tile_width} does not divide the padded row ({row})")
        if (conv.out_channels // self.channel_splits) % self.register_block:
            raise FormatError(
                f"SubBitPlan: register_block={self.register_block} does not divide the "
                f"{conv.out_channels // self.channel_splits} channels of a part"
            )
