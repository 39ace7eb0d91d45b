"""The sub-bit TensorIR kernel cross-compiled for aarch64 and ARMv7, run under qemu-user.

Each kernel is built for the ``aarch64`` or ``pynq`` preset, called by the C
harness of :mod:`tvm_snn.deploy` and compared with the NumPy reference. The kernels
have parallel loops, so the harness's TVMBackendParallelLaunch runs too.
"""

import dataclasses

import numpy as np
import pytest
from bnn_helpers import random_binary_conv
from test_schedules import subbit_strategies
from tvm import te

from schedules.bnn_xnor import bnn_reference
from schedules.bnn_xnor import build_kernel as build_bnn_kernel
from schedules.cpu import CpuSpec
from schedules.kernels import build_scheduled
from schedules.reference import accumulate_binary, conv2d_reference
from schedules.subbit import KERNEL_1X1, KERNEL_3X3
from tvm_snn.deploy.archs import ARCHS, check_emulator, qemu_arch
from tvm_snn.deploy.ffi_library import FFI_WHEEL
from tvm_snn.deploy.harness import build_harness
from tvm_snn.deploy.qemu import run_under_qemu
from tvm_snn.errors import InputError, QemuRunError, TargetError, ToolchainError

from common import KERNEL_ATOL, KERNEL_RTOL

BATCH = 1
TAU = 5
IN_CHANNELS = 16
OUT_CHANNELS = 12
IMAGE_HW = (9, 10)
SHORT_TIMEOUT_S = 1e-3
DTYPES_SHAPE = (3, 5)

GEOMETRIES = {
    "3x3-s1": (KERNEL_3X3, {"padding": 1}),
    "3x3-s2": (KERNEL_3X3, {"padding": 1, "stride": 2}),
    "1x1-s1": (KERNEL_1X1, {}),
    "1x1-s2": (KERNEL_1X1, {"stride": 2}),
}


def make_conv(kernel, seed, activation="float", bias=True, **geometry):
    return subbit_strategies.make_conv(
        kernel, TAU, IN_CHANNELS, OUT_CHANNELS, seed, activation, bias, **geometry
    )


def make_input(seed, activation):
    return subbit_strategies.make_input((BATCH, IN_CHANNELS, *IMAGE_HW), seed, activation)


# The register blocking of NEON's 16-byte vectors, on two cores.
NEON = CpuSpec(num_cores=2, vector_bytes=16)


def run_kernel(conv, x, arch, **options):
    kernel = build_scheduled(conv, x.shape, NEON)
    (out,) = run_under_qemu(
        kernel.func, arch, [x, *kernel.constants], [(kernel.out_shape, "float32")], **options
    )
    return out


@pytest.mark.qemu
@pytest.mark.parametrize("activation", ["float", "binary"])
@pytest.mark.parametrize("geometry", list(GEOMETRIES))
@pytest.mark.parametrize("arch", list(ARCHS))
def test_kernel_matches_reference(arch, geometry, activation):
    kernel, options = GEOMETRIES[geometry]
    conv = make_conv(kernel, seed=len(geometry), activation=activation, **options)
    x = make_input(seed=TAU, activation=activation)
    np.testing.assert_allclose(
        run_kernel(conv, x, arch), conv2d_reference(x, conv), rtol=KERNEL_RTOL, atol=KERNEL_ATOL
    )


@pytest.mark.qemu
@pytest.mark.parametrize("geometry", ["3x3-s1", "1x1-s2"])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_binary_accumulator_is_bit_exact(arch, geometry):
    """With alpha = 1 and no bias, the float output is the int32 accumulator itself."""
    kernel, options = GEOMETRIES[geometry]
    conv = make_conv(kernel, seed=TAU, activation="binary", bias=False, **options)
    unit_alpha = dataclasses.replace(conv, alpha=np.ones(OUT_CHANNELS, np.float32))
    x = make_input(seed=IN_CHANNELS, activation="binary")
    expected = accumulate_binary(x, unit_alpha).astype(np.float32)
    np.testing.assert_array_equal(run_kernel(unit_alpha, x, arch), expected)


@pytest.mark.qemu
@pytest.mark.parametrize("num_threads", [1, 3])
def test_thread_counts_give_the_same_result(num_threads):
    conv = make_conv(KERNEL_3X3, seed=num_threads, padding=1)
    x = make_input(seed=num_threads, activation="float")
    out = run_kernel(conv, x, "armv7", num_threads=num_threads)
    np.testing.assert_allclose(out, conv2d_reference(x, conv), rtol=KERNEL_RTOL, atol=KERNEL_ATOL)


@pytest.mark.qemu
def test_real_libtvm_ffi_on_aarch64():
    """The kernel also runs with PyPI's aarch64 libtvm_ffi.so (fetched once into the cache)."""
    conv = make_conv(KERNEL_1X1, seed=1, activation="float", stride=2)
    x = make_input(seed=1, activation="float")
    out = run_kernel(conv, x, "aarch64", ffi=FFI_WHEEL)
    np.testing.assert_allclose(out, conv2d_reference(x, conv), rtol=KERNEL_RTOL, atol=KERNEL_ATOL)


def mixed_dtype_func():
    """Inputs int8, uint8, int32, float32; outputs int32 (a + b + c) and float32 (d * a)."""
    a = te.placeholder(DTYPES_SHAPE, "int8", "a")
    b = te.placeholder(DTYPES_SHAPE, "uint8", "b")
    c = te.placeholder(DTYPES_SHAPE, "int32", "c")
    d = te.placeholder(DTYPES_SHAPE, "float32", "d")
    total = te.compute(
        DTYPES_SHAPE, lambda i, j: a[i, j].astype("int32") + b[i, j].astype("int32") + c[i, j]
    )
    scaled = te.compute(DTYPES_SHAPE, lambda i, j: d[i, j] * a[i, j].astype("float32"))
    return te.create_prim_func([a, b, c, d, total, scaled])


@pytest.mark.qemu
@pytest.mark.parametrize("arch", list(ARCHS))
def test_any_number_of_args_and_dtypes(arch):
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, DTYPES_SHAPE, dtype=np.int8)
    b = rng.integers(0, 256, DTYPES_SHAPE, dtype=np.uint8)
    c = rng.integers(-(2**30), 2**30, DTYPES_SHAPE, dtype=np.int32)
    d = rng.standard_normal(DTYPES_SHAPE).astype(np.float32)
    outputs = [(DTYPES_SHAPE, "int32"), (DTYPES_SHAPE, "float32")]
    total, scaled = run_under_qemu(mixed_dtype_func(), arch, [a, b, c, d], outputs)
    np.testing.assert_array_equal(total, a.astype(np.int32) + b + c)
    np.testing.assert_array_equal(scaled, d * a.astype(np.float32))


@pytest.mark.qemu
@pytest.mark.parametrize("arch", list(ARCHS))
def test_kernel_error_is_typed_and_carries_the_message(arch):
    conv = make_conv(KERNEL_1X1, seed=0)
    x = make_input(seed=0, activation="float")
    kernel = build_scheduled(conv, x.shape)
    wrong = x[..., 1:]
    with pytest.raises(QemuRunError, match=r"Invalid data\.shape\[3\] on argument #0"):
        run_under_qemu(
            kernel.func, arch, [wrong, *kernel.constants], [(kernel.out_shape, "float32")]
        )


@pytest.mark.qemu
def test_missing_entry_and_timeout_are_typed():
    func = mixed_dtype_func()
    zeros = [np.zeros(DTYPES_SHAPE, dtype) for dtype in ("int8", "uint8", "int32", "float32")]
    outputs = [(DTYPES_SHAPE, "int32"), (DTYPES_SHAPE, "float32")]
    with pytest.raises(QemuRunError, match="no symbol __tvm_ffi_absent"):
        run_under_qemu(func, "aarch64", zeros, outputs, entry="absent")
    with pytest.raises(QemuRunError, match="did not finish"):
        run_under_qemu(func, "aarch64", zeros, outputs, timeout=SHORT_TIMEOUT_S)


@pytest.mark.qemu
def test_harness_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("TVM_SNN_QEMU_CACHE", str(tmp_path))
    first = build_harness("pynq")
    stamp = first.executable.stat().st_mtime_ns
    assert build_harness("armv7") == first
    assert first.executable.stat().st_mtime_ns == stamp
    assert first.executable.parent.parent == tmp_path


def test_missing_qemu_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainError, match=qemu_arch("aarch64").qemu_package):
        check_emulator("aarch64")


def test_bad_arguments_are_typed():
    func = mixed_dtype_func()
    with pytest.raises(TargetError, match="no qemu support for arch 'riscv64'"):
        run_under_qemu(func, "riscv64", [], [])
    with pytest.raises(InputError, match="input 0 has dtype float64"):
        run_under_qemu(func, "aarch64", [np.zeros(DTYPES_SHAPE)], [])
    with pytest.raises(InputError, match=r"output 0 must be a \(shape, dtype\) pair"):
        run_under_qemu(func, "aarch64", [], [DTYPES_SHAPE])


@pytest.mark.qemu
@pytest.mark.parametrize(
    ("kernel", "geometry"), [(3, {"padding": 1}), (3, {"padding": 1, "stride": 2}), (1, {})]
)
@pytest.mark.parametrize("arch", list(ARCHS))
def test_bnn_kernel_is_bit_exact(arch, kernel, geometry):
    """The BNN XOR/popcount baseline on ARM (NEON ``cnt``), against the NumPy reference."""
    conv = random_binary_conv(OUT_CHANNELS, 40, kernel, seed=kernel, **geometry)
    x = np.random.default_rng(kernel).standard_normal((BATCH, 40, *IMAGE_HW)).astype(np.float32)
    func, constants, out_shape = build_bnn_kernel(conv, x.shape)
    (out,) = run_under_qemu(func, arch, [x, *constants], [(out_shape, "float32")])
    np.testing.assert_array_equal(out, bnn_reference(x, conv))
