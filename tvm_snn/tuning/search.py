"""The search over one kernel's plan space: evolutionary proposals ranked by MetaSchedule's XGBoost model.

A task's space is the product of its plan's legal knob values
(``Plan.space``), cut to the plans ``validate`` accepts. Each round,
:meth:`PlanSearch.propose` makes candidates: the hand plan first (so tuning
never loses to it), then mutants of the best measured plans (one knob moved
to a neighbouring legal value) and random plans. Once the cost model has
trained, it ranks them by the features MetaSchedule extracts from their
scheduled TIR (``per-store-feature``), and the best are measured, plus a
share of random ones (``EPSILON``) so the model keeps learning. The records
are MetaSchedule's, so MetaSchedule's cost model learns from every task.
"""

import contextlib
import dataclasses
import sys
import types

import tvm
from tvm.s_tir import meta_schedule as ms

from tvm_snn.errors import FormatError
from tvm_snn.tuning.records import FAILED_SECS
from tvm_snn.tuning.workers import TENSOR_INTRIN_MODULE

EPSILON = 0.25  # share of each batch measured at random
MUTANTS_PER_SLOT = 3  # candidates made per plan measured
TOP_PARENTS = 3  # the best plans measured are the parents of mutants
SAMPLE_TRIES = 64  # random draws before a space counts as exhausted
WARMUP_SAMPLES = 8  # measured plans before the cost model ranks candidates


def cost_model(seed):
    """MetaSchedule's XGBoost cost model, trained from few samples."""
    del seed  # xgboost's own training is deterministic for given data
    return ms.cost_model.XGBModel(
        num_warmup_samples=WARMUP_SAMPLES, num_tuning_cores=1, adaptive_training=False
    )


@contextlib.contextmanager
def no_tensor_intrin():
    """Let ``TuneContext`` skip its tensor-intrinsic import (none of our spaces tensorizes)."""
    if TENSOR_INTRIN_MODULE in sys.modules:
        yield
        return
    sys.modules[TENSOR_INTRIN_MODULE] = types.ModuleType(TENSOR_INTRIN_MODULE)
    try:
        yield
    finally:
        del sys.modules[TENSOR_INTRIN_MODULE]


def tune_context(task, target):
    """The ``TuneContext`` the cost model groups a task's samples by."""
    with no_tensor_intrin():
        return ms.TuneContext(mod=task.workload, target=target, task_name=task.label, num_threads=1)


def entry(func):
    """A kernel as MetaSchedule builds and runs it: ``{"main": func}`` with symbol ``main``."""
    return tvm.IRModule({"main": func.with_attr("global_symbol", "main")})


@dataclasses.dataclass
class Candidate:
    """A plan to measure, with its scheduled kernel (None when building it failed) and why."""

    plan: object
    func: object = None
    error: str = ""
    secs: list = dataclasses.field(default_factory=list)

    @property
    def key(self):
        return self.plan.to_json()


class PlanSearch:
    """The search state of one task.

    Parameters
    ----------
    task : relay_passes.plan_choice.KernelTask
    rng : numpy.random.Generator
    measured : dict, optional
        ``{plan JSON: seconds}`` measured before (a resumed run).
    """

    def __init__(self, task, rng, measured=None):
        self.task = task
        self.rng = rng
        self.measured = dict(measured or {})
        self.knobs = [name for name, values in task.space.items() if len(values) > 1]
        self.exhausted = False

    @property
    def best_secs(self):
        """The fastest time measured so far (None before any success)."""
        times = [s for s in self.measured.values() if s < FAILED_SECS]
        return min(times) if times else None

    @property
    def hand_secs(self):
        return self.measured.get(self.task.default_plan.to_json())

    def _legal(self, plan):
        try:
            self.task.validate(plan)
        except FormatError:
            return False
        return True

    def _random(self):
        for _ in range(SAMPLE_TRIES):
            values = {name: self._pick(self.task.space[name]) for name in self.knobs}
            plan = dataclasses.replace(self.task.default_plan, **values)
            if self._legal(plan):
                return plan
        return None

    def _pick(self, values):
        return values[int(self.rng.integers(len(values)))]

    def _mutant(self, parent):
        for _ in range(SAMPLE_TRIES):
            name = self.knobs[int(self.rng.integers(len(self.knobs)))]
            values = list(self.task.space[name])
            here = values.index(getattr(parent, name)) if getattr(parent, name) in values else 0
            step = int(self.rng.choice([-1, 1]))
            plan = dataclasses.replace(
                parent, **{name: values[min(max(here + step, 0), len(values) - 1)]}
            )
            if plan != parent and self._legal(plan):
                return plan
        return None

    def _parents(self):
        ranked = sorted((s, k) for k, s in self.measured.items() if s < FAILED_SECS)
        return [self.task.plan_type.from_json(k) for _, k in ranked[:TOP_PARENTS]]

    def _fresh(self, plans, count):
        """Up to ``count`` plans not measured and not in ``plans``, from mutants and random draws."""
        made, tries = [], 0
        seen = set(self.measured) | {p.to_json() for p in plans}
        parents = self._parents()
        while len(made) < count and tries < count * SAMPLE_TRIES and self.knobs:
            tries += 1
            use_parent = parents and self.rng.random() < 1 - EPSILON
            plan = self._mutant(self._pick(parents)) if use_parent else self._random()
            if plan is not None and plan.to_json() not in seen:
                seen.add(plan.to_json())
                made.append(plan)
        return made

    def propose(self, count, model, context):
        """Up to ``count`` candidates to measure next (the hand plan first, if not measured)."""
        plans = []
        if self.task.default_plan.to_json() not in self.measured:
            plans.append(self.task.default_plan)
        if len(plans) < count:
            pool = self._fresh(plans, (count - len(plans)) * MUTANTS_PER_SLOT)
            plans += self._ranked(pool, count - len(plans), model, context)
        if not plans:
            self.exhausted = True
        return [self._build(plan) for plan in plans]

    def _ranked(self, pool, count, model, context):
        # Before WARMUP_SAMPLES the model would rank at random (from NumPy's global state): keep our order.
        if (
            len(pool) <= count
            or model is None
            or model.booster is None
            or model.data_size < WARMUP_SAMPLES
        ):
            return pool[:count]
        built = [self._build(plan) for plan in pool]
        ok = [c for c in built if c.func is not None]
        if not ok:
            return pool[:count]
        scores = model.predict(context, [measure_candidate(c.func) for c in ok])
        order = sorted(range(len(ok)), key=lambda i: -scores[i])
        explore = int(round(count * EPSILON))
        chosen = [ok[i].plan for i in order[: count - explore]]
        rest = [ok[i].plan for i in order[count - explore :]]
        picks = self.rng.permutation(len(rest))[:explore] if rest else []
        return chosen + [rest[int(i)] for i in picks]

    def _build(self, plan):
        try:
            return Candidate(plan, self.task.build(plan))
        except Exception as err:  # a plan the kernel builder refuses, or TVM fails to schedule
            return Candidate(plan, None, f"{type(err).__name__}: {err}")


def measure_candidate(func):
    """A MetaSchedule ``MeasureCandidate`` of a scheduled kernel (for the cost model)."""
    return ms.MeasureCandidate(
        tvm.s_tir.Schedule(entry(func)), ms.arg_info.ArgInfo.from_prim_func(func)
    )
