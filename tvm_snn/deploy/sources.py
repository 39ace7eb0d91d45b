"""The C sources that ship as package data (``tvm_snn/deploy/csrc/``), and the FFI headers they include.

Found with :mod:`importlib.resources`, so an installed wheel builds them as a
source checkout does.
"""

import importlib.resources
import shutil
from pathlib import Path

from tvm_snn.errors import ToolchainError

SOURCE_PACKAGE = "tvm_snn.deploy"
SOURCE_FOLDER = "csrc"
# Every file of csrc/: the qemu harness and its stub FFI library, the runtime
# both programs share, and the standalone driver's C API and command line.
C_SOURCES = (
    "harness.c",
    "ffi_stub.c",
    "snn_runtime.h",
    "snn_runtime.c",
    "snn_error.c",
    "snn_model.h",
    "snn_main.c",
)
# (include root, header): the tvm-ffi C API and DLPack, from the installed apache-tvm-ffi
FFI_HEADERS = (("tvm_ffi", "tvm/ffi/c_api.h"), ("dlpack", "dlpack/dlpack.h"))


def source_files(names):
    """The C sources ``names``, by file name, as package resources.

    Returns
    -------
    dict of str to importlib.resources.abc.Traversable

    Raises
    ------
    ToolchainError
        When a source is missing from the installed package.
    """
    folder = importlib.resources.files(SOURCE_PACKAGE) / SOURCE_FOLDER
    sources = {name: folder / name for name in names}
    missing = [name for name, source in sources.items() if not source.is_file()]
    if missing:
        raise ToolchainError(
            f"the C sources {', '.join(missing)} are missing from the package data of "
            f"{SOURCE_PACKAGE} ({SOURCE_FOLDER}/); reinstall tvm-snn"
        )
    return sources


def copy_sources(names, folder):
    """Copy the C sources ``names`` into ``folder``; return their paths there."""
    paths = []
    for name, source in source_files(names).items():
        with importlib.resources.as_file(source) as path:
            shutil.copyfile(path, Path(folder) / name)
        paths.append(Path(folder) / name)
    return paths


def ffi_include_dirs():
    """The include folders of the installed tvm-ffi C API and DLPack headers."""
    import tvm_ffi.libinfo

    dirs = [tvm_ffi.libinfo.find_include_path(), tvm_ffi.libinfo.find_dlpack_include_path()]
    return list(dict.fromkeys(dirs))


def copy_ffi_headers(folder):
    """Copy the two FFI headers the C sources include into ``folder/include``."""
    import tvm_ffi.libinfo

    roots = {
        "tvm_ffi": Path(tvm_ffi.libinfo.find_include_path()),
        "dlpack": Path(tvm_ffi.libinfo.find_dlpack_include_path()),
    }
    for root, header in FFI_HEADERS:
        target = Path(folder) / "include" / header
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(roots[root] / header, target)
