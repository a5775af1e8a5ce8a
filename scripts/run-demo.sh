#!/usr/bin/env bash
# `make run` until the local mesh runner exists: analyze the bundled example configs.
set -uo pipefail
cd "$(dirname "$0")/.."
REMORA=.venv/bin/remora

echo "== remora analyze examples/bookinfo   (a correct mesh config)"
$REMORA analyze -f examples/bookinfo
status=$?
echo
echo "== remora analyze examples/broken     (deliberate mistakes; exit status 79 = issues found)"
$REMORA analyze -f examples/broken
echo "(exit status $?)"
echo
echo "Try it on your own Istio/Kubernetes YAML:  .venv/bin/remora analyze -f DIR_OR_FILE [-A] [-o json]"
exit $status
