"""ScheduleDenseFallback: a default CPU schedule for the kernels left dense.

Pipeline position: right after :mod:`relay_passes.schedule_subbit_kernels`,
on every PrimFunc that is not a sub-bit or lane kernel (the stem conv, pooling, the
classifier, elementwise ops and convs the detector left dense). TVM's
default Relax pipeline would leave them as serial loop nests; see
:mod:`schedules.dense_cpu`.
"""

import tvm

from schedules.dense_cpu import schedule_dense
from schedules.subbit_lane_schedule import is_lane_kernel
from schedules.subbit_schedule import is_subbit_kernel


@tvm.transform.module_pass(opt_level=0, name="tvm_snn.ScheduleDenseFallback")
class ScheduleDenseFallback:
    """Parallelize and vectorize every PrimFunc that is not a sub-bit kernel."""

    def transform_module(self, mod, _ctx):
        functions = dict(mod.functions_items())
        for gv, func in mod.functions_items():
            if isinstance(func, tvm.tirx.PrimFunc) and not (is_subbit_kernel(func) or is_lane_kernel(func)):
                functions[gv] = schedule_dense(func)
        return tvm.IRModule(functions, attrs=mod.attrs, global_infos=mod.global_infos)
