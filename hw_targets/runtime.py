"""The runtime of an offloaded region: its convs in order, and the packed function the Relax VM calls.

A region (one ``Codegen = "snn_fpga"`` function, made by
``MergeCompositeFunctions``) holds one or more claimed convs, each with its
epilogue: a :class:`FpgaStep`. A step reads its input (and residual) from
the region's arguments or from an earlier step's output; the region returns
one step's output or a tuple of them. :class:`FpgaFunction` runs the steps on
a device (``run(program, dram)``, the simulator by default) and writes the
outputs into the VM's destination tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import tvm_ffi

from hw_targets.compiler import dram_image, read_output
from hw_targets.cycles import CycleReport, cycles
from hw_targets.driver import SimulatorDevice
from hw_targets.layer import FpgaConv
from hw_targets.program import Program
from tvm_snn.errors import FpgaError

__all__ = ["FpgaStep", "FpgaFunction", "Source"]


@dataclass(frozen=True)
class Source:
    """Where a step's tensor comes from: the region's argument ``index`` (``kind="param"``) or step ``index``'s output."""

    kind: str
    index: int

    def to_json(self) -> list:
        return [self.kind, self.index]

    @classmethod
    def from_json(cls, data) -> Source:
        kind, index = data
        if kind not in ("param", "step") or not isinstance(index, int) or index < 0:
            raise FpgaError(f"a step's source is ['param' or 'step', index], got {data!r}")
        return cls(kind, index)


class FpgaStep:
    """One claimed conv of a region: the layer, its program, its sources and its modelled cycles."""

    def __init__(
        self,
        layer: FpgaConv,
        program: Program,
        data: Source,
        residual: Source | None,
        key: str = "",
    ):
        self.layer = layer
        self.program = program
        self.data = data
        self.residual = residual
        self.key = key
        self.cycles: CycleReport = cycles(program)

    @property
    def kind(self) -> str:
        """``"subbit"`` (PRECOMPUTE + GATHER) or ``"bnn"`` (XNOR)."""
        return "subbit" if self.layer.subbit else "bnn"


class FpgaFunction:
    """An offloaded region: steps in order, the outputs, and the packed function named :attr:`symbol`.

    Parameters
    ----------
    symbol : str
    params : int
        The region's arguments (the VM passes them, then the outputs' tensors).
    steps : list of FpgaStep
    outputs : list of int
        The steps whose outputs the region returns, in order.
    """

    def __init__(self, symbol, params, steps, outputs):
        self.symbol = symbol
        self.params = params
        self.steps = list(steps)
        self.outputs = list(outputs)
        self.device = SimulatorDevice()
        self.calls = 0

    def __call__(self, *args):
        """The packed function: the region's inputs, then one destination tensor per output."""
        if len(args) != self.params + len(self.outputs):
            raise FpgaError(
                f"{self.symbol} takes {self.params} inputs and {len(self.outputs)} outputs, got {len(args)} tensors"
            )
        values = []
        for step in self.steps:
            x = self._value(step.data, args, values)
            residual = None if step.residual is None else self._value(step.residual, args, values)
            dram = dram_image(step.program, step.layer, x, residual)
            self.device.run(step.program, dram)
            values.append(read_output(dram, step.layer))
        for destination, step in zip(args[self.params :], self.outputs, strict=True):
            destination.copyfrom(values[step])
        self.calls += 1

    @staticmethod
    def _value(source: Source, args, values):
        return args[source.index].numpy() if source.kind == "param" else values[source.index]

    def register(self) -> None:
        """Register the packed function under :attr:`symbol` (replacing one of the same name)."""
        tvm_ffi.register_global_func(self.symbol, self.__call__, override=True)
