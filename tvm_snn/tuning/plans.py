"""The ``plans`` objects tuning hands the lowering passes (see :mod:`relay_passes.plan_choice`).

- :class:`RecordingPlans` (while tuning): every kernel takes its hand plan,
  and the tasks are kept, with how many call sites build each workload.
- :class:`DatabasePlans` (``compile(..., tuning_db=...)``): every kernel takes
  the fastest plan its workload's records hold (the hand plan is always one
  of them), and what was chosen is kept for the report.
"""

import dataclasses
from dataclasses import dataclass

import tvm

from tvm_snn.errors import TuningError
from tvm_snn.tuning.fallback import hand_secs, records_of
from tvm_snn.tuning.records import (
    FAILED_SECS,
    check_manifest,
    measured,
    open_database,
    read_manifest,
    run_time,
    workload_hash,
)


class RecordingPlans:
    """Hand plans and schedules, keeping each distinct task and its call count, by workload hash.

    ``tasks`` holds the plan tasks (``KernelTask``), ``fallback_tasks`` the
    kernels of the generic schedule (``FallbackTask``); ``calls`` counts both.
    """

    def __init__(self):
        self.tasks = {}
        self.fallback_tasks = {}
        self.calls = {}

    def choose(self, task):
        key = workload_hash(task.workload)
        self.tasks.setdefault(key, task)
        self.calls[key] = self.calls.get(key, 0) + 1
        return task.default_plan

    def choose_schedule(self, task):
        key = workload_hash(task.workload)
        self.fallback_tasks.setdefault(key, task)
        self.calls[key] = self.calls.get(key, 0) + 1
        return task.hand


@dataclass(frozen=True)
class KernelChoice:
    """What ``compile`` took for one kernel.

    Attributes
    ----------
    label : str
    tuned : bool
        A tuned plan was taken (else the hand plan, which measured fastest or
        was the only one).
    hand_ms, chosen_ms : float or None
        Measured times of the hand plan and of the plan taken.
    plan : str
        The plan taken, as JSON.
    """

    label: str
    tuned: bool
    hand_ms: float | None
    chosen_ms: float | None
    plan: str

    def to_json(self):
        """A JSON-ready dict (the artifact manifest keeps the choices)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data):
        """Rebuild from :meth:`to_json`.

        Raises
        ------
        TuningError
            When ``data`` is not such a dict.
        """
        names = [item.name for item in dataclasses.fields(cls)]
        if not isinstance(data, dict) or sorted(data) != sorted(names):
            raise TuningError(f"a kernel choice has the fields {names}, got {data!r}")
        numbers = all(
            data[k] is None or isinstance(data[k], (int, float)) for k in ("hand_ms", "chosen_ms")
        )
        if not (
            isinstance(data["label"], str)
            and isinstance(data["tuned"], bool)
            and isinstance(data["plan"], str)
            and numbers
        ):
            raise TuningError(f"a kernel choice has fields of the wrong types: {data!r}")
        return cls(**data)


class DatabasePlans:
    """The fastest measured plan of each task; the hand plan where the database has none."""

    def __init__(self, database):
        self.database = database
        self.seen = []  # workload hashes, one per call site
        self.choices = {}  # workload hash -> KernelChoice

    def choose(self, task):
        key = workload_hash(task.workload)
        self.seen.append(key)
        times = {
            plan: secs for plan, secs in measured(self.database, task).items() if secs < FAILED_SECS
        }
        hand = task.default_plan.to_json()
        best = min(times, key=times.get) if times else hand
        plan = task.plan_type.from_json(best)
        task.validate(plan)

        def ms(text):
            return times[text] * 1e3 if text in times else None

        self.choices[key] = KernelChoice(task.label, best != hand, ms(hand), ms(best), best)
        return plan

    def choose_schedule(self, task):
        """The best MetaSchedule record's schedule of a fallback kernel; the hand one without records."""
        key = workload_hash(task.workload)
        self.seen.append(key)
        records = records_of(self.database, task, 1)
        if not records:
            self.choices[key] = KernelChoice(task.label, False, None, None, "hand schedule")
            return task.hand
        best = records[0]
        sch = tvm.s_tir.Schedule(task.workload)
        best.trace.apply_to_schedule(sch, remove_postproc=False)
        secs, hand = run_time(best.run_secs), hand_secs(self.database, task)
        tuned = hand is None or secs < hand  # the hand schedule's record is among them
        self.choices[key] = KernelChoice(
            task.label,
            tuned,
            hand * 1e3 if hand else None,
            secs * 1e3,
            "metaschedule" if tuned else "hand schedule",
        )
        if not tuned:
            return task.hand
        return sch


def database_plans(work_dir):
    """:class:`DatabasePlans` on a tuning work dir.

    Raises
    ------
    TuningError
        When the work dir has no tuning manifest, or a corrupt database.
    """
    if read_manifest(work_dir) is None:
        raise TuningError(
            f"{work_dir} is not a tvm-snn tuning work dir (no manifest): run tvm_snn.tune first"
        )
    return DatabasePlans(open_database(work_dir))


def check_database(work_dir, target, plans):
    """After lowering with ``plans``: refuse a database made for another model or target.

    Raises
    ------
    TuningError
        Naming what differs.
    """
    check_manifest(read_manifest(work_dir), work_dir, target, plans.seen)


def format_tuning(choices):
    """The report's tuning table: per kernel, tuned or hand-scheduled, and the measured ms of each."""

    def ms(value):
        return f"{value:.4f}" if value is not None else "-"

    lines = [f"{'kernel (tuning)':<44} {'plan':<6} {'hand ms':>9} {'chosen ms':>9}"]
    for choice in choices:
        lines.append(
            f"{choice.label:<44} {'tuned' if choice.tuned else 'hand':<6} {ms(choice.hand_ms):>9} {ms(choice.chosen_ms):>9}"
        )
    tuned = sum(choice.tuned for choice in choices)
    lines.append(f"{len(choices)} tunable kernel(s), {tuned} on tuned plans")
    return "\n".join(lines)
