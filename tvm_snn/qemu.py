"""Run cross-compiled TensorIR kernels under qemu-user and read their outputs back.

A kernel (a PrimFunc, an IRModule or a ``tvm.compile`` Executable) is built
for ``aarch64`` (preset ``"aarch64"``) or ``armv7`` (preset ``"pynq"``),
exported with the Debian cross gcc, and called by a small C harness
(``tools/qemu/harness.c``) that runs under ``qemu-aarch64`` / ``qemu-arm``.

How the harness calls the kernel: it ``dlopen``s an FFI library with
``RTLD_GLOBAL`` (``tools/qemu/ffi_stub.c`` by default; on aarch64 optionally
the real ``libtvm_ffi.so`` from PyPI's manylinux wheel), then the kernel, sets
the kernel's context pointers (``__TVMBackendParallelLaunch``, workspace
allocation) to its own pthread-based backend, and calls
``__tvm_ffi_<entry>(NULL, args, n, &result)`` with one ``kTVMFFIDLTensorPtr``
argument per tensor, read from and written to raw little-endian files.

The harness is built once per arch and cached, keyed by a hash of its
sources and flags, under ``$TVM_SNN_QEMU_CACHE`` (default
``~/.cache/tvm-snn/qemu``).

Examples
--------
>>> out, = run_under_qemu(func, "aarch64", [x, w], [((1, 8), "float32")])  # doctest: +SKIP
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tvm_snn.errors import InputError, QemuRunError, TargetError, ToolchainError
from tvm_snn.target import parse_target, target_arch
from tvm_snn.toolchain import INSTALL_SCRIPT, cross_compiler, fcompile_for

HARNESS_DIR = Path(__file__).resolve().parent.parent / "tools" / "qemu"
HARNESS_SOURCE = HARNESS_DIR / "harness.c"
FFI_STUB_SOURCE = HARNESS_DIR / "ffi_stub.c"
FETCH_SCRIPT = HARNESS_DIR / "fetch_tvm_ffi_aarch64.sh"
HARNESS_NAME = "harness"
FFI_STUB_NAME = "ffi_stub.so"
KERNEL_NAME = "kernel.so"

CACHE_ENV = "TVM_SNN_QEMU_CACHE"
CACHE_SUBDIR = ("tvm-snn", "qemu")
HASH_CHARS = 16
C_FLAGS = ("-O2", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Werror")
HARNESS_FLAGS = ("-rdynamic",)  # the kernel resolves TVMBackend* in the executable
STUB_FLAGS = ("-shared", "-fPIC")
LINK_LIBS = ("-ldl", "-lpthread")

DEFAULT_ENTRY = "main"
DEFAULT_NUM_THREADS = 2  # the Pynq's two Cortex-A9 cores
DEFAULT_TIMEOUT_S = 120.0
BUILD_TIMEOUT_S = 120.0
FETCH_TIMEOUT_S = 300.0

FFI_STUB = "stub"
FFI_WHEEL = "wheel"
FFI_MODES = (FFI_STUB, FFI_WHEEL)
WHEEL_PACKAGE = "apache-tvm-ffi"

# numpy dtype -> the harness's DLPack code letter and bits
DTYPE_CODES = {"float32": "f32", "int8": "i8", "uint8": "u8", "int32": "i32", "uint32": "u32"}
SCALAR_SHAPE = "-"
SHAPE_SEPARATOR = "x"
INPUT_TAG = "i"
OUTPUT_TAG = "o"


@dataclass(frozen=True)
class QemuArch:
    """How to cross-build and emulate one architecture."""

    name: str
    preset: str
    qemu: str
    sysroot: str
    libc_package: str
    libstdcxx_package: str
    qemu_package: str = "qemu-user"


ARCHS = {
    "aarch64": QemuArch(
        name="aarch64",
        preset="aarch64",
        qemu="qemu-aarch64",
        sysroot="/usr/aarch64-linux-gnu",
        libc_package="libc6-arm64-cross",
        libstdcxx_package="libstdc++6-arm64-cross",
    ),
    "armv7": QemuArch(
        name="armv7",
        preset="pynq",
        qemu="qemu-arm",
        sysroot="/usr/arm-linux-gnueabihf",
        libc_package="libc6-armhf-cross",
        libstdcxx_package="libstdc++6-armhf-cross",
    ),
}
ARCH_ALIASES = {"pynq": "armv7"}


@dataclass(frozen=True)
class Harness:
    """A built harness: the executable and the stub FFI library beside it."""

    executable: Path
    ffi_stub: Path


def qemu_arch(arch):
    """Return the :class:`QemuArch` for ``"aarch64"``, ``"armv7"`` or ``"pynq"``.

    Raises
    ------
    TargetError
        For any other name.
    """
    name = ARCH_ALIASES.get(arch, arch)
    if name not in ARCHS:
        raise TargetError(f"no qemu support for arch {arch!r}; known: {', '.join([*ARCHS, *ARCH_ALIASES])}")
    return ARCHS[name]


def cache_dir():
    """Return the cache folder of harnesses and fetched libraries (not created)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).joinpath(*CACHE_SUBDIR)


def check_emulator(arch):
    """Return the path of qemu-user for ``arch``.

    Raises
    ------
    ToolchainError
        When qemu or the target's libc is not installed; names the package.
    """
    spec = qemu_arch(arch)
    path = shutil.which(spec.qemu)
    if path is None:
        raise ToolchainError(
            f"{spec.qemu} is not installed; install the Debian package {spec.qemu_package} "
            f"(the project's set-up, {INSTALL_SCRIPT}, does it)"
        )
    if not Path(spec.sysroot, "lib").is_dir():
        raise ToolchainError(
            f"no {spec.name} libc under {spec.sysroot}; install the Debian package {spec.libc_package}"
        )
    return path


def _ffi_include_dirs():
    import tvm_ffi.libinfo

    dirs = [tvm_ffi.libinfo.find_include_path(), tvm_ffi.libinfo.find_dlpack_include_path()]
    return list(dict.fromkeys(dirs))


def _ffi_version():
    import tvm_ffi

    return tvm_ffi.__version__


def _harness_key(compiler):
    digest = hashlib.sha256()
    for source in (HARNESS_SOURCE, FFI_STUB_SOURCE):
        digest.update(source.read_bytes())
    for part in (Path(compiler).name, *C_FLAGS, *HARNESS_FLAGS, *STUB_FLAGS, *LINK_LIBS, _ffi_version()):
        digest.update(part.encode())
    return digest.hexdigest()[:HASH_CHARS]


def _run_compiler(command):
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ToolchainError(f"{command[0]} timed out building the qemu harness") from None
    if done.returncode != 0:
        raise ToolchainError(f"{command[0]} failed to build the qemu harness:\n{done.stderr}")


def _compile_harness(compiler, folder):
    includes = [f"-I{path}" for path in _ffi_include_dirs()]
    exe, stub = folder / HARNESS_NAME, folder / FFI_STUB_NAME
    _run_compiler([compiler, *C_FLAGS, *includes, *HARNESS_FLAGS, "-o", str(exe), str(HARNESS_SOURCE), *LINK_LIBS])
    _run_compiler([compiler, *C_FLAGS, *includes, *STUB_FLAGS, "-o", str(stub), str(FFI_STUB_SOURCE), *LINK_LIBS])


def build_harness(arch):
    """Build the harness for ``arch``, or return the cached build.

    Returns
    -------
    Harness

    Raises
    ------
    ToolchainError
        When the cross gcc is missing, the harness sources are not found (an
        install without ``tools/``), or the build fails.
    """
    spec = qemu_arch(arch)
    compiler = cross_compiler(spec.name)
    if not HARNESS_SOURCE.is_file():
        raise ToolchainError(f"the qemu harness source {HARNESS_SOURCE} is missing; use a source checkout")
    folder = cache_dir() / f"harness-{spec.name}-{_harness_key(compiler)}"
    harness = Harness(folder / HARNESS_NAME, folder / FFI_STUB_NAME)
    if harness.executable.is_file() and harness.ffi_stub.is_file():
        return harness
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".build-"))
    try:
        _compile_harness(compiler, scratch)
        os.rename(scratch, folder)  # atomic: others see a complete build or none
    except OSError:
        if not harness.executable.is_file():  # else a concurrent build won the rename
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return harness


def fetch_tvm_ffi(arch="aarch64"):
    """Return the path of the target's real ``libtvm_ffi.so``, fetching its wheel once.

    Runs ``tools/qemu/fetch_tvm_ffi_aarch64.sh``, which downloads the manylinux
    wheel of the installed apache-tvm-ffi version from PyPI into the cache.

    Raises
    ------
    ToolchainError
        For a target without a wheel (armv7), or when the download fails.
    """
    spec = qemu_arch(arch)
    if spec.name != "aarch64":
        raise ToolchainError(f"PyPI has no {spec.name} wheel of {WHEEL_PACKAGE}; use ffi={FFI_STUB!r}")
    dest = cache_dir() / f"tvm_ffi-{_ffi_version()}-{spec.name}"
    env = {**os.environ, "PYTHON": sys.executable}
    command = ["sh", str(FETCH_SCRIPT), str(dest), _ffi_version()]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=FETCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        done = None
    if done is None or done.returncode != 0:
        detail = done.stderr if done is not None else "timed out"
        raise ToolchainError(
            f"cannot fetch the {spec.name} wheel of {WHEEL_PACKAGE}=={_ffi_version()} from PyPI "
            f"(run {FETCH_SCRIPT.name} by hand): {detail}"
        )
    return Path(done.stdout.strip().splitlines()[-1])


def entry_name(func):
    """Return the name whose ``__tvm_ffi_<name>`` symbol runs ``func``.

    A PrimFunc's ``global_symbol`` (``"main"`` without one); an IRModule's only
    PrimFunc; ``"main"`` for an Executable.
    """
    import tvm

    if isinstance(func, tvm.tirx.PrimFunc):
        symbol = func.attrs.get("global_symbol") if func.attrs is not None else None
        return str(symbol) if symbol is not None else DEFAULT_ENTRY
    if isinstance(func, tvm.IRModule):
        names = [gv.name_hint for gv, f in func.functions.items() if isinstance(f, tvm.tirx.PrimFunc)]
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
            raise InputError(f"output {index} must be a (shape, dtype) pair, got {item!r}") from None
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


def _ffi_library(arch, ffi, harness):
    if ffi not in FFI_MODES:
        raise InputError(f"ffi must be one of {FFI_MODES}, got {ffi!r}")
    if ffi == FFI_STUB:
        return harness.ffi_stub
    spec = qemu_arch(arch)
    if not any(Path(spec.sysroot, "lib").glob("libstdc++.so.*")):
        raise ToolchainError(f"libtvm_ffi.so needs the {spec.name} libstdc++; install {spec.libstdcxx_package}")
    return fetch_tvm_ffi(arch)


def _run_harness(command, timeout):
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise QemuRunError(f"the kernel did not finish under {command[0]} within {timeout} s") from None
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
    ffi_lib = _ffi_library(spec.name, ffi, harness)
    with tempfile.TemporaryDirectory(prefix="tvm-snn-qemu-") as scratch:
        folder = Path(scratch)
        args, out_paths = _tensor_args(folder, arrays, out_specs)
        kernel = export_kernel(func, spec.name, folder / KERNEL_NAME, target)
        command = [emulator, "-L", spec.sysroot, str(harness.executable), "-t", str(num_threads), "-f", str(ffi_lib)]
        command += [str(kernel), entry or entry_name(func), *args]
        _run_harness(command, timeout)
        return [
            np.fromfile(path, dtype).reshape(shape) for path, (shape, dtype) in zip(out_paths, out_specs, strict=True)
        ]
