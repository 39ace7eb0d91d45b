"""Model importers: torch, torch.export, ONNX and Relax, all to a Relax IRModule.

Constants stay bound in the module (``ir.GenericConst``), so the compiled
artifact is self-contained. Unsupported operators are found before conversion
and reported by op type and node name.
"""

import os
from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax

from tvm_snn.errors import ModelImportError, UnsupportedOpError


@dataclass(frozen=True)
class InputSpec:
    """One model input: its name, static shape and dtype."""

    name: str
    shape: tuple
    dtype: str

    def to_json(self):
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_json(cls, data):
        return cls(str(data["name"]), tuple(int(d) for d in data["shape"]), str(data["dtype"]))


def _is_torch_module(model):
    torch = _torch_if_loaded()
    return torch is not None and isinstance(model, torch.nn.Module)


def _is_exported_program(model):
    torch = _torch_if_loaded()
    return torch is not None and isinstance(model, torch.export.ExportedProgram)


def _torch_if_loaded():
    # A model can only be a torch object if torch is already imported.
    import sys

    return sys.modules.get("torch")


def _is_onnx_model(model):
    import sys

    onnx = sys.modules.get("onnx")
    return onnx is not None and isinstance(model, onnx.ModelProto)


def _as_torch_args(example_inputs):
    import torch

    if example_inputs is None:
        raise ModelImportError(
            "a torch.nn.Module needs example_inputs (a tensor or a tuple of tensors)"
        )
    if isinstance(example_inputs, (torch.Tensor, np.ndarray)):
        example_inputs = (example_inputs,)
    return tuple(torch.as_tensor(x) if isinstance(x, np.ndarray) else x for x in example_inputs)


def _torch_to_exported(module, example_inputs):
    import torch

    args = _as_torch_args(example_inputs)
    try:
        return torch.export.export(module.eval(), args)
    except Exception as err:  # torch raises many types here; report them as one
        raise ModelImportError(f"torch.export failed for {type(module).__name__}: {err}") from err


def _from_exported(program):
    from tvm.relax.frontend.torch import from_exported_program
    from tvm.relax.frontend.torch.exported_program_translator import ExportedProgramImporter

    program = program.run_decompositions()
    known = ExportedProgramImporter().convert_map
    missing = [
        (node.name, node.target.__name__)
        for node in program.graph.nodes
        if node.op == "call_function" and node.target.__name__ not in known
    ]
    if missing:
        listed = ", ".join(f"{op} (node {name})" for name, op in missing)
        raise UnsupportedOpError(f"unsupported torch op(s): {listed}")
    try:
        return from_exported_program(
            program, unwrap_unit_return_tuple=True, run_ep_decomposition=False
        )
    except Exception as err:
        raise ModelImportError(f"converting the exported program to Relax failed: {err}") from err


def load_onnx(path):
    import onnx

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelImportError(f"ONNX file not found: {path}")
    try:
        return onnx.load(path)
    except Exception as err:  # protobuf DecodeError and friends
        raise ModelImportError(f"cannot parse ONNX file {path}: {err}") from err


def _check_onnx(model):
    import onnx
    from tvm.relax.frontend.onnx.onnx_frontend import _get_convert_map

    try:
        onnx.checker.check_model(model)
    except Exception as err:
        raise ModelImportError(f"invalid ONNX model: {err}") from err
    known = _get_convert_map()
    missing = [
        (node.name or f"#{i}", node.op_type)
        for i, node in enumerate(model.graph.node)
        if node.op_type not in known and node.op_type not in ("Constant", "If")
    ]
    if missing:
        listed = ", ".join(f"{op} (node {name})" for name, op in missing)
        raise UnsupportedOpError(f"unsupported ONNX op(s): {listed}")


def _onnx_shapes(model, example_inputs):
    """Static input shapes, from the graph or else from the example inputs."""
    initializers = {init.name for init in model.graph.initializer}
    inputs = [inp for inp in model.graph.input if inp.name not in initializers]
    examples = None
    if example_inputs is not None:
        examples = (
            example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
        )
        if len(examples) != len(inputs):
            raise ModelImportError(
                f"the ONNX model has {len(inputs)} input(s) but {len(examples)} example input(s) were given"
            )
    shapes = {}
    for i, inp in enumerate(inputs):
        if examples is not None:
            shapes[inp.name] = list(np.shape(examples[i]))
            continue
        dims = inp.type.tensor_type.shape.dim
        if any(not d.HasField("dim_value") for d in dims):
            raise ModelImportError(
                f"ONNX input {inp.name!r} has a symbolic shape; pass example_inputs to fix it"
            )
        shapes[inp.name] = [d.dim_value for d in dims]
    return shapes


def _from_onnx(model, example_inputs):
    from tvm.relax.frontend.onnx import from_onnx

    _check_onnx(model)
    shapes = _onnx_shapes(model, example_inputs)
    try:
        return from_onnx(model, shape_dict=shapes, keep_params_in_input=False)
    except tvm.error.OpNotImplemented as err:
        raise UnsupportedOpError(str(err)) from err
    except Exception as err:
        raise ModelImportError(f"converting the ONNX model to Relax failed: {err}") from err


def to_relax(model, example_inputs=None):
    """Import any supported model as a Relax IRModule with bound constants.

    Parameters
    ----------
    model : torch.nn.Module, torch.export.ExportedProgram, onnx.ModelProto, str, os.PathLike or tvm.IRModule
        The model. A string or path names an ``.onnx`` file.
    example_inputs : tensor, array or tuple of them, optional
        Needed for a ``torch.nn.Module``; fixes symbolic ONNX shapes.

    Returns
    -------
    tvm.IRModule
        A module whose ``main`` takes the model inputs only.

    Raises
    ------
    ModelImportError
        The model cannot be read or converted.
    UnsupportedOpError
        The model uses an operator the importer does not convert.
    """
    if isinstance(model, tvm.IRModule):
        mod = model
    elif isinstance(model, (str, os.PathLike)):
        mod = _from_onnx(load_onnx(model), example_inputs)
    elif _is_onnx_model(model):
        mod = _from_onnx(model, example_inputs)
    elif _is_exported_program(model):
        mod = _from_exported(model)
    elif _is_torch_module(model):
        mod = _from_exported(_torch_to_exported(model, example_inputs))
    else:
        raise ModelImportError(
            f"cannot import a {type(model).__name__}; accepted: torch.nn.Module, "
            "torch.export.ExportedProgram, onnx.ModelProto, a path to an .onnx file, tvm.IRModule"
        )
    if "main" not in [gv.name_hint for gv in mod.get_global_vars()]:
        raise ModelImportError("the Relax module has no 'main' function")
    return mod


def onnx_metadata(model):
    """The ``metadata_props`` of an ONNX model (object or path); empty otherwise."""
    if isinstance(model, (str, os.PathLike)):
        model = load_onnx(model)
    return list(model.metadata_props) if _is_onnx_model(model) else []


def input_specs(mod):
    """Return the :class:`InputSpec` of each parameter of ``mod["main"]``.

    Raises
    ------
    ModelImportError
        When an input is not a tensor of static shape.
    """
    specs = []
    for param in mod["main"].params:
        ty = param.ty
        if not isinstance(ty, relax.TensorType) or not isinstance(ty.shape, relax.ShapeExpr):
            raise ModelImportError(f"input {param.name!r} is not a tensor of known shape: {ty}")
        dims = []
        for dim in ty.shape.values:
            if not isinstance(dim, tvm.tirx.IntImm):
                raise ModelImportError(f"input {param.name!r} has a symbolic dimension {dim}")
            dims.append(int(dim))
        specs.append(InputSpec(str(param.name), tuple(dims), str(ty.dtype)))
    return specs
