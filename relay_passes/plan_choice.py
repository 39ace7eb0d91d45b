"""Who picks each kernel's plan: the hand choice by default, a tuner or a tuning database otherwise.

The lowering passes (LowerSubBitConv, LowerDenseConv) build each kernel from
a plan (:mod:`schedules.plan`). Before building, they describe the kernel as
a :class:`KernelTask` and ask their ``plans`` object for the plan:
:class:`HandPlans` answers with the task's default (the hand schedule);
``tvm_snn.tuning`` records the tasks of a model while tuning, and answers
with the best plan a tuning database holds when compiling.

A plan decides the kernel's buffers (weight packing, padded grids), not only
its schedule, so a task carries ``build``: the scheduled kernel for any plan
of its space, ready to measure.
"""

from dataclasses import dataclass

import tvm


@dataclass(frozen=True)
class KernelTask:
    """One kernel a lowering pass is about to build.

    Attributes
    ----------
    kind : str
        The plan kind (``"pixel-lane"``, ``"lane"``, ``"dense-conv"``).
    label : str
        A short description for reports (``"snn 64x56x56 -> 64, 3x3"``).
    workload : tvm.IRModule
        ``{"main": the unscheduled kernel of the default plan}``: what a
        tuning database keys the task by.
    plan_block : str
        The kernel's block that carries the plan annotation.
    default_plan : schedules.plan.Plan
        The hand choice.
    space : dict
        ``{knob: legal values}`` (``Plan.space``).
    plan_type : type
        The plan class (``from_json``, ``validate``).
    build : callable
        ``plan -> tvm.tirx.PrimFunc``: the scheduled kernel alone, for
        measuring; raises ``FormatError`` for a plan that is not legal here.
    validate : callable
        ``plan -> plan``: raises ``FormatError`` unless the plan is legal here.
    """

    kind: str
    label: str
    workload: tvm.IRModule
    plan_block: str
    default_plan: object
    space: dict
    plan_type: type
    build: object
    validate: object


@dataclass(frozen=True)
class FallbackTask:
    """A kernel the generic CPU schedule covers (``schedules.dense_cpu``), which a tuner may schedule otherwise.

    Attributes
    ----------
    label : str
        The kernel's name in the module.
    workload : tvm.IRModule
        ``{"main": the unscheduled kernel}``.
    hand : tvm.s_tir.Schedule
        The hand schedule on ``workload`` (its trace seeds a search).
    """

    label: str
    workload: tvm.IRModule
    hand: object


def plan_task(label, kernel, plan_block, geometry, data_shape, cpu, build_scheduled):
    """The :class:`KernelTask` of ``kernel`` (built with its default plan) for a lowering pass.

    Parameters
    ----------
    label : str
    kernel : object
        The built kernel: ``.func`` (unscheduled) and ``.plan``.
    plan_block : str
    geometry, data_shape, cpu
        What the plan class's ``space`` and ``validate`` take.
    build_scheduled : callable
        ``plan -> scheduled PrimFunc``.
    """
    plan_type = type(kernel.plan)

    def validate(plan):
        return plan.validate(geometry, data_shape, cpu)

    def build(plan):
        validate(plan)
        return build_scheduled(plan)

    return KernelTask(
        kind=plan_type.KIND,
        label=label,
        workload=tvm.IRModule({"main": kernel.func}),
        plan_block=plan_block,
        default_plan=kernel.plan,
        space=plan_type.space(geometry, data_shape, cpu),
        plan_type=plan_type,
        build=build,
        validate=validate,
    )


def built_with_chosen_plan(plans, default_plan, build, task_of):
    """``build(plan)`` with the plan ``plans`` chooses; the hand plans build once, without a task.

    Parameters
    ----------
    plans : object
        A ``plans`` object (:class:`HandPlans` or a tuner's).
    default_plan : schedules.plan.Plan
    build : callable
        ``plan -> kernel`` (unscheduled, with ``.plan`` and ``.func``).
    task_of : callable
        ``kernel built with the default plan -> KernelTask``.
    """
    kernel = build(default_plan)
    if plans is HAND_PLANS:
        return kernel
    plan = plans.choose(task_of(kernel))
    return kernel if plan == kernel.plan else build(plan)


class HandPlans:
    """The default ``plans`` object: every kernel takes its hand-chosen plan and schedule."""

    def choose(self, task):
        """The plan to build a :class:`KernelTask` with: its default."""
        return task.default_plan

    def choose_schedule(self, task):
        """The schedule of a :class:`FallbackTask`: its hand schedule."""
        return task.hand


HAND_PLANS = HandPlans()
