"""Helpers shared by the kernel schedules (sub-bit, lane, BNN, dense fallback)."""

import tvm


def has_block(sch, name):
    """Whether the schedule ``sch`` has a block called ``name``."""
    try:
        sch.get_sblock(name)
    except tvm.s_tir.schedule.ScheduleError:
        return False
    return True


def extents(sch, block):
    """The extents of ``block``'s iteration variables."""
    return [int(iv.dom.extent) for iv in sch.get(block).iter_vars]


def work(sch, block):
    """The size of ``block``'s iteration space."""
    total = 1
    for extent in extents(sch, block):
        total *= extent
    return total


def dtype_bytes(sch, block):
    """Bytes per element of what ``block`` writes."""
    return tvm.DataType(str(sch.get(block).writes[0].source.dtype)).bits // 8


def inline_epilogue(sch, block):
    """Merge the chain of elementwise consumers (bias, residual add, ReLU, sign) into ``block``."""
    while True:
        consumers = sch.get_consumers(block)
        if len(consumers) != 1:
            return
        try:
            sch.reverse_compute_inline(consumers[0])
        except tvm.s_tir.schedule.ScheduleError:
            return


def largest_divisor(n, at_most):
    """The largest divisor of ``n`` that is at most ``at_most`` (at least 1)."""
    return max(d for d in range(1, max(1, min(n, at_most)) + 1) if n % d == 0)
