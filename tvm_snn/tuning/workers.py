"""Cheap MetaSchedule workers: a builder pool kept for the whole run, and runners that start fast.

A fresh MetaSchedule worker imports ``tvm.s_tir.tensor_intrin`` (every CUDA,
ARM, x86 and ROCm tensor intrinsic: 17-22 s here) and, through ``tvm_ffi``,
torch when it is installed. Our design spaces use no tensorize rule, so the
workers skip both:

- ``_skip_tensor_intrin`` (the pools' ``initializer``) registers an empty
  module as ``tvm.s_tir.tensor_intrin``, so ``default_build`` imports nothing;
- the workers start with a ``PYTHONPATH`` entry whose ``torch`` package
  raises ``ImportError``, so ``tvm_ffi`` goes on without torch (its DLPack
  bridge to torch is not needed to compile or time a kernel).

``LocalBuilder`` makes a new process pool for every batch; :class:`KeptBuilder`
keeps one for the run. Runners time kernels on ``threads`` TVM threads.
"""

import contextlib
import os
import sys
import tempfile
import types

from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
from tvm.s_tir.meta_schedule.builder.local_builder import _serialize_params, _worker_func
from tvm.support.popen_pool import PopenPoolExecutor, StatusKind

TENSOR_INTRIN_MODULE = "tvm.s_tir.tensor_intrin"
_NO_TORCH = "raise ImportError('tvm-snn tuning workers run without torch')\n"


def _skip_tensor_intrin():
    """Worker initializer: an empty ``tvm.s_tir.tensor_intrin`` (see the module docstring)."""
    sys.modules.setdefault(TENSOR_INTRIN_MODULE, types.ModuleType(TENSOR_INTRIN_MODULE))


@contextlib.contextmanager
def worker_environment(threads):
    """Environment for worker processes started inside: no torch, ``threads`` TVM threads."""
    folder = tempfile.mkdtemp(prefix="tvm_snn_workers_")
    os.makedirs(os.path.join(folder, "torch"))
    with open(os.path.join(folder, "torch", "__init__.py"), "w") as handle:
        handle.write(_NO_TORCH)
    changes = {
        "PYTHONPATH": os.pathsep.join(p for p in (folder, os.environ.get("PYTHONPATH")) if p),
        "TVM_FFI_DISABLE_TORCH_C_DLPACK": "1",
        "TVM_NUM_THREADS": str(threads),
    }
    saved = {key: os.environ.get(key) for key in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@derived_object
class KeptBuilder(PyBuilder):
    """MetaSchedule's local build, on a process pool kept for the whole run.

    Parameters
    ----------
    max_workers : int
        Build processes.
    timeout_sec : float
        A build that takes longer is killed and recorded as failed.
    """

    def __init__(self, max_workers, timeout_sec):
        super().__init__()
        self.pool = PopenPoolExecutor(
            max_workers=max_workers, timeout=timeout_sec, initializer=_skip_tensor_intrin
        )
        self.timeout_sec = timeout_sec

    def build(self, build_inputs):
        args = [
            (None, None, item.mod, item.target, _serialize_params(item.params))
            for item in build_inputs
        ]
        results = []
        for outcome in self.pool.map_with_error_catching(lambda x: _worker_func(*x), args):
            if outcome.status == StatusKind.COMPLETE:
                results.append(BuilderResult(outcome.value, None))
            elif outcome.status == StatusKind.TIMEOUT:
                results.append(BuilderResult(None, f"build timed out after {self.timeout_sec} s"))
            else:
                results.append(BuilderResult(None, f"build failed: {outcome.value}"))
        return results

    def shutdown(self):
        self.pool.shutdown()


def _evaluator(number, repeat, min_repeat_ms):
    """The runners' timing: CPU caches flushed before each repeat (all arguments but the output).

    A kernel in a model reads weights and inputs that the kernels before it
    pushed out of the caches; timed warm, the tuner crowned plans that lost in
    the graph (``docs/TUNING.md``, "Measurement").
    """
    return ms.runner.EvaluatorConfig(
        number=number, repeat=repeat, min_repeat_ms=min_repeat_ms, enable_cpu_cache_flush=True
    )


def local_runner(timeout_sec, number, repeat, min_repeat_ms=0):
    """MetaSchedule's ``LocalRunner`` with cheap start-up (call inside :func:`worker_environment`)."""
    config = _evaluator(number, repeat, min_repeat_ms)
    return ms.runner.LocalRunner(
        timeout_sec=timeout_sec, evaluator_config=config, initializer=_skip_tensor_intrin
    )


def rpc_runner(
    tracker_host, tracker_port, key, timeout_sec, number, repeat, min_repeat_ms=0, max_workers=1
):
    """MetaSchedule's ``RPCRunner`` on the boards a TVM tracker knows by ``key`` (call inside :func:`worker_environment`).

    TVM's RPC has no authentication and runs whatever a client uploads:
    reach a board's tracker through an SSH tunnel (``docs/TUNING.md``), not
    over an open network.
    """
    config = _evaluator(number, repeat, min_repeat_ms)
    rpc = ms.runner.RPCConfig(
        tracker_host=tracker_host,
        tracker_port=int(tracker_port),
        tracker_key=key,
        session_timeout_sec=timeout_sec,
    )
    return ms.runner.RPCRunner(
        rpc, config, max_workers=max_workers, initializer=_skip_tensor_intrin
    )
