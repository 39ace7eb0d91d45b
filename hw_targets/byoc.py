"""Relax BYOC for the accelerator: patterns, the ``relax.ext.snn_fpga`` codegen, the runtime functions.

How a model reaches the accelerator (``tvm_snn.accelerator`` drives it; this
module never sees ``relay_passes``):

1. The convs the accelerator takes are put back in the graph as plain
   ``conv2d`` calls, and their weights recorded in a :class:`FpgaClaims`
   (by the weight's fingerprint) with the accelerator form of each: a
   :class:`~schedules.subbit.SubBitConv` (PRECOMPUTE + GATHER) or a
   :class:`~schedules.bnn_xnor.BinaryConv` (XNOR).
2. ``FuseOpsByPattern`` with :func:`fpga_patterns` and ``annotate_codegen``
   groups each claimed conv with its epilogue (a per-channel bias, a
   residual add, a ReLU) into a function with ``Codegen = "snn_fpga"``.
   ``MergeCompositeFunctions`` is not used: it takes every function with a
   ``Composite`` attribute for an offload region, the detector's CPU
   composites too, and fails on them.
3. :meth:`FpgaClaims.build` compiles each such function's conv to a program
   (:func:`hw_targets.compiler.compile_conv`), models its cycles and names it
   ``snn_fpga_<hash>`` (the function's structural hash: two models in one
   process never share a name for different code).
4. ``RunCodegen`` calls ``relax.ext.snn_fpga``: it registers, for each
   function, a global packed function of that name that runs the program
   (:class:`FpgaFunction`) and returns no module, so the call sites become
   ``call_dps_packed`` of registered functions. That is the deliberate
   choice: the runtime is Python (the simulator, or the Pynq driver), so it
   cannot live in a C module of the exported library. An artifact carries
   the programs in a sidecar file instead (:func:`save_functions`), which
   ``tvm_snn.load`` checks and registers (:func:`load_functions`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json

import numpy as np
import tvm
import tvm_ffi
from tvm import relax
from tvm.relax.dpl import is_const, is_op, wildcard

from hw_targets.compiler import compile_conv, dram_image, read_output
from hw_targets.cycles import cycles
from hw_targets.driver import SimulatorDevice
from hw_targets.isa import decode_stream
from hw_targets.layer import FpgaConv
from hw_targets.program import Program
from hw_targets.spec import AcceleratorSpec, load_spec
from schedules.bnn_xnor import BinaryConv
from schedules.subbit import SubBitConv
from tvm_snn.errors import FpgaError, FpgaLayerError

__all__ = [
    "CODEGEN",
    "FpgaClaims",
    "FpgaFunction",
    "fpga_patterns",
    "claims_scope",
    "save_functions",
    "load_functions",
]

CODEGEN = "snn_fpga"
SYMBOL_PREFIX = "snn_fpga_"
SIDECAR_FORMAT = "tvm-snn-fpga-functions"
SIDECAR_VERSION = 1
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


# ---- functions -------------------------------------------------------------------


class FpgaFunction:
    """One offloaded function: a conv with its epilogue, compiled, and the packed function that runs it.

    Parameters
    ----------
    symbol : str
        The global name the Relax VM calls.
    layer : FpgaConv
    program : Program
    data_position, residual_position : int, int or None
        Which arguments of the call are the conv's input and the residual.
    key : str
        The claimed weight's key.
    """

    def __init__(self, symbol, layer, program, data_position=0, residual_position=None, key=""):
        self.symbol = symbol
        self.layer = layer
        self.program = program
        self.data_position = data_position
        self.residual_position = residual_position
        self.key = key
        self.cycles = cycles(program)
        self.device = SimulatorDevice()
        self.calls = 0

    @property
    def kind(self) -> str:
        """``"subbit"`` (PRECOMPUTE + GATHER) or ``"bnn"`` (XNOR)."""
        return "subbit" if self.layer.subbit else "bnn"

    def __call__(self, *args):
        """The packed function: the call's inputs, then its output tensor (destination passing)."""
        x = args[self.data_position].numpy()
        residual = None if self.residual_position is None else args[self.residual_position].numpy()
        dram = dram_image(self.program, self.layer, x, residual)
        self.device.run(self.program, dram)
        args[-1].copyfrom(read_output(dram, self.layer))
        self.calls += 1

    def register(self) -> None:
        """Register the packed function under :attr:`symbol` (replacing one of the same name)."""
        tvm_ffi.register_global_func(self.symbol, self.__call__, override=True)


def _inner_composite(func):
    found = []
    relax.analysis.post_order_visit(
        func.body,
        lambda e: (
            found.append(e)
            if isinstance(e, relax.Function) and e.attrs is not None and "Composite" in e.attrs
            else None
        ),
    )
    if len(found) != 1:
        raise FpgaError(f"an {CODEGEN} function must hold one composite, found {len(found)}")
    return found[0]


def _bindings(func):
    body = func.body
    return [b for block in body.blocks for b in block.bindings]


def _outer_positions(outer, inner) -> dict:
    """Outer parameter position of each inner parameter, through the call ``local(...)``."""
    for binding in _bindings(outer):
        value = binding.value
        if isinstance(value, relax.Call) and not isinstance(value.op, (tvm.ir.Op,)):
            positions = {}
            for param, arg in zip(inner.params, value.args, strict=True):
                positions[param] = next(i for i, p in enumerate(outer.params) if p.same_as(arg))
            return positions
    raise FpgaError(f"the {CODEGEN} function does not call its composite")


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


class FpgaClaims:
    """The convs the accelerator takes in one compile, and the functions made from them.

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

    def function(self, outer) -> FpgaFunction:
        """Compile one ``Codegen = "snn_fpga"`` function (not yet named or registered)."""
        inner = _inner_composite(outer)
        conv_call, bias, residual, relu = _epilogue(inner)
        weight = conv_call.args[1].value.numpy()
        key = weight_key(weight)
        conv = self._convs[key]
        if isinstance(conv, SubBitConv) and bias is not None:
            conv = SubBitConv(**{**{f: getattr(conv, f) for f in _SUBBIT_FIELDS}, "bias": bias})
        positions = _outer_positions(outer, inner)
        data = conv_call.args[0]
        input_shape = _dims(data)
        layer = FpgaConv(
            conv,
            input_shape,
            residual=residual is not None,
            relu=relu,
            bias=bias if isinstance(conv, BinaryConv) else None,
        )
        program = compile_conv(layer, self.spec)
        return FpgaFunction(
            "",
            layer,
            program,
            data_position=positions[next(p for p in inner.params if p.same_as(data))],
            residual_position=None if residual is None else positions[residual],
            key=key,
        )

    def build(self, mod):
        """Compile every ``snn_fpga`` function of ``mod`` and name it (:func:`_symbol`); return the module."""
        updates = {}
        for gv, func in mod.functions_items():
            if (
                isinstance(func, relax.Function)
                and func.attrs is not None
                and str(func.attrs.get("Codegen", "")) == CODEGEN
            ):
                built = self.function(func)
                built.symbol = _symbol(built)
                self.functions[built.symbol] = built
                updates[gv] = func.with_attr("global_symbol", built.symbol)
        for gv, func in updates.items():
            mod[gv] = func
        return mod

    def for_function(self, func) -> FpgaFunction:
        """The built function behind a named ``snn_fpga`` function."""
        return self.functions[str(func.attrs["global_symbol"])]

    def use_device(self, device) -> None:
        """Run every function on ``device`` (``run(program, dram)``: the simulator by default, a board's)."""
        for function in self.functions.values():
            function.device = device

    def register(self) -> None:
        """Register every function's packed function (as after a load)."""
        for function in self.functions.values():
            function.register()

    def save(self, path) -> None:
        """Write the functions to ``path`` (:func:`save_functions`)."""
        save_functions(list(self.functions.values()), self.spec, path)

    @classmethod
    def from_file(cls, path) -> FpgaClaims:
        """The functions of a file :meth:`save` wrote (not registered yet)."""
        spec, functions = load_functions(path)
        claims = cls(spec)
        claims.functions = {function.symbol: function for function in functions}
        return claims

    def summary(self) -> str:
        """One line: the accelerator, its convs and their modelled time."""
        total = sum(function.cycles.total for function in self.functions.values())
        kinds = [function.kind for function in self.functions.values()]
        spec = self.spec
        return (
            f"accelerator: snn-fpga '{spec.name}' ({spec.pe_count} PEs at {spec.clock_mhz:g} MHz): "
            f"{kinds.count('subbit')} sub-bit and {kinds.count('bnn')} BNN conv(s), "
            f"{total} cycles modelled ({total / spec.clock_mhz:.1f} us); the rest runs on the CPU"
        )


def _symbol(function: FpgaFunction) -> str:
    """``snn_fpga_<digest>`` of the function's stream, weights and argument order: same code, same name."""
    digest = hashlib.sha256(function.program.stream())
    digest.update(function.key.encode())
    digest.update(function.layer.scale_and_bias().tobytes())
    digest.update(repr((function.data_position, function.residual_position)).encode())
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
    """``RunCodegen``'s callback: register each function's runtime; no module to link."""
    if not _ACTIVE:
        raise FpgaError(
            f"relax.ext.{CODEGEN} runs inside tvm_snn.compile(target='snn-fpga'), with claims in scope"
        )
    claims = _ACTIVE[-1]
    for func in functions:
        claims.for_function(func).register()
    return []


# ---- the artifact's sidecar ------------------------------------------------------


def _layer_record(function: FpgaFunction, number: int, arrays: dict) -> dict:
    layer = function.layer
    conv = layer.conv
    prefix = f"f{number}"
    arrays[f"{prefix}.stream"] = np.frombuffer(function.program.stream(), dtype=np.uint8)
    record = {
        "symbol": function.symbol,
        "kind": function.kind,
        "input_shape": list(layer.input_shape),
        "residual": layer.residual,
        "relu": layer.relu,
        "sign": layer.sign,
        "data_position": function.data_position,
        "residual_position": function.residual_position,
        "stride": list(conv.stride),
        "padding": list(conv.padding),
    }
    if layer.subbit:
        record.update(kernel=list(conv.kernel_size), tau=conv.tau)
        for name in ("codebook", "indices", "alpha"):
            arrays[f"{prefix}.{name}"] = np.asarray(getattr(conv, name))
        if conv.bias is not None:
            arrays[f"{prefix}.bias"] = np.asarray(conv.bias)
    else:
        arrays[f"{prefix}.signs"] = np.asarray(conv.signs)
        arrays[f"{prefix}.alpha"] = np.asarray(conv.alpha)
        if layer.bias is not None:
            arrays[f"{prefix}.bias"] = np.asarray(layer.bias)
    return record


def save_functions(functions, spec: AcceleratorSpec, path) -> None:
    """Write the programs and weights of ``functions`` to ``path`` (an ``.npz``, no pickles)."""
    arrays = {}
    records = [_layer_record(function, number, arrays) for number, function in enumerate(functions)]
    meta = {
        "format": SIDECAR_FORMAT,
        "version": SIDECAR_VERSION,
        "spec": spec.to_dict(),
        "functions": records,
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _rebuild(record: dict, number: int, arrays, spec: AcceleratorSpec) -> FpgaFunction:
    prefix = f"f{number}"
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
        layer_bias = None
    else:
        conv = BinaryConv(
            signs=arrays[f"{prefix}.signs"],
            alpha=arrays[f"{prefix}.alpha"],
            stride=tuple(record["stride"]),
            padding=tuple(record["padding"]),
        )
        layer_bias = bias
    layer = FpgaConv(
        conv,
        tuple(record["input_shape"]),
        residual=record["residual"],
        relu=record["relu"],
        sign=record["sign"],
        bias=layer_bias,
    )
    compiled = compile_conv(layer, spec)
    saved = decode_stream(arrays[f"{prefix}.stream"].tobytes())
    program = Program(spec, compiled.regions, tuple(saved), compiled.info)
    return FpgaFunction(
        record["symbol"], layer, program, record["data_position"], record["residual_position"]
    )


def load_functions(path) -> tuple[AcceleratorSpec, list[FpgaFunction]]:
    """Read a sidecar written by :func:`save_functions`; the functions are not registered yet.

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
    try:
        functions = [
            _rebuild(record, n, arrays, spec) for n, record in enumerate(meta["functions"])
        ]
    except (KeyError, TypeError) as err:
        raise FpgaError(f"{path}: a function record is incomplete: {err}") from None
    return spec, functions
