"""The frontend <-> compiler contract: its constants and the one sign code."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from tvm_snn.schema import (
    BITS_PER_BYTE,
    BITS_PER_MBIT,
    FLOAT_BITS,
    FLOAT_BYTES,
    KERNEL_1X1,
    KERNEL_3X3,
    MAX_TAU,
    MAX_TAU_1X1,
    MAX_TAU_3X3,
    MIN_TAU,
    UNIT_1X1,
    UNIT_3X3,
    code_to_signs,
    element_sign,
    negate_code,
    signs_to_code,
)

WIDTHS = (UNIT_3X3, UNIT_1X1)


def test_units_are_the_papers():
    # A 3x3 unit is one kernel's 9 signs; a 1x1 unit is 8 consecutive input channels.
    assert (UNIT_3X3, UNIT_1X1) == (9, 8)
    assert UNIT_3X3 == KERNEL_3X3[0] * KERNEL_3X3[1]
    assert (KERNEL_3X3, KERNEL_1X1) == ((3, 3), (1, 1))
    assert (MIN_TAU, MAX_TAU_3X3, MAX_TAU_1X1, MAX_TAU) == (1, 9, 8, 9)


def test_storage_units():
    assert (BITS_PER_BYTE, FLOAT_BITS, FLOAT_BYTES) == (8, 32, 4)
    assert BITS_PER_MBIT == 10**6


def test_a_negative_element_e_is_bit_e():
    signs = np.ones(UNIT_3X3, dtype=np.int8)
    signs[2] = -1
    assert signs_to_code(signs) == 1 << 2
    assert signs_to_code(np.ones(UNIT_3X3)) == 0
    assert signs_to_code(-np.ones(UNIT_1X1)) == (1 << UNIT_1X1) - 1


def test_zero_counts_as_plus_one():
    assert signs_to_code(np.array([0.0, -0.5, 2.0])) == 0b010


@pytest.mark.parametrize("width", WIDTHS)
def test_every_code_round_trips(width):
    codes = np.arange(1 << width)
    signs = code_to_signs(codes, width)
    assert signs.dtype == np.int8 and signs.shape == (1 << width, width)
    assert set(np.unique(signs).tolist()) == {-1, 1}
    np.testing.assert_array_equal(signs_to_code(signs), codes)


@pytest.mark.parametrize("width", WIDTHS)
def test_negated_unit_has_the_negated_code(width):
    signs = code_to_signs(np.arange(1 << width), width)
    np.testing.assert_array_equal(signs_to_code(-signs), negate_code(signs_to_code(signs), width))


def test_element_sign_reads_one_bit():
    code = 0b101
    assert [element_sign(code, e) for e in range(4)] == [-1, 1, -1, 1]


def test_torch_tensors_get_the_same_codes():
    signs = code_to_signs(np.arange(1 << UNIT_3X3), UNIT_3X3)
    codes = signs_to_code(torch.from_numpy(signs).float())
    assert codes.dtype == torch.int64
    np.testing.assert_array_equal(codes.numpy(), np.arange(1 << UNIT_3X3))


def test_importing_it_loads_neither_tvm_nor_torch():
    script = "import json, sys, tvm_snn.schema; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.check_output([sys.executable, "-c", script], text=True))
    roots = {name.split(".")[0] for name in loaded}
    assert not roots & {"tvm", "torch", "onnx", "schedules", "relay_passes"}
    project = {name for name in loaded if name.startswith("tvm_snn.")}
    assert project == {"tvm_snn.schema"}
