"""The base of the kernel plans: knob values, their legal ranges, and how a
plan travels inside a kernel.

A plan holds every knob of one kernel (tile sizes, unit-group size, register
block, parallel split, unroll, vector width). ``Plan.space`` gives each
knob's legal values for a conv; the hand schedule uses ``Plan.default``;
a tuner picks other points of the space. The plan is stored as an
annotation on the kernel's output block (``PLAN_ANNOTATION``), so the
schedule reads it from the function even after FuseTIR has merged an
epilogue into it.
"""

import dataclasses
import json

import tvm

from tvm_snn.errors import FormatError

PLAN_ANNOTATION = "tvm_snn.plan"


def powers_of_two_dividing(n, at_most):
    """``1, 2, 4, ...`` up to ``at_most``, each dividing ``n``."""
    values, value = [], 1
    while value <= at_most and n % value == 0:
        values.append(value)
        value *= 2
    return tuple(values)


def divisors(n, at_most):
    """The divisors of ``n`` up to ``at_most``."""
    return tuple(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


class Plan:
    """Mixin of the plan dataclasses: range checks and JSON.

    Subclasses are frozen dataclasses with a ``KIND`` string, a
    ``default(conv, data_shape, cpu)`` classmethod (the hand choices) and a
    ``space(conv, data_shape, cpu)`` classmethod returning ``{knob: legal values}``.
    """

    KIND = ""

    def check(self, space):
        """Raise ``FormatError`` naming the first knob outside its legal values in ``space``."""
        for name, legal in space.items():
            value = getattr(self, name)
            if value not in legal:
                raise FormatError(f"{type(self).__name__}.{name}={value!r} is not legal here; legal: {list(legal)}")
        return self

    def check_joint(self, conv, data_shape):
        """Check the knobs that bound each other (none by default)."""

    def validate(self, conv, data_shape, cpu):
        """Check the plan against its legal space for ``conv`` on ``data_shape`` and ``cpu``.

        Raises
        ------
        FormatError
            Naming the first knob out of range.
        """
        self.check(self.space(conv, data_shape, cpu))
        self.check_joint(conv, data_shape)
        return self

    def to_json(self):
        """The plan as a JSON string, with its kind."""
        return json.dumps({"kind": self.KIND, **dataclasses.asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        """Rebuild a plan from :meth:`to_json` output.

        Raises
        ------
        FormatError
            On another kind of plan, or unknown or missing fields.
        """
        data = json.loads(str(text))
        kind = data.pop("kind", None)
        if kind != cls.KIND:
            raise FormatError(f"a {kind!r} plan is not a {cls.KIND!r} plan")
        names = {item.name for item in dataclasses.fields(cls)}
        if set(data) != names:
            raise FormatError(f"{cls.__name__}: fields {sorted(data)} do not match {sorted(names)}")
        return cls(**data)


def plan_kind(sch, block_name):
    """The kind of the plan annotated on block ``block_name``, or None (no such block, no plan)."""
    try:
        block = sch.get_sblock(block_name)
    except tvm.s_tir.schedule.ScheduleError:
        return None
    annotations = sch.get(block).annotations
    if PLAN_ANNOTATION not in annotations:
        return None
    return json.loads(str(annotations[PLAN_ANNOTATION])).get("kind")


def plan_of(sch, block_name, plan_type):
    """The plan annotated on block ``block_name`` of the schedule ``sch``.

    Raises
    ------
    FormatError
        When the block carries no plan.
    """
    annotations = sch.get(sch.get_sblock(block_name)).annotations
    if PLAN_ANNOTATION not in annotations:
        raise FormatError(f"block {block_name!r} carries no {PLAN_ANNOTATION!r} annotation")
    return plan_type.from_json(annotations[PLAN_ANNOTATION])
