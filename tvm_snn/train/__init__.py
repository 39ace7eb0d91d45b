"""The PyTorch training frontend of tvm-snn. Imports torch, never tvm.

Public API::

    from tvm_snn.train import SNNConfig, prepare, convert, summary
    model = prepare(float_model, SNNConfig(tau_3x3=5, binary_act=True))
    ...train (call set_progress(model, epoch / epochs) for EDE)...
    print(summary(model, (3, 224, 224)))
    frozen = convert(model)          # plain nn.Conv2d (+ Sign) for export

Notes
-----
- ``tau_3x3=9`` / ``tau_1x1=8`` is the full kernel set: plain binary weights
  (``alpha * sign(w)``, sign(0) = +1), the "BNN 1 bit" baseline. Refinement is
  off at full tau.
- All refinement state (latent subset, binary memory, step counter, seed, EDE
  progress) is in parameters and buffers, so checkpoints and DDP carry it. Steps
  are counted in training mode only. The latent subset gets a gradient only on
  refinement steps, so wrap the model in DDP with ``find_unused_parameters=True``.
- ``summary`` counts parameters and Bit-OPs as the SNN paper's ResNet-18 table.
"""

from tvm_snn.train.config import CONFIG_VERSION, SNNConfig
from tvm_snn.train.layers import SNNConv2d
from tvm_snn.train.prepare import SNNMeta, convert, default_filter, prepare, snn_metadata
from tvm_snn.train.quantizers import BinaryActivation, Sign, SubsetWeightQuantizer, set_progress
from tvm_snn.train.summary import LayerSummary, ModelSummary, summary

__all__ = [
    "CONFIG_VERSION",
    "BinaryActivation",
    "LayerSummary",
    "ModelSummary",
    "SNNConfig",
    "SNNConv2d",
    "SNNMeta",
    "Sign",
    "SubsetWeightQuantizer",
    "convert",
    "default_filter",
    "prepare",
    "set_progress",
    "snn_metadata",
    "summary",
]
