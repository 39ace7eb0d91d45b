"""The architectures the qemu runner emulates, and the Debian packages each needs.

``"aarch64"`` runs under ``qemu-aarch64``; ``"armv7"`` (alias ``"pynq"``, the
Pynq's Cortex-A9) under ``qemu-arm``. Each names its preset target, its
sysroot, and the packages that provide them.
"""

import shutil
from dataclasses import dataclass
from pathlib import Path

from tvm_snn.errors import TargetError, ToolchainError
from tvm_snn.toolchain import INSTALL_SCRIPT


@dataclass(frozen=True)
class QemuArch:
    """How to cross-build and emulate one architecture.

    Attributes
    ----------
    name : str
        The arch name (``"aarch64"``, ``"armv7"``).
    preset : str
        The target preset a kernel is compiled for by default.
    qemu : str
        The qemu-user command.
    sysroot : str
        The target's libc, passed to qemu with ``-L``.
    libc_package, libstdcxx_package, qemu_package : str
        The Debian packages of the target libc, libstdc++ and qemu-user.
    ffi_wheel_platform : str or None
        The platform tag of PyPI's apache-tvm-ffi wheel for this arch; None
        when PyPI has none (the harness then needs its stub).
    """

    name: str
    preset: str
    qemu: str
    sysroot: str
    libc_package: str
    libstdcxx_package: str
    qemu_package: str = "qemu-user"
    ffi_wheel_platform: str | None = None


ARCHS = {
    "aarch64": QemuArch(
        name="aarch64",
        preset="aarch64",
        qemu="qemu-aarch64",
        sysroot="/usr/aarch64-linux-gnu",
        libc_package="libc6-arm64-cross",
        libstdcxx_package="libstdc++6-arm64-cross",
        ffi_wheel_platform="manylinux_2_28_aarch64",
    ),
    "armv7": QemuArch(
        name="armv7",
        preset="pynq",
        qemu="qemu-arm",
        sysroot="/usr/arm-linux-gnueabihf",
        libc_package="libc6-armhf-cross",
        libstdcxx_package="libstdc++6-armhf-cross",
    ),
}
"""The emulated architectures, by name."""

ARCH_ALIASES = {"pynq": "armv7"}


def qemu_arch(arch):
    """Return the :class:`QemuArch` for ``"aarch64"``, ``"armv7"`` or ``"pynq"``.

    Raises
    ------
    TargetError
        For any other name.
    """
    name = ARCH_ALIASES.get(arch, arch)
    if name not in ARCHS:
        raise TargetError(
            f"no qemu support for arch {arch!r}; known: {', '.join([*ARCHS, *ARCH_ALIASES])}"
        )
    return ARCHS[name]


def check_emulator(arch):
    """Return the path of qemu-user for ``arch``.

    Raises
    ------
    ToolchainError
        When qemu or the target's libc is not installed; names the package.
    """
    spec = qemu_arch(arch)
    path = shutil.which(spec.qemu)
    if path is None:
        raise ToolchainError(
            f"{spec.qemu} is not installed; install the Debian package {spec.qemu_package} "
            f"(the project's set-up, {INSTALL_SCRIPT}, does it)"
        )
    if not Path(spec.sysroot, "lib").is_dir():
        raise ToolchainError(
            f"no {spec.name} libc under {spec.sysroot}; install the Debian package {spec.libc_package}"
        )
    return path
