"""The Pynq board's FPGA behind the device interface: PYNQ's overlay, buffers and the accelerator's registers.

The accelerator's AXI-Lite registers (``docs/FPGA.md``, "The board
interface"), in the style of VTA's fetch module:

==========  ======================================================
offset      register
==========  ======================================================
0x00        control: write 1 to start; bit 1 reads 1 when done
0x10        instruction stream: physical address (low 32 bits)
0x18        instruction count
0x20 + 8 i  DRAM region ``i``: physical address (low 32 bits)
==========  ======================================================

:class:`PynqDevice` writes each region's DRAM image (:mod:`.formats`) and
the stream into buffers from ``pynq.allocate``, sets the registers, starts
the accelerator, waits for it, and reads the regions back.

On hardware this needs the ``pynq`` package and a bitstream of the whole
accelerator; none is built in this repository (``hw_targets/hls`` holds the
PE array), so it has not run on a board. ``tests/fake_pynq.py`` models such a
board (PYNQ's buffers, these registers, the simulator behind them), and the
tests drive it through this class.
"""

from __future__ import annotations

import time

import numpy as np

from hw_targets.driver.formats import pack_region, unpack_region
from hw_targets.isa import INSTRUCTION_BYTES
from tvm_snn.errors import FpgaError

__all__ = ["PynqDevice", "REGISTERS"]

REGISTERS = {"control": 0x00, "stream": 0x10, "count": 0x18, "regions": 0x20}
_REGION_STRIDE = 8
_START = 1
_DONE = 1 << 1
_ADDRESS_MASK = (1 << 32) - 1
DEFAULT_IP = "snn_fpga_0"
ACCELERATOR_TIMEOUT_S = 10.0
_POLL_S = 1e-4


class PynqDevice:
    """Runs programs on the accelerator of a Pynq overlay.

    Parameters
    ----------
    bitstream : str
        The overlay's ``.bit`` (with its ``.hwh`` beside it).
    ip : str
        The accelerator's IP name in the overlay.
    timeout_s : float
        How long one program may run.

    Raises
    ------
    FpgaError
        Without the ``pynq`` package, or when the overlay has no such IP.
    """

    name = "pynq"

    def __init__(self, bitstream, ip=DEFAULT_IP, timeout_s=ACCELERATOR_TIMEOUT_S):
        try:
            import pynq
        except ImportError:
            raise FpgaError(
                "PynqDevice needs the pynq package (it ships with the Pynq image)"
            ) from None
        self._pynq = pynq
        self.overlay = pynq.Overlay(str(bitstream))
        if not hasattr(self.overlay, ip):
            raise FpgaError(f"the overlay {bitstream} has no IP named {ip!r}")
        self.ip = getattr(self.overlay, ip)
        self.timeout_s = timeout_s
        self.runs = 0

    def _buffer(self, data: bytes):
        buffer = self._pynq.allocate(shape=(max(len(data), 1),), dtype=np.uint8)
        buffer[: len(data)] = np.frombuffer(data, dtype=np.uint8)
        buffer.sync_to_device()
        return buffer

    def run(self, program, dram):
        """Run ``program`` on ``dram`` (read back in place); raise :class:`FpgaError` on a timeout."""
        stream = (
            program.stream()[-len(program.instructions) * INSTRUCTION_BYTES :]
            if program.instructions
            else b""
        )
        buffers = [
            self._buffer(pack_region(region, dram[region.name])) for region in program.regions
        ]
        words = self._buffer(stream)
        try:
            for number, buffer in enumerate(buffers):
                offset = REGISTERS["regions"] + _REGION_STRIDE * number
                self.ip.write(offset, buffer.physical_address & _ADDRESS_MASK)
            self.ip.write(REGISTERS["stream"], words.physical_address & _ADDRESS_MASK)
            self.ip.write(REGISTERS["count"], len(program.instructions))
            self.ip.write(REGISTERS["control"], _START)
            deadline = time.monotonic() + self.timeout_s
            while not self.ip.read(REGISTERS["control"]) & _DONE:
                if time.monotonic() > deadline:
                    raise FpgaError(f"the accelerator did not finish within {self.timeout_s} s")
                time.sleep(_POLL_S)
            for region, buffer in zip(program.regions, buffers, strict=True):
                buffer.sync_from_device()
                dram[region.name][...] = unpack_region(region, bytes(buffer[: region.nbytes]))
        finally:
            for buffer in (*buffers, words):
                buffer.freebuffer()
        self.runs += 1
        return {"device": self.name}
