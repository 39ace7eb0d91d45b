"""FoldWeightSubgraphs: evaluate every subgraph whose inputs are all constants, with TVM.

Pipeline position: after :mod:`relay_passes.simplify_ste`, before
:mod:`relay_passes.detect_subbit_conv`, on the imported Relax graph. A model
whose quantizer runs in ``forward()`` exports each conv's weight as a
subgraph of its parameters and buffers (norm, argmin, gather or one-hot and
matmul, clamp, sign, mean, where, comparisons, casts, the STE arithmetic);
after this pass the weight is a plain constant, as if it had been frozen.

In each Relax function, a binding is constant when its value is an op call
(pure, or a ``call_tir`` of the module's PrimFuncs) whose arguments are all
constants or constant bindings. The constant bindings read by a non-constant
one (or returned) are the roots of the maximal constant subgraphs. All of a
function's roots are computed by one Relax function, legalized by TVM's
``LegalizeOps`` (the graph's own ops decide every value; nothing is fused,
so every op rounds as it would alone), built for ``llvm`` and run once by
``relax.VirtualMachine``. Each root's uses then read its value as a
``relax.const`` and the subgraph is removed.

The function records which ops produced each folded constant
(:func:`relay_passes.layer_records.with_folded_records`), keyed by the
constant's content, so the detector's report can say what was folded.
"""

import tvm
from tvm import relax
from tvm.relax.backend.cpu_generic import pipeline as cpu_pipeline

from relay_passes.layer_records import fingerprint, with_folded_records

CALL_TIR_OP = "relax.call_tir"
ATTR_PURITY = "FPurity"
FOLD_FUNC_NAME = "tvm_snn_fold_constants"
FOLD_TARGET = "llvm"


def _op_label(call):
    """The op's name without its ``relax.`` prefix; a ``call_tir`` by its PrimFunc."""
    name = call.op.name
    if name == CALL_TIR_OP:
        return call.args[0].name_hint
    return name.split(".", 1)[1] if name.startswith("relax.") else name


def _is_pure_op_call(expr, prim_funcs):
    if not isinstance(expr, relax.Call) or not isinstance(expr.op, tvm.ir.Op):
        return False
    if expr.op.name == CALL_TIR_OP:
        return isinstance(expr.args[0], relax.GlobalVar) and expr.args[0].name_hint in prim_funcs
    purity = expr.op.get_attr(ATTR_PURITY)
    return purity is not None and bool(purity)


class _Constness:
    """Which bindings of a function are computable from constants alone."""

    def __init__(self, prim_funcs):
        self.prim_funcs = prim_funcs
        self.constant = set()

    def is_constant(self, expr):
        if isinstance(expr, relax.Var):
            return expr in self.constant
        if isinstance(expr, relax.GlobalVar):
            return expr.name_hint in self.prim_funcs
        if isinstance(expr, relax.Tuple):
            return all(self.is_constant(field) for field in expr.fields)
        if isinstance(expr, relax.TupleGetItem):
            return self.is_constant(expr.tuple_value)
        if isinstance(expr, relax.Call):
            return _is_pure_op_call(expr, self.prim_funcs) and all(
                self.is_constant(arg) for arg in expr.args
            )
        if isinstance(expr, (relax.Function, relax.SeqExpr, relax.If)):
            return False
        # Constants, shapes, prim values, strings, dtypes: constant when nothing in them is free.
        return not relax.analysis.free_vars(expr) and not relax.analysis.free_symbolic_vars(expr)


def _is_static_tensor(var):
    ty = var.ty
    return (
        isinstance(ty, relax.TensorType)
        and isinstance(ty.shape, relax.ShapeExpr)
        and all(isinstance(dim, tvm.tirx.IntImm) for dim in ty.shape.values)
    )


def constant_subgraphs(func, prim_funcs):
    """The constant bindings of ``func`` and the roots of its maximal constant subgraphs.

    Parameters
    ----------
    func : relax.Function
    prim_funcs : set of str
        Names of the module's PrimFuncs (a ``call_tir`` of one is an op).

    Returns
    -------
    bindings : list of relax.VarBinding
        Every constant binding, in graph order.
    roots : dict
        ``{var: ops}``: each root (a computed tensor read by a non-constant
        binding or returned) and the labels of the ops of its subgraph, in
        graph order.
    """
    constness = _Constness(prim_funcs)
    bindings = []
    ancestry = {}  # var -> graph positions of the op bindings of its subgraph
    for block in func.body.blocks:
        for binding in block.bindings:
            if isinstance(binding, relax.VarBinding) and constness.is_constant(binding.value):
                constness.constant.add(binding.var)
                ancestry[binding.var] = _ancestry(binding.value, len(bindings), ancestry)
                bindings.append(binding)
    readers = set()
    for block in func.body.blocks:
        for binding in block.bindings:
            if binding.var not in constness.constant:
                readers.update(relax.analysis.free_vars(binding.value))
    readers.update(relax.analysis.free_vars(func.body.body))
    roots = {
        b.var: _labels([bindings[position].value for position in sorted(ancestry[b.var])])
        for b in bindings
        if b.var in readers and isinstance(b.value, relax.Call) and _is_static_tensor(b.var)
    }
    return bindings, roots


def _ancestry(value, position, ancestry):
    positions = set()
    for var in relax.analysis.free_vars(value):
        positions |= ancestry.get(var, set())
    if isinstance(value, relax.Call):
        positions.add(position)
    return positions


def _labels(calls):
    labels = []
    for call in calls:
        label = _op_label(call)
        if label not in labels:
            labels.append(label)
    return labels


def _fold_pipeline(target):
    """Legalize and build, with no fusion and no op-by-op FoldConstant."""
    cpu = cpu_pipeline

    @tvm.transform.module_pass(opt_level=0, name="tvm_snn.FoldPipeline")
    def _pipeline(mod, _ctx):
        with target:
            passes = (
                [relax.transform.LegalizeOps()]
                + cpu.dataflow_lower_passes(target)
                + cpu.finalize_passes(target)
            )
            return tvm.transform.Sequential(passes)(mod)

    return _pipeline


def evaluate(mod, bindings, roots):
    """Compute the roots' values: one Relax function of the constant bindings, built and run.

    Returns
    -------
    list of numpy.ndarray
        In the order of ``roots``.
    """
    out = relax.Var("folded", relax.TupleType([var.ty for var in roots]))
    block = relax.DataflowBlock([*bindings, relax.VarBinding(out, relax.Tuple(list(roots)))])
    fold = relax.Function([], relax.SeqExpr([block], out), out.ty)
    functions = {gv: f for gv, f in mod.functions_items() if isinstance(f, tvm.tirx.PrimFunc)}
    functions[relax.GlobalVar(FOLD_FUNC_NAME)] = fold.with_attr("global_symbol", FOLD_FUNC_NAME)
    target = tvm.target.Target(FOLD_TARGET)
    executable = tvm.compile(
        tvm.IRModule(functions), target=target, relax_pipeline=_fold_pipeline(target)
    )
    values = relax.VirtualMachine(executable, tvm.cpu())[FOLD_FUNC_NAME]()
    return [value.numpy() for value in values]


@relax.expr_functor.mutator
class _Substituter(relax.PyExprMutator):
    """Replace the uses of the folded roots by their constants; drop their bindings."""

    def __init__(self, mod, constants):
        super().__init__(mod)
        self.constants = constants

    def visit_var_(self, var):
        return self.constants[var] if var in self.constants else super().visit_var_(var)

    def visit_dataflow_var_(self, var):
        return self.constants[var] if var in self.constants else super().visit_dataflow_var_(var)

    def visit_var_binding_(self, binding):
        if binding.var not in self.constants:
            super().visit_var_binding_(binding)


def fold_function(mod, gv):
    """The module with ``mod[gv]``'s constant subgraphs folded; ``mod`` when there are none."""
    func = mod[gv]
    prim_funcs = {g.name_hint for g, f in mod.functions_items() if isinstance(f, tvm.tirx.PrimFunc)}
    bindings, roots = constant_subgraphs(func, prim_funcs)
    if not roots:
        return mod
    values = evaluate(mod, bindings, roots)
    constants = {var: relax.const(value) for var, value in zip(roots, values, strict=True)}
    substituter = _Substituter(mod, constants)
    new = substituter.visit_expr(func)
    records = {
        fingerprint(value): ",".join(ops) for value, ops in zip(values, roots.values(), strict=True)
    }
    substituter.builder_.update_func(gv, with_folded_records(new, records))
    return substituter.builder_.get()


@tvm.transform.module_pass(opt_level=0, name="tvm_snn.FoldWeightSubgraphs")
class FoldWeightSubgraphs:
    """Fold every constant-input subgraph of every Relax function into its value."""

    def transform_module(self, mod, _ctx):
        folded = mod
        for gv, func in list(mod.functions_items()):
            if isinstance(func, relax.Function):
                folded = fold_function(folded, gv)
        # The folded subgraphs have no readers left.
        return mod if folded.same_as(mod) else relax.transform.DeadCodeElimination()(folded)
