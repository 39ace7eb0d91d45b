"""``import tvm_snn.train`` must work on a training box without TVM."""

import subprocess
import sys

PROBE = (
    "import sys, tvm_snn.train, tvm_snn.train.models; "
    "leaked = sorted(m for m in sys.modules if m == 'tvm' or m.startswith('tvm.')); "
    "print(leaked); sys.exit(1 if leaked else 0)"
)


def test_importing_the_training_frontend_does_not_import_tvm():
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "[]"
