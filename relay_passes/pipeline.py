"""The Relax pipeline that ``tvm_snn.compile`` runs.

Pipeline position: this is the whole pipeline, TVM's CPU pipeline with the SNN
passes spliced in:

1. DetectSubBitConv, LowerSubBitConv on the imported graph;
2. TVM's library dispatch and legalization (LegalizeOps ... FuseOps, FuseTIR);
3. ScheduleSubBitKernels on the fused kernels, ScheduleDenseFallback on the rest;
4. TVM's dataflow lowering and finalization.
"""

import os

import tvm
from tvm.relax.backend.cpu_generic import pipeline as cpu_pipeline

from relay_passes.detect_subbit_conv import DetectSubBitConv
from relay_passes.lower_subbit_conv import LowerSubBitConv
from relay_passes.schedule_dense_fallback import ScheduleDenseFallback
from relay_passes.schedule_subbit_kernels import ScheduleSubBitKernels


def snn_passes(layers, policy=None, vbmi=False, num_cores=2):
    """Return the SNN graph passes, in order.

    Parameters
    ----------
    layers : list
        Receives one ``LayerReport`` per conv from the detection pass.
    policy : LoweringPolicy, optional
        What the detector may lower.
    vbmi : bool
        Whether the target has AVX-512 VBMI (see LowerSubBitConv).
    num_cores : int
        The target's cores.

    Returns
    -------
    list of tvm.transform.Pass
    """
    return [DetectSubBitConv(layers, policy), LowerSubBitConv(vbmi, num_cores)]


def target_cores(target):
    """The target's ``num-cores``, or this machine's core count."""
    cores = target.attrs.get("num-cores") if hasattr(target, "attrs") else None
    return int(cores) if cores else (os.cpu_count() or 1)


def target_vector_bytes(target):
    """Bytes of the target's widest SIMD register: 64 (AVX-512), 32 (AVX2) or 16 (NEON, SSE)."""
    from tvm.target import codegen

    for feature, width in (("avx512f", 64), ("avx2", 32)):
        if codegen.target_has_features(feature, target):
            return width
    return 16


def target_has_vbmi(target):
    """Whether the target has AVX-512 VBMI (byte permutes, multishift)."""
    from tvm.target import codegen

    return bool(codegen.target_has_features("avx512vbmi", target))


def build_pipeline(target, layers, policy=None):
    """Return the full Relax pipeline for ``target`` as one module pass."""
    cpu = cpu_pipeline
    passes = (
        snn_passes(layers, policy, target_has_vbmi(target), target_cores(target))
        + cpu.library_dispatch_passes(target)
        + cpu.legalize_passes(target)
        + [ScheduleSubBitKernels(target_cores(target), target_vector_bytes(target)), ScheduleDenseFallback()]
        + cpu.dataflow_lower_passes(target)
        + cpu.finalize_passes(target)
    )

    @tvm.transform.module_pass(opt_level=0, name="tvm_snn.Pipeline")
    def _pipeline(mod, _ctx):
        with target:
            return tvm.transform.Sequential(passes)(mod)

    return _pipeline
