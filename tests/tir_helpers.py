"""Helpers the TIR tests share: finding things in a PrimFunc, and its loop structure."""

import tvm_ffi
from tvm import s_tir, tirx

from schedules.subbit_schedule import masked_offset

ROOT_BLOCK = "root"
_FOR_KINDS = {
    int(tirx.ForKind.SERIAL): "serial",
    int(tirx.ForKind.PARALLEL): "parallel",
    int(tirx.ForKind.VECTORIZED): "vectorized",
    int(tirx.ForKind.UNROLLED): "unroll",
}


def masked_offset_loads(func):
    """The ``offset & mask`` terms of ``func`` whose offset is read from the stored offsets.

    Parameters
    ----------
    func : tvm.tirx.PrimFunc
        A sub-bit kernel, scheduled or not.

    Returns
    -------
    list of tvm.tirx.BitwiseAnd
        Every such term, in visiting order; empty when the kernel reads its offsets unmasked.
    """
    found = []

    def visit(node):
        if masked_offset(node) is not None:
            found.append(node)
        return node

    tvm_ffi.structural_map(func, (tirx.BitwiseAnd, visit))
    return found


def block_names(func):
    """The names of the blocks of ``func``, in pre-order.

    ``tvm.ir.assert_structural_equal`` does not compare block names; tests that
    expect a schedule's blocks (``matmul_init``, ``matmul_update``) compare these.

    Parameters
    ----------
    func : tvm.tirx.PrimFunc

    Returns
    -------
    list of str
    """
    entries = [line.strip() for line in loop_outline(func)]
    return [entry.removeprefix("block ") for entry in entries if entry.startswith("block ")]


def loop_outline(func):
    """The loop structure of ``func``: its loops, branches and blocks, one per line, nested by indent.

    A loop is ``<kind> <extent>`` (``serial``, ``parallel``, ``vectorized``, ``unroll``),
    a block ``block <name>`` (the implicit root block is left out), a branch ``if``
    and ``else``. Expressions, bindings and buffers are left out.

    Parameters
    ----------
    func : tvm.tirx.PrimFunc

    Returns
    -------
    list of str
        Indented by two spaces per level, e.g. ``["parallel 2", "  vectorized 16",
        "    block snn_out"]``.

    Raises
    ------
    TypeError
        On a statement this outline does not know, rather than skipping it.
    """
    lines = []

    def visit(stmt, depth):
        pad = "  " * depth
        if isinstance(stmt, tirx.SeqStmt):
            for child in stmt.seq:
                visit(child, depth)
        elif isinstance(stmt, tirx.For):
            lines.append(f"{pad}{_FOR_KINDS[int(stmt.kind)]} {int(stmt.extent)}")
            visit(stmt.body, depth + 1)
        elif isinstance(stmt, tirx.IfThenElse):
            lines.append(f"{pad}if")
            visit(stmt.then_case, depth + 1)
            if stmt.else_case is not None:
                lines.append(f"{pad}else")
                visit(stmt.else_case, depth + 1)
        elif isinstance(stmt, s_tir.SBlockRealize):
            visit(stmt.block, depth)
        elif isinstance(stmt, s_tir.SBlock):
            if stmt.name_hint == ROOT_BLOCK:
                visit(stmt.body, depth)
                return
            lines.append(f"{pad}block {stmt.name_hint}")
            if stmt.init is not None:
                visit(stmt.init, depth + 1)
            visit(stmt.body, depth + 1)
        elif isinstance(stmt, tirx.AttrStmt | tirx.Bind):
            visit(stmt.body, depth)
        elif not isinstance(stmt, tirx.BufferStore | tirx.Evaluate | tirx.AllocBuffer | tirx.DeclBuffer):
            raise TypeError(f"loop_outline: unexpected {type(stmt).__name__}")

    visit(func.body, 0)
    return lines
