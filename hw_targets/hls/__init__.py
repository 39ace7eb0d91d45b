"""The PE array in Vitis HLS C++ (``snn_pe.cpp``) and its C simulation with g++.

``snn_pe.cpp`` decodes a compute instruction (PRECOMPUTE, GATHER, XNOR) from
its 32-byte word, as the ISA document says, and runs it on the buffers, with
Vitis HLS pragmas (pipelining, unrolling, partitioning) that g++ ignores. The
XNOR datapath works on bit masks (XNOR and popcount), not multiplications.

:func:`build_csim` compiles it with g++ into a shared library and returns a
:class:`CSim` that runs one word on NumPy buffers; the tests run it beside
the functional simulator, instruction for instruction.
"""

from __future__ import annotations

import ctypes
import importlib.resources
import shutil
import subprocess
from pathlib import Path

import numpy as np

from tvm_snn.errors import FpgaError, ToolchainError

__all__ = ["HLS_SOURCES", "CSim", "build_csim"]

HLS_SOURCES = ("snn_pe.cpp", "snn_pe.h")
LIBRARY = "libsnn_pe.so"
_STATUS = {
    1: "not a compute instruction",
    2: "an index beyond the codewords",
    3: "a bad kernel code",
}
_BUILD_TIMEOUT_S = 120
_ARGUMENTS = (np.int8, np.int8, np.int32, np.int8, np.int32, np.int32)  # input .. acc


def source_folder() -> Path:
    """The folder of the C++ sources (package data)."""
    return Path(str(importlib.resources.files("hw_targets.hls")))


class CSim:
    """The compiled PE array: :meth:`execute` runs one compute word."""

    def __init__(self, library: Path):
        self._lib = ctypes.CDLL(str(library))
        self._lib.snn_pe_execute.restype = ctypes.c_int

    def execute(self, word: bytes, input, codebook, index, weight, response, acc) -> None:
        """Run ``word`` on the buffers (``response`` and ``acc`` int32, changed in place).

        Raises
        ------
        FpgaError
            The C++ refused the word (its status names why).
        """
        arrays = (input, codebook, index, weight, response, acc)
        for array, dtype in zip(arrays, _ARGUMENTS, strict=True):
            if array.dtype != dtype or not array.flags.c_contiguous:
                raise FpgaError(
                    f"the C simulation takes contiguous {np.dtype(dtype).name} buffers, got {array.dtype}"
                )
        pointers = [array.ctypes.data_as(ctypes.c_void_p) for array in arrays]
        status = self._lib.snn_pe_execute(ctypes.c_char_p(bytes(word)), *pointers)
        if status:
            raise FpgaError(
                f"the HLS PE array refused the instruction: {_STATUS.get(status, status)}"
            )


def build_csim(folder) -> CSim:
    """Compile ``snn_pe.cpp`` with g++ (``-O2``) into ``folder`` and load it.

    Raises
    ------
    ToolchainError
        g++ is missing or the build fails (its output is in the message).
    """
    compiler = shutil.which("g++")
    if compiler is None:
        raise ToolchainError("the HLS C simulation needs g++ (Debian: apt-get install g++)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    library = folder / LIBRARY
    command = [
        compiler,
        "-O2",
        "-Wall",
        "-Wno-unknown-pragmas",
        "-shared",
        "-fPIC",
        "-o",
        str(library),
        str(source_folder() / HLS_SOURCES[0]),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=_BUILD_TIMEOUT_S)
    if result.returncode:
        raise ToolchainError(f"g++ failed to build the HLS C simulation:\n{result.stderr}")
    return CSim(library)
