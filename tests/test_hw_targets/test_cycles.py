"""The cycle model: a hand-timed program, double buffering's overlap, and the paper's ResNet ratios."""

import numpy as np
import pytest
from fpga_layers import subbit_conv

from hw_targets.compiler import compile_conv
from hw_targets.cycles import cycles, operations_per_cycle
from hw_targets.isa import Alu, Gather, Load, Precompute, Store, Xnor
from hw_targets.layer import FpgaConv
from hw_targets.networks import bnn_layer, resnet_convs, subbit_layer
from hw_targets.program import Program, Region
from hw_targets.spec import load_spec
from tvm_snn.errors import StreamError

PAPER_SPEEDUP = {"resnet18": 3.13, "resnet34": 3.33}  # the paper's abstract, W0.56/A1 against W1/A1
PAPER_TOLERANCE = 0.10  # the bound on the model's error


def _hand_program(spec, compute):
    regions = (
        Region("input", "ternary", 1024, 2),
        Region("output", "float32", 2304, 32),
        Region("codebook", "sign", 288, 1),
    )
    head = [
        Load(buffer=2, region=2, z_size=1, y_size=1, x_size=288),
        Load(
            buffer=0,
            region=0,
            z_size=16,
            y_size=8,
            x_size=8,
            z_stride=64,
            y_stride=8,
            push_next=True,
        ),
    ]
    tail = [
        Alu(channels=64, pixels=36, push_next=True),
        Store(
            buffer=5,
            region=1,
            z_size=64,
            y_size=6,
            x_size=6,
            z_stride=36,
            y_stride=6,
            pop_prev=True,
        ),
    ]
    return Program(spec, regions, tuple(head + compute + tail))


def test_a_program_timed_by_hand():
    """paper: 64 PEs x 72 adders, 64 ALU lanes, 16 B/cycle after 100 cycles of latency.

    codebook LOAD 36 B: 100 + 3; input LOAD 1024 x 2 bits = 256 B: 100 + 16, pushes at 219;
    PRECOMPUTE 16 units x 32 codewords x 36 pixels / (64 x 72 // 8) = 32; GATHER 64 x 16 x 36 / 4608 = 8;
    ALU 64 x 36 / 64 = 36, pushes at 295; STORE 9216 B: 100 + 576, ends at 971.
    """
    spec = load_spec("paper")
    window = {
        "units": 16,
        "in_rows": 8,
        "in_cols": 8,
        "out_rows": 6,
        "out_cols": 6,
        "stride_h": 1,
        "stride_w": 1,
    }
    compute = [
        Precompute(**window, codewords=32, pop_prev=True),
        Gather(units=16, codewords=32, pixels=36, index_stride=16, channels=64),
    ]
    report = cycles(_hand_program(spec, compute))
    starts = [(opcode, start, end) for _, _, opcode, start, end in report.timeline]
    assert starts == [
        ("LOAD", 0, 103), ("LOAD", 103, 219), ("PRECOMPUTE", 219, 251), ("GATHER", 251, 259),
        ("ALU", 259, 295), ("STORE", 295, 971),
    ]  # fmt: skip
    assert report.total == 971
    assert report.dram_bytes == 36 + 256 + 9216
    assert report.array_cycles == 40
    bnn = cycles(_hand_program(spec, [Xnor(**window, channels=64, pop_prev=True)]))
    assert bnn.by_opcode["XNOR"] == 16 * 64 * 36 // (64 * 8)


def test_operations_per_cycle_follow_the_adds():
    spec = load_spec("paper")
    assert (
        operations_per_cycle(spec, "XNOR", 9) == 64 * 8
    )  # 9 adds: an 8-add tree and the accumulate
    assert operations_per_cycle(spec, "PRECOMPUTE", 9) == 64 * 9  # 8 adds
    assert operations_per_cycle(spec, "GATHER", 9) == 64 * 72
    assert operations_per_cycle(spec, "XNOR", 8) == 64 * 9  # a 1x1 unit of 8


def test_double_buffering_overlaps_loads_with_compute():
    rng = np.random.default_rng(0)
    layer = FpgaConv(subbit_conv(rng, 3, 5, 256, 256, padding=1, rows=32), (1, 256, 14, 14))
    report = cycles(compile_conv(layer, "pynq-z1"))
    assert report.total < sum(report.busy.values())
    loads = [(start, end) for _, module, _, start, end in report.timeline if module == "load"]
    computes = [(start, end) for _, module, _, start, end in report.timeline if module == "compute"]
    assert any(ls < ce and cs < le for ls, le in loads[2:] for cs, ce in computes)


def test_a_deadlocked_stream_is_refused_by_the_model():
    spec = load_spec("paper")
    program = _hand_program(
        spec,
        [
            Precompute(
                units=1,
                in_rows=3,
                in_cols=3,
                out_rows=1,
                out_cols=1,
                codewords=2,
                pop_prev=True,
                stride_h=1,
                stride_w=1,
            )
        ],
    )
    stuck = program.with_instructions([program.instructions[0], *program.instructions[2:]])
    with pytest.raises(StreamError, match="deadlocks"):
        cycles(stuck)


def _stage_cycles(network, spec, measure):
    rng = np.random.default_rng(0)
    stages = {}
    for shape in resnet_convs(network):
        snn = getattr(cycles(compile_conv(subbit_layer(shape, 5, rng), spec)), measure)
        bnn = getattr(cycles(compile_conv(bnn_layer(shape, rng), spec)), measure)
        totals = stages.setdefault(shape.stage, [0, 0])
        totals[0] += snn
        totals[1] += bnn
    return stages


@pytest.mark.parametrize("network", sorted(PAPER_SPEEDUP))
def test_the_array_reproduces_the_papers_speedups(network):
    """On the PE array (the paper's measure), W0.56/A1 over W1/A1 lands within 10% of 3.13x and 3.33x,
    and every stage gains more than the one before (the paper's Figure 13)."""
    stages = _stage_cycles(network, "paper", "array_cycles")
    ratio = sum(b for _, b in stages.values()) / sum(s for s, _ in stages.values())
    assert abs(ratio / PAPER_SPEEDUP[network] - 1) <= PAPER_TOLERANCE, ratio
    per_stage = [b / s for s, b in (stages[k] for k in sorted(stages))]
    assert per_stage == sorted(per_stage) and per_stage[0] > 1


def test_end_to_end_cycles_count_memory_and_the_alu():
    """With loads, stores and the ALU, the speed-up is smaller than on the array alone, and still above 1."""
    array = _stage_cycles("resnet18", "paper", "array_cycles")
    total = _stage_cycles("resnet18", "paper", "total")
    ratio = lambda stages: sum(b for _, b in stages.values()) / sum(s for s, _ in stages.values())  # noqa: E731
    assert 1 < ratio(total) < ratio(array)


def test_the_compiler_reports_cycles_and_pe_utilization():
    rng = np.random.default_rng(1)
    layer = FpgaConv(subbit_conv(rng, 3, 5, 64, 64, padding=1, rows=32), (1, 64, 14, 14))
    program = compile_conv(layer, "paper")
    report = cycles(program)
    assert program.info["cycles"] == report.total
    assert 0 < program.info["pe_utilization"] == report.array_cycles / report.total < 1
