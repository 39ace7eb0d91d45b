"""The TVM runtime's thread count.

TVM sizes a thread's pool once, when the thread first uses it:
``TVM_NUM_THREADS`` workers, or else half the hardware threads on x86 (it
assumes hyper-threading), which is one thread on a 2-core machine without
hyper-threading. A pool can later use fewer workers, never more.

:func:`use_threads` is what ``CompiledModel`` calls before it runs: it
creates the calling thread's pool with the count asked for (setting
``TVM_NUM_THREADS`` only while the pool is made) and has it use that many
workers. :func:`default_threads` is the count a model runs on unless told
otherwise; :func:`num_threads` changes the count within a block, up to the
pool's size, and restores it.
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
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


_LOCAL = threading.local()


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


@contextlib.contextmanager
def _environment(name, value):
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            del os.environ[name]
        else:
            os.environ[name] = previous


def use_threads(count):
    """Have the calling thread's TVM pool use ``count`` workers from now on.

    A thread without a pool gets one of ``count`` workers; a pool made
    smaller earlier (by TVM's own default, before this was called) uses as
    many as it has. Cheap when nothing changes: the count is remembered per
    thread.

    Returns
    -------
    int
        The workers the pool now uses.
    """
    if getattr(_LOCAL, "asked", None) == count:
        return _LOCAL.used
    size = max(count, int(os.environ.get(ENV_VAR) or 0))
    with _environment(ENV_VAR, str(size)):  # read by TVM when it makes the pool, here
        current = current_threads()
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
def num_threads(count):
    """Run the block with ``count`` TVM threads (at most the pool's size); restore the count after."""
    previous = current_threads()
    if count == previous:
        yield
        return
    _configure(count)
    _LOCAL.asked = None  # use_threads configures again after the block
    try:
        yield
    finally:
        _configure(previous)
