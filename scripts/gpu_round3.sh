#!/usr/bin/env bash
# Device round 3 (as run on the H200): GPU tile-batching timings, then 5 fine-tunes of the shipped
# models sharing the GPU for $T seconds each. The configs' ../shared paths are pointed at .gpu/d3, a
# copy of the training/validation images small enough to travel with the repository.
#   T=420 bash scripts/gpu_round3.sh OUTDIR [extra key=value overrides for every run]
set -u
OUTDIR=$1; shift
EXTRA="$*"
ROOT=$(pwd)
export PYTHONPATH=$ROOT/src PYTHONUNBUFFERED=1
T=${T:-400}
W=$ROOT/src/hfpie/weights
if [ "${SKIP_BENCH:-0}" != 1 ]; then
  nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv
  python3 benchmarks/gpu_throughput.py --models denoise sr-x4 --presets --megapixels 4 16 --tile 512 \
    --tile-batch 1 0 --repeats 3 --output "$OUTDIR/gpu_tile_batch.json" > "$OUTDIR/throughput.log" 2>&1
  tail -n 3 "$OUTDIR/throughput.log"
fi
CFG=/tmp/cfg3; R=/tmp/runs3; mkdir -p $CFG $R
for f in configs/gpu/*.toml; do
  sed "s#\.\./shared/data#$ROOT/.gpu/d3#g; s#\.\./shared/init#$W#g" "$f" > $CFG/$(basename "$f")
done
run() { name=$1; shift; python3 -m hfpie.cli train "$@" time_limit_s=$T $EXTRA --run-dir $R/$name > $R/$name.out 2>&1 & }
run denoise $CFG/denoise.toml init_weights=$W/denoise.safetensors learning_rate=1e-4 lr_decay=0.5 lr_decay_every=1000
run sr-x4 $CFG/sr-x4.toml init_weights=$W/sr-x4.safetensors learning_rate=1e-4 lr_decay=0.5 lr_decay_every=1000
run deblur-motion $CFG/deblur.toml init_weights=$W/deblur.safetensors learning_rate=1e-4 lr_decay=0.7 lr_decay_every=1000 degradation.motion_probability=0.35
run gan-ema $CFG/sr-x4-gan.toml init_weights=$W/sr-x4.safetensors hpf_checkpoint=$W/hpf.safetensors learning_rate=5e-5 discriminator_learning_rate=5e-5 lr_decay=1.0 ema_decay=0.999
run gan-ema-low $CFG/sr-x4-gan.toml init_weights=$W/sr-x4.safetensors hpf_checkpoint=$W/hpf.safetensors learning_rate=5e-5 discriminator_learning_rate=5e-5 lr_decay=1.0 ema_decay=0.999 gan_weight=0.0025
sleep 20; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv 2>/dev/null
wait
cd $R && for d in */; do d=${d%/}; mkdir -p /tmp/pack/$d; cp $d/final.safetensors $d/log.jsonl /tmp/pack/$d/ 2>/dev/null; cp $d.out /tmp/pack/; done
tar -C /tmp/pack -czf "$OUTDIR/round3.tgz" .
for d in */; do d=${d%/}; echo "== $d"; grep val_psnr $d/log.jsonl | tail -n 2; tail -c 300 $d.out | tr '\r' '\n' | tail -n 2; done
