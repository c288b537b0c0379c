#!/usr/bin/env bash
# A/B of two ember binaries on the same data, interleaved (these machines drift): training
# samples/s and test AUC at the default DLRM (the reference shape) for each batch size, then the
# scoring rate of each side's export (serving's lookup path).
#   bash bench/ab_train.sh BASE_BIN NEW_BIN [REPS] [BATCHES]
# e.g. BASE_BIN from `git worktree add /tmp/base <commit>` built with scripts/setup.sh.
set -euo pipefail
BASE=$1 NEW=$2 REPS=${3:-3} BATCHES=${4:-"2048 128"}
WORK=${WORK:-$(mktemp -d)}
cd "$WORK"
[ -f train.tsv ] || "$NEW" datagen ctr --rows 200000 --max-vocab 200000 --out train.tsv > /dev/null
[ -f test.tsv ] || "$NEW" datagen ctr --rows 50000 --seed 9 --max-vocab 200000 --out test.tsv > /dev/null
echo "side batch rep samples_per_sec auc"
for b in $BATCHES; do
  rows=200000; [ "$b" -lt 512 ] && rows=60000
  for rep in $(seq "$REPS"); do
    for side in base new; do
      E=$BASE; [ $side = new ] && E=$NEW
      rm -rf "ck-$side"
      "$E" train --config /dev/null --set data.train=\"train.tsv\" --set data.test=\"test.tsv\" \
        --set data.max_rows=$rows --set train.batch_size="$b" --set train.progress=\"off\" \
        --set embedding.method=\"hash\" --set embedding.rows=200000 --set checkpoint.dir=\"ck-$side\" \
        --metrics-json "m-$side.json" > "out-$side.txt" 2>&1 || { cat "out-$side.txt"; exit 1; }
      python3 -c "import json;m=json.load(open('m-$side.json'));print('$side', $b, $rep, round(m['samples_per_sec']), round(m['auc'], 5))"
    done
  done
done
for side in base new; do E=$BASE; [ $side = new ] && E=$NEW; "$E" export --checkpoint "ck-$side" --out "model-$side.bin" > /dev/null; done
for rep in $(seq "$REPS"); do
  for side in base new; do
    E=$BASE; [ $side = new ] && E=$NEW
    "$E" eval --checkpoint "model-$side.bin" --data test.tsv --metrics-json "e-$side.json" > /dev/null 2>&1
    python3 -c "import json;m=json.load(open('e-$side.json'));print('$side', 'eval-export', $rep, round(m['samples_per_sec']), round(m['auc'], 5))"
  done
done
