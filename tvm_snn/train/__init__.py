"""The PyTorch training frontend of tvm-snn. Imports torch, never tvm.

Public API::

    from tvm_snn.train import SNNConfig, prepare, convert, summary
    model = prepare(float_model, SNNConfig(tau_3x3=5, binary_act=True))
    ...train (call set_progress(model, epoch / epochs) for EDE)...
    print(summary(model, (3, 224, 224)))
    frozen = convert(model)          # plain nn.Conv2d (+ Sign) for export

    # models, data, trainer, export
    from tvm_snn.train import ModelSpec, TrainConfig, export, fit, load_dataset
    data = load_dataset("digits")
    spec = ModelSpec("resnet20", data.spec.num_classes, data.spec.in_channels,
                     SNNConfig(tau_3x3=5), width=8)
    result = fit(spec.build(), data, TrainConfig(epochs=10), "runs/demo", spec=spec)
    export(result.model, data.example_input(), "model.onnx")   # + model.pt2

    model, accuracy, onnx_path = train_digits_snn("runs/digits")   # the demo's recipe

Notes
-----
- ``tau_3x3=9`` / ``tau_1x1=8`` is the full kernel set: plain binary weights
  (``alpha * sign(w)``, sign(0) = +1), the "BNN 1 bit" baseline. Refinement is
  off at full tau.
- All refinement state (latent subset, binary memory, step counter, seed, EDE
  progress) is in parameters and buffers, so checkpoints and DDP carry it. Steps
  are counted in training mode only. The latent subset gets a gradient only on
  refinement steps, so wrap the model in DDP with ``find_unused_parameters=True``
  (:func:`fit` does).
- ``summary`` counts parameters and Bit-OPs as the SNN paper's ResNet-18 table.
"""

from tvm_snn.train.checkpoint import load_checkpoint, load_model, save_checkpoint
from tvm_snn.train.config import CONFIG_VERSION, SNNConfig
from tvm_snn.train.data import DATASETS, DataBundle, load_dataset
from tvm_snn.train.exporter import ExportResult, export
from tvm_snn.train.layers import SNNConv2d
from tvm_snn.train.models import MODEL_REGISTRY, ModelSpec, build_model
from tvm_snn.train.prepare import SNNMeta, convert, default_filter, prepare, snn_metadata
from tvm_snn.train.quantizers import BinaryActivation, Sign, SubsetWeightQuantizer, set_progress
from tvm_snn.train.recipes import train_digits_snn
from tvm_snn.train.summary import LayerSummary, ModelSummary, summary
from tvm_snn.train.trainer import TrainConfig, TrainResult, evaluate, fit
from tvm_snn.train.zoo import build_float_resnet18, build_resnet18, build_snn_resnet

__all__ = [
    "CONFIG_VERSION",
    "DATASETS",
    "MODEL_REGISTRY",
    "BinaryActivation",
    "DataBundle",
    "ExportResult",
    "LayerSummary",
    "ModelSpec",
    "ModelSummary",
    "SNNConfig",
    "SNNConv2d",
    "SNNMeta",
    "Sign",
    "SubsetWeightQuantizer",
    "TrainConfig",
    "TrainResult",
    "build_float_resnet18",
    "build_model",
    "build_resnet18",
    "build_snn_resnet",
    "convert",
    "default_filter",
    "evaluate",
    "export",
    "fit",
    "load_checkpoint",
    "load_dataset",
    "load_model",
    "prepare",
    "save_checkpoint",
    "set_progress",
    "snn_metadata",
    "summary",
    "train_digits_snn",
]
