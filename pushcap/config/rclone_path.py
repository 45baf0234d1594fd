"""The grammar of an rclone Path: which part is the remote, and how it may be shown.

`remote:path` (a configured remote), `remote,opt=v:path` (a connection string) and
`:backend,opt='v':path` (an on-the-fly backend, whose quoted values may hold colons). The config
check, the uploader and the logs all split a Path this one way; a Path's connection string may
carry keys, so `display_path` leaves it out and `path_secrets` lists what must be scrubbed.
"""

from __future__ import annotations

from pushcap.config.secrets import scrub, spec_secrets


def split_remote(path: str) -> tuple[str, str]:
    """(`remote:` spec including its colon, path below it) of an rclone path.

    Handles named remotes (`s3:bucket/x`), connection strings (`s3,region=eu:bucket/x`) and
    on-the-fly backends (`:s3,endpoint='http://h:9000':bucket/x`: quoted values may hold colons).
    """
    quote = ""
    start = 1 if path.startswith(":") else 0
    for i in range(start, len(path)):
        ch = path[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == ":":
            return path[:i + 1], path[i + 1:]
        elif ch == "/" and start == 0:
            break  # a local path with a colon further on is not a remote
    raise ValueError(f'"{scrub(path)}" is not an rclone path: expected "remote:path" '
                     '(a configured remote) or ":backend,option=value:path"')


def display_path(path: str) -> str:
    """`path` fit for a log: connection-string parameters (possibly keys) are left out."""
    try:
        spec, rest = split_remote(path)
    except ValueError:
        return scrub(path)
    name = spec[:-1].split(",", 1)[0]
    return f"{name}:{rest}"


def remote_name(spec: str) -> str | None:
    """The configured remote a spec refers to, or None for an on-the-fly `:backend` spec."""
    return None if spec.startswith(":") else spec[:-1].split(",", 1)[0]


def path_secrets(path: str) -> set[str]:
    """Secret option values in the connection string of `path` (`:webdav,headers='...':`);
    here rather than in `secrets`, which knows connection strings but not how a Path splits."""
    try:
        spec = split_remote(path)[0]
    except ValueError:
        return set()
    return spec_secrets(spec)
