"""ScheduleSubBitKernels: schedule each sub-bit kernel after fusion.

Pipeline position: after TVM's legalization and ``FuseOps``/``FuseTIR``, before
the dataflow is lowered. :mod:`relay_passes.lower_subbit_conv` emits the
kernels unscheduled and marked fusable, so ``FuseOps`` can append the
elementwise ops that follow a conv (bias, residual add, ReLU, the next
layer's sign); this pass then schedules each fused function with
:func:`schedules.kernels.schedule`, which reads the kernel's plan from the
function and folds that epilogue into the gather loop.
"""

import tvm

from relay_passes.ir_module import with_updates
from schedules import kernels


@tvm.transform.module_pass(opt_level=0, name="tvm_snn.ScheduleSubBitKernels")
class ScheduleSubBitKernels:
    """Apply the sub-bit kernel schedules to every PrimFunc that holds a kernel."""

    def transform_module(self, mod, _ctx):
        updates = {
            gv: kernels.schedule(func)
            for gv, func in mod.functions_items()
            if isinstance(func, tvm.tirx.PrimFunc) and kernels.kernel_kind(func) is not None
        }
        if not updates:
            return mod
        return with_updates(mod, updates)
