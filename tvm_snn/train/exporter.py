"""Export a prepared model to ONNX and ``torch.export``, with the SNN layers as metadata.

:func:`export` freezes the model (:func:`tvm_snn.train.convert`): every sub-bit
conv becomes a plain conv whose weight is exactly ``alpha[o] * codebook[idx]``,
so any tool runs it, and binary activations become ``Sign``. The ONNX file is
written by the TorchScript exporter (opset ``ONNX_OPSET``, IR version at most
``MAX_IR_VERSION``), in eval mode; that exporter folds batch norm into the
preceding conv, which scales each output channel, possibly by a negative
factor: the weights stay ``±scale[o] * codebook[idx]``.

Metadata schema (version ``SCHEMA_VERSION``)
--------------------------------------------
The keys and the version are those of :mod:`tvm_snn.schema`, which also reads
them back (:func:`tvm_snn.schema.parse_layers_metadata`). ONNX ``metadata_props``
holds two keys:

- ``"tvm_snn.schema"``: the schema version, ``"1"``;
- ``"tvm_snn.layers"``: a JSON list, one object per sub-bit conv, in module order:

  ===================  ==============================================================
  ``module``           the conv's qualified name in the frozen PyTorch model
  ``node``             the ONNX ``Conv`` node's name
  ``weight``           the name of that node's weight initializer
  ``kernel``           ``"3x3"`` or ``"1x1"``
  ``unit``             signs per unit: 9 (a 3x3 kernel) or 8 (8 input channels of 1x1)
  ``tau``              bits per unit; the codebook has at most ``2**tau`` rows
  ``bits_per_weight``  ``tau / unit``
  ``activation``       ``"binary"`` (the input is ``Sign(x)``) or ``"float"``
  ``out_channels``,    the weight's first two dimensions
  ``in_channels``
  ``codebook``         list of rows of ``+1``/``-1`` (``unit`` each): the layer's subset
  ===================  ==============================================================

Every unit of the named weight, read as signs and flipped by its output
channel's sign, is a row of ``codebook`` (all-zero channels excepted);
:func:`export` checks this before writing. The ``.pt2`` file (``torch.export``)
carries the same list as its extra file ``"tvm_snn.layers"``, with ``node`` the
module name and ``weight`` the parameter name (``module + ".weight"``).
"""

import copy
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tvm_snn.errors import FormatError
from tvm_snn.schema import LAYERS_KEY, SCHEMA_KEY, SCHEMA_VERSION, parse_layers_metadata
from tvm_snn.train.checkpoint import atomic_write
from tvm_snn.train.layers import SNNConv2d
from tvm_snn.train.prepare import convert, snn_metadata

ONNX_OPSET = 17
MAX_IR_VERSION = 8
"""IR version of opset 17; ONNX Runtime and TVM's importer both read it."""

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
PT2_SUFFIX = ".pt2"
ONNX_CONV_OP = "Conv"
"""ONNX op type of a convolution."""
WEIGHT_INPUT = 1
BATCH_AXIS = 0


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote.

    Attributes
    ----------
    onnx_path : Path
        The ONNX file.
    pt2_path : Path or None
        The ``torch.export`` file, when written.
    layers : tuple of dict
        The ``"tvm_snn.layers"`` entries of the ONNX file.
    """

    onnx_path: Path
    pt2_path: Path | None
    layers: tuple


def freeze(model):
    """Return an eval-mode copy of ``model`` with every ``SNNConv2d`` converted to a plain conv."""
    if any(isinstance(module, SNNConv2d) for module in model.modules()):
        frozen = convert(model)
    else:
        frozen = copy.deepcopy(model)
    return frozen.eval()


def _as_tuple(example_inputs):
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    return tuple(example_inputs)


def unqualified_name(fqn):
    """The exporter's scope name of one module: from its last non-numeric atom on.

    ``"layer1.0"`` -> ``"layer1.0"``, ``"layer1.0.conv1"`` -> ``"conv1"``, ``"3.0"`` -> ``"3.0"``.
    """
    atoms = fqn.split(".")
    for index in range(len(atoms) - 1, -1, -1):
        if not atoms[index].isnumeric():
            return ".".join(atoms[index:])
    return fqn


def scope_of(fqn):
    """Return the TorchScript exporter's node-name prefix of a module.

    ``"layer1.0.conv1"`` -> ``"/layer1/layer1.0/conv1/"``: the scope names of the
    module and of its ancestors, as the exporter names the nodes they emit.
    """
    atoms = fqn.split(".")
    prefixes = (".".join(atoms[: index + 1]) for index in range(len(atoms)))
    return "/" + "/".join(unqualified_name(prefix) for prefix in prefixes) + "/"


def _layer_entry(fqn, meta, node, weight):
    return {
        "module": fqn,
        "node": node,
        "weight": weight,
        "kernel": meta.kernel,
        "unit": meta.unit,
        "tau": meta.tau,
        "bits_per_weight": meta.bits_per_weight,
        "activation": meta.activation,
        "out_channels": int(meta.indices.shape[0]),
        "in_channels": None,
        "codebook": meta.codebook.tolist(),
    }


def channel_units(weight, unit):
    """Split a conv weight ``[O, C, kh, kw]`` into units: ``[O, units, unit]``.

    A 3x3 unit is one kernel; a 1x1 unit is 8 consecutive input channels.
    """
    return weight.reshape(weight.shape[0], -1, unit)


def check_weight(weight, codebook, where):
    """Check that every unit of ``weight`` is a codebook row, up to its output channel's sign.

    Parameters
    ----------
    weight : numpy.ndarray
        ``[O, C, kh, kw]``.
    codebook : numpy.ndarray
        ``[k, unit]`` of +1/-1.
    where : str
        The layer, for the message.

    Raises
    ------
    FormatError
        Naming the first output channel that is not ``±scale * codebook[idx]``.
    """
    unit = codebook.shape[1]
    if weight.ndim != 4 or weight[0].size % unit:
        raise FormatError(
            f"{where}: weight shape {weight.shape} does not split into units of {unit}"
        )
    rows = {tuple(row) for row in codebook.astype(np.int64).tolist()}
    units = channel_units(weight, unit)
    for channel, block in enumerate(units):
        if not block.any():
            continue
        signs = np.where(block >= 0, 1, -1)
        if (
            not {tuple(row) for row in signs.tolist()} <= rows
            and not {tuple(row) for row in (-signs).tolist()} <= rows
        ):
            raise FormatError(
                f"{where}: output channel {channel} has kernels outside the codebook "
                f"(up to the channel's sign)"
            )


def _onnx_bytes(frozen, inputs, dynamic_batch):
    dynamic_axes = None
    if dynamic_batch:
        dynamic_axes = {INPUT_NAME: {BATCH_AXIS: "batch"}, OUTPUT_NAME: {BATCH_AXIS: "batch"}}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            frozen,
            inputs,
            buffer,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=ONNX_OPSET,
            dynamic_axes=dynamic_axes,
            dynamo=False,
        )
    return buffer.getvalue()


def _onnx_layers(proto, metas):
    import onnx.numpy_helper

    initializers = {item.name: item for item in proto.graph.initializer}
    convs = [node for node in proto.graph.node if node.op_type == ONNX_CONV_OP]
    entries = []
    for fqn, meta in metas.items():
        scope = scope_of(fqn)
        found = [node for node in convs if node.name.startswith(scope)]
        if len(found) != 1:
            raise FormatError(
                f"export: found {len(found)} ONNX Conv nodes for layer {fqn} (scope {scope})"
            )
        node = found[0]
        weight_name = node.input[WEIGHT_INPUT]
        if weight_name not in initializers:
            raise FormatError(
                f"export: the weight of {node.name} ({weight_name}) is not an initializer"
            )
        weight = onnx.numpy_helper.to_array(initializers[weight_name])
        check_weight(weight, meta.codebook.numpy(), f"layer {fqn} (ONNX {node.name})")
        entry = _layer_entry(fqn, meta, node.name, weight_name)
        entry["in_channels"] = int(weight.shape[1])
        entries.append(entry)
    return entries


def _pt2_layers(frozen, metas):
    modules = dict(frozen.named_modules())
    entries = []
    for fqn, meta in metas.items():
        entry = _layer_entry(fqn, meta, fqn, f"{fqn}.weight")
        entry["in_channels"] = int(modules[fqn].weight.shape[1])
        entries.append(entry)
    return entries


def export(model, example_inputs, path, *, pt2_path=None, write_pt2=True, dynamic_batch=False):
    """Write ``model`` as ONNX (with SNN metadata) and as a ``torch.export`` program.

    Parameters
    ----------
    model : torch.nn.Module
        A prepared, converted or float model; it is not modified.
    example_inputs : torch.Tensor or tuple of torch.Tensor
        Inputs to trace with.
    path : str or Path
        The ONNX file to write.
    pt2_path : str or Path, optional
        The ``.pt2`` file; defaults to ``path`` with suffix ``.pt2``.
    write_pt2 : bool
        Also write the ``torch.export`` program.
    dynamic_batch : bool
        Give the ONNX input and output a symbolic batch dimension.

    Returns
    -------
    ExportResult

    Raises
    ------
    FormatError
        If a frozen conv cannot be found in the ONNX graph, or its weight is not
        ``±scale * codebook[idx]`` per output channel.
    """
    import onnx

    path = Path(path)
    frozen = freeze(model)
    metas = snn_metadata(frozen)
    inputs = _as_tuple(example_inputs)
    proto = onnx.load_from_string(_onnx_bytes(frozen, inputs, dynamic_batch))
    layers = _onnx_layers(proto, metas)
    proto.ir_version = min(proto.ir_version, MAX_IR_VERSION)
    for key, value in ((SCHEMA_KEY, str(SCHEMA_VERSION)), (LAYERS_KEY, json.dumps(layers))):
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    atomic_write(path, lambda handle: handle.write(data))
    written_pt2 = None
    if write_pt2:
        written_pt2 = Path(pt2_path) if pt2_path is not None else path.with_suffix(PT2_SUFFIX)
        program = torch.export.export(frozen, inputs)
        extra = {
            SCHEMA_KEY: str(SCHEMA_VERSION),
            LAYERS_KEY: json.dumps(_pt2_layers(frozen, metas)),
        }
        atomic_write(
            written_pt2, lambda handle: torch.export.save(program, handle, extra_files=extra)
        )
    return ExportResult(path, written_pt2, tuple(layers))


def read_layers(path):
    """Return the ``"tvm_snn.layers"`` entries of an exported ONNX file (``[]`` if none).

    Raises
    ------
    FormatError
        When the file has tvm-snn metadata of another schema version, or a
        corrupt layer list (:func:`tvm_snn.schema.parse_layers_metadata`).
    """
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    layers, problem = parse_layers_metadata({prop.key: prop.value for prop in proto.metadata_props})
    if problem is not None:
        raise FormatError(f"{path}: {problem}")
    return [] if layers is None else layers
