#!/usr/bin/env bash
# Build the aarch64 side of the ARM64 check (examples/mobile/README.md), all under $MOBILE_WORK/arm64
# (default /work/mobile_work/arm64); each step is skipped when its output exists, so a rerun resumes.
#   1. an arm64 Debian 12 tree with Python 3.11 (mmdebstrap, extract only: no arm64 code runs to build it)
#   2. aarch64 manylinux wheels (numpy, onnxruntime, ...) unpacked into a site directory for that Python, and
#      hnswlib from Debian's arm64 package (PyPI has no aarch64 wheel of it)
#   3. llama.cpp from the llama-cpp-python 0.3.36 sdist cross-compiled with aarch64-linux-gnu-gcc/g++, and the
#      sdist's pure-Python llama_cpp package, which loads it through LLAMA_CPP_LIB_PATH
# Run the result with examples/mobile/arm64_check.py (qemu-aarch64 -L <tree>); root and the package registries only.
set -euo pipefail
W=${MOBILE_WORK:-/work/mobile_work}/arm64
ROOT=$W/root SITE=$W/site SRC=$W/src LIB=$W/llama-lib
SUITE=bookworm MIRROR=http://deb.debian.org/debian
ARM_ARCH=${GGML_CPU_ARM_ARCH:-armv8.2-a+dotprod}  # a Cortex-A55/A76-class phone core (NEON + dot product)
mkdir -p "$W" "$SRC"

need=()
for tool in mmdebstrap:mmdebstrap qemu-aarch64:qemu-user aarch64-linux-gnu-g++:crossbuild-essential-arm64 cmake:cmake; do
  command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
if ((${#need[@]})); then apt-get install -y "${need[@]}"; fi

if [ ! -x "$ROOT/usr/bin/python3.11" ]; then
  echo "== arm64 tree ($SUITE) -> $ROOT"
  rm -rf "$ROOT"
  mmdebstrap --arch=arm64 --variant=extract --include=python3.11,libpython3.11-stdlib,libstdc++6,libgomp1,zlib1g,libffi8 \
    "$SUITE" "$ROOT" "$MIRROR"
fi

if [ ! -d "$SITE/onnxruntime" ]; then
  echo "== aarch64 wheels -> $SITE"
  ORT=$(python -c "import onnxruntime; print(onnxruntime.__version__)")
  NP=$(python -c "import numpy; print(numpy.__version__)")
  python -m pip install --quiet --target "$SITE" --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 \
    --python-version 3.11 --implementation cp --abi cp311 --only-binary=:all: \
    "numpy==$NP" "onnxruntime==$ORT" soxr soundfile pyahocorasick tqdm "espeakng-loader==0.2.4" \
    diskcache jinja2 typing_extensions
fi
if ! ls "$SITE"/hnswlib*.so >/dev/null 2>&1; then  # PyPI has no aarch64 wheel of hnswlib: Debian's arm64 build
  rm -rf "$W/hnsw-tree"
  mmdebstrap --arch=arm64 --variant=extract --include=python3-hnswlib "$SUITE" "$W/hnsw-tree" "$MIRROR"
  cp "$W"/hnsw-tree/usr/lib/python3/dist-packages/hnswlib*.so "$SITE/"
fi

SDIST=$SRC/llama_cpp_python-0.3.36
if [ ! -d "$SDIST" ]; then
  python -m pip download --quiet llama-cpp-python==0.3.36 --no-binary :all: --no-deps -d "$SRC"
  tar -xzf "$SRC/llama_cpp_python-0.3.36.tar.gz" -C "$SRC"
fi
[ -d "$SITE/llama_cpp" ] || cp -r "$SDIST/llama_cpp" "$SITE/llama_cpp"

if [ ! -f "$LIB/libllama.so" ]; then
  echo "== llama.cpp for aarch64 ($ARM_ARCH) -> $LIB"
  cmake -S "$SDIST/vendor/llama.cpp" -B "$W/build-llama" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
    -DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++ \
    -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH="$ARM_ARCH" -DGGML_OPENMP=ON \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_COMMON=OFF
  cmake --build "$W/build-llama" -j "$(nproc)" --target llama
  mkdir -p "$LIB"
  find "$W/build-llama" -name 'lib*.so*' -exec cp -P {} "$LIB/" \;
fi
echo "== ready: tree $ROOT, site $SITE, llama.cpp $LIB"
file -L "$LIB/libllama.so" "$ROOT/usr/bin/python3.11"
