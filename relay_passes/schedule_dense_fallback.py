"""ScheduleDenseFallback: a default CPU schedule for the kernels left dense.

Pipeline position: right after :mod:`relay_passes.schedule_subbit_kernels`,
on every PrimFunc that is not a sub-bit or lane kernel (the stem conv, pooling, the
classifier, elementwise ops and convs the detector left dense). TVM's
default Relax pipeline would leave them as serial loop nests; see
:mod:`schedules.dense_cpu`.
"""

import tvm

from schedules import kernels
from schedules.dense_cpu import schedule_dense


@tvm.transform.module_pass(opt_level=0, name="tvm_snn.ScheduleDenseFallback")
class ScheduleDenseFallback:
    """Parallelize and vectorize every PrimFunc that is not a sub-bit kernel.

    Parameters
    ----------
    plan : schedules.dense_cpu.DensePlan, optional
        The fallback's knobs; the defaults of ``schedules.knobs``.
    """

    def __init__(self, plan=None):
        self.plan = plan

    def transform_module(self, mod, _ctx):
        functions = dict(mod.functions_items())
        for gv, func in mod.functions_items():
            if isinstance(func, tvm.tirx.PrimFunc) and kernels.kernel_kind(func) is None:
                functions[gv] = schedule_dense(func, self.plan)
        return tvm.IRModule(functions, attrs=mod.attrs, global_infos=mod.global_infos)
