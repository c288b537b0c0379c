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

# Errors: non-zero exit, a message naming the problem.
printf '[train]\nepoch = 2\n' > "$WORK/bad.toml"
if "$EMBER" train --config "$WORK/bad.toml" 2> "$WORK/err"; then fail "bad config accepted"; fi
grep -q "bad.toml:2: unknown config key 'train.epoch'" "$WORK/err" || { cat "$WORK/err"; fail "message"; }
printf '1\t2\n' > "$WORK/broken.tsv"
if "$EMBER" train --config "$WORK/run.toml" --set "data.train=\"$WORK/broken.tsv\"" 2> "$WORK/err2" >/dev/null; then fail "malformed data accepted"; fi
grep -q "broken.tsv:1: expected 40 tab-separated fields, got 2" "$WORK/err2" || { cat "$WORK/err2"; fail "data message"; }
"$EMBER" train --config "$WORK/run.toml" --set "data.train=\"$WORK/broken.tsv\"" --set 'data.on_bad_line="skip"' \
  --set 'checkpoint.dir=""' --set 'data.test=""' > "$WORK/skip.out" 2>&1 && fail "an all-bad file should train nothing"
grep -q "no training examples read from .*broken.tsv (1 malformed lines skipped)" "$WORK/skip.out" || { cat "$WORK/skip.out"; fail "skip message"; }
echo "cli_test: all checks passed"
