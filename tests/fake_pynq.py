"""A stand-in for the ``pynq`` package and a board whose accelerator is modelled by the simulator.

It gives :class:`hw_targets.driver.pynq.PynqDevice` what PYNQ gives it on a
board: ``allocate`` (buffers with physical addresses), ``Overlay`` (with the
accelerator's IP and its ``read``/``write`` registers). Written from the
register map in ``docs/FPGA.md``: on start, the model fetches the instruction
words from the stream's address, takes each region's element width and kind
from the instructions that move it, decodes the region buffers from their
DRAM bytes, runs the functional simulator, writes the bytes back and sets done.
"""

import numpy as np

from hw_targets.driver.formats import pack_region, unpack_region
from hw_targets.isa import BUFFER_IDS, INSTRUCTION_BYTES, decode
from hw_targets.program import Program, Region
from hw_targets.sim import simulate
from hw_targets.spec import load_spec

CONTROL, STREAM, COUNT, REGIONS, REGION_STRIDE = 0x00, 0x10, 0x18, 0x20, 8
START, DONE = 1, 2
_KIND_OF_BUFFER = {
    "input": "ternary",
    "index": "index",
    "codebook": "sign",
    "weight": "sign",
    "params": "float32",
}
_BUFFER_NAMES = {number: name for name, number in BUFFER_IDS.items()}
MEMORY = {}  # physical address -> buffer
_NEXT = [0x1000_0000]


class Buffer(np.ndarray):
    """A PYNQ buffer: an array with a physical address."""

    def sync_to_device(self):
        pass

    def sync_from_device(self):
        pass

    def freebuffer(self):
        MEMORY.pop(self.physical_address, None)


def allocate(shape, dtype):
    buffer = np.zeros(shape, dtype).view(Buffer)
    buffer.physical_address = _NEXT[0]
    _NEXT[0] += -(-buffer.nbytes // 4096) * 4096
    MEMORY[buffer.physical_address] = buffer
    return buffer


def _kind(buffer, bits):
    if buffer == "output":
        return "ternary" if bits == 2 else "float32"
    return _KIND_OF_BUFFER[buffer]


class Accelerator:
    """The accelerator's AXI-Lite registers, run by the functional simulator."""

    def __init__(self, spec):
        self.spec = load_spec(spec)
        self.registers = {}
        self.started = 0

    def read(self, offset):
        return self.registers.get(offset, 0)

    def write(self, offset, value):
        self.registers[offset] = value
        if offset == CONTROL and value & START:
            self.registers[CONTROL] = 0
            self._run()
            self.registers[CONTROL] = DONE

    def _run(self):
        words = MEMORY[self.registers[STREAM]]
        count = self.registers[COUNT]
        instructions = [
            decode(bytes(words[i * INSTRUCTION_BYTES : (i + 1) * INSTRUCTION_BYTES]))
            for i in range(count)
        ]
        widths = {}
        for inst in instructions:
            if inst.opcode in ("LOAD", "STORE"):
                widths[inst.region] = (
                    _kind(_BUFFER_NAMES[inst.buffer], inst.elem_bits),
                    inst.elem_bits,
                )
        regions, buffers = [], []
        for number in range(len(widths)):
            buffer = MEMORY[self.registers[REGIONS + REGION_STRIDE * number]]
            kind, bits = widths[number]
            regions.append(Region(f"r{number}", kind, buffer.nbytes * 8 // bits, bits))
            buffers.append(buffer)
        dram = {
            region.name: unpack_region(region, bytes(buffer))
            for region, buffer in zip(regions, buffers, strict=True)
        }
        simulate(Program(self.spec, tuple(regions), tuple(instructions)), dram)
        for region, buffer in zip(regions, buffers, strict=True):
            buffer[:] = np.frombuffer(pack_region(region, dram[region.name]), dtype=np.uint8)
        self.started += 1


class Overlay:
    """``pynq.Overlay``: the bitstream's IPs as attributes (here, one accelerator of the pynq-z1 spec)."""

    spec = "pynq-z1"

    def __init__(self, bitstream):
        self.bitstream = bitstream
        self.snn_fpga_0 = Accelerator(self.spec)
