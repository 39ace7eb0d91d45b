"""LowerMaxPool: replace each float NCHW max pool by a ``call_tir`` to the max pool kernel.

Pipeline position: with LowerDenseConv and LowerDenseMatmul, before TVM's
legalization. A ``relax.nn.max_pool2d`` is lowered when its data is a static
float32 NCHW tensor, with no dilation and floor rounding (``ceil_mode``
off), and its padding is less than a window; the call becomes::

    R.call_tir(max_pool, (data,), out_ty)

The kernel (``schedules.dense_pool``) is already scheduled and marked
opaque, so FuseOps fuses nothing into it and ScheduleDenseFallback leaves it.
Other pools stay on TVM's legalization and the generic fallback schedule.
"""

import tvm
from tvm import relax

from relay_passes.call_lowering import NO_DILATION, int_tuple, lower_calls, static_float_shape
from relay_passes.lower_subbit_conv import ATTR_OP_PATTERN, OP_PATTERN_OPAQUE
from schedules.dense_conv import NCHW_RANK
from schedules.dense_pool import PoolGeometry, build_max_pool
from schedules.tir_build import FLOAT_DTYPE
from tvm_snn.errors import FormatError

POOL_KERNEL_NAME = "max_pool"
MAX_POOL_OP = tvm.ir.Op.get("relax.nn.max_pool2d")
_LAYOUT = "NCHW"


def pool_geometry(call):
    """The ``PoolGeometry`` of a max pool call the kernel computes, or None."""
    if not isinstance(call.op, tvm.ir.Op) or not call.op.same_as(MAX_POOL_OP):
        return None
    attrs = call.attrs
    if (
        str(attrs.layout) != _LAYOUT
        or str(attrs.out_layout or attrs.layout) != _LAYOUT
        or bool(attrs.ceil_mode)
    ):
        return None
    if int_tuple(attrs.dilation) != NO_DILATION:
        return None
    shape = static_float_shape(call.args[0], NCHW_RANK)
    if shape is None:
        return None
    try:  # the kernel's own checks: padding less than a window, a window inside the padded input
        return PoolGeometry(
            shape,
            int_tuple(attrs.pool_size),
            int_tuple(attrs.strides),
            int_tuple(attrs.padding),
        )
    except FormatError:
        return None


def _lower(call, builder):
    geometry = pool_geometry(call)
    if geometry is None:
        return None
    func = build_max_pool(geometry).with_attr(ATTR_OP_PATTERN, OP_PATTERN_OPAQUE)
    gv = builder.add_func(func, POOL_KERNEL_NAME)
    return relax.call_tir(gv, [call.args[0]], relax.TensorType(geometry.out_shape, FLOAT_DTYPE))


@tvm.transform.module_pass(opt_level=0, name="tvm_snn.LowerMaxPool")
def LowerMaxPool(mod, _ctx):  # noqa: N802 (a pass, named as TVM names passes)
    """Lower every float NCHW max pool the kernel takes to the max pool kernel."""
    return lower_calls(mod, _lower)
