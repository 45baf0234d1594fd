"""Which host and port an rclone target's uploads connect to, read from the remote's settings.

What pushcap can see without asking the remote: the options rclone itself would read (in
rclone's order: the Path's connection string, `[rclone] flags`, `RCLONE_CONFIG_<NAME>_<OPTION>`,
`RCLONE_<BACKEND>_<OPTION>`, the config file), following wrapping remotes (`crypt`, `alias`,
...) to the one that talks to the network. A `url`/`endpoint` option or a `host` (and `port`)
gives the endpoint; S3 without an endpoint is AWS. Anything else (OAuth cloud drives, an
encrypted config file) gives None: the caller then says nothing rather than guess.

Only host names and ports leave this module; the option values it reads may hold credentials
(a URL's user:password), and none of them is ever logged.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from pushcap.config.rclone_path import remote_name, split_remote
from pushcap.config.rclone_settings import RcloneSettings

WRAPPERS = ("alias", "crypt", "chunker", "compress", "hasher", "cache")  # `remote = other:path`
DEFAULT_PORTS = {"sftp": 22, "ftp": 21, "smb": 445}
MAX_DEPTH = 5  # wrappers around wrappers; a loop ends here
_SPEC_OPTION = re.compile(r",\s*([A-Za-z0-9_-]+)=('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|[^,:]*)")


def remote_endpoint(path: str, settings: RcloneSettings) -> tuple[str, int] | None:
    """(host, port) that uploads to the rclone `path` connect to, or None where the remote's
    settings do not say (see the module's docstring)."""
    config = _config_file(settings)
    for _ in range(MAX_DEPTH):
        try:
            spec = split_remote(path)[0]
        except ValueError:
            return None
        options = _options(spec, settings, config)
        kind = options.get("type", "")
        if kind not in WRAPPERS:
            return _endpoint(kind, options)
        path = options.get("remote", "")
    return None


def _options(spec: str, settings: RcloneSettings, config: dict[str, dict[str, str]]
             ) -> dict[str, str]:
    """The options rclone would use for the remote of `spec`, highest precedence first."""
    name = remote_name(spec)
    head = spec[:-1].removeprefix(":").split(",", 1)[0]
    found: dict[str, str] = dict(config.get(name, {})) if name else {"type": head}
    own = f"RCLONE_CONFIG_{name.upper().replace('-', '_')}_" if name else None
    kind = os.environ.get(f"{own}TYPE", found.get("type", "")) if own else found["type"]
    backend = f"RCLONE_{kind.upper()}_" if kind else None
    for prefix in (backend, own):  # backend-wide, then the remote's own, win over the file
        for var, value in os.environ.items() if prefix else ():
            if var.startswith(prefix):
                found[var[len(prefix):].lower()] = value
    found.update(_flag_options(settings.flags, kind))
    for key, value in _SPEC_OPTION.findall(spec[:-1]):
        if value[:1] in "'\"" and len(value) > 1:
            value = value[1:-1].replace(value[0] * 2, value[0])
        found[key.lower().replace("-", "_")] = value
    if kind:
        found["type"] = kind
    return found


def _flag_options(flags: tuple[str, ...], kind: str) -> dict[str, str]:
    """`--<backend>-<option> value` (or `=value`) flags of [rclone] flags."""
    found: dict[str, str] = {}
    head = f"--{kind}-"
    for i, flag in enumerate(flags):
        name, eq, value = flag.partition("=")
        if not kind or not name.startswith(head):
            continue
        if not eq and i + 1 < len(flags):
            value = flags[i + 1]
        found[name[len(head):].replace("-", "_")] = value
    return found


def _endpoint(kind: str, options: dict[str, str]) -> tuple[str, int] | None:
    url = options.get("url") or options.get("endpoint")
    if kind == "s3" and not url and options.get("provider", "AWS") == "AWS":
        region = options.get("region", "")
        url = f"s3.{region}.amazonaws.com" if region and region != "us-east-1" \
            else "s3.amazonaws.com"
    if url:
        try:
            parts = urlsplit(url if "://" in url else f"https://{url}")
            port = parts.port or (80 if parts.scheme == "http" else 443)
        except ValueError:
            return None
        return (parts.hostname, port) if parts.hostname else None
    host = options.get("host")
    if not host:
        return None
    default = 990 if kind == "ftp" and options.get("tls") == "true" else DEFAULT_PORTS.get(kind)
    try:
        port = int(options.get("port") or default or 0)
    except ValueError:
        return None
    return (host, port) if port else None


def _config_file(settings: RcloneSettings) -> dict[str, dict[str, str]]:
    """The rclone config file's remotes ({} where there is none, or it is encrypted)."""
    import configparser

    home = Path.home()
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    candidates = [settings.config] if settings.config else (
        [os.environ["RCLONE_CONFIG"]] if os.environ.get("RCLONE_CONFIG")
        else [f"{xdg}/rclone/rclone.conf", str(home / ".rclone.conf")])
    parser = configparser.RawConfigParser()
    for candidate in candidates:
        try:
            if Path(candidate).is_file():
                parser.read(candidate, encoding="utf-8")
                break
        except (OSError, UnicodeDecodeError, configparser.Error):
            return {}
    return {section: dict(parser.items(section)) for section in parser.sections()}
