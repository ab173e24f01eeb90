"""stratum-proxy: a Stratum V1/V2 mining proxy that records every share into ClickHouse."""

__version__ = "0.1.0"
