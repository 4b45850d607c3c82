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
PULSE_DIR=""
cleanup() {
  local pids
  pids=$(jobs -p || true)
  if [ -n "$pids" ]; then
    kill $pids 2>/dev/null || true
    # Let PulseAudio finish exiting first: it writes into its directory while it shuts down.
    wait $pids 2>/dev/null || true
  fi
  if [ -n "$PULSE_DIR" ]; then
    rm -rf "$PULSE_DIR" || echo "cleanup: could not remove $PULSE_DIR" >&2
  fi
  return 0
}
trap cleanup EXIT

# PulseAudio for the audio tests: as root, in a private runtime directory (parallel runs never
# share it), streams mapped onto sinks by channel name only (no up/downmix), an 8-channel null
# sink as the default sink. Each audio test loads its own null sinks on it.
start_pulseaudio() {
  PULSE_DIR=$(mktemp -d /tmp/sightline-pulse.XXXXXX)
  mkdir -p "$PULSE_DIR/runtime" "$PULSE_DIR/config/pulse"
  chmod 700 "$PULSE_DIR/runtime"
  cat >"$PULSE_DIR/config/pulse/daemon.conf" <<'CONF'
enable-remixing = no
remixing-produce-lfe = no
remixing-consume-lfe = no
default-sample-format = float32le
default-sample-rate = 48000
alternate-sample-rate = 48000
flat-volumes = no
CONF
  local map=front-left,front-right,front-center,lfe,rear-left,rear-right,side-left,side-right
  PULSE_CONFIG="$PULSE_DIR/config/pulse/daemon.conf" XDG_RUNTIME_DIR="$PULSE_DIR/runtime" \
    XDG_CONFIG_HOME="$PULSE_DIR/config" HOME="$PULSE_DIR" \
    pulseaudio -n --daemonize=no --exit-idle-time=-1 --disallow-exit \
      --log-target=stderr --log-level=error \
      "--load=module-native-protocol-unix auth-anonymous=1 socket=$PULSE_DIR/runtime/native" \
      "--load=module-null-sink sink_name=sightline_default channels=8 channel_map=$map rate=48000" \
      >"$PULSE_DIR/pulseaudio.log" 2>&1 &
  export PULSE_SERVER="unix:$PULSE_DIR/runtime/native"
  for _ in $(seq 1 100); do
    pactl info >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "PulseAudio did not start:" >&2
  cat "$PULSE_DIR/pulseaudio.log" >&2
  return 1
}

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

step "PulseAudio (private instance for the audio tests)"
start_pulseaudio
pactl info | grep -E "Server (Name|Version)|Default Sink"

step "cargo test (workspace)"
cargo test --workspace --locked --all-targets
cargo test --workspace --locked --doc

step "fuzz targets run (${SIGHTLINE_FUZZ_SECONDS:-20} s each, coverage-guided)"
bash scripts/fuzz.sh

step "Debian packages: build, dpkg -i, systemd-analyze verify, purge"
bash scripts/check-deb.sh
