#!/bin/sh
# Install the Debian cross compilers, qemu-user, the target libcs and g++ (the HLS C simulation) when missing.
set -e
need=""
for pair in aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu arm-linux-gnueabihf-gcc:gcc-arm-linux-gnueabihf \
            qemu-aarch64:qemu-user readelf:binutils file:file g++:g++; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need="$need ${pair#*:}"
done
[ -d /usr/aarch64-linux-gnu/lib ] || need="$need libc6-arm64-cross"
[ -d /usr/arm-linux-gnueabihf/lib ] || need="$need libc6-armhf-cross"
[ -z "$need" ] && exit 0
echo "installing:$need"
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $need >/dev/null
