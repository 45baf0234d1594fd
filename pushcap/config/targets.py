"""Validate one push target's fields, as pushcap.config.lua hands them over from the Lua table.

lua.py runs the file and checks the table's shape; each target arrives here as plain data (Lua
strings as bytes, numbers, booleans, tables as dicts, other values as LuaOpaque), so the rules for
FMADIO's fields can be read and tested without the sandbox.

Decisions on FMADIO's fields:
- Mode is matched case-insensitively (`file`, `RCLONE` are accepted) and normalized to PushMode.
- Split and FileName default to defaults.DEFAULT_SPLIT / DEFAULT_FILENAME when absent.
- A time split shorter than the FileName's resolution is refused: files would overwrite each other.
- PipeCmd names a compressor that pushcap runs in-process on each finished file; only the known
  command lines are accepted and none is ever executed, so the config cannot run a program.
- FileSuffix defaults to the compressor's (`.pcap`, `.pcap.gz`...) and must agree with it, so a
  file's name never lies about its content.
- FMADIO's other fields (Decap, CPU, ScriptNew, Chunked, FollowStart, StreamCat, SplitCmd,
  FilterFrame, RingName, Compress) are read by fmadio_fields.py: a meaning where pushcap has one,
  else a notice, never a refusal. Any other key is refused as unknown, so a typo never silently
  drops a setting.
- FMADIO's forms load as FMADIO reads them: a Desc of any printable text (made safe where it
  becomes a file name or a log field, desc_names.py), `FilterBPF = ""` for every packet, a
  PipeCmd with spaces around it, a FileSuffix without its dot, a Path ending in `/` (a folder:
  files are `<name><suffix>` inside it), `--split-size` for `--split-byte` (with a notice:
  pcap_split itself knows only the latter), and a FileSuffix naming a compression without a
  PipeCmd (compressed with that codec, with a notice; FMADIO's own example means it so).
- `Interface` is pushcap's own field: one captured interface name or alias (None = all).
- `Keep` (retention) and `Index` (a Parquet index per file) are pushcap's own, for File targets
  only (archive_fields.py).
- Mode "flows" is pushcap's own: flow statistics as JSON to Path = "udp://HOST:PORT" every
  `Interval` seconds, one record per datagram unless `Pack = true`, with Datadog services when
  `DatadogRanges` names an ip-ranges.json (read at load); the file fields (Split, FileName,
  PipeCmd, FileSuffix) are refused there and the flows fields (FLOWS_ONLY_FIELDS) elsewhere,
  since a field that is silently ignored is a misconfiguration.
Every error is one ConfigError: `<file>:<line>: target <i> "<Desc>": <Field> <value>: <problem and
fix>`, the line being the field's when it is written in the target's table, else the table's (a
TargetPlace from lua.py; no line when it is not known).
"""

from __future__ import annotations

import re

from pushcap import defaults
from pushcap.config.archive_fields import parse_index, parse_keep, refuse_for_rclone
from pushcap.config.bpf_compile import BpfError, compile_program
from pushcap.config.field_check import (
    FieldError,
    LuaOpaque,
    TargetPlace,
    check_field,
    field_text,
    lua_repr,
)
from pushcap.config.file_fields import (
    implied_codec,
    parse_filename,
    parse_pipe_cmd,
    parse_split,
    parse_suffix,
)
from pushcap.config.fmadio_fields import FMADIO_FIELDS, FmadioFields, parse_fmadio_fields
from pushcap.config.model import ConfigError, PushMode, TargetConfig

TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "FIELDS",
    "FILE_ONLY_FIELDS",
    "FLOWS_ONLY_FIELDS",
    "LuaOpaque",
    "TargetPlace",
    "lua_repr",
    "validate_target",
]

FIELDS = (
    "Desc", "Mode", "Path", "Split", "FileName", "FilterBPF", "Interface", "PipeCmd", "FileSuffix",
    "Interval", "Pack", "DatadogRanges", "Keep", "Index", *FMADIO_FIELDS,
)  # fmt: skip
FILE_ONLY_FIELDS = ("Split", "FileName", "PipeCmd", "FileSuffix", "Keep", "Index")  # not flows
ARCHIVE_FIELDS = ("Keep", "Index")  # File targets only (archive_fields.py)
FLOWS_ONLY_FIELDS = ("Interval", "Pack", "DatadogRanges")  # refused for File and rclone

_INTERFACE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,63}")
_DLT_EN10MB = 1  # FilterBPF is checked for Ethernet at load; each interface's type at start
# rclone: `remote:path`, `remote,opt=v:path` or `:backend,opt="v":path` (quoted values may hold ':')
_RCLONE_RE = re.compile(
    r"(?P<remote>:?[\w.+@-](?:[\w. +@-]*[\w.+@-])?)"
    r"(?P<opts>,(?:\"[^\"]*\"|'[^']*'|[^:\"'])*)?:(?P<path>.*)",
    re.S,
)


# --- one target -------------------------------------------------------------------------------


def validate_target(fields: dict[str, Any], place: TargetPlace,
                    decap_default: bool = defaults.DECAP_DEFAULT) -> TargetConfig:
    """The target at `place` from its named fields; the first wrong field raises ConfigError.
    `decap_default`: Config.Decap, else FMADIO's default (fmadio_fields.py)."""
    desc = check_field(place, "Desc", fields.get("Desc"), _parse_desc)
    place = place.named(desc)
    for name in sorted(fields):
        if name not in FIELDS:
            shown = name if name.isidentifier() else lua_repr(name)  # a key may hold a newline
            raise ConfigError(
                f"{place.prefix(name)}: unknown field {shown} (known: {', '.join(FIELDS)})"
            )

    mode = check_field(place, "Mode", fields.get("Mode"), _parse_mode)
    fmadio = parse_fmadio_fields(fields, place, decap_default, mode is not PushMode.FLOWS)
    if mode is PushMode.FLOWS:
        return _validate_flows(fields, place, desc, fmadio)
    for name in FLOWS_ONLY_FIELDS:
        if name in fields:
            from pushcap.config.flows_fields import refuse_flows_only, refuse_interval

            refuse = refuse_interval if name == "Interval" else refuse_flows_only
            check_field(place, name, fields[name], refuse)
    notices = list(fmadio.notices)
    path = check_field(place, "Path", fields.get("Path"), lambda v: _parse_path(v, mode))
    split_value = _split_size_alias(fields.get("Split", defaults.DEFAULT_SPLIT.encode()), place,
                                    notices)
    split = check_field(place, "Split", split_value, parse_split)
    name_value = fields.get("FileName", defaults.DEFAULT_FILENAME.encode())
    naming = check_field(place, "FileName", name_value, lambda v: parse_filename(v, split))
    pipe_cmd = check_field(place, "PipeCmd", fields.get("PipeCmd"), parse_pipe_cmd)
    suffix_value = fields.get("FileSuffix")
    if pipe_cmd is None and suffix_value is not None and not _given(fields.get("PipeCmd")):
        pipe_cmd = check_field(place, "FileSuffix", suffix_value, implied_codec)
        if pipe_cmd is not None:
            notices.append(f"{place.prefix('FileSuffix')}: FileSuffix {lua_repr(suffix_value)} "
                           f"without a PipeCmd: files are compressed as by PipeCmd = "
                           f'"{pipe_cmd.command()}", so that their name says what they hold')
    suffix = check_field(place, "FileSuffix", suffix_value, lambda v: parse_suffix(v, pipe_cmd))
    for name in ARCHIVE_FIELDS:
        if name in fields and mode is PushMode.RCLONE:
            check_field(place, name, fields[name], refuse_for_rclone)
        elif name in fields and path.endswith("/"):
            check_field(place, name, fields[name], _refuse_for_folder)
    return TargetConfig(
        index=place.index,
        desc=desc,
        mode=mode,
        path=path,
        split=split,
        naming=naming,
        filter_bpf=check_field(place, "FilterBPF", fields.get("FilterBPF"), _parse_bpf),
        interface=check_field(place, "Interface", fields.get("Interface"), _parse_interface),
        pipe_cmd=pipe_cmd,
        file_suffix=suffix,
        keep=check_field(place, "Keep", fields.get("Keep"), parse_keep),
        indexed=check_field(place, "Index", fields.get("Index"), parse_index),
        decap=fmadio.decap,
        cpu=fmadio.cpu,
        script_new=fmadio.script_new,
        notices=tuple(notices),
    )


def _validate_flows(fields: dict[str, Any], place: TargetPlace, desc: str,
                    fmadio: FmadioFields) -> TargetConfig:
    """A Mode flows target: a UDP destination, an interval, packing and Datadog ranges; the file
    fields are refused. flows_fields (its patterns compiled at import) is imported by a flows
    target or a flows field only: not in a replay of File targets (issue 15)."""
    from pushcap.config.flows_fields import (
        parse_datadog_ranges,
        parse_interval,
        parse_pack,
        parse_udp_path,
        refuse_for_flows,
    )

    for name in FILE_ONLY_FIELDS:
        if name in fields:
            check_field(place, name, fields[name], refuse_for_flows)
    path = check_field(place, "Path", fields.get("Path"), parse_udp_path)
    interval = check_field(place, "Interval", fields.get("Interval"), parse_interval)
    return TargetConfig(
        index=place.index,
        desc=desc,
        mode=PushMode.FLOWS,
        path=path,
        split=parse_split(defaults.DEFAULT_SPLIT.encode()),
        naming=parse_filename(defaults.DEFAULT_FILENAME.encode(), None),
        filter_bpf=check_field(place, "FilterBPF", fields.get("FilterBPF"), _parse_bpf),
        interface=check_field(place, "Interface", fields.get("Interface"), _parse_interface),
        interval_s=interval,
        pack=check_field(place, "Pack", fields.get("Pack"), parse_pack),
        datadog_ranges=check_field(
            place, "DatadogRanges", fields.get("DatadogRanges"), parse_datadog_ranges
        ),
        cpu=fmadio.cpu,
        notices=fmadio.notices,
    )


def _split_size_alias(value: Any, place: TargetPlace, notices: list[str]) -> Any:
    """`--split-size N` (in FMADIO's documentation, unknown to pcap_split) read as
    `--split-byte N`, with a notice."""
    if isinstance(value, bytes) and value.split()[:1] == [b"--split-size"]:
        notices.append(f"{place.prefix('Split')}: Split {lua_repr(value)}: read as --split-byte "
                       "(pcap_split itself knows only --split-byte)")
        return value.replace(b"--split-size", b"--split-byte", 1)
    return value


def _given(value: Any) -> bool:
    """A field written with something in it (not nil, not a blank string)."""
    return value is not None and not (isinstance(value, bytes) and not value.strip())


def _refuse_for_folder(value: Any) -> None:
    raise FieldError("needs a Path prefix (e.g. \"/data/push/all\"), not a folder ending in '/':"
                     " retention and indexes tell a target's files by their `<Path>_` prefix")


# --- fields -----------------------------------------------------------------------------------


def _parse_desc(value: Any) -> str:
    """Any printable text (FMADIO's own example is "port80 zstd"), spaces around it dropped."""
    if isinstance(value, bytes):
        value = value.strip()
    desc = field_text(value, 'Desc = "pcap-all"')
    assert desc is not None
    if not desc.isprintable():
        raise FieldError("must be printable text (no control or format characters)")
    if len(desc) > defaults.DESC_MAX_CHARS:
        raise FieldError(f"is longer than {defaults.DESC_MAX_CHARS} characters")
    return desc


_OTHER_MODES = {  # FMADIO's modes pushcap has no counterpart for, and what to use instead
    "curl": "FMADIO's CURL mode (FTP or HTTP upload through curl) is not in pushcap: use "
            'Mode = "rclone" with an FTP or HTTP remote (e.g. Path = ":ftp,host=H:dir/prefix")',
    "lxc": "FMADIO's LXC mode (its container ring buffer) has no counterpart in pushcap",
}


def _parse_mode(value: Any) -> PushMode:
    text = field_text(value, 'Mode = "File"')
    for mode in PushMode:
        if text is not None and text.lower() == mode.value.lower():
            return mode
    other = _OTHER_MODES.get((text or "").lower())
    known = f"must be {' or '.join(repr(m.value) for m in PushMode)}"
    raise FieldError(f"{other}; {known}" if other else known)


def _parse_path(value: Any, mode: PushMode) -> str:
    example = '"/mnt/remote0/push/all"' if mode is PushMode.FILE else '"remote:push/all"'
    path = field_text(value, f"Path = {example} (files are <Path>_<name>.pcap)")
    assert path is not None
    if mode is PushMode.RCLONE:
        match = _RCLONE_RE.fullmatch(path)
        if not match or not match["path"]:
            raise FieldError(
                'must be an rclone destination "remote:dir/prefix" or ":backend,opts:dir/prefix"'
                " (files are <Path>_<name>.pcap)"
            )
        path_part = match["path"]
    else:
        path_part = path
    if path_part.endswith("/"):
        return path  # a folder, as FMADIO reads it: files are `<name><suffix>` inside
    base = path_part.rsplit("/", 1)[-1]
    if base.startswith("."):
        raise FieldError(
            f"the file prefix {base!r} starts with '.', which would make hidden files like those"
            " pushcap writes before a file is complete; choose a prefix without a leading dot"
        )
    if len(base.encode()) > 180:
        raise FieldError("the file prefix is longer than 180 bytes; file names are limited to 255")
    return path


def _parse_bpf(value: Any) -> str | None:
    example = 'FilterBPF = "tcp" (or nil to push every packet)'
    if isinstance(value, bytes):
        value = value.strip()  # as libpcap reads it; FMADIO's generator writes "" for all
        if not value:
            return None
    expr = field_text(value, example, required=False)
    if expr is None:
        return None
    try:  # for Ethernet at live capture's snaplen: the key `run` compiles lo and eth* under
        compile_program(expr, _DLT_EN10MB, defaults.LIVE_SNAPLEN_BYTES)
    except BpfError as e:  # libpcap's message, or the size or time budget (bpf_compile.py)
        raise FieldError(str(e)) from None
    return expr


def _parse_interface(value: Any) -> str | None:
    name = field_text(value, 'Interface = "eth0"', required=False)
    if name is not None and not _INTERFACE_RE.fullmatch(name):
        raise FieldError("must be an interface name or alias: 1-64 letters, digits or . _ : @ + -")
    return name
