"""The TVM runtime's thread count.

TVM sizes a thread's pool once, when the thread first runs a parallel kernel:
``TVM_NUM_THREADS`` workers, or else half the hardware threads on x86 (it
assumes hyper-threading), which is one thread on a 2-core machine without
hyper-threading. Entry points that own their process (the CLI, the demo, the
benchmarks) call :func:`default_to_all_cores` first; :func:`num_threads`
changes the count within a block, up to the pool's size, and restores it.
"""

import contextlib
import os

# ThreadGroup::AffinityMode: every worker may run on every listed core.
SHARE_ALL_CORES = -3
ENV_VAR = "TVM_NUM_THREADS"


def available_cores():
    """The CPU ids this process may run on."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def default_to_all_cores():
    """Size TVM's pools to all cores unless ``TVM_NUM_THREADS`` says otherwise.

    Call it before the first kernel runs; it only sets the variable when unset.
    """
    os.environ.setdefault(ENV_VAR, str(len(available_cores())))


def current_threads():
    """The TVM runtime's thread count for the calling thread."""
    import tvm  # here, so that setting the default does not load TVM (torch-only commands)

    return int(tvm.get_global_func("runtime.NumThreads")())


def _configure(count):
    import tvm

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
    try:
        yield
    finally:
        _configure(previous)
