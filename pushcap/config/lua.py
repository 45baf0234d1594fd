"""Load push_realtime.lua (FMADIO's push target format) in a sandbox and validate every target.

The file is Lua because FMADIO's is, so existing configs work unchanged; but it is code, so it runs
in a throwaway Lua 5.4 runtime with only pure functions (table, string without dump, math,
pairs...), as source text only (a precompiled chunk is refused: bytecode can break out of any
Lua sandbox), under a time budget (defaults.LUA_MAX_SECONDS) and a memory cap
(defaults.LUA_MAX_MEMORY_BYTES), in a child process that is killed when a C library call outlives
the budget (lua_process.py says why; lua_driver.py is the code that runs there).

The returned Config table is converted to plain Python in that child (strings as bytes, tables
as dicts down to the target fields), then its shape is checked here: Config.Target a
list of tables with named fields, no two targets with the same Desc, or the same Mode and Path
(their files would overwrite each other). What each field may hold is pushcap.config.targets'
business, which never sees Lua; FMADIO's top-level fields besides Target (Config.Decap,
Config.FollowStart, Config.TimeoutRing) are fmadio_fields.py's. load_push_config gives the targets
and the notices (what loaded without a meaning); load_targets / load_targets_text the targets.

The sandbox offers os.date, os.time, os.clock and os.getenv (lua_driver.py), so a Path built with
`os.date(...)` works: it is evaluated when the file is loaded (`check`, `run`, `replay`, each
`reload`), once, not per file.

A message about a target starts `<file>:<line>: target <i> "<Desc>"`, the line being the field's
own when it is written in the target's table, else the table's. The file as written alone decides
what loads and what fails; only when a target is refused does a copy whose table constructors
report themselves to the driver run (lua_lines.py says how and why; its lines count only if it
built the same value), so the line is found however the targets were built.

A Path may hold credentials (an rclone connection string, a URL with a password), and a Lua
syntax error quotes the token it stopped at, maybe a key whose `..` was forgotten. So values are
shown through field_check.conceal / shown_value, a syntax error names a token that could be a
secret by its kind only (lua_tokens.py), and as a last guard every message leaving this module
is concealed against the secrets written in the file's string literals.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from pathlib import Path

from pushcap import defaults
from pushcap.config.field_check import TargetPlace, conceal
from pushcap.config.fmadio_fields import TOP_LEVEL_FIELDS, parse_top_level
from pushcap.config.lua_process import evaluate_bounded
from pushcap.config.model import ConfigError, PushConfig, TargetConfig
from pushcap.config.target_unique import SeenTargets, check_unique, separate_shared_paths
from pushcap.config.targets import lua_repr, validate_target

TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
# lua_lines (its scanner's patterns) and lua_tokens serve messages about a refused config only:
# imported when one is written, not in every start-up (issue 15).
if TYPE_CHECKING:
    from typing import Any

    from pushcap.config.lua_lines import Constructor

__all__ = ["load_push_config", "load_targets", "load_targets_text"]

_CHUNK_ID = "@@pushcap-config@@"  # replaced by the file name in Lua's messages (no 60-char cut)
_CHUNKNAME = f"={_CHUNK_ID}".encode()


def load_push_config(path: str | Path, captured: Collection[str] | None = None) -> PushConfig:
    """Read, run and validate push_realtime.lua; messages name the file as given in `path`.
    `captured`: the interface names and aliases of pcapdaemon.toml, which an `Interface` field
    must name (checked here, so its message has the field's line)."""
    source_name = str(path)
    try:
        with open(path, "rb") as f:
            data = f.read(defaults.LUA_MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{source_name}: cannot read: {e.strerror or e}") from None
    return _load(data, source_name, captured)


def load_targets(path: str | Path, captured: Collection[str] | None = None
                 ) -> tuple[TargetConfig, ...]:
    """The targets of load_push_config."""
    return load_push_config(path, captured).targets


def load_push_config_text(text: str, source_name: str) -> PushConfig:
    """Run and validate config text (tests); messages name `source_name`."""
    return _load(text.encode("utf-8", "surrogateescape"), source_name)


def load_targets_text(text: str, source_name: str) -> tuple[TargetConfig, ...]:
    """The targets of load_push_config_text."""
    return load_push_config_text(text, source_name).targets


def _load(data: bytes, source_name: str, captured: Collection[str] | None = None
          ) -> PushConfig:
    if len(data) > defaults.LUA_MAX_FILE_BYTES:
        raise ConfigError(
            f"{source_name}: larger than {defaults.LUA_MAX_FILE_BYTES // 1024} KiB; a push config"
            " is a few KB, is this the right file?"
        )
    if data.startswith(b"\x1b"):
        raise ConfigError(
            f"{source_name}: is precompiled Lua bytecode; pushcap only runs Lua source text"
            " (bytecode can escape the sandbox), give it the .lua source"
        )
    try:
        config = _run_sandboxed(data, source_name)
        try:
            return _validate_config(config, {}, source_name, captured)
        except ConfigError:
            tables = _marked_tables(data, config)  # a target is refused: find where it is written
            if tables:
                _validate_config(config, tables, source_name, captured)  # same error, its line
            raise
    except ConfigError as e:
        raise ConfigError(_conceal_source(str(e), data)) from None


def _conceal_source(message: str, data: bytes) -> str:
    """`message` without any secret written in a string literal of the config source."""
    from pushcap.config.lua_lines import string_literals

    # one text: one pass of the secret patterns, however many literals a file of 1 MiB holds
    literals = b"\n".join(string_literals(data)).decode("utf-8", "replace")
    return conceal(message, literals)


def _run_sandboxed(data: bytes, source_name: str) -> Any:
    """Evaluate the file as written in a fresh runtime: the value it returned, as Python data."""
    limit_s = f"{defaults.LUA_MAX_SECONDS:g} s"
    limit_mib = f"{defaults.LUA_MAX_MEMORY_BYTES / 2**20:g} MiB"
    outcome = evaluate_bounded(data, _CHUNKNAME, defaults.LUA_MAX_SECONDS)
    status, detail = outcome.status, outcome.detail
    if status == "ok":
        return detail
    if status == "failed" or status == "crashed":
        raise ConfigError(f"{source_name}: could not be evaluated: {conceal(str(detail))}")
    if status == "timeout" or status == "killed":
        line = detail if status == "timeout" else _stuck_line(data)
        where = f", stopped at line {line}" if isinstance(line, int) and line > 0 else ""
        why = "infinite loop?" if status == "timeout" else \
            "a library call given a huge count or a backtracking pattern?"
        raise ConfigError(f"{source_name}: ran longer than {limit_s} ({why}){where}")
    if status == "memory":
        raise ConfigError(
            f"{source_name}: used more than {limit_mib} of memory; a push config is a small table"
            " (runaway loop or huge string?)"
        )
    message = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
    from pushcap.config.lua_tokens import conceal_tokens

    message = conceal_tokens(message, syntax=status == "syntax")
    message = message.replace(_CHUNK_ID, source_name)
    if not message.startswith(source_name):
        message = f"{source_name}: {message}"
    if status == "syntax" and "binary chunk" in message:
        message += " (pushcap only runs Lua source text)"
    raise ConfigError(message)


def _stuck_line(data: bytes) -> int | None:
    """The line of the C call a killed run never returned from: a second run, traced (each line
    calling a C function is reported as it does), killed in the same way. Only a killed run pays
    for it; a config that does something else this time (math.random) may get no line."""
    outcome = evaluate_bounded(data, _CHUNKNAME, defaults.LUA_MAX_SECONDS, trace=True)
    if outcome.status == "timeout" and isinstance(outcome.detail, int):
        return outcome.detail
    return outcome.line if outcome.status == "killed" else None


def _marked_tables(data: bytes, config: Any) -> dict[int, Constructor]:
    """Config.Target's index -> its table's constructor, from a run of the marked copy; {} if the
    source does not scan, or that run fails or returns other than `config`, the value as written
    (math.random, pairs order). Scan and run share one LUA_MAX_SECONDS, past it no line."""
    from pushcap.config import lua_lines

    deadline = time.monotonic() + defaults.LUA_MAX_SECONDS
    found = lua_lines.scan_constructors(data, deadline)
    if not found:
        return {}
    marked = lua_lines.instrument(data, found)
    left_s = deadline - time.monotonic()
    if left_s <= 0:
        return {}
    outcome = evaluate_bounded(marked, _CHUNKNAME, left_s, marking=True)
    if outcome.status != "ok" or _fingerprint(outcome.detail) != _fingerprint(config):
        return {}
    marks = outcome.marks or {}
    return {index: found[n] for index, n in marks.items() if 0 <= n < len(found)}


def _fingerprint(value: Any) -> str:
    """A value as run_sandboxed returns it, as text two runs can compare: LuaOpaque by kind, not
    identity."""
    if isinstance(value, dict):
        pairs = sorted(repr((_fingerprint(k), _fingerprint(v))) for k, v in value.items())
        return "{" + ", ".join(pairs) + "}"
    return repr(value)  # bytes, numbers and booleans by value and type, LuaOpaque as <a kind>


# --- structure --------------------------------------------------------------------------------


def _key_name(key: Any) -> str | None:
    if isinstance(key, bytes):
        try:
            return key.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


def _as_list(table: Any, what: str, source_name: str) -> list[Any]:
    """The values of a Lua sequence (keys 1..n), refusing holes and named keys."""
    if not isinstance(table, dict):
        raise ConfigError(
            f"{source_name}: {what} is {lua_repr(table)}, not a table; write {what} = {{}} and add"
            " targets with table.insert"
        )
    items: dict[Any, Any] = table
    if set(items) != set(range(1, len(items) + 1)):
        odd = next(k for k in items if not isinstance(k, int) or not 1 <= k <= len(items))
        raise ConfigError(
            f"{source_name}: {what} must be a list of targets (table.insert(...) or {{ {{...}},"
            f" {{...}} }}), but it has the key {lua_repr(odd)}"
        )
    return [items[i] for i in range(1, len(items) + 1)]


def _validate_config(
    config: Any, tables: dict[int, Constructor], source_name: str,
    captured: Collection[str] | None = None,
) -> PushConfig:
    """The targets of the value the file returned; the first problem raises ConfigError."""
    if not isinstance(config, dict):
        got = "nothing" if config is None else lua_repr(config)
        raise ConfigError(
            f"{source_name}: returned {got} instead of the Config table; end the file with"
            " `return Config`"
        )
    top = {_key_name(k) or lua_repr(k): v for k, v in config.items()}
    unknown = sorted(k for k in top if k != "Target" and k not in TOP_LEVEL_FIELDS)
    if unknown:
        raise ConfigError(f"{source_name}: unknown top-level field {unknown[0]} (known: Target, "
                          f"{', '.join(TOP_LEVEL_FIELDS)})")
    decap, notices = parse_top_level(top, source_name)
    decap_default = defaults.DECAP_DEFAULT if decap is None else decap
    if "Target" not in top:
        raise ConfigError(
            f"{source_name}: Config.Target is missing; add `Config.Target = {{}}` and one"
            " table.insert(Config.Target, {...}) per target (see etc/push_realtime.lua)"
        )
    raw_targets = _as_list(top["Target"], "Config.Target", source_name)
    if not raw_targets:
        raise ConfigError(f"{source_name}: Config.Target is empty; add at least one target")
    targets: list[tuple[TargetConfig, TargetPlace]] = []
    seen = SeenTargets()
    for index, raw in enumerate(raw_targets, start=1):
        table = tables.get(index)
        place = TargetPlace(source_name, index)
        if table is not None:
            place = TargetPlace(source_name, index, line=table.line, field_lines=table.keys)
        target = validate_target(_named_fields(raw, place), place, decap_default)
        place = place.named(target.desc)
        if captured is not None and target.interface is not None \
                and target.interface not in captured:
            raise ConfigError(f'{place.prefix("Interface")}: Interface "{target.interface}" is '
                              f"not captured (pcapdaemon.toml has: {', '.join(sorted(captured))})")
        check_unique(target, place, seen)  # its Desc, before the targets after it
        targets.append((target, place))
    targets = separate_shared_paths(targets)
    for target, place in targets:
        check_unique(target, place, seen, outputs=True)
        notices += target.notices
    return PushConfig(tuple(target for target, _ in targets), tuple(notices))


def _named_fields(raw: Any, place: TargetPlace) -> dict[str, Any]:
    """One target's table as {field name: value}; per-field rules are targets.validate_target's."""
    prefix = place.prefix()
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{prefix}: is {lua_repr(raw)}, not a table; write"
            ' { Desc = "...", Mode = "File", Path = "...", ... }'
        )
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        name = _key_name(key)
        if name is None:
            raise ConfigError(
                f"{prefix}: has the key {lua_repr(key)}; fields are named, e.g."
                ' { Desc = "pcap-all", Mode = "File", ... }'
            )
        fields[name] = value
    return fields
