"""Unpacking tau-bit indices 64 at a time (AVX-512 VBMI) against schedules.subbit.pack_indices."""

import numpy as np
import pytest
import tvm
from guarded import guarded_tensors
from tvm import te, tirx

from schedules.subbit import pack_indices
from schedules.subbit_unpack import LANES, TAIL_BYTES, UNPACK_MAX_TAU, fits, unpack_bytes
from tvm_snn.target import parse_target

from common import needs_vbmi

pytestmark = needs_vbmi
TARGET = tvm.target.Target(parse_target("x86"))


def stream(indices, tau):
    return np.concatenate([pack_indices(indices.ravel(), tau), np.zeros(TAIL_BYTES, np.uint8)])


@pytest.mark.parametrize("num_cores", [1, 2])
@pytest.mark.parametrize(("tau", "shape"), [(1, (3, 64)), (3, (5, 128)), (5, (64, 64)), (6, (7, 192)), (7, (128, 256))])
def test_unpacked_bytes_match_the_indices(tau, shape, num_cores):
    indices = np.random.default_rng(tau).integers(0, 1 << tau, shape)
    packed = stream(indices, tau)
    placeholder = te.placeholder(packed.shape, "uint8", "packed")
    out = unpack_bytes(placeholder, shape, tau, num_cores)
    lib = tvm.compile(te.create_prim_func([placeholder, out]), target=TARGET)
    with guarded_tensors(packed) as placements:  # a step never reads past the tail
        for placed in placements:
            got = tvm.runtime.tensor(np.zeros(shape, np.int8))
            lib(placed, got)
            np.testing.assert_array_equal(got.numpy(), indices)


def test_finish_maps_the_indices_with_their_columns():
    """``finish`` gets the 64 indices and their column ramp: here ``index * 100 + column``."""
    tau, shape = 4, (2, 128)
    indices = np.random.default_rng(0).integers(0, 16, shape)
    placeholder = te.placeholder(stream(indices, tau).shape, "uint8", "packed")

    def finish(values, _row, cols):
        lanes = f"int32x{LANES}"
        return tirx.Cast(lanes, values) * tirx.Broadcast(tirx.const(100, "int32"), LANES) + tirx.Cast(lanes, cols)

    out = unpack_bytes(placeholder, shape, tau, 1, finish=finish, dtype="int32")
    lib = tvm.compile(te.create_prim_func([placeholder, out]), target=TARGET)
    got = tvm.runtime.tensor(np.zeros(shape, np.int32))
    lib(tvm.runtime.tensor(stream(indices, tau)), got)
    np.testing.assert_array_equal(got.numpy(), indices * 100 + np.arange(128))


def test_refuses_what_it_cannot_unpack():
    placeholder = te.placeholder((100,), "uint8", "packed")
    with pytest.raises(ValueError, match="cannot unpack 2x48 indices"):
        unpack_bytes(placeholder, (2, 48), 3, 1)
    with pytest.raises(ValueError, match=f"of {UNPACK_MAX_TAU + 1} bits"):
        unpack_bytes(placeholder, (2, 64), UNPACK_MAX_TAU + 1, 1)
    assert fits(128, UNPACK_MAX_TAU) and not fits(96, 3) and not fits(128, UNPACK_MAX_TAU + 1)
