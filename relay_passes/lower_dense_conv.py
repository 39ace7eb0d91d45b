"""LowerDenseConv: replace each float conv2d with a constant weight by a ``call_tir`` to the dense kernel.

Pipeline position: the first of the kernel passes (after the graph passes:
the sub-bit convs are kernel calls by then, so every ``relax.nn.conv2d``
left is one the SNN path keeps dense), right after TVM's
``FoldBatchnormToConv2D`` and ``FoldConstant`` have folded an inference
batch norm into the conv's weight and a bias add. Before TVM's legalization.

A conv is lowered when its weight is a constant, it is float32 NCHW / OIHW
with one group and no dilation, and its input shape is static; the call
becomes::

    R.call_tir(dense_conv2d, (data, packed_weight), out_ty)

with the weight packed once, here (``schedules.dense_conv.pack_weight``).
The kernel is unscheduled and marked output-elementwise-fusable, so
FuseOps appends the bias add, a residual add and the ReLU after it;
ScheduleDenseFallback schedules it from its plan after FuseTIR. Other
convs (grouped, dilated, a weight computed at run time) stay on TVM's
legalization and the generic fallback schedule.
"""

import tvm
from tvm import relax
from tvm.relax.dpl import is_const, is_op, wildcard

from relay_passes.call_lowering import NO_DILATION, int_tuple, lower_calls, static_float_shape
from relay_passes.lower_dense_matmul import LowerDenseMatmul
from relay_passes.lower_dense_pool import LowerMaxPool
from relay_passes.lower_subbit_conv import ATTR_OP_PATTERN, OP_PATTERN_OUT_ELEMWISE_FUSABLE
from relay_passes.plan_choice import HAND_PLANS, built_with_chosen_plan, plan_task
from relay_passes.subbit_analysis import CONV_OP
from schedules.cpu import CpuSpec
from schedules.dense_conv import DENSE_BLOCK_OUT, DenseConvGeometry, build_dense_conv
from schedules.dense_conv_plan import DenseConvPlan
from schedules.dense_conv_schedule import schedule_dense_conv
from schedules.tir_build import FLOAT_DTYPE

DENSE_KERNEL_NAME = "dense_conv2d"
DENSE_CONV_PATTERN = is_op(CONV_OP)(wildcard(), is_const())
_DATA_LAYOUT, _KERNEL_LAYOUT = "NCHW", "OIHW"


def dense_geometry(call):
    """The ``DenseConvGeometry`` of a conv2d call the dense kernel computes, or None."""
    if not DENSE_CONV_PATTERN.match(call):
        return None
    attrs = call.attrs
    data, weight = call.args
    layouts = (
        str(attrs.data_layout),
        str(attrs.kernel_layout),
        str(attrs.out_layout or attrs.data_layout),
    )
    if layouts != (_DATA_LAYOUT, _KERNEL_LAYOUT, _DATA_LAYOUT) or int(attrs.groups) != 1:
        return None
    if int_tuple(attrs.dilation) != NO_DILATION or attrs.out_dtype not in (None, "", FLOAT_DTYPE):
        return None
    data_shape = static_float_shape(data)
    if data_shape is None or str(weight.value.dtype) != FLOAT_DTYPE:
        return None
    top, left, bottom, right = int_tuple(attrs.padding)
    return DenseConvGeometry(
        data_shape=data_shape,
        weight_shape=int_tuple(weight.value.shape),
        strides=int_tuple(attrs.strides),
        padding=(top, left, bottom, right),
    )


def dense_conv_task(geometry, weight, cpu, default_kernel):
    """The :class:`~relay_passes.plan_choice.KernelTask` of a dense conv kernel built with its default plan."""
    (o, _, kh, kw), (sh, _) = geometry.weight_shape, geometry.strides
    label = f"dense {'x'.join(map(str, geometry.data_shape))} -> {o}, {kh}x{kw}/{sh}"
    return plan_task(
        label,
        default_kernel,
        DENSE_BLOCK_OUT,
        geometry,
        geometry.data_shape,
        cpu,
        lambda plan: schedule_dense_conv(build_dense_conv(geometry, plan, weight).func),
    )


def _lower(cpu, plans):
    def lower(call, builder):
        geometry = dense_geometry(call)
        if geometry is None:
            return None
        weight = call.args[1].value.numpy()
        kernel = built_with_chosen_plan(
            plans,
            DenseConvPlan.default(geometry, geometry.data_shape, cpu),
            lambda plan: build_dense_conv(geometry, plan, weight),
            lambda default: dense_conv_task(geometry, weight, cpu, default),
        )
        func = kernel.func.without_attr("global_symbol").with_attr(
            ATTR_OP_PATTERN, OP_PATTERN_OUT_ELEMWISE_FUSABLE
        )
        gv = builder.add_func(func, DENSE_KERNEL_NAME)
        consts = [relax.const(array) for array in kernel.constants]
        return relax.call_tir(
            gv, [call.args[0], *consts], relax.TensorType(kernel.out_shape, FLOAT_DTYPE)
        )

    return lower


@tvm.transform.module_pass(opt_level=0, name="tvm_snn.LowerDenseConv")
class LowerDenseConv:
    """Lower every float conv2d with a constant weight to the dense direct-conv kernel.

    Parameters
    ----------
    cpu : schedules.cpu.CpuSpec, optional
        The target CPU (its SIMD width and registers decide the plan);
        ``CpuSpec()`` by default.
    plans : object, optional
        Chooses each kernel's plan (see :mod:`relay_passes.plan_choice`);
        the hand plans by default.
    """

    def __init__(self, cpu=None, plans=None):
        self.cpu = cpu or CpuSpec()
        self.plans = plans or HAND_PLANS

    def transform_module(self, mod, _ctx):
        return lower_calls(mod, _lower(self.cpu, self.plans))


def dense_conv_passes(target, plans=None):
    """The dense-kernel passes in order, for the start of the kernel passes.

    TVM's ``FoldBatchnormToConv2D`` and ``FoldConstant`` fold an inference
    batch norm after a conv into its weight and a bias add (and a
    classifier's transposed weight into one constant), then
    :class:`LowerDenseConv`, :class:`LowerDenseMatmul` and ``LowerMaxPool``
    lower the convs, matmuls and max pools for ``target``'s CPU.
    """
    cpu = CpuSpec.from_target(target)
    return [
        relax.transform.FoldBatchnormToConv2D(),
        relax.transform.FoldConstant(),
        LowerDenseConv(cpu, plans),
        LowerDenseMatmul(cpu, plans),
        LowerMaxPool,
    ]
