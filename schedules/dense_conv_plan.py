"""``DenseConvPlan``: the knobs of the dense direct conv, with their legal ranges.

The kernel (:mod:`schedules.dense_conv`) puts a tile of one output row's
pixels in the vector lanes (``pixel_vectors`` vectors) and a block of
``channel_block`` output channels beside them; the block's accumulators,
``channel_block x pixel_vectors`` vectors, stay in registers over the whole
reduction (input channels x kernel taps): per step, the tile's input vectors
are loaded once and each channel's weight is broadcast into an FMA.
:meth:`DenseConvPlan.default` makes the hand choice; :meth:`DenseConvPlan.space`
gives the legal values of each knob.
"""

from dataclasses import dataclass

from schedules.cpu import CpuSpec
from schedules.knobs import DENSE_CONV_LOAD_COST, DENSE_CONV_MIN_ACCUMULATORS, VECTOR_WIDTHS
from schedules.plan import Plan
from tvm_snn.errors import FormatError
from tvm_snn.schema import FLOAT_BYTES

DENSE_CONV_KIND = "dense-conv"


def ceil_div(a, b):
    """``a / b`` rounded up."""
    return -(-a // b)


def efficiency(out_channels, out_width, channel_block, tile_pixels):
    """The share of computed outputs that are real: channels and row pixels padded to whole blocks."""
    channels = ceil_div(out_channels, channel_block) * channel_block
    row = ceil_div(out_width, tile_pixels) * tile_pixels
    return out_channels * out_width / (channels * row)


def check_accumulators(plan_name, block_label, block, vectors, vector_bytes):
    """Raise unless ``block x vectors`` accumulators fit the registers ``vector_bytes``-byte vectors give (AVX2: half).

    Raises
    ------
    FormatError
        Naming the plan, its block and the register count.
    """
    registers = CpuSpec(vector_bytes=vector_bytes).acc_registers
    if block * vectors > registers:
        raise FormatError(
            f"{plan_name}: {block_label} x {vectors} vectors of accumulators "
            f"exceed the {registers} registers of {vector_bytes}-byte vectors"
        )


@dataclass(frozen=True)
class DenseConvPlan(Plan):
    """The knobs of one dense direct conv kernel.

    Attributes
    ----------
    channel_block : int
        Output channels computed together (their weights are broadcast; the
        packed weight groups them, padded with zero channels to a whole block).
    pixel_vectors : int
        Vectors of one output row's pixels per tile (the row is padded to
        whole tiles).
    vector_bytes : int
        Bytes of the vectors the pixel loops are cut to (the target's SIMD width).
    """

    KIND = DENSE_CONV_KIND

    channel_block: int
    pixel_vectors: int
    vector_bytes: int

    @property
    def lanes(self):
        """float32 lanes of a vector."""
        return self.vector_bytes // FLOAT_BYTES

    @property
    def tile_pixels(self):
        """Output pixels of a tile (a piece of one row)."""
        return self.pixel_vectors * self.lanes

    @classmethod
    def default(cls, geometry, data_shape, cpu):
        """The hand choice for ``geometry`` (a ``DenseConvGeometry``) on ``cpu``.

        The block with the best share of real outputs per cost, among those
        that fill at least ``DENSE_CONV_MIN_ACCUMULATORS`` registers (or as
        many as the shape allows). A block of ``c`` channels x ``v`` vectors
        costs ``c * v`` FMAs and ``c + v`` loads (broadcast weights, input
        vectors) per reduction step; a load counts ``DENSE_CONV_LOAD_COST`` FMAs.
        """
        del data_shape  # the geometry holds it
        lanes = cpu.vector_bytes // FLOAT_BYTES
        regs = cpu.acc_registers
        out_channels, out_width = geometry.out_channels, geometry.out_hw[1]
        row_vectors = ceil_div(out_width, lanes)
        best, best_key = None, None
        for vectors in range(1, min(row_vectors, regs) + 1):
            for block in range(1, min(out_channels, regs // vectors) + 1):
                accumulators = block * vectors
                loads_per_fma = (block + vectors) / accumulators
                useful = efficiency(out_channels, out_width, block, vectors * lanes)
                key = (min(accumulators, DENSE_CONV_MIN_ACCUMULATORS), useful / (1 + DENSE_CONV_LOAD_COST * loads_per_fma))
                if best_key is None or key > best_key:
                    best, best_key = (block, vectors), key
        return cls(channel_block=best[0], pixel_vectors=best[1], vector_bytes=cpu.vector_bytes)

    @classmethod
    def space(cls, geometry, data_shape, cpu):
        """``{knob: legal values}`` for ``geometry`` on ``cpu``."""
        del data_shape
        lanes = cpu.vector_bytes // FLOAT_BYTES
        regs = cpu.acc_registers
        row_vectors = ceil_div(geometry.out_hw[1], lanes)
        return {
            "channel_block": tuple(range(1, min(geometry.out_channels, regs) + 1)),
            "pixel_vectors": tuple(range(1, min(row_vectors, regs) + 1)),
            "vector_bytes": VECTOR_WIDTHS,
        }

    def check_joint(self, geometry, data_shape):
        """The block's accumulators fit the registers a vector width gives (AVX2: half)."""
        del geometry, data_shape
        check_accumulators("DenseConvPlan", f"{self.channel_block} channels", self.channel_block, self.pixel_vectors, self.vector_bytes)
