#!/usr/bin/env bash
# Installs the system packages Sightline needs to build and test on Debian 12 (run as root).
# Idempotent: only calls apt-get when something is missing.
set -euo pipefail

PACKAGES=(
  build-essential   # cc/c++ for ring and libfuzzer
  pkg-config
  nasm              # openh264's assembly (2.5-3x faster encoding)
  ca-certificates
  curl
  xvfb              # X server for capture, injection and viewer-window tests
  x11-apps          # xwd: screenshots of the viewer window
  x11-utils         # xdpyinfo: waiting for Xvfb
  imagemagick       # convert: screenshot to PNG
  mesa-vulkan-drivers libvulkan1   # lavapipe: wgpu on a machine without a GPU
  libxkbcommon-x11-0 libxcursor1 libxrandr2 libxi6   # winit on X11
  ffmpeg            # checks that recorded streams decode with an independent decoder
  libavcodec-dev libavformat-dev libavutil-dev clang libclang-dev   # ffmpeg-next: HEVC / H.264 10-bit (bindgen needs libclang)
  qemu-system-x86 busybox-static cpio xz-utils   # uinput devices tested in a VM with Debian's kernel
  librsvg2-bin      # rsvg-convert: bench plots (SVG) to PNG for a look
  libopus-dev libasound2-dev   # audio: libopus (Opus multistream surround) and ALSA headers for cpal
  pulseaudio pulseaudio-utils libasound2-plugins   # audio tests: a real sound server, pacat/parec/pactl
  systemd desktop-file-utils logrotate adduser   # the .deb check: systemd-analyze verify, desktop entry, log rotation, service user
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "deps: no Rust toolchain found; installing stable Rust with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy -c rustfmt
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi

# Cargo tools for the packaging and fuzzing checks; built once, then cached in ~/.cargo/bin.
# Pinned: cargo-deb warns that packaging dev-profile binaries (what the CI check does, to avoid
# a release build) may become an error in a later version.
declare -A versions=([cargo-deb]=3.8.0 [cargo-fuzz]=0.13.2)
for tool in cargo-deb cargo-fuzz; do
  if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/$tool" ]; then
    echo "deps: installing $tool (first run only)"
    cargo install --locked "$tool" --version "${versions[$tool]}"
  fi
done
