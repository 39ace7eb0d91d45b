"""CIFAR ResNet-18 SNNs end to end against ONNX Runtime and PyTorch.

The training frontend's CIFAR ResNet-18 at 0.56 bit (tau=5 for the 3x3 convs
and the 1x1 shortcuts), float activations (W/A 0.56/32) and binary ones
(0.56/1), exported to ONNX. tvm-snn compiles the ONNX file; ONNX Runtime runs
the same file; PyTorch runs the frozen model; TVM's dense path compiles the
same file with SNN lowering off. Same process, interleaved, 2 threads each,
batch 1 and 8. Writes ``results/bench_models.json`` and ``.png``.

Run: ``.venv/bin/python benchmarks/bench_models.py``.
"""

import argparse
import os
import tempfile

import numpy as np
from peers import (
    BATCHES,
    DENSE_POLICY,
    PEERS,
    machine,
    ort_runner,
    plot_ratios,
    tvm_runner,
    write_results,
)

from tvm_snn.benchmarking import PEER_THREADS, time_peers
from tvm_snn.train.zoo import build_resnet18, cifar_input_shape

REPEAT = 10  # rounds, of PEER_BLOCK timed calls per peer


def run_model(binary, batch, out_dir, target):
    import onnx
    import torch

    from tvm_snn.train import export

    torch.set_num_threads(PEER_THREADS)
    model, path = build_resnet18(binary, out_dir)
    if batch != 1:  # re-trace at this batch size
        path = os.path.join(out_dir, f"b{batch}_{os.path.basename(path)}")
        export(model, torch.zeros(cifar_input_shape(batch)), path, write_pt2=False)
    onnx_model = onnx.load(path)
    x = np.random.default_rng(batch).standard_normal(cifar_input_shape(batch)).astype(np.float32)
    ours, cm = tvm_runner(onnx_model, x, target)
    tensor = torch.from_numpy(x)

    def run_torch():
        with torch.no_grad():
            return model(tensor)

    runners = {
        "tvm_snn": ours,
        "onnxruntime": ort_runner(onnx_model, x),
        "pytorch": run_torch,
        "tvm_dense": tvm_runner(onnx_model, x, target, DENSE_POLICY)[0],
    }
    stats = time_peers(runners, repeat=REPEAT, warmup=2)
    ms = {name: stat["median_ms"] for name, stat in stats.items()}
    return {
        "model": "resnet18-cifar",
        "wa": "0.56/1" if binary else "0.56/32",
        "batch": batch,
        "lowered": sum(layer.lowered for layer in cm.snn_layers),
        "median_ms": ms,
        "ratios": {peer: ms[peer] / ms["tvm_snn"] for peer in PEERS},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="x86", help="target preset or string (default: this CPU)")
    args = parser.parse_args(argv)
    rows = []
    print(f"{'case':<24} {'tvm-snn ms':>10} " + " ".join(f"{p:>12}" for p in PEERS))
    with tempfile.TemporaryDirectory() as out_dir:
        for binary in (False, True):
            for batch in BATCHES:
                row = run_model(binary, batch, out_dir, args.target)
                rows.append(row)
                label = f"ResNet-18 {row['wa']} b{batch}"
                ratios = " ".join(f"{row['ratios'][p]:>11.2f}x" for p in PEERS)
                print(f"{label:<24} {row['median_ms']['tvm_snn']:>10.3f} {ratios}", flush=True)
    print("wrote", write_results("bench_models", {"machine": machine(), "cases": rows}))
    labels = [f"{r['wa']} b{r['batch']}" for r in rows]
    series = {peer: [r["ratios"][peer] for r in rows] for peer in PEERS}
    print("wrote", plot_ratios("bench_models", labels, series, "CIFAR ResNet-18 SNN: speed-up of tvm-snn"))


if __name__ == "__main__":
    main()
