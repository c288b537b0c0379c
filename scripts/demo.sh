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
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
m = json.load(open(f"{out}/metrics.json"))
o = json.load(open(f"{out}/test.tsv.oracle.json"))
print(f"demo: test AUC {m['auc']:.4f} vs oracle {o['auc']:.4f} (gap {o['auc'] - m['auc']:.4f}); "
      f"{m['samples_per_sec']:.0f} samples/s; peak memory {m['peak_rss_bytes'] / 2**20:.0f} MiB")
PY
