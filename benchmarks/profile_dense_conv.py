"""Where the dense direct conv's time goes, by batch: the kernel alone, the API call, ONNX Runtime.

For each float conv of ``bench_dense`` (the ImageNet stem, 3x3 at 64x56 and
256x14, the 1x1/2 downsampling conv) and batch 1, 2, 4 and 8, times, in this
process, interleaved, 2 threads each:

- ``kernel``: the scheduled conv PrimFunc that ``tvm_snn.compile`` builds,
  compiled alone and called on the same buffers every time (no VM, no
  output allocation);
- ``api``: ``CompiledModel.__call__`` with its defaults;
- ``onnxruntime``: the same one-op graph.

It prints ms per image, the ratios, the kernel's plan, the share of the
computed outputs that are real (a row padded to whole vector tiles, the
channels to whole blocks) and the multiply-adds per second each reaches.
Writes ``results/profile_dense_conv.json``.

Run: ``.venv/bin/python benchmarks/profile_dense_conv.py [--quick]``.
"""

import argparse

import numpy as np
import torch
import tvm
from bench_dense import CASES, one_op_model
from peers import machine, ort_runner, tvm_runner, write_results

from relay_passes.pipeline import run_graph_passes, run_schedule_passes
from schedules.dense_conv import DENSE_BLOCK_OUT
from schedules.dense_conv_plan import DenseConvPlan, efficiency
from schedules.dense_conv_schedule import is_dense_conv
from schedules.plan import plan_of
from tvm_snn.benchmarking import PEER_THREADS, time_peers
from tvm_snn.importers import to_relax
from tvm_snn.target import parse_target, target_spec
from tvm_snn.threads import running_on

PROFILE_TARGET = "x86"
PROFILE_BATCHES = (1, 2, 4, 8)
PROFILE_ROUNDS = 8
CONV_CASES = ("stem", "conv 3x3 64x56", "conv 3x3 256x14", "conv 1x1/2")


def conv_kernel(model, target):
    """The scheduled dense conv PrimFunc of a one-op model, compiled alone, and its plan."""
    tvm_target = parse_target(target_spec(target))
    mod = run_schedule_passes(run_graph_passes(to_relax(model, None), tvm_target), tvm_target)
    for gvar, func in mod.functions_items():
        if isinstance(func, tvm.tirx.PrimFunc) and is_dense_conv(func):
            plan = plan_of(tvm.s_tir.Schedule(func), DENSE_BLOCK_OUT, DenseConvPlan)
            lib = tvm.compile(
                tvm.IRModule({gvar.name_hint: func.with_attr("global_symbol", gvar.name_hint)}),
                target=tvm_target,
            )
            return lib.mod[gvar.name_hint], func, plan
    raise RuntimeError("the model has no dense conv kernel")


def kernel_runner(kernel, func, seed=0):
    """A zero-argument callable running ``kernel`` on random buffers of ``func``'s parameter shapes."""
    rng = np.random.default_rng(seed)
    args = []
    for param in func.params:
        shape = [int(d) for d in param.ty.shape]
        args.append(
            tvm.runtime.tensor(rng.standard_normal(shape).astype(str(param.ty.dtype)), tvm.cpu())
        )

    def run():
        with running_on(PEER_THREADS):
            kernel(*args)

    return run


def profile(case, batch, rounds):
    """One row: ms per image of each runner, the plan and the useful share."""
    rng = np.random.default_rng(batch)
    nodes, tensors, torch_fn = case.build(rng)
    x = rng.standard_normal(case.input_shape(batch)).astype(np.float32)
    y_shape = tuple(torch_fn(torch.from_numpy(x)).shape)
    model = one_op_model(nodes, tensors, x.shape, y_shape)
    api, cm = tvm_runner(model, x, PROFILE_TARGET)
    kernel, func, plan = conv_kernel(model, PROFILE_TARGET)
    stats = time_peers(
        {"kernel": kernel_runner(kernel, func), "api": api, "onnxruntime": ort_runner(model, x)},
        repeat=rounds,
    )
    out_channels, in_channels, kh, kw = tensors["w"].shape
    macs = out_channels * y_shape[2] * y_shape[3] * in_channels * kh * kw  # per image
    ms = {name: s["median_ms"] / batch for name, s in stats.items()}
    return {
        "case": case.name,
        "batch": batch,
        "ms_per_image": ms,
        "gmac_per_s": {name: macs / (t * 1e6) for name, t in ms.items()},
        "ort_over_kernel": ms["onnxruntime"] / ms["kernel"],
        "ort_over_api": ms["onnxruntime"] / ms["api"],
        "plan": plan.to_json(),
        "useful_share": efficiency(out_channels, y_shape[3], plan.channel_block, plan.tile_pixels),
        "threads": cm.num_threads,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batches 1 and 8, fewer rounds")
    args = parser.parse_args(argv)
    batches, rounds = ((1, 8), 3) if args.quick else (PROFILE_BATCHES, PROFILE_ROUNDS)
    rows = []
    for case in (c for c in CASES if any(c.name.startswith(n) for n in CONV_CASES)):
        for batch in batches:
            row = profile(case, batch, rounds)
            rows.append(row)
            ms = row["ms_per_image"]
            print(
                f"{case.name:<30} b{batch}  ms/img kernel {ms['kernel']:.3f} api {ms['api']:.3f} "
                f"ort {ms['onnxruntime']:.3f}  ort/kernel {row['ort_over_kernel']:.2f}x "
                f"ort/api {row['ort_over_api']:.2f}x  useful {row['useful_share']:.2f}  "
                f"GMAC/s kernel {row['gmac_per_s']['kernel']:.0f} ort {row['gmac_per_s']['onnxruntime']:.0f}",
                flush=True,
            )
    name = "profile_dense_conv_quick" if args.quick else "profile_dense_conv"
    print("wrote", write_results(name, {"machine": machine(), "rows": rows}))


if __name__ == "__main__":
    main()
