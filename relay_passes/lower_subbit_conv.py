"""LowerSubBitConv: replace each sub-bit composite with a ``call_tir`` to its kernel.

Pipeline position: right after :mod:`relay_passes.detect_subbit_conv` (and
any offload passes that claim composites first), before TVM's default
pipeline. For each call to a ``tvm_snn.subbit_conv2d`` composite, the
sub-bit format the detector stored on the composite is read back,
:mod:`schedules.kernels` picks the kernel and its plan for the CPU, the
unscheduled TensorIR kernel is added to the module, and the call becomes::

    R.call_tir(snn_conv2d, (data, packed_indices, codebook, alpha), out_ty)

With binary activations, when ``data`` is ``sign(x)`` the kernel takes ``x``:
it applies the sign itself, and a sign op left without readers is removed.
Only a real ``sign`` is skipped: an input in {-1, +1} spelled otherwise
(``where(c, 1, -1)``, ``2 * astype(c) - 1``) is passed as it is, since the
kernel's sign of +-1 is itself (and ``where`` is +1 where ``sign`` is 0).

On targets with AVX-512 VBMI, binary convs on small images take the lane
kernel of :mod:`schedules.subbit_lane` (output channels in the vector lanes)
where :func:`~schedules.lane_plan.lane_kernel_fits` allows it, and the
other kernels unpack their indices with :mod:`schedules.subbit_unpack`.
The composite's report moves onto the kernel's PrimFunc, with the kernel
chosen and the bytes of its constants.

The kernel is left unscheduled and marked fusable; ScheduleSubBitKernels
schedules it after TVM's FuseOps/FuseTIR have merged its epilogue into it.
The packed tau-bit indices and the codebook are the constants from then on;
the dense weight is dropped with the composite, so the artifact stays small.
"""

import tvm
from tvm import relax

from relay_passes.detect_subbit_conv import (
    ATTR_ACTIVATION,
    ATTR_TAU,
    is_conv,
    is_offloaded,
    is_subbit_composite,
)
from relay_passes.ir_module import rebuilt
from relay_passes.layer_records import ATTR_REPORT, conv_from_attrs, updated_record
from relay_passes.plan_choice import HAND_PLANS, built_with_chosen_plan, plan_task
from relay_passes.subbit_analysis import is_sign
from schedules import kernels
from schedules.cpu import CpuSpec
from schedules.subbit_tir import BLOCK_OUT
from schedules.tir_build import FLOAT_DTYPE

KERNEL_FUNC_NAME = "snn_conv2d"
# Let FuseOps append the elementwise ops that follow (bias, residual, ReLU,
# sign): "output elementwise fusable" in TVM's OpPatternKind. The kernel has
# several reductions, so AnnotateTIROpPattern would call it opaque; it leaves
# an existing pattern alone.
ATTR_OP_PATTERN = "op_pattern"
OP_PATTERN_OUT_ELEMWISE_FUSABLE = 4
OP_PATTERN_OPAQUE = 8  # TVM's kOpaque: FuseOps fuses nothing into the call


def _ints(values):
    return tuple(int(v) for v in values)


def composite_call(func):
    """The one ``conv2d`` call inside a composite function."""
    convs = []
    relax.analysis.post_order_visit(func.body, lambda e: convs.append(e) if is_conv(e) else None)
    (call,) = convs
    return call


def composite_conv(func):
    """Return the ``SubBitConv`` that a composite function computes (stored by the detector)."""
    call = composite_call(func)
    return conv_from_attrs(
        func.attrs, call, int(func.attrs[ATTR_TAU]), str(func.attrs[ATTR_ACTIVATION])
    )


def _sign_input(data, lookup):
    """``x`` when ``data`` is bound to ``sign(x)``, else ``data``."""
    bound = lookup(data) if isinstance(data, relax.Var) else None
    return bound.args[0] if bound is not None and is_sign(bound, {}) else data


def subbit_task(conv, shape, cpu, default_kernel):
    """The :class:`~relay_passes.plan_choice.KernelTask` of a sub-bit kernel built with its default plan."""
    kernel = "x".join(map(str, conv.kernel_size))
    label = f"snn {conv.activation} {'x'.join(map(str, shape))} -> {conv.out_channels}, {kernel}/{conv.stride[0]}"
    return plan_task(
        label,
        default_kernel,
        BLOCK_OUT,
        conv,
        shape,
        cpu,
        lambda plan: kernels.build_scheduled(conv, shape, cpu, plan).func,
    )


def _chosen_kernel(conv, shape, cpu, plans):
    """The unscheduled kernel built with the plan ``plans`` chooses (the hand plan by default)."""
    return built_with_chosen_plan(
        plans,
        kernels.select_plan(conv, shape, cpu),
        lambda plan: kernels.build(conv, shape, plan),
        lambda kernel: subbit_task(conv, shape, cpu, kernel),
    )


@relax.expr_functor.mutator
class _Lowerer(relax.PyExprMutator):
    def __init__(self, mod, composites, cpu, plans):
        super().__init__(mod)
        self.composites = composites  # GlobalVar name -> (SubBitConv, report record)
        self.cpu = cpu
        self.plans = plans

    def visit_call_(self, call):
        call = super().visit_call_(call)
        if not isinstance(call.op, tvm.ir.GlobalVar) or call.op.name_hint not in self.composites:
            return call
        conv, record = self.composites[call.op.name_hint]
        data = call.args[0]
        if conv.activation == "binary":  # the kernel applies the sign: skip a standalone sign op
            data = _sign_input(data, self.lookup_binding)
        shape = _ints(data.ty.shape.values)
        kernel = _chosen_kernel(conv, shape, self.cpu, self.plans)
        func = (
            kernel.func.without_attr("global_symbol")
            .with_attr(ATTR_OP_PATTERN, OP_PATTERN_OUT_ELEMWISE_FUSABLE)
            .with_attr(
                ATTR_REPORT,
                updated_record(record, snn_kernel=kernel.kind, stored_bytes=kernel.stored_bytes),
            )
        )
        gv = self.builder_.add_func(func, KERNEL_FUNC_NAME)
        consts = [relax.const(array) for array in kernel.constants]
        return relax.call_tir(gv, [data, *consts], relax.TensorType(kernel.out_shape, FLOAT_DTYPE))


@tvm.transform.module_pass(opt_level=0, name="tvm_snn.LowerSubBitConv")
class LowerSubBitConv:
    """Lower every ``tvm_snn.subbit_conv2d`` composite call to the sub-bit kernel.

    Parameters
    ----------
    cpu : schedules.cpu.CpuSpec, optional
        The target CPU (cores, SIMD width, VBMI: the lane kernel and the
        64-at-a-time index unpacking); ``CpuSpec()`` by default.
    plans : object, optional
        Chooses each kernel's plan (``choose(KernelTask) -> plan``, see
        :mod:`relay_passes.plan_choice`); the hand plans by default.
    """

    def __init__(self, cpu=None, plans=None):
        self.cpu = cpu or CpuSpec()
        self.plans = plans or HAND_PLANS

    def transform_module(self, mod, _ctx):
        composites = {
            gv.name_hint: (composite_conv(f), str(f.attrs[ATTR_REPORT]))
            for gv, f in mod.functions_items()
            if is_subbit_composite(f)
        }
        if not composites:
            return mod
        lowerer = _Lowerer(mod, composites, self.cpu, self.plans)
        for gv, func in list(mod.functions_items()):
            if (
                isinstance(func, relax.Function)
                and not is_subbit_composite(func)
                and not is_offloaded(func)
            ):
                lowerer.builder_.update_func(gv, lowerer.visit_expr(func))
        # A sign op whose only reader was a binary SNN conv is now unused.
        lowered = relax.transform.DeadCodeElimination()(lowerer.builder_.get())
        return rebuilt(
            lowered,
            {gv: f for gv, f in lowered.functions_items() if gv.name_hint not in composites},
        )
