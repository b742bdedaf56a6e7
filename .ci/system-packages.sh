# Shared by run_tests.sh (sourced, like venv.sh): install the Debian packages the
# integration tests need (a real nginx, headless Chromium and its driver, git,
# rsync, systemd-analyze, sudo) when one of them is missing. As root it runs apt-get itself; otherwise
# it prints the exact command to run and fails, so nothing is silently skipped.
# Can also be run directly: `bash .ci/system-packages.sh`.

# nginx-light is enough (it has gzip_static and gunzip, style.md B4), but newer
# releases dropped it; plain nginx has both modules too. Asks the package lists.
_nginx_package() {
  if ! apt-cache show nginx-light >/dev/null 2>&1 && apt-cache show nginx >/dev/null 2>&1; then
    echo nginx
  else
    echo nginx-light
  fi
}

ensure_system_packages() {
  local missing=() need_nginx=0
  command -v nginx >/dev/null 2>&1 || need_nginx=1
  # Debian installs the browser and its matching driver at fixed paths; the
  # browser tests pass exactly these paths (never Selenium Manager downloads).
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
  command -v git >/dev/null 2>&1 || missing+=(git)
  command -v rsync >/dev/null 2>&1 || missing+=(rsync)
  # systemd-analyze scores the shipped units (tests/test_units.py); sudo runs
  # local build jobs as their own user (tests/test_local_jobs.py).
  command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
  command -v sudo >/dev/null 2>&1 || missing+=(sudo)
  if [ "$need_nginx" = 0 ] && [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  if [ "$EUID" != 0 ]; then
    [ "$need_nginx" = 0 ] || missing=("$(_nginx_package)" "${missing[@]}")
    echo "error: missing system packages: ${missing[*]}; install them first:" >&2
    echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive" \
      "apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: nginx, chromium, chromium-driver, git, rsync, systemd or sudo is missing, and no apt-get" >&2
    exit 1
  fi
  apt-get update -qq
  # Chosen after the update: a fresh machine has no package lists before it.
  [ "$need_nginx" = 0 ] || missing=("$(_nginx_package)" "${missing[@]}")
  echo "installing system packages with apt-get: ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Executed (not sourced): do the work right away.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  ensure_system_packages
fi
