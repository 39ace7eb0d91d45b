"""Timing helpers shared by ``CompiledModel.benchmark``, the demo and ``benchmarks/``.

Peers are timed interleaved (one call of each per round), so a slow phase of
the machine hits all of them alike; the median of the rounds is reported.
The order is shuffled every round (with a fixed seed): a peer whose threads
keep spinning after it returns (PyTorch's OpenMP pool does) slows whoever
runs next, so no peer may always run after the same one.
"""

import random
import statistics
import time

MS_PER_S = 1e3
ORDER_SEED = 0


def summarize(times_ms):
    """Return median, mean, std and min of a list of times in ms."""
    return {
        "median_ms": statistics.median(times_ms),
        "mean_ms": statistics.fmean(times_ms),
        "std_ms": statistics.pstdev(times_ms),
        "min_ms": min(times_ms),
        "repeat": len(times_ms),
    }


def time_interleaved(runners, repeat=20, warmup=3):
    """Time several zero-argument callables, interleaved round by round.

    Parameters
    ----------
    runners : dict of str to callable
        What to time, by name.
    repeat : int
        Timed rounds.
    warmup : int
        Untimed rounds first.

    Returns
    -------
    dict of str to dict
        :func:`summarize` of each runner's times.
    """
    for _ in range(warmup):
        for run in runners.values():
            run()
    names = list(runners)
    times = {name: [] for name in names}
    order = random.Random(ORDER_SEED)
    for _ in range(repeat):
        shuffled = order.sample(names, len(names))
        for name in shuffled:
            start = time.perf_counter()
            runners[name]()
            times[name].append((time.perf_counter() - start) * MS_PER_S)
    return {name: summarize(times[name]) for name in names}
