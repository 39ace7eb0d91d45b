"""The cache of the qemu runner: built harnesses and fetched FFI libraries.

The folder is ``$TVM_SNN_QEMU_CACHE``, else ``$XDG_CACHE_HOME/tvm-snn/qemu``,
else ``~/.cache/tvm-snn/qemu``.
"""

import os
from pathlib import Path

CACHE_ENV = "TVM_SNN_QEMU_CACHE"
CACHE_SUBDIR = ("tvm-snn", "qemu")


def cache_dir():
    """Return the cache folder of harnesses and fetched libraries (not created).

    Returns
    -------
    Path
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).joinpath(*CACHE_SUBDIR)
