"""The PyTorch training frontend of tvm-snn. Imports torch, never tvm.

Public API::

    from tvm_snn.train import SNNConfig, prepare, convert, summary
    model = prepare(float_model, SNNConfig(tau_3x3=5, binary_act=True))
    ...train (call set_progress(model, epoch / epochs) for EDE)...
    print(summary(model, (3, 224, 224)))
    frozen = convert(model)          # plain nn.Conv2d (+ Sign) for export
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
