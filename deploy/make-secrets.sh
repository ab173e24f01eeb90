#!/bin/sh
# The API's two bearer tokens: the operator's (everything) and Prometheus's
# (/metrics only).  Readable by their owner only; the proxy warns otherwise.
set -eu
cd "$(dirname "$0")/secrets"
for name in api_token metrics_token; do
    [ -s "$name" ] || { head -c 32 /dev/urandom | base64 > "$name"; chmod 600 "$name"; echo "made secrets/$name"; }
done
