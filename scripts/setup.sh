#!/usr/bin/env bash
# Installs what ember needs from Debian's packages (only what is missing), then configures and
# builds with CMake + Ninja + ccache into ${EMBER_BUILD_DIR:-build}. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  g++ cmake ninja-build ccache pkg-config
  libtorch-dev libopenblas0-pthread          # LibTorch 1.13 with OpenBLAS (≈20x the reference BLAS)
  libcli11-dev libtomlplusplus-dev nlohmann-json3-dev libxxhash-dev
  libboost-dev                               # Asio/Beast: the metrics and serving HTTP servers
  libssl-dev                                 # OpenSSL: HMAC-SHA256 and random bytes of the PS handshake
  zlib1g-dev                                 # CRC-32 of exported models
  libopenmpi-dev openmpi-bin                 # mpirun clusters, MPI all-reduce (NCCL: /usr/local/cuda if present)
  libgtest-dev libgmock-dev
  libtcmalloc-minimal4                       # the allocator ember links (1.3-1.5x training throughput)
  python3 python3-numpy python3-matplotlib   # benchmark tables and plots
)

# Callers add packages of their own (scripts/test.sh: the Prometheus server its test starts).
read -r -a EXTRA <<< "${EMBER_EXTRA_PACKAGES:-}"
PACKAGES+=("${EXTRA[@]}")

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

BUILD_DIR="${EMBER_BUILD_DIR:-build}"
export CCACHE_BASEDIR="$PWD"
export CCACHE_COMPILERCHECK=content
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${EMBER_BUILD_TYPE:-Release}" ${EMBER_CMAKE_ARGS:-} >/dev/null
# Two cores and LibTorch headers: more than 2 parallel compiles only swaps.
cmake --build "$BUILD_DIR" -- -j "${EMBER_BUILD_JOBS:-2}"
echo "setup: built $BUILD_DIR/launcher/ember"
