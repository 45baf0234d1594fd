"""A long command's progress on a terminal: one line on stderr, redrawn in place.

`pushcap replay` of a multi-GB file (and later `pushcap query`) otherwise says nothing until it
ends. The line shows packets, bytes, rates, elapsed time and an estimate of the time left from the
input's size. It costs the packet path nothing measurable: `update` is called once per batch
(thousands of packets), and unless a redraw is due (at most every `PROGRESS_INTERVAL_S`) it is one
clock read and a comparison. Whoever makes a `Progress` decides whether to show one at all (only
when stderr is a terminal, and not with `--quiet`); pipes and logs never get carriage returns.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

from pushcap import defaults

if TYPE_CHECKING:
    from typing import TextIO

ERASE_LINE = "\r\x1b[K"  # to column 0, then clear to the end of the line
MIN_RATE_S = 0.05  # rates and the estimate are shown once this much time has passed


class Progress:
    """Draws `packets  bytes (percent)  rates  elapsed  left` on `stream`, a terminal.

    `total_bytes` is the input's size; `start_bytes` what precedes the packets (a file header),
    so the rate and the estimate count only what was read.
    """

    def __init__(self, stream: TextIO, total_bytes: int, start_bytes: int = 0,
                 interval_s: float = defaults.PROGRESS_INTERVAL_S,
                 clock=time.monotonic) -> None:
        self.stream = stream
        self.total_bytes = total_bytes
        self.start_bytes = start_bytes
        self.interval_s = interval_s
        self.clock = clock
        self.started = clock()
        self._next_draw = self.started  # the first batch draws at once: something shows
        self._shown = False
        self._last = (0, start_bytes)
        self._filtered: list[logging.Handler] = []

    def update(self, packets: int, position: int) -> None:
        """After each batch: `packets` read so far, `position` the input's offset reached."""
        self._last = (packets, position)
        now = self.clock()
        if now < self._next_draw:
            return
        self._next_draw = now + self.interval_s
        self._draw(packets, position, now)

    def clear(self) -> None:
        """Take the line off the terminal (before a log line, or at the end)."""
        if self._shown:
            self.stream.write(ERASE_LINE)
            self.stream.flush()
            self._shown = False

    def finish(self, keep: bool = False) -> None:
        """The end: erase the line (the command prints its summary next), or with `keep` draw
        its final state and leave it (where the summary goes elsewhere, e.g. to a file)."""
        for handler in self._filtered:
            handler.removeFilter(self._clear_filter)
        if keep:
            self._draw(*self._last, self.clock())
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False
        else:
            self.clear()

    def line(self, packets: int, position: int, now: float) -> str:
        """The progress text (no control characters)."""
        elapsed = now - self.started
        done = max(position - self.start_bytes, 0)
        todo = max(self.total_bytes - self.start_bytes, 0)
        parts = [f"{packets:,} packets", f"{_size(done)}"
                 + (f" of {_size(todo)} ({100 * done / todo:.0f}%)" if todo else "")]
        if elapsed >= MIN_RATE_S:  # before that a rate says nothing yet
            parts += [f"{packets / elapsed:,.0f} packets/s", f"{_size(done / elapsed)}/s"]
        parts.append(f"elapsed {_clock(elapsed)}")
        if done and todo > done and elapsed >= MIN_RATE_S:
            parts.append(f"left ~{_clock((todo - done) * elapsed / done)}")
        return "  ".join(parts)

    def _draw(self, packets: int, position: int, now: float) -> None:
        text = self.line(packets, position, now)
        width = _terminal_width(self.stream)
        if width:
            text = text[:width - 1]  # a wrapped line could not be redrawn in place
        self.stream.write(ERASE_LINE + text)
        self.stream.flush()
        self._shown = True

    def clear_before_logs(self, logger: logging.Logger) -> None:
        """Erase the line before any of `logger`'s handlers on this stream writes a line (a
        warning during the run would otherwise be glued to the progress text)."""
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is self.stream:
                handler.addFilter(self._clear_filter)
                self._filtered.append(handler)

    def _clear_filter(self, record: logging.LogRecord) -> bool:
        self.clear()
        return True


def _terminal_width(stream: TextIO) -> int | None:
    try:
        return os.get_terminal_size(stream.fileno()).columns or None
    except (OSError, ValueError, AttributeError):
        return None


def _size(nbytes: float) -> str:
    """1.2 MB, in powers of 1000 (as the kernel, rclone and the status page count)."""
    units = ("B", "kB", "MB", "GB", "TB")
    step = 0
    while nbytes >= 1000 and step < len(units) - 1:
        nbytes /= 1000
        step += 1
    return f"{nbytes:.0f} B" if step == 0 else f"{nbytes:.1f} {units[step]}"


def _clock(seconds: float) -> str:
    """0:07, 12:34, 1:02:03."""
    total = int(seconds + 0.5)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
