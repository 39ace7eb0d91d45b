"""Helpers the TIR tests share: finding things in a PrimFunc."""

import tvm_ffi
from tvm import tirx

from schedules.subbit_schedule import masked_offset


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
