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
from tvm_snn.tuning.plans import RecordingPlans
from tvm_snn.tuning.records import (
    FAILED_SECS,
    check_manifest,
    measured,
    open_database,
    plan_record,
    read_manifest,
    write_manifest,
)
from tvm_snn.tuning.search import PlanSearch, cost_model, entry, measure_candidate, tune_context
from tvm_snn.tuning.workers import KeptBuilder, local_runner, rpc_runner, worker_environment

TRIALS_PER_ROUND = 8  # MetaSchedule's num_trials_per_iter
RUNNER_NUMBER = 3  # calls per timing
RUNNER_REPEAT = 3  # timings per candidate (the record keeps all; the best counts)
BUILDER_TIMEOUT_S = 60.0
SECONDS_PER_MS = 1e3


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
    """The model's tunable kernels: ``(tasks by workload hash, call sites by hash)``."""
    if isinstance(model, (str, os.PathLike)):
        model = load_onnx(model)
    tvm_target = parse_target(target_spec(target))
    recorder = RecordingPlans()
    mod = run_graph_passes(to_relax(model, example_inputs), tvm_target, snn_policy, plans=recorder)
    run_schedule_passes(mod, tvm_target, plans=recorder)
    return recorder.tasks, recorder.calls


def _builder(builder, workers):
    if builder == "local":
        return KeptBuilder(max_workers=workers, timeout_sec=BUILDER_TIMEOUT_S)
    if isinstance(builder, ms.builder.Builder):
        return builder
    raise ConfigError(f"builder must be 'local' or a MetaSchedule Builder, got {builder!r}")


def _runner(runner, timeout_s):
    """A MetaSchedule runner from ``runner``: "local", ``{"tracker": "host:port", "key": k}``, or a Runner."""
    if runner == "local":
        return local_runner(timeout_s, RUNNER_NUMBER, RUNNER_REPEAT)
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
        trials of earlier runs in this work dir included.
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
    tasks, calls = extract_tasks(model, spec, example_inputs, snn_policy)
    if not tasks:
        raise TuningError(
            "the model has no kernel to tune (no sub-bit conv and no dense conv was lowered)"
        )
    manifest = read_manifest(work_dir)
    if manifest is not None:
        check_manifest(manifest, work_dir, tvm_target, list(tasks))
    database = open_database(work_dir, drop_cut_tail=True)
    write_manifest(work_dir, tvm_target, list(tasks))
    searches = {
        key: PlanSearch(task, np.random.default_rng([seed, i]), measured(database, task))
        for i, (key, task) in enumerate(tasks.items())
    }
    contexts = {key: tune_context(task, tvm_target) for key, task in tasks.items()}
    model_cost = cost_model(seed)
    allocator = TrialAllocator(searches, calls)
    done = sum(len(s.measured) for s in searches.values())
    start = time.perf_counter()
    result = TuneResult(work_dir, database)
    result.curve.append(
        {"trials": done, "seconds": 0.0, "model_ms": allocator.model_secs() * SECONDS_PER_MS}
    )
    threads = default_threads(spec.get("num-cores") if isinstance(spec, dict) else None)
    with worker_environment(threads):
        kept_builder = _builder(builder, max(1, threads))
        timer = _runner(runner, timeout_s)
    try:
        while done < trials:
            batch = allocator.next_round(min(trials_per_round, trials - done), model_cost, contexts)
            if batch is None:
                break
            candidates = [candidate for _, candidate in batch]
            if not candidates:
                continue
            ran = {id(c) for c in measure(candidates, kept_builder, timer, tvm_target)}
            by_task = {}
            for key, candidate in batch:
                by_task.setdefault(key, []).append(candidate)
            for key, group in by_task.items():
                search, task = searches[key], tasks[key]
                before = search.best_secs
                for candidate in group:
                    record = plan_record(database, task, candidate.plan, candidate.secs, tvm_target)
                    database.commit_tuning_record(record)
                    search.measured[candidate.key] = min(candidate.secs) if candidate.secs else FAILED_SECS
                timed = [c for c in group if id(c) in ran]
                if timed:
                    model_cost.update(
                        contexts[key],
                        [measure_candidate(c.func) for c in timed],
                        [RunnerResult(c.secs, None) for c in timed],
                    )
                allocator.update(key, before, search.best_secs)
            done += len(candidates)
            elapsed = time.perf_counter() - start
            result.curve.append(
                {
                    "trials": done,
                    "seconds": elapsed,
                    "model_ms": allocator.model_secs() * SECONDS_PER_MS,
                }
            )
            if progress is not None:
                rate = (done - result.curve[0]["trials"]) / elapsed if elapsed > 0 else 0.0
                progress(
                    done,
                    trials,
                    allocator.model_secs() * SECONDS_PER_MS,
                    (trials - done) / rate if rate else None,
                )
    finally:
        if isinstance(kept_builder, KeptBuilder):
            kept_builder.shutdown()
    result.tasks = [_task_result(tasks[key], calls[key], searches[key]) for key in tasks]
    return result


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
