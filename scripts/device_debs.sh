#!/usr/bin/env bash
# Downloads (does not install) the Debian packages ember builds with into .device-debs/, for a
# GPU machine without a package registry: scripts/device_check.sh unpacks them there with
# `dpkg -x`. Run here, then carry .device-debs to the device (it is git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGES=(
  cmake cmake-data ninja-build libjsoncpp25 librhash0 libuv1
  libcli11-dev libtomlplusplus-dev libtomlplusplus3 nlohmann-json3-dev libxxhash-dev libxxhash0
  libboost1.74-dev libssl-dev zlib1g-dev
  libopenmpi-dev libopenmpi3 openmpi-bin openmpi-common libhwloc15 libevent-core-2.1-7 libevent-pthreads-2.1-7
  libpmix2 libfabric1 libucx0 libibverbs1 librdmacm1 libpsm2-2 libnl-3-200 libnl-route-3-200
  libgtest-dev googletest libgmock-dev libtcmalloc-minimal4
)
mkdir -p .device-debs
cd .device-debs
apt-get download "${PACKAGES[@]}"
du -sh .
