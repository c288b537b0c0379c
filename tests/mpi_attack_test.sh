#!/usr/bin/env bash
# Real mpirun: 1 PS server + 1 worker train while another process on the host attacks the PS
# port (tests/ps_attack.py: oversized worlds, foreign pushes, 1 GiB headers then silence,
# save and shutdown, mutated frames; no secret). The job must exit 0 with the test AUC of an
# undisturbed run, and the server's peak memory must stay within 64 MiB of that run's.
#   usage: mpi_attack_test.sh EMBER_BINARY
set -euo pipefail
EMBER="$1"
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
fail() { echo "mpi_attack_test: FAIL: $*" >&2; exit 1; }
MPIRUN=(mpirun --allow-run-as-root --oversubscribe -np 2)

"$EMBER" datagen ctr --rows 400000 --seed 1 --max-vocab 50000 --out "$WORK/train.tsv" >/dev/null 2>&1
"$EMBER" datagen ctr --rows 20000 --seed 2 --max-vocab 50000 --out "$WORK/test.tsv" >/dev/null 2>&1
cat > "$WORK/run.toml" <<TOML
[data]
train = "$WORK/train.tsv"
test = "$WORK/test.tsv"
[model]
bottom_mlp = [64]
top_mlp = [64]
[embedding]
dim = 8
[train]
batch_size = 256
epochs = 2
progress = "log"
threads = 1
[ps]
servers = 1
timeout_s = 8
[checkpoint]
dir = "$WORK/ckpt"
TOML

run() {  # name
  timeout 300 "${MPIRUN[@]}" "$EMBER" train --config "$WORK/run.toml" --metrics-json "$WORK/$1.json" > "$WORK/$1.out" 2>&1
}
run calm || { cat "$WORK/calm.out"; fail "undisturbed run"; }
run attacked &
job=$!
for _ in $(seq 1 600); do
  grep -q "ps server 0 listening on" "$WORK/attacked.out" 2>/dev/null && break
  sleep 0.1
done
port=$(sed -n 's/.*ps server 0 listening on [0-9.]*:\([0-9]*\).*/\1/p' "$WORK/attacked.out" | head -1)
[ -n "$port" ] || { cat "$WORK/attacked.out"; fail "no server port"; }
set +e
python3 "$HERE/ps_attack.py" "$port" "$WORK/evil" > "$WORK/attack.out" 2>&1
attack_rc=$?
set -e
kill -0 $job 2>/dev/null || fail "the job ended before the attack did (it must overlap training)"
wait $job || { cat "$WORK/attacked.out" "$WORK/attack.out"; fail "the attacked job did not exit 0"; }
cat "$WORK/attack.out"
[ "$attack_rc" -eq 0 ] || fail "the server answered an attacker"
grep -q "training examples\|trained" "$WORK/attacked.out" || fail "no training"
python3 - "$WORK/calm.json" "$WORK/attacked.json" "$WORK/calm.out" "$WORK/attacked.out" <<'PY' || fail "AUC or memory"
import json, re, sys
calm, hit = (json.load(open(p)) for p in sys.argv[1:3])
def server_peak(path):
    m = re.search(r"ps server 0: (\d+) connections, (\d+) refused handshakes.*peak memory (\d+) bytes", open(path).read())
    return int(m.group(1)), int(m.group(2)), int(m.group(3))
_, _, calm_peak = server_peak(sys.argv[3])
conns, refused, hit_peak = server_peak(sys.argv[4])
print("mpi_attack_test: AUC undisturbed %.6f, attacked %.6f; server peak %.1f MiB vs %.1f MiB; %d connections, %d refused handshakes"
      % (calm["auc"], hit["auc"], calm_peak / 2**20, hit_peak / 2**20, conns, refused))
assert calm["auc"] == hit["auc"], (calm["auc"], hit["auc"])
assert hit_peak - calm_peak <= 64 * 2**20, (hit_peak, calm_peak)
assert refused >= 2200, refused
PY
ls "$WORK/ckpt" | grep -q "ckpt-" || fail "no checkpoint"
echo "mpi_attack_test: PASS"
