"""Run cross-compiled TensorIR kernels under qemu-user and read their outputs back.

A kernel (a PrimFunc, an IRModule or a ``tvm.compile`` Executable) is built
for ``aarch64`` (preset ``"aarch64"``) or ``armv7`` (preset ``"pynq"``),
exported with the Debian cross gcc, and called by a small C harness
(:mod:`tvm_snn.deploy.harness`, sources in ``csrc/``) that runs under
``qemu-aarch64`` / ``qemu-arm``.

How the harness calls the kernel: it ``dlopen``s an FFI library with
``RTLD_GLOBAL`` (its stub by default; on aarch64 optionally the real
``libtvm_ffi.so`` from PyPI's manylinux wheel, see
:mod:`tvm_snn.deploy.ffi_library`), then the kernel, sets the kernel's
context pointers (``__TVMBackendParallelLaunch``, workspace allocation) to
its own pthread-based backend, and calls
``__tvm_ffi_<entry>(NULL, args, n, &result)`` with one ``kTVMFFIDLTensorPtr``
argument per tensor, read from and written to raw little-endian files.

Examples
--------
>>> out, = run_under_qemu(func, "aarch64", [x, w], [((1, 8), "float32")])  # doctest: +SKIP
"""

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from tvm_snn.deploy.archs import check_emulator, qemu_arch
from tvm_snn.deploy.ffi_library import FFI_STUB, ffi_library
from tvm_snn.deploy.harness import build_harness
from tvm_snn.errors import InputError, QemuRunError, TargetError
from tvm_snn.target import parse_target, target_arch
from tvm_snn.toolchain import fcompile_for

KERNEL_NAME = "kernel.so"
DEFAULT_ENTRY = "main"
DEFAULT_NUM_THREADS = 2  # the Pynq's two Cortex-A9 cores
DEFAULT_TIMEOUT_S = 120.0

# numpy dtype -> the harness's DLPack code letter and bits
DTYPE_CODES = {"float32": "f32", "int8": "i8", "uint8": "u8", "int32": "i32", "uint32": "u32"}
SCALAR_SHAPE = "-"
SHAPE_SEPARATOR = "x"
INPUT_TAG = "i"
OUTPUT_TAG = "o"


def entry_name(func):
    """Return the name whose ``__tvm_ffi_<name>`` symbol runs ``func``.

    A PrimFunc's ``global_symbol`` (``"main"`` without one); an IRModule's only
    PrimFunc; ``"main"`` for an Executable.

    Raises
    ------
    InputError
        For an IRModule without exactly one PrimFunc.
    """
    import tvm

    if isinstance(func, tvm.tirx.PrimFunc):
        symbol = func.attrs.get("global_symbol") if func.attrs is not None else None
        return str(symbol) if symbol is not None else DEFAULT_ENTRY
    if isinstance(func, tvm.IRModule):
        names = [
            gv.name_hint for gv, f in func.functions.items() if isinstance(f, tvm.tirx.PrimFunc)
        ]
        if len(names) != 1:
            raise InputError(f"the IRModule has PrimFuncs {names}; pass entry= to choose one")
        return entry_name(func[names[0]])
    return DEFAULT_ENTRY


def _resolve_target(spec, target):
    if target is None:
        return parse_target(spec.preset)
    if target_arch(target) != spec.name:
        raise TargetError(f"target {target} is for {target_arch(target)}, not {spec.name}")
    return parse_target(target)


def export_kernel(func, arch, path, target=None):
    """Cross-compile ``func`` for ``arch`` and export it as a shared library.

    Parameters
    ----------
    func : tvm.tirx.PrimFunc, tvm.IRModule or tvm.runtime.Executable
        An Executable must already be built for ``arch``.
    arch : str
        ``"aarch64"``, ``"armv7"`` or ``"pynq"``.
    path : str or Path
        Where to write the ``.so``.
    target : optional
        Any target form :func:`tvm_snn.target.parse_target` accepts; defaults
        to the arch's preset (``"aarch64"`` or ``"pynq"``).

    Returns
    -------
    Path
    """
    import tvm

    spec = qemu_arch(arch)
    lib = func
    if isinstance(func, (tvm.tirx.PrimFunc, tvm.IRModule)):
        lib = tvm.compile(func, target=_resolve_target(spec, target))
    lib.export_library(str(path), fcompile=fcompile_for(spec.name))
    return Path(path)


def _dtype_code(dtype, role):
    name = np.dtype(dtype).name
    if name not in DTYPE_CODES:
        raise InputError(f"{role} has dtype {name}; supported: {', '.join(DTYPE_CODES)}")
    return DTYPE_CODES[name]


def _arg_spec(tag, shape, dtype, path, role):
    dims = SHAPE_SEPARATOR.join(str(int(d)) for d in shape) or SCALAR_SHAPE
    return f"{tag}:{_dtype_code(dtype, role)}:{dims}:{path}"


def _output_specs(outputs):
    specs = []
    for index, item in enumerate(outputs):
        try:
            shape, dtype = item
            specs.append((tuple(int(d) for d in shape), np.dtype(dtype)))
        except (TypeError, ValueError):
            raise InputError(
                f"output {index} must be a (shape, dtype) pair, got {item!r}"
            ) from None
        _dtype_code(specs[-1][1], f"output {index}")
    return specs


def _input_arrays(inputs):
    """Return the inputs as C-contiguous arrays of supported dtypes."""
    arrays = [np.ascontiguousarray(array) for array in inputs]
    for index, array in enumerate(arrays):
        _dtype_code(array.dtype, f"input {index}")
    return arrays


def _tensor_args(folder, inputs, outputs):
    """Write the inputs to ``folder``; return the harness's argument specs and output paths."""
    args, out_paths = [], []
    for index, array in enumerate(inputs):
        path = folder / f"in{index}.bin"
        args.append(_arg_spec(INPUT_TAG, array.shape, array.dtype, path, f"input {index}"))
        array.tofile(path)
    for index, (shape, dtype) in enumerate(outputs):
        path = folder / f"out{index}.bin"
        args.append(_arg_spec(OUTPUT_TAG, shape, dtype, path, f"output {index}"))
        out_paths.append(path)
    return args, out_paths


def _run_harness(command, timeout):
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise QemuRunError(
            f"the kernel did not finish under {command[0]} within {timeout} s"
        ) from None
    if done.returncode != 0:
        raise QemuRunError(
            f"the kernel failed under {Path(command[0]).name} (exit status {done.returncode}):\n{done.stderr.strip()}"
        )


def run_under_qemu(
    func,
    arch,
    inputs,
    outputs,
    *,
    target=None,
    entry=None,
    ffi=FFI_STUB,
    num_threads=DEFAULT_NUM_THREADS,
    timeout=DEFAULT_TIMEOUT_S,
):
    """Cross-compile ``func``, run it under qemu-user and return its outputs.

    Parameters
    ----------
    func : tvm.tirx.PrimFunc, tvm.IRModule or tvm.runtime.Executable
        The kernel; its tensor parameters are the inputs, then the outputs.
    arch : str
        ``"aarch64"`` (qemu-aarch64) or ``"armv7"`` / ``"pynq"`` (qemu-arm).
    inputs : sequence of numpy.ndarray
        Values of the leading parameters, in parameter order.
    outputs : sequence of (shape, dtype)
        The trailing output parameters, in parameter order.
    target : optional
        Overrides the arch's preset target; must be for ``arch``.
    entry : str, optional
        The function to call; see :func:`entry_name` for the default.
    ffi : {"stub", "wheel"}
        Load the harness's stub FFI library, or the real ``libtvm_ffi.so``
        from PyPI's wheel (aarch64 only; fetched once into the cache).
    num_threads : int
        Threads that run a parallel loop (the kernel launches it with ``num_task = 0``).
    timeout : float
        Seconds before the run is killed.

    Returns
    -------
    list of numpy.ndarray
        One array per output.

    Raises
    ------
    ToolchainError
        When qemu, the cross gcc, the target libc or the wheel is missing.
    InputError
        For an unsupported dtype, a malformed output spec, or ``num_threads < 1``.
    QemuRunError
        When the kernel reports an error, crashes or times out; the message
        holds the harness's stderr.
    """
    spec = qemu_arch(arch)
    if int(num_threads) < 1:
        raise InputError(f"num_threads must be at least 1, got {num_threads}")
    arrays, out_specs = _input_arrays(inputs), _output_specs(outputs)
    emulator = check_emulator(spec.name)
    harness = build_harness(spec.name)
    ffi_lib = ffi_library(spec.name, ffi, harness.ffi_stub)
    with tempfile.TemporaryDirectory(prefix="tvm-snn-qemu-") as scratch:
        folder = Path(scratch)
        args, out_paths = _tensor_args(folder, arrays, out_specs)
        kernel = export_kernel(func, spec.name, folder / KERNEL_NAME, target)
        command = [
            emulator,
            "-L",
            spec.sysroot,
            str(harness.executable),
            "-t",
            str(num_threads),
            "-f",
            str(ffi_lib),
        ]
        command += [str(kernel), entry or entry_name(func), *args]
        _run_harness(command, timeout)
        return [
            np.fromfile(path, dtype).reshape(shape)
            for path, (shape, dtype) in zip(out_paths, out_specs, strict=True)
        ]
