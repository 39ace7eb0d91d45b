"""TVM RPC trackers and servers that bind to loopback unless told otherwise.

TVM's ``rpc.Tracker`` and ``rpc.Server`` bind ``0.0.0.0`` by default, and
TVM's RPC has no authentication: anyone who reaches a server can upload and
run code on it. These helpers bind ``127.0.0.1`` by default and refuse any
other address unless ``allow_remote=True``; to reach a board, forward its
port over SSH instead (``docs/TUNING.md``).

Run ``python -m tvm_snn.deploy.rpc tracker`` or ``... server --tracker
HOST:PORT --key KEY`` (``--help`` for the flags).
"""

import argparse
import signal
import sys
import threading

from tvm_snn.errors import ConfigError

LOOPBACK = "127.0.0.1"
TRACKER_PORT = 9190
SERVER_PORT = 9090
PORT_RANGE = 100  # ports tried after the first


def check_host(host, allow_remote):
    """Refuse to bind ``host`` unless it is loopback or ``allow_remote`` (ConfigError)."""
    if host not in (LOOPBACK, "localhost", "::1") and not allow_remote:
        raise ConfigError(
            f"refusing to bind {host!r}: TVM RPC has no authentication and runs any uploaded code. "
            "Bind 127.0.0.1 and forward the port over SSH, or pass allow_remote=True (--allow-remote)"
        )


def start_tracker(host=LOOPBACK, port=TRACKER_PORT, allow_remote=False):
    """Start a TVM tracker in a subprocess; ``.port`` is the port it bound, ``.terminate()`` stops it.

    Raises
    ------
    ConfigError
        For an address other than loopback without ``allow_remote``.
    """
    from tvm.rpc.tracker import Tracker

    check_host(host, allow_remote)
    return Tracker(host=host, port=port, port_end=port + PORT_RANGE, silent=True)


def start_server(
    tracker_host, tracker_port, key, host=LOOPBACK, port=SERVER_PORT, allow_remote=False
):
    """Start a TVM RPC server in a subprocess, registered with a tracker under ``key``.

    Raises
    ------
    ConfigError
        For an address other than loopback without ``allow_remote``.
    """
    from tvm.rpc.server import Server

    check_host(host, allow_remote)
    return Server(
        host=host,
        port=port,
        port_end=port + PORT_RANGE,
        tracker_addr=(tracker_host, tracker_port),
        key=key,
        silent=True,
    )


def parse_address(text):
    """``(host, port)`` from ``"HOST:PORT"`` (an argparse type: raises ArgumentTypeError)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"an address is HOST:PORT, got {text!r}")
    return host, int(port)


def serve_until_stopped(proc):
    """Wait for SIGTERM or Ctrl-C, then terminate ``proc`` (a tracker or server); return 0."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    proc.terminate()
    return 0


def main(argv=None):
    """Start a tracker or a server and wait until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m tvm_snn.deploy.rpc", description=__doc__.splitlines()[0]
    )
    parser.add_argument("role", choices=["tracker", "server"])
    parser.add_argument("--host", default=LOOPBACK, help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="first port to try")
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow binding an address other than loopback"
    )
    parser.add_argument("--tracker", type=parse_address, help="server: the tracker's HOST:PORT")
    parser.add_argument("--key", help="server: the device key to register")
    args = parser.parse_args(argv)
    try:
        if args.role == "tracker":
            proc = start_tracker(args.host, args.port or TRACKER_PORT, args.allow_remote)
        else:
            if not args.tracker or not args.key:
                parser.error("server needs --tracker HOST:PORT and --key")
            proc = start_server(
                *args.tracker, args.key, args.host, args.port or SERVER_PORT, args.allow_remote
            )
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.role} listening on {args.host}:{proc.port}", flush=True)
    return serve_until_stopped(proc)


if __name__ == "__main__":
    sys.exit(main())
