"""The main job (``make demo``): train, export, compile, check, time and save SNNs.

Steps:

1. train a sub-bit ResNet-20 (0.56 bit) on scikit-learn's digits, upsampled
   to 16x16, with the training frontend, and export it to ONNX;
2. compile that model for this CPU, check it against ONNX Runtime, print the
   compile report (its sub-bit convs run on SNN kernels) and time it against
   ONNX Runtime and PyTorch (interleaved, same threads);
3. and 4. the same for a CIFAR ResNet-18 built with the frontend at 0.56 bit
   (tau=5 for the 3x3 convs and the 1x1 shortcuts), with float activations
   (W/A 0.56/32) and with binary ones (0.56/1);
5. save the artifacts, reload one, and compare its size with the dense model's.

Run ``python -m tvm_snn.demo --help`` for the options.
"""

import argparse
import json
import os

import numpy as np

from tvm_snn.benchmarking import PEER_BLOCK, PEER_THREADS, onnxruntime_runner, time_peers
from tvm_snn.train.recipes import DIGITS_EPOCHS

# fp32, different summation orders: the tolerance of the output check.
CHECK_RTOL = 1e-3
CHECK_ATOL = 1e-3
BYTES_PER_MB = 1e6
# Binary nets: ours may differ from ONNX Runtime at most this much more than TVM's dense path does.
BINARY_SLACK = 2.0
# The digits SNN is also timed at this batch (a serving batch; batch 1 of a 16x16
# image is a few microseconds of work per conv).
DIGITS_SERVING_BATCH = 8


def _compile_and_check(path, x, target, label, binary=False):
    """Compile ``path``, check it against ONNX Runtime, print the report.

    With binary activations, ``sign`` turns float rounding differences near 0
    into whole flipped inputs, so two correct implementations differ: the
    check then asks that ours is no further from ONNX Runtime than TVM's own
    dense path on the same model.
    """
    import tvm_snn

    cm = tvm_snn.compile(str(path), target=target)
    ort_run = onnxruntime_runner(path)
    ours, theirs = cm(x), ort_run(x)
    diff = float(np.abs(ours - theirs).max())
    if binary:
        dense = tvm_snn.compile(
            str(path), target=target, snn_policy=tvm_snn.LoweringPolicy(enabled=False)
        )(x)
        dense_diff = float(np.abs(dense - theirs).max())
        assert diff <= BINARY_SLACK * max(dense_diff, CHECK_ATOL), (diff, dense_diff)
        print(
            f"{label}: max |diff| vs ONNX Runtime {diff:.2e}; TVM's dense path on the same model: {dense_diff:.2e}"
        )
    else:
        np.testing.assert_allclose(ours, theirs, rtol=CHECK_RTOL, atol=CHECK_ATOL)
        print(f"{label}: output matches ONNX Runtime (max |diff| {diff:.2e})")
    print(cm.report())
    return cm, ort_run


STEPS = 5


def _step(number, text):
    print(f"[{number}/{STEPS}] {text}")


def _time(label, cm, ort_run, model, x, repeat):
    """Time ``cm`` against ONNX Runtime and PyTorch on ``x``; print and return the stats."""
    import torch

    tensor = torch.from_numpy(x)

    def run_torch():
        with torch.no_grad():
            model(tensor)

    stats = time_peers(
        {"tvm_snn": lambda: cm(x), "onnxruntime": lambda: ort_run(x), "pytorch": run_torch},
        repeat=repeat,
        warmup=3,
    )
    print(
        f"      {label}, batch {x.shape[0]}, {PEER_THREADS} threads, {repeat} interleaved rounds "
        f"of {PEER_BLOCK} timed calls each (median):"
    )
    for name, stat in stats.items():
        ratio = stat["median_ms"] / stats["tvm_snn"]["median_ms"]
        print(f"      {name:<12} {stat['median_ms']:8.3f} ms   ({ratio:.2f}x tvm_snn's time)")
    return stats


def step_digits(out_dir, target, epochs, repeat):
    """Train the digits SNN, then compile, check and time it; return its accuracy and timings."""
    import torch

    import tvm_snn
    from tvm_snn.train import export, load_dataset, train_digits_snn
    from tvm_snn.train.recipes import DIGITS_IMAGE_SIZE, DIGITS_TAU, DIGITS_WIDTH

    torch.set_num_threads(PEER_THREADS)
    side = DIGITS_IMAGE_SIZE
    _step(
        1,
        f"training a sub-bit ResNet-20 (width {DIGITS_WIDTH}, tau={DIGITS_TAU}) on digits at {side}x{side}, {epochs} epochs",
    )
    model, accuracy, onnx_path = train_digits_snn(
        os.path.join(out_dir, "digits"), epochs=epochs, tau=DIGITS_TAU
    )
    print(f"      test accuracy {accuracy:.2%}; exported {onnx_path}")
    _step(
        2,
        "the trained digits SNN: compile, check, time (batch 1, and batch 8 exported from the same model)",
    )
    x = load_dataset("digits", image_size=side).example_input().numpy()
    cm, ort_run = _compile_and_check(onnx_path, x, target, "      digits SNN")
    latency = {1: _time("digits SNN", cm, ort_run, model, x, repeat)}
    batch_path = os.path.join(out_dir, "digits", f"digits_snn_b{DIGITS_SERVING_BATCH}.onnx")
    export(model, torch.zeros(DIGITS_SERVING_BATCH, *x.shape[1:]), batch_path, write_pt2=False)
    batch_x = load_dataset("digits", image_size=side).example_input(DIGITS_SERVING_BATCH).numpy()
    batch_cm = tvm_snn.compile(batch_path, target=target)
    latency[DIGITS_SERVING_BATCH] = _time(
        "digits SNN", batch_cm, onnxruntime_runner(batch_path), model, batch_x, repeat
    )
    return {
        "accuracy": accuracy,
        "latency": latency,
        "lowered": sum(layer.lowered for layer in cm.snn_layers),
    }


def step_resnet18(out_dir, target, repeat):
    """Compile, check, time and save the two ResNet-18 SNNs."""
    import torch

    from tvm_snn.train.zoo import build_resnet18, cifar_input_shape

    torch.set_num_threads(PEER_THREADS)
    x = np.random.default_rng(0).standard_normal(cifar_input_shape()).astype(np.float32)
    results = {}
    for step, binary in ((3, False), (4, True)):
        label = "0.56/1" if binary else "0.56/32"
        _step(step, f"CIFAR ResNet-18 at W/A {label}: export, compile, check, time")
        model, path = build_resnet18(binary, out_dir)
        cm, ort_run = _compile_and_check(path, x, target, f"      ResNet-18 {label}", binary)
        stats = _time(f"ResNet-18 {label}", cm, ort_run, model, x, repeat)
        artifact = cm.export_library(os.path.join(out_dir, f"{os.path.basename(path)[:-5]}.so"))
        results[label] = {
            "latency": stats,
            "artifact": artifact,
            "artifact_bytes": os.path.getsize(artifact),
        }
    return results


def step_artifacts(out_dir, target, results):
    """Reload an artifact and compare the SNN's size with the dense float model's."""
    import tvm_snn
    from tvm_snn.train import build_float_resnet18

    snn = results["0.56/32"]
    reloaded = tvm_snn.load(snn["artifact"])
    lowered = sum(layer.lowered for layer in reloaded.snn_layers)
    dense_path = build_float_resnet18(out_dir)
    dense_artifact = tvm_snn.compile(dense_path, target=target).export_library(
        os.path.join(out_dir, "resnet18_float.so")
    )
    dense_bytes = os.path.getsize(dense_artifact)
    _step(5, f"reloaded {snn['artifact']} ({lowered} convs on SNN kernels)")
    print(
        f"      artifact sizes: SNN 0.56/32 {snn['artifact_bytes'] / BYTES_PER_MB:.2f} MB, "
        f"dense float {dense_bytes / BYTES_PER_MB:.2f} MB ({dense_bytes / snn['artifact_bytes']:.1f}x smaller)"
    )
    return {"dense_artifact_bytes": dense_bytes}


def run(out_dir, target, repeat, epochs):
    """Run the demo; return the results that are also written to ``out_dir/results.json``."""
    os.makedirs(out_dir, exist_ok=True)
    digits = step_digits(out_dir, target, epochs, repeat)
    results = step_resnet18(out_dir, target, repeat)
    sizes = step_artifacts(out_dir, target, results)
    payload = {"target": target, "digits": digits, "resnet18": results, **sizes}
    with open(os.path.join(out_dir, "results.json"), "w") as handle:
        json.dump(payload, handle, indent=2)
    return payload


def main(argv=None):
    """Command-line entry of the demo."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/demo", help="output folder")
    parser.add_argument(
        "--target", default="x86", help="target preset or string (default: this CPU)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=10,
        help=f"interleaved rounds ({PEER_BLOCK} timed calls per peer each)",
    )
    parser.add_argument("--epochs", type=int, default=DIGITS_EPOCHS, help="digits training epochs")
    args = parser.parse_args(argv)
    run(args.out, args.target, args.repeat, args.epochs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
