"""The consumer contract's file, delivery and retirement calls, for a consumer with no files.

The contract (capture/consumer.py) is shaped by push series: files to repair at launch, to end,
finish and deliver in order across a reload, a retirement that lasts until a file's natural end.
A flow exporter writes no file and hands over at once (`take_over` carries its open interval),
so its answers to all of those are fixed; they live here, apart from the counting and sending.
"""

from __future__ import annotations


class FilelessConsumer:
    """Mixin: what a consumer that writes no file answers to the file and handover calls."""

    def start(self, at_launch: bool = True) -> None:
        """Nothing to repair or start: the exporter's socket is open from construction."""

    def output(self) -> None:
        return None  # no files: nothing for a successor to wait for

    def retire(self) -> bool:
        return False  # a changed exporter hands over at once; take_over() carries the interval

    def unretire(self) -> None:
        """Never retiring: nothing to cancel."""

    @property
    def retired_at(self) -> int | None:
        return None

    def continue_after(self, predecessor) -> None:
        """Nothing waits for a boundary: take_over() did it all at the reload."""

    def end_file(self) -> None:
        """No file: an interval is sent at its end (tick) or by close()."""

    def finish(self) -> None:
        """No file to finish."""

    def hold_delivery(self) -> None:
        """Records go straight to the collector: nothing to hold."""

    def open_delivery(self) -> None:
        """See hold_delivery()."""
