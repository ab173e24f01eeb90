#!/bin/sh
# The API's two bearer tokens: the operator's (everything) and Prometheus's
# (/metrics only).  Compose mounts them into the containers as they are on
# the host, and the containers run as their own users, so the files must be
# readable by others: the directory is closed instead (mode 700).  The proxy
# logs a warning about a token file others can read; here that is expected.
set -eu
cd "$(dirname "$0")"
mkdir -p secrets
chmod 700 secrets
for name in api_token metrics_token; do
    if [ ! -s "secrets/$name" ]; then
        head -c 32 /dev/urandom | base64 > "secrets/$name"
        echo "made secrets/$name"
    fi
    chmod 644 "secrets/$name"
done
