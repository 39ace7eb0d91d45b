"""The Relax pipeline that ``tvm_snn.compile`` runs.

Pipeline position: this is the whole pipeline, TVM's CPU pipeline with the SNN
passes spliced in:

1. :func:`graph_passes` on the imported graph: SimplifySTE, FoldWeightSubgraphs,
   DetectSubBitConv, the offload hook, LowerSubBitConv;
2. :func:`kernel_passes`: :func:`schedule_passes` (TVM's library dispatch and
   legalization, LegalizeOps ... FuseOps, FuseTIR; ScheduleSubBitKernels on
   the fused kernels, ScheduleDenseFallback on the rest; AcceptUnalignedInputs),
   then :func:`finish_passes` (TVM's dataflow lowering and finalization).

``tvm_snn.compile`` runs the steps apart, so it can read the layer reports
(:func:`relay_passes.layer_records.read_reports`) after the graph passes and
the inputs that may be unaligned
(:func:`relay_passes.unaligned_inputs.unaligned_inputs`) after the schedules;
:func:`build_pipeline` is all of it as one pass, for ``tvm.compile``.

The offload hook is a list of passes that run after detection and before
lowering: an accelerator target (``hw_targets/``, through ``tvm_snn.compiler``)
claims the composites it can run, wrapping them in functions with a
``Codegen`` attribute, and LowerSubBitConv lowers the rest. This module
never imports an accelerator target.
"""

import tvm
from tvm.relax.backend.cpu_generic import pipeline as cpu_pipeline

from relay_passes.detect_subbit_conv import DetectSubBitConv
from relay_passes.fold_weight_subgraphs import FoldWeightSubgraphs
from relay_passes.lower_dense_conv import dense_conv_passes
from relay_passes.lower_subbit_conv import LowerSubBitConv
from relay_passes.schedule_dense_fallback import ScheduleDenseFallback
from relay_passes.schedule_subbit_kernels import ScheduleSubBitKernels
from relay_passes.simplify_ste import SimplifySTE
from relay_passes.unaligned_inputs import AcceptUnalignedInputs
from schedules.cpu import CpuSpec


def graph_passes(target, policy=None, offload=(), plans=None):
    """The SNN graph passes, in order: simplify STE residues, fold constants, detect, offload, lower.

    Parameters
    ----------
    target : tvm.target.Target
        The CPU the kernels are built for (see ``schedules.cpu.CpuSpec.from_target``).
    policy : LoweringPolicy, optional
        What the detector may lower.
    offload : sequence of tvm.transform.Pass
        Passes that claim composites before lowering (an accelerator target).
    plans : object, optional
        Chooses each kernel's plan (:mod:`relay_passes.plan_choice`); the
        hand plans by default.

    Returns
    -------
    list of tvm.transform.Pass
    """
    return [
        SimplifySTE(),
        FoldWeightSubgraphs(),
        DetectSubBitConv(policy),
        *offload,
        LowerSubBitConv(CpuSpec.from_target(target), plans),
    ]


def schedule_passes(target, plans=None):
    """TVM's CPU passes from dispatch to FuseTIR, with the SNN schedules (the
    dense convs lowered to their kernel first, with the plans ``plans`` chooses),
    then AcceptUnalignedInputs."""
    cpu = cpu_pipeline
    return (
        dense_conv_passes(target, plans)
        + cpu.library_dispatch_passes(target)
        + cpu.legalize_passes(target)
        + [ScheduleSubBitKernels(), ScheduleDenseFallback(plans=plans), AcceptUnalignedInputs]
    )


def finish_passes(target):
    """TVM's CPU dataflow lowering and finalization (after :func:`schedule_passes`)."""
    return cpu_pipeline.dataflow_lower_passes(target) + cpu_pipeline.finalize_passes(target)


def kernel_passes(target):
    """:func:`schedule_passes` then :func:`finish_passes`: from dispatch to finalization."""
    return schedule_passes(target) + finish_passes(target)


def _in_target(passes, target, name):
    @tvm.transform.module_pass(opt_level=0, name=name)
    def _pipeline(mod, _ctx):
        with target:
            return tvm.transform.Sequential(passes)(mod)

    return _pipeline


def run_graph_passes(mod, target, policy=None, offload=(), plans=None):
    """Run :func:`graph_passes` on ``mod`` under ``target``; return the lowered module."""
    return _in_target(graph_passes(target, policy, offload, plans), target, "tvm_snn.GraphPasses")(
        mod
    )


def run_schedule_passes(mod, target, plans=None):
    """Run :func:`schedule_passes` on ``mod`` (after the graph passes) under ``target``."""
    return _in_target(schedule_passes(target, plans), target, "tvm_snn.SchedulePasses")(mod)


def finish_pipeline(target):
    """:func:`finish_passes` as one module pass (for ``tvm.compile`` after :func:`run_schedule_passes`)."""
    return _in_target(finish_passes(target), target, "tvm_snn.FinishPasses")


def lowering_pipeline(target):
    """:func:`kernel_passes` as one module pass (for a module the graph passes have run on)."""
    return _in_target(kernel_passes(target), target, "tvm_snn.KernelPasses")


def build_pipeline(target, policy=None, offload=()):
    """The full Relax pipeline for ``target`` as one module pass."""
    return _in_target(
        graph_passes(target, policy, offload) + kernel_passes(target), target, "tvm_snn.Pipeline"
    )
