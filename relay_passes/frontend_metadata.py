"""Cross-check the detector's findings with the training frontend's metadata.

The frontend's ONNX export lists its sub-bit convs (kernel, tau, codebook,
shapes) under the ``metadata_props`` key ``tvm_snn.layers``, next to its
schema version under ``tvm_snn.schema`` (see :mod:`tvm_snn.schema` and
``tvm_snn.train.exporter``). Detection never needs it; when it is there,
each entry is matched to the first unmatched conv of the same kernel and
weight count, and the report says where the two disagree.
"""

import math

from tvm_snn.errors import FormatError
from tvm_snn.schema import KERNEL_1X1, KERNEL_3X3, parse_layers_metadata

UNIT_WEIGHTS = {"3x3": math.prod(KERNEL_3X3), "1x1": math.prod(KERNEL_1X1)}
"""Weights per (output, input) channel pair, by the metadata's kernel string."""


def read_entries(metadata_props):
    """Return the frontend's layer list from ONNX ``metadata_props``.

    Parameters
    ----------
    metadata_props : iterable of onnx.StringStringEntryProto
        The model's metadata (anything with ``key`` and ``value``).

    Returns
    -------
    list of dict or None
        The entries, or None when the model carries no tvm-snn metadata.

    Raises
    ------
    FormatError
        When the metadata names an unsupported or no schema version, or its
        layer list is corrupt (:func:`tvm_snn.schema.parse_layers_metadata`).
    """
    layers, problem = parse_layers_metadata({prop.key: prop.value for prop in metadata_props})
    if problem is not None:
        raise FormatError(problem)
    return layers


def _weights(entry):
    return (
        int(entry["out_channels"])
        * int(entry["in_channels"])
        * UNIT_WEIGHTS.get(entry["kernel"], 0)
    )


def cross_check(layers, entries):
    """Record the frontend's tau on each matched report; note disagreements.

    Parameters
    ----------
    layers : list of LayerReport
        The detector's reports, in graph order; updated in place.
    entries : list of dict
        The frontend's layers, in module order.

    Returns
    -------
    list of str
        One line per disagreement (an entry with no matching conv, a conv
        the frontend calls sub-bit that the detector did not, or more
        patterns than the frontend's tau allows).
    """
    problems = []
    taken = set()
    for entry in entries:
        # Module order and graph order can differ (a shortcut traced before its block's
        # second conv), so take the first unmatched conv of the same shape.
        match = next(
            (
                i
                for i, layer in enumerate(layers)
                if i not in taken
                and layer.kernel == entry.get("kernel")
                and layer.weights == _weights(entry)
            ),
            None,
        )
        if match is None:
            problems.append(f"frontend layer {entry.get('module')!r} matches no conv in the graph")
            continue
        taken.add(match)
        layer, tau = layers[match], int(entry["tau"])
        layer.frontend_tau = tau
        if layer.tau is None:
            problems.append(
                f"{layer.name}: the frontend says tau={tau}, the detector found no sub-bit form"
            )
            layer.reason = f"{layer.reason} (frontend metadata: tau={tau})"
        elif layer.tau > tau:
            problems.append(f"{layer.name}: detected tau={layer.tau} > frontend tau={tau}")
    return problems
