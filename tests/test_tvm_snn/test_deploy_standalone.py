"""The standalone artifact: the model as a C program on libc, on x86 and under qemu for ARM.

- the program read from a hand-built Relax module, and its memory plan, by hand;
- that module built, run, and checked against NumPy;
- the CIFAR ResNet-18 of ``tests/snn_models`` at 0.56/32 and 0.56/1: bit for bit
  equal to ``CompiledModel`` on x86, and under qemu-aarch64 and qemu-arm equal to
  the host (float tolerance on the float model; the dyadic binary model exactly);
- the typed errors: control flow, dynamic shapes, an op the driver cannot run,
  a folder in the way, a loaded artifact, a changed file, wrong inputs.
"""

import functools
import subprocess

import numpy as np
import pytest
import torch
import tvm
from snn_models import make_dyadic_, quantize_, randomize_bn_, resnet18_cifar
from tvm import relax, tirx, topi
from tvm.script import relax as R

import tvm_snn
from tvm_snn.deploy.archs import ARCHS
from tvm_snn.deploy.program import ACTIVATION, CONSTANT, INPUT, Step, plan_memory, read_program
from tvm_snn.deploy.standalone import export_standalone, load_standalone
from tvm_snn.errors import InputError, StandaloneError
from tvm_snn.target import parse_target

from common import FLOAT_ATOL, FLOAT_RTOL

CIFAR_SHAPE = (1, 3, 32, 32)
HOST = "x86"
PRESETS = {"aarch64": "aarch64", "armv7": "pynq"}
EXIT_USAGE = 2  # snn_main.c: bad arguments or files


def chain_module():
    """``main(x) = (relu(reshape(x + c, 8)), x + c)`` with two TE kernels and a reshape view."""
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([2, 4], "float32"))
    c = relax.const(np.arange(8, dtype=np.float32).reshape(2, 4) - 4)
    with builder.function("main", [x]):
        with builder.dataflow():
            a = builder.emit_te(topi.add, x, c, primfunc_name_hint="add")
            b = builder.emit(relax.op.reshape(a, (8,)))
            y = builder.emit_te(topi.nn.relu, b, primfunc_name_hint="relu")
            out = builder.emit_output(relax.Tuple([y, a]))
        builder.emit_func_output(out)
    return builder.get()


def chain_build():
    """The chain module and its executable."""
    mod = chain_module()
    return mod, tvm.compile(mod, target=parse_target(HOST))


def test_program_of_a_hand_built_module():
    program = read_program(chain_module())
    roles = [(t.role, t.shape, t.base) for t in program.tensors]
    assert roles == [
        (INPUT, (2, 4), None),
        (CONSTANT, (2, 4), None),
        (ACTIVATION, (2, 4), None),
        (ACTIVATION, (8,), 2),  # the reshape: a view of tensor 2
        (ACTIVATION, (8,), None),
    ]
    assert program.steps == [Step("add", (0, 1, 2)), Step("relu", (3, 4))]
    assert program.inputs == [0] and program.outputs == [4, 2]


def test_memory_plan_reuses_the_input_s_bytes():
    # Live steps: x (-1..0), a (0..2: an output), y (1..2). Each takes one 64-byte slot.
    # x and a meet at step 0, a and y at 1 and 2; y may take x's slot.
    plan = plan_memory(read_program(chain_module()))
    assert plan.offsets == {0: 0, 2: 64, 4: 0}
    assert plan.arena_bytes == 128 and plan.unplanned_bytes == 192


def test_memory_plan_never_overlaps_live_tensors():
    program = read_program(compiled(False, HOST)[1]._scheduled)
    plan = plan_memory(program)
    live = {}
    for position, step in enumerate(program.steps):
        for index in step.args:
            base = program.storage(index)
            if program.tensors[base].role != CONSTANT:
                live.setdefault(base, []).append(position)
    for index in program.inputs:
        live[index].append(-1)
    spans = {i: (min(s), max(s)) for i, s in live.items()}
    for i, (f0, l0) in spans.items():
        for j, (f1, l1) in spans.items():
            if i < j and f0 <= l1 and f1 <= l0:
                a0, b0 = plan.offsets[i], plan.offsets[j]
                assert a0 + program.tensors[i].nbytes <= b0 or b0 + program.tensors[j].nbytes <= a0
    assert plan.arena_bytes < plan.unplanned_bytes


def test_hand_built_module_runs_standalone(tmp_path):
    export_standalone(*chain_build(), HOST, tmp_path / "m", build=False)
    strict = "CFLAGS=-O2 -Wall -Wextra -Werror -pedantic"  # the driver compiles without a warning
    subprocess.run(["make", "-C", str(tmp_path / "m"), strict], check=True, capture_output=True)
    artifact = load_standalone(tmp_path / "m")
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    (y, a), _ = artifact.run([x])
    c = np.arange(8, dtype=np.float32).reshape(2, 4) - 4
    np.testing.assert_array_equal(a, x + c)
    np.testing.assert_array_equal(y, np.maximum((x + c).reshape(8), 0))
    assert artifact.arena_bytes == 128 and artifact.steps == 2


def cifar_resnet18(binary, width=64):
    torch.manual_seed(0)
    model = resnet18_cifar(width=width, binary=binary)
    quantize_(model)
    (make_dyadic_ if binary else randomize_bn_)(model)
    return model.eval()


def cifar_input(binary, seed=1):
    x = np.random.default_rng(seed).standard_normal(CIFAR_SHAPE).astype(np.float32)
    return np.round(x * 8) / 8 if binary else x  # dyadic: the binary model's signs are exact


@functools.cache  # one compile per model and target for the whole module
def compiled(binary, target, width=64):
    model = cifar_resnet18(binary, width)
    x = cifar_input(binary)
    return x, tvm_snn.compile(model, target=target, example_inputs=(torch.from_numpy(x),))


@pytest.mark.parametrize("binary", [False, True], ids=["0.56-32", "0.56-1"])
def test_cifar_resnet18_is_bit_exact_on_x86(tmp_path, binary):
    x, cm = compiled(binary, HOST)
    artifact = cm.export_standalone(tmp_path / "m")
    (out,), median = artifact.run([x], repeat=3)
    np.testing.assert_array_equal(out, cm(x))
    assert median is not None and median > 0
    assert artifact.arena_bytes < artifact.unplanned_bytes
    assert artifact.weight_bytes > 0 and artifact.program_bytes > artifact.weight_bytes


@pytest.mark.qemu
@pytest.mark.parametrize("binary", [False, True], ids=["0.56-32", "0.56-1"])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_cifar_resnet18_under_qemu_matches_the_host(tmp_path, arch, binary):
    x, host = compiled(binary, HOST)
    _, board = compiled(binary, PRESETS[arch])
    artifact = board.export_standalone(tmp_path / "m")
    assert artifact.arch == arch
    (out,), _ = artifact.run([x])
    if binary:  # dyadic: every sum is exact, in any order, on any instruction set
        np.testing.assert_array_equal(out, host(x))
    else:
        np.testing.assert_allclose(out, host(x), rtol=FLOAT_RTOL, atol=FLOAT_ATOL)


def test_the_program_refuses_a_wrong_npy(tmp_path):
    artifact = export_standalone(*chain_build(), HOST, tmp_path / "m")
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((4, 2), np.float32))
    done = subprocess.run(
        [str(artifact.program), str(wrong), str(tmp_path / "y.npy"), str(tmp_path / "a.npy")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == EXIT_USAGE
    assert "has shape (4, 2); input x needs (2, 4)" in done.stderr
    np.save(wrong, np.zeros((2, 4), np.float64))
    done = subprocess.run(
        [str(artifact.program), str(wrong), str(tmp_path / "y.npy"), str(tmp_path / "a.npy")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == EXIT_USAGE and "'<f8'" in done.stderr


def test_wrong_inputs_and_a_changed_file_are_refused(tmp_path):
    artifact = export_standalone(*chain_build(), HOST, tmp_path / "m")
    with pytest.raises(InputError, match="input 'x' must be float32\\[2, 4\\]"):
        artifact.run([np.zeros((2, 5), np.float32)])
    with pytest.raises(InputError, match="takes 1 input"):
        artifact.run([])
    (tmp_path / "m" / "weights.bin").write_bytes(b"\0" * 64)
    with pytest.raises(StandaloneError, match="weights.bin does not match"):
        load_standalone(tmp_path / "m")


def test_control_flow_is_refused():
    @R.function
    def main(x: R.Tensor((2, 4), "float32"), c: R.Tensor((), "bool")) -> R.Tensor(
        (2, 4), "float32"
    ):
        if c:
            y = x
        else:
            y = x
        return y

    with pytest.raises(StandaloneError, match="binding y: control flow"):
        read_program(tvm.IRModule({"main": main}))


def test_dynamic_shapes_are_refused():
    n = tirx.Var("n", "int64")
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([n, 4], "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            out = builder.emit_output(builder.emit_te(topi.nn.relu, x))
        builder.emit_func_output(out)
    with pytest.raises(StandaloneError, match="input x: shape .* is dynamic"):
        read_program(builder.get())


def test_an_op_the_driver_cannot_run_is_refused():
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([2, 4], "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            out = builder.emit_output(relax.op.add(x, x))  # not legalized to a kernel
        builder.emit_func_output(out)
    with pytest.raises(StandaloneError, match="the op relax.add cannot run"):
        read_program(builder.get())


def test_a_folder_in_the_way_and_a_loaded_artifact_are_refused(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(StandaloneError, match="not an empty folder"):
        export_standalone(*chain_build(), HOST, tmp_path / "full")
    _, cm = compiled(False, HOST)
    cm.export_library(tmp_path / "m.so")
    with pytest.raises(StandaloneError, match="loaded from an artifact"):
        tvm_snn.load(tmp_path / "m.so").export_standalone(tmp_path / "s")
