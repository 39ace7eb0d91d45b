"""Programs run on a board over TVM RPC: the host's :class:`RemoteDevice` and the board's function.

The board runs tvm-snn's board server (``python -m tvm_snn.deploy.server``),
which registers :data:`RUN_FUNC`: it takes a request (the spec, the regions,
the stream and the DRAM images, as one ``.npz`` in bytes), runs it on the
board's device (:func:`hw_targets.driver.default_device`: the Pynq FPGA when
``TVM_SNN_FPGA_BITSTREAM`` names a bitstream, else the simulator) and
answers with the DRAM images after the run. :class:`RemoteDevice` is the
host's side, behind the same ``run(program, dram)`` interface as the local
devices.
"""

from __future__ import annotations

import io
import json
import os

import numpy as np

from hw_targets.driver import default_device
from hw_targets.isa import decode_stream
from hw_targets.program import Program, Region
from hw_targets.spec import load_spec
from tvm_snn.errors import FpgaError

__all__ = ["RUN_FUNC", "BITSTREAM_ENV", "RemoteDevice", "register_board_functions", "serve_request"]

RUN_FUNC = "tvm_snn.fpga.run"
BITSTREAM_ENV = "TVM_SNN_FPGA_BITSTREAM"
_DRAM_PREFIX = "dram."


def _pack(meta: dict, arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    return buffer.getvalue()


def _unpack(data: bytes):
    arrays = np.load(io.BytesIO(bytes(data)), allow_pickle=False)
    return json.loads(arrays["meta"].tobytes().decode()), arrays


def request_bytes(program: Program, dram: dict) -> bytes:
    """One request: the program (spec, regions, stream) and its DRAM."""
    meta = {"spec": program.spec.to_dict(), "regions": [vars(region) for region in program.regions]}
    arrays = {"stream": np.frombuffer(program.stream(), dtype=np.uint8)}
    arrays.update({_DRAM_PREFIX + name: array for name, array in dram.items()})
    return _pack(meta, arrays)


def serve_request(data: bytes, device=None) -> bytes:
    """The board's side: run a request on ``device`` (the default one) and answer with the DRAM after it."""
    meta, arrays = _unpack(data)
    spec = load_spec(meta["spec"])
    regions = tuple(Region(**region) for region in meta["regions"])
    program = Program(spec, regions, tuple(decode_stream(arrays["stream"].tobytes())))
    dram = {region.name: np.array(arrays[_DRAM_PREFIX + region.name]) for region in regions}
    device = device or default_device(os.environ.get(BITSTREAM_ENV))
    device.run(program, dram)
    return _pack(
        {"device": device.name}, {_DRAM_PREFIX + name: array for name, array in dram.items()}
    )


def register_board_functions() -> None:
    """Register :data:`RUN_FUNC` in this process (the board server does, at start)."""
    import tvm_ffi

    @tvm_ffi.register_global_func(RUN_FUNC, override=True)
    def _run(data):
        return serve_request(bytes(data))


class RemoteDevice:
    """Runs programs on the board behind a TVM RPC server at ``host:port``.

    Parameters
    ----------
    address : str
        ``host:port`` of the board server (an SSH tunnel's local end, see
        ``docs/DEPLOY.md``).
    """

    name = "remote"

    def __init__(self, address: str):
        from tvm import rpc

        host, _, port = str(address).rpartition(":")
        if not host or not port.isdigit():
            raise FpgaError(f"a board server address is host:port, got {address!r}")
        try:
            self._session = rpc.connect(host, int(port))
            self._run = self._session.get_function(RUN_FUNC)
        except (
            Exception
        ) as err:  # TVM raises a plain error for a refused connection or a missing function
            raise FpgaError(f"no snn-fpga board server at {address}: {err}") from None
        self.board_device = None
        self.runs = 0

    def run(self, program: Program, dram: dict):
        """Run ``program`` on the board; ``dram`` gets the board's results."""
        answer = self._run(request_bytes(program, dram))
        meta, arrays = _unpack(bytes(answer))
        for name in dram:
            dram[name][...] = arrays[_DRAM_PREFIX + name]
        self.board_device = meta["device"]
        self.runs += 1
        return meta
