"""A compiled model runs on all the cores it may use, without the user setting anything."""

import subprocess
import sys

import pytest

from tvm_snn.threads import available_cores

# Each check runs in a fresh process: TVM sizes a thread's pool once, on its first use.
PRELUDE = """
import os, threading
os.environ.pop("TVM_NUM_THREADS", None)
import numpy as np
from onnx_models import plain_cnn
import tvm_snn
from tvm_snn.threads import available_cores, current_threads, num_threads
cores = len(available_cores())
"""

DEFAULTS = (
    PRELUDE
    + """
cm = tvm_snn.compile(plain_cnn())
assert cm.num_threads == cores, (cm.num_threads, cores)
# TVM reads the variable at every parallel launch (unset: serial on 2 cores), so it is
# set while the model runs, and only then.
machine = cm._machine()
during = []
cm._vm = lambda *args: (during.append(os.environ.get("TVM_NUM_THREADS")), machine(*args))[1]
cm(*cm.random_inputs())
assert during == [str(cores)], during
assert current_threads() == cores, (current_threads(), cores)
assert "TVM_NUM_THREADS" not in os.environ
seen = []
worker = threading.Thread(target=lambda: (cm(*cm.random_inputs()), seen.append(current_threads())))
worker.start(); worker.join()
assert seen == [cores], seen
assert cm.benchmark(repeat=2, warmup=1)["threads"] == cores
cm.num_threads = 1
cm(*cm.random_inputs())
assert current_threads() == 1
with num_threads(1):
    assert current_threads() == 1
print("ok")
"""
)

TARGET_CORES = (
    PRELUDE
    + """
cm = tvm_snn.compile(plain_cnn(), target="llvm -num-cores=1")
assert cm.num_threads == 1
cm(*cm.random_inputs())
assert current_threads() == 1
print("ok")
"""
)

AFFINITY = (
    PRELUDE
    + """
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
cm = tvm_snn.compile(plain_cnn())
assert cm.num_threads == 1 and cm.target["num-cores"] == 1, (cm.num_threads, cm.target)
print("ok")
"""
)

USER_ENV = (
    PRELUDE.replace(
        'os.environ.pop("TVM_NUM_THREADS", None)', 'os.environ["TVM_NUM_THREADS"] = "1"'
    )
    + """
cm = tvm_snn.compile(plain_cnn())
assert cm.num_threads == 1
cm(*cm.random_inputs())
assert current_threads() == 1
print("ok")
"""
)


def run_fresh(script, tests_dir):
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, cwd=tests_dir
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")


@pytest.fixture
def tests_dir(request):
    return str(request.config.rootpath / "tests")


@pytest.mark.skipif(
    len(available_cores()) < 2, reason="needs 2 cores to tell all cores from TVM's default of half"
)
def test_a_model_runs_on_all_cores_by_default(tests_dir):
    run_fresh(DEFAULTS, tests_dir)


@pytest.mark.parametrize(
    "script", [TARGET_CORES, AFFINITY, USER_ENV], ids=["target-num-cores", "affinity", "user-env"]
)
def test_other_counts(script, tests_dir):
    run_fresh(script, tests_dir)


def test_bad_thread_count_is_an_input_error():
    import tvm_snn
    from tvm_snn.errors import InputError

    from onnx_models import plain_cnn

    cm = tvm_snn.compile(plain_cnn())
    with pytest.raises(InputError, match="num_threads must be a positive integer"):
        cm.num_threads = 0
