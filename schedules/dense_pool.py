"""Max pooling (any window, stride and padding), written as scheduled TIR.

TVM's legalized pool pads the whole input with a per-element condition and
reads strided columns, which its vectorizer turns into gathers (0.6x ONNX
Runtime on the ImageNet 3x3/2 pool). This kernel works one output row at a
time (the rows run in parallel) and has no padded copy:

1. for each window row inside the input, the horizontal max of each output
   column into a small local row. Columns whose window lies inside the input
   run as one loop without conditions and without TVM vectorization, so
   LLVM vectorizes the strided reads itself with wide loads and shuffles;
   only the columns at the edges test their taps;
2. the vertical max of those rows, one vector loop along the output row.

The window rows outside the input leave ``-inf`` (the padding of ONNX and
PyTorch max pooling). The function carries :data:`POOL_KERNEL_ATTR`, so the
dense fallback schedule leaves it as it is.
"""

import functools
from dataclasses import dataclass

from tvm import tirx
from tvm.script import tirx as T

from schedules.dense_conv import NCHW_RANK
from schedules.dense_conv_plan import ceil_div
from tvm_snn.errors import FormatError

POOL_KERNEL_ATTR = "tvm_snn.pool_kernel"
LOWEST_FLOAT32 = -3.4028234663852886e38  # -FLT_MAX: what TVM's legalized max pool pads with


@dataclass(frozen=True)
class PoolGeometry:
    """A 2-D max pool on NCHW float32 data.

    Attributes
    ----------
    data_shape : tuple of int
        ``(N, C, H, W)``.
    window : tuple of int
        ``(KH, KW)``.
    strides : tuple of int
    padding : tuple of int
        ``(top, left, bottom, right)``.
    """

    data_shape: tuple
    window: tuple
    strides: tuple
    padding: tuple

    def __post_init__(self):
        if len(self.data_shape) != NCHW_RANK or min(self.data_shape) < 1:
            raise FormatError(f"PoolGeometry.data_shape must be 4 positive sizes, got {self.data_shape}")
        if min(*self.window, *self.strides) < 1 or min(self.padding) < 0:
            raise FormatError(f"PoolGeometry: bad window {self.window}, strides {self.strides} or padding {self.padding}")
        top, left, bottom, right = self.padding
        if top >= self.window[0] or bottom >= self.window[0] or left >= self.window[1] or right >= self.window[1]:
            raise FormatError(f"PoolGeometry: padding {self.padding} reaches a whole window {self.window} of padding")
        if min(self.out_hw) < 1:
            raise FormatError(f"PoolGeometry: window {self.window} is larger than the padded input")

    @property
    def out_hw(self):
        (_, _, h, w), (kh, kw), (sh, sw) = self.data_shape, self.window, self.strides
        top, left, bottom, right = self.padding
        return (h + top + bottom - kh) // sh + 1, (w + left + right - kw) // sw + 1

    @property
    def out_shape(self):
        return (*self.data_shape[:2], *self.out_hw)

    def inner_columns(self):
        """``(first, end)``: the output columns whose whole window lies inside the input (maybe empty)."""
        width, kw, sw, left = self.data_shape[3], self.window[1], self.strides[1], self.padding[1]
        first = ceil_div(left, sw)
        end = max(first, (width - kw + left) // sw + 1)
        return first, min(end, self.out_hw[1])


def is_scheduled_pool(func):
    """Whether the PrimFunc is this module's pool kernel (scheduled already)."""
    return func.attrs is not None and POOL_KERNEL_ATTR in func.attrs


def _max_of(values):
    """``max(values)`` as one TIR expression (a window row, unrolled)."""
    return functools.reduce(tirx.max, values)


def build_max_pool(geo):
    """The max pool kernel ``func(data, out)`` for ``geo``.

    Returns
    -------
    tvm.tirx.PrimFunc
    """
    n, channels, height, width = geo.data_shape
    (kh, kw), (sh, sw) = geo.window, geo.strides
    top, left = geo.padding[0], geo.padding[1]
    out_h, out_w = geo.out_hw
    first, end = geo.inner_columns()
    rows = n * channels * out_h
    low = LOWEST_FLOAT32

    @T.prim_func(s_tir=True)
    def max_pool(data: T.Buffer((n, channels, height, width), "float32"), out: T.Buffer((n, channels, out_h, out_w), "float32")):
        T.func_attr({"tirx.noalias": True, POOL_KERNEL_ATTR: True})
        with T.sblock("root"):
            for item in T.parallel(rows):
                b = item // (channels * out_h)
                c = item // out_h % channels
                y = item % out_h
                window = T.alloc_buffer((kh, out_w), "float32", scope="local")
                for ry in range(kh):
                    iy = y * sh - top + ry
                    if iy >= 0 and iy < height:
                        for j in range(first, end):  # whole window inside: no conditions, LLVM vectorizes
                            window[ry, j] = _max_of([data[b, c, iy, j * sw - left + rx] for rx in range(kw)])
                        for j in range(out_w):  # the edge columns
                            if j < first or j >= end:
                                window[ry, j] = T.float32(low)
                                for rx in range(kw):
                                    ix = j * sw - left + rx
                                    if ix >= 0 and ix < width:
                                        window[ry, j] = T.max(window[ry, j], data[b, c, iy, ix])
                    else:
                        for j in T.vectorized(out_w):
                            window[ry, j] = T.float32(low)
                for j in T.vectorized(out_w):
                    out[b, c, y, j] = _max_of([window[ry, j] for ry in range(kh)])

    return max_pool
