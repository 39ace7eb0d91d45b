"""ScheduleDenseFallback: CPU schedules for the kernels left dense.

Pipeline position: right after :mod:`relay_passes.schedule_subbit_kernels`,
on every PrimFunc that is not a sub-bit or lane kernel. A dense direct conv
(:mod:`relay_passes.lower_dense_conv`, told by the plan on its output block)
gets its own schedule (:mod:`schedules.dense_conv_schedule`), and so does
a dense matmul (:mod:`relay_passes.lower_dense_matmul`,
:mod:`schedules.dense_matmul_schedule`); the max pool kernel
(:mod:`schedules.dense_pool`) comes scheduled and is left alone; everything
else (pooling, the classifier, elementwise ops, convs the dense kernel does
not take) gets the generic one of :mod:`schedules.dense_cpu`, where TVM's
default Relax pipeline would leave serial loop nests.
"""

import tvm

from relay_passes.ir_module import rebuilt
from relay_passes.plan_choice import HAND_PLANS, FallbackTask
from schedules import kernels
from schedules.dense_conv_schedule import is_dense_conv, schedule_dense_conv
from schedules.dense_cpu import dense_schedule
from schedules.dense_matmul_schedule import is_dense_matmul, schedule_dense_matmul
from schedules.dense_pool import is_scheduled_pool


@tvm.transform.module_pass(opt_level=0, name="tvm_snn.ScheduleDenseFallback")
class ScheduleDenseFallback:
    """Schedule every PrimFunc that is not a sub-bit kernel.

    Parameters
    ----------
    plan : schedules.dense_cpu.DensePlan, optional
        The generic schedule's knobs; the defaults of ``schedules.knobs``.
    plans : object, optional
        Chooses the schedule of each kernel the generic schedule covers
        (``choose_schedule(FallbackTask)``, see :mod:`relay_passes.plan_choice`);
        the hand schedule by default.
    """

    def __init__(self, plan=None, plans=None):
        self.plan = plan
        self.plans = plans or HAND_PLANS

    def transform_module(self, mod, _ctx):
        functions = dict(mod.functions_items())
        for gv, func in mod.functions_items():
            if (
                not isinstance(func, tvm.tirx.PrimFunc)
                or is_scheduled_pool(func)
                or kernels.kernel_kind(func) is not None
            ):
                continue
            if is_dense_conv(func):
                functions[gv] = schedule_dense_conv(func)
            elif is_dense_matmul(func):
                functions[gv] = schedule_dense_matmul(func)
            else:
                workload = tvm.IRModule({"main": func.with_attr("global_symbol", "main")})
                hand = dense_schedule(workload["main"], self.plan)
                task = FallbackTask(label=gv.name_hint, workload=workload, hand=hand)
                chosen = self.plans.choose_schedule(task).mod["main"]
                symbol = func.attrs.get("global_symbol") if func.attrs else None
                chosen = chosen.without_attr("global_symbol")
                functions[gv] = (
                    chosen if symbol is None else chosen.with_attr("global_symbol", symbol)
                )
        return rebuilt(mod, functions)
