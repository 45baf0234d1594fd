"""A `[syslog]` whose socket is not there (pcapdaemon's example on a host without /dev/log, a
container): one line on stderr saying so, not logging's traceback after every line."""

from __future__ import annotations

import logging

from pushcap.supervisor.obs import PrioritySysLogHandler


def test_an_unreachable_syslog_is_one_line_not_a_traceback_per_line(tmp_path, capsys):
    handler = PrioritySysLogHandler(str(tmp_path / "no-such-socket"), 85, "pcapdaemon")
    logger = logging.getLogger("pushcap.test.syslog_unreachable")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for i in range(20):
            logger.warning("event=test n=%d", i)
    finally:
        logger.removeHandler(handler)
        handler.close()
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if "event=syslog_unavailable" in line]
    assert len(said) == 1, err
    assert "no-such-socket" in said[0] and "lines_not_sent=1" in said[0], said
    assert "Traceback" not in err and "Logging error" not in err, err
