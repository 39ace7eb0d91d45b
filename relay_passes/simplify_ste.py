"""SimplifySTE: remove the straight-through estimator's residue ``a - b + b``.

Pipeline position: first of the graph passes, on the imported Relax graph,
before :mod:`relay_passes.fold_weight_subgraphs` (so a weight quantizer's
``w_b.detach() - w_c.detach() + w_c`` folds to ``w_b`` exactly) and before
:mod:`relay_passes.detect_subbit_conv` (so an activation
``sign(x).detach() - g(x).detach() + g(x)`` reaches the conv as ``sign(x)``).

Exported for inference, ``detach`` vanishes and the STE leaves
``(a - b) + b`` (or ``b + (a - b)``, or ``(a + (-b)) + b``). The pass
rewrites it to ``a``. In real arithmetic that is the same value; in float32
the graph rounds ``a - b`` and then the sum, so the graph's result differs
from ``a`` by at most about one ulp of ``max(|a|, |b|)`` (``2**-22`` for a
binarizer ``a`` in {-1, 0, +1} and a clamp ``b`` in [-1, 1]). ``b`` must be
the same expression on both sides (the same variable, or a binding of the
same op to the same arguments). The rewrite is a ``tvm.relax.dpl`` pattern;
the ``b`` left without readers is removed.
"""

import tvm
import tvm_ffi
from tvm import relax
from tvm.relax.dpl import is_op, rewrite_call, wildcard

from relay_passes.ir_module import rebuilt

ADD_OP = "relax.add"
SUBTRACT_OP = "relax.subtract"
NEGATIVE_OP = "relax.negative"

_A = wildcard()
_B = wildcard()
_B_AGAIN = wildcard()
_DIFFERENCE = is_op(SUBTRACT_OP)(_A, _B) | is_op(ADD_OP)(_A, is_op(NEGATIVE_OP)(_B))
# (a - b) + b' and b' + (a - b), with b' the same expression as b.
STE_RESIDUE_PATTERN = is_op(ADD_OP)(_DIFFERENCE, _B_AGAIN) | is_op(ADD_OP)(_B_AGAIN, _DIFFERENCE)


def _same(first, second, var2val):
    """Whether two matched expressions compute the same value (the same var, or equal bindings)."""
    if first.same_as(second):
        return True
    bound = [
        var2val.get(expr, expr) if isinstance(expr, relax.Var) else expr for expr in (first, second)
    ]
    return isinstance(bound[0], relax.Call) and tvm_ffi.structural_equal(bound[0], bound[1])


def simplify_function(func):
    """``func`` with every STE residue ``a - b + b`` replaced by ``a``; ``func`` itself when it has none."""
    var2val = relax.analysis.get_var2val(func)
    rewritten = []

    def rewriter(call, matchings):
        if _same(matchings[_B], matchings[_B_AGAIN], var2val):
            rewritten.append(call)
            return matchings[_A]
        return call

    new = rewrite_call(STE_RESIDUE_PATTERN, rewriter, func)
    return new if rewritten else func


@tvm.transform.module_pass(opt_level=0, name="tvm_snn.SimplifySTE")
class SimplifySTE:
    """Rewrite ``(a - b) + b`` to ``a`` in every Relax function, then drop what is unused."""

    def transform_module(self, mod, _ctx):
        changed = False
        functions = {}
        for gv, func in mod.functions_items():
            if isinstance(func, relax.Function):
                new = simplify_function(func)
                changed = changed or not new.same_as(func)
                func = new
            functions[gv] = func
        if not changed:
            return mod
        mod = rebuilt(mod, functions)
        return relax.transform.DeadCodeElimination()(relax.transform.CanonicalizeBindings()(mod))
