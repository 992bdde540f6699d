#!/bin/sh
# Container health check (Dockerfile HEALTHCHECK; installed as /opt/cropshield/bin/cropshield-healthcheck):
# asks the server's grpc.health.v1 service through `cropshield health`; exit 0 only when SERVING
# (NOT_SERVING while loading the model and while draining after SIGTERM).
# environment: CROPSHIELD_HEALTH_TARGET (default 127.0.0.1:50051, the server's default --address port),
#              CROPSHIELD_HEALTH_DEADLINE_MS (default 3000)
set -eu
bin=$(dirname "$0")
cli=$bin/cropshield
[ -x "$cli" ] || cli=cropshield
exec "$cli" health --target="${CROPSHIELD_HEALTH_TARGET:-127.0.0.1:50051}" \
  --deadline_ms="${CROPSHIELD_HEALTH_DEADLINE_MS:-3000}"
