"""The max pool kernel against PyTorch: windows, strides, paddings, and edges without inner columns."""

import numpy as np
import pytest
import torch
import tvm

from schedules.dense_pool import PoolGeometry, build_max_pool, is_scheduled_pool
from tvm_snn.errors import FormatError

TARGET = tvm.target.Target({"kind": "llvm"})

# (data shape, window, strides, padding (top, left, bottom, right))
CASES = {
    "imagenet 3x3/2": ((1, 8, 112, 112), (3, 3), (2, 2), (1, 1, 1, 1)),
    "odd sizes, batch 2": ((2, 5, 13, 11), (3, 3), (2, 2), (1, 1, 1, 1)),
    "2x2/2 no padding": ((1, 3, 9, 10), (2, 2), (2, 2), (0, 0, 0, 0)),
    "3x3/1 same": ((1, 2, 8, 8), (3, 3), (1, 1), (1, 1, 1, 1)),
    "rectangular, asymmetric": ((1, 1, 7, 15), (3, 5), (2, 3), (1, 2, 0, 1)),
    "no inner column": ((1, 2, 4, 3), (3, 3), (2, 2), (1, 1, 1, 1)),
    "window as wide as the row": ((1, 2, 6, 5), (2, 5), (1, 1), (0, 0, 1, 0)),
}


def torch_max_pool(x, geo):
    top, left, bottom, right = geo.padding
    padded = torch.nn.functional.pad(torch.from_numpy(x), (left, right, top, bottom), value=-np.inf)
    return torch.nn.functional.max_pool2d(padded, geo.window, geo.strides).numpy()


@pytest.mark.parametrize("name", list(CASES))
def test_kernel_matches_torch(name):
    geo = PoolGeometry(*CASES[name])
    # All negative: a zero padding instead of -inf would show at the borders.
    x = -np.abs(np.random.default_rng(len(name)).standard_normal(geo.data_shape)).astype(np.float32) - 1.0
    lib = tvm.compile(build_max_pool(geo), target=TARGET)
    out = tvm.runtime.tensor(np.zeros(geo.out_shape, np.float32))
    lib(tvm.runtime.tensor(x), out)
    np.testing.assert_array_equal(out.numpy(), torch_max_pool(x, geo))


def test_inner_columns_by_hand():
    """A 3x3/2 window with padding 1 on 112 columns: column 0 reads the padding, columns 1..55 are inside."""
    assert PoolGeometry((1, 1, 112, 112), (3, 3), (2, 2), (1, 1, 1, 1)).inner_columns() == (1, 56)
    # 3 columns, 2 outputs: output 0 reads the left padding, output 1 the right one.
    first, end = PoolGeometry((1, 1, 4, 3), (3, 3), (2, 2), (1, 1, 1, 1)).inner_columns()
    assert first >= end


def test_geometry_errors():
    with pytest.raises(FormatError, match="data_shape"):
        PoolGeometry((1, 8, 8), (3, 3), (1, 1), (0, 0, 0, 0))
    with pytest.raises(FormatError, match="whole window"):
        PoolGeometry((1, 1, 8, 8), (2, 2), (1, 1), (2, 0, 0, 0))
    with pytest.raises(FormatError, match="larger"):
        PoolGeometry((1, 1, 2, 2), (3, 3), (1, 1), (0, 0, 0, 0))


def test_kernel_is_marked_scheduled():
    func = build_max_pool(PoolGeometry(*CASES["3x3/1 same"]))
    assert is_scheduled_pool(func)
    assert not is_scheduled_pool(func.without_attr("tvm_snn.pool_kernel"))
