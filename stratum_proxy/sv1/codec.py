"""Stratum V1 framing: newline-delimited JSON lines, sans-I/O.

Stratum V1 has no length prefix: a message ends at ``\\n`` (some miners send
``\\r\\n``).  ``LineBuffer`` turns arbitrary TCP chunks into complete lines and
keeps the unterminated tail for the next call.  A peer that never sends a
newline would make the tail grow forever, so the tail is bounded: going over
the bound loses framing and closes the connection.
"""

from __future__ import annotations

from stratum_proxy.errors import RemoteProtocolError

# 64 KiB holds the largest real notify we know (a merkle branch of ~13 nodes and
# a coinbase with dozens of outputs is ~4 KiB) with an order of magnitude to spare.
DEFAULT_MAX_LINE_BYTES = 65536
_NEWLINE = b"\n"
# Characters that make a line blank; JSON whitespace (RFC 8259 section 2).
_BLANK = b" \t\r\n"


class LineTooLongError(RemoteProtocolError):
    """A line went over the limit; always fatal.

    ``lines_before`` holds the complete lines of the same ``feed`` call that came
    before the offending one: they were already forwarded, so the caller still
    analyses them (a submit among them must still become a record).
    """

    def __init__(self, message: str, *, lines_before: list[bytes]) -> None:
        super().__init__(message, fatal=True)
        self.lines_before = lines_before


class LineBuffer:
    """Split a byte stream into lines; bounded, with the partial line kept."""

    __slots__ = ("_max_line_bytes", "_tail")

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        if max_line_bytes < 1:
            raise ValueError(f"max_line_bytes must be positive, got {max_line_bytes}")
        self._max_line_bytes = max_line_bytes
        # A bytearray so that a line trickling in one byte per read costs
        # amortised O(1) per byte rather than a full copy each time.
        self._tail = bytearray()

    @property
    def pending_bytes(self) -> int:
        """Bytes of the unterminated line kept for the next ``feed``."""
        return len(self._tail)

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the complete lines, without their terminators.

        Blank lines are dropped.  Raises ``LineTooLongError`` (a fatal
        ``RemoteProtocolError``) when a line, or the unterminated tail, is longer
        than ``max_line_bytes``; the buffer is unusable afterwards.
        """
        if data and not self._tail and data.find(_NEWLINE) == len(data) - 1:
            # The common case (one whole line per read): no split, no copy.
            line = data[:-2] if data[-2:-1] == b"\r" else data[:-1]
            if len(line) > self._max_line_bytes:
                raise LineTooLongError(
                    f"line of {len(line)} bytes exceeds the {self._max_line_bytes}-byte "
                    "limit; framing is lost, closing the connection",
                    lines_before=[],
                )
            if line and (line[0] == 0x7B or line.strip(_BLANK)):
                return [line]
            return []
        if _NEWLINE not in data:
            # A split notify: just accumulate, no list work.
            self._tail += data
            self._check_tail()
            return []
        tail = self._tail
        if tail:
            data = bytes(tail) + data
            tail.clear()
        parts = data.split(_NEWLINE)
        last = parts.pop()
        if last:
            tail += last
        limit = self._max_line_bytes
        lines: list[bytes] = []
        for part in parts:
            if part.endswith(b"\r"):
                part = part[:-1]
            if len(part) > limit:
                raise LineTooLongError(
                    f"line of {len(part)} bytes exceeds the {limit}-byte limit; "
                    "framing is lost, closing the connection",
                    lines_before=lines,
                )
            # A JSON line starts with '{': skip the strip (and its copy) then.
            if part and (part[0] == 0x7B or part.strip(_BLANK)):
                lines.append(part)
        self._check_tail(lines)
        return lines

    def _check_tail(self, lines_before: list[bytes] | None = None) -> None:
        # The tail may legitimately end with the '\r' of a '\r\n' split across
        # chunks, so it is allowed one byte beyond the line limit.
        if len(self._tail) > self._max_line_bytes + 1:
            raise LineTooLongError(
                f"unterminated line of {len(self._tail)} bytes exceeds the "
                f"{self._max_line_bytes}-byte limit; closing the connection",
                lines_before=lines_before or [],
            )
