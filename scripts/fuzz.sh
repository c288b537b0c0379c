#!/usr/bin/env bash
# Builds ember's libFuzzer targets with clang (Debian's clang and libclang-rt-dev:
# -fsanitize=fuzzer,address,undefined) and runs them:
#   session  the PS server's connection state machine over memory against a real shard:
#            programs of frames from two authenticated workers and a stranger (create, pull,
#            push, apply, save, load, stats, shutdown, handshakes, raw bytes, parked pulls)
#   wire     the frame parser and every request decoder on their own
#   request  `ember serve`'s prediction bodies (JSON and tab-separated) into batches
#   bash scripts/fuzz.sh [SECONDS=60] [TARGET=session|wire|request|all] [RUNS=0 (unbounded)]
# Prints executions and crashes per target; exits non-zero if a fuzzer found a crash (kept in
# build-fuzz/crashes-<target>/). Seeds are written by this script (protocol version 6).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN="${1:-60}"
TARGET="${2:-all}"
RUNS="${3:-0}"
OUT=build-fuzz
for p in clang libclang-rt-dev libxxhash-dev libssl-dev zlib1g-dev nlohmann-json3-dev libboost-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || MISSING="${MISSING:-} $p"
done
if [ -n "${MISSING:-}" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $MISSING
fi
mkdir -p "$OUT"
FLAGS=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -Icommon/include -Iembedding/include -Ips/include)
COMMON=(common/status.cc common/hash.cc common/file.cc common/env.cc)
EMBEDDING=(embedding/admission.cc embedding/kernels.cc embedding/table.cc embedding/row_store.cc
           embedding/sparse_store.cc embedding/method.cc embedding/plan.cc embedding/dedup.cc embedding/export.cc
           embedding/export_chain.cc)
build() {  # name sources...
  local name=$1; shift
  if [ ! -x "$OUT/$name" ] || [ -n "$(find "$@" ps/include common/include embedding/include -newer "$OUT/$name" 2>/dev/null | head -1)" ]; then
    echo "fuzz: building $name"
    clang++ "${FLAGS[@]}" "$@" -o "$OUT/$name" -lcrypto -lxxhash -lz -lpthread
  fi
}

python3 - "$OUT" <<'PY'
import struct, sys, os
out = sys.argv[1]
V = 6
def frame(t, payload, rid=7):
    return struct.pack("<IHHQII", 0x504d4245, V, t, rid, len(payload), 0) + payload
def spec(tid, dim=4, admit=0, width=0, expire=0, kind=0, density=1.0, opt=2):
    return (struct.pack("<IiQfQifffffifBi", tid, dim, 1000, 0.01, 9, opt, 0.05, 1e-8, 0.9, 0.999, 0, kind,
                        density, 0, 0) + struct.pack("<IfIIQ", admit, 1.0, width, 4 if width else 4, expire))
def create(*specs): return struct.pack("<I", len(specs)) + b"".join(specs)
def keys(table, *k): return struct.pack("<%dQ" % len(k), *[(table << 54) | x for x in k])  # embedding::MakeKey
def pull(wait, table, ks, create_missing=1):
    return struct.pack("<QIIBQ", wait, 1, table, create_missing, len(ks)) + keys(table, *ks)
def push(worker, workers, step, agg, table, dim, ks):
    g = struct.pack("<%df" % (dim * len(ks)), *([0.5] * (dim * len(ks))))
    return struct.pack("<IIQII", worker, workers, step, agg, 1) + struct.pack("<IIQ", table, dim, len(ks)) + keys(table, *ks) + g
def push_ref(worker, workers, step, agg, pull_id, table, dim, n):  # the keys of pull `pull_id`
    g = struct.pack("<%df" % (dim * n), *([0.5] * (dim * n)))
    return struct.pack("<IIQIQI", worker, workers, step, agg | 2, pull_id, 1) + struct.pack("<IIQ", table, dim, n) + g
def op(kind, table, dst=0, value=0.5, reinit=0, seed=1): return struct.pack("<iIIdBQ", kind, table, dst, value, reinit, seed)
def string(s): return struct.pack("<I", len(s)) + s
CKPT = b"/tmp/ember-ps-fuzz/ckpt"
def load(names): return string(CKPT) + struct.pack("<I", len(names)) + b"".join(string(n) + struct.pack("<QQ", 100, 7) for n in names)

# --- wire: one frame each
wire = {
    "ping": frame(1, b""), "stats": frame(5, b""), "shutdown": frame(9, b""),
    "pull": frame(3, pull(1, 1, [3])), "push": frame(4, push(1, 2, 3, 1, 2, 2, [5])),
    "apply": frame(6, op(1, 3, 4)), "save": frame(7, string(CKPT)), "load": frame(8, load([b"shard-0.bin"])),
    "error": frame(0, struct.pack("<iI", 2, 4) + b"gone"), "create": frame(2, create(spec(3, 8, 5, 4096, 100))),
    "challenge": frame(10, b"\x01" * 32), "hello": frame(11, b"\x02" * 68),
}
# --- session: programs (op 1: k, type, u16 len, payload; op 0: raw; op 2: unpark; op 3: replace)
def F(k, t, payload): return bytes([1, k, t]) + struct.pack("<H", len(payload)) + payload
def R(k, raw): return bytes([0, k]) + struct.pack("<H", len(raw)) + raw
U = bytes([2])
def NEW(k, worker): return bytes([3, k]) + struct.pack("<I", worker)
T = create(spec(0, 4), spec(1, 8, kind=1, density=0.5), spec(2, 4, admit=2, width=64, expire=3), spec(3, 2, opt=3))
def program(*records):  # op-1 records (k, type, payload); a frame's request id is where its record ends
    out, ids = b"", []
    for k, t, payload in records:
        payload = payload(ids) if callable(payload) else payload
        out += F(k, t, payload)
        ids.append(len(out))
    return out
session = {
    "train_sync": F(0, 2, T) + F(0, 3, pull(0, 0, [1, 2, 3])) + F(0, 4, push(0, 2, 0, 1, 0, 4, [1, 2]))
                  + F(1, 3, pull(1, 0, [1])) + F(1, 4, push(1, 2, 0, 1, 0, 4, [2, 3])) + U
                  + F(0, 4, push(0, 2, 1, 1, 0, 4, [1])) + F(1, 4, push(1, 2, 1, 1, 0, 4, [9])) + F(0, 5, b""),
    "train_async": F(0, 2, T) + F(0, 4, push(0, 2, 0, 0, 2, 4, [4, 5])) + F(1, 4, push(1, 2, 0, 0, 2, 4, [4]))
                   + F(0, 3, pull(1, 2, [4, 5, 6])) + F(0, 4, push(0, 2, 1, 0, 2, 4, [6])) + U + F(1, 5, b""),
    "maintenance": F(0, 2, T) + F(0, 3, pull(0, 1, [7, 8])) + F(0, 6, op(3, 1, value=1)) + F(0, 4, push(0, 2, 0, 0, 1, 8, [7]))
                   + F(0, 6, op(4, 1, value=0.3)) + F(0, 6, op(0, 0, value=0.0)) + F(0, 6, op(1, 0, 3, 0.0, 1))
                   + F(0, 6, op(2, 3)) + F(0, 5, b""),
    "save_load": F(0, 2, T) + F(0, 3, pull(0, 0, [1, 2])) + F(0, 7, string(CKPT)) + F(1, 8, load([b"shard-0.bin"]))
                 + F(0, 7, string(b"/tmp")) + F(0, 8, load([b"../x"])),
    "stranger": R(2, frame(7, string(CKPT))) + NEW(2, 0xFFFFFFFE) + R(2, frame(9, b""))
                + NEW(2, 0xFFFFFFFE) + R(2, struct.pack("<IHHQII", 0x504d4245, V, 4, 1, 1 << 30, 0)),
    "tool": NEW(2, 0xFFFFFFFF) + F(2, 2, T) + F(2, 4, push(0, 2, 0, 1, 0, 4, [1])) + F(2, 4, push(0, 0, 0, 0, 0, 4, [1]))
            + F(2, 5, b"") + F(2, 9, b""),
    "reconnect": F(0, 2, T) + F(0, 3, pull(3, 0, [1])) + NEW(0, 0) + F(1, 4, push(1, 2, 0, 1, 0, 4, [1])) + U
                 + NEW(1, 1) + F(1, 11, b"\x00" * 68) + F(0, 4, push(1, 2, 0, 1, 0, 4, [1])),
    "stall": F(0, 2, T) + R(0, struct.pack("<IHHQII", 0x504d4245, V, 4, 1, 60000, 0) + b"\x00" * 100)
             + F(1, 3, pull(0, 0, [2])),
    # pushes naming a pull's keys: the right one, then another connection's, a stale one, a short one
    "push_by_reference": program((0, 2, T), (0, 3, pull(0, 0, [1, 2, 3])),
                                 (0, 4, lambda ids: push_ref(0, 2, 0, 1, ids[1], 0, 4, 3)),
                                 (1, 4, lambda ids: push_ref(1, 2, 0, 1, ids[1], 0, 4, 3)),
                                 (1, 3, pull(0, 0, [4])), (0, 3, pull(1, 0, [5, 6])),
                                 (0, 4, lambda ids: push_ref(0, 2, 1, 0, ids[1], 0, 4, 3)),
                                 (0, 4, lambda ids: push_ref(0, 2, 1, 0, ids[5], 0, 4, 1))),
}
# --- request: first byte: bit 0 the CSV schema of every column role (else Criteo), bit 1 TSV
crit = "\t".join(["3", "", "7"] + [""] * 10 + ["68fd1e64", "80e26c9b", ""] + ["0a519c5c"] * 23)
every = ["1.5", "41", "alice", "ff0a", "17", "a|b|c", "x:0.5;y:2", "14102100"]
request = {
    "criteo_json": b"\x00" + ('{"rows": [[%s]]}' % ",".join('"%s"' % f for f in crit.split("\t"))).encode(),
    "criteo_json_rows": b"\x00" + ('{"rows": [[%s], [%s]]}' % ((",".join('"%s"' % f for f in crit.split("\t")),) * 2)).encode(),
    "criteo_tsv": b"\x02" + (crit + "\n" + crit + "\r\n").encode(),
    "every_json_array": b"\x01" + ('{"rows": [[%s]]}' % ",".join('"%s"' % f for f in every)).encode(),
    "every_json_object": b"\x01" + b'{"rows": [{"price": 2, "tags": ["a", "b"], "clicks": "x:1", "hour": "14102100"}]}',
    "every_tsv": b"\x03" + ("\t".join(every) + "\n").encode(),
}
for name, sets in (("wire", wire), ("session", session), ("request", request)):
    d = os.path.join(out, "corpus-" + name)
    os.makedirs(d, exist_ok=True)
    for k, v in sets.items():
        open(os.path.join(d, k), "wb").write(v)
PY

status=0
run() {  # name
  local name=$1
  mkdir -p "$OUT/crashes-$name"
  local extra=()
  [ "$RUNS" != "0" ] && extra+=(-runs="$RUNS")
  set +e
  "$OUT/${name}_fuzz" "$OUT/corpus-$name" -max_total_time="$SECONDS_TO_RUN" -artifact_prefix="$OUT/crashes-$name/" \
    -print_final_stats=1 -max_len=4096 -rss_limit_mb=3072 "${extra[@]}" 2>"$OUT/fuzz-$name.log"
  local rc=$?
  set -e
  local execs
  execs=$(grep -E "stat::number_of_executed_units" "$OUT/fuzz-$name.log" | awk '{print $2}')
  local crashes
  crashes=$(ls "$OUT/crashes-$name" | wc -l)
  echo "fuzz $name: exit $rc, executions ${execs:-?}, crashes $crashes (artifacts in $OUT/crashes-$name/), corpus $(ls "$OUT/corpus-$name" | wc -l) inputs"
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then status=1; fi
}
if [ "$TARGET" = "wire" ] || [ "$TARGET" = "all" ]; then
  build wire_fuzz tests/fuzz/wire_fuzz.cc ps/wire.cc embedding/admission.cc common/status.cc
  run wire
fi
if [ "$TARGET" = "session" ] || [ "$TARGET" = "all" ]; then
  build session_fuzz tests/fuzz/session_fuzz.cc ps/server.cc ps/shard.cc ps/wire.cc ps/auth.cc ps/in_process.cc \
    "${EMBEDDING[@]}" "${COMMON[@]}"
  run session
fi
if [ "$TARGET" = "request" ] || [ "$TARGET" = "all" ]; then
  FLAGS+=(-Idata/include -Iserving/include)
  build request_fuzz tests/fuzz/request_fuzz.cc serving/request_rows.cc data/schema.cc data/criteo.cc data/vocab.cc \
    "${COMMON[@]}"
  run request
fi
exit $status
