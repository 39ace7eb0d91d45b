"""The cycle model: how long a program takes on its accelerator, module by module.

``docs/FPGA.md`` ("The cycle model") states the assumptions; in short:

- A PE is a pool of ``pe_adders`` small adders, and an operation costs its
  additions. Per PE and cycle, a mode runs ``pe_adders // adds`` operations:
  - XNOR: one kernel dot, ``unit_size`` adds (the popcount tree's
    ``unit_size - 1`` and the accumulate);
  - PRECOMPUTE: one codeword's response, ``unit_size - 1`` adds (the tree;
    a response is stored, not accumulated);
  - GATHER: one response added into an accumulator, 1 add.
- The ALU finishes ``alu_lanes`` outputs per cycle.
- A LOAD or STORE takes ``dram_latency_cycles`` plus its DRAM bytes (in the
  region's DRAM format) over ``dram_bytes_per_cycle``.
- Each module runs its queue in order; an instruction starts when its module
  is free and the tokens it pops have been pushed, and pushes when it ends.
  So loads overlap compute and stores as far as the tokens allow.
- The modules' DRAM traffic shares one port: the total is at least the
  traffic over the port's bandwidth.

:func:`cycles` gives the per-module busy cycles, the makespan and every
instruction's start and end.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from hw_targets.isa import KERNELS, MODULES, PUSH_QUEUES, module_queues, pops, pushes
from hw_targets.layer import UNIT_CHANNELS
from hw_targets.program import Program, as_instructions
from hw_targets.spec import AcceleratorSpec, load_spec
from tvm_snn.errors import StreamError

__all__ = ["CycleReport", "cycles", "instruction_cycles", "operations_per_cycle"]

COMPUTE_OPCODES = ("PRECOMPUTE", "GATHER", "XNOR")


@dataclass
class CycleReport:
    """The modelled run of one program.

    Attributes
    ----------
    total : int
        Cycles from the first instruction's start to the last one's end,
        at least the DRAM traffic over the port's bandwidth.
    busy : dict
        Busy cycles per module.
    by_opcode : dict
        Cycles per opcode (each instruction's own duration).
    dram_bytes : int
        Bytes all LOADs and STOREs move.
    timeline : list of tuple
        ``(number, module, opcode, start, end)`` per instruction.
    clock_mhz : float
    """

    total: int = 0
    busy: dict = field(default_factory=lambda: dict.fromkeys(MODULES, 0))
    by_opcode: dict = field(default_factory=dict)
    dram_bytes: int = 0
    timeline: list = field(default_factory=list, repr=False)
    clock_mhz: float = 1.0

    @property
    def seconds(self) -> float:
        """``total`` at the spec's clock."""
        return self.total / (self.clock_mhz * 1e6)

    @property
    def array_cycles(self) -> int:
        """Cycles the PE array computes (PRECOMPUTE, GATHER, XNOR): the run without memory, ALU or fill."""
        return sum(self.by_opcode.get(op, 0) for op in COMPUTE_OPCODES)

    @property
    def pe_utilization(self) -> float:
        """Share of the run in which the PE array computes."""
        return self.array_cycles / self.total if self.total else 0.0


def operations_per_cycle(spec: AcceleratorSpec, opcode: str, unit_size: int) -> int:
    """Operations of ``opcode`` the whole PE array finishes per cycle (see the module docstring)."""
    adds = {"XNOR": unit_size, "PRECOMPUTE": unit_size - 1, "GATHER": 1}[opcode]
    return spec.pe_count * (spec.pe_adders // adds)


def _unit_size(inst) -> int:
    kernel = KERNELS[inst.kernel]
    return kernel[0] * kernel[1] * UNIT_CHANNELS[kernel]


def instruction_cycles(spec: AcceleratorSpec, program: Program, inst) -> tuple[int, int]:
    """``(cycles, dram_bytes)`` of one instruction."""
    if inst.opcode in ("LOAD", "STORE"):
        if inst.region >= len(program.regions):
            raise StreamError(
                f"{inst.opcode} names DRAM region {inst.region}, which the program does not have"
            )
        elements = inst.z_size * inst.y_size * inst.x_size
        moved = -(-elements * program.regions[inst.region].bits // 8)
        return spec.dram_latency_cycles + -(-moved // spec.dram_bytes_per_cycle), moved
    if inst.opcode == "ALU":
        return -(-inst.channels * inst.pixels // spec.alu_lanes), 0
    if inst.opcode == "GATHER":
        ops = inst.channels * inst.units * inst.pixels
        return -(-ops // operations_per_cycle(spec, "GATHER", 1)), 0
    pixels = inst.out_rows * inst.out_cols
    unit = _unit_size(inst)
    ops = inst.units * pixels * (inst.codewords if inst.opcode == "PRECOMPUTE" else inst.channels)
    return -(-ops // operations_per_cycle(spec, inst.opcode, unit)), 0


def cycles(program: Program, spec=None) -> CycleReport:
    """Model ``program``'s run (see the module docstring).

    Raises
    ------
    StreamError
        The stream deadlocks on its tokens.
    """
    spec = load_spec(spec) if spec is not None else program.spec
    report = CycleReport(clock_mhz=spec.clock_mhz)
    queues = module_queues(as_instructions(program.instructions))
    tokens = {name: deque() for name in PUSH_QUEUES.values()}
    free = dict.fromkeys(MODULES, 0)
    while any(queues.values()):
        progressed = False
        for module in MODULES:
            while queues[module]:
                number, inst = queues[module][0]
                waits = pops(inst)
                if any(not tokens[name] for name in waits):
                    break
                queues[module].popleft()
                start = max([free[module], *(tokens[name].popleft() for name in waits)])
                duration, moved = instruction_cycles(spec, program, inst)
                end = start + duration
                free[module] = end
                for name in pushes(inst):
                    tokens[name].append(end)
                report.busy[module] += duration
                report.by_opcode[inst.opcode] = report.by_opcode.get(inst.opcode, 0) + duration
                report.dram_bytes += moved
                report.timeline.append((number, module, inst.opcode, start, end))
                progressed = True
        if not progressed:
            raise StreamError("the stream deadlocks: every module waits for a token")
    makespan = max((end for *_, end in report.timeline), default=0)
    report.total = max(makespan, -(-report.dram_bytes // spec.dram_bytes_per_cycle))
    return report
