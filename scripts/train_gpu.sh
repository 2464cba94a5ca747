#!/usr/bin/env bash
# Train every config of configs/gpu at once on one GPU (each in its own process, run folders in $RUNS).
# The configs read ../shared/data and ../shared/init (weights to start from: denoise, sr-x4, hpf).
#   RUNS=/tmp/runs-gpu LIMIT=370 bash scripts/train_gpu.sh          # LIMIT: seconds of training per run
#   CONFIGS="configs/gpu/denoise.toml" bash scripts/train_gpu.sh    # a subset
set -u
RUNS=${RUNS:-runs-gpu}
mkdir -p "$RUNS"
for config in ${CONFIGS:-configs/gpu/*.toml}; do
  name=$(basename "$config" .toml)
  python3 -m hfpie.cli train "$config" ${LIMIT:+time_limit_s=$LIMIT} ${EXTRA:-} --run-dir "$RUNS/$name" \
    > "$RUNS/$name.out" 2>&1 &
done
wait
for config in ${CONFIGS:-configs/gpu/*.toml}; do
  name=$(basename "$config" .toml)
  echo "== $name: $(grep -c val_psnr "$RUNS/$name/log.jsonl" 2>/dev/null) validations"
  grep val_psnr "$RUNS/$name/log.jsonl" 2>/dev/null | tail -n 2
  tail -n 3 "$RUNS/$name.out" | tr '\r' '\n' | tail -n 2
done
