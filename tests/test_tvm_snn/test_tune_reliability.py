"""Tuning that survives: a run killed with SIGKILL resumes, candidates that crash or hang are failures, seeds repeat."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import tvm
from snn_models import SMALL_INPUT_SIZE, small_resnet18
from tvm.script import tirx as T

import tvm_snn
from tvm_snn.tuning.driver import measure
from tvm_snn.tuning.records import RECORDS
from tvm_snn.tuning.search import Candidate
from tvm_snn.tuning.workers import KeptBuilder, local_runner, worker_environment

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KILL_AFTER = 6  # records on disk before the kill
KILL_WAIT_S = 300
HANG_TIMEOUT_S = 3.0

_TUNE_FOREVER = """
import torch, tvm_snn
from snn_models import SMALL_INPUT_SIZE, small_resnet18
x = torch.randn(1, 3, SMALL_INPUT_SIZE, SMALL_INPUT_SIZE)
tvm_snn.tune(small_resnet18(), work_dir={work_dir!r}, trials=500, example_inputs=(x,), trials_per_round=2)
"""


def _records(work_dir):
    path = os.path.join(work_dir, RECORDS)
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return [line for line in handle if line.endswith("\n")]


def test_a_run_killed_mid_way_resumes_from_its_work_dir(tmp_path):
    work_dir = str(tmp_path / "killed")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (TESTS_DIR, os.environ.get("PYTHONPATH")) if p),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", _TUNE_FOREVER.format(work_dir=work_dir)], env=env
    )
    deadline = time.monotonic() + KILL_WAIT_S
    while (
        len(_records(work_dir)) < KILL_AFTER and proc.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = len(_records(work_dir))
    assert before >= KILL_AFTER
    with open(os.path.join(work_dir, RECORDS), "a") as handle:
        handle.write('[0, [[["GetSBlock"')  # a record cut short, as a kill mid-write leaves it
    x = torch.randn(1, 3, SMALL_INPUT_SIZE, SMALL_INPUT_SIZE)
    result = tvm_snn.tune(
        small_resnet18(),
        work_dir=work_dir,
        trials=before + 2,
        example_inputs=(x,),
        trials_per_round=2,
    )
    lines = _records(work_dir)
    assert result.curve[0]["trials"] == before and len(lines) == before + 2
    keys = [(r[0], json.dumps(r[1][0])) for r in map(json.loads, lines)]
    assert len(set(keys)) == len(keys)  # nothing measured twice


@T.prim_func(s_tir=True)
def _aborts(a: T.Buffer((4,), "float32")):
    T.evaluate(T.call_extern("int32", "abort"))
    a[0] = T.float32(1)


@T.prim_func(s_tir=True)
def _spins(a: T.Buffer((4,), "float32")):
    for i in range(T.int64(1) << T.int64(60)):
        a[0] = a[0] + T.Cast("float32", i)


@T.prim_func(s_tir=True)
def _fine(a: T.Buffer((4,), "float32")):
    for i in range(4):
        a[i] = T.float32(2)


class _Plan:
    def to_json(self):
        return "{}"


@pytest.fixture(scope="module")
def workers():
    with worker_environment(2):
        builder = KeptBuilder(max_workers=2, timeout_sec=60)
        runner = local_runner(HANG_TIMEOUT_S, number=1, repeat=1)
    yield builder, runner
    builder.shutdown()


def test_candidates_that_crash_or_hang_are_failures_and_the_run_goes_on(workers):
    builder, runner = workers
    target = tvm.target.Target({"kind": "llvm"})
    crash, hang, fine = (Candidate(_Plan(), func) for func in (_aborts, _spins, _fine))
    ran = measure([crash, hang, fine], builder, runner, target)
    assert ran == [fine] and fine.secs and not crash.secs and not hang.secs
    assert crash.error and "Timeout" in hang.error
    again = Candidate(_Plan(), _fine)
    assert measure([again], builder, runner, target) == [again]  # the runner recovered


def test_a_seed_repeats_the_plans_measured(tmp_path):
    x = torch.randn(1, 3, SMALL_INPUT_SIZE, SMALL_INPUT_SIZE)
    runs = []
    for name in ("a", "b"):
        work_dir = str(tmp_path / name)
        tvm_snn.tune(
            small_resnet18(),
            work_dir=work_dir,
            trials=6,
            example_inputs=(x,),
            trials_per_round=3,
            seed=7,
        )
        runs.append([(r[0], json.dumps(r[1][0])) for r in map(json.loads, _records(work_dir))])
    assert runs[0] == runs[1] and len(runs[0]) == 6
