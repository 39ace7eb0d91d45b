"""ScheduleSubBitKernels: schedule each sub-bit kernel after fusion.

Pipeline position: after TVM's legalization and ``FuseOps``/``FuseTIR``, before
the dataflow is lowered. :mod:`relay_passes.lower_subbit_conv` emits the
kernels unscheduled and marked fusable, so ``FuseOps`` can append the
elementwise ops that follow a conv (bias, residual add, ReLU, the next
layer's sign); this pass then schedules each fused function with
:func:`schedules.subbit_tir.schedule_kernel`, which folds that epilogue into
the gather loop.
"""

import tvm

from schedules.subbit_lane_schedule import is_lane_kernel, schedule_lane_kernel
from schedules.subbit_schedule import is_subbit_kernel, schedule_kernel

DEFAULT_CORES = 2
DEFAULT_VECTOR_BYTES = 64


@tvm.transform.module_pass(opt_level=0, name="tvm_snn.ScheduleSubBitKernels")
class ScheduleSubBitKernels:
    """Apply the sub-bit kernel schedules to every PrimFunc that holds a kernel.

    Parameters
    ----------
    num_cores : int
        Cores the schedule spreads work over (the target's ``num-cores``).
    vector_bytes : int
        The target's SIMD register width, which sizes the register blocking.
    """

    def __init__(self, num_cores=DEFAULT_CORES, vector_bytes=DEFAULT_VECTOR_BYTES):
        self.num_cores = num_cores
        self.vector_bytes = vector_bytes

    def transform_module(self, mod, _ctx):
        updates = {}
        for gv, func in mod.functions_items():
            if not isinstance(func, tvm.tirx.PrimFunc):
                continue
            if is_subbit_kernel(func):
                updates[gv] = schedule_kernel(func, self.num_cores, self.vector_bytes)
            elif is_lane_kernel(func):
                updates[gv] = schedule_lane_kernel(func, self.num_cores)
        if not updates:
            return mod
        functions = dict(mod.functions_items())
        functions.update(updates)
        return tvm.IRModule(functions, attrs=mod.attrs, global_infos=mod.global_infos)
