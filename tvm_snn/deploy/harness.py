"""Build the qemu runner's C harness with the Debian cross gcc.

The harness (``csrc/harness.c``, with the standalone driver's thread pool and
back end, ``csrc/snn_runtime.c``) and its stub FFI library (``csrc/ffi_stub.c``)
are package data of :mod:`tvm_snn.deploy` (:mod:`tvm_snn.deploy.sources`). A
build is done once per arch and cached under :func:`tvm_snn.deploy.cache.cache_dir`,
keyed by a hash of the sources, the compiler, the flags and the tvm-ffi version.
"""

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tvm_snn.deploy.archs import qemu_arch
from tvm_snn.deploy.cache import cache_dir
from tvm_snn.deploy.ffi_library import installed_ffi_version
from tvm_snn.deploy.sources import copy_sources, ffi_include_dirs, source_files
from tvm_snn.errors import ToolchainError
from tvm_snn.toolchain import cross_compiler

HARNESS_SOURCE = "harness.c"
RUNTIME_SOURCE = "snn_runtime.c"
FFI_STUB_SOURCE = "ffi_stub.c"
SOURCES = (HARNESS_SOURCE, RUNTIME_SOURCE, "snn_runtime.h", FFI_STUB_SOURCE)
HARNESS_NAME = "harness"
FFI_STUB_NAME = "ffi_stub.so"

HASH_CHARS = 16
C_FLAGS = ("-O2", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Werror")
HARNESS_FLAGS = ("-rdynamic",)  # the kernel resolves TVMBackend* in the executable
STUB_FLAGS = ("-shared", "-fPIC")
LINK_LIBS = ("-ldl", "-lpthread")
BUILD_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Harness:
    """A built harness: the executable and the stub FFI library beside it."""

    executable: Path
    ffi_stub: Path


def _harness_key(compiler, sources):
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(sources[name].read_bytes())
    flags = (*C_FLAGS, *HARNESS_FLAGS, *STUB_FLAGS, *LINK_LIBS)
    for part in (Path(compiler).name, *flags, installed_ffi_version()):
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
    includes = [f"-I{path}" for path in ffi_include_dirs()] + [f"-I{folder}"]
    copy_sources(SOURCES, folder)
    exe, stub = folder / HARNESS_NAME, folder / FFI_STUB_NAME
    sources = [str(folder / HARNESS_SOURCE), str(folder / RUNTIME_SOURCE)]
    _run_compiler(
        [compiler, *C_FLAGS, *includes, *HARNESS_FLAGS, "-o", str(exe), *sources, *LINK_LIBS]
    )
    stub_c = str(folder / FFI_STUB_SOURCE)
    _run_compiler([compiler, *C_FLAGS, *includes, *STUB_FLAGS, "-o", str(stub), stub_c, *LINK_LIBS])


def build_harness(arch):
    """Build the harness for ``arch``, or return the cached build.

    Parameters
    ----------
    arch : str
        ``"aarch64"``, ``"armv7"`` or ``"pynq"``.

    Returns
    -------
    Harness

    Raises
    ------
    ToolchainError
        When the cross gcc is missing, the harness sources are missing from
        the package, or the build fails.
    """
    spec = qemu_arch(arch)
    compiler = cross_compiler(spec.name)
    sources = source_files(SOURCES)
    folder = cache_dir() / f"harness-{spec.name}-{_harness_key(compiler, sources)}"
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
