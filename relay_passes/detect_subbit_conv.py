"""DetectSubBitConv: find sub-bit convs and wrap each chosen one in a composite function.

Pipeline position: first, on the imported Relax graph, before
:mod:`relay_passes.lower_subbit_conv` and before TVM's default pipeline
(legalization would turn the convs into TIR and hide them).

Every ``relax.nn.conv2d`` gets a :class:`~relay_passes.report.LayerReport`,
kept in the IR (see :mod:`relay_passes.layer_records`). Each conv the
analysis chooses to lower is replaced by a call to a private Relax function
that holds the conv with its constant weight, in the style of
``FuseOpsByPattern``::

    @R.function(private=True)
    def tvm_snn_subbit_conv2d(data):
        R.func_attr({"Composite": "tvm_snn.subbit_conv2d", "tvm_snn.tau": 5,
                     "tvm_snn.activation": "float", "tvm_snn.layer": "conv3:lv3",
                     "tvm_snn.report": "...", "tvm_snn.codebook": ..., ...})
        return R.nn.conv2d(data, W, ...)

The composite keeps the graph runnable as it is; the lowering pass (or an
offload target) replaces it. Its attributes carry the sub-bit format the
analysis found, so lowering does not derive it again. The reports of the
convs left dense go on the enclosing function (``tvm_snn.dense_convs``).

The match itself is a ``tvm.relax.dpl`` pattern (any ``conv2d``; with
``sign`` or a +-1 spelling before it, the binary form); the decision needs
the weight's values, which a pattern cannot see, so the analysis makes it.
A weight folded by :mod:`relay_passes.fold_weight_subgraphs` gets the ops it
was folded from in its report (``LayerReport.folded``); a weight that
depends on an input keeps the conv dense, and the report names the input
and the ops between.
"""

import tvm
from tvm import relax

from relay_passes.ir_module import with_updates
from relay_passes.layer_records import (
    ATTR_REPORT,
    conv_attrs,
    folded_records,
    report_record,
    with_dense_reports,
)
from relay_passes.policy import LoweringPolicy
from relay_passes.subbit_analysis import CONV_PATTERN, analyze_conv

COMPOSITE_NAME = "tvm_snn.subbit_conv2d"
COMPOSITE_FUNC_NAME = "tvm_snn_subbit_conv2d"
ATTR_COMPOSITE = "Composite"
ATTR_TAU = "tvm_snn.tau"
ATTR_ACTIVATION = "tvm_snn.activation"
ATTR_LAYER = "tvm_snn.layer"
# Set by an accelerator target on the functions it runs (Relax BYOC).
ATTR_CODEGEN = "Codegen"


def is_conv(expr):
    """Whether ``expr`` is a ``relax.nn.conv2d`` call."""
    return isinstance(expr, relax.Call) and CONV_PATTERN.match(expr)


def is_subbit_composite(func):
    """Whether ``func`` is a composite made by this pass."""
    return (
        isinstance(func, relax.Function)
        and func.attrs is not None
        and ATTR_COMPOSITE in func.attrs
        and str(func.attrs[ATTR_COMPOSITE]) == COMPOSITE_NAME
    )


def is_offloaded(func):
    """Whether ``func`` belongs to an accelerator target (it has a ``Codegen`` attribute)."""
    return func.attrs is not None and ATTR_CODEGEN in func.attrs


def _make_composite(call, analysis, order):
    """Build the private function ``data -> conv2d(data, W)`` with the SNN attributes."""
    data = relax.Var("data", call.args[0].ty)
    builder = relax.BlockBuilder()
    attrs = {
        ATTR_COMPOSITE: COMPOSITE_NAME,
        ATTR_TAU: analysis.report.tau,
        ATTR_ACTIVATION: analysis.report.activation,
        ATTR_LAYER: analysis.report.name,
        ATTR_REPORT: report_record(order, analysis.report),
        **conv_attrs(analysis.conv),
    }
    with builder.function(COMPOSITE_FUNC_NAME, [data], attrs=attrs, private=True):
        with builder.dataflow():
            out = builder.emit_output(relax.Call(call.op, [data, call.args[1]], call.attrs))
        builder.emit_func_output(out)
    return builder.get()[COMPOSITE_FUNC_NAME]


@relax.expr_functor.mutator
class _Detector(relax.PyExprMutator):
    def __init__(self, mod, decisions):
        super().__init__(mod)
        self.decisions = decisions

    def visit_var_binding_(self, binding):
        order, analysis = self.decisions.get(binding.var, (None, None))
        if analysis is None or not analysis.report.lowered:
            super().visit_var_binding_(binding)
            return
        call = binding.value
        gv = self.builder_.add_func(_make_composite(call, analysis, order), COMPOSITE_FUNC_NAME)
        new_call = relax.Call(gv, [self.visit_expr(call.args[0])])
        # A non-dataflow var is a dataflow block's output; outside a dataflow block it is a plain binding.
        is_output = (
            not isinstance(binding.var, relax.DataflowVar)
            and self.builder_.current_block_is_dataflow()
        )
        emit = self.builder_.emit_output if is_output else self.builder_.emit
        self.set_var_remap(binding.var, emit(new_call, name_hint=str(binding.var.name)))


def _analyze_function(func, policy, first):
    """Analyze every conv binding of ``func``, numbering them from ``first``.

    Returns
    -------
    dict
        ``{bound var: (order, ConvAnalysis)}``.
    """
    var2val = relax.analysis.get_var2val(func)
    folded = folded_records(func)
    decisions = {}
    for block in func.body.blocks:
        for binding in block.bindings:
            if isinstance(binding, relax.VarBinding) and is_conv(binding.value):
                order = first + len(decisions)
                name = f"conv{order}:{binding.var.name}"
                analysis = analyze_conv(name, binding.value, var2val, policy, func.params, folded)
                decisions[binding.var] = (order, analysis)
    return decisions


@tvm.transform.module_pass(opt_level=0, name="tvm_snn.DetectSubBitConv")
class DetectSubBitConv:
    """Detect sub-bit convs; wrap the ones worth lowering in composite functions.

    The report of every conv stays in the IR (see
    :func:`relay_passes.layer_records.read_reports`).

    Parameters
    ----------
    policy : LoweringPolicy, optional
        Tau caps and the profitability threshold.
    """

    def __init__(self, policy=None):
        self.policy = policy or LoweringPolicy()

    def transform_module(self, mod, _ctx):
        first = 0
        for gv, func in list(mod.functions_items()):
            if (
                not isinstance(func, relax.Function)
                or is_subbit_composite(func)
                or is_offloaded(func)
            ):
                continue
            decisions = _analyze_function(func, self.policy, first)
            first += len(decisions)
            dense = [
                report_record(order, a.report)
                for order, a in decisions.values()
                if not a.report.lowered
            ]
            if any(a.report.lowered for _, a in decisions.values()):
                detector = _Detector(mod, decisions)
                detector.builder_.update_func(gv, detector.visit_expr(func))
                mod = detector.builder_.get()
            if dense:
                records = with_dense_reports(mod[gv.name_hint], dense)
                mod = with_updates(mod, {mod.get_global_var(gv.name_hint): records})
        return mod
