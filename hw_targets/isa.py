"""The accelerator's ISA: six instructions in three queues, with VTA's dependency tokens.

``docs/FPGA.md`` ("ISA") is the one document of encoding, semantics and hazards;
this module is its code. Every instruction is one 256-bit word (32 bytes,
little-endian): an 8-bit header (a 4-bit opcode and the four token flags)
and the opcode's fields, packed from bit 8 up in the order of
:data:`FIELDS`; the bits above the last field are zero.

The modules and their queues:

- ``load``: LOAD into the input, index, codebook, weight and params buffers;
- ``compute``: PRECOMPUTE, GATHER, XNOR, ALU, and LOAD into the output buffer
  (a residual, read by ALU, as VTA loads its accumulators on the compute module);
- ``store``: STORE from the output buffer.

Tokens flow between neighbours only (load <-> compute <-> store).
``pop_prev``/``push_prev`` talk to the module before, ``pop_next``/``push_next``
to the module after; a load has no ``prev``, a store no ``next``.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import asdict, dataclass

from tvm_snn.errors import InstructionError

__all__ = [
    "MODULES",
    "OPCODES",
    "BUFFER_IDS",
    "FIELDS",
    "Instruction",
    "Load",
    "Store",
    "Precompute",
    "Gather",
    "Xnor",
    "Alu",
    "module_of",
    "POP_QUEUES",
    "PUSH_QUEUES",
    "pops",
    "pushes",
    "module_queues",
    "encode",
    "decode",
    "encode_stream",
    "decode_stream",
    "field_names",
    "instruction_bits",
]

MODULES = ("load", "compute", "store")  # the three queues, in pipeline order
INSTRUCTION_BYTES = 32
STREAM_MAGIC = b"SNNFPGA1"
_HEADER = struct.Struct("<8sI")
OPCODES = {"LOAD": 0, "STORE": 1, "PRECOMPUTE": 2, "GATHER": 3, "XNOR": 4, "ALU": 5}
BUFFER_IDS = {"input": 0, "index": 1, "codebook": 2, "weight": 3, "params": 4, "output": 5}
KERNELS = {0: (3, 3), 1: (1, 1)}
TOKEN_FLAGS = ("pop_prev", "pop_next", "push_prev", "push_next")
_OPCODE_BITS = 4

_DMA = (
    ("buffer", 4), ("region", 4), ("elem_bits", 6), ("sram_base", 24), ("dram_base", 32),
    ("z_size", 12), ("y_size", 12), ("x_size", 12),
    ("z_stride", 32), ("y_stride", 20),
    ("y_pad0", 4), ("y_pad1", 4), ("x_pad0", 4), ("x_pad1", 4),
)  # fmt: skip
_WINDOW = (
    ("in_base", 24), ("units", 12), ("in_rows", 10), ("in_cols", 10),
    ("out_rows", 10), ("out_cols", 10), ("stride_h", 3), ("stride_w", 3), ("kernel", 1),
)  # fmt: skip
FIELDS = {
    "LOAD": _DMA,
    "STORE": _DMA,
    "PRECOMPUTE": (*_WINDOW, ("codebook_base", 16), ("codewords", 9), ("response_base", 24)),
    "GATHER": (
        ("response_base", 24),
        ("units", 12),
        ("codewords", 9),
        ("pixels", 16),
        ("index_base", 24),
        ("index_stride", 12),
        ("channels", 12),
        ("acc_base", 24),
        ("reset", 1),
    ),  # fmt: skip
    "XNOR": (*_WINDOW, ("weight_base", 24), ("channels", 12), ("acc_base", 24), ("reset", 1)),
    "ALU": (
        ("acc_base", 24),
        ("channels", 12),
        ("pixels", 16),
        ("params_base", 16),
        ("out_base", 24),
        ("residual", 1),
        ("relu", 1),
        ("sign", 1),
    ),  # fmt: skip
}


@dataclass(frozen=True)
class Instruction:
    """Common part of every instruction: the four dependency-token flags."""

    pop_prev: bool = False
    pop_next: bool = False
    push_prev: bool = False
    push_next: bool = False

    opcode = ""

    def fields(self) -> dict:
        """The opcode's fields (not the token flags), by name."""
        values = asdict(self)
        return {name: values[name] for name, _ in FIELDS[self.opcode]}

    def tokens(self) -> dict:
        """The four token flags, by name."""
        return {name: getattr(self, name) for name in TOKEN_FLAGS}


def _instruction(opcode: str):
    """A frozen dataclass with ``opcode``'s fields (all ints, default 0) after the token flags."""

    def wrap(cls):
        cls.opcode = opcode
        cls.__annotations__ = {name: int for name, _ in FIELDS[opcode]}
        for name, _ in FIELDS[opcode]:
            setattr(cls, name, 0)
        return dataclass(frozen=True)(cls)

    return wrap


@_instruction("LOAD")
class Load(Instruction):
    """DMA a 3-D block from a DRAM region into a buffer, with zero padding around y and x."""


@_instruction("STORE")
class Store(Instruction):
    """DMA a 3-D block from the output buffer into a DRAM region (no padding)."""


@_instruction("PRECOMPUTE")
class Precompute(Instruction):
    """The responses of an input-channel tile to every codeword, at every output pixel."""


@_instruction("GATHER")
class Gather(Instruction):
    """Accumulate, per output channel and pixel, the responses its indices pick."""


@_instruction("XNOR")
class Xnor(Instruction):
    """The BNN conv: ternary input against +-1 weights, accumulated (XNOR-popcount)."""


@_instruction("ALU")
class Alu(Instruction):
    """Per-channel scale and bias, then optionally the residual, ReLU and the sign, into the output buffer."""


INSTRUCTION_CLASSES = {cls.opcode: cls for cls in (Load, Store, Precompute, Gather, Xnor, Alu)}


def module_of(instruction: Instruction) -> str:
    """The module whose queue runs ``instruction``: ``"load"``, ``"compute"`` or ``"store"``."""
    if instruction.opcode == "STORE":
        return "store"
    if instruction.opcode == "LOAD" and instruction.buffer != BUFFER_IDS["output"]:
        return "load"
    return "compute"


# The token queue, (sender, receiver), behind each flag a module's instruction may set.
POP_QUEUES = {
    ("compute", "pop_prev"): ("load", "compute"),
    ("load", "pop_next"): ("compute", "load"),
    ("store", "pop_prev"): ("compute", "store"),
    ("compute", "pop_next"): ("store", "compute"),
}
PUSH_QUEUES = {
    ("load", "push_next"): ("load", "compute"),
    ("compute", "push_prev"): ("compute", "load"),
    ("compute", "push_next"): ("compute", "store"),
    ("store", "push_prev"): ("store", "compute"),
}


def _queues(instruction: Instruction, table: dict, kind: str) -> list:
    module = module_of(instruction)
    queues = []
    for flag in (f"{kind}_prev", f"{kind}_next"):
        if getattr(instruction, flag):
            if (module, flag) not in table:
                raise InstructionError(f"a {module}-module {instruction.opcode} cannot set {flag}")
            queues.append(table[(module, flag)])
    return queues


def pops(instruction: Instruction) -> list:
    """The token queues ``instruction`` pops before it runs, as ``(sender, receiver)``."""
    return _queues(instruction, POP_QUEUES, "pop")


def pushes(instruction: Instruction) -> list:
    """The token queues ``instruction`` pushes after it ends, as ``(sender, receiver)``."""
    return _queues(instruction, PUSH_QUEUES, "push")


def module_queues(instructions) -> dict:
    """Each module's instructions in stream order, as ``(number, instruction)``."""
    queues = {module: deque() for module in MODULES}
    for number, instruction in enumerate(instructions):
        queues[module_of(instruction)].append((number, instruction))
    return queues


def _check(instruction: Instruction, where: str) -> None:
    """Field widths, buffer ids and the token flags legal for the instruction's module."""
    for name, bits in FIELDS[instruction.opcode]:
        value = getattr(instruction, name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
            raise InstructionError(
                f"{where}: {instruction.opcode}.{name} must be an int in [0, {1 << bits}), got {value!r}"
            )
    for name in TOKEN_FLAGS:
        if not isinstance(getattr(instruction, name), bool):
            raise InstructionError(f"{where}: {instruction.opcode}.{name} must be a bool")
    if instruction.opcode in ("LOAD", "STORE"):
        if instruction.buffer not in BUFFER_IDS.values():
            raise InstructionError(
                f"{where}: {instruction.opcode} names buffer id {instruction.buffer}, which does not exist"
            )
        if instruction.opcode == "STORE" and instruction.buffer != BUFFER_IDS["output"]:
            raise InstructionError(
                f"{where}: STORE reads only the output buffer, not buffer id {instruction.buffer}"
            )
        pads = (instruction.y_pad0, instruction.y_pad1, instruction.x_pad0, instruction.x_pad1)
        if instruction.opcode == "STORE" and any(pads):
            raise InstructionError(f"{where}: STORE takes no padding")
    if instruction.opcode in ("PRECOMPUTE", "XNOR") and instruction.kernel not in KERNELS:
        raise InstructionError(
            f"{where}: kernel code {instruction.kernel} is not 0 (3x3) or 1 (1x1)"
        )
    module = module_of(instruction)
    if module == "load" and (instruction.pop_prev or instruction.push_prev):
        raise InstructionError(
            f"{where}: a load-module {instruction.opcode} has no previous module to exchange tokens with"
        )
    if module == "store" and (instruction.pop_next or instruction.push_next):
        raise InstructionError(f"{where}: STORE has no next module to exchange tokens with")


def encode(instruction: Instruction, where: str = "instruction") -> bytes:
    """The 32-byte word of ``instruction``.

    Raises
    ------
    InstructionError
        A field out of its width, an unknown buffer or an illegal token flag.
    """
    if not isinstance(instruction, Instruction) or instruction.opcode not in OPCODES:
        raise InstructionError(f"{where}: not an instruction: {instruction!r}")
    _check(instruction, where)
    word = OPCODES[instruction.opcode]
    for position, name in enumerate(TOKEN_FLAGS):
        word |= int(getattr(instruction, name)) << (_OPCODE_BITS + position)
    shift = _OPCODE_BITS + len(TOKEN_FLAGS)
    for name, bits in FIELDS[instruction.opcode]:
        word |= getattr(instruction, name) << shift
        shift += bits
    return word.to_bytes(INSTRUCTION_BYTES, "little")


def decode(data: bytes, where: str = "instruction") -> Instruction:
    """Inverse of :func:`encode`.

    Raises
    ------
    InstructionError
        A word that is not 32 bytes, an unknown opcode, nonzero bits above the
        last field, or any check of :func:`encode` failing.
    """
    if len(data) != INSTRUCTION_BYTES:
        raise InstructionError(
            f"{where}: an instruction is {INSTRUCTION_BYTES} bytes, got {len(data)}"
        )
    word = int.from_bytes(data, "little")
    code = word & ((1 << _OPCODE_BITS) - 1)
    names = {value: name for name, value in OPCODES.items()}
    if code not in names:
        raise InstructionError(f"{where}: unknown opcode {code}")
    opcode = names[code]
    tokens = {name: bool(word >> (_OPCODE_BITS + i) & 1) for i, name in enumerate(TOKEN_FLAGS)}
    shift = _OPCODE_BITS + len(TOKEN_FLAGS)
    values = {}
    for name, bits in FIELDS[opcode]:
        values[name] = word >> shift & ((1 << bits) - 1)
        shift += bits
    if word >> shift:
        raise InstructionError(f"{where}: {opcode} has nonzero bits above bit {shift}")
    instruction = INSTRUCTION_CLASSES[opcode](**tokens, **values)
    _check(instruction, where)
    return instruction


def encode_stream(instructions) -> bytes:
    """A stream: the magic ``SNNFPGA1``, the count (uint32) and the 32-byte words."""
    words = [encode(inst, f"instruction {i}") for i, inst in enumerate(instructions)]
    return _HEADER.pack(STREAM_MAGIC, len(words)) + b"".join(words)


def decode_stream(data: bytes) -> list[Instruction]:
    """Inverse of :func:`encode_stream`.

    Raises
    ------
    InstructionError
        A missing magic, a length that does not match the count (a truncated
        or padded stream), or an instruction that does not decode (named by
        its position).
    """
    if len(data) < _HEADER.size or data[: len(STREAM_MAGIC)] != STREAM_MAGIC:
        raise InstructionError(
            "not an snn-fpga instruction stream: the magic 'SNNFPGA1' is missing"
        )
    _, count = _HEADER.unpack_from(data)
    body = data[_HEADER.size :]
    if len(body) != count * INSTRUCTION_BYTES:
        raise InstructionError(
            f"the stream declares {count} instructions ({count * INSTRUCTION_BYTES} bytes) "
            f"but holds {len(body)} bytes: it is truncated or padded"
        )
    return [
        decode(body[i * INSTRUCTION_BYTES : (i + 1) * INSTRUCTION_BYTES], f"instruction {i}")
        for i in range(count)
    ]


def field_names(opcode: str) -> tuple[str, ...]:
    """The field names of ``opcode``, in encoding order."""
    return tuple(name for name, _ in FIELDS[opcode])


def instruction_bits(opcode: str) -> int:
    """Bits ``opcode`` uses of its 256 (header included)."""
    return _OPCODE_BITS + len(TOKEN_FLAGS) + sum(bits for _, bits in FIELDS[opcode])
