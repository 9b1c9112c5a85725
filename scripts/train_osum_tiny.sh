#!/bin/sh
# Reproduce the shipped osum-tiny checkpoint (assets/osum-tiny): the synthetic benchmark, the
# three training stages, packing, and the evaluation on the held-out test split. These are the
# exact commands and seeds of the shipped run (see assets/osum-tiny/provenance.json for the
# settings each stage recorded and its measured training time).
# Usage: scripts/train_osum_tiny.sh [WORK_DIR]   (needs `osum setup`, espeak-ng, flite, sox)
set -eu
work=${1:-runs/osum-tiny}
osum="cargo run --release -q --"
mkdir -p "$work"
$osum synth --out "$work/data" --seed 1 --size default
# Stage I: fixed task tags + audio -> adapter + LoRA.
$osum --device cpu-bf16 train --stage 1 --preset osum-tiny --data "$work/data" --out "$work/s1" \
  --steps 400 --lr 0.001 --warmup 30 --decay cosine --save-every 50 --seed 1
# Stage II: text-only natural instruction -> task tags; LoRA only.
$osum --device cpu-bf16 train --stage 2 --preset osum-tiny --data "$work/data" --out "$work/s2" \
  --from "$work/s1" --steps 60 --lr 0.001 --warmup 10 --decay cosine --save-every 50 --seed 1
# Stage III: natural instruction + audio -> tags + answer; adapter + LoRA.
$osum --device cpu-bf16 train --stage 3 --preset osum-tiny --data "$work/data" --out "$work/s3" \
  --from "$work/s2" --steps 150 --lr 0.001 --warmup 10 --decay cosine --save-every 50 --seed 1
$osum ship --checkpoint "$work/s3" --out "$work/shipped"
$osum --device cpu-bf16 eval --manifest "$work/data/test.jsonl" --preset osum-tiny \
  --checkpoint "$work/shipped" --limit 120 --max-new-tokens 40 --json
