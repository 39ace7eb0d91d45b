"""Helpers for the passes that replace Relax calls by kernel calls (LowerDenseConv, LowerDenseMatmul, LowerMaxPool)."""

import tvm
from tvm import relax

from schedules.tir_build import FLOAT_DTYPE

NO_DILATION = (1, 1)  # a conv's or a pool's dilation attribute when it has none


@relax.expr_functor.mutator
class _CallLowerer(relax.PyExprMutator):
    def __init__(self, mod, lower):
        super().__init__(mod)
        self.lower = lower

    def visit_call_(self, call):
        call = super().visit_call_(call)
        lowered = self.lower(call, self.builder_)
        return call if lowered is None else lowered


def static_float_shape(expr, rank=None):
    """The shape of ``expr`` as Python ints when it is a float32 tensor of static shape (of ``rank`` dims), else None."""
    ty = expr.ty
    if (
        not isinstance(ty, relax.TensorType)
        or ty.dtype != FLOAT_DTYPE
        or not isinstance(ty.shape, relax.ShapeExpr)
    ):
        return None
    dims = ty.shape.values
    if (rank is not None and len(dims) != rank) or any(
        not isinstance(d, tvm.tirx.IntImm) for d in dims
    ):
        return None
    return int_tuple(dims)


def int_tuple(values):
    """A tuple of Python ints from an array of TIR integers (a call's attributes)."""
    return tuple(int(v) for v in values)


def lower_calls(mod, lower):
    """A new module: every call in ``mod``'s Relax functions replaced by ``lower(call, builder)`` when not None.

    ``lower`` may add PrimFuncs to the module with ``builder.add_func``.
    """
    lowerer = _CallLowerer(mod, lower)
    for gv, func in list(mod.functions_items()):
        if isinstance(func, relax.Function):
            lowerer.builder_.update_func(gv, lowerer.visit_expr(func))
    return lowerer.builder_.get()
