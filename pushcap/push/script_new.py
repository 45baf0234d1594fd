"""FMADIO's `ScriptNew`: a command run each time a target starts a new file.

On FMADIO it is pcap_split's `--script-new`: `system(cmd)` before every new file, through a
shell, waited for, so a slow script holds up the push. Here it is run safely and never in the way
of capture or writing: its words (split as a shell splits them, at load, with no expansion and
no shell) are executed directly, in a session of its own (a Ctrl-C meant for pushcap does not
reach it), stdin from /dev/null, on a thread of its own. At most one run per target is under
way: a new file while one runs is skipped and counted, as is a run killed (with its process
group) after defaults.SCRIPT_NEW_TIMEOUT_S. Each run is logged (`event=script_new_done` with its
exit status and time, `event=script_new_failed`, `event=script_new_skipped`); its output goes
to /dev/null, as FMADIO's went to the push log nobody reads: write to a file from the script.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from pushcap import defaults

log = logging.getLogger("pushcap.push")


class ScriptNew:
    """Runs `argv` when `file_started()` is called, unless a run is still going."""

    def __init__(self, argv: tuple[str, ...], label: str,
                 timeout_s: float = defaults.SCRIPT_NEW_TIMEOUT_S) -> None:
        self.argv = argv
        self.label = label
        self.timeout_s = timeout_s
        self.runs = 0
        self.failures = 0
        self.skipped = 0
        self._thread: threading.Thread | None = None
        self._last_skip_log_s = -1e9

    def file_started(self) -> None:
        """On the packet path: start a run and return at once."""
        if self._thread is not None and self._thread.is_alive():
            self.skipped += 1
            now = time.monotonic()
            if now - self._last_skip_log_s >= defaults.ERROR_LOG_INTERVAL_S:
                self._last_skip_log_s = now
                log.warning("event=script_new_skipped %s skipped_total=%d (the previous run "
                            "still goes)", self.label, self.skipped)
            return
        self.runs += 1
        self._thread = threading.Thread(target=self._run, daemon=True, name="script-new")
        self._thread.start()

    def close(self, timeout_s: float | None = None) -> None:
        """Wait for a run under way (at most its own timeout, or `timeout_s`)."""
        if self._thread is not None:
            self._thread.join(self.timeout_s + 1.0 if timeout_s is None else timeout_s)

    def _run(self) -> None:
        import signal  # here, not at import: a replay without ScriptNew never needs them
        import subprocess

        started = time.monotonic()
        try:
            proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True,
                                    close_fds=True)
        except OSError as exc:
            self.failures += 1
            log.warning("event=script_new_failed %s command=%r error=%r", self.label,
                        self.argv[0], str(exc))
            return
        try:
            status = proc.wait(self.timeout_s)
        except subprocess.TimeoutExpired:
            self.failures += 1
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                proc.kill()
            proc.wait()
            log.warning("event=script_new_failed %s command=%r error='killed after %g s'",
                        self.label, self.argv[0], self.timeout_s)
            return
        if status != 0:
            self.failures += 1
        log.info("event=script_new_done %s command=%r status=%d seconds=%.3f", self.label,
                 self.argv[0], status, time.monotonic() - started)
