"""Run compiled code away from the host: the home of tvm-snn's runners.

Today one runner: :mod:`tvm_snn.deploy.qemu` cross-compiles a kernel for
aarch64 or ARMv7 and runs it under qemu-user through a small C harness (its
sources ship in this package, ``csrc/``). Later: RPC to boards, and the
standalone artifact that needs only libc.

Modules
-------
archs
    The emulated architectures and their Debian packages.
cache
    Where built harnesses and fetched libraries are kept.
harness
    Builds the C harness with the cross gcc (from the package data).
ffi_library
    The FFI library the harness loads: its stub, or ``libtvm_ffi.so`` from
    PyPI's aarch64 wheel (``python -m tvm_snn.deploy.ffi_library`` fetches it).
qemu
    Exports a kernel and runs it under qemu-user: :func:`~tvm_snn.deploy.qemu.run_under_qemu`.
"""
