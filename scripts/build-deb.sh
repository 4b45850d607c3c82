#!/usr/bin/env bash
# Builds the Debian packages sightline-certs, sightline-host and sightline-viewer with cargo-deb.
# Usage: bash scripts/build-deb.sh [--dev] [OUTDIR]
#   Without --dev: release binaries (what you install on a workstation).
#   With --dev: the dev-profile binaries the test build already made (what CI checks: the
#   packaging, not the speed).
# Packages land in OUTDIR (default: $CARGO_TARGET_DIR/debian).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sightline-target}"

profile=release
if [ "${1:-}" = "--dev" ]; then
  profile=dev
  shift
fi
out="${1:-$CARGO_TARGET_DIR/debian}"
mkdir -p "$out"
command -v cargo-deb >/dev/null || { echo "cargo-deb missing: run scripts/deps.sh" >&2; exit 1; }

if [ "$profile" = dev ]; then
  # The binaries `cargo test --workspace` builds (same features, so nothing is rebuilt when the
  # suite ran first).
  cargo test --workspace --locked --all-targets --no-run
else
  cargo build --locked --release -p sightline-certs -p sightline-host-agent -p sightline-viewer --bins
fi
for p in sightline-certs sightline-host-agent sightline-viewer; do
  cargo deb --locked --no-build --profile "$profile" -p "$p" --output "$out"
done
ls -1 "$out"/*.deb
