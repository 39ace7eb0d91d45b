"""Sub-bit conv layers against ONNX Runtime, PyTorch and TVM's dense conv.

ResNet-18's 3x3 layer shapes (64x56, 128x28, 256x14, 512x7), batch 1 and 8,
float and binary (``Sign``) activations, tau = 4, 5, 6. Every case is one
``[Sign ->] Conv`` ONNX graph whose weight is exactly ``alpha * P[idx]``;
tvm-snn compiles it through the full pipeline (detection, lowering, fused
kernels), and the peers run the same graph in the same process, interleaved,
with 2 threads each. Prints ratios (peer time / tvm-snn time) and writes
``results/bench_layers.json`` and ``.png``.

Run: ``.venv/bin/python benchmarks/bench_layers.py [--quick]``.
"""

import argparse
import time

import numpy as np
from peers import (
    BATCHES,
    DENSE_POLICY,
    PEERS,
    bnn_runner,
    conv_onnx,
    machine,
    ort_runner,
    plot_ratios,
    torch_conv_runner,
    tvm_runner,
    write_results,
)

from schedules.subbit import ACTIVATIONS, SubBitConv
from tvm_snn.benchmarking import PEER_BLOCK, PEER_SETTLE_S, PEER_WARM_S, time_peers

SHAPES = [(64, 56), (128, 28), (256, 14), (512, 7)]
TAUS = [4, 5, 6]
TIME_BUDGET_S = 6.0
MIN_REPEAT, MAX_REPEAT = 5, 12  # rounds, of PEER_BLOCK timed calls per peer
# One fp32 conv layer (ours, and the BNN kernel) vs ONNX Runtime: another summation order.
LAYER_RTOL = 1e-4
LAYER_ATOL = 1e-3
# Binary activations only: our BNN XOR/popcount kernel on the same weight.
BNN_PEER = "bnn_xnor"


def subbit_weight(channels, tau, seed):
    """A ``channels x channels x 3 x 3`` weight with 2**tau patterns and signed alpha."""
    rng = np.random.default_rng(seed)
    codes = rng.choice(512, 1 << tau, replace=False)
    book = 2 * ((codes[:, None] >> np.arange(9)) & 1) - 1
    idx = rng.integers(0, len(book), (channels, channels))
    alpha = rng.uniform(0.5, 1.5, channels) * rng.choice([-1, 1], channels)
    conv = SubBitConv.from_codes(book.astype(np.int8), idx, alpha.astype(np.float32), tau=tau, padding=1)
    return conv.to_dense()


def repeats_for(runners):
    """Rounds that fit the time budget, from one timed call of each runner."""
    slowest = 0.0
    for run in runners.values():
        start = time.perf_counter()
        run()
        slowest = max(slowest, time.perf_counter() - start)
    per_round = (slowest * (PEER_BLOCK + 1) + PEER_SETTLE_S + PEER_WARM_S) * len(runners)
    return int(np.clip(TIME_BUDGET_S / max(per_round, 1e-6), MIN_REPEAT, MAX_REPEAT))


def run_case(channels, size, batch, tau, activation, target):
    weight = subbit_weight(channels, tau, seed=channels + tau)
    shape = (batch, channels, size, size)
    x = np.random.default_rng(batch).standard_normal(shape).astype(np.float32)
    binary = activation == "binary"
    model = conv_onnx(weight, shape, padding=1, binary=binary)
    ours, cm = tvm_runner(model, x, target)
    (layer,) = cm.snn_layers
    if not layer.lowered:  # the cost model keeps it dense: nothing of ours to time
        return {"channels": channels, "size": size, "batch": batch, "tau": tau, "activation": activation, "lowered": False, "reason": layer.reason}
    runners = {
        "tvm_snn": ours,
        "onnxruntime": ort_runner(model, x),
        "pytorch": torch_conv_runner(weight, x, padding=1, binary=binary),
        "tvm_dense": tvm_runner(model, x, target, DENSE_POLICY)[0],
    }
    if binary:  # same function: the inputs have no exact zeros, where sign and b(x) differ
        runners[BNN_PEER] = bnn_runner(weight, x, target)
    reference = runners["onnxruntime"]()
    for name in ("tvm_snn", BNN_PEER):
        if name in runners:
            np.testing.assert_allclose(runners[name](), reference, rtol=LAYER_RTOL, atol=LAYER_ATOL)
    stats = time_peers(runners, repeat=repeats_for(runners), warmup=1)
    ms = {name: stat["median_ms"] for name, stat in stats.items()}
    return {
        "channels": channels,
        "size": size,
        "batch": batch,
        "tau": tau,
        "activation": activation,
        "lowered": True,
        "median_ms": ms,
        "ratios": {peer: ms[peer] / ms["tvm_snn"] for peer in ms if peer != "tvm_snn"},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="x86")
    parser.add_argument("--quick", action="store_true", help="tau=5, batch 1 only")
    args = parser.parse_args(argv)
    taus, batches = ([5], [1]) if args.quick else (TAUS, BATCHES)
    rows = []
    print(f"{'case':<28} {'tvm-snn ms':>10} " + " ".join(f"{p:>12}" for p in [*PEERS, BNN_PEER]))
    for activation in ACTIVATIONS:
        for tau in taus:
            for batch in batches:
                for channels, size in SHAPES:
                    row = run_case(channels, size, batch, tau, activation, args.target)
                    rows.append(row)
                    label = f"{activation[:3]} t{tau} b{batch} {channels}x{size}"
                    if not row["lowered"]:
                        print(f"{label:<28} not lowered: {row['reason']}", flush=True)
                        continue
                    ratios = " ".join(f"{row['ratios'][p]:>11.2f}x" for p in PEERS)
                    if BNN_PEER in row["ratios"]:
                        ratios += f" {row['ratios'][BNN_PEER]:>11.2f}x"
                    print(f"{label:<28} {row['median_ms']['tvm_snn']:>10.3f} {ratios}", flush=True)
    name = "bench_layers_quick" if args.quick else "bench_layers"
    print("wrote", write_results(name, {"machine": machine(), "cases": rows}))
    rows = [r for r in rows if r["lowered"]]
    labels = [f"{r['activation'][:3]} t{r['tau']} b{r['batch']} {r['channels']}x{r['size']}" for r in rows]
    series = {peer: [r["ratios"].get(peer, float("nan")) for r in rows] for peer in [*PEERS, BNN_PEER]}
    print("wrote", plot_ratios(name, labels, series, "sub-bit conv layers: speed-up of tvm-snn"))


if __name__ == "__main__":
    main()
