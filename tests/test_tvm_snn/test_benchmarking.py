"""Interleaved timing: no peer always runs right after the same one."""

from tvm_snn.benchmarking import time_interleaved

ROUNDS = 30


def test_order_changes_so_every_peer_follows_every_other():
    calls = []
    runners = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    stats = time_interleaved(runners, repeat=ROUNDS, warmup=0)
    assert all(stats[name]["repeat"] == ROUNDS for name in "abc")
    rounds = [calls[i : i + 3] for i in range(0, len(calls), 3)]
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds)
    for name in "abc":  # preceded, within a round, by both other peers
        before = {r[r.index(name) - 1] for r in rounds if r.index(name) > 0}
        assert before == set("abc") - {name}
