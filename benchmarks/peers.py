"""Peers for the benchmarks: ONNX Runtime, PyTorch and TVM's dense path.

Every peer runs in this process with the same thread count. Timing is
interleaved (a block of calls of each peer per round, after a pause and
untimed warm-up calls, see ``tvm_snn.benchmarking.time_peers``) and the
median is reported.
"""

import json
import os
import platform
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper

import tvm_snn
from tvm_snn import LoweringPolicy
from tvm_snn.benchmarking import PEER_THREADS, onnxruntime_runner
from tvm_snn.train.exporter import MAX_IR_VERSION, ONNX_OPSET

# The batch sizes and the peers of bench_layers.py and bench_models.py.
BATCHES = (1, 8)
PEERS = ("onnxruntime", "pytorch", "tvm_dense")
RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
# TVM's own dense path on the same model.
DENSE_POLICY = LoweringPolicy(enabled=False)


def conv_onnx(weight, shape, padding, stride=1, binary=False):
    """An ONNX graph ``[Sign ->] Conv`` with a constant weight."""
    kernel = weight.shape[2]
    out_hw = [(d + 2 * padding - kernel) // stride + 1 for d in shape[2:]]
    nodes, source = [], "x"
    if binary:
        nodes.append(helper.make_node("Sign", ["x"], ["s"]))
        source = "s"
    nodes.append(
        helper.make_node("Conv", [source, "w"], ["y"], pads=[padding] * 4, strides=[stride] * 2)
    )
    graph = helper.make_graph(
        nodes,
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [
            helper.make_tensor_value_info(
                "y", TensorProto.FLOAT, [shape[0], weight.shape[0], *out_hw]
            )
        ],
        [numpy_helper.from_array(weight, "w")],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], ir_version=MAX_IR_VERSION
    )


def ort_runner(model, x):
    """A zero-argument callable running ONNX Runtime on ``x``."""
    run = onnxruntime_runner(model)
    return lambda: run(x)


def torch_conv_runner(weight, x, padding, stride=1, binary=False):
    """PyTorch's conv2d (oneDNN) on the same weight."""
    torch.set_num_threads(PEER_THREADS)
    w, t = torch.from_numpy(weight), torch.from_numpy(x)

    def run():
        with torch.no_grad():
            data = torch.sign(t) if binary else t
            return torch.nn.functional.conv2d(data, w, padding=padding, stride=stride).numpy()

    return run


def tvm_runner(model, x, target, policy=None):
    """``tvm_snn.compile`` on an ONNX model; returns (runner, CompiledModel)."""
    cm = tvm_snn.compile(model, target=target, snn_policy=policy)
    return (lambda: cm(x)), cm


def bnn_runner(weight, x, target, padding=1, stride=1):
    """Our BNN XOR/popcount kernel (:mod:`schedules.bnn_xnor`) on the same +-1 weight.

    Called the way ``CompiledModel`` runs a model: the input is copied into
    an aligned tensor and the output is returned as a NumPy view, so both
    pay the same per-call costs.
    """
    import tvm

    from schedules.bnn_xnor import BinaryConv, build_kernel
    from tvm_snn.target import parse_target

    conv = BinaryConv.from_dense(weight, stride=stride, padding=padding)
    func, constants, out_shape = build_kernel(conv, x.shape)
    run = tvm.compile(func, target=parse_target(target)).mod["main"]
    data = tvm.runtime.empty(x.shape, "float32")
    staging = np.from_dlpack(data)
    args = [data, *[tvm.runtime.tensor(c) for c in constants]]
    out = tvm.runtime.tensor(np.zeros(out_shape, np.float32))

    def call():
        np.copyto(staging, x)
        run(*args, out)
        return np.from_dlpack(out)

    return call


def _cpu_model():
    """The CPU's model name from /proc/cpuinfo, or "" where there is none."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def machine():
    """What the results were measured on: the CPU (model and LLVM's name for it), cores, versions."""
    from tvm_snn.target import target_spec

    return {
        "cpu": platform.processor() or platform.machine(),
        "cpu_model": _cpu_model(),
        "mcpu": target_spec("x86").get("mcpu"),
        "cores": os.cpu_count(),
        "threads": PEER_THREADS,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "onnx": onnx.__version__,
    }


def write_results(name, payload):
    """Write ``benchmarks/results/<name>.json``."""
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, f"{name}.json")
    with open(path, "w") as handle:
        json.dump(payload, handle, indent=2)
    return path


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (its import warnings silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    return plt


def save_figure(fig, name):
    """Write ``fig`` to ``benchmarks/results/<name>.png`` and close it; return the path."""
    fig.tight_layout()
    path = os.path.join(RESULTS_DIR, f"{name}.png")
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
    return path


def plot_ratios(name, labels, series, title):
    """Bar chart of speed-up ratios (peer time / ours), one bar group per label."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6, len(labels) * 0.6), 4))
    width = 0.8 / max(len(series), 1)
    for i, (peer, values) in enumerate(series.items()):
        ax.bar(np.arange(len(labels)) + i * width, values, width, label=peer)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(np.arange(len(labels)) + width * (len(series) - 1) / 2)
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("peer time / tvm-snn time")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return save_figure(fig, name)
