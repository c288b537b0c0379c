#!/usr/bin/env bash
# Recovery under real mpirun: a server rank killed with SIGKILL mid-training ends the job naming
# it; `ember train --resume` on a different cluster (2 -> 3 servers) continues from the newest
# complete checkpoint and, in sync mode, ends exactly like an uninterrupted run from that same
# checkpoint. A process killed while it writes checkpoints leaves the previous one usable. SIGTERM
# stops every rank at one step; the resumed run (on 3 servers) ends like the uninterrupted one and
# its delta exports, chained across the reshard, resolve to the final checkpoint's full export.
#   usage: mpi_resume_test.sh EMBER_BINARY
set -euo pipefail
EMBER="$1"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
fail() { echo "mpi_resume_test: FAIL: $*" >&2; exit 1; }
MPI=(mpirun --allow-run-as-root --oversubscribe)

"$EMBER" datagen ctr --rows 60000 --seed 1 --max-vocab 20000 --out "$WORK/train.tsv" >/dev/null 2>&1
"$EMBER" datagen ctr --rows 10000 --seed 2 --max-vocab 20000 --out "$WORK/test.tsv" >/dev/null 2>&1
cat > "$WORK/run.toml" <<TOML
[data]
train = "$WORK/train.tsv"
test = "$WORK/test.tsv"
[model]
bottom_mlp = [32]
top_mlp = [32]
[embedding]
dim = 8
[train]
batch_size = 256
epochs = 3
progress = "log"
log_interval_s = 0.5
threads = 1
[ps]
servers = 2
[checkpoint]
dir = "$WORK/a"
every_steps = 40
keep = 0
TOML

# 2 servers + 2 workers; once checkpoint 120 exists, SIGKILL server rank 1.
"${MPI[@]}" -np 4 "$EMBER" train --config "$WORK/run.toml" > "$WORK/kill.out" 2>&1 &
job=$!
victim=""
for _ in $(seq 1 600); do
  if [ -f "$WORK/a/ckpt-120/manifest.json" ]; then
    for pid in $(pgrep -f "ember train --config $WORK/run.toml" || true); do
      if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1"; then victim=$pid; fi
    done
    break
  fi
  sleep 0.1
done
[ -n "$victim" ] || { kill $job 2>/dev/null; cat "$WORK/kill.out"; fail "no checkpoint 120 or no rank 1"; }
kill -9 "$victim"
if timeout 120 tail --pid=$job -f /dev/null; then :; else kill -9 $job; fail "the job hung after a rank died"; fi
if wait $job; then fail "the job exited 0 after a rank died"; fi
grep -Eq "rank 1|PS server 1" "$WORK/kill.out" || { cat "$WORK/kill.out"; fail "the dead rank is not named"; }
latest=$("$EMBER" inspect "$WORK/a" | awk 'NR == 1 {print $2}')
echo "killed server rank 1; newest complete checkpoint: $latest"

# The same checkpoint alone in another directory: the uninterrupted run from it.
mkdir -p "$WORK/b"
cp -r "$latest" "$WORK/b/"
for d in a b; do
  timeout 300 "${MPI[@]}" -np 5 "$EMBER" train --config "$WORK/run.toml" --set ps.servers=3 \
    --set "checkpoint.dir=\"$WORK/$d\"" --resume --metrics-json "$WORK/$d.json" > "$WORK/$d.out" 2>&1 \
    || { cat "$WORK/$d.out"; fail "resume in $d on 3 servers"; }
done
grep -q "resumed from $latest at step" "$WORK/a.out" || { cat "$WORK/a.out"; fail "resumed from another checkpoint"; }
python3 - "$WORK/a.json" "$WORK/b.json" <<'PY' || fail "the resumed run differs from the uninterrupted one"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
print(f"resumed after the kill: AUC {a['auc']:.6f} logloss {a['logloss']:.6f} rows {a['table_rows']}; "
      f"uninterrupted from the same checkpoint: AUC {b['auc']:.6f} logloss {b['logloss']:.6f} rows {b['table_rows']}")
for k in ("auc", "logloss", "table_rows", "table_values", "train_samples"):
    assert a[k] == b[k], (k, a[k], b[k])
PY
# Both final checkpoints hold the same tables (3 shard files each), and score the same in one process.
"$EMBER" inspect "$WORK/a" --json > "$WORK/a.inspect"
"$EMBER" inspect "$WORK/b" --json > "$WORK/b.inspect"
python3 - "$WORK/a.inspect" "$WORK/b.inspect" <<'PY' || fail "final checkpoints differ"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert sum(f["kind"] == "shard" for f in a["files"]) == 3, a["files"]
assert [(t["id"], t["rows"], t["values"]) for t in a["tables"]] == [(t["id"], t["rows"], t["values"]) for t in b["tables"]]
print(f"final checkpoints: step {a['step']}, {len(a['tables'])} tables, {sum(t['rows'] for t in a['tables'])} rows each")
PY
for d in a b; do "$EMBER" eval --checkpoint "$WORK/$d" --metrics-json "$WORK/$d.eval" > /dev/null 2>&1 || fail "eval $d"; done
python3 -c "import json; a=json.load(open('$WORK/a.eval')); b=json.load(open('$WORK/b.eval')); assert a['logloss']==b['logloss'], (a,b)" \
  || fail "the final checkpoints score differently"

# The same checkpoint resumed by another number of workers (1 server + 3 workers): it continues
# from the recorded data position, each worker taking its third of what remains.
mkdir -p "$WORK/w3"
cp -r "$latest" "$WORK/w3/"
timeout 300 "${MPI[@]}" -np 4 "$EMBER" train --config "$WORK/run.toml" --set ps.servers=1 \
  --set "checkpoint.dir=\"$WORK/w3\"" --resume --metrics-json "$WORK/w3.json" > "$WORK/w3.out" 2>&1 \
  || { cat "$WORK/w3.out"; fail "resume with 3 workers"; }
python3 - "$WORK/w3.json" "$latest/manifest.json" <<'PY' || fail "3-worker resume"
import json, sys
m, man = (json.load(open(p)) for p in sys.argv[1:])
pos = man["position"]
remaining = (3 - pos["epoch"]) * 60000 - pos["examples"]
print(f"resumed on 1 server + 3 workers from epoch {pos['epoch']} + {pos['examples']} examples: "
      f"trained {m['train_samples']} of the {remaining} remaining, AUC {m['auc']:.5f}")
# Each epoch may drop one incomplete group of 3 batches of 256.
assert remaining - 3 * 3 * 256 <= m["train_samples"] <= remaining, (m["train_samples"], remaining)
assert m["auc"] > 0.8, m["auc"]
PY

# One process writing a checkpoint every step, killed at 3 moments: each time the newest complete
# checkpoint verifies and resumes.
sed -e "s|dir = \"$WORK/a\"|dir = \"$WORK/c\"|" -e 's/every_steps = 40/every_steps = 1/' -e 's/keep = 0/keep = 2/' \
  "$WORK/run.toml" > "$WORK/one.toml"
for delay in 0.3 0.7 1.1; do
  rm -rf "$WORK/c"
  "$EMBER" train --config "$WORK/one.toml" --set ps.servers=1 > "$WORK/c.out" 2>&1 &
  pid=$!
  # Kill at `delay` s after this run's first complete checkpoint appears: mid-run, mid-writes.
  for _ in $(seq 1 600); do ls "$WORK"/c/ckpt-*/manifest.json > /dev/null 2>&1 && break; sleep 0.02; done
  sleep "$delay"
  kill -9 $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  "$EMBER" inspect "$WORK/c" > "$WORK/c.inspect" 2>&1 || { cat "$WORK/c.inspect"; fail "no usable checkpoint after a kill at ${delay}s"; }
  head -2 "$WORK/c.inspect" | tail -1
done
tmp_before=$(ls "$WORK/c" | grep -c "\.tmp-" || true)
timeout 300 "$EMBER" train --config "$WORK/one.toml" --set train.epochs=1 --resume > "$WORK/c2.out" 2>&1 \
  || { cat "$WORK/c2.out"; fail "resume after the kills"; }
grep -q "resumed from" "$WORK/c2.out" || fail "no resume line"
# Half-written checkpoints of the killed processes (ckpt-N.tmp-PID) were never used, and the next
# checkpoint write removed them.
echo "half-written checkpoints left by the kills: $tmp_before; after the resumed run: $(ls "$WORK/c" | grep -c "\.tmp-" || true)"
[ "$(ls "$WORK/c" | grep -c "\.tmp-" || true)" -eq 0 ] || fail "stale ckpt-N.tmp-PID directories remain"
# SIGTERM to every rank mid-training (what a scheduler's preemption sends): the workers finish the
# same step, the lead checkpoints there, every rank exits 0; --resume then ends like the run that
# was never stopped. (Signalling mpirun itself stops the ranks the same way, but Open MPI's mpirun
# then reports exit status 1 for having been signalled.)
"$EMBER" datagen ctr --rows 30000 --seed 3 --max-vocab 20000 --out "$WORK/small.tsv" >/dev/null 2>&1
T=(--config "$WORK/run.toml" --set "data.train=\"$WORK/small.tsv\"" --set train.epochs=6 --set checkpoint.every_steps=0)
timeout 300 "${MPI[@]}" -np 4 "$EMBER" train "${T[@]}" --set "checkpoint.dir=\"$WORK/t-full\"" \
  --metrics-json "$WORK/t-full.json" > "$WORK/t-full.out" 2>&1 || { cat "$WORK/t-full.out"; fail "uninterrupted run"; }
# The stopped run also exports every 50 steps, as deltas after the first; resumed on 3 servers, the
# chain goes on across the reshard and resolves to exactly `ember export` of the final checkpoint.
E=(--set "export.dir=\"$WORK/t/exports\"" --set export.every_steps=50 --set export.delta=true --set export.keep=0)
"${MPI[@]}" -np 4 "$EMBER" train "${T[@]}" "${E[@]}" --set "checkpoint.dir=\"$WORK/t\"" > "$WORK/t.out" 2>&1 &
MPIRUN_PID=$!
for _ in $(seq 600); do grep -q "train epoch 2/6" "$WORK/t.out" && break; sleep 0.05; done
kill -TERM $(pgrep -P "$MPIRUN_PID") 2>/dev/null || true
rc=0; wait "$MPIRUN_PID" || rc=$?
[ "$rc" -eq 0 ] || { cat "$WORK/t.out"; fail "SIGTERM: exit status $rc"; }
grep -q "stopped by a signal after step" "$WORK/t.out" || { cat "$WORK/t.out"; fail "SIGTERM: no stop message"; }
grep "stopped by a signal" "$WORK/t.out"
stopped_exports=$(ls "$WORK/t/exports" | wc -l)
timeout 300 "${MPI[@]}" -np 5 "$EMBER" train "${T[@]}" "${E[@]}" --set ps.servers=3 --set "checkpoint.dir=\"$WORK/t\"" \
  --resume --metrics-json "$WORK/t-resumed.json" > "$WORK/t-resumed.out" 2>&1 || { cat "$WORK/t-resumed.out"; fail "resume after SIGTERM"; }
head=$(ls "$WORK/t/exports"/model-*.embx | tail -1)
"$EMBER" export --flatten "$head" --out "$WORK/t-flat.embx" > /dev/null || fail "flatten $head"
"$EMBER" export --checkpoint "$WORK/t" --out "$WORK/t-full.embx" > /dev/null || fail "export the final checkpoint"
cmp "$WORK/t-flat.embx" "$WORK/t-full.embx" || fail "the delta chain differs from the full export of the checkpoint"
python3 - "$head" "$stopped_exports" "$WORK/t-full.embx" <<'PY' || fail "the delta chain"
import json, os, struct, sys
head, before, full = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(head, "rb") as f:
    f.read(8)
    (n,) = struct.unpack("<Q", f.read(8))
    delta = json.loads(f.read(n))["delta"]
files = sorted(os.listdir(os.path.dirname(head)))
print(f"delta chain across 2 -> 3 servers: {len(files)} exports ({before} before the stop), head {os.path.basename(head)} "
      f"is delta {delta['sequence']} of {delta['base']}; {os.path.getsize(head)} bytes against {os.path.getsize(full)} "
      f"for the full export; resolved, equal to it byte for byte")
assert delta["sequence"] == len(files) - 1 and delta["base"] == files[0] and before >= 2, (delta, files, before)
PY
python3 - "$WORK/t-full.json" "$WORK/t-resumed.json" <<'PY' || fail "stopped and resumed differs from uninterrupted"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
print("SIGTERM + resume: test AUC %.6f, uninterrupted %.6f" % (b["auc"], a["auc"]))
assert abs(a["auc"] - b["auc"]) < 1e-4 and a["table_rows"] == b["table_rows"], (a["auc"], b["auc"])
PY
echo "mpi_resume_test: all checks passed"
