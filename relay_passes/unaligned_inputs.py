"""AcceptUnalignedInputs: let the model read its inputs where the caller's arrays are.

TVM's compiled kernels assume every buffer argument is 64-byte aligned (the
DLPack import checks it), and a NumPy array rarely is: so a model had to
copy each input into an aligned tensor per call, which costs about as much
as a pooling layer on ImageNet shapes (3.2 MB per image). This pass marks the
kernel parameters that receive a model input as aligned only to their
element size; LLVM then uses unaligned vector moves for them (on x86 as fast
as aligned ones when the data is aligned) and :class:`tvm_snn.CompiledModel`
passes the caller's array itself.

Pipeline position: after the kernels are scheduled (ScheduleSubBitKernels,
ScheduleDenseFallback), before TVM's dataflow lowering. An input is followed
through the bindings that alias it: plain variables, tuples, and ``call_tir``
of a PrimFunc that is a reshape (RewriteDataflowReshape turns those into
views later). An input that reaches anything else (a call to an external or
offloaded function, an in-place call) keeps the aligned copy: the names of the
inputs that may be unaligned are recorded on ``main`` as
:data:`UNALIGNED_INPUTS_ATTR`.
"""

import tvm
from tvm import relax, tirx
from tvm.tirx.buffer import is_buffer_var
from tvm.tirx.transform.common import BufferReplacer

from relay_passes.ir_module import with_updates

UNALIGNED_INPUTS_ATTR = "tvm_snn.unaligned_inputs"
_CALL_TIR = tvm.ir.Op.get("relax.call_tir")
_ALIAS_VALUES = (relax.Var, relax.Tuple, relax.TupleGetItem)


def unaligned_inputs(mod):
    """The names of ``main``'s inputs that the built model may read unaligned (empty before the pass)."""
    attrs = mod["main"].attrs
    if attrs is None or UNALIGNED_INPUTS_ATTR not in attrs:
        return ()
    return tuple(str(name) for name in attrs[UNALIGNED_INPUTS_ATTR])


def _element_aligned(func, positions):
    """``func`` with the buffer parameters at ``positions`` aligned only to their element size."""
    params = list(func.params)
    replace = {
        param: param for param in params if is_buffer_var(param)
    }  # keep the others as they are
    for position in positions:
        old = params[position]
        ty = old.ty
        alignment = max(1, tvm.runtime.DataType(str(ty.dtype)).bits // 8)
        new = tirx.decl_buffer(
            list(ty.shape),
            ty.dtype,
            old.name,
            None,
            list(ty.strides),
            ty.elem_offset,
            ty.storage_scope,
            alignment,
            ty.offset_factor,
            layout=ty.layout,
        )
        replace[old] = new
        params[position] = new
    return tirx.PrimFunc(params, BufferReplacer(replace)(func.body), func.ret_type, func.attrs)


def _trace_inputs(mod, main):
    """Follow ``main``'s inputs: ``({GlobalVar: parameter positions}, names of inputs that must stay aligned)``."""
    roots = {param: {param.name} for param in main.params}
    sites = {}
    aligned = set()
    for block in main.body.blocks:
        for binding in block.bindings:
            value = binding.value
            used = [var for var in relax.analysis.free_vars(value) if var in roots]
            if not used:
                continue
            reached = set().union(*(roots[var] for var in used))
            if isinstance(value, _ALIAS_VALUES):
                roots[binding.var] = reached
            elif isinstance(value, relax.Call) and value.op.same_as(_CALL_TIR):
                callee, args = value.args[0], value.args[1]
                fields = list(args.fields) if isinstance(args, relax.Tuple) else [args]
                direct = set()
                for position, arg in enumerate(fields):
                    if isinstance(arg, relax.Var) and arg in roots:
                        direct.add(position)
                    else:  # an input inside a nested argument: not followed
                        aligned.update(
                            *(roots[var] for var in relax.analysis.free_vars(arg) if var in roots)
                        )
                sites.setdefault(callee, set()).update(direct)
                if relax.analysis.has_reshape_pattern(mod[callee]):
                    roots[binding.var] = reached
            else:
                aligned |= reached
    return sites, aligned


@tvm.transform.module_pass(opt_level=0, name="tvm_snn.AcceptUnalignedInputs")
def AcceptUnalignedInputs(mod, _ctx):  # noqa: N802 (a pass, named as TVM names passes)
    """Mark the kernel parameters that receive a model input as element-aligned; record which inputs may be unaligned."""
    main = mod["main"]
    sites, aligned = _trace_inputs(mod, main)
    updates = {
        gv: _element_aligned(mod[gv], sorted(positions))
        for gv, positions in sites.items()
        if positions
    }
    names = [param.name for param in main.params if param.name not in aligned]
    updates[mod.get_global_var("main")] = main.with_attr(UNALIGNED_INPUTS_ATTR, names)
    return with_updates(mod, updates)
