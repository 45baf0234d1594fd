"""The fields FMADIO's firmware and tooling write that are not about files: each accepted, with
its meaning where pushcap has one, else with one notice (`pushcap check` prints it, `pushcap run`
logs it once at start), never refused. A push_realtime.lua that FMADIO runs must load here.

What each is on FMADIO (its push documentation, stream_cat's and pcap_split's options) and here:
- `Decap` (and `Config.Decap`, the default of every target): stream_cat's `--decap`, the filter
  sees the packet with its encapsulation taken off; documented as on by default. Here the same
  (capture/decap.py), on by default (defaults.DECAP_DEFAULT); pcap targets only.
- `CPU`: the CPU stream_cat runs on. Here the CPUs the target's lanes (its threads reading the
  ring, one per interface) are pinned to; a CPU this host does not offer is a notice, and the
  lane then runs where the system puts it.
- `ScriptNew`: pcap_split's `--script-new`, a command run (by a shell, waited for) before every
  new file. Here run without a shell (split like a shell would, no expansion), at most one at a
  time per target, on a thread of its own, killed after defaults.SCRIPT_NEW_TIMEOUT_S: capture
  and writing never wait for it.
- `Chunked`: stream_cat's `--chunked`, packets handed over in chunks for throughput: how pushcap
  always works (a batch at a time), so it is accepted with its meaning when true or false, as
  FMADIO writes it (another value is refused: a typo, not a setting).
- `FollowStart` (and `Config.FollowStart`): stream_cat's `--follow-start`, push from the start
  of the capture on disk rather than from now. pushcap's capture starts with the daemon: a
  target reads the ring from its start at launch and from the reload that added it, and there
  is no earlier capture to push; `true` is a notice, `false` is what pushcap does.
- `StreamCat` (extra stream_cat options, e.g. `--ring-timeout-exit`), `SplitCmd` (extra
  pcap_split options, e.g. `-Z user` to chown files), `FilterFrame`, `RingName`, `Compress`,
  `Config.TimeoutRing` (stream_cat's LXC ring timeout): no meaning in pushcap, a notice when
  set (an empty string, as FMADIO's generator writes, says nothing and is not one).
"""

from __future__ import annotations

import os

from pushcap.config.field_check import FieldError, LuaOpaque, TargetPlace, check_field, lua_repr

TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["FMADIO_FIELDS", "TOP_LEVEL_FIELDS", "FmadioFields", "parse_fmadio_fields",
           "parse_top_level"]

FMADIO_FIELDS = ("Decap", "CPU", "ScriptNew", "Chunked", "FollowStart", "StreamCat", "SplitCmd",
                 "FilterFrame", "RingName", "Compress")
TOP_LEVEL_FIELDS = ("Decap", "FollowStart", "TimeoutRing")

_FOLLOW_START = ("pushcap pushes what it captures from its own start: a target reads the ring "
                 "from the start at launch, from the reload that added it, and there is no "
                 "earlier capture on disk to push")
_WITHOUT_MEANING = {
    "StreamCat": "extra stream_cat options have no meaning in pushcap (it reads its own ring)",
    "SplitCmd": "extra pcap_split options have no meaning in pushcap (its files are written as "
                "the other fields say)",
    "FilterFrame": "FMADIO's frame filter has no meaning in pushcap; FilterBPF applies",
    "RingName": "FMADIO's capture ring name has no meaning in pushcap (Interface chooses what a "
                "target reads)",
    "Compress": "use PipeCmd for compression in pushcap",
}


class FmadioFields:
    """One target's FMADIO fields, read: what pushcap does with them, and the notices. (A plain
    class: a dataclass costs every start-up the compiling of its methods.)"""

    __slots__ = ("cpu", "decap", "notices", "script_new")

    def __init__(self, decap: bool, cpu: tuple[int, ...] | None,
                 script_new: tuple[str, ...] | None, notices: tuple[str, ...]) -> None:
        self.decap, self.cpu, self.script_new, self.notices = decap, cpu, script_new, notices


def parse_top_level(config: dict[str, Any], source_name: str
                    ) -> tuple[bool | None, tuple[str, ...]]:
    """(Config.Decap or None, notices) of the top-level fields besides Target."""
    decap = None
    notices = []
    for name in TOP_LEVEL_FIELDS:
        if name not in config:
            continue
        value = config[name]
        try:
            if name == "Decap":
                decap = _boolean(value)
            elif name == "FollowStart":
                if _boolean(value):
                    notices.append(f"{source_name}: Config.FollowStart true: {_FOLLOW_START}")
            elif _given(value):  # TimeoutRing
                notices.append(f"{source_name}: Config.TimeoutRing {lua_repr(value)}: stream_cat's"
                               " LXC ring timeout has no meaning in pushcap")
        except FieldError as exc:
            from pushcap.config.model import ConfigError

            raise ConfigError(f"{source_name}: Config.{name} {lua_repr(value)}: {exc}") from None
    return decap, tuple(notices)


def parse_fmadio_fields(fields: dict[str, Any], place: TargetPlace, decap_default: bool,
                        pcap: bool) -> FmadioFields:
    """A target's FMADIO fields; `pcap`: a File or rclone target (Decap and ScriptNew apply
    to pcap files only, a flows target gets a notice for them)."""
    notices: list[str] = []

    def notice(name: str, text: str) -> None:
        notices.append(f"{place.prefix(name)}: {name} {lua_repr(fields[name])}: {text}")

    decap = check_field(place, "Decap", fields.get("Decap"), _optional_boolean)
    if not pcap and decap:
        notice("Decap", "a flows target counts packets as captured; Decap applies to File and "
                        "rclone targets")
    decap = pcap and (decap_default if decap is None else decap)
    cpu = check_field(place, "CPU", fields.get("CPU"), _cpus)
    if cpu is not None:
        missing = sorted(set(cpu) - _host_cpus())
        if missing:
            notice("CPU", f"this host has no CPU {', '.join(map(str, missing))} (it offers "
                          f"{_ranges(_host_cpus())}): the target's lanes run unpinned")
            cpu = None
    script = check_field(place, "ScriptNew", fields.get("ScriptNew"), _script)
    if script is not None:
        if not pcap:
            notice("ScriptNew", "a flows target writes no files: ScriptNew never runs")
            script = None
        elif _which(script[0]) is None:
            notice("ScriptNew", f"{script[0]} is not an executable here: each run fails and is "
                                "logged (event=script_new_failed)")
    if fields.get("FollowStart") is not None and check_field(
            place, "FollowStart", fields["FollowStart"], _boolean):
        notice("FollowStart", _FOLLOW_START)
    check_field(place, "Chunked", fields.get("Chunked"), _optional_boolean)
    for name, text in _WITHOUT_MEANING.items():
        if _given(fields.get(name)):
            notice(name, text)
    return FmadioFields(bool(decap), cpu, script, tuple(notices))


def _given(value: Any) -> bool:
    """Set to something: not nil, false or a blank string (FMADIO's generator writes "")."""
    if value is None or value is False:
        return False
    return not (isinstance(value, bytes) and not value.strip())


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise FieldError("must be true or false")
    return value


def _optional_boolean(value: Any) -> bool | None:
    return None if value is None else _boolean(value)


def _cpus(value: Any) -> tuple[int, ...] | None:
    """`CPU = 30`, or pcap_split's list form `"30,31"`."""
    if value is None:
        return None
    if isinstance(value, bool) or isinstance(value, LuaOpaque | dict):
        raise FieldError("must be a CPU number, e.g. CPU = 3, or a list \"3,4\"")
    if isinstance(value, int | float):
        words = [repr(int(value))] if float(value).is_integer() else [repr(value)]
    else:
        words = [w.strip() for w in value.decode("utf-8", "replace").split(",")]
    if not words or not all(w.isascii() and w.isdigit() for w in words):
        raise FieldError("must be a CPU number, e.g. CPU = 3, or a list \"3,4\"")
    return tuple(dict.fromkeys(int(w) for w in words))


def _script(value: Any) -> tuple[str, ...] | None:
    """The argv of ScriptNew, split as a shell splits words; None for an empty command."""
    if value is None:
        return None
    if not isinstance(value, bytes):
        raise FieldError('must be a command line, e.g. ScriptNew = "/usr/local/bin/on-new-file"')
    text = value.decode("utf-8", "replace")
    if any(ord(c) < 0x20 and c not in "\t" for c in text):
        raise FieldError("contains a control character (newline...); remove it")
    import shlex  # a ScriptNew only: not in every start-up (replay is timed against tcpdump)

    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise FieldError(f"cannot be split into words ({exc})") from None
    return tuple(words) or None


def _which(program: str) -> str | None:
    import shutil  # a ScriptNew only (see _script)

    return shutil.which(program)


def _host_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def _ranges(cpus: set[int]) -> str:
    """`0-3,6` for {0, 1, 2, 3, 6}."""
    parts, run = [], []
    for cpu in sorted(cpus):
        if run and cpu != run[-1] + 1:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
            run = []
        run.append(cpu)
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(parts)
