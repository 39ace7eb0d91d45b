"""The main job (``make demo``): build, export, compile, check, time and save a CNN.

Steps:

1. build a small CIFAR-style ResNet in PyTorch and export it to ONNX;
2. compile the ONNX file with :func:`tvm_snn.compile` for this CPU;
3. check the output against ONNX Runtime and PyTorch;
4. print the compile report;
5. time it against ONNX Runtime and PyTorch (interleaved, same threads);
6. save the artifact and reload it.

Run ``python -m tvm_snn.demo --help`` for the options.
"""

import argparse
import json
import os
import warnings

import numpy as np

from tvm_snn.benchmarking import time_interleaved

CIFAR_SHAPE = (1, 3, 32, 32)
CIFAR_CLASSES = 10
THREADS = 2
# fp32, different summation orders: the tolerance of the output check.
CHECK_RTOL = 1e-4
CHECK_ATOL = 1e-4


def build_resnet(widths=(16, 32, 64), classes=CIFAR_CLASSES, seed=0):
    """A CIFAR ResNet with one basic block per stage (a ResNet-8)."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = nn.Identity()
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))

    torch.manual_seed(seed)
    layers = [nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
    cin = widths[0]
    for i, width in enumerate(widths):
        layers.append(Block(cin, width, 1 if i == 0 else 2))
        cin = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    model = nn.Sequential(*layers)
    for module in model.modules():  # non-trivial BN statistics, as after training
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def export_onnx(model, example, path):
    """Export ``model`` to ONNX with the TorchScript exporter."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), path, input_names=["input"], output_names=["logits"], dynamo=False)


def run(out_dir, target, repeat):
    """Run the demo; return the results dict that is also written to ``out_dir``."""
    import onnxruntime as ort
    import torch

    import tvm_snn

    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(THREADS)
    model = build_resnet()
    x = np.random.default_rng(0).standard_normal(CIFAR_SHAPE).astype(np.float32)
    onnx_path = os.path.join(out_dir, "resnet8.onnx")
    export_onnx(model, torch.from_numpy(x), onnx_path)
    print(f"[1/5] exported {onnx_path}")

    cm = tvm_snn.compile(onnx_path, target=target)
    print(f"[2/5] compiled for {json.dumps(cm.target)}")

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    ours = cm(x)
    theirs = session.run(None, {"input": x})[0]
    with torch.no_grad():
        torch_out = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=CHECK_RTOL, atol=CHECK_ATOL)
    np.testing.assert_allclose(ours, torch_out, rtol=CHECK_RTOL, atol=CHECK_ATOL)
    err = float(np.abs(ours - theirs).max())
    print(f"[3/5] output matches ONNX Runtime (max |diff| {err:.2e}) and PyTorch")
    print(cm.report())

    tensor = torch.from_numpy(x)

    def run_torch():
        with torch.no_grad():
            model(tensor)

    stats = time_interleaved(
        {"tvm_snn": lambda: cm(x), "onnxruntime": lambda: session.run(None, {"input": x}), "pytorch": run_torch},
        repeat=repeat,
    )
    print(f"[4/5] median latency, batch 1, {THREADS} threads, {repeat} interleaved rounds:")
    for name, stat in stats.items():
        ratio = stats[name]["median_ms"] / stats["tvm_snn"]["median_ms"]
        print(f"      {name:<12} {stat['median_ms']:8.3f} ms   ({ratio:.2f}x tvm_snn's time)")

    artifact = os.path.join(out_dir, "resnet8.so")
    cm.export_library(artifact)
    reloaded = tvm_snn.load(artifact)
    np.testing.assert_array_equal(reloaded(x), ours)
    print(f"[5/5] saved {artifact} (+ manifest); reloaded output is identical")
    results = {"target": cm.target, "max_abs_diff_vs_ort": err, "latency": stats, "artifact": artifact}
    with open(os.path.join(out_dir, "results.json"), "w") as handle:
        json.dump(results, handle, indent=2)
    return results


def main(argv=None):
    """Command-line entry of the demo."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/demo", help="output folder")
    parser.add_argument("--target", default="x86", help="target preset or string (default: this CPU)")
    parser.add_argument("--repeat", type=int, default=30, help="timed rounds per peer")
    args = parser.parse_args(argv)
    run(args.out, args.target, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
