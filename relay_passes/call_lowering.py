"""One helper for the passes that replace Relax calls by kernel calls (LowerDenseConv, LowerDenseMatmul)."""

from tvm import relax

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
