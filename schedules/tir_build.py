"""Small builders for hand-written TIR (the stages written as ``te.extern``).

Indices are int64, as in the TE stages (``index_dtype_override``).
"""

from tvm import tirx

INDEX_DTYPE = "int64"


def index(value):
    """``value`` as an int64 immediate."""
    return tirx.const(int(value), INDEX_DTYPE)


def ramp(base, lanes):
    """``base, base + 1, ..., base + lanes - 1``: a contiguous vector index."""
    return tirx.Ramp(index(0) + base, index(1), lanes)


def seq(stmts):
    """The statements in order (TIR refuses a sequence of one)."""
    return stmts[0] if len(stmts) == 1 else tirx.SeqStmt(stmts)


def loop(extent, body, name, kind=tirx.ForKind.SERIAL):
    """``for var in range(extent): body(var)``."""
    var = tirx.Var(name, INDEX_DTYPE)
    return tirx.For(var, index(0), index(extent), kind, body(var))


def unrolled(extent, body):
    """``body(0); ...; body(extent - 1)`` with Python ints."""
    return seq([body(i) for i in range(extent)])
