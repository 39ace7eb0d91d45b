"""An artifact's accelerator regions on disk: ``<artifact>.fpga.npz`` (no pickles).

One JSON record (``meta``) holds the spec and, per region, its symbol, its
argument count, its outputs and its steps (kind, shapes, epilogue, sources);
arrays hold each step's instruction stream and weights. :func:`load_functions`
rebuilds the layers, decodes the saved streams (the ISA's checks run) and
returns regions ready to register.
"""

from __future__ import annotations

import json

import numpy as np

from hw_targets.compiler import compile_conv
from hw_targets.isa import decode_stream
from hw_targets.layer import FpgaConv
from hw_targets.program import Program
from hw_targets.runtime import FpgaFunction, FpgaStep, Source
from hw_targets.spec import AcceleratorSpec, load_spec
from schedules.bnn_xnor import BinaryConv
from schedules.subbit import SubBitConv
from tvm_snn.errors import FpgaError

__all__ = ["SIDECAR_FORMAT", "SIDECAR_VERSION", "save_functions", "load_functions"]

SIDECAR_FORMAT = "tvm-snn-fpga-functions"
SIDECAR_VERSION = 1


def _step_record(step: FpgaStep, prefix: str, arrays: dict) -> dict:
    layer = step.layer
    conv = layer.conv
    arrays[f"{prefix}.stream"] = np.frombuffer(step.program.stream(), dtype=np.uint8)
    record = {
        "kind": step.kind,
        "input_shape": list(layer.input_shape),
        "residual": layer.residual,
        "relu": layer.relu,
        "sign": layer.sign,
        "data": step.data.to_json(),
        "residual_source": None if step.residual is None else step.residual.to_json(),
        "stride": list(conv.stride),
        "padding": list(conv.padding),
    }
    bias = conv.bias if layer.subbit else layer.bias
    if layer.subbit:
        record.update(kernel=list(conv.kernel_size), tau=conv.tau)
        for name in ("codebook", "indices", "alpha"):
            arrays[f"{prefix}.{name}"] = np.asarray(getattr(conv, name))
    else:
        arrays[f"{prefix}.signs"] = np.asarray(conv.signs)
        arrays[f"{prefix}.alpha"] = np.asarray(conv.alpha)
    if bias is not None:
        arrays[f"{prefix}.bias"] = np.asarray(bias)
    return record


def save_functions(functions, spec: AcceleratorSpec, path) -> None:
    """Write ``functions`` (regions) and ``spec`` to ``path``."""
    arrays = {}
    regions = []
    for number, function in enumerate(functions):
        steps = [
            _step_record(step, f"r{number}s{k}", arrays) for k, step in enumerate(function.steps)
        ]
        regions.append(
            {
                "symbol": function.symbol,
                "params": function.params,
                "outputs": function.outputs,
                "steps": steps,
            }
        )
    meta = {
        "format": SIDECAR_FORMAT,
        "version": SIDECAR_VERSION,
        "spec": spec.to_dict(),
        "regions": regions,
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _conv(record: dict, prefix: str, arrays):
    bias = arrays[f"{prefix}.bias"] if f"{prefix}.bias" in arrays.files else None
    if record["kind"] == "subbit":
        conv = SubBitConv(
            kernel_size=tuple(record["kernel"]),
            tau=record["tau"],
            codebook=arrays[f"{prefix}.codebook"],
            indices=arrays[f"{prefix}.indices"],
            alpha=arrays[f"{prefix}.alpha"],
            bias=bias,
            stride=tuple(record["stride"]),
            padding=tuple(record["padding"]),
            activation="binary",
        )
        return conv, None
    conv = BinaryConv(
        signs=arrays[f"{prefix}.signs"],
        alpha=arrays[f"{prefix}.alpha"],
        stride=tuple(record["stride"]),
        padding=tuple(record["padding"]),
    )
    return conv, bias


def _step(record: dict, prefix: str, arrays, spec: AcceleratorSpec) -> FpgaStep:
    conv, bias = _conv(record, prefix, arrays)
    layer = FpgaConv(
        conv,
        tuple(record["input_shape"]),
        residual=record["residual"],
        relu=record["relu"],
        sign=record["sign"],
        bias=bias,
    )
    compiled = compile_conv(layer, spec)
    saved = decode_stream(arrays[f"{prefix}.stream"].tobytes())
    program = Program(spec, compiled.regions, tuple(saved), compiled.info)
    residual = record["residual_source"]
    return FpgaStep(
        layer,
        program,
        Source.from_json(record["data"]),
        None if residual is None else Source.from_json(residual),
    )


def load_functions(path) -> tuple[AcceleratorSpec, list[FpgaFunction]]:
    """Read a file :func:`save_functions` wrote; the regions are not registered yet.

    Raises
    ------
    FpgaError
        An unreadable or foreign file, or one whose records do not rebuild
        (the ISA's and the compiler's own errors name what is wrong).
    """
    try:
        arrays = np.load(path, allow_pickle=False)
        meta = json.loads(arrays["meta"].tobytes().decode())
    except (OSError, ValueError, KeyError, UnicodeDecodeError) as err:
        raise FpgaError(f"{path} is not a readable snn-fpga functions file: {err}") from None
    if (
        not isinstance(meta, dict)
        or meta.get("format") != SIDECAR_FORMAT
        or meta.get("version") != SIDECAR_VERSION
    ):
        raise FpgaError(f"{path} is not a {SIDECAR_FORMAT} file of version {SIDECAR_VERSION}")
    spec = load_spec(meta["spec"])
    functions = []
    try:
        for number, region in enumerate(meta["regions"]):
            steps = [
                _step(step, f"r{number}s{k}", arrays, spec)
                for k, step in enumerate(region["steps"])
            ]
            functions.append(
                FpgaFunction(region["symbol"], region["params"], steps, region["outputs"])
            )
    except (KeyError, TypeError) as err:
        raise FpgaError(f"{path}: a region record is incomplete: {err}") from None
    return spec, functions
