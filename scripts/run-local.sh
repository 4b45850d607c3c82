#!/usr/bin/env bash
# Sets up and runs Sightline on this machine: builds the binaries, creates a host and a viewer
# identity under ./local (once), authorizes the viewer and pins the host, starts host-agent on
# 127.0.0.1 streaming this machine's X display (or, without one, the built-in synthetic
# picture) and connects the viewer to it: a window when there is a display, otherwise a
# headless run that decodes 10 s of video and prints the per-stage latency table.
# Usage (Debian 12, as root): bash scripts/run-local.sh [viewer options, e.g. --stats]
# Environment: SIGHTLINE_SOURCE=x11|synthetic (default: x11 with a display, else synthetic),
#              SIGHTLINE_PORT (default 4433), SIGHTLINE_LOCAL_DIR (default ./local),
#              SIGHTLINE_LOCAL_AUDIO=1 to let the viewer play audio (off by default: on one
#              machine it would play into the sink the host captures, an echo loop),
#              SIGHTLINE_HOST_ARGS (more host-agent options, e.g. "--bit-depth 10 --codec hevc").
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sightline-target}"

PORT="${SIGHTLINE_PORT:-4433}"
STATE="${SIGHTLINE_LOCAL_DIR:-$PWD/local}"
if [ -n "${DISPLAY:-}" ]; then
  SOURCE="${SIGHTLINE_SOURCE:-x11}"
else
  SOURCE="${SIGHTLINE_SOURCE:-synthetic}"
fi

echo "building (release)..."
cargo build --release --locked -p sightline-certs -p sightline-host-agent -p sightline-viewer
BIN="$CARGO_TARGET_DIR/release"

mkdir -p "$STATE"
if [ ! -f "$STATE/host/cert.pem" ]; then
  "$BIN/certs" create --role host --dir "$STATE/host" --name "$(hostname)"
fi
if [ ! -f "$STATE/viewer/cert.pem" ]; then
  "$BIN/certs" create --role viewer --dir "$STATE/viewer" --name "$(whoami)@$(hostname)"
fi
"$BIN/certs" authorize --authorized "$STATE/authorized_viewers" --identity "$STATE/viewer" >/dev/null
"$BIN/certs" pin --known-hosts "$STATE/known_hosts" --host "127.0.0.1:$PORT" --identity "$STATE/host" >/dev/null

"$BIN/host-agent" --listen "127.0.0.1:$PORT" --identity "$STATE/host" \
  --authorized "$STATE/authorized_viewers" --source "$SOURCE" ${SIGHTLINE_HOST_ARGS:-} \
  >"$STATE/host-agent.log" 2>&1 &
HOST_PID=$!
trap 'kill $HOST_PID 2>/dev/null || true; wait $HOST_PID 2>/dev/null || true' EXIT
# Wait until the host is listening.
for _ in $(seq 1 50); do
  grep -q "listening on" "$STATE/host-agent.log" 2>/dev/null && break
  kill -0 $HOST_PID 2>/dev/null || { cat "$STATE/host-agent.log"; exit 1; }
  sleep 0.1
done
echo "host-agent running, source: $SOURCE (log: $STATE/host-agent.log)"

VIEWER=("$BIN/viewer" "127.0.0.1:$PORT" --identity "$STATE/viewer" --known-hosts "$STATE/known_hosts")
if [ "${SIGHTLINE_LOCAL_AUDIO:-0}" != "1" ]; then
  VIEWER+=(--no-audio)
fi
if [ -n "${DISPLAY:-}" ]; then
  echo "opening the viewer window (F3: stats overlay, F11: fullscreen, close the window to stop)"
  "${VIEWER[@]}" "$@"
else
  echo "no display: decoding 600 frames headless (run with DISPLAY set for the window)"
  "${VIEWER[@]}" --headless --frames 600 --stats-json "$STATE/last-run.json" "$@"
  echo "per-frame timings: $STATE/last-run.json"
fi
