#!/usr/bin/env bash
# Fuzz every file parser for a while (issue 8): scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Runs the cargo-fuzz targets in fuzz/ (libFuzzer + AddressSanitizer) from the committed seed
# corpora in fuzz/corpus/TARGET; new inputs go to a scratch copy, never into the repository.
# Needs `cargo install cargo-fuzz`. On a stable toolchain the sanitizer flags are unlocked with
# RUSTC_BOOTSTRAP=1 (set here), so no nightly is needed.
# Prints each target's executions and crashes and a total; exits 1 when anything crashed, with
# the crashing inputs kept under $OSUM_FUZZ_OUT (default target/fuzz-out) for regression tests.
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(wav safetensors gguf ctranslate2 pytorch sentencepiece)
fi
command -v cargo-fuzz >/dev/null 2>&1 || { echo "cargo-fuzz not found: cargo install cargo-fuzz" >&2; exit 1; }
out=${OSUM_FUZZ_OUT:-$PWD/target/fuzz-out}
mkdir -p "$out"
export RUSTC_BOOTSTRAP=1
echo "== building the fuzz targets"
(cd fuzz && cargo fuzz build -O) || { echo "fuzz build failed" >&2; exit 1; }
total=0; crashed=0
for t in "${targets[@]}"; do
  work="$out/$t"; rm -rf "$work"; mkdir -p "$work/corpus" "$work/crashes"
  log="$work/log.txt"
  (cd fuzz && cargo fuzz run -O "$t" "$work/corpus" "corpus/$t" -- \
      -max_total_time="$secs" -artifact_prefix="$work/crashes/" -print_final_stats=1 \
      -rss_limit_mb=2048 -timeout=20) >"$log" 2>&1
  rc=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  runs=${runs:-0}
  n=$(find "$work/crashes" -type f | wc -l)
  echo "$t: $runs executions in ${secs} s, $n crashes (exit $rc; log $log)"
  total=$((total + runs))
  if [ "$n" -gt 0 ] || [ "$rc" -ne 0 ]; then crashed=$((crashed + 1)); fi
done
echo "total: $total executions; targets with crashes or errors: $crashed"
[ "$crashed" -eq 0 ]
