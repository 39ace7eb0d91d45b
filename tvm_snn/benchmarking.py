"""Timing helpers shared by ``CompiledModel.benchmark``, the demo and ``benchmarks/``.

Peers are timed interleaved, round by round, so a slow phase of the machine
hits all of them alike; the median of all timed calls is reported. In a
round each peer runs a block of consecutive calls. Thread pools keep
spinning for a while after a call returns (TVM's, ONNX Runtime's,
PyTorch's OpenMP pool) and would take the cores from the next peer, so a
block starts after a pause (``settle_s``) in which they go idle. Its first
calls are not timed: they refill the caches and wake the pool's threads,
and on this machine the first few calls after a pause run up to 1.3x
slower than the rest (all peers alike), so untimed calls run for
``warm_s`` before the timed ones. Each peer is thus timed in its steady
state, as a deployment runs it, with its default threading. The order is
shuffled every round (with a fixed seed).

:func:`onnxruntime_runner` builds the ONNX Runtime peer the demo and
``benchmarks/`` compare with (``onnxruntime`` is imported only when called).
"""

import os
import random
import statistics
import time

MS_PER_S = 1e3
ORDER_SEED = 0
# The protocol for peers side by side (benchmarks/ and the demo): timed calls
# per block, and the pause before a block (30 ms was too short for TVM's pool here).
PEER_BLOCK = 3
PEER_SETTLE_S = 0.2
# Untimed calls before a block's timed ones, for this long (at least one call).
PEER_WARM_S = 0.02
# Intra-op threads of every peer side by side (ONNX Runtime, PyTorch).
PEER_THREADS = 2


def summarize(times_ms):
    """Return median, mean, std and min of a list of times in ms."""
    return {
        "median_ms": statistics.median(times_ms),
        "mean_ms": statistics.fmean(times_ms),
        "std_ms": statistics.pstdev(times_ms),
        "min_ms": min(times_ms),
        "repeat": len(times_ms),
    }


def _warm(run, seconds):
    """Call ``run`` untimed, at least once and until ``seconds`` have passed."""
    end = time.perf_counter() + seconds
    run()
    while time.perf_counter() < end:
        run()


def time_interleaved(runners, repeat=20, warmup=3, block=1, settle_s=0.0, warm_s=0.0):
    """Time several zero-argument callables, interleaved round by round.

    Parameters
    ----------
    runners : dict of str to callable
        What to time, by name.
    repeat : int
        Timed rounds.
    warmup : int
        Untimed rounds first.
    block : int
        Timed calls of each runner per round, after its untimed warm-up
        (at least one call, see ``warm_s``).
    settle_s : float
        Pause before each block, so the previous runner's threads stop spinning.
    warm_s : float
        Untimed calls start each block for this long (at least one call).

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
            if settle_s:
                time.sleep(settle_s)
            _warm(runners[name], warm_s)
            for _ in range(block):
                start = time.perf_counter()
                runners[name]()
                times[name].append((time.perf_counter() - start) * MS_PER_S)
    return {name: summarize(times[name]) for name in names}


def time_peers(runners, repeat, warmup=1):
    """:func:`time_interleaved` with the protocol for peers side by side
    (``PEER_BLOCK`` timed calls per block, after ``PEER_SETTLE_S`` of pause and
    ``PEER_WARM_S`` of untimed calls): the benchmarks and the demo use it."""
    return time_interleaved(
        runners,
        repeat=repeat,
        warmup=warmup,
        block=PEER_BLOCK,
        settle_s=PEER_SETTLE_S,
        warm_s=PEER_WARM_S,
    )


def onnxruntime_runner(model, threads=PEER_THREADS):
    """Return ``run(x)``: ONNX Runtime's CPU session on ``model``, returning its first output.

    Parameters
    ----------
    model : str, os.PathLike, bytes or onnx.ModelProto
        The model, or the path of its ``.onnx`` file.
    threads : int
        Intra-op threads; the graph runs sequentially (one inter-op thread).

    Returns
    -------
    callable
        ``run(x)`` feeds the array ``x`` to the model's first input.
    """
    import onnxruntime as ort

    if hasattr(model, "SerializeToString"):
        model = model.SerializeToString()
    elif isinstance(model, os.PathLike):
        model = os.fspath(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]
