#!/usr/bin/env bash
# Runs the whole Sightline test suite: formatting, lints, unit, property, simulated-time and
# end-to-end tests (real QUIC on loopback), runs the fuzz targets briefly, and builds, installs,
# checks and purges the Debian packages.
# Usage (Debian 12, as root): bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
# A target directory outside the clone keeps rebuilds incremental across clones.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sightline-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Servers the tests need are started here and stopped on exit.
cleanup() {
  local pids
  pids=$(jobs -p || true)
  [ -n "$pids" ] && kill $pids 2>/dev/null || true
}
trap cleanup EXIT

step() { printf '\n=== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "no aws-lc-rs in the dependency graph (ring is the only crypto provider)"
if grep -q 'name = "aws-lc' Cargo.lock; then
  echo "Cargo.lock contains aws-lc-rs: a dependency enabled the wrong rustls provider" >&2
  exit 1
fi

step "fuzz targets build"
CARGO_TARGET_DIR="$CARGO_TARGET_DIR/fuzz" cargo build --manifest-path protocol/fuzz/Cargo.toml --bins

step "cargo test (workspace)"
cargo test --workspace --locked --all-targets
cargo test --workspace --locked --doc

step "fuzz targets run (${SIGHTLINE_FUZZ_SECONDS:-20} s each, coverage-guided)"
bash scripts/fuzz.sh

step "Debian packages: build, dpkg -i, systemd-analyze verify, purge"
bash scripts/check-deb.sh
