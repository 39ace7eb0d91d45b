"""The TVM runtime's thread count.

TVM reads ``TVM_NUM_THREADS`` when a thread first makes its pool (the pool
gets that many workers, and can later use fewer, never more) and again at
every parallel launch: unset, it assumes half the x86 hardware threads, which
on a 2-core machine without hyper-threading is one, and then runs every
parallel loop serially.

So ``CompiledModel`` runs inside :func:`running_on`: while any thread is in
such a block, ``TVM_NUM_THREADS`` holds at least the count asked for (the
first thread in sets it, the last one out restores it), and the calling
thread's pool uses that count. :func:`default_threads`
is the count a model runs on unless told otherwise; :func:`num_threads`
changes the count within a block, up to the pool's size, and restores it.
"""

import contextlib
import os
import threading

import tvm

# ThreadGroup::AffinityMode: every worker may run on every listed core.
SHARE_ALL_CORES = -3
ENV_VAR = "TVM_NUM_THREADS"


def available_cores():
    """The CPU ids this process may run on."""
    return (
        sorted(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else list(range(os.cpu_count() or 1))
    )


_LOCAL = threading.local()
_LOCK = threading.Lock()
_RUNNING = {"threads": 0, "saved": None, "value": None}


def default_threads(num_cores=None):
    """The thread count a model runs on when the user does not choose one.

    ``TVM_NUM_THREADS`` when the user set it; else the target's
    ``num_cores`` when given, at most the cores this process may use; else
    all the cores this process may use (``os.sched_getaffinity``).
    """
    if os.environ.get(ENV_VAR):
        return int(os.environ[ENV_VAR])
    cores = len(available_cores())
    return min(int(num_cores), cores) if num_cores else cores


def _use_threads(count):
    """Have the calling thread's TVM pool use ``count`` workers from now on.

    Called inside :func:`running_on`, where ``TVM_NUM_THREADS`` is at least
    ``count``: a thread without a pool gets one of that many workers; a pool
    made smaller earlier (by TVM's own default, before any model ran) uses as
    many as it has. Cheap when nothing changes: the count is remembered per
    thread.

    Returns
    -------
    int
        The workers the pool now uses.
    """
    if getattr(_LOCAL, "asked", None) == count:
        return _LOCAL.used
    current = current_threads()  # makes the pool if the thread has none
    if current != count:
        _configure(count)
        current = current_threads()
    _LOCAL.asked, _LOCAL.used = count, current
    return current


def current_threads():
    """The TVM runtime's thread count for the calling thread."""
    return int(tvm.get_global_func("runtime.NumThreads")())


def _configure(count):
    cores = [str(core) for core in available_cores()]
    tvm.get_global_func("runtime.config_threadpool")(SHARE_ALL_CORES, count, cores)


@contextlib.contextmanager
def running_on(count):
    """Run TVM kernels in the block on ``count`` threads of the calling thread's pool.

    While any thread is inside a ``running_on`` block, ``TVM_NUM_THREADS``
    holds at least the largest count asked for (or the user's own value, if
    larger); the last thread to leave restores it.

    Yields
    ------
    int
        The workers the calling thread's pool uses.
    """
    with _LOCK:
        if _RUNNING["threads"] == 0:
            _RUNNING["saved"] = os.environ.get(ENV_VAR)
            _RUNNING["value"] = int(_RUNNING["saved"] or 0)
        _RUNNING["threads"] += 1
        if count > _RUNNING["value"]:
            _RUNNING["value"] = count
            os.environ[ENV_VAR] = str(count)
    try:
        yield _use_threads(count)
    finally:
        with _LOCK:
            _RUNNING["threads"] -= 1
            if _RUNNING["threads"] == 0:
                if _RUNNING["saved"] is None:
                    os.environ.pop(ENV_VAR, None)
                else:
                    os.environ[ENV_VAR] = _RUNNING["saved"]


@contextlib.contextmanager
def num_threads(count):
    """Run the block with ``count`` TVM threads (at most the pool's size); restore the count after."""
    previous = current_threads()
    if count == previous:
        yield
        return
    _configure(count)
    _LOCAL.asked = None  # running_on configures again after the block
    try:
        yield
    finally:
        _configure(previous)
