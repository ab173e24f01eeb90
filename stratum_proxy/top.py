"""``stratum-proxy top``: the dashboard in a terminal, for operators on SSH.

It reads a running daemon's API (``/api/farm`` and ``/api/workers``, the
dashboard's own answers, so the numbers are the page's), never the store.
On a terminal it redraws every ``--interval`` seconds in the alternate screen
and takes single keys; with ``--once``, or when the output is not a terminal,
it prints one plain frame and exits (for scripts and cron mails).

Rendering is a pure function of the two answers (``render``), so what the
operator sees is tested without a terminal.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from stratum_proxy.errors import StratumProxyError
from stratum_proxy.store.reports import si

SORTS = ("hashrate", "worker", "accepted", "rejected", "acceptance", "last")
_SORT_FIELD = {
    "hashrate": "hashrate",
    "worker": "worker",
    "accepted": "accepted",
    "rejected": "rejected",
    "acceptance": "acceptance_pct",
    "last": "last_ts",
}
# How long one API call may take: a daemon that hangs must not freeze the screen.
_REQUEST_TIMEOUT_S = 10.0


class ApiUnavailable(StratumProxyError):
    """The daemon's API did not answer (not running, wrong address, overloaded)."""


@dataclass
class View:
    """What the operator chose: sort column and order, filter, down-only."""

    sort: str = "hashrate"
    reverse: bool = False  # False: the natural order (highest first, names A to Z)
    filter: str = ""
    down_only: bool = False
    keys_help: bool = True

    def next_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]


@dataclass
class Snapshot:
    farm: dict[str, Any] | None = None
    workers: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    taken_at: float = 0.0


# --- reading the API ---------------------------------------------------------------------


def fetch(api_address: str, path: str, token: str | None) -> Any:
    """GET a JSON answer from the daemon's API; our errors for what can go wrong."""
    from stratum_proxy.commands import _api_url, token_refused

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(_api_url(api_address, path), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=_REQUEST_TIMEOUT_S) as response:
            return orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace").strip() or f"HTTP {exc.code}"
        if exc.code == 401:
            raise token_refused(api_address, token) from None
        raise ApiUnavailable(f"the daemon's API at {api_address}: {detail}") from None
    except (urllib.error.URLError, OSError, orjson.JSONDecodeError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ApiUnavailable(
            f"the daemon's API at {api_address} did not answer ({reason}); is the daemon "
            "running with [api] listen set to this address?"
        ) from None


def take_snapshot(api_address: str, token: str | None, hours: float) -> Snapshot:
    query = urllib.parse.urlencode({"hours": f"{hours:g}"})
    farm = fetch(api_address, f"/api/farm?{query}", token)
    workers = fetch(api_address, f"/api/workers?{query}", token)
    return Snapshot(farm=farm, workers=list(workers["workers"]), taken_at=time.time())


# --- rendering ---------------------------------------------------------------------------


def _ago(seconds: float) -> str:
    if seconds < 0:
        return "now"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def _uptime(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    return f"{days}d {hours}h {minutes}m" if days else f"{hours}h {minutes}m"


def header_lines(farm: dict[str, Any], now: float) -> list[str]:
    """The daemon's state and the farm's totals: the lines above the worker table."""
    live, pipeline, totals = farm.get("live"), farm.get("pipeline"), farm["totals"]
    pools = farm.get("pools", [])
    pool_text = ", ".join(f"{p['upstream']} {p['status']}" for p in pools) or "no pools"
    first = []
    if live is not None:
        first.append(f"up {_uptime(live['uptime_s'])}, {live['connections']} connections")
    first.append(f"pools: {pool_text}")
    if pipeline is not None:
        last = pipeline.get("last_write_ts")
        written = f"last write {_ago(now - last)} ago" if last else "nothing written yet"
        first.append(
            f"store {'up' if pipeline['store_up'] else 'DOWN'}, {written}, "
            f"spool {pipeline['spool_rows']} rows, shed {pipeline['rows_shed']}"
        )
    second = (
        f"{farm['hours']:g} h: hashrate {si(totals['hashrate'], 'H/s')}, "
        f"shares {totals['total_shares']} (accepted {totals['accepted_shares']}, "
        f"rejected {totals['rejected_shares']}, no response {totals['no_response_shares']}), "
        f"acceptance {totals['acceptance_pct']:.2f} %, best {si(totals['best_share'])}, "
        f"workers {farm['workers_up']} up / {farm['workers_down']} down"
    )
    return ["  ".join(first), second]


_COLUMNS = (
    # title, width, right-aligned, the --sort name that sorts by it
    ("worker", 0, False, "worker"),
    ("status", 6, False, ""),
    ("hashrate", 11, True, "hashrate"),
    ("accepted", 9, True, "accepted"),
    ("rejected", 9, True, "rejected"),
    ("no resp", 8, True, ""),
    ("acc %", 7, True, "acceptance"),
    ("avg diff", 9, True, ""),
    ("best", 8, True, ""),
    ("last", 5, True, "last"),
)


def select_workers(workers: list[dict[str, Any]], view: View) -> list[dict[str, Any]]:
    """Filtered and sorted as the view says (sorted once; the caller slices)."""
    rows = workers
    if view.filter:
        needle = view.filter.lower()
        rows = [w for w in rows if needle in w["worker"].lower()]
    if view.down_only:
        rows = [w for w in rows if w.get("status") == "down"]
    key = _SORT_FIELD[view.sort]
    # Names read A to Z; every number reads highest first.
    descending = (key != "worker") != view.reverse
    by_name = sorted(rows, key=lambda w: w["worker"])  # ties stay A to Z (a stable sort)
    return (
        by_name
        if key == "worker" and not descending
        else sorted(by_name, key=lambda w: w[key], reverse=descending)
    )


def worker_cells(w: dict[str, Any], now: float) -> list[str]:
    return [
        w["worker"],
        w.get("status", ""),
        si(w["hashrate"], "H/s"),
        str(w["accepted"]),
        str(w["rejected"]),
        str(w["no_response"]),
        f"{w['acceptance_pct']:.2f}",
        si(w["avg_pool_difficulty"]),
        si(w["best_share"]),
        _ago(now - w["last_ts"]),
    ]


def render(
    snapshot: Snapshot, view: View, *, width: int, height: int | None, now: float
) -> list[str]:
    """The frame: header, totals, the worker table cut to ``height`` lines (None: all)."""
    lines: list[str] = []
    stamp = datetime.fromtimestamp(now, UTC).strftime("%H:%M:%S UTC")
    top_line = f"stratum-proxy top  {stamp}"
    if snapshot.error:
        top_line += f"  ! {snapshot.error}"
    lines.append(top_line)
    if snapshot.farm is None:
        return [line[:width] for line in lines]
    lines += header_lines(snapshot.farm, now)
    rows = select_workers(snapshot.workers, view)
    fixed = sum(w + 1 for _, w, _, _ in _COLUMNS[1:])
    # The name matters most: on a narrow terminal the last columns go first.
    name_width = max(16, min(40, width - fixed - 1))
    widths = [name_width] + [w for _, w, _, _ in _COLUMNS[1:]]

    def line(cells: list[str]) -> str:
        out = []
        for cell, (_, _, right, _), w in zip(cells, _COLUMNS, widths, strict=True):
            cell = cell if len(cell) <= w else cell[: w - 1] + "~"
            out.append(cell.rjust(w) if right else cell.ljust(w))
        return " ".join(out).rstrip()

    arrow = "^" if view.reverse else "v"
    titles = [title + (arrow if sort == view.sort else "") for title, _, _, sort in _COLUMNS]
    shown = f"{len(rows)} of {len(snapshot.workers)} workers"
    if view.filter or view.down_only:
        shown += f" (filter {view.filter!r}{', down only' if view.down_only else ''})"
    lines.append(shown)
    lines.append(line(titles))
    footer = "q quit  s sort  r reverse  d down only  / filter" if height is not None else ""
    room = None if height is None else max(0, height - len(lines) - (1 if footer else 0))
    visible = rows if room is None else rows[:room]
    lines += [line(worker_cells(w, now)) for w in visible]
    if not rows:
        lines.append("  no shares in the window" if not snapshot.workers else "  no worker matches")
    if footer:
        lines.append(footer)
    return [row[:width] for row in lines]


# --- the terminal ------------------------------------------------------------------------

_ALT_SCREEN_ON, _ALT_SCREEN_OFF = "\x1b[?1049h", "\x1b[?1049l"
_CURSOR_OFF, _CURSOR_ON = "\x1b[?25l", "\x1b[?25h"
# Each frame overwrites the last in place: clearing the whole screen first
# makes it flicker over a slow SSH link.
_HOME, _CLEAR_LINE = "\x1b[H", "\x1b[2K"


def _screen(frame: list[str], rows: int) -> str:
    """Every row of the screen, each cleared before it is written.

    Not cleared after: behind a line as wide as the terminal the cursor sits
    on its last character, which would go too. Rows below the frame are
    written empty, so a longer previous frame leaves nothing behind.
    """
    # A line past the last row would scroll the screen (only a tiny terminal has one).
    padded = frame[:rows] + [""] * (rows - len(frame))
    return _HOME + "\n".join(_CLEAR_LINE + line for line in padded)


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """SIGTERM (``kill``) unwinds like Ctrl-C, so the terminal is restored then too."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; its own default stays
        return

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _terminal(out: TextIO) -> Iterator[int | None]:
    """Alternate screen, no cursor, keys without Enter; always restored, whatever happens."""
    import termios
    import tty

    fd: int | None = sys.stdin.fileno() if sys.stdin.isatty() else None
    saved = termios.tcgetattr(fd) if fd is not None else None
    with _sigterm_unwinds():
        out.write(_ALT_SCREEN_ON + _CURSOR_OFF)
        out.flush()
        try:
            if fd is not None:
                tty.setcbreak(fd)
            yield fd
        finally:
            if fd is not None and saved is not None:
                termios.tcsetattr(fd, termios.TCSADRAIN, saved)
            out.write(_CURSOR_ON + _ALT_SCREEN_OFF)
            out.flush()


def _read_key(fd: int | None, timeout: float) -> str:
    if fd is None:
        time.sleep(timeout)
        return ""
    ready, _, _ = select.select([fd], [], [], max(0.0, timeout))
    return os.read(fd, 1).decode("utf-8", "replace") if ready else ""


def _prompt(fd: int, out: TextIO, label: str) -> str:
    """A one-line prompt at the bottom, read key by key (the terminal is in cbreak)."""
    text = ""
    rows = shutil.get_terminal_size().lines
    while True:
        out.write(f"\x1b[{rows};1H\x1b[2K{label}{text}")
        out.flush()
        key = os.read(fd, 1).decode("utf-8", "replace")
        if key in ("\r", "\n"):
            return text
        if key == "\x1b":
            return ""
        if key in ("\x7f", "\b"):
            text = text[:-1]
        elif key.isprintable():
            text += key


def run_top(
    api_address: str,
    token: str | None,
    *,
    hours: float,
    interval: float,
    view: View,
    once: bool,
    out: TextIO | None = None,
) -> int:
    out = out if out is not None else sys.stdout  # looked up now: tests replace it
    if once or not out.isatty():
        snapshot = take_snapshot(api_address, token, hours)  # errors end the command
        # Plain output is read by people and scripts alike: nothing is cut.
        frame = render(snapshot, view, width=100_000, height=None, now=time.time())
        out.write("\n".join(frame) + "\n")
        return 0
    snapshot = Snapshot()
    with _terminal(out) as fd:
        next_fetch = 0.0
        while True:
            if time.monotonic() >= next_fetch:
                try:
                    snapshot = take_snapshot(api_address, token, hours)
                except StratumProxyError as exc:  # keep the last figures, say why they age
                    snapshot.error = str(exc)
                next_fetch = time.monotonic() + interval
            size = shutil.get_terminal_size()
            frame = render(snapshot, view, width=size.columns, height=size.lines, now=time.time())
            out.write(_screen(frame, size.lines))
            out.flush()
            key = _read_key(fd, max(0.05, next_fetch - time.monotonic()))
            if key in ("q", "Q", "\x03"):
                return 0
            if key == "s":
                view.next_sort()
            elif key == "r":
                view.reverse = not view.reverse
            elif key == "d":
                view.down_only = not view.down_only
            elif key == "/" and fd is not None:
                view.filter = _prompt(fd, out, "filter: ")
