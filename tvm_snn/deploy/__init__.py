"""Run compiled code away from the host: on boards over TVM RPC, as a libc-only program, under qemu.

``tvm_snn.deploy(cm_or_artifact, remote="host:port")`` is
:func:`tvm_snn.deploy.remote.deploy`: this package is callable, so the
public name and the package are one (its modules import as usual).

Modules
-------
remote
    :func:`~tvm_snn.deploy.remote.deploy`: upload, check, run and time a model on a board.
server
    The board-side entry point, ``python -m tvm_snn.deploy.server``.
rpc
    TVM trackers and servers bound to 127.0.0.1 unless told otherwise.
program, driver_source, standalone
    The standalone artifact: the model as a C program on libc and pthreads
    (``cm.export_standalone(dir)``, ``tvm-snn compile --standalone``).
sources
    The C sources shipped as package data (``csrc/``).
archs, cache, harness, ffi_library, qemu
    ARM under qemu-user: the emulated architectures, the build cache, the C
    harness that runs one kernel, the FFI library it loads, and
    :func:`~tvm_snn.deploy.qemu.run_under_qemu`.
"""

import sys
import types


class _CallableModule(types.ModuleType):
    """This package, callable as :func:`tvm_snn.deploy.remote.deploy`."""

    def __call__(self, *args, **kwargs):
        from tvm_snn.deploy.remote import deploy

        return deploy(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
