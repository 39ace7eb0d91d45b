"""Devices that run accelerator programs, behind one interface: ``run(program, dram) -> stats``.

- :class:`SimulatorDevice`: the functional simulator (:mod:`hw_targets.sim`),
  on any machine;
- :class:`~hw_targets.driver.pynq.PynqDevice`: a Pynq board's FPGA, through
  PYNQ's overlay and buffer allocation (``hw_targets/driver/pynq.py``).

:func:`default_device` picks the board when one is configured, and the
simulator otherwise.
"""

from __future__ import annotations

from hw_targets.sim import simulate

__all__ = ["SimulatorDevice", "default_device"]


class SimulatorDevice:
    """Runs programs on the functional simulator; counts what it ran."""

    name = "simulator"

    def __init__(self):
        self.runs = 0
        self.last_stats = None

    def run(self, program, dram):
        """Run ``program`` on ``dram`` (changed in place); return the simulator's stats."""
        self.last_stats = simulate(program, dram)
        self.runs += 1
        return self.last_stats


def default_device(bitstream=None):
    """A :class:`PynqDevice` when ``bitstream`` is given and PYNQ is importable, else a :class:`SimulatorDevice`."""
    if bitstream is None:
        return SimulatorDevice()
    from hw_targets.driver.pynq import PynqDevice

    return PynqDevice(bitstream)
