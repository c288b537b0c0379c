#!/usr/bin/env bash
# data.follow under real mpirun (1 PS server + 2 workers): training follows a directory into which
# files arrive, each worker taking every other batch of the stream; SIGTERM to the ranks stops all
# of them after the same step with a checkpoint; --resume trains exactly the complete groups of
# batches that arrived since, nothing twice and nothing skipped; the model equals one trained on
# the same rows as one file in the same cluster.   usage: mpi_follow_test.sh EMBER_BINARY
set -euo pipefail
EMBER="$1"
WORK="$(mktemp -d)"
trap 'pkill -f "ember train --config $WORK" 2>/dev/null || true; rm -rf "$WORK"' EXIT
fail() { echo "mpi_follow_test: FAIL: $*" >&2; exit 1; }
MPI=(mpirun --allow-run-as-root --oversubscribe -np 3)

"$EMBER" datagen ctr --rows 8000 --seed 1 --max-vocab 5000 --out "$WORK/all.tsv" >/dev/null 2>&1
"$EMBER" datagen ctr --rows 3000 --seed 2 --max-vocab 5000 --out "$WORK/test.tsv" >/dev/null 2>&1
mkdir -p "$WORK/stream"
# A file joins the stream whole: written beside it under a hidden .tmp name, then renamed in.
part() { sed -n "$2,$3p" "$WORK/all.tsv" > "$WORK/stream/.$1.tmp"; mv "$WORK/stream/.$1.tmp" "$WORK/stream/$1.tsv"; }
cat > "$WORK/run.toml" <<TOML
[data]
train = "$WORK/stream"
follow = true
follow_poll_seconds = 0.05
[model]
bottom_mlp = [32]
top_mlp = [32]
[embedding]
dim = 8
[train]
batch_size = 256
progress = "log"
threads = 1
[ps]
servers = 1
[checkpoint]
dir = "$WORK/ckpt"
[export]
dir = "$WORK/exports"
every_steps = 1
keep = 0
TOML
model() { printf "%s/exports/model-%012d.embx" "$WORK" "$1"; }
wait_for() { for _ in $(seq 1 1200); do [ -f "$1" ] && return 0; sleep 0.05; done; return 1; }
# Sends SIGTERM to the ranks of the mpirun with pid $1 and waits for it; fails unless it exits 0.
stop() {
  kill -TERM $(pgrep -P "$1") 2>/dev/null || true
  local rc=0; timeout 120 tail --pid="$1" -f /dev/null || { kill -9 "$1"; fail "the stopped job hung"; }
  wait "$1" || rc=$?
  [ "$rc" -eq 0 ] || { cat "$2"; fail "SIGTERM: exit status $rc"; }
}

# 6000 rows in two files: 11 complete groups of 2 x 256 (5632 rows); 368 wait for more.
part part-0 1 3000
"${MPI[@]}" "$EMBER" train --config "$WORK/run.toml" --metrics-json "$WORK/a.json" > "$WORK/a.out" 2>&1 &
job=$!
wait_for "$(model 5)" || { cat "$WORK/a.out"; fail "no export at step 5"; }
part part-1 3001 6000
wait_for "$(model 11)" || { cat "$WORK/a.out"; fail "no export at step 11"; }
sleep 0.5  # nothing more can be trained: the stream holds no complete group
[ -f "$(model 12)" ] && fail "a step trained on an incomplete group"
stop $job "$WORK/a.out"
grep -q "stopped by a signal after step 11 (epoch 1, 5632 examples in)" "$WORK/a.out" \
  || { cat "$WORK/a.out"; fail "the stop's step or position"; }
grep "stopped by a signal" "$WORK/a.out"

# Resumed with a third file: 8000 rows hold 15 groups, so 4 more steps (2048 rows), from 5632 on.
part part-2 6001 8000
"${MPI[@]}" "$EMBER" train --config "$WORK/run.toml" --resume --metrics-json "$WORK/b.json" > "$WORK/b.out" 2>&1 &
job=$!
wait_for "$(model 15)" || { cat "$WORK/b.out"; fail "no export at step 15 after the resume"; }
sleep 0.5
[ -f "$(model 16)" ] && fail "the resumed run trained an incomplete group"
stop $job "$WORK/b.out"
grep -q "resumed from $WORK/ckpt/ckpt-11 at step 11 (epoch 1, 5632 examples in)" "$WORK/b.out" \
  || { cat "$WORK/b.out"; fail "the resume line"; }
python3 - "$WORK/a.json" "$WORK/b.json" <<'PY' || fail "examples trained"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
print(f"followed under mpirun: {a['train_samples']} examples, then {b['train_samples']} after the resume")
assert a["train_samples"] == 5632 and b["train_samples"] == 2048, (a["train_samples"], b["train_samples"])
PY

# The same 7680 rows as one file, in the same cluster: the same model (sync mode is deterministic).
head -7680 "$WORK/all.tsv" > "$WORK/plain.tsv"
timeout 300 "${MPI[@]}" "$EMBER" train --config "$WORK/run.toml" --set "data.train=\"$WORK/plain.tsv\"" \
  --set data.follow=false --set "checkpoint.dir=\"$WORK/plain\"" --set "export.dir=\"\"" \
  > "$WORK/plain.out" 2>&1 || { cat "$WORK/plain.out"; fail "the plain run"; }
for d in ckpt plain; do
  "$EMBER" eval --checkpoint "$WORK/$d" --data "$WORK/test.tsv" --metrics-json "$WORK/$d.eval" > /dev/null 2>&1 \
    || fail "eval $d"
done
python3 - "$WORK/ckpt.eval" "$WORK/plain.eval" <<'PY' || fail "the followed model differs from the plain one"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
print(f"test AUC: followed, stopped and resumed {a['auc']:.6f}; the same rows as one file {b['auc']:.6f}")
assert a["auc"] == b["auc"] and a["logloss"] == b["logloss"], (a, b)
PY
echo "mpi_follow_test: all checks passed"
