#!/usr/bin/env bash
# Runs every cargo-fuzz target of protocol/fuzz briefly: coverage-guided libFuzzer runs seeded
# with the committed corpus. New inputs go to a scratch directory, so the committed corpus
# stays small. A crash fails the run and leaves its input in protocol/fuzz/artifacts/TARGET/.
# Usage: bash scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 20; env SIGHTLINE_FUZZ_SECONDS)
# Needs cargo-fuzz (scripts/deps.sh installs it). Works on a stable toolchain: RUSTC_BOOTSTRAP
# lets cargo-fuzz pass its -Z flags; `-s none` skips AddressSanitizer (the protocol crate
# forbids unsafe code, so the fuzzer looks for panics and broken invariants).
set -euo pipefail
cd "$(dirname "$0")/../protocol"
export PATH="$HOME/.cargo/bin:$PATH"
seconds="${1:-${SIGHTLINE_FUZZ_SECONDS:-20}}"
target_dir="${CARGO_TARGET_DIR:-/var/tmp/sightline-target}/cargo-fuzz"
targets=(decode_msg session reassemble pair_msg)

export RUSTC_BOOTSTRAP=1
cargo fuzz build -s none --target-dir "$target_dir"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t"
  seeds=()
  [ -d "fuzz/corpus/$t" ] && seeds=("fuzz/corpus/$t")
  echo "fuzz: $t for ${seconds}s"
  # -print_final_stats: executions and peak memory, for the log.
  if ! cargo fuzz run -s none --target-dir "$target_dir" "$t" "$scratch/$t" "${seeds[@]}" -- \
    -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$scratch/$t.log" 2>&1; then
    tail -n 60 "$scratch/$t.log" >&2
    echo "fuzz: $t FAILED (input saved under protocol/fuzz/artifacts/$t/)" >&2
    exit 1
  fi
  grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+.*cov:)' \
    "$scratch/$t.log" | tail -n 3
done
