#!/usr/bin/env bash
# Set-up (packages + build), then the whole test suite through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
# prometheus: tests/prometheus_test.py starts a real server on loopback.
EMBER_EXTRA_PACKAGES="prometheus ${EMBER_EXTRA_PACKAGES:-}" bash scripts/setup.sh
BUILD_DIR="${EMBER_BUILD_DIR:-build}"
export OMP_WAIT_POLICY=PASSIVE
ctest --test-dir "$BUILD_DIR" -j 2 --output-on-failure --timeout 900
