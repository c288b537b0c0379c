#!/usr/bin/env bash
# The main job, on the embedded single-process default: set-up, synthetic CTR data with a
# planted ground truth (2M training rows, 26 fields, largest vocabulary 2M), one epoch of DLRM
# with full embedding tables, then test AUC next to the oracle's.
#   DEMO_ROWS=200000 bash scripts/demo.sh   # a quicker run
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
EMBER="${EMBER_BUILD_DIR:-build}/launcher/ember"
OUT="${DEMO_DIR:-out/demo}"
ROWS="${DEMO_ROWS:-2000000}"
TEST_ROWS="${DEMO_TEST_ROWS:-200000}"
mkdir -p "$OUT"
if [ ! -f "$OUT/train.tsv.oracle.json" ] || ! grep -q "\"rows\": $ROWS," "$OUT/train.tsv.oracle.json"; then
  "$EMBER" datagen ctr --rows "$ROWS" --seed 1 --out "$OUT/train.tsv"
  "$EMBER" datagen ctr --rows "$TEST_ROWS" --seed 2 --out "$OUT/test.tsv"
fi
"$EMBER" train --config examples/synthetic_dlrm.toml \
  --set "data.train=\"$OUT/train.tsv\"" --set "data.test=\"$OUT/test.tsv\"" \
  --set "checkpoint.dir=\"$OUT/ckpt\"" --metrics-json "$OUT/metrics.json"
# The deployable model: int8 rows, scored from the file alone.
CKPT=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['checkpoint'])" "$OUT/metrics.json")
"$EMBER" export --checkpoint "$CKPT" --out "$OUT/model.embx" --precision int8 | tail -3
"$EMBER" eval --model "$OUT/model.embx" --data "$OUT/test.tsv" --metrics-json "$OUT/export-metrics.json"
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
m = json.load(open(f"{out}/metrics.json"))
o = json.load(open(f"{out}/test.tsv.oracle.json"))
x = json.load(open(f"{out}/export-metrics.json"))
print(f"demo: test AUC {m['auc']:.4f} vs oracle {o['auc']:.4f} (gap {o['auc'] - m['auc']:.4f}); "
      f"{m['samples_per_sec']:.0f} samples/s; peak memory {m['peak_rss_bytes'] / 2**20:.0f} MiB")
print(f"demo: int8 export {os.path.getsize(out + '/model.embx') / 2**20:.1f} MiB, test AUC {x['auc']:.4f}; "
      f"serve it with: {os.environ.get('EMBER_BUILD_DIR', 'build')}/launcher/ember serve --model {out}/model.embx")
PY
