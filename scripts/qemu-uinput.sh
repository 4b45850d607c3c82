#!/usr/bin/env bash
# Runs the uinput self-test (host-agent/examples/uinput_selftest.rs) for real inside a qemu VM
# booting Debian's own kernel, for machines whose kernel has no /dev/uinput.
#
# Builds the example, downloads (and caches) the kernel package Debian's linux-image-amd64 points
# at, takes vmlinuz plus the uinput and evdev modules (and their dependencies) out of it, packs
# an initramfs (busybox-static, the self-test, its shared libraries, the modules, an /init that
# loads them, runs the test on the serial console and powers off) and boots it in
# qemu-system-x86_64 (software emulation; KVM on request).
#
# Exits 0 only when the console shows `UINPUT-SELFTEST PASS`.
#
# Environment:
#   SIGHTLINE_QEMU_CACHE    cache directory (default /var/tmp/sightline-qemu)
#   SIGHTLINE_QEMU_KERNEL   kernel package to use (default: what linux-image-amd64 depends on)
#   SIGHTLINE_QEMU_PROFILE  cargo profile for the example (default dev)
#   SIGHTLINE_QEMU_TIMEOUT  seconds the VM may run (default 120)
#   SIGHTLINE_QEMU_KVM      1 to use KVM (default 0: software emulation, which always works)
#   CARGO_TARGET_DIR        honoured as by cargo
# Usage (Debian 12, amd64, as root): bash scripts/qemu-uinput.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${SIGHTLINE_QEMU_CACHE:-/var/tmp/sightline-qemu}"
PROFILE="${SIGHTLINE_QEMU_PROFILE:-dev}"
VM_TIMEOUT="${SIGHTLINE_QEMU_TIMEOUT:-120}"
MODULES=(uinput evdev)

say() { printf 'qemu-uinput: %s\n' "$*"; }
die() {
  printf 'qemu-uinput: FAILED: %s\n' "$*" >&2
  exit 1
}

trap 'die "unexpected failure (exit status $?) at line $LINENO: $BASH_COMMAND"' ERR

[ "$(uname -m)" = x86_64 ] || die "this script boots an amd64 Debian kernel and needs an x86_64 host (have $(uname -m))"
command -v dpkg-deb >/dev/null && command -v apt-get >/dev/null ||
  die "needs a Debian-like host (apt-get, dpkg-deb)"
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null || die "cargo not found (run scripts/deps.sh)"
# Run from `cargo test`, this script inherits the variables cargo sets for a test (the package's
# name, manifest dir, ...). ring's build script asks to be rerun when those change, so a nested
# build that sees them would rebuild ring and all above it, and the next outer build again.
for v in $(compgen -e); do
  case "$v" in
    CARGO_PKG_* | CARGO_BIN_EXE_* | CARGO_MANIFEST_DIR | CARGO_MANIFEST_PATH | CARGO_MANIFEST_LINKS | \
      CARGO_CRATE_NAME | CARGO_BIN_NAME | CARGO_PRIMARY_PACKAGE | CARGO_TARGET_TMPDIR | \
      CARGO_RUSTC_CURRENT_DIR | OUT_DIR) unset "$v" ;;
  esac
done

# --- host tools --------------------------------------------------------------------------------
APT_UPDATED=0
apt_update() {
  if [ "$APT_UPDATED" = 0 ]; then
    say "apt-get update"
    apt-get update -qq || say "apt-get update failed (offline?); going on with the lists there are"
    APT_UPDATED=1
  fi
}

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
# A static busybox (the dynamic one of package busybox would need its libraries in the VM).
if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then need+=(busybox-static); fi
command -v cpio >/dev/null || need+=(cpio)
command -v xz >/dev/null || need+=(xz-utils)
command -v gzip >/dev/null || need+=(gzip)
command -v timeout >/dev/null || need+=(coreutils)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing ${need[*]}; run as root so that apt-get can install them"
  apt_update
  say "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
    die "apt-get install ${need[*]} failed: are Debian's mirrors reachable from here?"
fi
BUSYBOX=/bin/busybox
ldd "$BUSYBOX" >/dev/null 2>&1 && die "$BUSYBOX is dynamically linked: install busybox-static"

# --- the self-test binary ----------------------------------------------------------------------
say "building the uinput_selftest example (profile $PROFILE)"
# --workspace: features unified as in `cargo test --workspace`, so a run from the test suite reuses
# what the suite built instead of rebuilding the dependencies with another feature set.
build_json=$(cargo build --locked --workspace --example uinput_selftest \
  --profile "$PROFILE" --message-format=json-render-diagnostics) ||
  die "cargo build of the uinput_selftest example failed"
SELFTEST=$(printf '%s\n' "$build_json" | grep '"reason":"compiler-artifact"' |
  grep '"name":"uinput_selftest"' | grep -o '"executable":"[^"]*"' | tail -n1 | cut -d'"' -f4 || true)
[ -n "$SELFTEST" ] && [ -x "$SELFTEST" ] || die "cargo did not report the uinput_selftest executable"
say "self-test binary: $SELFTEST"

# --- the kernel --------------------------------------------------------------------------------
mkdir -p "$CACHE/debs" "$CACHE/kernels"
cd "$CACHE"
kernel_pkg() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1 || true
}
newest_cached_deb() { ls -1t "$CACHE"/debs/linux-image-*.deb 2>/dev/null | head -n1 || true; }

PKG="${SIGHTLINE_QEMU_KERNEL:-}"
if [ -z "$PKG" ]; then
  PKG=$(kernel_pkg)
  [ -n "$PKG" ] || {
    apt_update
    PKG=$(kernel_pkg)
  }
fi
DEB=""
if [ -n "$PKG" ]; then
  VER=$(apt-cache policy "$PKG" 2>/dev/null | sed -n 's/^ *Candidate: //p' || true)
  if [ -z "$VER" ] || [ "$VER" = "(none)" ]; then
    say "apt knows no installable $PKG"
  else
    DEB="$CACHE/debs/${PKG}_${VER//:/%3a}_amd64.deb"
    if [ ! -s "$DEB" ]; then
      say "downloading $PKG $VER"
      tmp=$(mktemp -d "$CACHE/dl.XXXXXX")
      if (cd "$tmp" && apt-get download -q "$PKG=$VER" >/dev/null 2>&1); then
        mv "$tmp"/*.deb "$DEB"
      else
        say "apt-get download $PKG=$VER failed"
        DEB=""
      fi
      rm -rf "$tmp"
    fi
  fi
fi
if [ -z "$DEB" ]; then
  DEB=$(newest_cached_deb)
  [ -n "$DEB" ] || die "cannot get a Debian kernel package (package '${PKG:-?}'): apt could not \
provide it (Debian's mirrors unreachable, or no such package) and $CACHE/debs holds none; run \
once with access to Debian's mirrors, or set SIGHTLINE_QEMU_KERNEL"
  say "using the cached $(basename "$DEB")"
fi
say "kernel package: $(basename "$DEB")"

KDIR="$CACHE/kernels/$(basename "$DEB" .deb)"
if [ ! -f "$KDIR/.complete" ]; then
  say "extracting the kernel and modules"
  XDIR=$(mktemp -d "$CACHE/kernels/.extract.XXXXXX")
  chmod 755 "$XDIR"
  mkdir -p "$XDIR/modules"
  unpack() { dpkg-deb --fsys-tarfile "$DEB" | tar -x -C "$XDIR" --wildcards "$@"; }
  list=$(dpkg-deb --fsys-tarfile "$DEB" | tar -t) || die "cannot read $DEB"
  vmlinuz=$(printf '%s\n' "$list" | grep -E '^\./boot/vmlinuz-' | head -n1 || true)
  [ -n "$vmlinuz" ] || die "$DEB holds no /boot/vmlinuz-*"
  kver=${vmlinuz#./boot/vmlinuz-}
  # One pass for the kernel, the input drivers and the list of built-in modules; anything else a
  # module needs is unpacked on its own below.
  unpack "$vmlinuz" "./lib/modules/$kver/kernel/drivers/input/*" "./lib/modules/$kver/modules.builtin" ||
    die "cannot unpack $DEB"
  # Every module of the package by name (dashes and underscores are the same to the kernel).
  declare -A modpath=()
  while read -r p; do
    n=$(basename "$p")
    n=${n%%.ko*}
    modpath[${n//-/_}]=$p
  done < <(printf '%s\n' "$list" | grep -E '\.ko(\.xz|\.zst|\.gz)?$')
  # The modules and what they depend on.
  declare -A seen=() moddeps=()
  pending=("${MODULES[@]}")
  while [ ${#pending[@]} -gt 0 ]; do
    m=${pending[0]//-/_}
    pending=("${pending[@]:1}")
    [ -n "${seen[$m]:-}" ] && continue
    seen[$m]=1
    p=${modpath[$m]:-}
    if [ -z "$p" ]; then
      grep -qE "/${m//_/[-_]}\.ko" "$XDIR/lib/modules/$kver/modules.builtin" &&
        { say "$m is built into the kernel"; continue; }
      die "module $m is neither in $DEB nor built in"
    fi
    [ -f "$XDIR/$p" ] || unpack "$p" || die "cannot unpack $p"
    f="$XDIR/$p"
    case "$f" in
      *.xz) xz -d "$f" && f=${f%.xz} ;;
      *.zst)
        command -v zstd >/dev/null || die "$p is zstd-compressed: apt-get install zstd"
        zstd -q -d --rm "$f" && f=${f%.zst}
        ;;
      *.gz) gzip -d "$f" && f=${f%.gz} ;;
    esac
    mv "$f" "$XDIR/modules/$m.ko"
    # The module's dependencies, from its .modinfo strings (NUL-separated key=value pairs).
    deps=$(tr '\0' '\n' <"$XDIR/modules/$m.ko" | sed -n 's/^depends=//p' | head -n1)
    moddeps[$m]=${deps//-/_}
    for d in ${deps//,/ }; do pending+=("$d"); done
  done
  # Loading order: each module after what it depends on (depth-first post-order).
  order=()
  declare -A placed=()
  place() {
    [ -n "${placed[$1]:-}" ] && return
    placed[$1]=1
    local d
    for d in ${moddeps[$1]//,/ }; do place "$d"; done
    [ -f "$XDIR/modules/$1.ko" ] && order+=("$1")
    return 0
  }
  for m in "${MODULES[@]}"; do place "${m//-/_}"; done
  printf '%s\n' "${order[@]}" >"$XDIR/modules/order"
  mv "$XDIR/$vmlinuz" "$XDIR/vmlinuz"
  rm -rf "$XDIR/lib" "$XDIR/boot"
  echo "$kver" >"$XDIR/version"
  touch "$XDIR/.complete"
  rm -rf "$KDIR"
  mv "$XDIR" "$KDIR"
fi
say "kernel $(cat "$KDIR/version"), modules: $(tr '\n' ' ' <"$KDIR/modules/order")"

# --- the initramfs -----------------------------------------------------------------------------
WORK=$(mktemp -d "$CACHE/run.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
ROOT="$WORK/root"
mkdir -p "$ROOT"/{bin,dev,proc,sys,tmp,lib/modules,sightline}
cp "$BUSYBOX" "$ROOT/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$ROOT/bin/$applet"
done
# Without debug info the initramfs is a few MB instead of tens (faster to unpack under emulation).
strip --strip-debug -o "$ROOT/sightline/uinput_selftest" "$SELFTEST" 2>/dev/null ||
  cp "$SELFTEST" "$ROOT/sightline/uinput_selftest"
# The binary's shared libraries at the paths the loader looks for them.
while read -r lib; do
  mkdir -p "$ROOT$(dirname "$lib")"
  cp -L "$lib" "$ROOT$lib"
done < <(env -u LD_LIBRARY_PATH ldd "$SELFTEST" | grep -oE '/[^ ]+' | sort -u)
cp "$KDIR"/modules/*.ko "$KDIR/modules/order" "$ROOT/lib/modules/"
cat >"$ROOT/init" <<'EOF'
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "init: kernel $(cat /proc/sys/kernel/osrelease) up $(cut -d' ' -f1 /proc/uptime) s"
ok=1
for m in $(cat /lib/modules/order); do
  if insmod "/lib/modules/$m.ko"; then echo "init: loaded $m"; else echo "init: insmod $m failed"; ok=0; fi
done
ls -l /dev/uinput /dev/input/ 2>&1 | sed 's/^/init: /'
if [ "$ok" = 1 ]; then
  /sightline/uinput_selftest 2>&1
  echo "init: self-test exited with $?"
else
  echo "UINPUT-SELFTEST FAIL: cannot load the kernel modules"
fi
sync
poweroff -f
EOF
chmod +x "$ROOT/init"
(cd "$ROOT" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1 >"$WORK/initrd.gz") ||
  die "cannot pack the initramfs"
say "initramfs: $(du -h "$WORK/initrd.gz" | cut -f1)"

# --- boot --------------------------------------------------------------------------------------
# Software emulation unless asked for KVM: where KVM is itself nested it can hang or abort
# (seen: "failed to set MSR 0x10a" with -cpu host, a hang after the boot loader without).
accel=(-accel tcg)
[ "${SIGHTLINE_QEMU_KVM:-0}" = 1 ] && accel=(-accel kvm -cpu host)
CONSOLE="$WORK/console.log"
say "booting (${accel[1]}, timeout ${VM_TIMEOUT} s)"
start=$(date +%s.%N)
set +e
trap - ERR
timeout --kill-after=5 "$VM_TIMEOUT" qemu-system-x86_64 "${accel[@]}" -m 512 -smp 1 \
  -nographic -no-reboot -monitor none -serial stdio -net none \
  -kernel "$KDIR/vmlinuz" -initrd "$WORK/initrd.gz" \
  -append "console=ttyS0 quiet panic=-1" </dev/null 2>&1 |
  sed -u -e 's/\r$//' -e 's/\x1b\[[0-9;?]*[a-zA-Z]//g' -e 's/\x1bc//g' | tee "$CONSOLE"
status=${PIPESTATUS[0]}
set -e
trap 'die "unexpected failure (exit status $?) at line $LINENO: $BASH_COMMAND"' ERR
cp "$CONSOLE" "$CACHE/last-console.log"
elapsed=$(awk "BEGIN{print $(date +%s.%N) - $start}")
printf 'qemu-uinput: boot + self-test took %.1f s (qemu exit status %s)\n' "$elapsed" "$status"
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
  die "the VM did not finish within ${VM_TIMEOUT} s"
fi
if grep -qx 'UINPUT-SELFTEST PASS' "$CONSOLE"; then
  say "PASS"
  exit 0
fi
reason=$(grep -m1 '^UINPUT-SELFTEST FAIL' "$CONSOLE" || true)
die "${reason:-no UINPUT-SELFTEST line on the console (qemu exit status $status)}"
