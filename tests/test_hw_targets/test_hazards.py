"""Streams that break their own rules are refused: races, deadlocks, leftover tokens, overflows."""

import dataclasses

import numpy as np
import pytest
from fpga_layers import SMALL_SPEC, subbit_conv, ternary_input

from hw_targets.compiler import compile_conv, dram_image
from hw_targets.isa import Load
from hw_targets.layer import FpgaConv
from hw_targets.sim import simulate
from tvm_snn.errors import InstructionError, StreamError


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(3)
    layer = FpgaConv(subbit_conv(rng, 3, 5, 40, 30, padding=1), (1, 40, 11, 11), residual=True)
    program = compile_conv(layer, SMALL_SPEC)
    x = ternary_input(rng, layer.input_shape)
    residual = rng.standard_normal(layer.output_shape).astype(np.float32)
    return program, layer, x, residual


def _run(case, instructions, spec=None):
    program, layer, x, residual = case
    simulate(program.with_instructions(instructions), dram_image(program, layer, x, residual), spec)


def _changed(program, opcode, flag, nth=0, **changes):
    """The stream with the ``nth`` instruction of ``opcode`` that has ``flag`` set changed."""
    instructions = list(program.instructions)
    hits = [
        i
        for i, inst in enumerate(instructions)
        if inst.opcode == opcode and (flag is None or getattr(inst, flag))
    ]
    number = hits[nth]
    instructions[number] = dataclasses.replace(instructions[number], **changes)
    return instructions, number


def test_the_compiled_stream_runs(case):
    _run(case, case[0].instructions)


def test_a_missing_pop_is_a_read_after_write_race(case):
    instructions, _ = _changed(case[0], "PRECOMPUTE", "pop_prev", nth=1, pop_prev=False)
    with pytest.raises(StreamError, match=r"no dependency token between them"):
        _run(case, instructions)


def test_a_missing_slot_wait_is_a_write_after_read_race(case):
    instructions, number = _changed(case[0], "LOAD", "pop_next", pop_next=False)
    with pytest.raises(StreamError, match=rf"instruction {number} \(LOAD, load\) writes"):
        _run(case, instructions)


def test_a_missing_store_wait_is_a_race_on_the_output_buffer(case):
    instructions, _ = _changed(
        case[0], "LOAD", "pop_next", nth=-1, pop_next=False
    )  # the last residual load
    assert instructions[_changed(case[0], "LOAD", "pop_next", nth=-1)[1]].buffer == 5
    with pytest.raises(StreamError, match="output"):
        _run(case, instructions)


def test_a_missing_push_deadlocks(case):
    instructions, _ = _changed(case[0], "LOAD", "push_next", nth=2, push_next=False)
    with pytest.raises(
        StreamError, match=r"deadlocks: .*compute at instruction \d+ \(PRECOMPUTE\)"
    ):
        _run(case, instructions)


def test_an_extra_push_leaves_a_token(case):
    instructions, _ = _changed(case[0], "STORE", None, nth=-1, push_prev=True)
    with pytest.raises(StreamError, match=r"unconsumed dependency tokens: \{'store->compute': 1\}"):
        _run(case, instructions)


def test_a_load_beyond_its_buffer_is_refused(case):
    instructions, number = _changed(case[0], "LOAD", None, nth=2, sram_base=(1 << 24) - 8)
    with pytest.raises(
        StreamError, match=rf"instruction {number} \(LOAD\): .* overflow the input buffer"
    ):
        _run(case, instructions)


def test_a_read_beyond_its_dram_region_is_refused(case):
    instructions, _ = _changed(case[0], "LOAD", None, nth=2, dram_base=10**6)
    with pytest.raises(StreamError, match="DRAM region 'input'"):
        _run(case, instructions)


def test_a_wrong_region_for_the_buffer_is_refused(case):
    program = case[0]
    params = program.region("params")[0]
    instructions, _ = _changed(program, "LOAD", None, nth=2, region=params)
    with pytest.raises(
        StreamError, match="the input buffer moves ternary data, but region 'params' holds float32"
    ):
        _run(case, instructions)
    instructions = [
        *program.instructions[:1],
        Load(buffer=0, region=15, z_size=1, y_size=1, x_size=1),
    ]
    with pytest.raises(StreamError, match="region 15 does not exist"):
        _run(case, instructions)


def test_an_index_beyond_the_codebook_is_refused(case):
    instructions, _ = _changed(case[0], "GATHER", None, codewords=1)
    with pytest.raises(StreamError, match="beyond the 1 codewords"):
        _run(case, instructions)


def test_an_accumulator_overflow_is_refused():
    """All-ones input against an all-ones codeword: 40 units of 9 sum to 360, beyond 8 bits."""
    rng = np.random.default_rng(4)
    conv = subbit_conv(rng, 3, 5, 40, 4, rows=1)
    conv = type(conv)(**{**conv.__dict__, "codebook": np.ones((1, 9), np.int8)})
    layer = FpgaConv(conv, (1, 40, 5, 5))
    program = compile_conv(layer, SMALL_SPEC)
    narrow = dict(SMALL_SPEC, accumulator_bits=8, name="narrow")
    with pytest.raises(StreamError, match="overflows 8 bits"):
        simulate(
            program, dram_image(program, layer, np.ones(layer.input_shape, np.float32)), narrow
        )


def test_a_dram_image_of_the_wrong_type_is_refused(case):
    program, layer, x, residual = case
    dram = dram_image(program, layer, x, residual)
    dram["input"] = dram["input"].astype(np.float32)
    with pytest.raises(StreamError, match="'input' must be int8"):
        simulate(program, dram)


def test_a_dma_of_the_wrong_element_width_is_refused(case):
    instructions, number = _changed(case[0], "LOAD", "push_next", nth=0, elem_bits=8)
    with pytest.raises(
        StreamError,
        match=rf"instruction {number} \(LOAD\): moves elements of 8 bits, but region 'indices' holds 5-bit",
    ):
        _run(case, instructions)


def test_a_token_flag_its_module_cannot_set_is_refused(case):
    instructions = [*case[0].instructions[:2], Load(buffer=0, region=0, elem_bits=2, pop_prev=True)]
    with pytest.raises(InstructionError, match="a load-module LOAD cannot set pop_prev"):
        _run(case, instructions)
