"""Sub-bit ResNets end to end against ONNX Runtime and PyTorch: CIFAR and ImageNet shapes.

The training frontend's ResNets at 0.56 bit (tau=5 for the 3x3 convs and the
1x1 shortcuts), float activations (W/A 0.56/32) and binary ones (0.56/1),
exported to ONNX: the CIFAR ResNet-18 (32x32, 3x3 stem) and the ImageNet
ResNet-18 and ResNet-34 (224x224, 7x7/2 stem and maxpool, float stem and
classifier). tvm-snn compiles the ONNX file with the Python API's defaults;
ONNX Runtime runs the same file; PyTorch runs the frozen model; on CIFAR
shapes TVM's dense path also compiles the same file with SNN lowering off
(on ImageNet shapes it takes seconds per call, so it is left out). Same
process, interleaved, 2 threads each, batch 1 and 8. Prints the ratios (peer
time / tvm-snn time) and the compile time, and writes
``results/bench_models.json`` and ``.png``.

Run: ``.venv/bin/python benchmarks/bench_models.py [--models cifar-resnet18 imagenet-resnet18 ...]``.
"""

import argparse
import tempfile
import time

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
from tvm_snn.train.zoo import build_snn_resnet, input_shape

REPEAT = 10  # rounds, of PEER_BLOCK timed calls per peer
# Fewer rounds where one call takes tens of milliseconds (ImageNet shapes).
IMAGENET_REPEAT = 5
MODELS = {
    "cifar-resnet18": ("resnet18", "cifar"),
    "imagenet-resnet18": ("resnet18", "imagenet"),
    "imagenet-resnet34": ("resnet34", "imagenet"),
}
# TVM's dense path runs only where one call takes well under a second.
DENSE_PEER_STEMS = ("cifar",)


def run_model(key, binary, batch, out_dir, target):
    """Compile one model and time it against its peers; return a result row."""
    import onnx
    import torch

    torch.set_num_threads(PEER_THREADS)
    name, stem = MODELS[key]
    model, path = build_snn_resnet(name, stem, binary, out_dir, batch=batch)
    onnx_model = onnx.load(path)
    x = np.random.default_rng(batch).standard_normal(input_shape(stem, batch)).astype(np.float32)
    start = time.perf_counter()
    ours, cm = tvm_runner(onnx_model, x, target)
    compile_s = time.perf_counter() - start
    tensor = torch.from_numpy(x)

    def run_torch():
        with torch.no_grad():
            return model(tensor)

    runners = {"tvm_snn": ours, "onnxruntime": ort_runner(onnx_model, x), "pytorch": run_torch}
    if stem in DENSE_PEER_STEMS:
        runners["tvm_dense"] = tvm_runner(onnx_model, x, target, DENSE_POLICY)[0]
    repeat = REPEAT if stem == "cifar" else IMAGENET_REPEAT
    stats = time_peers(runners, repeat=repeat, warmup=2)
    ms = {peer: stat["median_ms"] for peer, stat in stats.items()}
    return {
        "model": key,
        "wa": "0.56/1" if binary else "0.56/32",
        "batch": batch,
        "lowered": sum(layer.lowered for layer in cm.snn_layers),
        "convs": len(cm.snn_layers),
        "threads": cm.num_threads,
        "compile_s": compile_s,
        "median_ms": ms,
        "ratios": {peer: ms[peer] / ms["tvm_snn"] for peer in PEERS if peer in ms},
        "report": cm.report(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="x86", help="target preset or string (default: this CPU)")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS), help="which models")
    parser.add_argument("--batches", nargs="+", type=int, default=list(BATCHES), help="batch sizes (default 1 8)")
    args = parser.parse_args(argv)
    rows = []
    print(f"{'case':<34} {'lowered':>8} {'compile s':>9} {'tvm-snn ms':>10} " + " ".join(f"{p:>12}" for p in PEERS))
    with tempfile.TemporaryDirectory() as out_dir:
        for key in args.models:
            for binary in (False, True):
                for batch in args.batches:
                    row = run_model(key, binary, batch, out_dir, args.target)
                    rows.append(row)
                    label = f"{key} {row['wa']} b{batch}"
                    ratios = " ".join(
                        f"{row['ratios'][p]:>11.2f}x" if p in row["ratios"] else f"{'-':>12}" for p in PEERS
                    )
                    print(
                        f"{label:<34} {row['lowered']:>3}/{row['convs']:<4} {row['compile_s']:>9.1f} "
                        f"{row['median_ms']['tvm_snn']:>10.3f} {ratios}",
                        flush=True,
                    )
    print("wrote", write_results("bench_models", {"machine": machine(), "cases": rows}))
    labels = [f"{r['model']} {r['wa']} b{r['batch']}" for r in rows]
    series = {peer: [r["ratios"].get(peer, float("nan")) for r in rows] for peer in PEERS}
    print("wrote", plot_ratios("bench_models", labels, series, "sub-bit ResNets: speed-up of tvm-snn"))


if __name__ == "__main__":
    main()
