"""The padded-input stage of the sub-bit kernel against NumPy, with its input against unmapped pages."""

import numpy as np
import pytest
import tvm
from guarded import run_on_guarded_input
from tvm import te

from schedules.subbit_pad import PIECE_LANES, PadGeometry, padded_input
from schedules.tir_build import sign_int8

TARGET = tvm.target.Target({"kind": "llvm"})


def pad_reference(x, g, binary):
    """Element ``(n, c, ry, k, y, xx)`` is ``x`` at row ``y*sh + ry - top``, column
    ``xx*sw + k*step - left``, 0 outside; channel-major order."""
    n_batch, channels, height, width = x.shape
    sh, sw = g.stride
    out = np.zeros((n_batch, channels, sh, g.planes, g.rows, g.width), np.float32)
    for ry in range(sh):
        for k in range(g.planes):
            for y in range(g.rows):
                iy = y * sh + ry - g.top
                if not 0 <= iy < height:
                    continue
                for col in range(g.width):
                    ix = col * sw + k * g.step - g.left
                    if 0 <= ix < width:
                        out[:, :, ry, k, y, col] = x[:, :, iy, ix]
    return np.sign(out) if binary else out


GEOMETRIES = [
    # (N, C, H, W), top, left, stride, planes, step, rows, width
    ((1, 3, 14, 14), 1, 1, (1, 1), 3, 1, 18, 16),  # stacked rows: one plane per column tap
    ((2, 2, 7, 9), 1, 1, (1, 1), 1, 1, 10, 16),  # one plane, rows past the image
    ((1, 2, 15, 15), 1, 1, (2, 2), 2, 1, 9, 9),  # stride 2: two row phases, two column phases
    ((1, 1, 5, 4), 2, 3, (1, 1), 3, 2, 9, 8),  # dilation 2: planes 2 apart, wide left padding
    ((1, 2, 3, 150), 0, 0, (1, 1), 1, 1, 3, 2 * PIECE_LANES + 22),  # whole vector pieces and a remainder
    ((2, 16, 20, 20), 1, 1, (1, 1), 1, 1, 22, 32),  # large enough to run in parallel
]


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("row_major", [False, True])
@pytest.mark.parametrize(("shape", "top", "left", "stride", "planes", "step", "rows", "width"), GEOMETRIES)
def test_padded_input_matches_numpy(shape, top, left, stride, planes, step, rows, width, row_major, binary):
    g = PadGeometry(top, left, stride, planes, step, rows, width, row_major)
    data = te.placeholder(shape, "float32", "data")
    padded = padded_input(data, g, sign_int8 if binary else (lambda v: v), "int8" if binary else "float32")
    out = te.compute(padded.shape, lambda *i: padded(*i).astype("float32"), name="out")
    lib = tvm.compile(te.create_prim_func([data, out], index_dtype_override="int64"), target=TARGET)
    x = np.random.default_rng(len(shape) + top).standard_normal(shape).astype(np.float32)
    x[..., ::3] = 0.0  # sign(0) = 0
    expected = pad_reference(x, g, binary)
    for got in run_on_guarded_input(lib, x, (), tuple(int(d) for d in out.shape)):
        if row_major:  # [n, ry, y, c, k, x] -> [n, c, ry, k, y, x]
            got = got.transpose(0, 3, 1, 4, 2, 5)
        np.testing.assert_array_equal(got, expected)
