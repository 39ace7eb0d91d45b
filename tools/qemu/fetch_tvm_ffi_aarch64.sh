#!/bin/sh
# Fetch the aarch64 libtvm_ffi.so from PyPI's manylinux wheel of apache-tvm-ffi.
#
# usage: fetch_tvm_ffi_aarch64.sh [DEST_DIR [VERSION]]
#   DEST_DIR  default: $TVM_SNN_QEMU_CACHE (or ~/.cache/tvm-snn/qemu)/tvm_ffi-VERSION-aarch64
#   VERSION   default: the apache-tvm-ffi installed for $PYTHON (python3 when unset)
# Prints the library's path. Idempotent: does nothing when the library is there.
# PyPI has no ARMv7 wheel; the qemu harness uses its own stub there (ffi_stub.c).
set -eu
PYTHON=${PYTHON:-python3}
PLATFORM=manylinux_2_28_aarch64
VERSION=${2:-$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("apache-tvm-ffi"))')}
CACHE=${TVM_SNN_QEMU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tvm-snn/qemu}
DEST=${1:-$CACHE/tvm_ffi-$VERSION-aarch64}
LIB="$DEST/libtvm_ffi.so"

if [ -f "$LIB" ]; then
    echo "$LIB"
    exit 0
fi
mkdir -p "$DEST"
work=$(mktemp -d "$DEST/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform "$PLATFORM" --dest "$work" "apache-tvm-ffi==$VERSION" >&2
"$PYTHON" -m zipfile -e "$work"/apache_tvm_ffi-*.whl "$work/wheel"
# Rename into place last, so that a half-fetched library is never seen.
mv "$work/wheel/tvm_ffi/lib/libtvm_ffi.so" "$work/libtvm_ffi.so"
mv "$work/libtvm_ffi.so" "$LIB"
echo "$LIB"
