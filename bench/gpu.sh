#!/usr/bin/env bash
# GPU measurements for issue 12, one prepared script: run it on a CUDA machine from the repository root,
#   bash bench/gpu.sh [OUT]        (OUT: folder for the CSV files and the log, default bench/out/gpu)
# 1. `make bench` on the GPU: per model (MLP, CIFAR-10 CNN, WideResNet-40-4 at batch 128) the round of
#    byzrun's chosen path (worker_chunk=auto: the largest chunk that fits) against full vmap, the plain
#    loop and one backward pass, and every aggregation rule at d=79,510 and 1e6.
# 2. Each GPU option alone and all speed-only ones together, on the WideResNet and the CNN: the round
#    time of byzrun's chosen path relative to no option, measured in one process, interleaved.
# The machine-readable lines (model=..., rule=..., option=...) are collected in $OUT/lines.txt.
set -euo pipefail
OUT=${1:-bench/out/gpu}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
"$PY" -m byzrun.bench --device cuda --repeats 5 --out "$OUT" | tee "$OUT/bench.log"
"$PY" -m byzrun.bench.gpu_options --out "$OUT" | tee "$OUT/options.log"
grep -hE '^(model|rule|option)=' "$OUT/bench.log" "$OUT/options.log" > "$OUT/lines.txt"
echo "written: $OUT"
