"""The standalone program: size, memory, correctness and speed, on x86 and under qemu for ARM.

For the zoo's CIFAR ResNet-18 at 0.56/32 and 0.56/1 (``bench_models``'s
models, batch 1), compiled with the Python API's defaults:

- x86: ``cm.export_standalone`` builds the program; its outputs are compared
  with ``CompiledModel`` (bit for bit expected), and its own timing loop
  (``snn_model -r``, 2 threads; a separate process) is set beside the API and
  ONNX Runtime, which are timed side by side in this process, in blocks;
- aarch64 and ARMv7 (the ``aarch64`` and ``pynq`` presets): the program is
  cross-built with Debian's gcc and run under qemu-user, and compared with
  the host's output. qemu's times are emulation, not a board's speed.

Prints the program size, the planned arena against no reuse, the weights,
the match, and the times; writes ``results/bench_standalone.json``.

Run: ``.venv/bin/python benchmarks/bench_standalone.py``.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnx
from bench_models import MODELS, REPEAT
from peers import machine, ort_runner, write_results

import tvm_snn
from tvm_snn.benchmarking import PEER_THREADS, time_peers
from tvm_snn.train.zoo import build_snn_resnet, input_shape

BOARD_PRESETS = {"aarch64": "aarch64", "armv7": "pynq"}
PROGRAM_REPEAT = 50  # timed runs of the program's own loop on x86
QEMU_REPEAT = 3


def _sizes(artifact):
    return {
        "program_bytes": artifact.program_bytes,
        "arena_bytes": artifact.arena_bytes,
        "unplanned_bytes": artifact.unplanned_bytes,
        "weight_bytes": artifact.weight_bytes,
        "kernel_calls": artifact.steps,
    }


def run_model(key, binary, folder):
    name, stem = MODELS[key]
    _, path = build_snn_resnet(name, stem, binary, folder, batch=1)
    model = onnx.load(path)
    x = np.random.default_rng(0).standard_normal(input_shape(stem, 1)).astype(np.float32)
    host = tvm_snn.compile(model)
    expected = host(x)
    art = host.export_standalone(Path(folder, f"{key}-{binary}-x86"))
    (out,), program_ms = art.run([x], num_threads=PEER_THREADS, repeat=PROGRAM_REPEAT)
    stats = time_peers({"api": lambda: host(x), "onnxruntime": ort_runner(model, x)}, repeat=REPEAT)
    ms = {peer: s["median_ms"] for peer, s in stats.items()}
    row = {
        "model": key,
        "wa": "0.56/1" if binary else "0.56/32",
        "x86": {
            **_sizes(art),
            "bit_exact": bool(np.array_equal(out, expected)),
            "program_ms": program_ms,
            "api_ms": ms["api"],
            "onnxruntime_ms": ms["onnxruntime"],
            "program_vs_onnxruntime": ms["onnxruntime"] / program_ms,
            "program_vs_api": ms["api"] / program_ms,
        },
    }
    for arch, preset in BOARD_PRESETS.items():
        board = tvm_snn.compile(model, target=preset)
        art = board.export_standalone(Path(folder, f"{key}-{binary}-{arch}"))
        (out,), qemu_ms = art.run([x], num_threads=PEER_THREADS, repeat=QEMU_REPEAT)
        row[arch] = {
            **_sizes(art),
            "max_abs_diff_vs_host": float(np.abs(out - expected).max()),
            "bit_exact_vs_host": bool(np.array_equal(out, expected)),
            "qemu_ms": qemu_ms,
        }
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=["cifar-resnet18"])
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for key in args.models:
            for binary in (False, True):
                row = run_model(key, binary, folder)
                rows.append(row)
                h = row["x86"]
                print(
                    f"{key} {row['wa']} x86: program {h['program_bytes'] / 1e6:.2f} MB "
                    f"(weights {h['weight_bytes'] / 1e6:.2f} MB), arena {h['arena_bytes'] / 1e3:.0f} KB "
                    f"of {h['unplanned_bytes'] / 1e3:.0f} KB, bit-exact {h['bit_exact']}; "
                    f"program {h['program_ms']:.3f} ms, API {h['api_ms']:.3f} ms, "
                    f"ORT {h['onnxruntime_ms']:.3f} ms: program {h['program_vs_onnxruntime']:.2f}x ORT, "
                    f"{h['program_vs_api']:.2f}x API",
                    flush=True,
                )
                for arch in BOARD_PRESETS:
                    b = row[arch]
                    print(
                        f"  {arch}: program {b['program_bytes'] / 1e6:.2f} MB, arena "
                        f"{b['arena_bytes'] / 1e3:.0f} KB, max |diff| vs host {b['max_abs_diff_vs_host']:.3g} "
                        f"(bit-exact {b['bit_exact_vs_host']}), qemu {b['qemu_ms']:.1f} ms",
                        flush=True,
                    )
    print("wrote", write_results("bench_standalone", {"machine": machine(), "rows": rows}))


if __name__ == "__main__":
    main()
