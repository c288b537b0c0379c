#!/usr/bin/env bash
# End-to-end through the `ember` binary: datagen, train with --set and --metrics-json, eval,
# and the error paths (exit code and message).
set -euo pipefail
EMBER="$1"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$EMBER" datagen ctr --rows 20000 --seed 1 --max-vocab 5000 --out "$WORK/train.tsv" >/dev/null 2>&1
"$EMBER" datagen ctr --rows 5000 --seed 2 --max-vocab 5000 --out "$WORK/test.tsv" >/dev/null 2>&1
grep -q '"auc"' "$WORK/test.tsv.oracle.json" || fail "oracle json lacks auc"
[ "$(wc -l < "$WORK/train.tsv")" -eq 20000 ] || fail "wrong row count"

cat > "$WORK/run.toml" <<TOML
[data]
train = "$WORK/train.tsv"
test = "$WORK/test.tsv"
[model]
bottom_mlp = [32]
top_mlp = [32]
[train]
batch_size = 256
progress = "log"
[checkpoint]
dir = "$WORK/ckpt"
TOML
"$EMBER" train --config "$WORK/run.toml" --set train.epochs=2 --set embedding.dim=8 \
  --metrics-json "$WORK/m.json" > "$WORK/train.out" 2>&1 || { cat "$WORK/train.out"; fail "train failed"; }
python3 - "$WORK/m.json" <<'PY' || fail "metrics"
import json, sys
m = json.load(open(sys.argv[1]))
for k in ("auc", "logloss", "samples_per_sec", "peak_rss_bytes"):
    assert k in m, k
assert m["train_samples"] == 40000, m
assert m["auc"] > 0.65, m
PY
"$EMBER" eval --checkpoint "$WORK/ckpt" --data "$WORK/test.tsv" --metrics-json "$WORK/e.json" >/dev/null 2>&1 || fail "eval failed"
python3 -c "import json,sys; a=json.load(open('$WORK/m.json'))['auc']; b=json.load(open('$WORK/e.json'))['auc']; assert abs(a-b) < 1e-12, (a,b)" || fail "eval AUC differs from train's"

# ember vocab, then training on the vocabulary with feature admission: the checkpoint's eval
# scores exactly as the run did (fallback rows and admissions restored), and the tables hold
# fewer rows than without admission.
"$EMBER" vocab --data "$WORK/train.tsv" --out "$WORK/train.vocab" --min-count 2 > "$WORK/vocab.out" 2>&1 \
  || { cat "$WORK/vocab.out"; fail "vocab failed"; }
grep -q "set data.vocab" "$WORK/vocab.out" || { cat "$WORK/vocab.out"; fail "vocab summary"; }
head -1 "$WORK/train.vocab" | grep -q "^# ember vocabulary v1" || fail "vocab header"
"$EMBER" train --config "$WORK/run.toml" --set embedding.dim=8 --set data.vocab=\"$WORK/train.vocab\" \
  --set embedding.admit_after=3 --set embedding.expire_after_steps=50 --set checkpoint.dir=\"$WORK/ckpt-admit\" \
  --metrics-json "$WORK/ma.json" > "$WORK/train-admit.out" 2>&1 || { cat "$WORK/train-admit.out"; fail "admission run"; }
"$EMBER" eval --checkpoint "$WORK/ckpt-admit" --data "$WORK/test.tsv" --metrics-json "$WORK/ea.json" >/dev/null 2>&1 \
  || fail "eval of the admission checkpoint"
python3 - "$WORK/m.json" "$WORK/ma.json" "$WORK/ea.json" <<'PY' || fail "admission metrics"
import json, sys
full, admit, ev = (json.load(open(p)) for p in sys.argv[1:])
assert abs(admit["auc"] - ev["auc"]) < 1e-12, (admit["auc"], ev["auc"])
assert admit["table_rows"] < 0.6 * full["table_rows"], (admit["table_rows"], full["table_rows"])
assert admit["auc"] > 0.65, admit
PY
"$EMBER" train --config "$WORK/run.toml" --set embedding.method=\"hash\" --set embedding.admit_after=3 \
  > "$WORK/bad-admit.out" 2>&1 && fail "admission on a hash method accepted"
grep -q "has no per-value rows to admit" "$WORK/bad-admit.out" || { cat "$WORK/bad-admit.out"; fail "hash admission error"; }

# inspect: the checkpoint's step and tables as text and JSON; a missing path exits 1 naming it.
"$EMBER" inspect "$WORK/ckpt" > "$WORK/inspect.out" 2>&1 || { cat "$WORK/inspect.out"; fail "inspect failed"; }
grep -q "files (all verified)" "$WORK/inspect.out" || { cat "$WORK/inspect.out"; fail "inspect output"; }
"$EMBER" inspect "$WORK/ckpt" --json | python3 -c "import json,sys; j=json.load(sys.stdin); assert len(j['tables']) == 52 and j['step'] > 0, j" \
  || fail "inspect --json"
if "$EMBER" inspect "$WORK/no-such" > "$WORK/inspect.err" 2>&1; then fail "inspect of a missing path exited 0"; fi
grep -q "$WORK/no-such does not exist" "$WORK/inspect.err" || { cat "$WORK/inspect.err"; fail "inspect error"; }

# Export at int8, score the file, serve it over HTTP, stop the server with SIGTERM.
"$EMBER" export --checkpoint "$WORK/ckpt" --out "$WORK/model.embx" --precision int8 > "$WORK/export.out" 2>&1 \
  || { cat "$WORK/export.out"; fail "export failed"; }
size=$(stat -c %s "$WORK/model.embx")
grep -q "^file $size bytes" "$WORK/export.out" || { cat "$WORK/export.out"; fail "export size not printed"; }
"$EMBER" eval --model "$WORK/model.embx" --data "$WORK/test.tsv" --metrics-json "$WORK/x.json" >/dev/null 2>&1 \
  || fail "eval of the export failed"
python3 -c "import json; a=json.load(open('$WORK/e.json'))['auc']; b=json.load(open('$WORK/x.json'))['auc']; assert abs(a-b) < 2e-3, (a,b)" \
  || fail "int8 export AUC too far from the checkpoint's"
port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
"$EMBER" serve --model "$WORK/model.embx" --port "$port" > "$WORK/serve.out" 2>&1 &
serve_pid=$!
python3 - "$port" "$WORK/test.tsv" <<'PY' || { kill $serve_pid; cat "$WORK/serve.out"; fail "serve"; }
import json, sys, time, urllib.request, urllib.error
port, test = sys.argv[1], sys.argv[2]
base = f"http://127.0.0.1:{port}"
for _ in range(100):
    try:
        urllib.request.urlopen(base + "/healthz", timeout=1).read()
        break
    except OSError:
        time.sleep(0.1)
rows = [l.rstrip("\n").split("\t")[1:] for l in open(test).readlines()[:3]]
req = urllib.request.Request(base + "/v1/predict", data=json.dumps({"rows": rows}).encode())
p = json.loads(urllib.request.urlopen(req, timeout=10).read())["probabilities"]
assert len(p) == 3 and all(0 < x < 1 for x in p), p
try:
    urllib.request.urlopen(urllib.request.Request(base + "/v1/predict", data=b"{"), timeout=10)
    raise SystemExit("bad JSON accepted")
except urllib.error.HTTPError as e:
    assert e.code == 400 and "not valid JSON" in json.loads(e.read())["error"], e
assert "ember_serve_predictions_total 3" in urllib.request.urlopen(base + "/metrics").read().decode()
PY
kill -TERM $serve_pid
wait $serve_pid || fail "serve did not exit cleanly on SIGTERM"
grep -q "ember serve: stopped" "$WORK/serve.out" || { cat "$WORK/serve.out"; fail "serve stop message"; }
printf 'garbage' > "$WORK/bad.embx"
if "$EMBER" serve --model "$WORK/bad.embx" 2> "$WORK/err3"; then fail "a bad model file was served"; fi
grep -q "bad.embx: not a valid ember export: too short" "$WORK/err3" || { cat "$WORK/err3"; fail "bad model message"; }

# Errors: non-zero exit, a message naming the problem.
# Command-line errors exit 1 like every other error (not CLI11's 105/114); serve bounds its options.
set +e
"$EMBER" train --no-such-flag > /dev/null 2>&1; rc=$?
"$EMBER" serve --model "$WORK/bad.embx" --max-batch -1 > /dev/null 2>&1; rc2=$?
"$EMBER" serve --model "$WORK/bad.embx" --batch-wait-ms 1e9 2> "$WORK/err4"; rc3=$?
set -e
[ "$rc" -eq 1 ] && [ "$rc2" -eq 1 ] && [ "$rc3" -eq 1 ] || fail "command-line errors exit $rc, $rc2, $rc3 (expected 1)"
grep -q -- "--batch-wait-ms 1e+09 is outside \[0, 1000\]" "$WORK/err4" || { cat "$WORK/err4"; fail "serve option message"; }
printf '[train]\nepoch = 2\n' > "$WORK/bad.toml"
if "$EMBER" train --config "$WORK/bad.toml" 2> "$WORK/err"; then fail "bad config accepted"; fi
grep -q "bad.toml:2: unknown config key 'train.epoch'" "$WORK/err" || { cat "$WORK/err"; fail "message"; }
printf '1\t2\n' > "$WORK/broken.tsv"
if "$EMBER" train --config "$WORK/run.toml" --set "data.train=\"$WORK/broken.tsv\"" 2> "$WORK/err2" >/dev/null; then fail "malformed data accepted"; fi
grep -q "broken.tsv:1: expected 40 tab-separated fields, got 2" "$WORK/err2" || { cat "$WORK/err2"; fail "data message"; }
"$EMBER" train --config "$WORK/run.toml" --set "data.train=\"$WORK/broken.tsv\"" --set 'data.on_bad_line="skip"' \
  --set 'checkpoint.dir=""' --set 'data.test=""' > "$WORK/skip.out" 2>&1 && fail "an all-bad file should train nothing"
grep -q "no training examples read from .*broken.tsv (1 malformed lines skipped)" "$WORK/skip.out" || { cat "$WORK/skip.out"; fail "skip message"; }
# Session recommendation: synthetic sessions, M2TRec against the ID baseline, a bad pairing, and
# the Diginetica sample end to end where ../shared/data has it.
"$EMBER" datagen sessions --sessions 2500 --items 300 --out "$WORK/sessions.tsv" --items-out "$WORK/items.tsv" \
  > "$WORK/dg.out" || fail "datagen sessions"
grep -q "wrote .* clicks in 2500 sessions" "$WORK/dg.out" || { cat "$WORK/dg.out"; fail "datagen sessions summary"; }
cat > "$WORK/sessions.toml" <<TOML
[data]
format = "yoochoose"
train = "$WORK/sessions.tsv"
items = "$WORK/items.tsv"
[model]
name = "m2trec"
layers = 1
[embedding]
dim = 8
[train]
epochs = 2
batch_size = 64
threads = 1
progress = "off"
TOML
"$EMBER" train --config "$WORK/sessions.toml" --metrics-json "$WORK/m2trec.json" > "$WORK/m2trec.out" 2>&1 \
  || { cat "$WORK/m2trec.out"; fail "m2trec run"; }
"$EMBER" train --config "$WORK/sessions.toml" --set 'model.name="sasrec"' --set embedding.dim=32 \
  --metrics-json "$WORK/sasrec.json" > "$WORK/sasrec.out" 2>&1 || { cat "$WORK/sasrec.out"; fail "sasrec run"; }
python3 - "$WORK/m2trec.json" "$WORK/sasrec.json" <<'PY' || fail "session metrics"
import json, sys
m, s = (json.load(open(p)) for p in sys.argv[1:])
for k in ("recall_at_20", "mrr_at_20", "cold_recall_at_20", "cold_mrr_at_20"):
    assert 0 <= m[k] <= 1 and 0 <= s[k] <= 1, k
assert m["cold_examples"] > 0 and m["cold_recall_at_20"] > s["cold_recall_at_20"] + 0.1, (m, s)
assert m["recall_at_20"] > 0.2 and s["recall_at_20"] > 0.2, (m["recall_at_20"], s["recall_at_20"])
PY
# Checkpoints: one epoch, then resumed for the second, ends exactly like the two-epoch run; the
# validation-chosen checkpoint evaluates to what the run reported; export refuses it.
SCK=(--config "$WORK/sessions.toml" --set "checkpoint.dir=\"$WORK/sck\"")
"$EMBER" train "${SCK[@]}" --set train.epochs=1 > "$WORK/sck1.out" 2>&1 || { cat "$WORK/sck1.out"; fail "m2trec epoch 1"; }
grep -q "checkpoint written to .*/ckpt-[0-9]* and .*/best" "$WORK/sck1.out" || { cat "$WORK/sck1.out"; fail "m2trec checkpoint"; }
"$EMBER" train "${SCK[@]}" --resume --metrics-json "$WORK/resumed.json" > "$WORK/sck2.out" 2>&1 \
  || { cat "$WORK/sck2.out"; fail "m2trec resume"; }
"$EMBER" eval --checkpoint "$WORK/sck/best" --metrics-json "$WORK/seval.json" > "$WORK/seval.out" 2>&1 \
  || { cat "$WORK/seval.out"; fail "eval of a session checkpoint"; }
python3 - "$WORK/m2trec.json" "$WORK/resumed.json" "$WORK/seval.json" <<'PY' || fail "session resume"
import json, sys
m, r, e = (json.load(open(p)) for p in sys.argv[1:])
for k in ("recall_at_20", "mrr_at_20", "cold_recall_at_20", "cold_mrr_at_20", "best_epoch"):
    assert r[k] == m[k], (k, r[k], m[k])
for k in ("recall_at_20", "mrr_at_20", "cold_recall_at_20"):
    assert abs(e[k] - m[k]) < 1e-9, (k, e[k], m[k])
PY
if "$EMBER" export --checkpoint "$WORK/sck" --out "$WORK/s.embx" 2> "$WORK/err5" >/dev/null; then
  fail "export of a session checkpoint accepted"; fi
grep -q "a session model's checkpoint (m2trec); ember export and serve cover CTR models" "$WORK/err5" \
  || { cat "$WORK/err5"; fail "session export message"; }
if "$EMBER" train --config "$WORK/run.toml" --set 'model.name="m2trec"' 2> "$WORK/err4" >/dev/null; then
  fail "m2trec on CTR data accepted"; fi
grep -q 'model.name = "m2trec" needs session data' "$WORK/err4" || { cat "$WORK/err4"; fail "m2trec pairing message"; }
DIGI="$(dirname "$0")/../../shared/data/diginetica"
if [ -f "$DIGI/sample_train-item-views.csv" ]; then
  "$EMBER" train --config "$WORK/sessions.toml" --set 'data.format="diginetica"' \
    --set "data.train=\"$DIGI/sample_train-item-views.csv\"" --set "data.items=\"$DIGI/product-categories.csv\"" \
    --set embedding.dim=16 --metrics-json "$WORK/digi.json" > "$WORK/digi.out" 2>&1 || { cat "$WORK/digi.out"; fail "diginetica"; }
  grep -q "attributes categoryId" "$WORK/digi.out" || { cat "$WORK/digi.out"; fail "diginetica categories"; }
  python3 -c "import json,sys; m=json.load(open(sys.argv[1])); assert m['test_examples'] > 50 and m['recall_at_20'] > 0.2, m" \
    "$WORK/digi.json" || fail "diginetica metrics"
else
  echo "cli_test: no Diginetica sample at $DIGI: skipped that run"
fi
echo "cli_test: all checks passed"
