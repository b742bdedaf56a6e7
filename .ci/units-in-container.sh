#!/usr/bin/env bash
# Run the shipped systemd units for real, on a machine whose PID 1 is not systemd:
# boot this machine's own root file system as a container (systemd-nspawn over an
# overlay whose writes go to a tmpfs, no network but loopback), install
# reconciler there as README "Running as a service" says, and show
#   1. `reconciler run --once` converging under deploy/reconciler.service
#      (the unit with ExecStart= set to --once and Type=oneshot, in a drop-in),
#   2. the daemon running under the unit and `reconciler status` saying published,
#   3. reconciler-webhook.service answering look-now and a push on 127.0.0.1:8081,
#   4. `systemd-analyze security` of both units as systemd itself loaded them.
# Root only; needs systemd-container (apt-get install systemd-container). Nothing
# is left behind: the container's writes vanish with its tmpfs, and the checkout
# it runs from (/opt/reconciler on the host) is removed at the end.
# Usage: bash .ci/units-in-container.sh [REPOSITORY]   (default: this checkout)
set -euo pipefail
repo=$(cd "${1:-$(dirname "$0")/..}" && pwd)
work=$(mktemp -d /tmp/units-XXXXXX)
opt=/opt/reconciler
[ ! -e "$opt" ] || { echo "error: $opt exists; this script makes and removes it" >&2; exit 1; }
cleanup() {
  [ -z "${nspawn_pid:-}" ] || kill "$nspawn_pid" 2>/dev/null || true
  sleep 2
  umount "$work/merged" 2>/dev/null || true
  umount "$work/upper" 2>/dev/null || true
  rm -rf "$work" "$opt"
}
trap cleanup EXIT

echo "== the checkout and its venv (Debian's python3, as a real install has)"
git clone -q "$repo" "$opt"
/usr/bin/python3 -m venv "$opt/.venv"
"$opt/.venv/bin/pip" install -q -r "$opt/requirements.txt"
"$opt/.venv/bin/pip" install -q --no-deps -e "$opt"

echo "== boot the container"
mkdir -p "$work/upper" "$work/merged"
mount -t tmpfs tmpfs "$work/upper"
mkdir -p "$work/upper/u" "$work/upper/w"
mount -t overlay overlay -o "lowerdir=/,upperdir=$work/upper/u,workdir=$work/upper/w" "$work/merged"
systemd-nspawn -D "$work/merged" --private-network --register=no --keep-unit -b \
  >"$work/boot.log" 2>&1 &
nspawn_pid=$!
# The container's PID 1 is the process named systemd that descends from nspawn.
descends_from() {  # PID ANCESTOR
  local pid=$1
  while [ "$pid" -gt 1 ]; do
    pid=$(awk '{print $4}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ "$pid" = "$2" ] && return 0
  done
  return 1
}
init=""
for _ in $(seq 120); do
  for candidate in $(pgrep -x systemd); do
    if descends_from "$candidate" "$nspawn_pid"; then init=$candidate; fi
  done
  if [ -n "$init" ]; then
    state=$(nsenter -t "$init" -a systemctl is-system-running --wait 2>/dev/null || true)
    case "$state" in running|degraded) break ;; esac
  fi
  sleep 0.5
done
[ -n "$init" ] || { cat "$work/boot.log"; echo "error: the container did not boot" >&2; exit 1; }
in_container() { nsenter -t "$init" -a "$@"; }
echo "booted: $(in_container systemctl is-system-running || true)"

echo "== install as README says"
in_container useradd --system --home-dir /var/lib/reconciler --create-home reconciler
in_container mkdir -p /etc/reconciler /etc/systemd/system/reconciler.service.d
in_container tee /etc/reconciler/config.yaml >/dev/null <<EOF
paths: {data: /var/lib/reconciler/data, html_out: /var/lib/reconciler/html_out}
branches:
  - {name: main, pmaports: $opt/examples/pmaports, arches: [x86_64]}
builder: {duration_seconds: 0}
EOF
in_container cp "$opt/deploy/reconciler.service" "$opt/deploy/reconciler-webhook.service" \
  /etc/systemd/system/
in_container tee /etc/systemd/system/reconciler.service.d/once.conf >/dev/null <<EOF
[Service]
Type=oneshot
ExecStart=
ExecStart=$opt/.venv/bin/python -m reconciler run --once --config /etc/reconciler/config.yaml
EOF
in_container systemctl daemon-reload

echo "== 1. run --once under the unit"
in_container systemctl start reconciler.service || true
in_container systemctl show -p Result -p ExecMainStatus reconciler.service
in_container journalctl -u reconciler --no-pager -o cat | grep -E "converged|not converged|error" | tail -3

echo "== 2. the daemon under the unit"
in_container rm /etc/systemd/system/reconciler.service.d/once.conf
in_container systemctl daemon-reload
in_container systemctl restart reconciler.service
sleep 5
in_container systemctl is-active reconciler.service
in_container runuser -u reconciler -- "$opt/.venv/bin/reconciler" status --config /etc/reconciler/config.yaml \
  && echo "status: exit 0 (everything published)" || echo "status: exit $?"
in_container sh -c 'grep -h "processes held by" /var/lib/reconciler/data/jobs/done/*/log | sort | uniq -c | head -3'

echo "== 3. the webhook receiver under its unit"
in_container runuser -u reconciler -- "$opt/.venv/bin/reconciler" token new push-hook \
  --config /etc/reconciler/config.yaml >"$work/token" 2>/dev/null
in_container systemctl start reconciler-webhook.service
sleep 3
in_container systemctl is-active reconciler-webhook.service
in_container curl -s -o /dev/null -w "look-now: %{http_code}\n" -X POST http://127.0.0.1:8081/api/look-now
sha=$(printf '%040d' 1)
body="{\"object_kind\": \"push\", \"ref\": \"refs/heads/main\", \"before\": \"$sha\", \"after\": \"$sha\"}"
in_container curl -s -w " (%{http_code})\n" -X POST -H "X-Gitlab-Event: Push Hook" \
  -H "X-Gitlab-Token: $(cat "$work/token")" -H "Content-Type: application/json" \
  --data "$body" http://127.0.0.1:8081/api/push-hook/gitlab
in_container curl -s -o /dev/null -w "wrong token: %{http_code}\n" -X POST \
  -H "X-Gitlab-Event: Push Hook" -H "X-Gitlab-Token: wrong" --data "$body" \
  http://127.0.0.1:8081/api/push-hook/gitlab

echo "== 4. the units' exposure, as systemd loaded them"
in_container systemd-analyze security --no-pager reconciler.service | tail -1
in_container systemd-analyze security --no-pager reconciler-webhook.service | tail -1
