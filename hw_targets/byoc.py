"""Relax BYOC for the accelerator: the patterns, the claims and regions, the ``relax.ext.snn_fpga`` codegen.

How a model reaches the accelerator (``tvm_snn.accelerator`` drives it; this
module never sees ``relay_passes``):

1. The convs the accelerator takes are put back in the graph as plain
   ``conv2d`` calls, and their weights recorded in a :class:`FpgaClaims`
   (by the weight's fingerprint) with the accelerator form of each: a
   :class:`~schedules.subbit.SubBitConv` (PRECOMPUTE + GATHER) or a
   :class:`~schedules.bnn_xnor.BinaryConv` (XNOR).
2. ``FuseOpsByPattern`` with :func:`fpga_patterns` groups each claimed conv
   with its epilogue (a per-channel bias, a residual add, a ReLU) into an
   ``snn_fpga.*`` composite, and ``MergeCompositeFunctions`` wraps connected
   composites into regions with ``Codegen = "snn_fpga"`` (a shortcut conv and
   the conv whose residual it is become one region: the tensor between them
   never goes back to the CPU).
3. :meth:`FpgaClaims.build` compiles each region's convs to programs
   (:func:`hw_targets.compiler.compile_conv`), models their cycles and names
   the region ``snn_fpga_<digest>`` (of its streams, weights and wiring: two
   models in one process never share a name for different code).
4. ``RunCodegen`` calls ``relax.ext.snn_fpga``: it registers, for each
   region, a global packed function of that name that runs its programs
   (:class:`~hw_targets.runtime.FpgaFunction`) and returns no module, so the
   call sites become ``call_dps_packed`` of registered functions. That is the
   deliberate choice: the runtime is Python (the simulator, a Pynq overlay, a
   board over RPC), so it cannot live in a C module of the exported library.
   An artifact carries the programs in a sidecar file instead
   (:mod:`hw_targets.sidecar`), which ``tvm_snn.load`` checks and registers.
"""

from __future__ import annotations

import contextlib
import hashlib

import numpy as np
import tvm
import tvm_ffi
from tvm import relax
from tvm.relax.dpl import is_const, is_op, wildcard

from hw_targets.compiler import compile_conv
from hw_targets.layer import FpgaConv
from hw_targets.runtime import FpgaFunction, FpgaStep, Source
from hw_targets.sidecar import load_functions, save_functions
from hw_targets.spec import AcceleratorSpec, load_spec
from schedules.bnn_xnor import BinaryConv
from schedules.subbit import SubBitConv
from tvm_snn.errors import FpgaError, FpgaLayerError

__all__ = [
    "CODEGEN",
    "FpgaClaims",
    "fpga_patterns",
    "claims_scope",
]

CODEGEN = "snn_fpga"
SYMBOL_PREFIX = "snn_fpga_"
_ACTIVE = []  # the claims RunCodegen's callback serves (a stack: claims_scope)


def weight_key(array) -> str:
    """The key of a conv weight: a digest of its dtype, shape and bytes."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype}{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()[:24]


# ---- patterns ------------------------------------------------------------------

# name: (bias, residual, relu), most specific first.
PATTERN_FORMS = {
    "conv2d_bias_residual_relu": (True, True, True),
    "conv2d_bias_residual": (True, True, False),
    "conv2d_bias_relu": (True, False, True),
    "conv2d_bias": (True, False, False),
    "conv2d_relu": (False, False, True),
    "conv2d": (False, False, False),
}


def _dims(expr) -> tuple:
    return tuple(int(d) for d in expr.ty.shape)


def _epilogue_fits(matched) -> bool:
    """A bias of one float32 per channel; a residual add of two computed tensors of the output's shape."""
    out = _dims(matched["conv"])
    if "bias_add" in matched:
        bias = matched["bias_add"].args[1].value
        if bias.dtype != "float32" or tuple(bias.shape) not in ((1, out[1], 1, 1), (out[1], 1, 1)):
            return False
    if "residual_add" in matched:
        add = matched["residual_add"]
        if any(_dims(arg) != out or arg.ty.dtype != "float32" for arg in add.args):
            return False
        if any(isinstance(arg, tvm.ir.GenericConst) for arg in add.args):
            return False  # a constant residual is left to the CPU: the ALU adds a loaded tensor
    return True


def fpga_patterns(claims: FpgaClaims) -> list:
    """The accelerator's patterns, most specific first, for ``FuseOpsByPattern``.

    A claimed conv (``conv2d(x, W)`` with ``W`` in ``claims``), then optionally
    a per-channel constant bias, a residual add (either operand order) and a
    ReLU: what the ALU does after the accumulation.
    """

    def check(context) -> bool:
        matched = context.annotated_expr
        weight = matched["conv"].args[1].value.numpy()
        return claims.claim_for(weight) is not None and _epilogue_fits(matched)

    patterns = []
    for name, (with_bias, with_residual, with_relu) in PATTERN_FORMS.items():
        conv = is_op("relax.nn.conv2d")(wildcard(), is_const())
        annotations = {"conv": conv}
        head = conv
        if with_bias:
            head = is_op("relax.add")(conv, is_const())
            annotations["bias_add"] = head
        tails = [head]
        if with_residual:
            other = wildcard()
            tails = [is_op("relax.add")(head, other), is_op("relax.add")(other, head)]
        for number, tail in enumerate(tails):
            root = is_op("relax.nn.relu")(tail) if with_relu else tail
            extra = {"residual_add": tail} if with_residual else {}
            suffix = "_swapped" if number else ""
            patterns.append((f"{CODEGEN}.{name}{suffix}", root, {**annotations, **extra}, check))
    return patterns


# ---- regions ---------------------------------------------------------------------


def _bindings(func):
    return [b for block in func.body.blocks for b in block.bindings]


def _epilogue(inner):
    """The conv call, the bias constant, the residual parameter and ReLU of a matched composite."""
    conv = bias = residual = None
    relu = False
    for binding in _bindings(inner):
        value = binding.value
        if not isinstance(value, relax.Call) or not isinstance(value.op, tvm.ir.Op):
            continue
        name = value.op.name
        if name == "relax.nn.conv2d":
            conv = value
        elif (
            name == "relax.add" and isinstance(value.args[1], tvm.ir.GenericConst) and bias is None
        ):
            bias = value.args[1].value.numpy().reshape(-1)
        elif name == "relax.add":
            residual = next(arg for arg in value.args if any(arg.same_as(p) for p in inner.params))
        elif name == "relax.nn.relu":
            relu = True
    return conv, bias, residual, relu


def _outputs(outer, step_of) -> list:
    """The steps whose outputs the region returns."""
    body = outer.body.body
    results = body.fields if isinstance(body, relax.Tuple) else [body]
    try:
        return [step_of[var] for var in results]
    except KeyError:
        raise FpgaError(f"an {CODEGEN} region must return its composites' outputs") from None


class FpgaClaims:
    """The convs the accelerator takes in one compile, and the regions made from them.

    Parameters
    ----------
    spec : str, dict, path or AcceleratorSpec
    """

    def __init__(self, spec="paper"):
        self.spec: AcceleratorSpec = load_spec(spec)
        self._convs = {}
        self.functions = {}

    def claim(self, weight, conv) -> None:
        """Record that the conv of dense weight ``weight`` runs as ``conv`` (SubBitConv or BinaryConv)."""
        if not isinstance(conv, (SubBitConv, BinaryConv)):
            raise FpgaLayerError(
                f"a claim is a SubBitConv or a BinaryConv, got {type(conv).__name__}"
            )
        self._convs[weight_key(weight)] = conv

    @staticmethod
    def key_of(weight) -> str:
        """The key a weight is claimed under (:func:`weight_key`)."""
        return weight_key(weight)

    def claim_for(self, weight):
        """The accelerator form of the conv of ``weight``, or None when it is not claimed."""
        return self._convs.get(weight_key(weight))

    def _step(self, inner, sources) -> FpgaStep:
        """One composite (``inner``, its parameters fed from ``sources``) as a compiled step."""
        conv_call, bias, residual, relu = _epilogue(inner)
        weight = conv_call.args[1].value.numpy()
        key = weight_key(weight)
        conv = self._convs[key]
        if isinstance(conv, SubBitConv) and bias is not None:
            conv = SubBitConv(**{**{f: getattr(conv, f) for f in _SUBBIT_FIELDS}, "bias": bias})
        source = {param: sources[number] for number, param in enumerate(inner.params)}
        data = next(s for p, s in source.items() if p.same_as(conv_call.args[0]))
        layer = FpgaConv(
            conv,
            _dims(conv_call.args[0]),
            residual=residual is not None,
            relu=relu,
            bias=bias if isinstance(conv, BinaryConv) else None,
        )
        residual_source = (
            None if residual is None else next(s for p, s in source.items() if p.same_as(residual))
        )
        return FpgaStep(layer, compile_conv(layer, self.spec), data, residual_source, key)

    def function(self, outer) -> FpgaFunction:
        """Compile one ``Codegen = "snn_fpga"`` region (not yet named or registered)."""
        local, step_of, steps = {}, {}, []
        params = list(outer.params)
        for binding in _bindings(outer):
            value = binding.value
            if isinstance(value, relax.Function):
                local[binding.var] = value
                continue
            if not isinstance(value, relax.Call) or value.op not in local:
                raise FpgaError(
                    f"an {CODEGEN} region holds only calls of its composites, got {type(value).__name__}"
                )
            sources = []
            for arg in value.args:
                if arg in step_of:
                    sources.append(Source("step", step_of[arg]))
                else:
                    sources.append(
                        Source("param", next(i for i, p in enumerate(params) if p.same_as(arg)))
                    )
            steps.append(self._step(local[value.op], sources))
            step_of[binding.var] = len(steps) - 1
        if not steps:
            raise FpgaError(f"an {CODEGEN} region holds no composite")
        return FpgaFunction("", len(params), steps, _outputs(outer, step_of))

    def build(self, mod):
        """Compile every ``snn_fpga`` region of ``mod`` and name it (:func:`_symbol`); return the module."""
        updates = {}
        for gv, func in mod.functions_items():
            if is_region(func):
                built = self.function(func)
                built.symbol = _symbol(built)
                self.functions[built.symbol] = built
                updates[gv] = func.with_attr("global_symbol", built.symbol)
        for gv, func in updates.items():
            mod[gv] = func
        return mod

    def for_function(self, func) -> FpgaFunction:
        """The built region behind a named ``snn_fpga`` function."""
        return self.functions[str(func.attrs["global_symbol"])]

    def steps(self) -> list:
        """Every step of every region."""
        return [step for function in self.functions.values() for step in function.steps]

    def use_device(self, device) -> None:
        """Run every region on ``device`` (``run(program, dram)``: the simulator by default, a board's)."""
        for function in self.functions.values():
            function.device = device

    def register(self) -> None:
        """Register every region's packed function (as after a load)."""
        for function in self.functions.values():
            function.register()

    def save(self, path) -> None:
        """Write the regions to ``path`` (:func:`hw_targets.sidecar.save_functions`)."""
        save_functions(list(self.functions.values()), self.spec, path)

    @classmethod
    def from_file(cls, path) -> FpgaClaims:
        """The regions of a file :meth:`save` wrote (not registered yet)."""
        spec, functions = load_functions(path)
        claims = cls(spec)
        claims.functions = {function.symbol: function for function in functions}
        return claims

    def summary(self) -> str:
        """One line: the accelerator, its convs and their modelled time."""
        steps = self.steps()
        total = sum(step.cycles.total for step in steps)
        kinds = [step.kind for step in steps]
        spec = self.spec
        return (
            f"accelerator: snn-fpga '{spec.name}' ({spec.pe_count} PEs at {spec.clock_mhz:g} MHz): "
            f"{kinds.count('subbit')} sub-bit and {kinds.count('bnn')} BNN conv(s) in {len(self.functions)} region(s), "
            f"{total} cycles modelled ({total / spec.clock_mhz:.1f} us); the rest runs on the CPU"
        )


def is_region(func) -> bool:
    """Whether ``func`` is an ``snn_fpga`` region (``Codegen = "snn_fpga"``)."""
    return (
        isinstance(func, relax.Function)
        and func.attrs is not None
        and str(func.attrs.get("Codegen", "")) == CODEGEN
    )


def _symbol(function: FpgaFunction) -> str:
    """``snn_fpga_<digest>`` of the region's streams, weights and wiring: same code, same name."""
    digest = hashlib.sha256()
    for step in function.steps:
        digest.update(step.program.stream())
        digest.update(step.key.encode())
        digest.update(step.layer.scale_and_bias().tobytes())
        digest.update(repr((step.data, step.residual)).encode())
    digest.update(repr((function.params, function.outputs)).encode())
    return SYMBOL_PREFIX + digest.hexdigest()[:20]


_SUBBIT_FIELDS = (
    "kernel_size", "tau", "codebook", "indices", "alpha", "bias", "stride", "padding",
    "dilation", "groups", "activation", "in_channels",
)  # fmt: skip


@contextlib.contextmanager
def claims_scope(claims: FpgaClaims):
    """Make ``claims`` the ones ``relax.ext.snn_fpga`` serves while ``RunCodegen`` runs."""
    _ACTIVE.append(claims)
    try:
        yield claims
    finally:
        _ACTIVE.pop()


@tvm_ffi.register_global_func(f"relax.ext.{CODEGEN}", override=True)
def _codegen(functions, _options, _constant_names):
    """``RunCodegen``'s callback: register each region's runtime; no module to link."""
    if not _ACTIVE:
        raise FpgaError(
            f"relax.ext.{CODEGEN} runs inside tvm_snn.compile(target='snn-fpga'), with claims in scope"
        )
    claims = _ACTIVE[-1]
    for func in functions:
        claims.for_function(func).register()
    return []
