"""The kernels of the generic CPU schedule (pooling, elementwise, what no kernel of ours takes), tuned MetaSchedule's own way.

Each is a :class:`~relay_passes.plan_choice.FallbackTask`: its unscheduled
PrimFunc is a MetaSchedule workload, searched in MetaSchedule's default CPU
space (``post-order-apply`` with the generic ``llvm`` rules, postprocessors
and mutators, ``evolutionary`` search, MetaSchedule's gradient task
scheduler), on the run's builder,
runner, database and cost model. The hand schedule is measured first and
committed as a record, so it seeds the evolutionary search's first
population and compile never takes a slower schedule.
"""

import tvm
from tvm.s_tir import meta_schedule as ms
from tvm_ffi import structural_equal

from tvm_snn.tuning.records import FAILED_SECS, run_time
from tvm_snn.tuning.search import Candidate, no_tensor_intrin


class _HandPlan:
    """The stand-in plan of a hand schedule (records carry its trace, not a plan)."""

    def to_json(self):
        return "hand schedule"


def measure_hands(tasks, database, builder, runner, target, measure):
    """Time each task's hand schedule and commit it as a MetaSchedule record; return ``{key: seconds}``."""
    keys = list(tasks)
    candidates = [Candidate(_HandPlan(), tasks[key].hand.mod["main"]) for key in keys]
    measure(candidates, builder, runner, target)
    best = {}
    for key, candidate in zip(keys, candidates, strict=True):
        task = tasks[key]
        secs = candidate.secs or [FAILED_SECS]
        workload = database.commit_workload(task.workload)
        args_info = ms.arg_info.ArgInfo.from_prim_func(task.workload["main"])
        database.commit_tuning_record(
            ms.database.TuningRecord(task.hand.trace, workload, secs, target, args_info)
        )
        best[key] = run_time(candidate.secs)
    return best


def _generic_space():
    """``post-order-apply`` with MetaSchedule's generic LLVM rules.

    For an x86 target MetaSchedule would take its x86 rules, which tensorize
    with VNNI intrinsics; the workers do not load the intrinsics (see
    :mod:`tvm_snn.tuning.workers`) and these kernels are float pooling and
    elementwise ops, which VNNI does not serve.
    """
    kind = "llvm"
    return ms.space_generator.PostOrderApply(
        sch_rules=ms.schedule_rule.ScheduleRule.create(kind),
        postprocs=ms.postproc.Postproc.create(kind),
        mutator_probs=ms.mutator.Mutator.create(kind),
    )


def tune_fallback(
    tasks, calls, trials, per_round, work_dir, database, builder, runner, target, cost_model
):
    """Run MetaSchedule's own search on ``tasks`` for ``trials`` trials in all; return ``{key: best seconds}``."""
    keys = list(tasks)
    with no_tensor_intrin():
        contexts = [
            ms.TuneContext(
                mod=tasks[key].workload,
                target=target,
                space_generator=_generic_space(),
                search_strategy="evolutionary",
                task_name=tasks[key].label,
                num_threads=1,
            )
            for key in keys
        ]
    ms.tune_tasks(
        tasks=contexts,
        task_weights=[float(calls[key]) for key in keys],
        work_dir=work_dir,
        max_trials_global=trials,
        num_trials_per_iter=per_round,
        builder=builder,
        runner=runner,
        database=database,
        cost_model=cost_model,
    )
    return {key: best_secs(database, tasks[key]) for key in keys}


def records_of(database, task, top_k=1 << 16):
    """The task's records that ran, fastest first (none, without committing its workload, when it has none)."""
    if not database.has_workload(task.workload):
        return []
    return list(database.get_top_k(database.commit_workload(task.workload), top_k))


def best_secs(database, task):
    """The best time the database holds for a fallback task (``FAILED_SECS`` when none ran)."""
    records = records_of(database, task, 1)
    return run_time(records[0].run_secs) if records else FAILED_SECS


def hand_secs(database, task):
    """The time of the record whose trace gives the task's hand schedule, or None."""
    for record in records_of(database, task):
        sch = tvm.s_tir.Schedule(task.workload)
        record.trace.apply_to_schedule(sch, remove_postproc=False)
        if structural_equal(sch.mod, task.hand.mod):
            return run_time(record.run_secs)
    return None
