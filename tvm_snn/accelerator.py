"""The ``snn-fpga`` target: which convs the FPGA accelerator runs, and the passes that hand them over.

``tvm_snn.compile(model, target="snn-fpga")`` (or ``"snn-fpga -config=pynq-z1"``,
``-config=PATH.json``, ``-host=PRESET``) compiles for a CPU host (``x86`` by
default) with the accelerator beside it:

1. :class:`ClaimFpgaConvs` (in the pipeline's offload hook, after detection):
   each sub-bit composite with binary inputs that the accelerator can run
   goes back into the graph as its plain ``conv2d``, claimed in an
   :class:`~hw_targets.byoc.FpgaClaims`: as a sub-bit conv when its tau fits
   the datapath, else as a BNN conv (its weight is +-alpha). The others stay
   composites for the CPU kernels, and their report says why
   (``LayerReport.offload``). A conv the detector left dense (unprofitable on
   the CPU) whose input is binary and whose weight is +-alpha per channel is
   claimed as a BNN conv.
2. ``FuseOpsByPattern`` with the accelerator's patterns, then
   ``MergeCompositeFunctions``: each claimed conv and its epilogue become an
   ``snn_fpga.*`` composite, and connected composites one ``Codegen =
   "snn_fpga"`` region.
3. :class:`BuildFpgaFunctions`: each region's convs are compiled to programs
   and the region named; the convs' reports move onto it (``snn_kernel``
   ``fpga-snn`` or ``fpga-bnn``, with the modelled cycles).
4. After the reports are read, :func:`run_codegen` runs ``RunCodegen``, which
   registers the runtime functions (:mod:`hw_targets.byoc`).

``relay_passes`` never imports ``hw_targets``: this module, one layer up,
joins them.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import tvm
from tvm import relax

from hw_targets.byoc import FpgaClaims, claims_scope, fpga_patterns, is_region
from hw_targets.compiler import compile_conv
from hw_targets.layer import FpgaConv
from hw_targets.spec import AcceleratorSpec, load_spec
from relay_passes.detect_subbit_conv import (
    ATTR_ACTIVATION,
    is_conv,
    is_subbit_composite,
)
from relay_passes.ir_module import rebuilt
from relay_passes.layer_records import (
    ATTR_REPORT,
    dense_records,
    record_report,
    updated_record,
    with_dense_reports,
    with_reports,
)
from relay_passes.lower_subbit_conv import composite_call, composite_conv
from relay_passes.subbit_analysis import is_binary_input
from schedules.bnn_xnor import BinaryConv
from tvm_snn.errors import CompileError, FormatError, FpgaError, FpgaLayerError, TargetError

__all__ = ["FPGA_KIND", "FpgaTarget", "fpga_target", "offload_passes", "run_codegen"]

FPGA_KIND = "snn-fpga"
DEFAULT_HOST = "x86"
KERNEL_NAMES = {"subbit": "fpga-snn", "bnn": "fpga-bnn"}
_OPTIONS = ("config", "host")
PARKED_PREFIX = "tvm_snn.parked."


@dataclass(frozen=True)
class FpgaTarget:
    """A parsed ``snn-fpga`` target: the accelerator's spec and the CPU host's target."""

    spec: AcceleratorSpec
    host: str

    def to_json(self) -> dict:
        return {"kind": FPGA_KIND, "config": self.spec.to_dict(), "host": self.host}


def fpga_target(target) -> FpgaTarget | None:
    """The :class:`FpgaTarget` that ``target`` names, or None for a CPU target.

    Accepted: ``"snn-fpga"`` with the options ``-config=NAME|PATH`` (a preset of
    ``hw_targets.spec.PRESETS`` or a JSON file; ``paper`` by default) and
    ``-host=TARGET`` (the CPU, ``x86`` by default); or a dict
    ``{"kind": "snn-fpga", "config": ..., "host": ...}``.

    Raises
    ------
    TargetError
        An unknown option, or a config that does not load (the spec's error
        is in the message).
    """
    if isinstance(target, dict) and target.get("kind") == FPGA_KIND:
        options = {k: v for k, v in target.items() if k != "kind"}
    elif isinstance(target, str) and target.split()[:1] == [FPGA_KIND]:
        options = {}
        for word in shlex.split(target)[1:]:
            key, _, value = word.lstrip("-").partition("=")
            if not word.startswith("-") or not value:
                raise TargetError(f"snn-fpga option {word!r} must be -key=value")
            options[key] = value
    else:
        return None
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise TargetError(f"unknown snn-fpga option(s) {unknown}; accepted: {', '.join(_OPTIONS)}")
    try:
        spec = load_spec(options.get("config", "paper"))
    except FpgaError as err:
        raise TargetError(f"snn-fpga: {err}") from None
    host = options.get("host", DEFAULT_HOST)
    if not isinstance(host, str):
        raise TargetError(f"snn-fpga: -host must be a CPU target string, got {host!r}")
    return FpgaTarget(spec, host)


def accelerator_form(conv, spec: AcceleratorSpec):
    """What the accelerator runs for a binary-input sub-bit conv: itself, or its BNN form when tau is too wide."""
    if conv.tau <= spec.max_tau:
        return conv
    if tuple(conv.dilation) != (1, 1):
        raise FpgaLayerError(
            f"unsupported dilation {conv.dilation}: the accelerator runs dilation 1"
        )
    return BinaryConv.from_dense(conv.to_dense(), conv.stride, conv.padding)


@relax.expr_functor.mutator
class _Inliner(relax.PyExprMutator):
    """Calls of the claimed composites become their plain conv2d."""

    def __init__(self, mod, claimed):
        super().__init__(mod)
        self.claimed = claimed

    def visit_call_(self, call):
        call = super().visit_call_(call)
        if isinstance(call.op, tvm.ir.GlobalVar) and call.op.name_hint in self.claimed:
            conv = self.claimed[call.op.name_hint]
            return relax.Call(conv.op, [call.args[0], conv.args[1]], conv.attrs)
        return call


@tvm.transform.module_pass(opt_level=0, name="tvm_snn.ClaimFpgaConvs")
class ClaimFpgaConvs:
    """Claim the binary-input sub-bit convs the accelerator can run (see the module docstring)."""

    def __init__(self, claims: FpgaClaims, records: dict):
        self.claims = claims
        self.records = records

    def _decide(self, func):
        """The accelerator's form of the composite's conv, or the reason it stays on the CPU."""
        if str(func.attrs[ATTR_ACTIVATION]) != "binary":
            return None, "float activations: the accelerator takes binary inputs only"
        conv = composite_conv(func)
        shape = tuple(int(d) for d in func.params[0].ty.shape)
        try:
            form = accelerator_form(conv, self.claims.spec)
            compile_conv(FpgaConv(form, shape), self.claims.spec)  # tiling must fit too
        except FpgaLayerError as err:
            return None, str(err)
        return form, ""

    def _bnn_form(self, call, shape):
        """The BNN form of a dense conv with a binary input and a +-alpha weight, or the reason there is none."""
        attrs = call.attrs
        if int(attrs.groups) != 1 or any(int(d) != 1 for d in attrs.dilation):
            return None, "grouped or dilated: the accelerator runs groups 1, dilation 1"
        weight = call.args[1].value.numpy()
        try:
            form = BinaryConv.from_dense(
                weight, tuple(int(v) for v in attrs.strides), tuple(int(v) for v in attrs.padding)
            )
            compile_conv(FpgaConv(form, shape), self.claims.spec)
        except (FormatError, FpgaLayerError) as err:
            return None, str(err)
        return form, ""

    def _claim_dense(self, mod):
        """Claim the BNN convs the detector left dense (binary input, +-alpha weight); move their records."""
        gv = mod.get_global_var("main")
        main = mod[gv]
        records = dense_records(main)
        if not records:
            return
        by_var = {record_report(text).name.split(":", 1)[-1]: text for text in records}
        var2val = relax.analysis.get_var2val(main)
        kept = list(records)
        for var, value in var2val.items():
            text = by_var.get(str(var.name))
            if (
                text is None
                or not is_conv(value)
                or not isinstance(value.args[1], tvm.ir.GenericConst)
            ):
                continue
            if not is_binary_input(value.args[0], var2val):
                continue
            weight = value.args[1].value.numpy()
            if self.claims.claim_for(weight) is not None:
                continue
            form, reason = self._bnn_form(value, tuple(int(d) for d in value.args[0].ty.shape))
            kept.remove(text)
            if form is None:
                kept.append(updated_record(text, offload=reason))
                continue
            self.claims.claim(weight, form)
            lowered = updated_record(
                text,
                lowered=True,
                reason="",
                stored_bytes=form.signs.size // 8 + 8 * form.signs.shape[0],
            )
            self.records.setdefault(self.claims.key_of(weight), []).append(lowered)
        mod[gv] = with_dense_reports(main, kept)

    def transform_module(self, mod, _ctx):
        self._claim_dense(mod)
        claimed, refused = {}, {}
        for gv, func in mod.functions_items():
            if not is_subbit_composite(func):
                continue
            form, reason = self._decide(func)
            if form is None:
                refused[gv] = func.with_attr(
                    ATTR_REPORT, updated_record(func.attrs[ATTR_REPORT], offload=reason)
                )
                continue
            call = composite_call(func)
            weight = call.args[1].value.numpy()
            self.claims.claim(weight, form)
            self.records.setdefault(self.claims.key_of(weight), []).append(
                str(func.attrs[ATTR_REPORT])
            )
            claimed[gv.name_hint] = call
        for gv, func in refused.items():
            mod[gv] = func
        if not claimed:
            return mod
        inliner = _Inliner(mod, claimed)
        for gv, func in list(mod.functions_items()):
            if isinstance(func, relax.Function) and not is_subbit_composite(func):
                inliner.builder_.update_func(gv, inliner.visit_expr(func))
        inlined = inliner.builder_.get()
        return rebuilt(
            inlined, {gv: f for gv, f in inlined.functions_items() if gv.name_hint not in claimed}
        )


@tvm.transform.module_pass(opt_level=0, name="tvm_snn.BuildFpgaFunctions")
class BuildFpgaFunctions:
    """Compile and name the ``snn_fpga`` regions; move each claimed conv's report onto its region."""

    def __init__(self, claims: FpgaClaims, records: dict):
        self.claims = claims
        self.records = records

    def transform_module(self, mod, _ctx):
        mod = self.claims.build(mod)
        for gv, func in list(mod.functions_items()):
            if not is_region(func):
                continue
            reports = []
            for step in self.claims.for_function(func).steps:
                record = self.records[step.key].pop(0)
                reports.append(
                    updated_record(
                        record, snn_kernel=KERNEL_NAMES[step.kind], cycles=step.cycles.total
                    )
                )
            mod[gv] = with_reports(func, reports)
        left = sum(len(records) for records in self.records.values())
        if left:
            raise CompileError(
                f"{left} claimed conv(s) were not taken by the accelerator's patterns"
            )
        return mod


def _conv_key(call) -> tuple:
    """What tells a parked conv from another: its weight's digest, input shape, strides and padding."""
    attrs = call.attrs
    return (
        FpgaClaims.key_of(call.args[1].value.numpy()),
        tuple(int(d) for d in call.args[0].ty.shape),
        tuple(int(v) for v in attrs.strides),
        tuple(int(v) for v in attrs.padding),
    )


@relax.expr_functor.mutator
class _Rewrapper(relax.PyExprMutator):
    """The parked convs' plain ``conv2d`` calls become calls of their composites again."""

    def __init__(self, mod, by_key):
        super().__init__(mod)
        self.by_key = by_key

    def visit_extern_func_(self, op):
        return op

    def visit_call_(self, call):
        call = super().visit_call_(call)
        if is_conv(call) and isinstance(call.args[1], tvm.ir.GenericConst):
            gv = self.by_key.get(_conv_key(call))
            if gv is not None:
                return relax.Call(gv, [call.args[0]])
        return call


def composites_parked(inner):
    """``inner`` run with the detector's CPU composites inlined as plain convs, then put back.

    TVM's ``MergeCompositeFunctions`` fails on a module that holds the
    detector's composites, and ``RunCodegen`` takes every call of a function
    with a ``Composite`` attribute for an offload (it would look for
    ``relax.ext.tvm_snn``). So while ``inner`` runs, those composites' calls are
    their plain ``conv2d`` (which the accelerator's patterns do not take: their
    weights are not claimed), and the composites wait outside the module.
    """

    @tvm.transform.module_pass(opt_level=0, name=f"tvm_snn.Parked({inner.info.name})")
    def run(mod, _ctx):
        parked = {gv: func for gv, func in mod.functions_items() if is_subbit_composite(func)}
        if not parked:
            return inner(mod)
        convs = {gv.name_hint: composite_call(func) for gv, func in parked.items()}
        inliner = _Inliner(mod, convs)
        main = mod.get_global_var("main")
        inliner.builder_.update_func(main, inliner.visit_expr(mod[main]))
        bare = inliner.builder_.get()
        bare = rebuilt(bare, {gv: f for gv, f in bare.functions_items() if gv not in parked})
        done = inner(bare)
        back = rebuilt(done, {**dict(done.functions_items()), **parked})
        by_key = {
            _conv_key(convs[gv.name_hint]): gv for gv in parked
        }  # its data has the call's shape
        rewrapper = _Rewrapper(back, by_key)
        rewrapper.builder_.update_func(main, rewrapper.visit_expr(back[main]))
        return rewrapper.builder_.get()

    return run


def offload_passes(claims: FpgaClaims) -> list:
    """The offload hook's passes for ``claims`` (see the module docstring)."""
    records: dict = {}
    regions = tvm.transform.Sequential(
        [
            relax.transform.FuseOpsByPattern(
                fpga_patterns(claims), bind_constants=True, entry_functions=["main"]
            ),
            relax.transform.MergeCompositeFunctions(),
        ],
        name="tvm_snn.FpgaRegions",
    )
    return [
        ClaimFpgaConvs(claims, records),
        composites_parked(regions),
        BuildFpgaFunctions(claims, records),
    ]


def run_codegen(mod, claims: FpgaClaims):
    """``RunCodegen`` with ``claims`` in scope: the ``snn_fpga`` calls become registered packed calls."""
    with claims_scope(claims):
        return composites_parked(relax.transform.RunCodegen())(mod)
