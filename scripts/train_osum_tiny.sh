#!/bin/sh
# Reproduce the shipped osum-tiny checkpoint (assets/osum-tiny): the synthetic benchmark, the
# training runs, packing, and the evaluation on the held-out test split. These are the exact
# commands and seeds of the shipped run (see assets/osum-tiny/provenance.json for the settings
# each run recorded and its measured training time).
# Usage: scripts/train_osum_tiny.sh [WORK_DIR]   (needs `osum setup`, espeak-ng, flite, sox)
set -eu
work=${1:-runs/osum-tiny}
osum="cargo run --release -q --"
train="$osum --device cpu-bf16 train --preset osum-tiny --data $work/data --seed 1 --decay cosine"
mkdir -p "$work"
$osum synth --out "$work/data" --seed 1 --size default
# Stage I, part 1: align the adapter alone (no LLM pass): CTC of each speech row against the
# transcript's token embeddings, and the mean row against the label words (train/ctc.rs,
# train/attributes.rs). About 0.04 CPU-s per item.
$train --stage 1 --out "$work/s0" --llm-weight 0 --ctc-weight 1 --attr-weight 1 \
  --steps 5000 --batch 16 --lr 0.003 --warmup 100 --save-every 250
# Stage I, part 2: fixed task tags + audio -> adapter + LoRA, keeping half-weight alignment terms.
$train --stage 1 --out "$work/s1" --from "$work/s0" --ctc-weight 0.5 --attr-weight 0.5 \
  --steps 400 --batch 4 --lr 0.001 --warmup 30 --save-every 50
# Stage II: text-only natural instruction -> task tags; LoRA only.
$train --stage 2 --out "$work/s2" --from "$work/s1" \
  --steps 300 --batch 4 --lr 0.001 --warmup 10 --save-every 50
# Stage III: natural instruction + audio -> tags + answer; adapter + LoRA.
$train --stage 3 --out "$work/s3" --from "$work/s2" --ctc-weight 0.5 --attr-weight 0.5 \
  --steps 600 --batch 4 --lr 0.001 --warmup 10 --save-every 50
$osum ship --checkpoint "$work/s3" --out "$work/shipped"
# The whole held-out test split (the targets), then its first 120 items beside the fixed tag prompts.
$osum --device cpu-bf16 eval --manifest "$work/data/test.jsonl" --preset osum-tiny \
  --checkpoint "$work/shipped" --max-new-tokens 40 --json
$osum --device cpu-bf16 eval --manifest "$work/data/test.jsonl" --preset osum-tiny \
  --checkpoint "$work/shipped" --limit 120 --max-new-tokens 40 --compare-fixed --json
