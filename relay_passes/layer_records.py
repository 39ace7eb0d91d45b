"""Per-layer results as IR attributes: what each SNN pass decided, carried by the functions.

``DetectSubBitConv`` writes one :class:`~relay_passes.report.LayerReport`
per conv: on the composite function of each conv it chose
(``tvm_snn.report``, with the conv's sub-bit format, see
:func:`conv_attrs`), and on the enclosing Relax function for the convs it
left dense (``tvm_snn.dense_convs``). ``LowerSubBitConv`` moves each
composite's report onto its kernel's PrimFunc, with the kernel it chose and
the bytes its constants really take. :func:`read_reports` collects them, in
graph order, from a module at any point between the passes.

``FoldWeightSubgraphs`` records, on each function, which ops produced each
constant it folded (``tvm_snn.folded``: ``{fingerprint: "op,op,..."}``, the
fingerprint of the constant's content, see :func:`fingerprint`), so the
detector can say what a conv's weight was folded from (:func:`folded_ops`).
"""

import dataclasses
import hashlib
import json

import numpy as np
import tvm

from relay_passes.report import LayerReport
from schedules.subbit import SubBitConv

ATTR_REPORT = "tvm_snn.report"
ATTR_DENSE_CONVS = "tvm_snn.dense_convs"
# The records of the convs an offloaded region holds (an accelerator target writes them).
ATTR_REPORTS = "tvm_snn.reports"
ATTR_CODEBOOK = "tvm_snn.codebook"
ATTR_INDICES = "tvm_snn.indices"
ATTR_ALPHA = "tvm_snn.alpha"
ATTR_FOLDED = "tvm_snn.folded"
# Hex digits of a folded constant's fingerprint (64 bits: no collisions among a model's weights).
FINGERPRINT_CHARS = 16
_ORDER = "order"
_REPORT = "report"


def report_record(order, report):
    """A report and its place in graph order, as the JSON string of an attribute."""
    return json.dumps({_ORDER: order, _REPORT: report.to_json()}, sort_keys=True)


def _parse(text):
    data = json.loads(str(text))
    return data[_ORDER], LayerReport.from_json(data[_REPORT])


def record_report(text):
    """The :class:`LayerReport` of a record written by :func:`report_record`."""
    return _parse(text)[1]


def dense_records(func):
    """The records of the convs ``func`` keeps dense (JSON strings, see :func:`with_dense_reports`)."""
    attrs = func.attrs if func.attrs is not None else {}
    return json.loads(str(attrs[ATTR_DENSE_CONVS])) if ATTR_DENSE_CONVS in attrs else []


def updated_record(text, **changes):
    """The record ``text`` with its report's fields changed as ``changes`` say."""
    order, report = _parse(text)
    return report_record(order, dataclasses.replace(report, **changes))


def conv_attrs(conv):
    """The arrays of a :class:`SubBitConv` as function attributes (TVM tensors)."""
    return {
        ATTR_CODEBOOK: tvm.runtime.tensor(np.ascontiguousarray(conv.codebook)),
        ATTR_INDICES: tvm.runtime.tensor(np.ascontiguousarray(conv.indices)),
        ATTR_ALPHA: tvm.runtime.tensor(np.ascontiguousarray(conv.alpha)),
    }


def conv_from_attrs(attrs, call, tau, activation):
    """Rebuild the :class:`SubBitConv` that :func:`conv_attrs` stored, for the conv ``call``."""
    conv_attrs_ = call.attrs
    return SubBitConv(
        codebook=attrs[ATTR_CODEBOOK].numpy(),
        indices=attrs[ATTR_INDICES].numpy(),
        alpha=attrs[ATTR_ALPHA].numpy(),
        tau=tau,
        kernel_size=tuple(int(d) for d in call.args[1].ty.shape.values[2:]),
        in_channels=int(call.args[1].ty.shape.values[1]),
        stride=tuple(int(v) for v in conv_attrs_.strides),
        padding=tuple(int(v) for v in conv_attrs_.padding),
        dilation=tuple(int(v) for v in conv_attrs_.dilation),
        activation=activation,
    )


def read_reports(mod):
    """Every layer report the SNN passes left in ``mod``, in graph order.

    Returns
    -------
    list of LayerReport
    """
    records = []
    for _, func in mod.functions_items():
        attrs = func.attrs if func.attrs is not None else {}
        if ATTR_REPORT in attrs:
            records.append(_parse(attrs[ATTR_REPORT]))
        for name in (ATTR_DENSE_CONVS, ATTR_REPORTS):
            if name in attrs:
                records.extend(_parse(text) for text in json.loads(str(attrs[name])))
    return [report for _, report in sorted(records, key=lambda record: record[0])]


def with_dense_reports(func, records):
    """``func`` carrying the records of the convs it keeps dense (none: no attribute)."""
    if records:
        return func.with_attr(ATTR_DENSE_CONVS, json.dumps(records))
    return (
        func.without_attr(ATTR_DENSE_CONVS)
        if func.attrs is not None and ATTR_DENSE_CONVS in func.attrs
        else func
    )


def with_reports(func, records):
    """``func`` (an offloaded region) carrying the records of the convs it holds."""
    return func.with_attr(ATTR_REPORTS, json.dumps(records))


def fingerprint(array):
    """A short digest of an array's dtype, shape and bytes: the key of a folded constant."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype}{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()[:FINGERPRINT_CHARS]


def folded_records(func):
    """``{fingerprint: "op,op,..."}``: the constants folded in ``func`` and their ops."""
    attrs = func.attrs if func.attrs is not None else {}
    return json.loads(str(attrs[ATTR_FOLDED])) if ATTR_FOLDED in attrs else {}


def with_folded_records(func, records):
    """``func`` recording, besides what it already records, the folded constants ``records``."""
    if not records:
        return func
    merged = {**folded_records(func), **records}
    return func.with_attr(ATTR_FOLDED, json.dumps(merged, sort_keys=True))


def folded_ops(records, array):
    """The ops ``array`` was folded from (``"op,op,..."``), or ``""`` when it was a plain constant."""
    return records.get(fingerprint(array), "") if records else ""
