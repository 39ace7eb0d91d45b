"""The ISA's encoding: round trips, the word layout by hand, and corrupt words and streams refused."""

import dataclasses

import numpy as np
import pytest

from hw_targets.isa import (
    FIELDS,
    INSTRUCTION_BYTES,
    INSTRUCTION_CLASSES,
    OPCODES,
    Alu,
    Load,
    Store,
    decode,
    decode_stream,
    encode,
    encode_stream,
    field_names,
    instruction_bits,
    module_of,
)
from tvm_snn.errors import InstructionError


def _random_instruction(rng, opcode):
    values = {name: int(rng.integers(0, 1 << min(bits, 62))) for name, bits in FIELDS[opcode]}
    if opcode in ("LOAD", "STORE"):
        values["buffer"] = 5 if opcode == "STORE" else int(rng.integers(0, 5))
    if opcode == "STORE":
        values.update(y_pad0=0, y_pad1=0, x_pad0=0, x_pad1=0)
    if "kernel" in values:
        values["kernel"] = int(rng.integers(0, 2))
    probe = INSTRUCTION_CLASSES[opcode](**values)
    module = module_of(probe)
    flags = {
        "pop_prev": module != "load" and bool(rng.integers(0, 2)),
        "push_prev": module != "load" and bool(rng.integers(0, 2)),
        "pop_next": module != "store" and bool(rng.integers(0, 2)),
        "push_next": module != "store" and bool(rng.integers(0, 2)),
    }
    return INSTRUCTION_CLASSES[opcode](**values, **flags)


@pytest.mark.parametrize("opcode", sorted(OPCODES))
def test_every_opcode_round_trips(opcode):
    rng = np.random.default_rng(OPCODES[opcode])
    for _ in range(50):
        instruction = _random_instruction(rng, opcode)
        word = encode(instruction)
        assert len(word) == INSTRUCTION_BYTES
        assert decode(word) == instruction


def test_every_opcode_fits_its_word_and_its_class_has_its_fields():
    for opcode in OPCODES:
        assert instruction_bits(opcode) <= INSTRUCTION_BYTES * 8
        names = [f.name for f in dataclasses.fields(INSTRUCTION_CLASSES[opcode])]
        assert tuple(names[4:]) == field_names(opcode)


def test_word_layout_by_hand():
    """ALU: opcode 5 in bits 0-3, push_next in bit 7, acc_base from bit 8 (24 bits), channels from bit 32."""
    word = encode(Alu(acc_base=3, channels=2, push_next=True))
    value = int.from_bytes(word, "little")
    assert value == 5 | 1 << 7 | 3 << 8 | 2 << 32


def test_stream_round_trips_and_starts_with_its_header():
    rng = np.random.default_rng(7)
    program = [_random_instruction(rng, op) for op in sorted(OPCODES) * 3]
    data = encode_stream(program)
    assert data[:8] == b"SNNFPGA1"
    assert int.from_bytes(data[8:12], "little") == len(program)
    assert decode_stream(data) == program


def test_fields_out_of_range_and_illegal_tokens_are_refused():
    with pytest.raises(InstructionError, match=r"LOAD.z_size must be an int in \[0, 4096\)"):
        encode(Load(z_size=4096))
    with pytest.raises(InstructionError, match="no previous module"):
        encode(Load(buffer=0, pop_prev=True))
    with pytest.raises(InstructionError, match="STORE has no next module"):
        encode(Store(buffer=5, push_next=True))
    with pytest.raises(InstructionError, match="STORE reads only the output buffer"):
        encode(Store(buffer=0))
    with pytest.raises(InstructionError, match="buffer id 9"):
        encode(Load(buffer=9))


def test_corrupt_words_are_refused():
    word = bytearray(encode(Alu(channels=1)))
    bad_opcode = bytes([0x0F]) + bytes(word[1:])
    with pytest.raises(InstructionError, match="unknown opcode 15"):
        decode(bad_opcode)
    high = bytearray(word)
    high[-1] = 0x80
    with pytest.raises(InstructionError, match="nonzero bits above"):
        decode(bytes(high))
    with pytest.raises(InstructionError, match="32 bytes"):
        decode(bytes(word[:31]))


def test_corrupt_streams_name_the_problem():
    data = encode_stream([Alu(channels=1), Alu(channels=2)])
    with pytest.raises(InstructionError, match="truncated or padded"):
        decode_stream(data[:-5])
    with pytest.raises(InstructionError, match="magic"):
        decode_stream(b"VTA" + data[3:])
    broken = bytearray(data)
    broken[12 + 32] = 0x0E  # the second instruction's opcode
    with pytest.raises(InstructionError, match="instruction 1: unknown opcode 14"):
        decode_stream(bytes(broken))
