"""`pushcap status`'s table: an error that stays after the remote recovered shows its age."""

from __future__ import annotations

from pushcap.supervisor.status_command import render_table


def snapshot(**target) -> dict:
    entry = {"desc": "rc", "mode": "rclone", "interface": "lo", "packets": 1200, "files": 13,
             "bytes": 81600, "files_pending": 0, **target}
    return {"node": "n", "reloads": 0, "interfaces": {}, "targets": [entry]}


def target_row(table: str) -> str:
    return next(line.strip() for line in table.splitlines() if line.strip().startswith("rc "))


def test_an_old_error_says_how_old_it_is():
    table = render_table(snapshot(last_error="rclone lsjson exit 1: connection refused",
                                  last_error_age_s=224.8))
    assert "(225 s ago) rclone lsjson exit 1: connection refused" in target_row(table)


def test_an_error_without_an_age_and_no_error():
    assert target_row(render_table(snapshot(last_error="disk full"))).split()[7:9] == \
        ["disk", "full"]
    assert target_row(render_table(snapshot())).split()[7] == "-"


def test_a_flat_service_section_is_a_table_not_a_json_blob():
    status = {**snapshot(), "trigger": {"captures": 18, "rejected": 33, "redis": "ok"}}
    lines = [line.strip() for line in render_table(status).splitlines()]
    part = lines[lines.index("trigger") + 1:]
    assert [line.split() for line in part] == [["captures", "18"], ["redis", "ok"],
                                               ["rejected", "33"]]
