"""The Relax pipeline that ``tvm_snn.compile`` runs.

Pipeline position: this is the whole pipeline. The SNN passes (detection and
lowering of sub-bit convs) run first on the imported graph, then TVM's default
pipeline for the target legalizes, fuses and lowers the rest.
"""

import tvm
from tvm import relax


def snn_passes(layers):
    """Return the SNN graph passes, in order.

    Parameters
    ----------
    layers : list
        Filled with one ``LayerReport`` per conv by the passes that inspect
        convs. No pass fills it yet: detection is a later stage of the project.

    Returns
    -------
    list of tvm.transform.Pass
    """
    del layers  # no SNN pass yet
    return []


def build_pipeline(target, layers):
    """Return the full Relax pipeline for ``target`` as one module pass."""
    passes = snn_passes(layers)

    @tvm.transform.module_pass(opt_level=0, name="tvm_snn.Pipeline")
    def _pipeline(mod, _ctx):
        mod = tvm.transform.Sequential(passes)(mod) if passes else mod
        return relax.get_default_pipeline(target)(mod)

    return _pipeline
