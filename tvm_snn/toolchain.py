"""Cross toolchains: the Debian gcc that links an artifact for each arch."""

import shutil

from tvm_snn.errors import ToolchainError

# arch -> (compiler command, Debian package that provides it)
CROSS_COMPILERS = {
    "aarch64": ("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"),
    "armv7": ("arm-linux-gnueabihf-gcc", "gcc-arm-linux-gnueabihf"),
}
INSTALL_SCRIPT = "tools/install_toolchains.sh"


def cross_compiler(arch):
    """Return the path of the cross gcc for ``arch``.

    Raises
    ------
    ToolchainError
        When the compiler is not installed; the message names the package.
    """
    if arch not in CROSS_COMPILERS:
        raise ToolchainError(
            f"no cross toolchain for arch {arch!r}; known: {', '.join(CROSS_COMPILERS)}"
        )
    command, package = CROSS_COMPILERS[arch]
    path = shutil.which(command)
    if path is None:
        raise ToolchainError(
            f"{command} is not installed; install the Debian package {package} "
            f"(the project's set-up, {INSTALL_SCRIPT}, does it)"
        )
    return path


HOST_COMPILER = "gcc"


def c_compiler(arch):
    """Return the C compiler that builds a program for ``arch``: gcc on x86, else the cross gcc.

    Raises
    ------
    ToolchainError
        When it is not installed.
    """
    if arch != "x86_64":
        return cross_compiler(arch)
    path = shutil.which(HOST_COMPILER)
    if path is None:
        raise ToolchainError(f"{HOST_COMPILER} is not installed; install the Debian package gcc")
    return path


def fcompile_for(arch):
    """Return an ``export_library`` compile function for ``arch``, or None on the host."""
    if arch == "x86_64":
        return None
    from tvm.support import cc

    return cc.cross_compiler(cross_compiler(arch))
