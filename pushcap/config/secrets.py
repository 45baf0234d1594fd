"""Credentials in rclone's world: which values are secret, and text scrubbed of them.

Anything rclone prints can carry credentials (URLs with user:password or a token as user name,
signed query strings such as Azure SAS `sig=`, `:s3,secret_access_key=...:` strings,
`headers='Authorization,Bearer ...'` options). `scrub()` replaces the secret values it is given
and, by pattern, the ones it can recognise without being told. The values come from where rclone
reads them: the environment, the config file and the extra flags (`known_secrets`), and the
connection string of a Path (`spec_secrets`).

It lives in `config/` because what counts as a secret is part of the configuration's grammar:
the config check hides them in its messages, the rclone runner in everything rclone prints.
Only the standard library. The patterns are compiled on first use (`_patterns()`): a start that
shows no message (every replay) does not pay for them.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from types import SimpleNamespace

MIN_SECRET_CHARS = 4  # shorter values would blank out ordinary words; patterns still hide them

# option names that carry a secret; headers and cookies too (`Authorization,Bearer <token>`),
# and `sig`, the signature of an Azure SAS URL, as a whole name only (not `design=`)
SENSITIVE_NAME = r"(?:[A-Za-z0-9_-]*(?:key|secret|pass|password|token|credential|signature|" \
             r"sas_url|header|cookie|authorization)[A-Za-z0-9_-]*|sig)"
# A URL user name this long is a token (`https://TOKEN@host`), as is one in a token format
# (GitHub, GitLab, Slack); a login name is shown, as it helps. The config check's rule too.
MIN_TOKEN_USER_CHARS = 20
_TOKEN_USER = (rf"[^/\s:@'\"]{{{MIN_TOKEN_USER_CHARS},}}"
               r"|(?:gh[pousr]_|github_pat_|glpat-|xox[abprs]-)[^/\s:@'\"]+")


# A URL scheme starts where a run of scheme characters starts: without the lookbehind every
# position inside a long run (a 64 KB value pasted into a field) would scan to the run's end
# again, quadratic time for what is one message.
_SCHEME = r"(?<![a-zA-Z0-9+.-])[0-9+.-]*[a-zA-Z][a-zA-Z0-9+.-]*://"


@functools.cache
def _patterns() -> SimpleNamespace:
    """The compiled patterns, once per process."""
    return SimpleNamespace(
        url_credentials=re.compile(
            rf"{_SCHEME}(?:[^/\s:@'\"]+:([^/\s@'\"]+)|({_TOKEN_USER}))@"),
        scrub=(
            (re.compile(rf"({_SCHEME})[^/\s:@]+:[^/\s@]+@"), r"\1***@"),
            (re.compile(rf"({_SCHEME})(?:{_TOKEN_USER})@"), r"\1***@"),
            (re.compile(rf"(?i)\b({SENSITIVE_NAME})=('[^']*'|\"[^\"]*\"|[^&,:\s'\"]+)"),
             r"\1=***"),
            (re.compile(r"(?i)\b(authorization|cookie|x-amz-security-token)(\"?\s*[:=,]\s*)"
                        r"[^\n]*"), r"\1\2***"),
        ),
        # RCLONE_CONFIG_<REMOTE>_<OPTION>, RCLONE_<BACKEND>_<OPTION> and global flags
        # (RCLONE_HEADER)
        env_secret=re.compile(
            rf"(?i)^(RCLONE_{SENSITIVE_NAME}|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN)$"),
        conf_secret=re.compile(rf"(?i)^{SENSITIVE_NAME}$"),
        spec_option=re.compile(
            r"[,:]\s*([A-Za-z0-9_-]+)=('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|[^,:]*)"),
    )


def url_secrets(text: str) -> set[str]:
    """The passwords and token user names of the URLs in `text` (a `url` option's value is no
    secret as a whole, but rclone may quote its credentials in a form the patterns miss)."""
    return {m[1] or m[2] for m in _patterns().url_credentials.finditer(text)}


def option_secrets(name: str, value: str) -> set[str]:
    """What a message could quote of an option's value: its URLs' credentials and, for a
    secret option, the value and, for headers (a backend's `headers` list `Key,Value,...`, the
    `--header` flag's `Key: Value`), each header's value and its last word (the token after
    `Bearer`)."""
    found = url_secrets(value)
    if not _patterns().conf_secret.match(name) or value.lower() in ("true", "false"):
        return found
    found.add(value)
    if "header" in name.lower():
        import csv  # here, as configparser below: a replay's start should not pay for them

        values = next(csv.reader([value]), [])[1::2] if name.lower().endswith("headers") \
            else [value.partition(":")[2]]
        found |= {part for v in values if v.strip() for part in (v.strip(), v.split()[-1])}
    return found


def spec_secrets(spec: str) -> set[str]:
    """Secret option values in a `remote:` spec's connection string (`:webdav,headers='...':`,
    `s3,secret_access_key=...:`); `rclone_remote.path_secrets` finds the spec of a Path."""
    found: set[str] = set()
    for name, value in _patterns().spec_option.findall(spec.removeprefix(":")):
        if value[:1] in "'\"" and len(value) > 1:
            value = value[1:-1].replace(value[0] * 2, value[0])
        found |= option_secrets(name, value)
    return {s for s in found if len(s) >= MIN_SECRET_CHARS}


def known_secrets(config_file: str | None = None, flags: tuple[str, ...] = ()) -> set[str]:
    """Credential values this process could leak: from the environment, the config file and
    the extra rclone flags (`--header "Authorization: Bearer ..."`, `--s3-secret-access-key`)."""
    secrets = {s for name, value in os.environ.items()
               if name.upper().startswith("RCLONE_") or _patterns().env_secret.match(name)
               for s in option_secrets(name, value)}
    conf = config_file or os.environ.get("RCLONE_CONFIG")
    if conf and Path(conf).is_file():
        import configparser

        parser = configparser.RawConfigParser()
        try:
            parser.read(conf)
        except configparser.Error:
            pass
        for section in parser.sections():
            secrets |= {s for item in parser.items(section) for s in option_secrets(*item)}
    for i, flag in enumerate(flags):
        name, eq, value = flag.partition("=")
        if not eq and i + 1 < len(flags) and not flags[i + 1].startswith("-"):
            value = flags[i + 1]
        if name.startswith("--") and value:
            secrets |= option_secrets(name[2:].replace("-", "_"), value)
    return {s for s in secrets if len(s) >= MIN_SECRET_CHARS}


def scrub(text: str, secrets: set[str] | frozenset[str] = frozenset()) -> str:
    """`text` without credentials: known values, URL passwords and token user names,
    key=value secrets (`sig=` of a SAS URL too)."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    for pattern, replacement in _patterns().scrub:
        text = pattern.sub(replacement, text)
    return text
