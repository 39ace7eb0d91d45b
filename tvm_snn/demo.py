"""The main job (``make demo``): train, export, compile, check, time and save SNNs.

Steps:

1. train a small sub-bit ResNet-20 on scikit-learn's digits with the
   training frontend, export it to ONNX, compile it for this CPU and check it
   against ONNX Runtime (the layers are too narrow to be worth lowering; the
   report says so);
2. build a CIFAR ResNet-18 with the frontend at 0.56 bit (tau=5 for the 3x3
   convs and the 1x1 shortcuts), float activations (W/A 0.56/32) and binary
   ones (0.56/1), export both, compile them, check them against ONNX Runtime
   and print the compile reports;
3. time them against ONNX Runtime and PyTorch (interleaved, same threads);
4. save the artifacts, reload one, and compare its size with the dense model's.

Run ``python -m tvm_snn.demo --help`` for the options.
"""

import argparse
import json
import os

import numpy as np

from tvm_snn.benchmarking import PEER_BLOCK, PEER_THREADS, onnxruntime_runner, time_peers

# fp32, different summation orders: the tolerance of the output check.
CHECK_RTOL = 1e-3
CHECK_ATOL = 1e-3
BYTES_PER_MB = 1e6
# Binary nets: ours may differ from ONNX Runtime at most this much more than TVM's dense path does.
BINARY_SLACK = 2.0


def _compile_and_check(path, x, target, label, binary=False):
    """Compile ``path``, check it against ONNX Runtime, print the report.

    With binary activations, ``sign`` turns float rounding differences near 0
    into whole flipped inputs, so two correct implementations differ: the
    check then asks that ours is no further from ONNX Runtime than TVM's own
    dense path on the same model.
    """
    import tvm_snn
    from relay_passes.policy import LoweringPolicy

    cm = tvm_snn.compile(str(path), target=target)
    ort_run = onnxruntime_runner(path)
    ours, theirs = cm(x), ort_run(x)
    diff = float(np.abs(ours - theirs).max())
    if binary:
        dense = tvm_snn.compile(str(path), target=target, snn_policy=LoweringPolicy(enabled=False))(x)
        dense_diff = float(np.abs(dense - theirs).max())
        assert diff <= BINARY_SLACK * max(dense_diff, CHECK_ATOL), (diff, dense_diff)
        print(f"{label}: max |diff| vs ONNX Runtime {diff:.2e}; TVM's dense path on the same model: {dense_diff:.2e}")
    else:
        np.testing.assert_allclose(ours, theirs, rtol=CHECK_RTOL, atol=CHECK_ATOL)
        print(f"{label}: output matches ONNX Runtime (max |diff| {diff:.2e})")
    print(cm.report())
    return cm, ort_run


def step_digits(out_dir, target, epochs):
    """Train and compile the digits SNN; return its test accuracy."""
    from tvm_snn.train import load_dataset, train_digits_snn
    from tvm_snn.train.recipes import DIGITS_TAU

    print(f"[1/4] training a sub-bit ResNet-20 (tau={DIGITS_TAU}) on digits, {epochs} epochs")
    _, accuracy, onnx_path = train_digits_snn(os.path.join(out_dir, "digits"), epochs=epochs, tau=DIGITS_TAU)
    print(f"      test accuracy {accuracy:.2%}; exported {onnx_path}")
    x = load_dataset("digits").example_input().numpy()
    _compile_and_check(onnx_path, x, target, "      digits SNN")
    return accuracy


def step_resnet18(out_dir, target, repeat):
    """Compile, check, time and save the two ResNet-18 SNNs."""
    import torch

    from tvm_snn.train.zoo import build_resnet18, cifar_input_shape

    torch.set_num_threads(PEER_THREADS)
    x = np.random.default_rng(0).standard_normal(cifar_input_shape()).astype(np.float32)
    results = {}
    for binary in (False, True):
        label = "0.56/1" if binary else "0.56/32"
        print(f"[2/4] CIFAR ResNet-18 at W/A {label}: export, compile, check")
        model, path = build_resnet18(binary, out_dir)
        cm, ort_run = _compile_and_check(path, x, target, f"      ResNet-18 {label}", binary)
        tensor = torch.from_numpy(x)

        def run_torch(model=model, tensor=tensor):
            with torch.no_grad():
                model(tensor)

        stats = time_peers(
            {"tvm_snn": lambda cm=cm: cm(x), "onnxruntime": lambda run=ort_run: run(x), "pytorch": run_torch},
            repeat=repeat,
            warmup=3,
        )
        print(
            f"[3/4] ResNet-18 {label}, batch 1, {PEER_THREADS} threads, {repeat} interleaved rounds "
            f"of {PEER_BLOCK} timed calls each (median):"
        )
        for name, stat in stats.items():
            ratio = stat["median_ms"] / stats["tvm_snn"]["median_ms"]
            print(f"      {name:<12} {stat['median_ms']:8.3f} ms   ({ratio:.2f}x tvm_snn's time)")
        artifact = cm.export_library(os.path.join(out_dir, f"{os.path.basename(path)[:-5]}.so"))
        results[label] = {"latency": stats, "artifact": artifact, "artifact_bytes": os.path.getsize(artifact)}
    return results


def step_artifacts(out_dir, target, results):
    """Reload an artifact and compare the SNN's size with the dense float model's."""
    import tvm_snn
    from tvm_snn.train import build_float_resnet18

    snn = results["0.56/32"]
    reloaded = tvm_snn.load(snn["artifact"])
    lowered = sum(layer.lowered for layer in reloaded.snn_layers)
    dense_path = build_float_resnet18(out_dir)
    dense_artifact = tvm_snn.compile(dense_path, target=target).export_library(os.path.join(out_dir, "resnet18_float.so"))
    dense_bytes = os.path.getsize(dense_artifact)
    print(f"[4/4] reloaded {snn['artifact']} ({lowered} convs on SNN kernels)")
    print(
        f"      artifact sizes: SNN 0.56/32 {snn['artifact_bytes'] / BYTES_PER_MB:.2f} MB, "
        f"dense float {dense_bytes / BYTES_PER_MB:.2f} MB ({dense_bytes / snn['artifact_bytes']:.1f}x smaller)"
    )
    return {"dense_artifact_bytes": dense_bytes}


def run(out_dir, target, repeat, epochs):
    """Run the demo; return the results that are also written to ``out_dir/results.json``."""
    os.makedirs(out_dir, exist_ok=True)
    accuracy = step_digits(out_dir, target, epochs)
    results = step_resnet18(out_dir, target, repeat)
    sizes = step_artifacts(out_dir, target, results)
    payload = {"target": target, "digits_accuracy": accuracy, "resnet18": results, **sizes}
    with open(os.path.join(out_dir, "results.json"), "w") as handle:
        json.dump(payload, handle, indent=2)
    return payload


def main(argv=None):
    """Command-line entry of the demo."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/demo", help="output folder")
    parser.add_argument("--target", default="x86", help="target preset or string (default: this CPU)")
    parser.add_argument("--repeat", type=int, default=10, help=f"interleaved rounds ({PEER_BLOCK} timed calls per peer each)")
    parser.add_argument("--epochs", type=int, default=15, help="digits training epochs")
    args = parser.parse_args(argv)
    run(args.out, args.target, args.repeat, args.epochs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
