"""The HLS C++ PE array, compiled with g++, against the functional simulator instruction for instruction."""

import numpy as np
import pytest
from fpga_layers import SMALL_SPEC, binary_conv, subbit_conv, ternary_input

from hw_targets.compiler import compile_conv, dram_image
from hw_targets.hls import build_csim
from hw_targets.isa import Gather, encode
from hw_targets.layer import FpgaConv
from hw_targets.sim import simulate
from tvm_snn.errors import FpgaError

BUFFERS = ("input", "codebook", "index", "weight")


@pytest.fixture(scope="module")
def csim(tmp_path_factory):
    return build_csim(tmp_path_factory.mktemp("hls"))


def _check_stream(csim, layer, x, spec):
    program = compile_conv(layer, spec)
    checked = []

    def observe(number, inst, before, after):
        ins = [np.ascontiguousarray(before[name]) for name in BUFFERS]
        response = before["response"].astype(np.int32)
        acc = before["accumulator"].astype(np.int32)
        csim.execute(encode(inst), *ins, response, acc)
        np.testing.assert_array_equal(
            response, after["response"], err_msg=f"instruction {number} {inst.opcode}"
        )
        np.testing.assert_array_equal(
            acc, after["accumulator"].astype(np.int32), err_msg=f"instruction {number}"
        )
        checked.append(inst.opcode)

    simulate(program, dram_image(program, layer, x), observer=observe)
    return checked


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "tau"), [(3, 1, 1, 5), (3, 2, 1, 8), (1, 2, 0, 3), (3, 1, 0, 1)]
)
def test_subbit_instructions_match_the_simulator(csim, kernel, stride, padding, tau):
    rng = np.random.default_rng(kernel + stride + tau)
    layer = FpgaConv(
        subbit_conv(rng, kernel, tau, 24 if kernel == 3 else 32, 20, stride, padding),
        (2, 24 if kernel == 3 else 32, 9, 7),
    )
    checked = _check_stream(csim, layer, ternary_input(rng, layer.input_shape), SMALL_SPEC)
    assert checked.count("PRECOMPUTE") >= 2 and checked.count("GATHER") == checked.count(
        "PRECOMPUTE"
    )


@pytest.mark.parametrize(("kernel", "stride", "padding"), [(3, 1, 1), (3, 2, 1), (1, 2, 0)])
def test_bnn_instructions_match_the_simulator(csim, kernel, stride, padding):
    rng = np.random.default_rng(10 + kernel + stride)
    layer = FpgaConv(binary_conv(rng, kernel, 16, 12, stride, padding), (1, 16, 8, 9))
    checked = _check_stream(csim, layer, ternary_input(rng, layer.input_shape), SMALL_SPEC)
    assert checked and set(checked) == {"XNOR"}


def test_the_cpp_refuses_a_bad_index(csim):
    word = encode(Gather(units=1, codewords=2, pixels=1, index_stride=1, channels=1, reset=1))
    buffers = [
        np.zeros(4, np.int8),
        np.zeros(4, np.int8),
        np.array([5, 0, 0, 0], np.int32),
        np.zeros(4, np.int8),
    ]
    with pytest.raises(FpgaError, match="an index beyond the codewords"):
        csim.execute(word, *buffers, np.zeros(4, np.int32), np.zeros(4, np.int32))
