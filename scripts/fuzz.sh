#!/usr/bin/env bash
# Builds the libFuzzer target of the PS frame parser with clang (Debian's clang and
# libclang-rt-dev: -fsanitize=fuzzer,address,undefined) and runs it for a bounded time.
#   bash scripts/fuzz.sh [SECONDS=60]
# Prints executions and crashes; exits non-zero if the fuzzer found a crash (kept in
# build-fuzz/crashes/).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN="${1:-60}"
OUT=build-fuzz
mkdir -p "$OUT/corpus" "$OUT/crashes"
for p in clang libclang-rt-dev libxxhash-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || MISSING="${MISSING:-} $p"
done
if [ -n "${MISSING:-}" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $MISSING
fi
clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Icommon/include -Iembedding/include -Ips/include \
  tests/fuzz/wire_fuzz.cc ps/wire.cc embedding/admission.cc common/status.cc -o "$OUT/wire_fuzz"
# Seeds: valid frames (protocol version 3) of every type, written by the unit test's encoders through a tiny driver.
python3 - "$OUT/corpus" <<'PY'
import struct, sys, os
d = sys.argv[1]
def frame(t, payload):
    return struct.pack("<IHHQII", 0x504d4245, 3, t, 7, len(payload), 0) + payload
keys = struct.pack("<3Q", 10, 12, 13)
seeds = {
    "ping": frame(1, b""), "stats": frame(5, b""), "shutdown": frame(9, b""),
    "pull": frame(3, struct.pack("<QIIBQ", 4, 1, 1, 1, 3) + keys),
    "push": frame(4, struct.pack("<IIQI", 1, 2, 3, 1) + struct.pack("<IIIQ", 1, 2, 2, 1) + struct.pack("<Q", 5)
                  + struct.pack("<2f", 1, 2)),
    "apply": frame(6, struct.pack("<iIIdBQ", 1, 3, 4, 0.5, 1, 42)),
    "save": frame(7, struct.pack("<I", 5) + b"/ckpt"),
    "load": frame(8, struct.pack("<I", 5) + b"/ckpt" + struct.pack("<I", 1) + struct.pack("<I", 11) + b"shard-0.bin"
                  + struct.pack("<QQ", 100, 7)),
    "error": frame(0, struct.pack("<iI", 2, 4) + b"gone"),
    "create": frame(2, struct.pack("<I", 1) + struct.pack("<IiQfQifffffifBi", 3, 8, 1000, 0.01, 9, 2, 0.05, 1e-8,
                                                            0.9, 0.999, 0, 0, 1.0, 0, 0)
                    + struct.pack("<IfIIQ", 5, 1.0, 4096, 4, 100)),  # lifecycle: admission, sketch, expiry
}
for name, data in seeds.items():
    open(os.path.join(d, name), "wb").write(data)
PY
set +e
"$OUT/wire_fuzz" "$OUT/corpus" -max_total_time="$SECONDS_TO_RUN" -artifact_prefix="$OUT/crashes/" \
  -print_final_stats=1 -max_len=4096 2>"$OUT/fuzz.log"
rc=$?
set -e
grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$OUT/fuzz.log" || true
crashes=$(ls "$OUT/crashes" | wc -l)
echo "fuzz: exit $rc, crashes $crashes (artifacts in $OUT/crashes/), corpus $(ls "$OUT/corpus" | wc -l) inputs"
[ "$rc" -eq 0 ] && [ "$crashes" -eq 0 ]
