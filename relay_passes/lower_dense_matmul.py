"""LowerDenseMatmul: replace each float matmul by a constant weight with a ``call_tir`` to the dense matmul kernel.

Pipeline position: with LowerDenseConv, after TVM's ``FoldConstant`` has made
the classifier's transposed weight (``Gemm`` with ``transB``, torch's
``linear``) one constant; before TVM's legalization.

A matmul is lowered when its data is a static float32 ``[N, K]`` and its
weight a float32 constant ``[K, M]``; the call becomes::

    R.call_tir(dense_matmul, (data, packed_weight), out_ty)

with the weight packed once, here (``schedules.dense_matmul.pack_weight``).
The kernel is marked output-elementwise-fusable, so FuseOps appends the bias
add and a ReLU; ScheduleDenseFallback schedules it from its plan. Other
matmuls (batched, a weight computed at run time) stay on TVM's legalization
and the generic fallback schedule.
"""

import tvm
from tvm import relax
from tvm.relax.dpl import is_const, is_op, wildcard

from relay_passes.call_lowering import lower_calls, static_float_shape
from relay_passes.lower_subbit_conv import ATTR_OP_PATTERN, OP_PATTERN_OUT_ELEMWISE_FUSABLE
from relay_passes.plan_choice import HAND_PLANS, built_with_chosen_plan, plan_task
from schedules.cpu import CpuSpec
from schedules.dense_matmul import (
    MATMUL_BLOCK_OUT,
    DenseMatmulGeometry,
    DenseMatmulPlan,
    build_dense_matmul,
)
from schedules.dense_matmul_schedule import schedule_dense_matmul
from schedules.tir_build import FLOAT_DTYPE

MATMUL_KERNEL_NAME = "dense_matmul"
DENSE_MATMUL_PATTERN = is_op("relax.matmul")(wildcard(), is_const())
_MATRIX_RANK = 2


def matmul_geometry(call):
    """The ``DenseMatmulGeometry`` of a matmul call the dense kernel computes, or None."""
    if not DENSE_MATMUL_PATTERN.match(call):
        return None
    data, weight = call.args
    shape = static_float_shape(data, _MATRIX_RANK)
    if shape is None:
        return None
    if (
        call.attrs.out_dtype not in (None, "", FLOAT_DTYPE)
        or str(weight.value.dtype) != FLOAT_DTYPE
    ):
        return None
    weight_shape = tuple(int(d) for d in weight.value.shape)
    if len(weight_shape) != _MATRIX_RANK or weight_shape[0] != shape[1]:
        return None
    return DenseMatmulGeometry(rows=shape[0], depth=weight_shape[0], columns=weight_shape[1])


def matmul_task(geometry, weight, cpu, default_kernel):
    """The :class:`~relay_passes.plan_choice.KernelTask` of a dense matmul kernel built with its default plan."""
    return plan_task(
        f"matmul {geometry.rows}x{geometry.depth} -> {geometry.columns}",
        default_kernel,
        MATMUL_BLOCK_OUT,
        geometry,
        None,
        cpu,
        lambda plan: schedule_dense_matmul(build_dense_matmul(geometry, plan, weight).func),
    )


def _lower(cpu, plans):
    def lower(call, builder):
        geometry = matmul_geometry(call)
        if geometry is None:
            return None
        weight = call.args[1].value.numpy()
        kernel = built_with_chosen_plan(
            plans,
            DenseMatmulPlan.default(geometry, None, cpu),
            lambda plan: build_dense_matmul(geometry, plan, weight),
            lambda default: matmul_task(geometry, weight, cpu, default),
        )
        func = kernel.func.without_attr("global_symbol").with_attr(
            ATTR_OP_PATTERN, OP_PATTERN_OUT_ELEMWISE_FUSABLE
        )
        gv = builder.add_func(func, MATMUL_KERNEL_NAME)
        args = [call.args[0], relax.const(kernel.packed_weight)]
        return relax.call_tir(gv, args, relax.TensorType(kernel.out_shape, FLOAT_DTYPE))

    return lower


@tvm.transform.module_pass(opt_level=0, name="tvm_snn.LowerDenseMatmul")
class LowerDenseMatmul:
    """Lower every float ``[N, K] @ constant [K, M]`` matmul to the dense matmul kernel.

    Parameters
    ----------
    cpu : schedules.cpu.CpuSpec, optional
        The target CPU; ``CpuSpec()`` by default.
    plans : object, optional
        Chooses each kernel's plan (see :mod:`relay_passes.plan_choice`);
        the hand plans by default.
    """

    def __init__(self, cpu=None, plans=None):
        self.cpu = cpu or CpuSpec()
        self.plans = plans or HAND_PLANS

    def transform_module(self, mod, _ctx):
        return lower_calls(mod, _lower(self.cpu, self.plans))
