"""``tvm_snn.tune``: measure other plans of a model's kernels and keep the fastest in a MetaSchedule database.

The model goes through the same passes as ``tvm_snn.compile``, with a
:class:`~tvm_snn.tuning.plans.RecordingPlans` that keeps each kernel's task
(the sub-bit kernels and the dense convs). Rounds of candidates
(:class:`~tvm_snn.tuning.search.PlanSearch`) are built by MetaSchedule's
builder on a kept worker pool and timed by its runner (local, or an RPC
runner to a board); each result is appended to the work dir's database at
once, and MetaSchedule's XGBoost model learns from it. A second call on the
same work dir resumes: the plans measured are not measured again, and the
trials done count toward ``trials``.
"""

import os
import shutil
import time
from dataclasses import dataclass, field

import numpy as np
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.runner import RunnerResult

from relay_passes.pipeline import run_graph_passes, run_schedule_passes
from tvm_snn.errors import ConfigError, TuningError
from tvm_snn.importers import load_onnx, to_relax
from tvm_snn.target import parse_target, target_spec
from tvm_snn.threads import default_threads
from tvm_snn.tuning.allocation import TrialAllocator
from tvm_snn.tuning.fallback import best_secs, hand_secs, measure_hands, records_of, tune_fallback
from tvm_snn.tuning.plans import RecordingPlans
from tvm_snn.tuning.records import (
    FAILED_SECS,
    check_manifest,
    measured,
    open_database,
    plan_record,
    read_manifest,
    run_time,
    write_manifest,
)
from tvm_snn.tuning.search import PlanSearch, cost_model, entry, measure_candidate, tune_context
from tvm_snn.tuning.workers import KeptBuilder, local_runner, rpc_runner, worker_environment

TRIALS_PER_ROUND = 8  # MetaSchedule's num_trials_per_iter
RUNNER_NUMBER = 3  # calls per timing
RUNNER_REPEAT = 3  # timings per candidate (the record keeps all; their median counts)
RUNNER_MIN_REPEAT_MS = 20  # each timing runs the kernel for at least this long
BUILDER_TIMEOUT_S = 60.0
SECONDS_PER_MS = 1e3
FALLBACK_KIND = "metaschedule"  # the kind of a fallback kernel's TaskResult


@dataclass(frozen=True)
class TaskResult:
    """One task after tuning: its hand and best times (ms) and plans, and its trials."""

    label: str
    kind: str
    calls: int
    trials: int
    hand_ms: float | None
    best_ms: float | None
    hand_plan: str
    best_plan: str


@dataclass
class TuneResult:
    """What :func:`tune` returns.

    Attributes
    ----------
    work_dir : str
        The work dir (pass it to ``compile(..., tuning_db=work_dir)``).
    database : tvm.s_tir.meta_schedule.database.JSONDatabase
    tasks : list of TaskResult
    curve : list of dict
        Per round: ``trials`` done, ``seconds`` since the start, and
        ``model_ms``, the model's kernel time at the best plans so far.
    """

    work_dir: str
    database: object
    tasks: list = field(default_factory=list)
    curve: list = field(default_factory=list)

    @property
    def trials_per_minute(self):
        """Trials measured per minute in this call (resumed trials not counted)."""
        first, last = self.curve[0], self.curve[-1]
        spent = last["seconds"] - first["seconds"]
        return (last["trials"] - first["trials"]) / spent * 60 if spent > 0 else 0.0


def extract_tasks(model, target, example_inputs=None, snn_policy=None):
    """The model's tunable kernels: ``(plan tasks, fallback tasks, call sites)``, each by workload hash."""
    if isinstance(model, (str, os.PathLike)):
        model = load_onnx(model)
    tvm_target = parse_target(target_spec(target))
    recorder = RecordingPlans()
    mod = run_graph_passes(to_relax(model, example_inputs), tvm_target, snn_policy, plans=recorder)
    run_schedule_passes(mod, tvm_target, plans=recorder)
    return recorder.tasks, recorder.fallback_tasks, recorder.calls


def _builder(builder, workers):
    if builder == "local":
        return KeptBuilder(max_workers=workers, timeout_sec=BUILDER_TIMEOUT_S)
    if isinstance(builder, ms.builder.Builder):
        return builder
    raise ConfigError(f"builder must be 'local' or a MetaSchedule Builder, got {builder!r}")


def _runner(runner, timeout_s):
    """A MetaSchedule runner from ``runner``: "local", ``{"tracker": "host:port", "key": k}``, or a Runner."""
    if runner == "local":
        return local_runner(timeout_s, RUNNER_NUMBER, RUNNER_REPEAT, RUNNER_MIN_REPEAT_MS)
    if isinstance(runner, dict) and set(runner) == {"tracker", "key"}:
        host, _, port = str(runner["tracker"]).rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"runner tracker must be 'host:port', got {runner['tracker']!r}")
        return rpc_runner(
            host, int(port), str(runner["key"]), timeout_s, RUNNER_NUMBER, RUNNER_REPEAT
        )
    if isinstance(runner, ms.runner.Runner):
        return runner
    raise ConfigError(
        f"runner must be 'local', {{'tracker': 'host:port', 'key': ...}} or a MetaSchedule Runner, got {runner!r}"
    )


def measure(candidates, builder, runner, target):
    """Build and time ``candidates`` (in place: ``secs``, or ``error``); return those that ran."""
    for candidate in candidates:
        candidate.secs = []
    ready = [c for c in candidates if c.func is not None]
    built = builder.build([ms.builder.BuilderInput(entry(c.func), target) for c in ready])
    timed, inputs = [], []
    for candidate, result in zip(ready, built, strict=True):
        if result.error_msg:
            candidate.error = str(result.error_msg)
            continue
        args = ms.arg_info.ArgInfo.from_prim_func(candidate.func)
        inputs.append(ms.runner.RunnerInput(result.artifact_path, "cpu", args))
        timed.append((candidate, result.artifact_path))
    for (candidate, path), future in zip(timed, runner.run(inputs), strict=True):
        outcome = future.result()
        if outcome.error_msg:
            candidate.error = str(outcome.error_msg)
        else:
            candidate.secs = [float(s) for s in outcome.run_secs]
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)
    return [c for c, _ in timed if c.secs]


def tune(
    model,
    target="x86",
    work_dir="tuning",
    trials=64,
    runner="local",
    builder="local",
    seed=0,
    timeout_s=30.0,
    trials_per_round=TRIALS_PER_ROUND,
    example_inputs=None,
    snn_policy=None,
    progress=None,
):
    """Tune a model's kernels for ``target``; the work dir's database is what ``compile(tuning_db=)`` reads.

    Parameters
    ----------
    model : as for :func:`tvm_snn.compile`
    target : str or dict
        As for :func:`tvm_snn.compile`; its ``num-cores`` sets the threads
        candidates are timed with.
    work_dir : str
        MetaSchedule's work dir: its JSON database, plus ``tvm_snn_tuning.json``.
        An existing one is resumed (same model and target only).
    trials : int
        MetaSchedule's ``max_trials_global``: candidates measured in all, the
        trials of earlier runs in this work dir included (MetaSchedule's own
        search, on the kernels of the generic schedule, may finish its last
        batch a few trials past it).
    runner : "local", dict or tvm.s_tir.meta_schedule.runner.Runner
        Where candidates are timed: this machine; the boards of an RPC
        tracker, ``{"tracker": "host:port", "key": device_key}``; or any
        MetaSchedule runner.
    builder : "local" or tvm.s_tir.meta_schedule.builder.Builder
    seed : int
        Seeds the search (a run is deterministic up to measurement noise).
    timeout_s : float
        A candidate that runs longer is recorded as failed.
    trials_per_round : int
        Candidates per round (``num_trials_per_iter``).
    example_inputs, snn_policy
        As for :func:`tvm_snn.compile`.
    progress : callable, optional
        Called after each round with ``(trials done, trials, best model ms, seconds left)``.

    Returns
    -------
    TuneResult

    Raises
    ------
    TuningError
        When the model has no tunable kernel, or the work dir holds a corrupt
        database or one made for another model or target.
    ConfigError
        For a bad ``trials``, ``runner`` or ``builder``.
    """
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"trials must be a positive integer, got {trials!r}")
    spec = target_spec(target)
    tvm_target = parse_target(spec)
    tasks, fallback_tasks, calls = extract_tasks(model, spec, example_inputs, snn_policy)
    if not tasks and not fallback_tasks:
        raise TuningError("the model has no kernel to tune")
    hashes = [*tasks, *fallback_tasks]
    manifest = read_manifest(work_dir)
    if manifest is not None:
        check_manifest(manifest, work_dir, tvm_target, hashes)
    database = open_database(work_dir, drop_cut_tail=True)
    write_manifest(work_dir, tvm_target, hashes)
    searches = {
        key: PlanSearch(task, np.random.default_rng([seed, i]), measured(database, task))
        for i, (key, task) in enumerate(tasks.items())
    }
    run = _Run(
        tasks, searches, fallback_tasks, calls, database, tvm_target, cost_model(seed), progress
    )
    run.done = sum(len(s.measured) for s in searches.values()) + run.fallback_records()
    result = TuneResult(work_dir, database)
    run.result = result
    run.point(trials)
    threads = default_threads(spec.get("num-cores") if isinstance(spec, dict) else None)
    with worker_environment(threads):
        run.builder = _builder(builder, max(1, threads))
        run.runner = _runner(runner, timeout_s)
    try:
        while run.done < trials:  # hand plans, then hand schedules, then the plan search
            count = min(trials_per_round, trials - run.done)
            if run.allocator.hands_left():
                run.plan_round(count)
            elif run.fallback_hands_left():
                run.fallback_hands(trials)
            elif run.done >= trials - run.fallback_budget(
                trials, trials_per_round
            ) or not run.plan_round(count):
                break
            run.point(trials)
        left = trials - run.done
        if fallback_tasks and left > 0:
            run.fallback_search(left, trials_per_round, work_dir)
            run.point(trials)
    finally:
        if isinstance(run.builder, KeptBuilder):
            run.builder.shutdown()
    result.tasks = [_task_result(tasks[key], calls[key], searches[key]) for key in tasks]
    result.tasks += [
        _fallback_result(fallback_tasks[key], calls[key], database) for key in fallback_tasks
    ]
    return result


class _Run:
    """The state of one tune call: what is measured, by what, and how far it got."""

    def __init__(
        self, tasks, searches, fallback_tasks, calls, database, target, model_cost, progress
    ):
        self.tasks, self.searches, self.fallback_tasks, self.calls = (
            tasks,
            searches,
            fallback_tasks,
            calls,
        )
        self.database, self.target, self.model_cost, self.progress = (
            database,
            target,
            model_cost,
            progress,
        )
        self.contexts = {key: tune_context(task, target) for key, task in tasks.items()}
        self.allocator = TrialAllocator(searches, calls)
        self.fallback_best = {
            key: best_secs(database, task) for key, task in fallback_tasks.items()
        }
        self.budget = None  # trials left to the fallback search, once the hand plans are measured
        self.hands_tried = set()  # fallback tasks whose hand schedule this run measured
        self.builder = self.runner = self.result = None
        self.done = 0
        self.start = time.perf_counter()

    def fallback_records(self):
        return sum(len(records_of(self.database, t)) for t in self.fallback_tasks.values())

    def model_ms(self):
        fallback = sum(self.calls[k] * s for k, s in self.fallback_best.items() if s < FAILED_SECS)
        return (self.allocator.model_secs() + fallback) * SECONDS_PER_MS

    def point(self, trials):
        elapsed = time.perf_counter() - self.start
        self.result.curve.append(
            {"trials": self.done, "seconds": elapsed, "model_ms": self.model_ms()}
        )
        if self.progress is not None and len(self.result.curve) > 1:
            rate = (self.done - self.result.curve[0]["trials"]) / elapsed if elapsed > 0 else 0.0
            self.progress(
                self.done, trials, self.model_ms(), (trials - self.done) / rate if rate else None
            )

    def _hands_to_measure(self):
        """Fallback tasks whose hand schedule has no record that ran (and was not tried in this run)."""
        return {
            k: t
            for k, t in self.fallback_tasks.items()
            if k not in self.hands_tried and hand_secs(self.database, t) is None
        }

    def fallback_hands_left(self):
        return bool(self._hands_to_measure())

    def fallback_hands(self, trials):
        """Measure (and record) the hand schedules of the fallback kernels not in the database yet."""
        new = {
            k: t
            for k, t in self.fallback_tasks.items()
            if not self.database.has_workload(t.workload)
        }
        new = dict(list(new.items())[: max(0, trials - self.done)])
        if new:
            self.fallback_best.update(
                measure_hands(new, self.database, self.builder, self.runner, self.target, measure)
            )
            self.done += len(new)

    def fallback_budget(self, trials, per_round):
        """Trials kept for the fallback search: their share of the model's time (at least a round), once known."""
        if not self.fallback_tasks:
            return 0
        if self.budget is None and all(s.hand_secs is not None for s in self.searches.values()):
            plan = self.allocator.model_secs()
            fallback = sum(
                self.calls[k] * s for k, s in self.fallback_best.items() if s < FAILED_SECS
            )
            share = fallback / (plan + fallback) if plan + fallback > 0 else 0.0
            left = trials - self.done
            self.budget = min(left, max(per_round, round(left * share)))
        return self.budget or 0

    def plan_round(self, count):
        """Measure one round of plan candidates; False when every plan space is exhausted."""
        batch = self.allocator.next_round(count, self.model_cost, self.contexts)
        if batch is None:
            return False
        candidates = [candidate for _, candidate in batch]
        ran = {id(c) for c in measure(candidates, self.builder, self.runner, self.target)}
        by_task = {}
        for key, candidate in batch:
            by_task.setdefault(key, []).append(candidate)
        for key, group in by_task.items():
            search, task = self.searches[key], self.tasks[key]
            before = search.best_secs
            for candidate in group:
                record = plan_record(
                    self.database, task, candidate.plan, candidate.secs, self.target
                )
                self.database.commit_tuning_record(record)
                search.measured[candidate.key] = run_time(candidate.secs)
            timed = [c for c in group if id(c) in ran]
            if timed:
                self.model_cost.update(
                    self.contexts[key],
                    [measure_candidate(c.func) for c in timed],
                    [RunnerResult(c.secs, None) for c in timed],
                )
            self.allocator.update(key, before, search.best_secs)
        self.done += len(candidates)
        return True

    def fallback_search(self, trials, per_round, work_dir):
        best = tune_fallback(
            self.fallback_tasks,
            self.calls,
            trials,
            per_round,
            work_dir,
            self.database,
            self.builder,
            self.runner,
            self.target,
            self.model_cost,
        )
        self.fallback_best.update(best)
        # MetaSchedule's scheduler may end its last batch past the budget: count what it measured
        self.done = sum(len(s.measured) for s in self.searches.values()) + self.fallback_records()


def _fallback_result(task, calls, database):
    records = records_of(database, task)
    best = best_secs(database, task)
    hand = hand_secs(database, task)
    return TaskResult(
        label=task.label,
        kind=FALLBACK_KIND,
        calls=calls,
        trials=len(records),
        hand_ms=hand * SECONDS_PER_MS if hand is not None and hand < FAILED_SECS else None,
        best_ms=best * SECONDS_PER_MS if best < FAILED_SECS else None,
        hand_plan="hand schedule",
        best_plan="metaschedule" if hand is None or best < hand else "hand schedule",
    )


def _task_result(task, calls, search):
    best = search.best_secs
    times = {k: s for k, s in search.measured.items() if s < FAILED_SECS}
    best_plan = min(times, key=times.get) if times else task.default_plan.to_json()
    hand = search.hand_secs
    return TaskResult(
        label=task.label,
        kind=task.kind,
        calls=calls,
        trials=len(search.measured),
        hand_ms=hand * SECONDS_PER_MS if hand is not None and hand < FAILED_SECS else None,
        best_ms=best * SECONDS_PER_MS if best is not None else None,
        hand_plan=task.default_plan.to_json(),
        best_plan=best_plan,
    )
