#!/usr/bin/env bash
# The GPU run of docs/performance.md "The dense model on a GPU", in one go on a machine with an
# NVIDIA GPU and a CUDA-enabled PyTorch: builds ember (16 jobs) against that PyTorch's LibTorch,
# runs the CUDA tests, then trains the reference-shape DLRM on the GPU and on the CPU at batch
# 2048 and 16384 and compares samples/s and test AUC (|difference| <= 0.002).
#   bash scripts/device_check.sh            (results under ${OUT:-out/device})
# Debian packages the machine lacks: scripts/device_debs.sh downloads them into .device-debs/ on
# a machine with a registry; here they are unpacked with dpkg -x into .device-root/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/device}
mkdir -p "$OUT"
exec > >(tee "$OUT/device_check.log") 2>&1

if compgen -G ".device-debs/*.deb" > /dev/null; then
  mkdir -p .device-root
  for d in .device-debs/*.deb; do dpkg -x "$d" .device-root; done
  ROOT=$PWD/.device-root
  export PATH=$ROOT/usr/bin:$PATH
  export LD_LIBRARY_PATH=$ROOT/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
  export CPATH=$ROOT/usr/include:${CPATH:-}
  export CMAKE_PREFIX_PATH=$ROOT/usr:$ROOT/usr/lib/x86_64-linux-gnu/cmake:${CMAKE_PREFIX_PATH:-}
  export OPAL_PREFIX=$ROOT/usr/lib/x86_64-linux-gnu/openmpi
fi
TORCH_PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.get_device_name(0))'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true

BUILD=build-cuda
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DEMBER_TORCH_DIR="$TORCH_PREFIX" \
  -DEMBER_BUILD_BENCH=OFF -DEMBER_TCMALLOC=OFF
cmake --build "$BUILD" -- -j 16
EMBER=$BUILD/launcher/ember
TORCH_LIB=$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH=$TORCH_LIB:${LD_LIBRARY_PATH:-}

# The CUDA tests (they skip without a GPU, so a skip here is a failure).
"$BUILD"/tests/torch_test --gtest_filter='Trainer.Cuda*:Trainer.Staged*:Trainer.Device*' | tee "$OUT/cuda_tests.txt"
grep -q "SKIPPED" "$OUT/cuda_tests.txt" && { echo "device_check: the CUDA tests skipped: no GPU seen"; exit 1; }
"$BUILD"/tests/launcher_test --gtest_filter='Serve.Device*:Config.*' | tee -a "$OUT/cuda_tests.txt"

# The reference Criteo Kaggle DLRM (ember's default model: bottom 13-512-256-64-16, top
# 367-512-256-1), GPU against this machine's CPU, same data and seeds.
DATA=$OUT/data
mkdir -p "$DATA"
[ -f "$DATA/train.tsv" ] || "$EMBER" datagen ctr --rows 1000000 --max-vocab 500000 --out "$DATA/train.tsv"
[ -f "$DATA/test.tsv" ] || "$EMBER" datagen ctr --rows 100000 --seed 9 --max-vocab 500000 --out "$DATA/test.tsv"
printf 'side,batch,samples_per_sec,auc\n' > "$OUT/gpu_vs_cpu.csv"
for batch in 2048 16384; do
  for device in cuda cpu; do
    "$EMBER" train --config /dev/null --set data.train=\"$DATA/train.tsv\" --set data.test=\"$DATA/test.tsv\" \
      --set train.batch_size=$batch --set train.device=\"$device\" --set train.threads=16 \
      --set embedding.method=\"hash\" --set embedding.rows=1000000 --set train.progress=\"log\" \
      --metrics-json "$OUT/m-$device-$batch.json"
    python3 -c "import json; m = json.load(open('$OUT/m-$device-$batch.json')); print('$device,$batch,%.0f,%.5f' % (m['samples_per_sec'], m['auc']))" >> "$OUT/gpu_vs_cpu.csv"
  done
done
cat "$OUT/gpu_vs_cpu.csv"
python3 - "$OUT/gpu_vs_cpu.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
ok = True
for b in sorted({r['batch'] for r in rows}):
    g = next(r for r in rows if r['batch'] == b and r['side'] == 'cuda')
    c = next(r for r in rows if r['batch'] == b and r['side'] == 'cpu')
    d = abs(float(g['auc']) - float(c['auc']))
    print(f"batch {b}: GPU {g['samples_per_sec']} samples/s, CPU {c['samples_per_sec']} "
          f"({float(g['samples_per_sec']) / float(c['samples_per_sec']):.2f}x); AUC {g['auc']} vs {c['auc']} (|d| {d:.4f})")
    ok &= d <= 0.002
sys.exit(0 if ok else 1)
PY
