"""Interleaved timing: no peer always runs right after the same one, and only
calls that follow a call of the same peer are timed."""

from tvm_snn.benchmarking import time_interleaved

ROUNDS = 30
BLOCK = 3


def test_order_changes_so_every_peer_follows_every_other():
    calls = []
    runners = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    stats = time_interleaved(runners, repeat=ROUNDS, warmup=0, block=BLOCK)
    assert all(stats[name]["repeat"] == ROUNDS * BLOCK for name in "abc")
    per_round = 3 * (BLOCK + 1)
    rounds = [calls[i : i + per_round : BLOCK + 1] for i in range(0, len(calls), per_round)]
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds)
    for name in "abc":  # preceded, within a round, by both other peers
        before = {r[r.index(name) - 1] for r in rounds if r.index(name) > 0}
        assert before == set("abc") - {name}


def test_the_call_after_a_switch_is_not_timed():
    """A runner that is slow only right after another runner ran is timed fast."""
    import time

    last = []

    def make(name, slow_after_switch):
        def run():
            if slow_after_switch and last and last[-1] != name:
                time.sleep(0.02)
            last.append(name)

        return run

    stats = time_interleaved(
        {"a": make("a", True), "b": make("b", False)}, repeat=5, warmup=0, block=2
    )
    assert stats["a"]["mean_ms"] < 5  # a timed switch call would add 20 ms to one call in 2
    assert stats["a"]["repeat"] == 10


def test_a_block_warms_up_for_warm_s_before_timing():
    """A runner slow for its first 30 ms after a switch is timed fast with warm_s=0.05, not with 0."""
    import time

    state = {"last": None, "since": 0.0}

    def make(name):
        def run():
            if state["last"] != name:
                state["last"], state["since"] = name, time.perf_counter()
            if time.perf_counter() - state["since"] < 0.03:
                time.sleep(0.005)

        return run

    runners = {"a": make("a"), "b": make("b")}
    cold = time_interleaved(runners, repeat=3, warmup=0, block=2)
    warm = time_interleaved(runners, repeat=3, warmup=0, block=2, warm_s=0.05)
    assert cold["a"]["median_ms"] >= 5
    assert warm["a"]["median_ms"] < 1
    assert warm["a"]["repeat"] == 6
