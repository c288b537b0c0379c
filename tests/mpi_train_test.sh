#!/usr/bin/env bash
# Real mpirun: 2 PS servers + 2 workers train DLRM, Wide & Deep and DCN-v2 to the AUC of one process with the same global
# batch; a server killed with SIGKILL mid-training makes the job exit non-zero, naming the rank,
# without hanging.   usage: mpi_train_test.sh EMBER_BINARY
set -euo pipefail
EMBER="$1"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
fail() { echo "mpi_train_test: FAIL: $*" >&2; exit 1; }
MPIRUN=(mpirun --allow-run-as-root --oversubscribe -np 4)

"$EMBER" datagen ctr --rows 60000 --seed 1 --max-vocab 20000 --out "$WORK/train.tsv" >/dev/null 2>&1
"$EMBER" datagen ctr --rows 20000 --seed 2 --max-vocab 20000 --out "$WORK/test.tsv" >/dev/null 2>&1
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
batch_size = 512
progress = "log"
threads = 1
[ps]
servers = 2
shards = 2
TOML

# One process, global batch 512 (2 in-process shards).
"$EMBER" train --config "$WORK/run.toml" --metrics-json "$WORK/one.json" > "$WORK/one.out" 2>&1 \
  || { cat "$WORK/one.out"; fail "single-process run"; }
# 2 servers + 2 workers, 256 per worker: the same global batch.
timeout 300 "${MPIRUN[@]}" "$EMBER" train --config "$WORK/run.toml" --set train.batch_size=256 \
  --set "checkpoint.dir=\"$WORK/ckpt\"" --metrics-json "$WORK/four.json" > "$WORK/four.out" 2>&1 \
  || { cat "$WORK/four.out"; fail "mpirun 2+2 run"; }
grep -q "cluster: 2 PS servers, 2 workers, train.mode sync" "$WORK/four.out" || { cat "$WORK/four.out"; fail "roles"; }
grep -Eq "dense all-reduce: (MPI|NCCL)" "$WORK/four.out" || { cat "$WORK/four.out"; fail "collective"; }
# Feature admission and expiry across servers: servers count and admit, workers read fallbacks.
timeout 300 "${MPIRUN[@]}" "$EMBER" train --config "$WORK/run.toml" --set train.batch_size=256 \
  --set embedding.admit_after=3 --set embedding.expire_after_steps=40 --metrics-json "$WORK/admit.json" \
  > "$WORK/admit.out" 2>&1 || { cat "$WORK/admit.out"; fail "mpirun admission run"; }
python3 - "$WORK/four.json" "$WORK/admit.json" <<'PY' || { cat "$WORK/admit.out"; fail "admission across servers"; }
import json, sys
four, admit = (json.load(open(p)) for p in sys.argv[1:])
assert admit["table_rows"] < 0.6 * four["table_rows"], (admit["table_rows"], four["table_rows"])
assert admit["auc"] > 0.65 and abs(admit["auc"] - four["auc"]) < 0.03, (admit["auc"], four["auc"])
PY
# Wide & Deep (FTRL first-order weights, scaled to the global batch) and DCN-v2 for 2 epochs (the
# rows reset between them by the lead, every worker waiting): 2 + 2 in sync mode match one process.
for model in wide_deep dcn_v2; do
  M=(--config "$WORK/run.toml" --set "model.name=\"$model\"" --set train.epochs=2)
  "$EMBER" train "${M[@]}" --metrics-json "$WORK/$model-one.json" > "$WORK/$model-one.out" 2>&1 \
    || { cat "$WORK/$model-one.out"; fail "single-process $model run"; }
  timeout 300 "${MPIRUN[@]}" "$EMBER" train "${M[@]}" --set train.batch_size=256 --metrics-json "$WORK/$model-four.json" \
    > "$WORK/$model-four.out" 2>&1 || { cat "$WORK/$model-four.out"; fail "mpirun 2+2 $model run"; }
  python3 - "$WORK/$model-one.json" "$WORK/$model-four.json" <<'PY' || { cat "$WORK/$model-four.out"; fail "$model under mpirun"; }
import json, sys
one, four = (json.load(open(p)) for p in sys.argv[1:])
assert one["auc"] > 0.7 and abs(one["auc"] - four["auc"]) < 0.003, (one["auc"], four["auc"])
print("mpirun", one.get("model", ""), "one process AUC %.5f, 2+2 %.5f" % (one["auc"], four["auc"]))
PY
done
# A user's CSV with every schema role and pooling (header, quoted fields, string / hex / int ids,
# sum / mean / weighted bags, an Avazu-style hour, an ignored column): 2 + 2 in sync mode match one
# process.
"$EMBER" datagen ctr --rows 40000 --seed 1 --fields 6 --dense 3 --max-vocab 5000 --multi-hot 2 --multi-hot-vocab 500 \
  --multi-hot-scale 2 --out "$WORK/mh.tsv" >/dev/null 2>&1
"$EMBER" datagen ctr --rows 10000 --seed 2 --fields 6 --dense 3 --max-vocab 5000 --multi-hot 2 --multi-hot-vocab 500 \
  --multi-hot-scale 2 --out "$WORK/mh_test.tsv" >/dev/null 2>&1
python3 - "$WORK/mh.tsv" "$WORK/mh_test.tsv" <<'PY'
import csv, sys
for path in sys.argv[1:]:
    with open(path) as f, open(path[:-4] + ".csv", "w", newline="") as out:
        w = csv.writer(out)
        w.writerow(["row_id", "click", "hour", "I1", "I2", "I3", "C1", "C2", "C3", "C4", "C5", "C6", "M1", "M2", "M3"])
        for i, line in enumerate(f):
            v = line.rstrip("\n").split("\t")
            hour = "141%03d%02d" % (21 + i // 24 % 9, i % 24)
            c2 = str(int(v[5], 16)) if v[5] else ""
            m2 = ";".join(x + ":1.5" for x in v[11].split("|") if x)
            w.writerow([i, v[0], hour, v[1], v[2], v[3], v[4], c2, "q, %s" % v[6], v[7], v[8], v[9], v[10], m2,
                        v[10]])
PY
cat > "$WORK/schema.toml" <<'TOML'
delimiter = ","
header = true
[[columns]]
name = "row_id"
role = "ignore"
[[columns]]
name = "click"
role = "label"
[[columns]]
name = "hour"
role = "yymmddhh"
[[columns]]
name = "I1"
role = "dense"
[[columns]]
name = "I2"
role = "dense"
transform = "none"
[[columns]]
name = "I3"
role = "dense"
transform = "standardize"
[[columns]]
name = "C1"
role = "categorical"
encoding = "hex"
[[columns]]
name = "C2"
role = "categorical"
encoding = "int"
[[columns]]
name = "C3"
[[columns]]
name = "C4"
[[columns]]
name = "C5"
[[columns]]
name = "C6"
[[columns]]
name = "M1"
role = "multi_hot"
pooling = "mean"
[[columns]]
name = "M2"
role = "multi_hot"
separator = ";"
weighted = true
[[columns]]
name = "M3"
role = "multi_hot"
pooling = "sum"
TOML
S=(--config "$WORK/run.toml" --set 'data.format="csv"' --set "data.schema=\"$WORK/schema.toml\""
  --set "data.train=\"$WORK/mh.csv\"" --set "data.test=\"$WORK/mh_test.csv\"")
"$EMBER" train "${S[@]}" --metrics-json "$WORK/schema-one.json" > "$WORK/schema-one.out" 2>&1 \
  || { cat "$WORK/schema-one.out"; fail "single-process schema run"; }
timeout 300 "${MPIRUN[@]}" "$EMBER" train "${S[@]}" --set train.batch_size=256 --metrics-json "$WORK/schema-four.json" \
  > "$WORK/schema-four.out" 2>&1 || { cat "$WORK/schema-four.out"; fail "mpirun 2+2 schema run"; }
python3 - "$WORK/schema-one.json" "$WORK/schema-four.json" <<'PY' || { cat "$WORK/schema-four.out"; fail "schema under mpirun"; }
import json, sys
one, four = (json.load(open(p)) for p in sys.argv[1:])
assert one["auc"] > 0.7 and abs(one["auc"] - four["auc"]) < 0.003, (one["auc"], four["auc"])
print("mpirun schema: one process AUC %.5f, 2+2 %.5f" % (one["auc"], four["auc"]))
PY
# Session recommendation through the same PS path: M2TRec on 2 servers + 2 workers, one epoch
# with checkpoints, then resumed for a second; the validation-chosen checkpoint evaluated in one
# process scores what the run reported.
"$EMBER" datagen sessions --sessions 3000 --items 300 --out "$WORK/sessions.tsv" --items-out "$WORK/items.tsv" \
  >/dev/null 2>&1
M2TREC=(--config "$WORK/run.toml" --set 'data.format="yoochoose"' --set "data.train=\"$WORK/sessions.tsv\""
  --set "data.items=\"$WORK/items.tsv\"" --set 'data.test=""' --set 'model.name="m2trec"' --set train.batch_size=50
  --set model.layers=1 --set "checkpoint.dir=\"$WORK/m2trec-ckpt\"")
timeout 300 "${MPIRUN[@]}" "$EMBER" train "${M2TREC[@]}" --set train.epochs=1 > "$WORK/m2trec1.out" 2>&1 \
  || { cat "$WORK/m2trec1.out"; fail "mpirun m2trec run"; }
timeout 300 "${MPIRUN[@]}" "$EMBER" train "${M2TREC[@]}" --set train.epochs=2 --resume \
  --metrics-json "$WORK/m2trec.json" > "$WORK/m2trec.out" 2>&1 || { cat "$WORK/m2trec.out"; fail "mpirun m2trec resume"; }
grep -q "resumed from .*/ckpt-[0-9]* at step [0-9]* (epoch 2, 0 examples in" "$WORK/m2trec.out" \
  || { cat "$WORK/m2trec.out"; fail "m2trec resume message"; }
"$EMBER" eval --checkpoint "$WORK/m2trec-ckpt/best" --metrics-json "$WORK/m2trec-eval.json" > "$WORK/m2trec-eval.out" 2>&1 \
  || { cat "$WORK/m2trec-eval.out"; fail "eval of the m2trec checkpoint"; }
python3 - "$WORK/m2trec.json" "$WORK/m2trec-eval.json" <<'PY' || { cat "$WORK/m2trec.out"; fail "m2trec under mpirun"; }
import json, sys
m, e = (json.load(open(p)) for p in sys.argv[1:])
assert m["recall_at_20"] > 0.2 and m["cold_examples"] > 0 and m["cold_recall_at_20"] > 0.1, m
assert e["test_examples"] == m["test_examples"], (e, m)
for k in ("recall_at_20", "mrr_at_20", "cold_recall_at_20"):
    assert abs(e[k] - m[k]) < 1e-3, (k, e[k], m[k])
PY
# Bounded staleness (s = 1) and async: pushes applied on arrival, the next rows pulled during the
# step; a different algorithm, so a looser tolerance.
for mode in bounded async; do
  extra=()
  [ "$mode" = bounded ] && extra=(--set train.staleness=1)
  timeout 300 "${MPIRUN[@]}" "$EMBER" train --config "$WORK/run.toml" --set train.batch_size=256 \
    --set "train.mode=\"$mode\"" "${extra[@]}" --metrics-json "$WORK/$mode.json" > "$WORK/$mode.out" 2>&1 \
    || { cat "$WORK/$mode.out"; fail "mpirun 2+2 $mode run"; }
  grep -q "train.mode $mode" "$WORK/$mode.out" || { cat "$WORK/$mode.out"; fail "$mode mode not reported"; }
done
python3 - "$WORK/one.json" "$WORK/four.json" "$WORK/bounded.json" "$WORK/async.json" <<'PY' || fail "AUC parity"
import json, sys
one, sync, bounded, asyn = (json.load(open(p))["auc"] for p in sys.argv[1:])
print(f"one process AUC {one:.5f}; 2 servers + 2 workers: sync {sync:.5f}, bounded(1) {bounded:.5f}, async {asyn:.5f}")
assert abs(one - sync) < 0.002, (one, sync)
assert abs(one - bounded) < 0.005 and abs(one - asyn) < 0.005, (one, bounded, asyn)
PY
# The cluster's checkpoint (one shard file per server) evaluates in one process.
ls "$WORK"/ckpt/ckpt-*/shard-1.bin > /dev/null || fail "no shard file from server 1"
"$EMBER" eval --checkpoint "$WORK/ckpt" --data "$WORK/test.tsv" --metrics-json "$WORK/eval.json" > /dev/null 2>&1 \
  || fail "eval of the cluster checkpoint"
python3 -c "import json; a=json.load(open('$WORK/four.json'))['auc']; b=json.load(open('$WORK/eval.json'))['auc']; assert abs(a-b) < 1e-9, (a,b)" \
  || fail "the cluster checkpoint scores differently in one process"

# DSL on a cluster: prune/grow rounds are issued once (by the first worker) at a barrier.
timeout 300 mpirun --allow-run-as-root --oversubscribe -np 3 "$EMBER" train --config "$WORK/run.toml" \
  --set ps.servers=1 --set train.batch_size=256 --set 'embedding.method="dsl"' --set embedding.density=0.5 \
  --set dsl.interval=10 --metrics-json "$WORK/dsl.json" > "$WORK/dsl.out" 2>&1 || { cat "$WORK/dsl.out"; fail "dsl cluster"; }
python3 -c "import json; a=json.load(open('$WORK/dsl.json'))['auc']; print(f'dsl 1 server + 2 workers AUC {a:.5f}'); assert a > 0.7, a" \
  || fail "dsl cluster AUC"

# OptEmbed on a cluster: the supernet's thresholds are all-reduced, the first worker searches
# (the others wait for its widths), the kept rows move into the retraining tables on the servers.
"$EMBER" datagen ctr --rows 10000 --seed 3 --max-vocab 20000 --out "$WORK/valid.tsv" >/dev/null 2>&1
timeout 300 mpirun --allow-run-as-root --oversubscribe -np 3 "$EMBER" train --config "$WORK/run.toml" \
  --set ps.servers=1 --set train.batch_size=256 --set 'embedding.method="optembed"' --set embedding.budget=0.3 \
  --set "data.valid=\"$WORK/valid.tsv\"" --set optembed.rounds=2 --set optembed.population=6 \
  --set optembed.search_samples=4000 --metrics-json "$WORK/optembed.json" > "$WORK/optembed.out" 2>&1 \
  || { cat "$WORK/optembed.out"; fail "optembed cluster"; }
grep -q "optembed search: keeps" "$WORK/optembed.out" || { cat "$WORK/optembed.out"; fail "optembed search line"; }
python3 - "$WORK/optembed.json" <<'PY' || fail "optembed cluster result"
import json, sys
m = json.load(open(sys.argv[1]))
print(f"optembed 1 server + 2 workers: AUC {m['auc']:.5f}, keeps {m['kept_rows']} of {m['supernet_rows']} rows, "
      f"params {m['param_bytes']} bytes (budget {m['budget_bytes']})")
assert m["auc"] > 0.7, m["auc"]
assert 0 < m["kept_rows"] < m["supernet_rows"], m
assert m["param_bytes"] <= m["budget_bytes"], m
PY

# Kill server rank 1 mid-training: every rank exits, non-zero, and the failure is named.
"${MPIRUN[@]}" "$EMBER" train --config "$WORK/run.toml" --set train.batch_size=256 --set train.epochs=200 \
  > "$WORK/kill.out" 2>&1 &
job=$!
victim=""
for _ in $(seq 1 100); do
  for pid in $(pgrep -f "ember train --config $WORK/run.toml" || true); do
    if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1"; then victim=$pid; fi
  done
  [ -n "$victim" ] && grep -q "train epoch" "$WORK/kill.out" && break
  sleep 0.2
done
[ -n "$victim" ] || { kill $job; fail "no rank 1 process found"; }
kill -9 "$victim"
start=$(date +%s)
if timeout 120 tail --pid=$job -f /dev/null; then :; else kill -9 $job; fail "the job hung after a rank died"; fi
if wait $job; then fail "the job exited 0 after a rank died"; fi
echo "job ended $(( $(date +%s) - start )) s after the kill"
grep -Eq "rank 1|PS server 1" "$WORK/kill.out" || { cat "$WORK/kill.out"; fail "the dead rank is not named"; }
grep -E "rank 1|PS server 1" "$WORK/kill.out" | head -3
echo "mpi_train_test: all checks passed"
