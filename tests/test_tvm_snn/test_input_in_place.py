"""A CompiledModel reads a C-contiguous input where it is, at any element-aligned address.

Each model's first kernel reads the input with vector loads (the dense conv's
pad, the sub-bit kernels' pad, the dense fallback's vectorized rows); an
aligned-move instruction on a misaligned address would crash the process,
and a wrong offset would change the numbers. Every run is compared bit for bit
with the same model on an aligned copy of the same input.
"""

import numpy as np
import pytest
from relax_builders import conv_module, subbit_weight

import tvm_snn

from onnx_models import plain_cnn, resnet_cnn

FLOAT_BYTES = 4
OFFSETS = (0, 4, 20, 36)  # bytes past a 64-byte boundary


def at_offset(array, offset):
    """A C-contiguous copy of ``array`` whose data starts ``offset`` bytes past a 64-byte boundary."""
    raw = np.empty(array.nbytes + 128, np.uint8)
    start = (-raw.ctypes.data) % 64 + offset
    view = raw[start : start + array.nbytes].view(array.dtype).reshape(array.shape)
    view[...] = array
    assert view.ctypes.data % 64 == offset
    return view


MODELS = {
    "dense-conv stem": lambda: resnet_cnn(batch=2),
    "conv with bias, pool, gemm": lambda: plain_cnn(),
    "sub-bit conv first": lambda: conv_module(subbit_weight(64, 64, tau=5), (1, 64, 8, 8)),
    "binary sub-bit conv first": lambda: conv_module(
        subbit_weight(64, 64, tau=5), (1, 64, 8, 8), binary=True
    ),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def compiled(request):
    return tvm_snn.compile(MODELS[request.param](), target="x86")


def test_every_input_may_be_unaligned(compiled):
    assert compiled.unaligned_inputs == tuple(spec.name for spec in compiled.inputs)


@pytest.mark.parametrize("offset", OFFSETS)
def test_misaligned_input_matches_an_aligned_copy(compiled, offset):
    x = compiled.random_inputs(seed=offset)[0]
    expected = np.array(compiled(at_offset(x, 0)))
    got = compiled(at_offset(x, offset))
    np.testing.assert_array_equal(got, expected)


def test_the_input_is_not_copied(compiled):
    x = compiled.random_inputs(seed=1)[0]
    compiled(np.asfortranarray(x))  # not C-contiguous: copied into the aligned buffer
    staged = compiled._staged(0)[1]  # that buffer
    staged[...] = -1.0
    compiled(at_offset(x, 4))
    assert np.all(staged == -1.0), "the misaligned input was copied instead of read in place"


def test_strided_input_is_copied_and_matches(compiled):
    x = compiled.random_inputs(seed=2)[0]
    wide = np.zeros((*x.shape[:-1], 2 * x.shape[-1]), np.float32)
    wide[..., ::2] = x
    strided = wide[..., ::2]
    assert not strided.flags.c_contiguous
    np.testing.assert_array_equal(compiled(strided), np.array(compiled(np.ascontiguousarray(x))))
