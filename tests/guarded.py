"""Inputs placed against unmapped pages, so a kernel that reads outside them crashes.

A kernel test with an ordinary input cannot see an out-of-bounds read: the
bytes next to a NumPy array are usually mapped. :func:`guarded_tensors`
puts the array right after a ``PROT_NONE`` page, and again right before
one (as close as 64-byte alignment allows), and yields a TVM tensor for
each placement; :func:`run_on_guarded_input` runs a kernel on each.
"""

import contextlib
import ctypes
import mmap

import numpy as np
import tvm

PAGE = mmap.PAGESIZE
ALIGNMENT = 64  # TVM assumes 64-byte aligned tensor data
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_MAP_FAILED = ctypes.c_void_p(-1).value


def _check(result, what):
    if result in (-1, _MAP_FAILED, None):
        raise OSError(ctypes.get_errno(), f"{what} failed")
    return result


@contextlib.contextmanager
def _guarded_block(nbytes):
    """Yield (address, size) of page-rounded memory for ``nbytes`` between two unmapped pages."""
    body = -(-nbytes // PAGE) * PAGE
    total = body + 2 * PAGE
    prot = mmap.PROT_READ | mmap.PROT_WRITE
    base = _check(_libc.mmap(None, total, prot, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0), "mmap")
    try:
        _check(_libc.mprotect(base, PAGE, 0), "mprotect")
        _check(_libc.mprotect(base + PAGE + body, PAGE, 0), "mprotect")
        yield base + PAGE, body
    finally:
        _libc.munmap(base, total)


@contextlib.contextmanager
def guarded_tensors(array):
    """Yield ``array`` as TVM tensors next to unmapped memory: after a guard page, then before one.

    The tensors are only valid inside the ``with`` block.
    """
    array = np.ascontiguousarray(array)
    with _guarded_block(array.nbytes) as (first, _), _guarded_block(array.nbytes) as (second, body):
        tail = (body - array.nbytes) // ALIGNMENT * ALIGNMENT
        tensors = []
        for start in (first, second + tail):
            raw = (ctypes.c_char * array.nbytes).from_address(start)
            view = np.frombuffer(raw, dtype=array.dtype).reshape(array.shape)
            view[...] = array
            tensors.append(tvm.runtime.from_dlpack(view))
        yield tensors


def run_on_guarded_input(lib, x, constants, out_shape):
    """Run ``lib(data, *constants, out)`` with ``x`` in each guarded placement; return the outputs."""
    outputs = []
    with guarded_tensors(x) as placements:
        for data in placements:
            out = tvm.runtime.tensor(np.zeros(out_shape, np.float32))
            lib(data, *[tvm.runtime.tensor(c) for c in constants], out)
            outputs.append(out.numpy())
    return outputs
