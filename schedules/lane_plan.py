"""``LanePlan``: the knobs of the lane kernel (:mod:`schedules.subbit_lane`), and when it applies.

The lane kernel puts 64 output channels in the int8 lanes; its tile is 16
pixels of stacked rows (one 64-byte table of 4 row patterns). Its knobs are
the chunk of units summed in int8 before widening, the parts a tile's
chunks are split into (each its own accumulator, added by the epilogue), and
the cores its stages spread over.
"""

from dataclasses import dataclass

from schedules.knobs import BYTE_LANES, ITEMS_PER_CORE, MIN_LANE_CHANNELS
from schedules.plan import Plan, divisors, powers_of_two_dividing
from schedules.subbit import KERNEL_3X3
from schedules.subbit_plan import SEGMENTS_3X3, choose_tile
from schedules.tir_build import INT8_LIMIT, INT16_LIMIT
from tvm_snn.errors import FormatError

LANE_KIND = "lane"
# Output channels per vector (int8 lanes) and bytes of a permute table.
CHANNEL_LANES = 64
TABLE_BYTES = 64
# A 3x3 row has 3 signs; k/-k symmetry leaves the 4 patterns with the last one positive.
ROWS, ROW_LENGTH = SEGMENTS_3X3
ROW_PATTERNS = 1 << (ROW_LENGTH - 1)
# Pixels per tile: 4 row patterns x 16 pixels fill one 64-byte segment table.
TILE_PIXELS = TABLE_BYTES // ROW_PATTERNS
# 64 codewords fill one permute table.
MAX_LANE_TAU = 6


def lane_tile(out_hw):
    """The tile of the lane kernel: at most 16 pixels, stacked rows (see :func:`choose_tile`)."""
    return choose_tile(out_hw, binary=False)


def lane_kernel_fits(conv, out_hw):
    """Why the lane kernel does not apply to ``conv`` on outputs of ``out_hw``, or None if it does.

    It takes binary 3x3 convs with at most 64 codewords and at least 256
    output channels in whole vectors, on images whose pixel-lane tiles
    leave vectors partly empty (fewer than 64 pixels) and whose lane tiles
    hold 16 pixels.
    """
    if conv.activation != "binary":
        return "float activations"
    if conv.kernel_size != KERNEL_3X3:
        return "not a 3x3 kernel"
    if conv.tau > MAX_LANE_TAU:
        return f"tau {conv.tau} > {MAX_LANE_TAU}"
    if conv.out_channels % CHANNEL_LANES or conv.out_channels < MIN_LANE_CHANNELS:
        return f"{conv.out_channels} output channels: fewer than {MIN_LANE_CHANNELS} or not whole vectors"
    if conv.num_units * conv.unit_size > INT16_LIMIT:
        return "too many units for an int16 accumulator"
    if choose_tile(out_hw, binary=True).pixels >= BYTE_LANES:
        return "the pixel-lane kernel fills its vectors"
    if lane_tile(out_hw).pixels != TILE_PIXELS:
        return f"tiles of {lane_tile(out_hw).pixels} pixels, not {TILE_PIXELS}"
    return None


def chunk_units(conv):
    """Units summed in int8 before widening: the largest divisor of the unit
    count whose sums stay exact (``127 // 9``)."""
    return divisors(conv.num_units, INT8_LIMIT // conv.unit_size)[-1]


def unit_parts(tiles, chunks, num_cores):
    """Parts to split a tile's unit chunks into so the cores get even work.

    Each part sums its units into its own accumulator; the epilogue adds
    the parts. A power of two dividing the chunk count.
    """
    parts = 1
    while tiles * parts % num_cores and tiles * parts < ITEMS_PER_CORE * num_cores and chunks % (parts * 2) == 0:
        parts *= 2
    return parts


@dataclass(frozen=True)
class LanePlan(Plan):
    """The knobs of one lane kernel.

    Attributes
    ----------
    chunk : int
        Units summed in int8 before widening into the int16 accumulator
        (a divisor of the unit count; at most ``127 // 9`` stays exact).
    parts : int
        Parts a tile's chunks are split into, each a parallel item.
    num_cores : int
        Cores the stages spread over (1: no parallel loops).
    """

    KIND = LANE_KIND

    chunk: int
    parts: int
    num_cores: int

    @classmethod
    def default(cls, conv, data_shape, cpu):
        """The hand choices for ``conv`` on inputs of ``data_shape`` on ``cpu``."""
        reason = lane_kernel_fits(conv, conv.output_hw(*data_shape[2:]))
        if reason is not None:
            raise FormatError(f"the lane kernel does not apply: {reason}")
        tile = lane_tile(conv.output_hw(*data_shape[2:]))
        tiles_h, tiles_w = tile.grid
        chunk = chunk_units(conv)
        parts = unit_parts(data_shape[0] * tiles_h * tiles_w, conv.num_units // chunk, cpu.num_cores)
        return cls(chunk=chunk, parts=parts, num_cores=cpu.num_cores)

    @classmethod
    def space(cls, conv, data_shape, cpu):
        """``{knob: legal values}`` for ``conv`` on inputs of ``data_shape`` on ``cpu``."""
        return {
            "chunk": divisors(conv.num_units, INT8_LIMIT // conv.unit_size),
            "parts": powers_of_two_dividing(conv.num_units, conv.num_units),
            "num_cores": tuple(range(1, cpu.num_cores + 1)),
        }

    def check_joint(self, conv, data_shape):
        """The parts split the chunks evenly."""
        if (conv.num_units // self.chunk) % self.parts:
            raise FormatError(f"LanePlan: parts={self.parts} does not divide the {conv.num_units // self.chunk} chunks")
