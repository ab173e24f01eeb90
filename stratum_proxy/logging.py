"""structlog set up once at the edge: JSON lines when stderr is not a terminal.

Per the design: one line per share at debug, a per-worker summary every minute
at info, every reject and block candidate at warning.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def _orjson_dumps(obj: Any, default: Any = None) -> bytes:
    return orjson.dumps(obj, default=default or str)


def configure_logging(level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
    """Configure structlog for the whole process.

    ``fmt`` is "json", "console" or "auto" (console on a terminal, JSON otherwise).
    """
    out = stream if stream is not None else sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    if use_json:
        processors = [*shared, structlog.processors.JSONRenderer(serializer=_orjson_dumps)]
        binary: Any = out.buffer if hasattr(out, "buffer") else out
        factory: Any = structlog.BytesLoggerFactory(file=binary)
    else:
        processors = [*shared, structlog.dev.ConsoleRenderer(colors=out.isatty())]
        factory = structlog.PrintLoggerFactory(file=out)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str = "stratum_proxy", **context: Any) -> Any:
    """A bound logger carrying ``context`` on every line."""
    return structlog.get_logger(name).bind(**context)
