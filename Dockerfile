# stratum-proxy with the embedded ClickHouse engine (chdb).
#   docker build -t stratum-proxy .
#   docker run -p 3333:3333 -v sp-data:/var/lib/stratum-proxy stratum-proxy \
#       run --pool stratum+tcp://pool.example.com:3333
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    STRATUM_PROXY_STORE__URL=chdb:///var/lib/stratum-proxy/db \
    STRATUM_PROXY_STORE__SPOOL_DIR=/var/lib/stratum-proxy/spool \
    STRATUM_PROXY_LOG__FORMAT=json

WORKDIR /src
COPY pyproject.toml README.md ./
COPY stratum_proxy ./stratum_proxy
RUN pip install '.[embedded]' \
 && useradd --system --home-dir /var/lib/stratum-proxy --create-home stratum \
 && rm -rf /src

USER stratum
WORKDIR /var/lib/stratum-proxy
VOLUME ["/var/lib/stratum-proxy"]
# 3333: miners; 8081: the HTTP API (/metrics, /healthz, read-only /api/query).  To publish
# it, bind it with --api-listen 0.0.0.0:8081 and give it a token, e.g. a mounted secret:
#   -e STRATUM_PROXY_API__TOKEN_FILE=/run/secrets/api_token
# (off loopback the proxy refuses to start without one).
EXPOSE 3333 8081
STOPSIGNAL SIGTERM
ENTRYPOINT ["stratum-proxy"]
CMD ["run", "--listen", "0.0.0.0:3333", "--pool", "stratum+tcp://pool.example.com:3333"]
