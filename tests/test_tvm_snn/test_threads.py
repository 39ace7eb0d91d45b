"""TVM's thread count: the default for our entry points, and the context manager."""

import subprocess
import sys

SCRIPT = """
import os
os.environ.pop("TVM_NUM_THREADS", None)
from tvm_snn.threads import available_cores, current_threads, default_to_all_cores, num_threads
default_to_all_cores()
cores = len(available_cores())
assert current_threads() == cores, (current_threads(), cores)
with num_threads(1):
    assert current_threads() == 1
assert current_threads() == cores
print("ok")
"""


def test_default_and_context_manager_in_a_fresh_process():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
