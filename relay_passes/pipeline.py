"""The Relax pipeline that ``tvm_snn.compile`` runs.

Pipeline position: this is the whole pipeline. The SNN passes (detection and
lowering of sub-bit convs) run first on the imported graph, then TVM's default
pipeline for the target legalizes, fuses and lowers the rest.
"""

import tvm
from tvm import relax

from relay_passes.detect_subbit_conv import DetectSubBitConv
from relay_passes.lower_subbit_conv import LowerSubBitConv


def snn_passes(layers, policy=None):
    """Return the SNN graph passes, in order.

    Parameters
    ----------
    layers : list
        Receives one ``LayerReport`` per conv from the detection pass.
    policy : LoweringPolicy, optional
        What the detector may lower.

    Returns
    -------
    list of tvm.transform.Pass
    """
    return [DetectSubBitConv(layers, policy), LowerSubBitConv()]


def build_pipeline(target, layers, policy=None):
    """Return the full Relax pipeline for ``target`` as one module pass."""
    passes = snn_passes(layers, policy)

    @tvm.transform.module_pass(opt_level=0, name="tvm_snn.Pipeline")
    def _pipeline(mod, _ctx):
        mod = tvm.transform.Sequential(passes)(mod)
        return relax.get_default_pipeline(target)(mod)

    return _pipeline
