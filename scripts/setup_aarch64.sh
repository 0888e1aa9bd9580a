#!/usr/bin/env bash
# An aarch64 Python with numpy and onnxruntime, run under qemu-user, for the int8 checks per instruction-set class
# (edgemed.export.isa). Builds it from Debian's arm64 packages and PyPI's aarch64 wheels into $1 (default
# .aarch64), and prints the EDGEMED_AARCH64_PYTHON value to export. Needs root (apt, and a private mount of an
# aarch64 /proc/cpuinfo, without which onnxruntime's CPU detection crashes under qemu-user).
set -euo pipefail
ROOT=$(realpath -m "${1:-.aarch64}")
ORT_VERSION=$(python3 -c "import onnxruntime; print(onnxruntime.__version__)" 2>/dev/null || echo 1.32.0)
NUMPY_VERSION=$(python3 -c "import numpy; print(numpy.__version__)" 2>/dev/null || echo 2.4.6)
command -v qemu-aarch64-static >/dev/null || apt-get install -y -q qemu-user-static
dpkg --print-foreign-architectures | grep -q arm64 || { dpkg --add-architecture arm64; apt-get update -q; }
mkdir -p "$ROOT/debs" "$ROOT/sysroot" "$ROOT/site" "$ROOT/wheels"
cd "$ROOT/debs"
for p in python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 libexpat1 zlib1g libffi8 libssl3 \
         libbz2-1.0 liblzma5 libstdc++6 libgcc-s1 libuuid1 libcrypt1 libnsl2 libtirpc3 libsqlite3-0 libncursesw6 \
         libtinfo6 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1 libreadline8 \
         libdb5.3 libgdbm6; do
  apt-get download -q "$p:arm64" >/dev/null
done
for d in *.deb; do dpkg -x "$d" "$ROOT/sysroot"; done
python3 -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_28_aarch64 \
  --platform manylinux2014_aarch64 --python-version 3.11 --implementation cp -d "$ROOT/wheels" \
  "onnxruntime==$ORT_VERSION" "numpy==$NUMPY_VERSION" flatbuffers packaging protobuf coloredlogs humanfriendly \
  sympy mpmath
for w in "$ROOT"/wheels/*.whl; do python3 -m zipfile -e "$w" "$ROOT/site"; done
# A Cortex-A76 (Raspberry Pi 5) /proc/cpuinfo: dot-product int8 kernels, as qemu's cortex-a76 model runs them.
for i in 0 1; do printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n' "$i"; done > "$ROOT/cpuinfo"
cat > "$ROOT/python" <<WRAP
#!/bin/sh
# aarch64 Python (Cortex-A76) under qemu-user, with an aarch64 /proc/cpuinfo in a private mount namespace.
exec unshare -m --propagation private sh -c 'mount --bind "$ROOT/cpuinfo" /proc/cpuinfo && PYTHONPATH="$ROOT/site" exec qemu-aarch64-static -cpu cortex-a76 -L "$ROOT/sysroot" "$ROOT/sysroot/usr/bin/python3.11" "\$@"' sh "\$@"
WRAP
chmod +x "$ROOT/python"
"$ROOT/python" -c "import onnxruntime, platform; print(platform.machine(), onnxruntime.__version__)"
echo "export EDGEMED_AARCH64_PYTHON=$ROOT/python"
