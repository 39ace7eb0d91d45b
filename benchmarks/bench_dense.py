"""The dense ops every CNN has, against ONNX Runtime and PyTorch.

One-op ONNX graphs (the op with constant weights), each compiled with
``tvm_snn.compile`` (the Python API, its defaults): the ImageNet stem (7x7/2
conv + batch norm + ReLU), float 3x3 convs at 64x56x56 and 256x14x14, the
ResNet downsampling 1x1/2 conv, max pooling 3x3/2, global average pooling and
the 512 -> 1000 classifier; batch 1 and 8. ONNX Runtime runs the same graph,
PyTorch the same op with the same weights, in this process, interleaved,
2 threads each. Prints ratios (peer time / tvm-snn time) and writes
``results/bench_dense.json`` and ``.png``.

With ``--tune N``, each op is first tuned (``tvm_snn.tune``, N trials, in a
fresh work dir) and the tuned model joins the runners as ``tvm_snn_tuned``;
the ratios are then against it, and the results go to ``bench_dense_tuned``.
The max pool kernel is written by hand and has nothing to tune: its tuned
model is the hand one.

Run: ``.venv/bin/python benchmarks/bench_dense.py [--quick] [--tune N]``.
"""

import argparse
import tempfile
from dataclasses import dataclass

import numpy as np
import torch
from onnx import TensorProto, helper, numpy_helper
from peers import BATCHES, machine, ort_runner, plot_ratios, tvm_runner, write_results

import tvm_snn
from tvm_snn.benchmarking import PEER_THREADS, time_peers
from tvm_snn.errors import TuningError
from tvm_snn.train.exporter import MAX_IR_VERSION, ONNX_OPSET

PEER_NAMES = ("onnxruntime", "pytorch")
TUNED = "tvm_snn_tuned"
ROUNDS = 8  # rounds, of PEER_BLOCK timed calls per peer
# One fp32 op vs ONNX Runtime: another summation order (a 3x3x256 reduction at most).
OP_RTOL = 1e-4
OP_ATOL = 1e-4
BN_EPSILON = 1e-5
IMAGENET = (3, 224)
CLASSES = 1000
FEATURES = 512


@dataclass(frozen=True)
class Case:
    """One op: its ONNX nodes and the PyTorch function of the same op.

    Attributes
    ----------
    name : str
    input_shape : callable
        ``batch -> input shape``.
    build : callable
        ``rng -> (nodes, initializers, torch_fn)``: the graph from input ``x``
        to output ``y``, and ``torch_fn(tensor) -> tensor``.
    """

    name: str
    input_shape: object
    build: object


def _weight(rng, shape):
    fan_in = int(np.prod(shape[1:]))
    return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


def conv_case(name, channels, size, out_channels, kernel, stride, padding, bn_relu=False):
    """A conv (no bias), optionally followed by batch norm and ReLU (the stem)."""

    def build(rng):
        weight = _weight(rng, (out_channels, channels, kernel, kernel))
        tensors = {"w": weight}
        conv_out = "c" if bn_relu else "y"
        nodes = [
            helper.make_node(
                "Conv",
                ["x", "w"],
                [conv_out],
                kernel_shape=[kernel] * 2,
                strides=[stride] * 2,
                pads=[padding] * 4,
            )
        ]
        if bn_relu:
            bn = {
                "gamma": rng.uniform(0.5, 1.5, out_channels),
                "beta": rng.standard_normal(out_channels) * 0.1,
                "mean": rng.standard_normal(out_channels) * 0.1,
                "var": rng.uniform(0.5, 1.5, out_channels),
            }
            tensors.update({key: value.astype(np.float32) for key, value in bn.items()})
            nodes.append(
                helper.make_node("BatchNormalization", ["c", *bn], ["b"], epsilon=BN_EPSILON)
            )
            nodes.append(helper.make_node("Relu", ["b"], ["y"]))
        torch_tensors = {key: torch.from_numpy(value) for key, value in tensors.items()}

        def run(t):
            out = torch.nn.functional.conv2d(t, torch_tensors["w"], stride=stride, padding=padding)
            if bn_relu:
                out = torch.nn.functional.batch_norm(
                    out,
                    torch_tensors["mean"],
                    torch_tensors["var"],
                    torch_tensors["gamma"],
                    torch_tensors["beta"],
                    eps=BN_EPSILON,
                )
                out = torch.relu(out)
            return out

        return nodes, tensors, run

    return Case(name, lambda batch: (batch, channels, size, size), build)


def maxpool_case(channels, size):
    def build(_rng):
        node = helper.make_node(
            "MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4
        )
        return [node], {}, lambda t: torch.nn.functional.max_pool2d(t, 3, 2, 1)

    return Case(
        f"maxpool 3x3/2 {channels}x{size}", lambda batch: (batch, channels, size, size), build
    )


def global_pool_case(channels, size):
    def build(_rng):
        node = helper.make_node("GlobalAveragePool", ["x"], ["y"])
        return [node], {}, lambda t: torch.nn.functional.adaptive_avg_pool2d(t, 1)

    return Case(
        f"global avgpool {channels}x{size}", lambda batch: (batch, channels, size, size), build
    )


def fc_case(features, classes):
    def build(rng):
        weight = _weight(rng, (classes, features))
        bias = (rng.standard_normal(classes) * 0.1).astype(np.float32)
        node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)
        w, b = torch.from_numpy(weight), torch.from_numpy(bias)
        return [node], {"w": weight, "b": bias}, lambda t: torch.nn.functional.linear(t, w, b)

    return Case(f"fc {features}->{classes}", lambda batch: (batch, features), build)


CASES = [
    conv_case("stem 7x7/2+bn+relu 3x224", *IMAGENET, 64, 7, 2, 3, bn_relu=True),
    conv_case("conv 3x3 64x56", 64, 56, 64, 3, 1, 1),
    conv_case("conv 3x3 256x14", 256, 14, 256, 3, 1, 1),
    conv_case("conv 1x1/2 64x56->128", 64, 56, 128, 1, 2, 0),
    maxpool_case(64, 112),
    global_pool_case(FEATURES, 7),
    fc_case(FEATURES, CLASSES),
]


def one_op_model(nodes, tensors, x_shape, y_shape):
    """A one-op ONNX graph ``x -> y`` with ``tensors`` as initializers."""
    graph = helper.make_graph(
        nodes,
        "dense_op",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(y_shape))],
        [numpy_helper.from_array(value, key) for key, value in tensors.items()],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], ir_version=MAX_IR_VERSION
    )


def tuned_runner(model, x, target, trials, folder):
    """``tvm_snn.compile`` with a tuning database of ``trials`` trials; (runner, tuned at all)."""
    work_dir = tempfile.mkdtemp(dir=folder)
    try:
        tvm_snn.tune(model, target=target, work_dir=work_dir, trials=trials)
    except TuningError:  # nothing to tune (the hand-written max pool kernel)
        return tvm_runner(model, x, target)[0], False
    cm = tvm_snn.compile(model, target=target, tuning_db=work_dir)
    return (lambda: cm(x)), True


def run_case(case, batch, target, trials=0, folder=None):
    rng = np.random.default_rng(batch)
    nodes, tensors, torch_fn = case.build(rng)
    x = rng.standard_normal(case.input_shape(batch)).astype(np.float32)
    t = torch.from_numpy(x)
    with torch.no_grad():
        y_shape = torch_fn(t).shape
    model = one_op_model(nodes, tensors, x.shape, y_shape)
    ours, _ = tvm_runner(model, x, target)
    torch.set_num_threads(PEER_THREADS)

    def run_torch():
        with torch.no_grad():
            return torch_fn(t)

    runners = {"tvm_snn": ours, "onnxruntime": ort_runner(model, x), "pytorch": run_torch}
    tunable = False
    if trials:
        runners[TUNED], tunable = tuned_runner(model, x, target, trials, folder)
        np.testing.assert_allclose(
            runners[TUNED](), runners["onnxruntime"](), rtol=OP_RTOL, atol=OP_ATOL
        )
    np.testing.assert_allclose(ours(), runners["onnxruntime"](), rtol=OP_RTOL, atol=OP_ATOL)
    stats = time_peers(runners, repeat=ROUNDS, warmup=1)
    ms = {name: stat["median_ms"] for name, stat in stats.items()}
    ours_key = TUNED if trials else "tvm_snn"
    ratios = {peer: ms[peer] / ms[ours_key] for peer in PEER_NAMES}
    row = {"case": case.name, "batch": batch, "median_ms": ms, "ratios": ratios}
    if trials:
        row.update(trials=trials, tunable=tunable, tuned_over_hand=ms["tvm_snn"] / ms[TUNED])
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="x86")
    parser.add_argument("--quick", action="store_true", help="batch 1 only")
    parser.add_argument(
        "--tune", type=int, default=0, metavar="N", help="tune each op for N trials first"
    )
    args = parser.parse_args(argv)
    batches = (1,) if args.quick else BATCHES
    rows = []
    print(f"{'case':<34} {'tvm-snn ms':>10} " + " ".join(f"{p:>12}" for p in PEER_NAMES))
    with tempfile.TemporaryDirectory() as folder:
        for batch in batches:
            for case in CASES:
                row = run_case(case, batch, args.target, args.tune, folder)
                rows.append(row)
                ratios = " ".join(f"{row['ratios'][p]:>11.2f}x" for p in PEER_NAMES)
                extra = f"  tuned/hand {row['tuned_over_hand']:.2f}x" if args.tune else ""
                ours_ms = row["median_ms"][TUNED if args.tune else "tvm_snn"]
                print(
                    f"{f'b{batch} ' + case.name:<34} {ours_ms:>10.3f} {ratios}{extra}", flush=True
                )
    name = "bench_dense_quick" if args.quick else "bench_dense"
    name = f"{name}_tuned" if args.tune else name
    print("wrote", write_results(name, {"machine": machine(), "cases": rows}))
    labels = [f"b{r['batch']} {r['case']}" for r in rows]
    series = {peer: [r["ratios"][peer] for r in rows] for peer in PEER_NAMES}
    print("wrote", plot_ratios(name, labels, series, "dense ops: speed-up of tvm-snn"))


if __name__ == "__main__":
    main()
