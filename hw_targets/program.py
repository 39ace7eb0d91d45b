"""A compiled accelerator program: its DRAM regions and its instruction stream.

A program is what the compiler (:mod:`hw_targets.compiler`) emits and what the
simulator (:mod:`hw_targets.sim`) and the cycle model (:mod:`hw_targets.cycles`)
run. LOAD and STORE address DRAM as ``(region, element)``: the region table
plays the part of a loader's relocation table, and each region's element
width is its DRAM format (a ternary activation takes 2 bits, an index tau
bits, a sign 1 bit, a float 32).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hw_targets.isa import Instruction, encode_stream
from hw_targets.spec import AcceleratorSpec
from tvm_snn.errors import StreamError

__all__ = ["REGION_KINDS", "Region", "Program", "BUFFER_KINDS"]

# DRAM element kinds: the simulator's dtype and the bits of the DRAM format (None: tau).
REGION_KINDS = {
    "ternary": (np.int8, 2),
    "index": (np.int32, None),
    "sign": (np.int8, 1),
    "float32": (np.float32, 32),
}
# The DRAM kind each buffer loads from.
BUFFER_KINDS = {
    "input": "ternary",
    "index": "index",
    "codebook": "sign",
    "weight": "sign",
    "params": "float32",
    "output": "float32",
}


@dataclass(frozen=True)
class Region:
    """One DRAM region.

    Attributes
    ----------
    name : str
    kind : str
        One of :data:`REGION_KINDS`.
    size : int
        Elements.
    bits : int
        Bits per element in DRAM.
    """

    name: str
    kind: str
    size: int
    bits: int

    @property
    def dtype(self):
        """The NumPy dtype the simulator holds the region in."""
        return REGION_KINDS[self.kind][0]

    @property
    def nbytes(self) -> int:
        """Bytes of the region in DRAM."""
        return -(-self.size * self.bits // 8)


@dataclass(frozen=True)
class Program:
    """Regions, instructions and what the compiler decided.

    Attributes
    ----------
    spec : AcceleratorSpec
        The accelerator it was compiled for.
    regions : tuple of Region
        Region ``i`` is the one LOAD and STORE call ``region=i``.
    instructions : tuple of Instruction
    info : dict
        The compiler's report: layer, tiling, buffer use, instruction counts.
    """

    spec: AcceleratorSpec = field(repr=False)
    regions: tuple
    instructions: tuple = field(repr=False)
    info: dict = field(default_factory=dict)

    def region(self, name: str) -> tuple[int, Region]:
        """``(id, region)`` of the region called ``name``."""
        for number, region in enumerate(self.regions):
            if region.name == name:
                return number, region
        raise StreamError(
            f"the program has no DRAM region {name!r}; it has {[r.name for r in self.regions]}"
        )

    def empty_dram(self) -> dict:
        """Zeroed arrays for every region, by name."""
        return {region.name: np.zeros(region.size, dtype=region.dtype) for region in self.regions}

    def stream(self) -> bytes:
        """The encoded instruction stream (:func:`hw_targets.isa.encode_stream`)."""
        return encode_stream(self.instructions)

    def with_instructions(self, instructions) -> Program:
        """The same program with another instruction list (for tests and tools)."""
        return Program(self.spec, self.regions, tuple(instructions), dict(self.info))


def opcode_counts(instructions) -> dict:
    """How many instructions of each opcode a stream holds."""
    counts: dict = {}
    for instruction in instructions:
        counts[instruction.opcode] = counts.get(instruction.opcode, 0) + 1
    return counts


def as_instructions(items) -> tuple:
    """Check that ``items`` are instructions and return them as a tuple."""
    result = tuple(items)
    for number, item in enumerate(result):
        if not isinstance(item, Instruction):
            raise StreamError(f"instruction {number} is {type(item).__name__}, not an instruction")
    return result
