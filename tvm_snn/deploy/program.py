"""The model as a straight-line program of kernel calls, with a static memory plan.

The standalone driver (:mod:`tvm_snn.deploy.standalone`) calls the model's
kernels in the order of the Relax VM's program. This module reads that order
from ``main`` of the scheduled module (after
:func:`relay_passes.pipeline.run_schedule_passes`, before TVM's dataflow
lowering), once TVM's ``RewriteDataflowReshape`` has turned the reshape
kernels into views:

- ``call_tir`` of a PrimFunc is a :class:`Step`: its tensor arguments, then its
  outputs;
- a constant argument becomes a constant tensor (linked into the program);
- ``reshape``, plain variables, tuples and tuple items alias tensors.

Anything else (control flow, calls to other functions or packed functions,
symbolic shapes, offloaded functions) raises :class:`~tvm_snn.errors.StandaloneError`
naming the binding.

:func:`plan_memory` places every activation in one arena: tensors whose
lifetimes (first write to last read, in steps) overlap never share bytes.
"""

from dataclasses import dataclass, field

import numpy as np

from tvm_snn.errors import StandaloneError

ALIGNMENT = 64  # bytes: TVM's kernels assume 64-byte aligned buffers
INPUT, CONSTANT, ACTIVATION = "input", "constant", "activation"
SUPPORTED_DTYPES = ("float32", "float16", "int8", "uint8", "int16", "int32", "uint32", "int64")


@dataclass
class Tensor:
    """One tensor of the program.

    Attributes
    ----------
    index : int
        Its position in :attr:`Program.tensors`.
    name : str
        A readable name (the Relax variable, or ``const<k>``).
    shape : tuple of int
    dtype : str
    role : str
        ``"input"`` (a model input), ``"constant"`` or ``"activation"``.
    value : numpy.ndarray or None
        A constant's value.
    base : int or None
        For a view (a reshape), the tensor whose bytes it shares.
    """

    index: int
    name: str
    shape: tuple
    dtype: str
    role: str
    value: np.ndarray | None = None
    base: int | None = None

    @property
    def nbytes(self):
        """The tensor's size in bytes."""
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class Step:
    """One kernel call: the PrimFunc's name and its tensor arguments (inputs, then outputs)."""

    kernel: str
    args: tuple


@dataclass
class Program:
    """The model's kernel calls in order, its tensors, inputs and outputs.

    Attributes
    ----------
    tensors : list of Tensor
    steps : list of Step
    inputs : list of int
        The model inputs' tensor indices, in ``main``'s parameter order.
    outputs : list of int
        The model outputs' tensor indices.
    kernels : dict of str to tvm.tirx.PrimFunc
        The PrimFuncs the steps call, by name.
    """

    tensors: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    kernels: dict = field(default_factory=dict)

    def storage(self, index):
        """The tensor whose bytes tensor ``index`` uses (itself, or a view's base)."""
        tensor = self.tensors[index]
        return index if tensor.base is None else self.storage(tensor.base)


@dataclass(frozen=True)
class MemoryPlan:
    """Where each activation lives in the arena.

    Attributes
    ----------
    offsets : dict of int to int
        Byte offset in the arena, per stored tensor (inputs and activations; not views).
    arena_bytes : int
        The arena's size: the peak of the activations that are live at once.
    unplanned_bytes : int
        What the same tensors would take with no reuse.
    """

    offsets: dict
    arena_bytes: int
    unplanned_bytes: int


def _static_tensor(ty, where):
    """``(shape, dtype)`` of a static tensor struct info, or a StandaloneError."""
    from tvm import relax, tirx

    if not isinstance(ty, relax.TensorType) or ty.shape is None:
        raise StandaloneError(f"{where}: {ty} is not a tensor of known shape")
    dims = ty.shape.values if hasattr(ty.shape, "values") else None
    if dims is None or not all(isinstance(d, tirx.IntImm) for d in dims):
        raise StandaloneError(
            f"{where}: shape {ty.shape} is dynamic; the standalone driver needs static shapes"
        )
    dtype = str(ty.dtype)
    if dtype not in SUPPORTED_DTYPES:
        raise StandaloneError(f"{where}: dtype {dtype} is not supported by the standalone driver")
    return tuple(int(d) for d in dims), dtype


class _Reader:
    """Walks ``main`` once, building the :class:`Program`."""

    def __init__(self, mod):
        self.mod = mod
        self.program = Program()
        self.values = {}  # relax.Var -> tensor index, or a tuple of them

    def add(self, name, shape, dtype, role, value=None, base=None):
        index = len(self.program.tensors)
        self.program.tensors.append(Tensor(index, name, shape, dtype, role, value, base))
        return index

    def operand(self, expr, where):
        import tvm
        from tvm import relax

        if isinstance(expr, relax.Var):
            if expr not in self.values:
                raise StandaloneError(f"{where}: {expr.name} is not a tensor the driver knows")
            return self.values[expr]
        if isinstance(expr, tvm.ir.GenericConst):
            shape, dtype = _static_tensor(expr.ty, where)
            value = np.ascontiguousarray(expr.value.numpy())
            return self.add(f"const{len(self.program.tensors)}", shape, dtype, CONSTANT, value)
        if isinstance(expr, relax.Tuple):
            return tuple(self.operand(item, where) for item in expr.fields)
        if isinstance(expr, relax.TupleGetItem):
            whole = self.operand(expr.tuple_value, where)
            return whole[expr.index]
        raise StandaloneError(f"{where}: {type(expr).__name__} cannot be an operand of the driver")

    def outputs_of(self, var, where):
        from tvm import relax

        ty = var.ty
        if isinstance(ty, relax.TupleType):
            return tuple(
                self.add(f"{var.name}_{k}", *_static_tensor(item, where), ACTIVATION)
                for k, item in enumerate(ty.fields)
            )
        return self.add(var.name, *_static_tensor(ty, where), ACTIVATION)

    def call_tir(self, var, call, where):
        from tvm import relax, tirx

        callee = call.args[0]
        if not isinstance(callee, relax.GlobalVar) or not isinstance(
            self.mod[callee], tirx.PrimFunc
        ):
            raise StandaloneError(f"{where}: call_tir of {callee}, which is not a PrimFunc")
        if len(call.args) > 2:
            raise StandaloneError(
                f"{where}: {callee.name_hint} takes symbolic shape arguments; the driver needs static shapes"
            )
        args = self.operand(call.args[1], where)
        args = args if isinstance(args, tuple) else (args,)
        if any(isinstance(a, tuple) for a in args):
            raise StandaloneError(f"{where}: {callee.name_hint} takes a nested tuple")
        result = self.outputs_of(var, where)
        outs = result if isinstance(result, tuple) else (result,)
        self.program.kernels[callee.name_hint] = self.mod[callee]
        self.program.steps.append(Step(callee.name_hint, tuple(args) + outs))
        return result

    def reshape(self, var, call, where):
        from tvm import relax

        source = self.operand(call.args[0], where)
        shape, dtype = _static_tensor(var.ty, where)
        if isinstance(source, tuple) or self.program.tensors[source].dtype != dtype:
            raise StandaloneError(f"{where}: a reshape that is not a view of one tensor")
        if not isinstance(call.args[0], relax.Var):
            raise StandaloneError(f"{where}: a reshape of a constant")
        return self.add(var.name, shape, dtype, ACTIVATION, base=source)

    def binding(self, binding):
        import tvm
        from tvm import relax

        var, value = binding.var, binding.value
        where = f"binding {var.name}"
        if not isinstance(binding, relax.VarBinding):
            raise StandaloneError(f"{where}: a match_cast; the driver needs static shapes")
        if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op):
            if value.op.name == "relax.call_tir":
                return self.call_tir(var, value, where)
            if value.op.name == "relax.reshape":
                return self.reshape(var, value, where)
            raise StandaloneError(
                f"{where}: the op {value.op.name} cannot run in the standalone driver"
            )
        if isinstance(value, relax.Call):
            callee = getattr(value.op, "name_hint", type(value.op).__name__)
            raise StandaloneError(
                f"{where}: a call to {callee}, which the standalone driver cannot run"
            )
        return self.operand(value, where)

    def read(self):
        from tvm import relax

        main = self.mod["main"]
        body = main.body
        if not isinstance(body, relax.SeqExpr):
            raise StandaloneError("main's body is not a sequence of bindings")
        for block in body.blocks:  # control flow first: its condition is no tensor of ours
            for binding in block.bindings:
                if isinstance(binding.value, relax.If):
                    raise StandaloneError(
                        f"binding {binding.var.name}: control flow (if/else) cannot run in the standalone driver"
                    )
        for param in main.params:
            shape, dtype = _static_tensor(param.ty, f"input {param.name}")
            index = self.add(param.name, shape, dtype, INPUT)
            self.values[param] = index
            self.program.inputs.append(index)
        for block in body.blocks:
            for binding in block.bindings:
                self.values[binding.var] = self.binding(binding)
        result = self.operand(body.body, "main's result")
        outputs = result if isinstance(result, tuple) else (result,)
        if any(isinstance(o, tuple) for o in outputs):
            raise StandaloneError("main returns a nested tuple")
        self.program.outputs = list(outputs)
        return self.program


def read_program(mod):
    """Read ``main`` of a scheduled module as a :class:`Program`.

    Parameters
    ----------
    mod : tvm.IRModule
        The module after :func:`relay_passes.pipeline.run_schedule_passes`.

    Returns
    -------
    Program

    Raises
    ------
    StandaloneError
        For control flow, dynamic shapes, or an op the driver cannot run; the
        message names the binding.
    """
    from tvm import relax

    if "main" not in [gv.name_hint for gv in mod.get_global_vars()]:
        raise StandaloneError("the module has no main function")
    main = mod["main"]
    if not isinstance(main, relax.Function):
        raise StandaloneError("main is not a Relax function")
    mod = relax.transform.RewriteDataflowReshape()(mod)
    return _Reader(mod).read()


def _round_up(value, alignment=ALIGNMENT):
    return -(-value // alignment) * alignment


def lifetimes(program):
    """Per stored tensor (inputs and activations), the steps ``(first, last)`` it is live.

    An input is live from before the first step; an output until after the
    last. A view keeps its base alive.
    """
    end = len(program.steps)
    spans = {}

    def touch(index, step):
        base = program.storage(index)
        if program.tensors[base].role == CONSTANT:
            return
        first, last = spans.get(base, (step, step))
        spans[base] = (min(first, step), max(last, step))

    for index in program.inputs:
        touch(index, -1)
    for position, step in enumerate(program.steps):
        for index in step.args:
            touch(index, position)
    for index in program.outputs:
        touch(index, end)
    return spans


def plan_memory(program):
    """Place the stored tensors in one arena, reusing bytes across steps.

    Greedy by size (largest first): each tensor goes at the lowest aligned
    offset where it overlaps no placed tensor that is live in one of its steps.

    Returns
    -------
    MemoryPlan
    """
    spans = lifetimes(program)
    sizes = {index: _round_up(max(program.tensors[index].nbytes, 1)) for index in spans}
    order = sorted(spans, key=lambda i: (-sizes[i], spans[i][0], i))
    placed = []  # (offset, size, first, last)
    offsets = {}
    for index in order:
        first, last = spans[index]
        size = sizes[index]
        busy = sorted((off, off + sz) for off, sz, f, lst in placed if f <= last and first <= lst)
        offset = 0
        for start, stop in busy:
            if offset + size <= start:
                break
            offset = max(offset, stop)
        offsets[index] = offset
        placed.append((offset, size, first, last))
    arena = max((off + sz for off, sz, _, _ in placed), default=0)
    return MemoryPlan(offsets, arena, sum(sizes.values()))


def check_plan(program, plan):
    """Raise StandaloneError if two tensors live at once share bytes (a self-check of the plan)."""
    spans = lifetimes(program)
    items = [
        (plan.offsets[i], plan.offsets[i] + program.tensors[i].nbytes, *spans[i]) for i in spans
    ]
    for k, (a0, a1, f0, l0) in enumerate(items):
        for b0, b1, f1, l1 in items[k + 1 :]:
            if a0 < b1 and b0 < a1 and f0 <= l1 and f1 <= l0:
                raise StandaloneError("the memory plan overlaps two live tensors")
