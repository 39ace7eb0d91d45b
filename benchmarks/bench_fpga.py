"""The FPGA target's cycle model on the ImageNet ResNet-18 and ResNet-34, against the paper.

For every binary conv of each network (the 16 or 32 3x3 convs; the paper's
networks keep the 1x1 shortcuts in full precision, so they are not binary
convs of either network), compiled for the ``paper`` and ``pynq-z1``
presets, at batch 1 and 224x224:

- W0.56/A1 (tau=5, 32 codewords, PRECOMPUTE + GATHER) against W1/A1 (XNOR)
  on the same array;
- two measures: the PE array's cycles (PRECOMPUTE, GATHER, XNOR: the
  paper's "64-PE FPGA model"), and the end-to-end makespan (with the loads,
  the stores, the ALU and the pipeline's fill, under the spec's DRAM port);
- per stage, and in total, against the paper's 3.13x and 3.33x.

Also: the runs with the shortcuts as sub-bit 1x1 convs (tvm-snn's own
ResNets), the ``pynq-z1`` preset's resource estimate, and the end-to-end run
on ``paper`` with one limit lifted at a time (an unbounded DRAM port, an ALU
that takes no time, both): what the paper's figures need.

Prints the table; writes ``results/bench_fpga.json`` and
``results/bench_fpga.png`` (the per-stage timeline, as the paper's Figure 13).

Run: ``.venv/bin/python benchmarks/bench_fpga.py``.
"""

import numpy as np
from peers import pyplot, save_figure, write_results

from hw_targets.compiler import compile_conv
from hw_targets.cycles import cycles
from hw_targets.networks import RESNET_BLOCKS, bnn_layer, resnet_convs, subbit_layer
from hw_targets.spec import SPEC_PRESETS, load_spec, resource_estimate

PAPER_SPEEDUP = {"resnet18": 3.13, "resnet34": 3.33}
TAU = 5
MEASURES = ("array_cycles", "total")
SEED = 0


def _layers(network, spec, shortcuts):
    rng = np.random.default_rng(SEED)
    rows = []
    for shape in resnet_convs(network, shortcuts=shortcuts):
        snn = cycles(compile_conv(subbit_layer(shape, TAU, rng), spec))
        bnn = cycles(compile_conv(bnn_layer(shape, rng), spec))
        rows.append(
            {
                "layer": shape.name,
                "stage": shape.stage,
                "snn": {m: getattr(snn, m) for m in MEASURES} | {"dram_bytes": snn.dram_bytes},
                "bnn": {m: getattr(bnn, m) for m in MEASURES} | {"dram_bytes": bnn.dram_bytes},
            }
        )
    return rows


def _summary(rows, clock_mhz):
    stages = sorted({row["stage"] for row in rows})
    out = {}
    for measure in MEASURES:
        per_stage = {}
        for stage in stages:
            snn = sum(r["snn"][measure] for r in rows if r["stage"] == stage)
            bnn = sum(r["bnn"][measure] for r in rows if r["stage"] == stage)
            per_stage[stage] = {
                "snn_us": snn / clock_mhz,
                "bnn_us": bnn / clock_mhz,
                "speedup": bnn / snn,
            }
        snn = sum(r["snn"][measure] for r in rows)
        bnn = sum(r["bnn"][measure] for r in rows)
        out[measure] = {
            "snn_us": snn / clock_mhz,
            "bnn_us": bnn / clock_mhz,
            "speedup": bnn / snn,
            "stages": per_stage,
        }
    return out


# What the paper must have assumed: the end-to-end run with one limit lifted at a time.
WHAT_IF = {
    "dram unbounded": {"dram_bytes_per_cycle": 1024, "dram_latency_cycles": 0},
    "alu hidden": {"alu_lanes": 4096},
    "both": {"dram_bytes_per_cycle": 1024, "dram_latency_cycles": 0, "alu_lanes": 4096},
}


def _what_if():
    base = load_spec("paper").to_dict()
    out = {}
    for label, changes in WHAT_IF.items():
        spec = load_spec(dict(base, name=f"paper, {label}", **changes))
        out[label] = {
            network: _summary(_layers(network, spec, False), spec.clock_mhz)["total"]["speedup"]
            for network in RESNET_BLOCKS
        }
    return out


def _plot(results):
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 5.5))
    colors = ["#4C72B0", "#55A868", "#C44E52", "#8172B2"]
    for row, network in enumerate(sorted(PAPER_SPEEDUP)):
        for col, measure in enumerate(MEASURES):
            ax = axes[row][col]
            summary = results["paper"][network]["binary_convs"][measure]
            for y, form in enumerate(("snn", "bnn")):
                left = 0.0
                for stage, values in summary["stages"].items():
                    width = values[f"{form}_us"]
                    ax.barh(y, width, left=left, color=colors[int(stage) - 1], edgecolor="white")
                    if form == "snn":  # the stage's speed-up, above its segment
                        ax.text(
                            left + width / 2,
                            y + 0.45,
                            f"{values['speedup']:.1f}x",
                            ha="center",
                            va="bottom",
                            fontsize=7,
                        )

                    left += width
            ax.set_yticks([0, 1], ["W0.56/A1", "W1/A1"])
            ax.set_ylim(-0.5, 1.6)
            label = "PE array" if measure == "array_cycles" else "end to end (DRAM, ALU, fill)"
            ax.set_title(
                f"{network}, {label}: {summary['speedup']:.2f}x (paper {PAPER_SPEEDUP[network]}x)",
                fontsize=9,
            )
            ax.set_xlabel("modelled time (us) at 1 GHz, stages 1 to 4 left to right", fontsize=8)
    save_figure(fig, "bench_fpga")


def main():
    results = {"tau": TAU, "batch": 1, "input": 224, "paper_speedup": PAPER_SPEEDUP}
    for preset in SPEC_PRESETS:
        spec = load_spec(preset)
        results[preset] = {"spec": spec.to_dict()}
        for network in RESNET_BLOCKS:
            entry = {}
            for shortcuts, key in ((False, "binary_convs"), (True, "with_subbit_shortcuts")):
                rows = _layers(network, spec, shortcuts)
                entry[key] = _summary(rows, spec.clock_mhz)
                entry[f"{key}_layers"] = rows
            results[preset][network] = entry
    pynq = resource_estimate(load_spec("pynq-z1"))
    results["pynq-z1"]["resources"] = {
        "used": {k: getattr(pynq, k) for k in ("bram36", "dsp48", "luts", "flip_flops")},
        "utilization": pynq.utilization(),
    }
    print(
        f"{'preset':8} {'network':9} {'measure':13} {'SNN us':>9} {'BNN us':>9} {'speed-up':>8} {'paper':>6} {'error':>6}  per stage"
    )
    for preset in SPEC_PRESETS:
        for network in RESNET_BLOCKS:
            for measure in MEASURES:
                s = results[preset][network]["binary_convs"][measure]
                error = s["speedup"] / PAPER_SPEEDUP[network] - 1
                stages = " ".join(f"{v['speedup']:.2f}" for v in s["stages"].values())
                print(
                    f"{preset:8} {network:9} {measure:13} {s['snn_us']:9.1f} {s['bnn_us']:9.1f} "
                    f"{s['speedup']:7.2f}x {PAPER_SPEEDUP[network]:5.2f}x {error:+6.1%}  {stages}"
                )
    print("with the 1x1 shortcuts as sub-bit convs:")
    for preset in SPEC_PRESETS:
        for network in RESNET_BLOCKS:
            s = results[preset][network]["with_subbit_shortcuts"]
            print(
                f"  {preset:8} {network:9} array {s['array_cycles']['speedup']:.2f}x, end to end {s['total']['speedup']:.2f}x"
            )
    print("pynq-z1 resources:", results["pynq-z1"]["resources"])
    results["what_if"] = _what_if()
    print("end to end on 'paper' with a limit lifted (what the paper's figures need):")
    for label, ratios in results["what_if"].items():
        print(f"  {label:15} " + ", ".join(f"{n} {r:.2f}x" for n, r in ratios.items()))
    _plot(results)
    print("wrote", write_results("bench_fpga", results))


if __name__ == "__main__":
    main()
