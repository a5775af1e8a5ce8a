#!/usr/bin/env bash
# `make run`: the e-commerce demo as a local mesh — `remora up examples/ecommerce`, a gentle
# load that shows the canary split, and the curl commands to try; Ctrl-C stops everything, and
# a `remora down` from another terminal ends it too.
# REMORA_DEMO_EXIT=1 stops it after the load (for scripted runs); REMORA_DEMO_DIR, _STATE,
# _CONTROLPLANE_PORT and _LOAD_SECONDS run another mesh, elsewhere, shorter (for tests).
set -uo pipefail
cd "$(dirname "$0")/.."
REMORA=.venv/bin/remora
DEMO=${REMORA_DEMO_DIR:-examples/ecommerce}
STATE=${REMORA_DEMO_STATE:-.remora/up}
CONTROLPLANE_PORT=${REMORA_DEMO_CONTROLPLANE_PORT:-15080}
LOAD_SECONDS=${REMORA_DEMO_LOAD_SECONDS:-15}
GATEWAY=http://127.0.0.1:8080

echo "== remora analyze -f $DEMO"
$REMORA analyze -f "$DEMO" || exit $?
echo
echo "== remora up -f $DEMO   (control plane, a sidecar per instance, the gateway)"
$REMORA down --state-dir "$STATE" >/dev/null 2>&1  # a previous run left behind
$REMORA up -f "$DEMO" --detach --state-dir "$STATE" --controlplane-port "$CONTROLPLANE_PORT" \
  || exit $?
stop() {
  echo
  echo "== remora down"
  $REMORA down --state-dir "$STATE"
  exit 0
}
trap stop INT TERM
echo
$REMORA status --state-dir "$STATE"
cat <<EOF

The shop is behind the ingress gateway at $GATEWAY. Try:

  curl $GATEWAY/api/users                                   # user service
  curl $GATEWAY/api/products/1                              # product: 90 % v1, 10 % v2
  curl -H 'x-user-type: tester' $GATEWAY/api/products/1     # testers always get v2 (rating, badge)
  curl -X POST -H 'content-type: application/json' \\
       -d '{"userId":1,"productId":1,"quantity":2}' $GATEWAY/api/orders
                                                            # order calls user, product, payment
  .venv/bin/remora status              # instances, readiness, restarts, req/s
  .venv/bin/remora get vs --server https://127.0.0.1:15080  # the mesh config it runs
  .venv/bin/remora logs <instance> -f  # an instance's log
  .venv/bin/remora exec order-v1 -- curl -s http://user:8080/api/users
                                       # a command inside a pod, as kubectl exec

== a gentle load: 10 req/s on /api/products/1 for $LOAD_SECONDS s (watch the v1/v2 split)
EOF
[ "$LOAD_SECONDS" = 0 ] || $REMORA load "$GATEWAY/api/products/1" --rps 10 --duration "$LOAD_SECONDS"
if [ "${REMORA_DEMO_EXIT:-0}" = "1" ]; then
  stop
fi
echo
echo "The mesh keeps running; press Ctrl-C to stop it (or run: .venv/bin/remora down)."
# until Ctrl-C, or until the supervisor is gone (`remora down` from another terminal)
SUPERVISOR=$(cut -d' ' -f1 "$STATE/supervisor.pid" 2>/dev/null)
while [ -n "$SUPERVISOR" ] && kill -0 "$SUPERVISOR" 2>/dev/null; do sleep 1 & wait $!; done
echo
echo "The mesh was stopped (remora down, or its supervisor exited); see $STATE/supervisor.log."
exit 0
