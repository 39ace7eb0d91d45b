"""The board-side entry point: a TVM RPC server that tells its client what it is.

Run it on the board::

    python -m tvm_snn.deploy.server                      # 127.0.0.1:9090
    python -m tvm_snn.deploy.server --tracker 127.0.0.1:9190 --key pynq

It is TVM's RPC server (``tvm.rpc.server.Server``: one forked process per
session), bound to 127.0.0.1 unless ``--allow-remote`` (TVM's RPC has no
authentication and runs whatever a client uploads: reach the board through
an SSH tunnel, ``docs/DEPLOY.md``). Each session also has the functions
:func:`tvm_snn.deploy.remote.deploy` asks for before it uploads or loads
anything:

- ``tvm_snn.deploy.arch()``: the board's architecture (``"x86_64"``,
  ``"aarch64"``, ``"armv7"``), from ``uname -m``;
- ``tvm_snn.deploy.sha256(name)``: the sha256 of an uploaded file, so the
  artifact is checked on the board before it is loaded;
- ``tvm_snn.deploy.protocol()``: :data:`PROTOCOL`.

TVM's server stops listening for good when a session's process fails, as it
does when its client disconnects mid-upload (``_serving`` raises from the
listening thread). The board server wraps that one function, in its own
process only, so such a session ends alone and the next client is served
(:func:`_surviving`).

The server sets ``TVM_NUM_THREADS`` to the board's cores when it is unset
(TVM would use half), as ``CompiledModel`` does on the host.
"""

import argparse
import os
import platform
import sys

from tvm_snn.deploy.hashing import file_sha256
from tvm_snn.deploy.rpc import (
    LOOPBACK,
    PORT_RANGE,
    SERVER_PORT,
    check_host,
    parse_address,
    serve_until_stopped,
)
from tvm_snn.errors import ConfigError

PROTOCOL = 1
ARCH_FUNC = "tvm_snn.deploy.arch"
SHA256_FUNC = "tvm_snn.deploy.sha256"
PROTOCOL_FUNC = "tvm_snn.deploy.protocol"
WORKPATH_FUNC = "tvm.rpc.server.workpath"
# `uname -m` -> our arch names
MACHINES = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "aarch64": "aarch64",
    "arm64": "aarch64",
    "armv7l": "armv7",
    "armv7": "armv7",
    "armv8l": "armv7",  # a 32-bit user space on a 64-bit core runs ARMv7 code
}


def board_arch(machine=None):
    """This machine's architecture in tvm-snn's names (``uname -m`` when ``machine`` is None)."""
    machine = (machine or platform.machine()).lower()
    return MACHINES.get(machine, machine)


def _surviving(serving):
    """TVM's per-session ``_serving``, made to end a failed session alone instead of the server."""

    def serve(sock, addr, opts, load_library):
        cwd = os.getcwd()
        try:
            serving(sock, addr, opts, load_library)
        except RuntimeError as err:  # the session's process exited with an error
            print(f"tvm-snn board server: a session from {addr} failed: {err}", file=sys.stderr)
            os.chdir(cwd)  # _serving moved into the session's folder
            sock.close()

    return serve


def prepare_server_process():
    """TVM's ``server_init_callback``: register the tvm-snn functions and make sessions fail alone."""
    import tvm.rpc.server as tvm_server
    import tvm_ffi

    if not hasattr(tvm_server, "_serving"):
        raise ConfigError(
            "this TVM's RPC server has no _serving; tvm-snn's board server needs TVM 0.27"
        )
    tvm_server._serving = _surviving(tvm_server._serving)

    if not os.environ.get("TVM_NUM_THREADS"):
        os.environ["TVM_NUM_THREADS"] = str(len(os.sched_getaffinity(0)))

    from hw_targets.driver.remote import register_board_functions

    register_board_functions()  # snn-fpga programs, on the board's FPGA or its simulator

    @tvm_ffi.register_global_func(ARCH_FUNC, override=True)
    def _arch():
        return board_arch()

    @tvm_ffi.register_global_func(PROTOCOL_FUNC, override=True)
    def _protocol():
        return PROTOCOL

    @tvm_ffi.register_global_func(SHA256_FUNC, override=True)
    def _sha256(name):
        return file_sha256(tvm_ffi.get_global_func(WORKPATH_FUNC)(name))


def start_board_server(
    host=LOOPBACK, port=SERVER_PORT, tracker=None, key="", allow_remote=False, timeout=None
):
    """Start the board-side server in a subprocess; ``.port`` is its port, ``.terminate()`` stops it.

    Parameters
    ----------
    host : str
        Address to bind; anything but loopback needs ``allow_remote``.
    port : int
        The first port to try (the next :data:`~tvm_snn.deploy.rpc.PORT_RANGE` follow).
    tracker : (str, int), optional
        Register with this tracker under ``key``.
    key : str
        The device key (with a tracker).
    timeout : float, optional
        Seconds a session may last.

    Raises
    ------
    ConfigError
        For an address other than loopback without ``allow_remote``, or a
        tracker without a key.
    """
    from tvm.rpc.server import Server

    check_host(host, allow_remote)
    if tracker is not None and not key:
        raise ConfigError("a server registered with a tracker needs a device key")
    return Server(
        host=host,
        port=port,
        port_end=port + PORT_RANGE,
        tracker_addr=tracker,
        key=key,
        silent=True,
        server_init_callback=prepare_server_process,
        timeout=timeout,
    )


def main(argv=None):
    """Start the board-side server and wait until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m tvm_snn.deploy.server", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default=LOOPBACK, help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=SERVER_PORT, help="first port to try")
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow binding an address other than loopback"
    )
    parser.add_argument(
        "--tracker", type=parse_address, help="register with this HOST:PORT tracker"
    )
    parser.add_argument("--key", default="", help="the device key to register under")
    args = parser.parse_args(argv)
    try:
        server = start_board_server(args.host, args.port, args.tracker, args.key, args.allow_remote)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"tvm-snn board server ({board_arch()}) on {args.host}:{server.port}", flush=True)
    return serve_until_stopped(server)


if __name__ == "__main__":
    sys.exit(main())
