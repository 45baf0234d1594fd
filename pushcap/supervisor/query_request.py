"""What a `POST /query` may ask the daemon for, checked before anything is read.

A request is JSON (query_wire.py): a window, a filter, and a target of the daemon's own Lua file
or a folder. The daemon reads files with its own permissions for a client that may have fewer,
so what a request may name is bounded here, in one place: a target's series (as `pushcap query
--target` finds them, with the client's [[interface]] tables only when they are the daemon's), or
a folder inside one of its File targets' folders (symbolic links leading out are not followed).
Anything else is Refused: the client then reads the archive itself, as its own user.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pushcap.config.model import ConfigError, PushMode, TargetConfig
from pushcap.supervisor import query_wire as wire
from pushcap.supervisor.consumers import interfaces_of, series_prefix


class Refused(Exception):
    """A request the daemon does not serve (the client reads the archive itself)."""


def read_request(handler) -> dict:
    """The request's JSON, checked: a window, a filter, and a target or a folder."""
    try:
        length = int(handler.headers.get("Content-Length", "0"))
    except ValueError:
        raise Refused("no Content-Length") from None
    if not 0 < length <= wire.MAX_REQUEST_BYTES:
        raise Refused(f"a request of {length} bytes (at most {wire.MAX_REQUEST_BYTES})")
    try:
        request = json.loads(handler.rfile.read(length))
    except ValueError:
        raise Refused("the request is not JSON") from None
    if not isinstance(request, dict):
        raise Refused("the request is not a JSON object")
    start, end, expression = (request.get(k) for k in ("start_ns", "end_ns", "filter"))
    if not (isinstance(start, int) and isinstance(end, int) and start < end):
        raise Refused("the window must be integers start_ns < end_ns")
    if expression is not None and (not isinstance(expression, str)
                                   or len(expression) > wire.MAX_FILTER_CHARS):
        raise Refused(f"the filter must be text of at most {wire.MAX_FILTER_CHARS} characters")
    if isinstance(request.get("target"), str) and isinstance(request.get("lua"), str):
        if not isinstance(request.get("interfaces"), list | None):
            raise Refused("interfaces must be a list")
        return request
    if isinstance(request.get("dir"), str) and os.path.isabs(request["dir"]) \
            and "target" not in request:
        return request
    raise Refused("name a target (with its Lua file) or a folder")


class TargetFiles:
    """The files of the engine's File targets that a query may read: those a request names
    (`named`, Refused for anything else) and those worth holding indexes for (`indexed`). The
    engine's targets are read at every call: a reload changes them."""

    def __init__(self, engine, lua_path: Path | None) -> None:
        self._engine = engine
        self._lua = os.path.realpath(lua_path) if lua_path is not None else None

    def named(self, request: dict) -> list[Path]:
        """The files of a checked request (read_request), sorted."""
        if "target" in request:
            return self._target_files(request)
        return self._dir_files(request["dir"])

    def indexed(self) -> set[Path]:
        """The files of the indexed File targets' series (by the daemon's interfaces or any)."""
        files = set()
        for target in self._engine.targets:
            if target.mode is PushMode.FILE and target.indexed and not target.folder:
                files.update(self._series_files(target, None))
        return files

    def _target_files(self, request: dict) -> list[Path]:
        if self._lua is None or os.path.realpath(request["lua"]) != self._lua:
            raise Refused("the daemon runs another Lua file")
        target = next((t for t in self._engine.targets if t.desc == request["target"]), None)
        if target is None or target.mode is not PushMode.FILE or target.folder:
            raise Refused(f"not a File target of the daemon: {request['target']!r}")
        interfaces = request.get("interfaces")
        if interfaces is not None and interfaces != _interface_tables(self._engine.config):
            raise Refused("--config names other interfaces than the daemon's")
        return sorted(set(self._series_files(target, interfaces is not None)))

    def _series_files(self, target: TargetConfig, by_config: bool | None) -> list[Path]:
        """The target's files, as query_command finds them: with the daemon's interfaces
        (`by_config`, and for warming, None: both), else any `<Path>_<interface>_` series."""
        from pushcap.archive.layout import SeriesFiles

        series = []
        if by_config is not False:
            try:
                names = interfaces_of(target, self._engine.config)
            except ConfigError:
                names = ()
            series += [SeriesFiles(series_prefix(target, name, len(names) > 1), target.naming,
                                   target.file_suffix) for name in names]
        if not by_config:
            series.append(SeriesFiles(Path(target.path), target.naming, target.file_suffix,
                                      any_interface=True))
        return [p for s in series for p in s.paths()]

    def _dir_files(self, folder: str) -> list[Path]:
        from pushcap.archive.layout import folder_files

        real = os.path.realpath(folder)
        roots = self._roots()
        if not os.path.isdir(real) or not _inside(real, roots):
            raise Refused(f"{folder} is not inside a File target's folder of the daemon")
        return sorted(p for p in folder_files(Path(real))
                      if _inside(os.path.realpath(p), roots))

    def _roots(self) -> list[str]:
        roots = []
        for target in self._engine.targets:
            if target.mode is PushMode.FILE:
                path = target.path if target.folder else os.path.dirname(target.path)
                roots.append(os.path.realpath(path or "."))
        return roots


def _inside(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _interface_tables(config) -> list[dict]:
    """The daemon's [[interface]] tables as a client's tomllib reads them, to compare."""
    tables = []
    for i in config.interfaces:
        table: dict = {"name": i.name}
        if i.aliases:
            table["alias"] = list(i.aliases)
        tables.append(table)
    return tables
