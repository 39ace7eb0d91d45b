"""Per-conv analysis: is a Relax ``conv2d`` a sub-bit conv, and is lowering it worth it?

Used by :mod:`relay_passes.detect_subbit_conv`. The sub-bit structure is
recovered from the weights alone (``SubBitConv.from_dense``), so it works on
any imported model, including ones whose exporter folded batch norm into the
conv (signed per-channel alpha).

A conv has binary activations when its input is provably in {-1, 0, +1}:
``sign(x)`` (the kernel then takes ``x`` and applies the sign itself), or
``where(c, 1, -1)`` / ``2 * astype(c) - 1`` for any boolean ``c`` (in
{-1, +1}; the kernel takes that tensor as is: the sign of +-1 is itself).
The three spellings are ``tvm.relax.dpl`` patterns, the constants of the
last two are checked by value. An STE residue around them is removed
beforehand (:mod:`relay_passes.simplify_ste`).
"""

from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax
from tvm.relax.dpl import is_const, is_op, wildcard

from relay_passes.layer_records import folded_ops
from relay_passes.report import LayerReport
from relay_passes.simplify_ste import SUBTRACT_OP
from schedules.subbit import (
    KERNEL_1X1,
    KERNEL_3X3,
    UNIT_1X1,
    UNIT_3X3,
    SubBitConv,
)
from schedules.subbit_tir import kernel_constants
from tvm_snn.errors import FormatError
from tvm_snn.schema import FLOAT_BITS, FLOAT_BYTES

CONV_OP = "relax.nn.conv2d"
SIGN_OP = "relax.sign"
# Any conv2d, and sign(x) (one of the binary input spellings).
CONV_PATTERN = is_op(CONV_OP)(wildcard(), wildcard())
SIGN_PATTERN = is_op(SIGN_OP)(wildcard())
# where(c, 1, -1) and 2 * astype(c) - 1: +-1 for any boolean c.
WHERE_OP = "relax.where"
ASTYPE_OP = "relax.astype"
MULTIPLY_OP = "relax.multiply"
BOOL_DTYPE = "bool"
_PLUS = is_const()
_MINUS = is_const()
WHERE_SIGN_PATTERN = is_op(WHERE_OP)(wildcard(), _PLUS, _MINUS)
_BOOL_CAST = is_op(ASTYPE_OP)(wildcard().has_dtype(BOOL_DTYPE))
_TWO = is_const()
_ONE = is_const()
COMPARE_SIGN_PATTERN = is_op(SUBTRACT_OP)(
    is_op(MULTIPLY_OP)(_BOOL_CAST, _TWO) | is_op(MULTIPLY_OP)(_TWO, _BOOL_CAST), _ONE
)
# The constants of each +-1 spelling: pattern -> value its elements must all have.
_WHERE_VALUES = {_PLUS: 1.0, _MINUS: -1.0}
_COMPARE_VALUES = {_TWO: 2.0, _ONE: 1.0}
# At most this fraction of distinct magnitudes marks a structured (not float) tensor.
REPEATED_MAGNITUDE_FRACTION = 0.5

REASON_NOT_CONST = "weight is not a constant"
REASON_INPUT_WEIGHT = "weight depends on input"
REASON_SHAPE = "unsupported shape"
REASON_FLOAT = "not binary: weights are not +-alpha per output channel"
REASON_SCALE = "scale not per-channel: +-1 weights under a per-unit or per-element scale"
REASON_PATTERNS = "too many patterns"
REASON_UNPROFITABLE = "unprofitable"
REASON_DISABLED = "SNN lowering disabled by the policy"


@dataclass
class ConvAnalysis:
    """The report for one conv and, when it is sub-bit, its format."""

    report: LayerReport
    conv: SubBitConv | None = None


def _ints(values):
    return tuple(int(v) for v in values)


def _shape(expr):
    return _ints(expr.ty.shape.values)


def op_ops(conv, out_hw):
    """Per-image op counts ``(dense, snn)`` of a sub-bit conv at output size ``out_hw``.

    Dense: one MAC per weight per output pixel. SNN: ``units * codewords *
    unit`` adds for the responses plus ``out * units`` gather-adds.
    """
    pixels = out_hw[0] * out_hw[1]
    dense = (
        conv.out_channels * conv.in_channels * (UNIT_3X3 if conv.kernel_size == KERNEL_3X3 else 1)
    )
    snn = conv.num_units * conv.num_codewords * conv.unit_size + conv.out_channels * conv.num_units
    return dense * pixels, snn * pixels


def is_sign(expr, var2val):
    """Whether ``expr`` is (bound to) ``sign(x)``."""
    value = var2val.get(expr, expr) if isinstance(expr, relax.Var) else expr
    return isinstance(value, relax.Call) and SIGN_PATTERN.match(value)


def _constants_are(matched, values):
    return all(np.all(matched[pattern].value.numpy() == value) for pattern, value in values.items())


def is_plus_minus_one(expr, var2val):
    """Whether ``expr`` is (bound to) ``where(c, 1, -1)`` or ``2 * astype(c) - 1``, c boolean."""
    value = var2val.get(expr, expr) if isinstance(expr, relax.Var) else expr
    for pattern, values in (
        (WHERE_SIGN_PATTERN, _WHERE_VALUES),
        (COMPARE_SIGN_PATTERN, _COMPARE_VALUES),
    ):
        matched = pattern.extract_matched_expr(value, var2val)
        if matched is not None and _constants_are(matched, values):
            return True
    return False


def is_binary_input(expr, var2val):
    """Whether a conv input is provably in {-1, 0, +1}: a sign, or a +-1 spelling."""
    return bool(is_sign(expr, var2val)) or is_plus_minus_one(expr, var2val)


def input_dependence(expr, var2val, params):
    """The function input ``expr`` depends on and the op chain from it, or None.

    Returns
    -------
    tuple of (str, list of str) or None
        The input's name and the ops from it to ``expr`` (nearest the input first).
    """
    seen = set()

    def walk(node):
        if isinstance(node, relax.Var) and node in params:
            return str(node.name), []
        if isinstance(node, relax.Var):
            if node in seen or node not in var2val:
                return None
            seen.add(node)
            return walk(var2val[node])
        children = list(node.args) if isinstance(node, relax.Call) else []
        if isinstance(node, relax.Tuple):
            children = list(node.fields)
        elif isinstance(node, relax.TupleGetItem):
            children = [node.tuple_value]
        for child in children:
            found = walk(child)
            if found is not None:
                name, chain = found
                if isinstance(node, relax.Call) and isinstance(node.op, tvm.ir.Op):
                    chain = [*chain, node.op.name.removeprefix("relax.")]
                return name, chain
        return None

    return walk(expr)


def not_constant_reason(weight_expr, var2val, params):
    """Why a conv's weight is not a constant: the input it depends on, through which ops."""
    found = input_dependence(weight_expr, var2val, params)
    if found is None:
        return REASON_NOT_CONST
    name, chain = found
    through = f" through {' -> '.join(chain)}" if chain else ""
    return f"{REASON_INPUT_WEIGHT} {name!r}{through}"


def _shape_problem(call, weight_shape):
    attrs = call.attrs
    if str(attrs.data_layout) != "NCHW" or str(attrs.kernel_layout) != "OIHW":
        return f"layout {attrs.data_layout}/{attrs.kernel_layout}, need NCHW/OIHW"
    if int(attrs.groups) != 1:
        return f"groups={int(attrs.groups)}"
    kernel = weight_shape[2:]
    if kernel not in (KERNEL_3X3, KERNEL_1X1):
        return f"kernel {kernel[0]}x{kernel[1]}"
    if kernel == KERNEL_1X1 and weight_shape[1] % UNIT_1X1:
        return f"1x1 with {weight_shape[1]} input channels, not a multiple of {UNIT_1X1}"
    if str(call.args[0].ty.dtype) != "float32":
        return f"input dtype {call.args[0].ty.dtype}"
    return None


def _not_binary_reason(weight):
    """Tell float weights from +-1 weights under a scale that is not per channel.

    Float weights have (nearly) all magnitudes distinct; a binary tensor under
    a per-unit or per-element scale repeats each magnitude many times.
    """
    magnitudes = np.unique(np.abs(weight).astype(np.float32))
    if len(magnitudes) <= weight.size * REPEATED_MAGNITUDE_FRACTION:
        return REASON_SCALE
    return REASON_FLOAT


def analyze_conv(name, call, var2val, policy, params=(), folded=None):
    """Analyze one ``relax.nn.conv2d`` call.

    Parameters
    ----------
    name : str
        The layer's name in the report.
    call : relax.Call
        The conv2d call.
    var2val : dict
        Bindings of the function, to see whether the input is ``sign(x)``.
    policy : LoweringPolicy
    params : sequence of relax.Var
        The function's inputs, to name the one a non-constant weight depends on.
    folded : dict, optional
        The function's folded constants (:func:`relay_passes.layer_records.folded_records`).

    Returns
    -------
    ConvAnalysis
        ``report.lowered`` says whether to lower; ``conv`` is set when the
        weights have the sub-bit form.
    """
    weight_expr = call.args[1]
    activation = "binary" if is_binary_input(call.args[0], var2val) else "float"
    weight_shape = _shape(weight_expr)
    kernel = weight_shape[2:]
    label = f"{kernel[0]}x{kernel[1]}"
    count = int(np.prod(weight_shape))

    if not isinstance(weight_expr, tvm.ir.GenericConst):
        reason = not_constant_reason(weight_expr, var2val, set(params))
        return ConvAnalysis(
            LayerReport(
                name, label, None, FLOAT_BITS, activation, False, reason, count, count * FLOAT_BYTES
            )
        )
    weight = weight_expr.value.numpy()
    source = folded_ops(folded, weight)

    def dense(reason, tau=None):
        return ConvAnalysis(
            LayerReport(
                name,
                label,
                tau,
                FLOAT_BITS,
                activation,
                False,
                reason,
                count,
                count * FLOAT_BYTES,
                folded=source,
            )
        )

    problem = _shape_problem(call, weight_shape)
    if problem:
        return dense(f"{REASON_SHAPE}: {problem}")
    attrs = call.attrs
    try:
        conv = SubBitConv.from_dense(
            weight,
            stride=_ints(attrs.strides),
            padding=_ints(attrs.padding),
            dilation=_ints(attrs.dilation),
            activation=activation,
        )
    except FormatError:
        return dense(_not_binary_reason(weight))
    cap = policy.max_tau_3x3 if kernel == KERNEL_3X3 else policy.max_tau_1x1
    if conv.tau > cap:
        return dense(
            f"{REASON_PATTERNS}: {conv.num_codewords} patterns need tau={conv.tau} > {cap}",
            conv.tau,
        )
    if not policy.enabled:
        return dense(REASON_DISABLED, conv.tau)
    out_hw = _shape(call)[2:]
    dense_ops, snn_ops = op_ops(conv, out_hw)
    stored = sum(array.nbytes for array in kernel_constants(conv))
    report = LayerReport(
        name,
        label,
        conv.tau,
        conv.bits_per_weight,
        activation,
        True,
        "",
        count,
        stored,
        folded=source,
    )
    if snn_ops > policy.profit_ratio * dense_ops:
        report.lowered = False
        report.reason = f"{REASON_UNPROFITABLE}: {snn_ops / dense_ops:.2f}x the dense op count"
        report.stored_bytes = count * FLOAT_BYTES
    return ConvAnalysis(report, conv)
