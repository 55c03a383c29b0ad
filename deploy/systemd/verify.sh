#!/usr/bin/env bash
# Checks the parpulse systemd units with `systemd-analyze verify` (works without a
# running systemd: it parses the units and checks their settings and commands).
# The units start /usr/local/bin/parpulse, which a build machine does not have: the
# check runs on copies whose ExecStart names an executable that exists, so that every
# other finding (an unknown key, a bad value, a missing section) fails it.
# Any warning counts as a failure. Usage: deploy/systemd/verify.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v systemd-analyze >/dev/null \
  || { echo "systemd-analyze not found: run deploy/local/install.sh (apt-get install systemd)" >&2; exit 1; }
stand_in="$(command -v true)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

units=("$here"/*.service)
((${#units[@]})) || { echo "no units in $here" >&2; exit 1; }
for unit in "${units[@]}"; do
  grep -q '^ExecStart=/usr/local/bin/parpulse ' "$unit" \
    || { echo "$(basename "$unit"): ExecStart must start /usr/local/bin/parpulse" >&2; exit 1; }
  sed "s#^ExecStart=/usr/local/bin/parpulse #ExecStart=$stand_in #" "$unit" >"$work/$(basename "$unit")"
done

status=0
findings="$(cd "$work" && systemd-analyze verify --man=no --generators=no ./*.service 2>&1)" || status=$?
if ((status != 0)) || [[ -n "$findings" ]]; then
  printf '%s\n' "${findings//$work/deploy/systemd}" >&2
  echo "systemd-analyze verify: the units above need fixing (exit status $status)" >&2
  exit 1
fi
echo "systemd units verified: $(cd "$here" && echo *.service)"
