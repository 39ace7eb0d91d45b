"""Tuning: best latency against trials, and tuned against hand-scheduled and ONNX Runtime, in one run.

For each model of the zoo (``--models``; CIFAR and ImageNet ResNet-18 at
0.56/32 and 0.56/1 by default), or with ``--layers`` for each of ResNet-18's
3x3 layer shapes (``bench_layers``'s one-conv graphs, tau = 5, float and
binary, batch 1 or ``--batch``; our BNN kernel joins the peers on binary layers),
``tvm_snn.tune`` runs ``--trials`` trials in
a fresh work dir (with its defaults: the local runner, 2 threads). The curve
is the model's kernel time at the best plans so far (sum over kernels of
calls x best time), with the sub-bit kernels and the dense convs apart.
Then the hand-scheduled model, the tuned model (``compile(tuning_db=)``) and
ONNX Runtime are timed side by side, in this process, in blocks (batch 1 for
the models).

Prints the trial rate and ratios; writes ``results/bench_tuning.json`` and
``results/bench_tuning.png`` (the curves).

Run: ``.venv/bin/python benchmarks/bench_tuning.py [--trials 200] [--models cifar-resnet18 ...]``.
"""

import argparse
import json
import os
import tempfile
import time

import numpy as np
import onnx
from bench_layers import SHAPES, subbit_weight
from bench_models import MODELS
from peers import (
    RESULTS_DIR,
    bnn_runner,
    conv_onnx,
    machine,
    ort_runner,
    pyplot,
    save_figure,
    write_results,
)

import tvm_snn
from tvm_snn.benchmarking import time_peers
from tvm_snn.train.zoo import build_snn_resnet, input_shape

DEFAULT_TRIALS = 200
TUNING_ROUNDS = 5  # timing rounds of the three runners
SNN_KINDS = ("pixel-lane", "lane")
LAYER_TAU = 5
LAYER_TRIALS = 48  # per layer: one task, so its hand plan and five rounds


def run_layer(channels, size, activation, trials, folder, batch=1):
    """Tune one sub-bit conv layer; time hand, tuned, ONNX Runtime (and our BNN kernel on binary layers)."""
    weight = subbit_weight(channels, LAYER_TAU, seed=channels + LAYER_TAU)
    shape = (batch, channels, size, size)
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    binary = activation == "binary"
    model = conv_onnx(weight, shape, padding=1, binary=binary)
    work_dir = os.path.join(folder, f"layer-{channels}-{size}-{activation}")
    start = time.perf_counter()
    result = tvm_snn.tune(model, work_dir=work_dir, trials=trials)
    tune_s = time.perf_counter() - start
    hand = tvm_snn.compile(model)
    tuned = tvm_snn.compile(model, tuning_db=work_dir)
    runners = {
        "hand": lambda: hand(x),
        "tuned": lambda: tuned(x),
        "onnxruntime": ort_runner(model, x),
    }
    if binary:
        runners["bnn"] = bnn_runner(weight, x, "x86")
    stats = time_peers(runners, repeat=TUNING_ROUNDS)
    ms = {peer: s["median_ms"] for peer, s in stats.items()}
    return {
        "layer": f"{channels}x{size}",
        "activation": activation,
        "batch": batch,
        "trials": trials,
        "tune_s": tune_s,
        "trials_per_minute": result.trials_per_minute,
        "curve": result.curve,
        "median_ms": ms,
        "tuned_over_hand": ms["hand"] / ms["tuned"],
        "ratios_tuned": {
            peer: ms[peer] / ms["tuned"] for peer in ms if peer not in ("hand", "tuned")
        },
        "ratios_hand": {
            peer: ms[peer] / ms["hand"] for peer in ms if peer not in ("hand", "tuned")
        },
        "tasks": [task.__dict__ for task in result.tasks],
    }


def kind_curve(result, kinds):
    """The kernel time of the tasks of ``kinds`` at their final best plans, and at the hand plans (ms)."""
    tasks = [t for t in result.tasks if t.kind in kinds and t.hand_ms is not None]
    return sum(t.calls * t.hand_ms for t in tasks), sum(t.calls * t.best_ms for t in tasks)


def run(key, binary, trials, folder):
    name, stem = MODELS[key]
    _, path = build_snn_resnet(name, stem, binary, folder, batch=1)
    model = onnx.load(path)
    x = np.random.default_rng(0).standard_normal(input_shape(stem, 1)).astype(np.float32)
    work_dir = os.path.join(folder, f"{key}-{binary}")
    start = time.perf_counter()
    result = tvm_snn.tune(model, work_dir=work_dir, trials=trials)
    tune_s = time.perf_counter() - start
    hand = tvm_snn.compile(model)
    tuned = tvm_snn.compile(model, tuning_db=work_dir)
    stats = time_peers(
        {"hand": lambda: hand(x), "tuned": lambda: tuned(x), "onnxruntime": ort_runner(model, x)},
        repeat=TUNING_ROUNDS,
    )
    ms = {peer: s["median_ms"] for peer, s in stats.items()}
    snn_hand, snn_best = kind_curve(result, SNN_KINDS)
    dense_hand, dense_best = kind_curve(result, ("dense-conv",))
    return {
        "model": key,
        "wa": "0.56/1" if binary else "0.56/32",
        "trials": trials,
        "tune_s": tune_s,
        "trials_per_minute": result.trials_per_minute,
        "curve": result.curve,
        "kernels_ms": {
            "snn_hand": snn_hand,
            "snn_tuned": snn_best,
            "dense_hand": dense_hand,
            "dense_tuned": dense_best,
        },
        "median_ms": ms,
        "tuned_over_hand": ms["hand"] / ms["tuned"],
        "tuned_vs_onnxruntime": ms["onnxruntime"] / ms["tuned"],
        "hand_vs_onnxruntime": ms["onnxruntime"] / ms["hand"],
        "tasks": [task.__dict__ for task in result.tasks],
        "report": tuned.report(),
    }


def plot_curves(rows, name):
    """Model kernel time against trials, one line per model."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for row in rows:
        # The kernel time grows while the hand plans are measured; the curve starts once all are.
        curve = row["curve"]
        first = max(range(len(curve)), key=lambda i: curve[i]["model_ms"])
        trials = [point["trials"] for point in curve[first:]]
        model_ms = [point["model_ms"] for point in curve[first:]]
        label = (
            f"{row['model']} {row['wa']}"
            if "model" in row
            else f"{row['layer']} {row['activation']}"
        )
        ax.plot(trials, model_ms, marker=".", label=label)
    ax.set_xlabel("trials (from the last hand plan measured)")
    ax.set_ylabel("kernel time at the best plans (ms)")
    ax.set_yscale("log")
    ax.set_title("tvm_snn.tune: best model kernel time against trials")
    ax.legend(fontsize=7)
    return save_figure(fig, name)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=DEFAULT_TRIALS)
    parser.add_argument(
        "--models", nargs="+", choices=list(MODELS), default=["cifar-resnet18", "imagenet-resnet18"]
    )
    parser.add_argument("--name", default=None, help="results file name")
    parser.add_argument(
        "--layers", action="store_true", help="ResNet-18's 3x3 layer shapes instead of models"
    )
    parser.add_argument("--batch", type=int, default=1, help="the layers' batch (with --layers)")
    parser.add_argument(
        "--replot", action="store_true", help="only redraw the PNG from results/<name>.json"
    )
    args = parser.parse_args(argv)
    if args.replot:
        name = args.name or (layers_name(args.batch) if args.layers else "bench_tuning")
        with open(os.path.join(RESULTS_DIR, f"{name}.json")) as handle:
            print("wrote", plot_curves(json.load(handle)["rows"], name))
        return None
    if args.layers:
        return main_layers(args)
    args.name = args.name or "bench_tuning"
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for key in args.models:
            for binary in (False, True):
                row = run(key, binary, args.trials, folder)
                rows.append(row)
                k = row["kernels_ms"]
                print(
                    f"{key} {row['wa']}: {args.trials} trials in {row['tune_s']:.0f} s "
                    f"({row['trials_per_minute']:.0f}/min); kernels hand->tuned: snn {k['snn_hand']:.3f}->"
                    f"{k['snn_tuned']:.3f} ms, dense {k['dense_hand']:.3f}->{k['dense_tuned']:.3f} ms; "
                    f"model: tuned/hand {row['tuned_over_hand']:.2f}x, tuned vs ORT {row['tuned_vs_onnxruntime']:.2f}x "
                    f"(hand {row['hand_vs_onnxruntime']:.2f}x)",
                    flush=True,
                )
    print(
        "wrote",
        write_results(args.name, {"machine": machine(), "rows": rows}),
        plot_curves(rows, args.name),
    )


def layers_name(batch):
    """The layers' results file name: ``bench_tuning_layers``, with ``_b<batch>`` past batch 1."""
    return "bench_tuning_layers" if batch == 1 else f"bench_tuning_layers_b{batch}"


def main_layers(args):
    trials = args.trials if args.trials != DEFAULT_TRIALS else LAYER_TRIALS
    name = args.name or layers_name(args.batch)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for activation in ("float", "binary"):
            for channels, size in SHAPES:
                row = run_layer(channels, size, activation, trials, folder, args.batch)
                rows.append(row)
                ratios = ", ".join(
                    f"{peer} {row['ratios_tuned'][peer]:.2f}x (hand {row['ratios_hand'][peer]:.2f}x)"
                    for peer in row["ratios_tuned"]
                )
                print(
                    f"{row['layer']} {activation} b{args.batch}: {trials} trials in {row['tune_s']:.0f} s; "
                    f"tuned/hand {row['tuned_over_hand']:.2f}x; against {ratios}",
                    flush=True,
                )
    print(
        "wrote", write_results(name, {"machine": machine(), "rows": rows}), plot_curves(rows, name)
    )


if __name__ == "__main__":
    main()
