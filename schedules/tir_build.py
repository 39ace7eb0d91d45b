"""Small builders for TIR: the dtypes every kernel shares, and helpers for the
stages written by hand as ``te.extern``.

Indices are int64, as in the TE stages (``index_dtype_override``).
"""

from tvm import tirx

# Loop variables and shapes: Relax legalizes ops with int64 shapes, and
# FuseTIR needs the same buffer types.
TIR_INDEX_DTYPE = "int64"
FLOAT_DTYPE = "float32"
INT_DTYPE = "int32"
SIGN_DTYPE = "int8"
BYTE_DTYPE = "int8"
PACKED_DTYPE = "uint8"
# The largest int8 and int16 values: bounds for exact integer sums.
INT8_LIMIT = 2**7 - 1
INT16_LIMIT = 2**15 - 1


def index(value):
    """``value`` as an int64 immediate."""
    return tirx.const(int(value), TIR_INDEX_DTYPE)


def ramp(base, lanes):
    """``base, base + 1, ..., base + lanes - 1``: a contiguous vector index."""
    return tirx.Ramp(index(0) + base, index(1), lanes)


def seq(stmts):
    """The statements in order (TIR refuses a sequence of one)."""
    return stmts[0] if len(stmts) == 1 else tirx.SeqStmt(stmts)


def loop(extent, body, name, kind=tirx.ForKind.SERIAL):
    """``for var in range(extent): body(var)``."""
    var = tirx.Var(name, TIR_INDEX_DTYPE)
    return tirx.For(var, index(0), index(extent), kind, body(var))


def unrolled(extent, body):
    """``body(0); ...; body(extent - 1)`` with Python ints."""
    return seq([body(i) for i in range(extent)])


def sign_int8(value):
    """``sign(value)`` as int8, 0 at 0 (ONNX ``Sign``): idempotent, so a kernel
    may take either the activation or its sign."""
    one = tirx.const(1, SIGN_DTYPE)
    zero = tirx.const(0, SIGN_DTYPE)
    origin = tirx.const(0, FLOAT_DTYPE)
    return tirx.Select(value > origin, one, zero) - tirx.Select(value < origin, one, zero)
