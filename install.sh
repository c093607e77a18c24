#!/usr/bin/env bash
# Sets up the loyalty system on a Debian 12 machine with Python 3.11.
#   ./install.sh         the package and the `loyalty` command in .venv
#   ./install.sh --dev   also the test tools and the Debian packages the tests drive
#                        (pcscd, the virtual smart-card reader, socat, chromium, curl,
#                        PostgreSQL 15 for HQ's PostgreSQL store)
# Running it again is harmless: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")"

dev=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done

say() { if [ -t 1 ]; then printf '\033[1m==> %s\033[0m\n' "$*"; else printf '==> %s\n' "$*"; fi; }

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "install.sh: Python 3.11 or newer is needed ($python is $("$python" --version 2>&1))" >&2
  exit 1
fi

# Debian packages: pyscard builds from source against libpcsclite (no Linux wheel).
base_debs=(gcc libpcsclite-dev pkg-config)
dev_debs=(pcscd vsmartcard-vpcd python3-virtualsmartcard socat chromium chromium-driver poppler-utils
          curl zbar-tools postgresql)
# curl: tests/docs runs the README's chain block as written; zbar-tools: tests read the
# invoice's QR code back (zbarimg); postgresql: its binaries (initdb, pg_ctl) start the
# throwaway clusters of HQ's PostgreSQL tests (tests/testkit/postgres.py). Debian's own
# `main` cluster, which the package creates and may start, is never used by them.
if [ "$python" = python3 ] && [ "$(command -v python3)" = /usr/bin/python3 ]; then
  base_debs+=(python3-venv python3-dev)
fi
wanted=("${base_debs[@]}")
[ "$dev" = 1 ] && wanted+=("${dev_debs[@]}")

missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  say "virtual environment in .venv"
  "$python" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi

if [ "$dev" = 1 ]; then
  say "the package with the test tools"
  .venv/bin/pip install -q -e '.[dev]'
  # Debian ships the vicc card emulator outside every Python's path (vsmartcard #216):
  # point the venv at it so tests can import virtualsmartcard.
  site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  vsc=$(dpkg -L python3-virtualsmartcard 2>/dev/null | grep -m1 '/virtualsmartcard/__init__.py$' || true)
  if [ -n "$vsc" ]; then dirname "$(dirname "$vsc")" > "$site/debian-virtualsmartcard.pth"; fi
else
  say "the package"
  .venv/bin/pip install -q -e .
fi
say "done: .venv/bin/loyalty --help"
