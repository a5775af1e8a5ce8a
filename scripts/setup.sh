#!/usr/bin/env bash
# Set up a fresh machine for Remora: Debian packages (when missing), then .venv with the package.
# Idempotent; `make run`, `make test` and `make bench` call it through the .venv stamp.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the project needs at run or test time, and the command that proves each present.
declare -A DEB_PACKAGES=(
  [python3-venv]="python3 -c 'import venv, ensurepip'"
  [nginx-light]="command -v nginx || test -x /usr/sbin/nginx"
  [wrk]="command -v wrk"
  [curl]="command -v curl"
  [etcd-server]="command -v etcd || test -x /usr/bin/etcd"
  [iptables]="command -v iptables-restore"  # remora up --network namespace: capture rules
  [iproute2]="command -v ip"
)

missing=()
for package in "${!DEB_PACKAGES[@]}"; do
  bash -c "${DEB_PACKAGES[$package]}" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"setup: Remora needs Python >= 3.11, found {sys.version.split()[0]}")
PY

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
echo "setup: installing remora and its development extras into .venv"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e '.[dev]' 2>&1 | grep -v -E '^WARNING: (Location|Ignoring)' || true
.venv/bin/python -c 'import remora, yaml; yaml.CSafeLoader' \
  || { echo "setup: the installed package does not import" >&2; exit 1; }
