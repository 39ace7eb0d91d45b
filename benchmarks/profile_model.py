"""Where a whole model's time goes: each compiled kernel alone, against the API call and ONNX Runtime.

For the zoo's sub-bit ResNets (``--models``, 0.56/32 and 0.56/1, ``--batch``),
this compiles each TensorIR kernel that ``tvm_snn.compile`` schedules, alone,
and times it on random buffers of its parameter shapes (2 threads), times
the call sites that run it, and groups them by stage (the output shape) and
by kind (SNN conv, dense conv, pool, matmul, other). ONNX Runtime's own
profiler gives its time per op type on the same model. The sums are set
beside the API call and ONNX Runtime's, timed interleaved in this process.

Prints the table, writes ``results/profile_model.json``.

Run: ``.venv/bin/python benchmarks/profile_model.py [--models imagenet-resnet18] [--batch 1]``.
"""

import argparse
import collections
import json
import os
import re
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
import tvm
from bench_models import MODELS
from peers import machine, ort_runner, tvm_runner, write_results
from profile_dense_conv import PROFILE_TARGET

from relay_passes.pipeline import run_graph_passes, run_schedule_passes
from tvm_snn.benchmarking import PEER_THREADS, time_peers
from tvm_snn.importers import to_relax
from tvm_snn.target import parse_target, target_spec
from tvm_snn.threads import running_on
from tvm_snn.train.zoo import build_snn_resnet, input_shape

MODEL_ROUNDS = 5
KERNEL_NUMBER = 5  # calls per kernel timing
KERNEL_REPEAT = 5  # timings per kernel (median)
ORT_PROFILE_RUNS = 20
KERNEL_KINDS = (
    ("snn_conv", "snn conv"),
    ("dense_conv", "dense conv"),
    ("pool", "pool"),
    ("matmul", "matmul"),
    ("mean", "pool"),
)


def kind_of(name):
    """The kind of a kernel, from the name FuseOps gave it."""
    return next((kind for key, kind in KERNEL_KINDS if key in name), "other")


def call_counts(main):
    """``{PrimFunc name: call sites}`` of the ``call_tir`` bindings in ``main``."""
    counts = collections.Counter()
    call_tir = tvm.ir.Op.get("relax.call_tir")
    for block in main.body.blocks:
        for binding in block.bindings:
            value = binding.value
            if isinstance(value, tvm.relax.Call) and value.op.same_as(call_tir):
                counts[value.args[0].name_hint] += 1
    return counts


def time_kernel(name, func, target):
    """Median ms of one call of ``func``, compiled alone, on random buffers."""
    lib = tvm.compile(tvm.IRModule({name: func.with_attr("global_symbol", name)}), target=target)
    rng = np.random.default_rng(0)
    args = []
    for param in func.params:
        shape = [int(d) for d in param.ty.shape]
        dtype = str(param.ty.dtype)
        values = (
            rng.standard_normal(shape) if dtype.startswith("float") else rng.integers(0, 2, shape)
        )
        args.append(tvm.runtime.tensor(values.astype(dtype), tvm.cpu()))
    with running_on(PEER_THREADS):
        timer = lib.mod.time_evaluator(name, tvm.cpu(), number=KERNEL_NUMBER, repeat=KERNEL_REPEAT)
        return float(np.median(timer(*args).results)) * 1e3, [
            int(d) for d in func.params[-1].ty.shape
        ]


def kernel_table(onnx_model, target):
    """One row per kernel: name, kind, output shape, call sites, ms per call."""
    tvm_target = parse_target(target_spec(target))
    mod = run_schedule_passes(run_graph_passes(to_relax(onnx_model, None), tvm_target), tvm_target)
    counts = call_counts(mod["main"])
    rows = []
    for gvar, func in mod.functions_items():
        if isinstance(func, tvm.tirx.PrimFunc) and counts[gvar.name_hint]:
            ms, out_shape = time_kernel(gvar.name_hint, func, tvm_target)
            rows.append(
                {
                    "name": gvar.name_hint,
                    "kind": kind_of(gvar.name_hint),
                    "out": out_shape,
                    "calls": counts[gvar.name_hint],
                    "ms": ms,
                }
            )
    return rows


def ort_op_times(onnx_model, x, runs=ORT_PROFILE_RUNS):
    """ONNX Runtime's own profile: ``{op type: ms per model call}`` (2 threads)."""
    with tempfile.TemporaryDirectory() as folder:
        options = ort.SessionOptions()
        options.intra_op_num_threads = PEER_THREADS
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(folder, "ort")
        session = ort.InferenceSession(
            onnx_model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        name = session.get_inputs()[0].name
        for _ in range(runs):
            session.run(None, {name: x})
        with open(session.end_profiling()) as handle:
            events = json.load(handle)
    totals = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += event["dur"] / 1e3 / runs  # us -> ms per call
    return dict(totals)


def stage_of(row):
    """A stage label: the output's channels x height (``1000`` for the classifier)."""
    out = row["out"]
    return f"{out[1]}x{out[2]}" if len(out) == 4 else "x".join(map(str, out[1:]))


def profile(key, binary, batch, out_dir):
    name, stem = MODELS[key]
    _, path = build_snn_resnet(name, stem, binary, out_dir, batch=batch)
    onnx_model = onnx.load(path)
    x = np.random.default_rng(batch).standard_normal(input_shape(stem, batch)).astype(np.float32)
    api, _ = tvm_runner(onnx_model, x, PROFILE_TARGET)
    totals = {
        peer: s["median_ms"]
        for peer, s in time_peers(
            {"tvm_snn": api, "onnxruntime": ort_runner(onnx_model, x)}, repeat=MODEL_ROUNDS
        ).items()
    }
    kernels = kernel_table(onnx_model, PROFILE_TARGET)
    by = collections.defaultdict(float)
    for row in kernels:
        by[(row["kind"], stage_of(row))] += row["ms"] * row["calls"]
    return {
        "model": key,
        "wa": "0.56/1" if binary else "0.56/32",
        "batch": batch,
        "totals_ms": totals,
        "kernels_sum_ms": sum(row["ms"] * row["calls"] for row in kernels),
        "by_kind_and_stage_ms": {
            f"{kind} {stage}": ms for (kind, stage), ms in sorted(by.items(), key=lambda kv: -kv[1])
        },
        "onnxruntime_by_op_ms": ort_op_times(onnx_model, x),
        "kernels": kernels,
    }


def print_profile(result):
    totals = result["totals_ms"]
    print(
        f"\n{result['model']} {result['wa']} b{result['batch']}: api {totals['tvm_snn']:.2f} ms, "
        f"kernels alone {result['kernels_sum_ms']:.2f} ms, onnxruntime {totals['onnxruntime']:.2f} ms "
        f"({totals['onnxruntime'] / totals['tvm_snn']:.2f}x)"
    )
    for label, ms in result["by_kind_and_stage_ms"].items():
        print(f"  {label:<24} {ms:8.3f} ms  {ms / result['kernels_sum_ms']:6.1%}")
    print(
        "  onnxruntime by op: "
        + ", ".join(
            f"{op} {ms:.2f}"
            for op, ms in sorted(result["onnxruntime_by_op_ms"].items(), key=lambda kv: -kv[1])
        )
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        nargs="+",
        choices=list(MODELS),
        default=["imagenet-resnet18"],
        help="which models",
    )
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as out_dir:
        for key in args.models:
            for binary in (False, True):
                result = profile(key, binary, args.batch, out_dir)
                print_profile(result)
                results.append(result)
    label = re.sub(r"[^a-z0-9]+", "_", "_".join(args.models))
    print(
        "wrote",
        write_results(
            f"profile_model_{label}_b{args.batch}", {"machine": machine(), "results": results}
        ),
    )


if __name__ == "__main__":
    main()
