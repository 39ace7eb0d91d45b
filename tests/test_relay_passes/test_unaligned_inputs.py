"""AcceptUnalignedInputs: kernel parameters fed by a model input are element-aligned, on hand-written IR."""

import tvm
from tvm.script import ir as I
from tvm.script import relax as R
from tvm.script import tirx as T

from relay_passes.unaligned_inputs import AcceptUnalignedInputs, unaligned_inputs


@I.ir_module
class TwoKernelsBefore:
    """``x -> relu -> add(relu(x), x)``: the input feeds both kernels, ``y`` is internal."""

    @T.prim_func(private=True, s_tir=True)
    def relu(x: T.Buffer((4, 16), "float32"), y: T.Buffer((4, 16), "float32")):
        T.func_attr({"tirx.noalias": True})
        for i, j in T.grid(4, 16):
            with T.sblock("relu"):
                vi, vj = T.axis.remap("SS", [i, j])
                y[vi, vj] = T.max(x[vi, vj], T.float32(0))

    @T.prim_func(private=True, s_tir=True)
    def add(a: T.Buffer((4, 16), "float32"), b: T.Buffer((4, 16), "float32"), c: T.Buffer((4, 16), "float32")):
        T.func_attr({"tirx.noalias": True})
        for i, j in T.grid(4, 16):
            with T.sblock("add"):
                vi, vj = T.axis.remap("SS", [i, j])
                c[vi, vj] = a[vi, vj] + b[vi, vj]

    @R.function
    def main(x: R.Tensor((4, 16), "float32")) -> R.Tensor((4, 16), "float32"):
        cls = TwoKernelsBefore
        with R.dataflow():
            y = R.call_tir(cls.relu, (x,), out_ty=R.Tensor((4, 16), "float32"))
            z = R.call_tir(cls.add, (y, x), out_ty=R.Tensor((4, 16), "float32"))
            R.output(z)
        return z


@I.ir_module
class TwoKernelsExpected:
    """relu's ``x`` and add's ``b`` (the input) are 4-byte aligned; add's ``a`` keeps TVM's 64."""

    @T.prim_func(private=True, s_tir=True)
    def relu(x: T.Buffer((4, 16), "float32", align=4), y: T.Buffer((4, 16), "float32")):
        T.func_attr({"tirx.noalias": True})
        for i, j in T.grid(4, 16):
            with T.sblock("relu"):
                vi, vj = T.axis.remap("SS", [i, j])
                y[vi, vj] = T.max(x[vi, vj], T.float32(0))

    @T.prim_func(private=True, s_tir=True)
    def add(
        a: T.Buffer((4, 16), "float32"), b: T.Buffer((4, 16), "float32", align=4), c: T.Buffer((4, 16), "float32")
    ):
        T.func_attr({"tirx.noalias": True})
        for i, j in T.grid(4, 16):
            with T.sblock("add"):
                vi, vj = T.axis.remap("SS", [i, j])
                c[vi, vj] = a[vi, vj] + b[vi, vj]

    @R.function
    def main(x: R.Tensor((4, 16), "float32")) -> R.Tensor((4, 16), "float32"):
        R.func_attr({"tvm_snn.unaligned_inputs": ["x"]})
        cls = TwoKernelsExpected
        with R.dataflow():
            y = R.call_tir(cls.relu, (x,), out_ty=R.Tensor((4, 16), "float32"))
            z = R.call_tir(cls.add, (y, x), out_ty=R.Tensor((4, 16), "float32"))
            R.output(z)
        return z


@I.ir_module
class ReshapeAliasBefore:
    """``relu(reshape(x))``: the reshape becomes a view of ``x``, so relu reads the input too."""

    @T.prim_func(private=True, s_tir=True)
    def reshape(x: T.Buffer((4, 16), "float32"), y: T.Buffer((64,), "float32")):
        T.func_attr({"tirx.noalias": True})
        for i in range(64):
            with T.sblock("T_reshape"):
                vi = T.axis.spatial(64, i)
                y[vi] = x[vi // 16, vi % 16]

    @T.prim_func(private=True, s_tir=True)
    def relu(x: T.Buffer((64,), "float32"), y: T.Buffer((64,), "float32")):
        T.func_attr({"tirx.noalias": True})
        for i in range(64):
            with T.sblock("relu"):
                vi = T.axis.spatial(64, i)
                y[vi] = T.max(x[vi], T.float32(0))

    @R.function
    def main(x: R.Tensor((4, 16), "float32")) -> R.Tensor((64,), "float32"):
        cls = ReshapeAliasBefore
        with R.dataflow():
            flat = R.call_tir(cls.reshape, (x,), out_ty=R.Tensor((64,), "float32"))
            y = R.call_tir(cls.relu, (flat,), out_ty=R.Tensor((64,), "float32"))
            R.output(y)
        return y


@I.ir_module
class ReshapeAliasExpected:
    @T.prim_func(private=True, s_tir=True)
    def reshape(x: T.Buffer((4, 16), "float32", align=4), y: T.Buffer((64,), "float32")):
        T.func_attr({"tirx.noalias": True})
        for i in range(64):
            with T.sblock("T_reshape"):
                vi = T.axis.spatial(64, i)
                y[vi] = x[vi // 16, vi % 16]

    @T.prim_func(private=True, s_tir=True)
    def relu(x: T.Buffer((64,), "float32", align=4), y: T.Buffer((64,), "float32")):
        T.func_attr({"tirx.noalias": True})
        for i in range(64):
            with T.sblock("relu"):
                vi = T.axis.spatial(64, i)
                y[vi] = T.max(x[vi], T.float32(0))

    @R.function
    def main(x: R.Tensor((4, 16), "float32")) -> R.Tensor((64,), "float32"):
        R.func_attr({"tvm_snn.unaligned_inputs": ["x"]})
        cls = ReshapeAliasExpected
        with R.dataflow():
            flat = R.call_tir(cls.reshape, (x,), out_ty=R.Tensor((64,), "float32"))
            y = R.call_tir(cls.relu, (flat,), out_ty=R.Tensor((64,), "float32"))
            R.output(y)
        return y


@I.ir_module
class ExternalCallBefore:
    """``x`` goes to an external function (code this pass cannot change), ``w`` to a kernel."""

    @T.prim_func(private=True, s_tir=True)
    def relu(x: T.Buffer((16,), "float32"), y: T.Buffer((16,), "float32")):
        T.func_attr({"tirx.noalias": True})
        for i in range(16):
            with T.sblock("relu"):
                vi = T.axis.spatial(16, i)
                y[vi] = T.max(x[vi], T.float32(0))

    @R.function
    def main(x: R.Tensor((16,), "float32"), w: R.Tensor((16,), "float32")) -> R.Tensor((16,), "float32"):
        cls = ExternalCallBefore
        with R.dataflow():
            a = R.call_dps_packed("some_external_kernel", (x,), out_ty=R.Tensor((16,), "float32"))
            b = R.call_tir(cls.relu, (w,), out_ty=R.Tensor((16,), "float32"))
            c = R.add(a, b)
            R.output(c)
        return c


@I.ir_module
class ExternalCallExpected:
    @T.prim_func(private=True, s_tir=True)
    def relu(x: T.Buffer((16,), "float32", align=4), y: T.Buffer((16,), "float32")):
        T.func_attr({"tirx.noalias": True})
        for i in range(16):
            with T.sblock("relu"):
                vi = T.axis.spatial(16, i)
                y[vi] = T.max(x[vi], T.float32(0))

    @R.function
    def main(x: R.Tensor((16,), "float32"), w: R.Tensor((16,), "float32")) -> R.Tensor((16,), "float32"):
        R.func_attr({"tvm_snn.unaligned_inputs": ["w"]})
        cls = ExternalCallExpected
        with R.dataflow():
            a = R.call_dps_packed("some_external_kernel", (x,), out_ty=R.Tensor((16,), "float32"))
            b = R.call_tir(cls.relu, (w,), out_ty=R.Tensor((16,), "float32"))
            c = R.add(a, b)
            R.output(c)
        return c


def test_input_parameters_are_element_aligned():
    tvm.ir.assert_structural_equal(AcceptUnalignedInputs(TwoKernelsBefore), TwoKernelsExpected)


def test_a_reshape_view_of_the_input_is_followed():
    tvm.ir.assert_structural_equal(AcceptUnalignedInputs(ReshapeAliasBefore), ReshapeAliasExpected)


def test_an_input_reaching_external_code_stays_aligned():
    after = AcceptUnalignedInputs(ExternalCallBefore)
    tvm.ir.assert_structural_equal(after, ExternalCallExpected)
    assert unaligned_inputs(after) == ("w",)


def test_no_record_before_the_pass():
    assert unaligned_inputs(TwoKernelsBefore) == ()
