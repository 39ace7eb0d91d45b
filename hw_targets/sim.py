"""The functional simulator: runs a program bit-exactly, and refuses a stream that breaks its own rules.

Each module (load, compute, store) runs its queue in order. An instruction
first pops the tokens it asks for (it waits while the queue is empty), then
runs, then pushes. When no module can go on and some instructions are left,
the stream deadlocks: :class:`~tvm_snn.errors.StreamError` names each
module's waiting instruction.

Tokens are the only order between modules, so the simulator checks that they
are enough: every module keeps a vector clock, a token carries its sender's,
and every access to a buffer two modules share (input, index, codebook,
weight, params, output) is checked against the earlier conflicting accesses
of the other modules. One that the tokens do not order before it is a data
race, refused with the two instructions named. So a stream that passes here
gives the same result in any timing the tokens allow, which the cycle model
(:mod:`hw_targets.cycles`) picks.

Also refused: an access outside a buffer or a DRAM region, an index beyond
the codebook, a window beyond its input tile, an accumulator that overflows
the spec's width, and tokens left over at the end.

Arithmetic is :mod:`schedules.reference`'s: exact integer responses and
accumulators; the ALU multiplies and adds in binary64 and rounds to float32,
then adds the residual in float32, takes ReLU and ``sign`` (0 at 0).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from hw_targets.compiler import buffer_elements
from hw_targets.isa import (
    BUFFER_IDS,
    KERNELS,
    MODULES,
    PUSH_QUEUES,
    module_queues,
    pops,
    pushes,
)
from hw_targets.layer import UNIT_CHANNELS
from hw_targets.program import BUFFER_KINDS, Program, as_instructions
from hw_targets.spec import AcceleratorSpec, load_spec
from tvm_snn.errors import StreamError

__all__ = ["MODULES", "SimStats", "simulate"]

OBSERVED = ("PRECOMPUTE", "GATHER", "XNOR")  # what an observer sees: the PE array's instructions
SHARED_BUFFERS = ("input", "index", "codebook", "weight", "params", "output")
_BUFFER_DTYPES = {
    "input": np.int8,
    "index": np.int32,
    "codebook": np.int8,
    "weight": np.int8,
    "params": np.float32,
    "output": np.float32,
    "response": np.int32,
    "accumulator": np.int64,
}
_BUFFER_NAMES = {number: name for name, number in BUFFER_IDS.items()}


@dataclass
class SimStats:
    """What a run did.

    Attributes
    ----------
    executed : dict
        Instructions run per module.
    operations : dict
        Per opcode: responses (PRECOMPUTE), gathers (GATHER), kernel dots
        (XNOR), outputs (ALU), elements moved (LOAD, STORE).
    """

    executed: dict = field(default_factory=lambda: dict.fromkeys(MODULES, 0))
    operations: dict = field(default_factory=dict)

    def add(self, opcode: str, count: int) -> None:
        self.operations[opcode] = self.operations.get(opcode, 0) + int(count)


@dataclass(frozen=True)
class _Access:
    module: str
    clock: int
    start: int
    end: int
    write: bool
    number: int
    opcode: str


class _Machine:
    def __init__(self, spec: AcceleratorSpec, program: Program, dram: dict, observer=None):
        self.spec, self.program, self.dram = spec, program, dram
        self.observer = observer
        self.capacity = buffer_elements(spec)
        self.buffers = {
            name: np.zeros(self.capacity[name], dtype=dtype)
            for name, dtype in _BUFFER_DTYPES.items()
        }
        self.clocks = {module: dict.fromkeys(MODULES, 0) for module in MODULES}
        self.tokens = {pair: deque() for pair in PUSH_QUEUES.values()}
        self.accesses = {name: [] for name in SHARED_BUFFERS}
        self.stats = SimStats()
        self.acc_limit = 1 << (spec.accumulator_bits - 1)
        self.number = -1
        self.opcode = ""

    # ---- checks ------------------------------------------------------------

    def fail(self, message: str):
        raise StreamError(f"instruction {self.number} ({self.opcode}): {message}")

    def _span(self, buffer: str, start: int, size: int) -> slice:
        if size < 0 or start + size > self.capacity[buffer]:
            self.fail(
                f"elements [{start}, {start + size}) overflow the {buffer} buffer of {self.capacity[buffer]} elements"
            )
        return slice(start, start + size)

    def touch(self, module: str, buffer: str, start: int, size: int, write: bool) -> slice:
        """Bounds-check an access and, for a shared buffer, check it for a race."""
        span = self._span(buffer, start, size)
        if buffer not in SHARED_BUFFERS or size == 0:
            return span
        clock = self.clocks[module]
        end = start + size
        kept = []
        for old in self.accesses[buffer]:
            ordered = old.clock <= clock[old.module]
            if (
                old.module != module
                and not ordered
                and (old.write or write)
                and old.start < end
                and start < old.end
            ):
                verb = "writes" if write else "reads"
                other = "writes" if old.write else "reads"
                self.fail(
                    f"{verb} {buffer}[{start}, {end}) that instruction {old.number} ({old.opcode}, {old.module}) "
                    f"{other} with no dependency token between them"
                )
            known = all(old.clock <= self.clocks[m][old.module] for m in MODULES)
            if not known:
                kept.append(old)
        kept.append(_Access(module, clock[module], start, end, write, self.number, self.opcode))
        self.accesses[buffer] = kept
        return span

    def region(self, number: int, buffer: str):
        if number >= len(self.program.regions):
            self.fail(
                f"DRAM region {number} does not exist (the program has {len(self.program.regions)})"
            )
        region = self.program.regions[number]
        if region.kind != BUFFER_KINDS[buffer] and not (
            buffer == "output" and region.kind == "ternary"
        ):
            self.fail(
                f"the {buffer} buffer moves {BUFFER_KINDS[buffer]} data, but region '{region.name}' holds {region.kind}"
            )
        return region, self.dram[region.name]

    def check_width(self, inst, region) -> None:
        if inst.elem_bits != region.bits:
            self.fail(
                f"moves elements of {inst.elem_bits} bits, but region '{region.name}' holds {region.bits}-bit elements"
            )

    # ---- DMA -----------------------------------------------------------------

    def _dram_index(self, inst, region) -> np.ndarray:
        z = np.arange(inst.z_size)[:, None, None] * inst.z_stride
        y = np.arange(inst.y_size)[None, :, None] * inst.y_stride
        x = np.arange(inst.x_size)[None, None, :]
        index = inst.dram_base + z + y + x
        if index.size and (index.max() >= region.size):
            self.fail(
                f"reads or writes element {int(index.max())} of DRAM region '{region.name}' of {region.size}"
            )
        return index

    def load(self, module: str, inst) -> None:
        buffer = _BUFFER_NAMES[inst.buffer]
        region, data = self.region(inst.region, buffer)
        self.check_width(inst, region)
        rows = inst.y_size + inst.y_pad0 + inst.y_pad1
        cols = inst.x_size + inst.x_pad0 + inst.x_pad1
        block = np.zeros((inst.z_size, rows, cols), dtype=self.buffers[buffer].dtype)
        values = data[self._dram_index(inst, region)]
        block[
            :, inst.y_pad0 : inst.y_pad0 + inst.y_size, inst.x_pad0 : inst.x_pad0 + inst.x_size
        ] = values
        span = self.touch(module, buffer, inst.sram_base, block.size, write=True)
        self.buffers[buffer][span] = block.reshape(-1)
        self.stats.add("LOAD", values.size)

    def store(self, module: str, inst) -> None:
        region, data = self.region(inst.region, "output")
        self.check_width(inst, region)
        size = inst.z_size * inst.y_size * inst.x_size
        span = self.touch(module, "output", inst.sram_base, size, write=False)
        values = self.buffers["output"][span]
        if region.kind == "ternary":
            if not np.isin(values, (-1.0, 0.0, 1.0)).all():
                self.fail(
                    f"stores values other than -1, 0, 1 into the ternary region '{region.name}'"
                )
            values = values.astype(np.int8)
        data[self._dram_index(inst, region).reshape(-1)] = values
        self.stats.add("STORE", size)

    # ---- compute -------------------------------------------------------------

    def patches(self, inst) -> np.ndarray:
        """``[units, unit_size, pixels]`` of the input tile seen through the kernel."""
        kh, kw = KERNELS[inst.kernel]
        channels = inst.units * UNIT_CHANNELS[(kh, kw)]
        span = self.touch(
            "compute", "input", inst.in_base, channels * inst.in_rows * inst.in_cols, write=False
        )
        tile = self.buffers["input"][span].reshape(channels, inst.in_rows, inst.in_cols)
        sh, sw = max(inst.stride_h, 1), max(inst.stride_w, 1)
        if inst.stride_h == 0 or inst.stride_w == 0:
            self.fail("a stride of 0")
        if (inst.out_rows - 1) * sh + kh > inst.in_rows or (
            inst.out_cols - 1
        ) * sw + kw > inst.in_cols:
            self.fail(
                f"a {inst.out_rows}x{inst.out_cols} output needs more than the {inst.in_rows}x{inst.in_cols} input tile"
            )
        taps = [
            tile[
                :,
                i : i + sh * (inst.out_rows - 1) + 1 : sh,
                j : j + sw * (inst.out_cols - 1) + 1 : sw,
            ]
            for i in range(kh)
            for j in range(kw)
        ]
        stacked = np.stack(taps, axis=1).astype(np.int32)  # [channels, taps, rows, cols]
        return stacked.reshape(inst.units, -1, inst.out_rows * inst.out_cols)

    def precompute(self, inst) -> None:
        patches = self.patches(inst)
        unit = patches.shape[1]
        span = self.touch(
            "compute", "codebook", inst.codebook_base, inst.codewords * unit, write=False
        )
        codebook = self.buffers["codebook"][span].reshape(inst.codewords, unit).astype(np.int32)
        responses = np.einsum("ukp,jk->ujp", patches, codebook)
        out = self._span("response", inst.response_base, responses.size)
        self.buffers["response"][out] = responses.reshape(-1)
        self.stats.add("PRECOMPUTE", inst.units * inst.codewords * patches.shape[2])

    def accumulate(self, inst, total: np.ndarray) -> None:
        span = self._span("accumulator", inst.acc_base, total.size)
        acc = self.buffers["accumulator"]
        new = total.reshape(-1) if inst.reset else acc[span] + total.reshape(-1)
        if new.size and np.abs(new).max() >= self.acc_limit:
            self.fail(f"an accumulator overflows {self.spec.accumulator_bits} bits")
        acc[span] = new

    def gather(self, inst) -> None:
        size = inst.units * inst.codewords * inst.pixels
        responses = self.buffers["response"][self._span("response", inst.response_base, size)]
        responses = responses.reshape(inst.units, inst.codewords, inst.pixels)
        if inst.index_stride < inst.units:
            self.fail(f"index_stride {inst.index_stride} is below the {inst.units} units")
        rows = (inst.channels - 1) * inst.index_stride + inst.units if inst.channels else 0
        span = self.touch("compute", "index", inst.index_base, rows, write=False)
        flat = self.buffers["index"][span]
        picks = np.stack(
            [
                flat[o * inst.index_stride : o * inst.index_stride + inst.units]
                for o in range(inst.channels)
            ]
        )
        if picks.size and (picks.max() >= inst.codewords or picks.min() < 0):
            self.fail(f"an index reaches {int(picks.max())}, beyond the {inst.codewords} codewords")
        total = responses[np.arange(inst.units)[None, :], picks].sum(axis=1)  # [channels, pixels]
        self.accumulate(inst, total)
        self.stats.add("GATHER", inst.channels * inst.units * inst.pixels)

    def xnor(self, inst) -> None:
        patches = self.patches(inst)
        unit = patches.shape[1]
        span = self.touch(
            "compute", "weight", inst.weight_base, inst.channels * inst.units * unit, write=False
        )
        weights = (
            self.buffers["weight"][span].reshape(inst.channels, inst.units, unit).astype(np.int32)
        )
        total = np.einsum("ukp,ouk->op", patches, weights)
        self.accumulate(inst, total)
        self.stats.add("XNOR", inst.channels * inst.units * patches.shape[2])

    def alu(self, inst) -> None:
        size = inst.channels * inst.pixels
        acc = self.buffers["accumulator"][self._span("accumulator", inst.acc_base, size)]
        params = self.buffers["params"][
            self.touch("compute", "params", inst.params_base, 2 * inst.channels, write=False)
        ]
        alpha = params[0::2].astype(np.float64)[:, None]
        bias = params[1::2].astype(np.float64)[:, None]
        y = (acc.reshape(inst.channels, inst.pixels).astype(np.float64) * alpha + bias).astype(
            np.float32
        )
        out = self.touch("compute", "output", inst.out_base, size, write=True)
        if inst.residual:
            y = y + self.buffers["output"][out].reshape(y.shape)
        if inst.relu:
            y = np.maximum(y, np.float32(0))
        if inst.sign:
            y = np.sign(y)
        self.buffers["output"][out] = y.reshape(-1)
        self.stats.add("ALU", size)

    # ---- the queues ------------------------------------------------------------

    def run_one(self, module: str, number: int, inst) -> None:
        self.number, self.opcode = number, inst.opcode
        clock = self.clocks[module]
        for queue in pops(inst):
            sender = self.tokens[queue].popleft()
            for other in MODULES:
                clock[other] = max(clock[other], sender[other])
        clock[module] += 1
        before = None
        if self.observer is not None and inst.opcode in OBSERVED:
            before = {name: array.copy() for name, array in self.buffers.items()}
        if inst.opcode == "LOAD":
            self.load(module, inst)
        elif inst.opcode == "STORE":
            self.store(module, inst)
        else:
            getattr(self, inst.opcode.lower())(inst)
        for queue in pushes(inst):
            self.tokens[queue].append(dict(clock))
        self.stats.executed[module] += 1
        if before is not None:
            self.observer(number, inst, before, self.buffers)

    def ready(self, inst) -> bool:
        return all(self.tokens[queue] for queue in pops(inst))


def simulate(program: Program, dram: dict, spec=None, observer=None) -> SimStats:
    """Run ``program`` on ``dram`` (its regions by name, changed in place).

    Parameters
    ----------
    program : Program
    dram : dict
        An array per region, as :meth:`Program.empty_dram` makes them.
    spec : optional
        The accelerator; by default the one the program was compiled for.
    observer : callable, optional
        ``observer(number, instruction, before, after)`` after each
        PRECOMPUTE, GATHER and XNOR, with copies of the buffers before it
        and the buffers after it (by name): for checking another model of
        the PE array instruction by instruction.

    Returns
    -------
    SimStats

    Raises
    ------
    StreamError
        A deadlock, a data race, an access out of bounds, an overflow, or
        tokens left at the end.
    """
    spec = load_spec(spec) if spec is not None else program.spec
    instructions = as_instructions(program.instructions)
    for region in program.regions:
        data = dram.get(region.name)
        if data is None or data.shape != (region.size,) or data.dtype != region.dtype:
            raise StreamError(
                f"DRAM region '{region.name}' must be {np.dtype(region.dtype).name} [{region.size}]"
            )
    machine = _Machine(spec, program, dram, observer)
    queues = module_queues(instructions)
    while any(queues.values()):
        progressed = False
        for module in MODULES:
            while queues[module] and machine.ready(queues[module][0][1]):
                number, inst = queues[module].popleft()
                machine.run_one(module, number, inst)
                progressed = True
        if not progressed:
            waiting = ", ".join(
                f"{module} at instruction {queues[module][0][0]} ({queues[module][0][1].opcode})"
                for module in MODULES
                if queues[module]
            )
            raise StreamError(f"the stream deadlocks: every module waits for a token ({waiting})")
    left = {f"{a}->{b}": len(q) for (a, b), q in machine.tokens.items() if q}
    if left:
        raise StreamError(f"the stream ends with unconsumed dependency tokens: {left}")
    return machine.stats
