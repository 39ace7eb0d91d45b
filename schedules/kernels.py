"""The front of the sub-bit kernels: pick a kernel, build it, schedule it.

Two kernels compute a :class:`~schedules.subbit.SubBitConv`:

- ``"pixel-lane"`` (:mod:`schedules.subbit_tir`, scheduled by
  :mod:`schedules.subbit_schedule`): output pixels in the vector lanes;
  every target;
- ``"lane"`` (:mod:`schedules.subbit_lane`, scheduled by
  :mod:`schedules.subbit_lane_schedule`): 64 output channels in the int8
  lanes, for binary 3x3 convs on small images, with AVX-512 VBMI.

:func:`select_plan` picks the kernel and its knobs for a CPU; :func:`build`
makes the kernel unscheduled (the graph passes let FuseTIR merge an
epilogue into it first); :func:`schedule` schedules a kernel, alone or
fused, from the plan it carries. :func:`build_scheduled` does all three.
"""

import dataclasses

import tvm

from schedules.cpu import CpuSpec
from schedules.lane_plan import LANE_KIND, LanePlan, lane_kernel_fits
from schedules.plan import plan_kind
from schedules.subbit import SubBitConv
from schedules.subbit_lane import build_lane_kernel
from schedules.subbit_lane_schedule import schedule_lane_kernel
from schedules.subbit_plan import PIXEL_LANE_KIND, SubBitPlan
from schedules.subbit_schedule import schedule_kernel
from schedules.subbit_tir import BLOCK_OUT, build_kernel, checked_output_hw
from tvm_snn.errors import FormatError

KINDS = (PIXEL_LANE_KIND, LANE_KIND)
_PLANS = {PIXEL_LANE_KIND: SubBitPlan, LANE_KIND: LanePlan}
_BUILDERS = {SubBitPlan: build_kernel, LanePlan: build_lane_kernel}
_SCHEDULES = {PIXEL_LANE_KIND: schedule_kernel, LANE_KIND: schedule_lane_kernel}


def _shape(data_shape):
    return tuple(int(d) for d in data_shape)


def select_plan(conv, data_shape, cpu=None, kind=None):
    """The kernel and knobs for ``conv`` on NCHW inputs of ``data_shape``.

    Parameters
    ----------
    conv : SubBitConv
    data_shape : tuple of int
    cpu : CpuSpec, optional
        The CPU (default: ``CpuSpec()``, 2 cores, AVX-512 without VBMI).
    kind : str, optional
        Force ``"pixel-lane"`` or ``"lane"``; by default the lane kernel is
        taken where the CPU has VBMI and
        :func:`~schedules.lane_plan.lane_kernel_fits` allows it.

    Returns
    -------
    SubBitPlan or LanePlan
        The hand schedule's plan.

    Raises
    ------
    FormatError
        For an unknown kind, a lane kernel that does not apply, or an input
        whose channels do not match the conv.
    """
    if not isinstance(conv, SubBitConv):
        raise TypeError(f"expected a SubBitConv, got {type(conv).__name__}")
    cpu = cpu or CpuSpec()
    shape = _shape(data_shape)
    out_hw = checked_output_hw(conv, shape)
    if kind is None:
        kind = LANE_KIND if cpu.vbmi and lane_kernel_fits(conv, out_hw) is None else PIXEL_LANE_KIND
    if kind not in _PLANS:
        raise FormatError(f"unknown sub-bit kernel {kind!r}; expected one of {KINDS}")
    return _PLANS[kind].default(conv, shape, cpu)


def build(conv, data_shape, plan):
    """The unscheduled kernel of ``plan`` for ``conv`` on inputs of ``data_shape``.

    Returns
    -------
    schedules.subbit_tir.SubBitKernel
    """
    builder = _BUILDERS.get(type(plan))
    if builder is None:
        raise FormatError(f"not a sub-bit kernel plan: {type(plan).__name__}")
    return builder(conv, _shape(data_shape), plan)


def kernel_kind(func):
    """``"pixel-lane"`` or ``"lane"`` when the PrimFunc holds that kernel, else None.

    Told by the plan on the kernel's output block, so it holds before and
    after scheduling, alone or fused with an epilogue.
    """
    kind = plan_kind(tvm.s_tir.Schedule(func), BLOCK_OUT)
    return kind if kind in KINDS else None


def schedule(func):
    """Schedule a sub-bit kernel PrimFunc, alone or fused with its epilogue.

    Raises
    ------
    FormatError
        When ``func`` holds no sub-bit kernel.
    """
    kind = kernel_kind(func)
    if kind is None:
        raise FormatError("the function holds no sub-bit kernel (no planned snn_out block)")
    return _SCHEDULES[kind](func)


def build_scheduled(conv, data_shape, cpu=None, plan=None):
    """Build and schedule the kernel for ``conv``, ready to compile and run.

    Parameters
    ----------
    conv : SubBitConv
    data_shape : tuple of int
    cpu : CpuSpec, optional
        Default ``CpuSpec()``.
    plan : SubBitPlan or LanePlan, optional
        Other knobs than the hand choices; checked against the plan's legal
        space on ``cpu``.

    Returns
    -------
    schedules.subbit_tir.SubBitKernel
        With the scheduled function.
    """
    cpu = cpu or CpuSpec()
    shape = _shape(data_shape)
    if plan is None:
        plan = select_plan(conv, shape, cpu)
    else:
        checked_output_hw(conv, shape)
        plan.validate(conv, shape, cpu)
    kernel = build(conv, shape, plan)
    return dataclasses.replace(kernel, func=schedule(kernel.func))
