"""The FFI library the qemu harness loads before the kernel.

Either the harness's own stub (``csrc/ffi_stub.c``, every arch), or the real
``libtvm_ffi.so`` from PyPI's manylinux wheel of the installed apache-tvm-ffi
(aarch64 only: PyPI has no ARMv7 wheel). The wheel is downloaded once with
``pip download`` into the cache (:func:`tvm_snn.deploy.cache.cache_dir`);
the project's set-up fetches it ahead with::

    python -m tvm_snn.deploy.ffi_library      # prints the library's path
"""

import argparse
import importlib.metadata
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from tvm_snn.deploy.archs import qemu_arch
from tvm_snn.deploy.cache import cache_dir
from tvm_snn.errors import InputError, ToolchainError

FFI_STUB = "stub"
FFI_WHEEL = "wheel"
FFI_MODES = (FFI_STUB, FFI_WHEEL)
WHEEL_PACKAGE = "apache-tvm-ffi"
WHEEL_GLOB = "apache_tvm_ffi-*.whl"
WHEEL_MEMBER = "tvm_ffi/lib/libtvm_ffi.so"
LIBRARY_NAME = "libtvm_ffi.so"
FETCH_ARCH = "aarch64"
FETCH_TIMEOUT_S = 300.0
FETCH_DESCRIPTION = (
    "Fetch the aarch64 libtvm_ffi.so of PyPI's apache-tvm-ffi wheel into the cache; print its path."
)


def installed_ffi_version():
    """Return the version of the installed apache-tvm-ffi (the one the wheel must match)."""
    return importlib.metadata.version(WHEEL_PACKAGE)


def library_dir(arch, version):
    """Return the cache folder of ``libtvm_ffi.so`` ``version`` for ``arch``."""
    return cache_dir() / f"tvm_ffi-{version}-{arch}"


def _fetch_error(spec, version, detail):
    return ToolchainError(
        f"cannot fetch the {spec.name} wheel of {WHEEL_PACKAGE}=={version} from PyPI "
        f"(run python -m tvm_snn.deploy.ffi_library by hand): {detail}"
    )


def download_wheel(spec, version, folder):
    """Download the ``spec`` wheel of apache-tvm-ffi ``version`` into ``folder`` with pip.

    Returns
    -------
    Path
        The wheel.

    Raises
    ------
    ToolchainError
        When pip fails, times out or downloads no wheel.
    """
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
    ]
    command += ["--only-binary=:all:", "--platform", spec.ffi_wheel_platform, "--dest", str(folder)]
    command.append(f"{WHEEL_PACKAGE}=={version}")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise _fetch_error(spec, version, f"pip timed out after {FETCH_TIMEOUT_S} s") from None
    if done.returncode != 0:
        raise _fetch_error(spec, version, done.stderr.strip())
    wheels = sorted(Path(folder).glob(WHEEL_GLOB))
    if not wheels:
        raise _fetch_error(spec, version, f"pip downloaded no {WHEEL_GLOB} into {folder}")
    return wheels[0]


def extract_library(wheel, path):
    """Write the wheel's ``libtvm_ffi.so`` to ``path``, renamed into place last.

    A reader never sees a half-written library: it is written beside ``path``
    and renamed.

    Raises
    ------
    ToolchainError
        When the wheel is not a zip file or holds no ``tvm_ffi/lib/libtvm_ffi.so``.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(WHEEL_MEMBER) as source:
            data = source.read()
    except (zipfile.BadZipFile, KeyError) as err:
        raise ToolchainError(f"the wheel {wheel} holds no {WHEEL_MEMBER}: {err}") from None
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    partial.write_bytes(data)
    os.replace(partial, path)
    return path


def fetch_tvm_ffi(arch=FETCH_ARCH, dest=None, version=None):
    """Return the path of the target's real ``libtvm_ffi.so``, fetching its wheel once.

    Parameters
    ----------
    arch : str
        An arch PyPI has a wheel for (``"aarch64"``).
    dest : str or Path, optional
        The folder of the library; defaults to :func:`library_dir` in the cache.
    version : str, optional
        The apache-tvm-ffi version; defaults to the installed one.

    Returns
    -------
    Path
        ``dest/libtvm_ffi.so``; nothing is downloaded when it is there.

    Raises
    ------
    ToolchainError
        For a target without a wheel (armv7), or when the download fails.
    """
    spec = qemu_arch(arch)
    if spec.ffi_wheel_platform is None:
        raise ToolchainError(
            f"PyPI has no {spec.name} wheel of {WHEEL_PACKAGE}; use ffi={FFI_STUB!r}"
        )
    version = version or installed_ffi_version()
    folder = Path(dest) if dest is not None else library_dir(spec.name, version)
    library = folder / LIBRARY_NAME
    if library.is_file():
        return library
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".fetch-") as scratch:
        return extract_library(download_wheel(spec, version, scratch), library)


def ffi_library(arch, ffi, stub):
    """Return the FFI library the harness loads for ``arch``.

    Parameters
    ----------
    arch : str
        The arch the kernel runs on.
    ffi : {"stub", "wheel"}
        The harness's stub, or the real ``libtvm_ffi.so`` (fetched once).
    stub : Path
        The stub built with the harness.

    Raises
    ------
    InputError
        For another ``ffi``.
    ToolchainError
        When the real library needs a libstdc++ that is not installed, or
        cannot be fetched.
    """
    if ffi not in FFI_MODES:
        raise InputError(f"ffi must be one of {FFI_MODES}, got {ffi!r}")
    if ffi == FFI_STUB:
        return stub
    spec = qemu_arch(arch)
    if not any(Path(spec.sysroot, "lib").glob("libstdc++.so.*")):
        raise ToolchainError(
            f"libtvm_ffi.so needs the {spec.name} libstdc++; install {spec.libstdcxx_package}"
        )
    return fetch_tvm_ffi(spec.name)


def main(argv=None):
    """Fetch the aarch64 ``libtvm_ffi.so`` and print its path; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tvm_snn.deploy.ffi_library", description=FETCH_DESCRIPTION
    )
    parser.add_argument("--dest", type=Path, help="folder of the library (default: the cache)")
    parser.add_argument(
        "--ffi-version", help=f"the {WHEEL_PACKAGE} version (default: the installed one)"
    )
    args = parser.parse_args(argv)
    try:
        print(fetch_tvm_ffi(FETCH_ARCH, args.dest, args.ffi_version))
    except ToolchainError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
