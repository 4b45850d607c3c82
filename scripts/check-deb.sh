#!/usr/bin/env bash
# Builds the Debian packages (dev profile), installs them with dpkg, checks what they put on
# the system (binaries, config, the sightline user, the systemd unit with systemd-analyze
# verify, the udev rule, logrotate rule, desktop entry), then purges them again.
# Usage (Debian 12, as root): bash scripts/check-deb.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sightline-target}"

out=$(mktemp -d)
bash scripts/build-deb.sh --dev "$out"

# One install check at a time on this machine (dpkg has one database).
exec 9>/var/lock/sightline-deb-check.lock
flock 9
user_existed=0
getent passwd sightline >/dev/null && user_existed=1
purge() {
  dpkg --purge sightline-viewer sightline-host sightline-certs >/dev/null 2>&1 || true
  if [ "$user_existed" = 0 ] && getent passwd sightline >/dev/null; then
    deluser --system --quiet sightline >/dev/null 2>&1 || userdel sightline || true
    getent group sightline >/dev/null && groupdel sightline 2>/dev/null || true
  fi
  rm -rf "$out"
}
trap purge EXIT

fail() { echo "check-deb: $*" >&2; exit 1; }

# dpkg refuses to run while apt/dpkg elsewhere holds its lock; wait for it a little.
for i in $(seq 1 30); do
  if dpkg -i "$out"/sightline-certs_*.deb "$out"/sightline-host_*.deb "$out"/sightline-viewer_*.deb; then
    break
  fi
  [ "$i" = 30 ] && fail "dpkg -i failed"
  sleep 2
done

for f in /usr/bin/host-agent /usr/bin/viewer /usr/bin/certs; do
  [ -x "$f" ] || fail "$f missing"
done
for f in /etc/sightline/host.toml /lib/systemd/system/sightline-host.service \
         /etc/logrotate.d/sightline-host /lib/udev/rules.d/60-sightline-uinput.rules \
         /usr/lib/modules-load.d/sightline-uinput.conf \
         /usr/share/applications/sightline-viewer.desktop \
         /usr/share/icons/hicolor/scalable/apps/sightline.svg; do
  [ -f "$f" ] || fail "$f missing"
done
dpkg-query -W -f='${Conffiles}\n' sightline-host | grep -q /etc/sightline/host.toml ||
  fail "host.toml is not a conffile"
getent passwd sightline >/dev/null || fail "no sightline user"
[ "$(getent passwd sightline | cut -d: -f7)" != /bin/bash ] || fail "sightline has a login shell"
[ "$(id -Gn sightline)" = sightline ] || fail "sightline is in groups $(id -Gn sightline)"
[ "$(stat -c %U:%a /var/lib/sightline)" = sightline:750 ] || fail "/var/lib/sightline owner/mode"
[ "$(stat -c %U:%a /var/log/sightline)" = sightline:750 ] || fail "/var/log/sightline owner/mode"

echo "check-deb: systemd-analyze verify"
# It exits 0 on unknown keys (only warns), so any remark about our unit fails the check too.
verify=$(systemd-analyze verify /lib/systemd/system/sightline-host.service 2>&1) ||
  fail "systemd-analyze verify: $verify"
if grep -q 'sightline-host' <<<"$verify"; then fail "systemd-analyze verify: $verify"; fi
echo "check-deb: desktop-file-validate"
desktop-file-validate /usr/share/applications/sightline-viewer.desktop
logrotate --debug /etc/logrotate.d/sightline-host >/dev/null 2>&1 || fail "logrotate rule"

# The packaged configuration parses (unknown keys would be an error) and names the service's
# paths; the pairing command works as the service user would see it.
cfg=$(runuser -u sightline -- host-agent --config /etc/sightline/host.toml --print-config)
grep -q '^audit_log = "/var/log/sightline/audit.jsonl"' <<<"$cfg" || fail "config: audit_log"
grep -q '^identity = "/var/lib/sightline/host-identity"' <<<"$cfg" || fail "config: identity"
host-agent pair --ttl 60 | grep -q '^pairing code: [0-9]\{4\}-[0-9]\{4\}$' || fail "host-agent pair"
[ "$(stat -c %U:%a /var/lib/sightline/pairing)" = sightline:600 ] ||
  fail "pairing window not private to the service user: $(stat -c %U:%a /var/lib/sightline/pairing)"
grep -q '"event":"pair_window_opened"' /var/log/sightline/audit.jsonl || fail "audit of pair"

dpkg -r sightline-viewer sightline-host sightline-certs
[ ! -e /usr/bin/host-agent ] || fail "host-agent left after dpkg -r"
[ -f /etc/sightline/host.toml ] || fail "conffile removed by dpkg -r (should stay until purge)"
dpkg --purge sightline-viewer sightline-host sightline-certs
[ ! -e /etc/sightline/host.toml ] || fail "conffile left after purge"
[ ! -e /var/lib/sightline ] || fail "/var/lib/sightline left after purge"
echo "check-deb: packages built, installed, verified and purged"
