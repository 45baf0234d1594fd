"""Trigger settings: pcapdaemon's TOML sections plus its command-line flags, as frozen dataclasses.

pcapdaemon users must be able to keep their files and their command lines, so both are read with
pcapdaemon's names and precedence: a flag given on the command line overrides the file, the file
overrides the defaults (pcapdaemon's documented defaults, which pcapdaemon itself did not always
apply; they live in pushcap/defaults.py). Nothing below `config/` reads TOML or
flags; the trigger path only sees these types. [syslog] belongs to obs.py (logging), not to the
trigger path.

Messages name the file, `[section] key` and its line, or the flag; they never show a credential:
a key named like one (auth, token...) is reported without its value, any other value goes through
field_check.conceal (a Redis URL's password), and the error that names a bad token says where
it came from, not what it was.

pcapdaemon's zeros: Go cannot tell a missing number from 0, so pcapdaemon treats 0 as "not set"
for its limits and ports ([general] maxpackets, maxbytes, snaplength, the timeouts and durations;
[cloudshark] port and timeout; [redis] port) and for its number flags, and "" for its string
flags: so does pushcap, wherever pcapdaemon did. [s3], [sqs] and [kafka] are read in their own
modules (s3_settings.py, listener_settings.py); what pushcap accepts without giving it a meaning
(`-panic`, `[kafka] listen = true` until `run`) is listed in `notices`, which `check` prints and
`run` logs once.

writelocal's folder defaults to a place that outlives the service (systemd's PrivateTmp empties
/tmp at every stop): /var/lib/pushcap/captures, below the unit's StateDirectory, created on use.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pushcap import defaults
from pushcap.config.field_check import conceal
from pushcap.config.listener_settings import (
    KafkaSettings,
    SqsSettings,
    kafka_refusal,
    parse_kafka,
    parse_sqs,
)
from pushcap.config.model import ConfigError
from pushcap.config.pcapdaemon_flags import (
    add_pcapdaemon_flags as add_pcapdaemon_flags,  # re-exported: it has always lived here
)
from pushcap.config.s3_settings import S3Settings, parse_s3
from pushcap.config.toml_section import MAX_SECONDS, LineTable, TomlSection, go_duration_s

REDIS_KEYS = {"host", "port", "channel", "auth", "user", "listen", "tls", "tlsverify", "cafile",
              "streammaxlen"}
CLOUDSHARK_KEYS = {"host", "port", "scheme", "timeout", "token", "upload", "verify", "cafile",
                   "retries", "retrybackoff"}
_CHANNEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_CS_TIMEOUT_MIN_S = 1e-3  # as TomlSection.seconds takes [cloudshark] timeout
# Keys whose 0 pcapdaemon's validator (or Go's zero value) turns into its default.
ZERO_IS_UNSET = {"general": ("maxpackets", "maxbytes", "maxtimeout", "maxduration",
                             "defaulttimeout", "snaplength"),
                 "cloudshark": ("port", "timeout"), "redis": ("port",)}
PANIC_NOTICE = ("-panic: pcapdaemon's panic on packet-layer parse errors has no meaning in "
                "pushcap, which does not decode packets for triggered captures: accepted, ignored")
LOCAL_DIR_FIX = "set [general] localdir / -destdir to a folder the service's user can write"


@dataclass(frozen=True)
class RedisSettings:
    """Where requests come from and results go. `password` never appears in repr or logs."""

    host: str = defaults.REDIS_HOST
    port: int = defaults.REDIS_PORT
    channel: str = defaults.REDIS_CHANNEL
    password: str | None = field(default=None, repr=False)
    username: str | None = None  # Redis 6 ACL user; None = the default user
    tls: bool = False  # `rediss://` host or `tls = true`
    tls_verify: bool = True
    ca_file: str | None = None
    listen: bool = True  # pcapdaemon's `listen`; false turns the trigger path off
    configured: bool = False  # [redis] in the file or -redisnode: cli must not start its own server
    stream_max_len: int = defaults.RESULTS_STREAM_MAX_ENTRIES
    connect_timeout_s: float = 5.0

    @property
    def results_channel(self) -> str:
        return f"{self.channel}:results"

    @property
    def results_stream(self) -> str:
        return f"{self.channel}:results:stream"

    def describe(self) -> str:
        """For logs: where, never with what credentials."""
        scheme = "rediss" if self.tls else "redis"
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port} channel={self.channel}"

    def client_kwargs(self) -> dict:
        """Keyword arguments for `redis.Redis` (kept here so every client connects the same way)."""
        kwargs: dict = dict(host=self.host, port=self.port, password=self.password,
                            username=self.username, socket_connect_timeout=self.connect_timeout_s,
                            socket_keepalive=True)
        if self.tls:
            kwargs.update(ssl=True, ssl_cert_reqs="required" if self.tls_verify else "none",
                          ssl_ca_certs=self.ca_file)
        return kwargs


@dataclass(frozen=True)
class CloudSharkSettings:
    """The CloudShark upload endpoint. `token` never appears in repr or logs."""

    host: str = defaults.CS_HOST
    scheme: str = defaults.CS_SCHEME
    port: int | None = None  # None, or the scheme's own port, is left out of the URL
    token: str = field(default="", repr=False)
    timeout_s: float = defaults.CS_TIMEOUT_S
    upload: bool = False
    verify_tls: bool = True  # pcapdaemon skipped verification; pushcap only does when told to
    ca_file: str | None = None
    retries: int = defaults.CS_RETRIES
    retry_backoff_s: float = defaults.CS_RETRY_BACKOFF_S

    @property
    def base_url(self) -> str:
        default_port = {"http": 80, "https": 443}[self.scheme]
        port = f":{self.port}" if self.port and self.port != default_port else ""
        return f"{self.scheme}://{self.host}{port}"

    def upload_url(self) -> str:
        """Holds the token: for the HTTP request only, never for a log line."""
        return f"{self.base_url}/api/v1/{self.token}/upload"

    def capture_url(self, capture_id: str) -> str:
        return f"{self.base_url}/captures/{capture_id}"


@dataclass(frozen=True)
class TriggerSettings:
    """Everything the trigger path needs: caps on requests, delivery, Redis, CloudShark."""

    node_name: str
    max_packets: int = defaults.TRIGGER_MAX_PACKETS
    max_bytes: int = defaults.TRIGGER_MAX_BYTES  # per capture: also bounds a request's memory
    max_timeout_s: float = defaults.TRIGGER_MAX_TIMEOUT_S
    max_duration_s: float = defaults.TRIGGER_MAX_DURATION_S
    default_timeout_s: float = defaults.TRIGGER_TIMEOUT_S
    snap_length: int = defaults.TRIGGER_SNAPLEN_BYTES
    write_local: bool = False
    local_dir: Path = Path(defaults.TRIGGER_LOCAL_DIR)
    local_dir_is_default: bool = True  # created at start; a configured one must exist
    fallback_dir: Path = Path(defaults.TRIGGER_FALLBACK_DIR)
    log_requests: bool = False
    max_concurrent: int = defaults.TRIGGER_MAX_CONCURRENT_CAPTURES
    max_queued: int = defaults.TRIGGER_MAX_QUEUED_CAPTURES
    redis: RedisSettings = field(default_factory=RedisSettings)
    cloudshark: CloudSharkSettings = field(default_factory=CloudSharkSettings)
    packet_debug: bool = False  # [general] packetdebug: each request's packets, at debug level
    # [general] ondemand: an interface of this host that [[interface]] does not list is captured
    # live for the request that names it (no lookback), as pcapdaemon captured any interface
    on_demand: bool = True
    s3: S3Settings = field(default_factory=S3Settings)
    sqs: SqsSettings = field(default_factory=SqsSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    notices: tuple[str, ...] = ()  # accepted without a meaning: `check` prints, `run` logs

    @property
    def refusal(self) -> str | None:
        """Why `pushcap run` must not start with these settings (`[kafka] listen = true`)."""
        return kafka_refusal(self.kafka)


def pcapdaemon_flags(args: argparse.Namespace | None) -> dict:
    """The pcapdaemon flags given on a command line. Not given ones are None, and, as Go's
    zero values in pcapdaemon, a number flag of 0 and a string flag of "": the file wins."""
    return {k[3:]: v for k, v in vars(args or argparse.Namespace()).items()
            if k.startswith("pd_") and v is not None and not _go_zero(v)}


def _go_zero(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool) and value == 0) \
        or value == ""


def zeros_unset(section: dict, name: str) -> dict:
    """`section` without the keys whose 0 means "not set" in pcapdaemon (`ZERO_IS_UNSET`); a
    Go duration of zero ("0s") too. Keeps the lines of the keys left, for messages."""
    unset = {key for key in ZERO_IS_UNSET.get(name, ()) if key in section
             and (_go_zero(section[key]) or (isinstance(section[key], str)
                                             and go_duration_s(section[key]) == 0))}
    if not unset:
        return section
    return LineTable({k: v for k, v in section.items() if k not in unset},
                     getattr(section, "lines", {}))


# The [general] keys the trigger settings read (toml.py adds node, loglevel and logdir and
# refuses any other key, as in every section: a mistyped key is named, never ignored).
GENERAL_TRIGGER_KEYS = frozenset({
    "maxtimeout", "defaulttimeout", "maxpackets", "writelocal", "localdir", "maxbytes",
    "maxduration", "snaplength", "fallbackdir", "logrequests", "maxconcurrent", "maxqueued",
    "packetdebug", "ondemand"})


def trigger_settings(general: dict, redis_section: dict, cloudshark_section: dict,
                     node_name: str, src: str, flags: dict, *,
                     default_local_dir: Path = Path(defaults.TRIGGER_LOCAL_DIR),
                     others: dict[str, dict] | None = None) -> TriggerSettings:
    """Merge defaults < TOML < flags into validated settings; ConfigError names the culprit.
    Called once, by toml.py while the file is parsed (with the command line's flags).

    With writelocal on and no localdir / -destdir, captures go to `default_local_dir`, which
    the daemon creates when it starts (trigger/local_dir.py); `check_local_dir` says whether
    the folder can be used. Parsing reads and creates nothing on disk. `others`: the [s3],
    [sqs] and [kafka] tables, when the file has them.
    """
    others = others or {}
    gen = TomlSection(zeros_unset(general, "general"), "general", None, src)  # shared: toml.py
    redis = _redis(TomlSection(zeros_unset(redis_section, "redis"), "redis", REDIS_KEYS, src),
                   flags)
    cloudshark = _cloudshark(TomlSection(zeros_unset(cloudshark_section, "cloudshark"),
                                         "cloudshark", CLOUDSHARK_KEYS, src), flags)
    kafka = parse_kafka(others.get("kafka", {}), src)
    notices = [PANIC_NOTICE] if flags.get("panic") else []
    if kafka.listen:
        notices.append(f"{kafka_refusal(kafka)} (`pushcap run` refuses to start with it)")
    max_timeout_s = gen.seconds("maxtimeout", defaults.TRIGGER_MAX_TIMEOUT_S)
    default_timeout_s = gen.seconds("defaulttimeout", defaults.TRIGGER_TIMEOUT_S)
    if default_timeout_s > max_timeout_s:
        raise ConfigError(f"{src}: [general] defaulttimeout {default_timeout_s:g} s exceeds "
                          f"maxtimeout {max_timeout_s:g} s")
    max_packets = flags.get("maxpackets",
                            gen.integer("maxpackets", defaults.TRIGGER_MAX_PACKETS, 1))
    if max_packets < 1:
        raise ConfigError(f"-maxpackets {max_packets}: must be at least 1")
    write_local = flags.get("writelocal", gen.boolean("writelocal", False))
    configured = flags.get("destdir", gen.optional_text("localdir"))
    local_dir = default_local_dir if configured is None else Path(configured)
    return TriggerSettings(
        node_name=node_name,
        max_packets=max_packets,
        max_bytes=gen.integer("maxbytes", defaults.TRIGGER_MAX_BYTES, 25),
        max_timeout_s=max_timeout_s,
        max_duration_s=gen.seconds("maxduration", defaults.TRIGGER_MAX_DURATION_S),
        default_timeout_s=default_timeout_s,
        snap_length=gen.integer("snaplength", defaults.TRIGGER_SNAPLEN_BYTES, 1,
                                defaults.MAX_SNAPLEN_BYTES),
        write_local=write_local,
        local_dir=local_dir,
        local_dir_is_default=configured is None,
        fallback_dir=Path(gen.text("fallbackdir", defaults.TRIGGER_FALLBACK_DIR)),
        log_requests=gen.boolean("logrequests", False),
        max_concurrent=gen.integer("maxconcurrent", defaults.TRIGGER_MAX_CONCURRENT_CAPTURES, 1,
                                   1024),
        max_queued=gen.integer("maxqueued", defaults.TRIGGER_MAX_QUEUED_CAPTURES, 0, 100_000),
        redis=redis,
        cloudshark=cloudshark,
        packet_debug=gen.boolean("packetdebug", False),
        on_demand=gen.boolean("ondemand", True),
        s3=parse_s3(others.get("s3", {}), src),
        sqs=parse_sqs(others.get("sqs", {}), src),
        kafka=kafka,
        notices=tuple(notices),
    )


def local_dir_error(src: str, folder: Path, why: object) -> ConfigError:
    """The default folder cannot be made: what to do about it (shared with the creation)."""
    return ConfigError(
        f"{src}: writelocal is on but its default folder {folder} cannot be created: "
        f"{why}; run pushcap from etc/pushcap.service (its StateDirectory=pushcap "
        "provides /var/lib/pushcap), create the folder for the service's user with mode "
        f"0750, or {LOCAL_DIR_FIX}")


def check_local_dir(settings: TriggerSettings, src: str) -> None:
    """Refuse a writelocal folder captures could not be written to (`check`, and `run` before
    it starts): a folder named in the config or on the command line must exist already, so that
    a typo in it is reported instead of silently becoming a new folder; the default one must be
    creatable by this user (the daemon's start creates it). Reads the disk, changes nothing."""
    if not settings.write_local:
        return
    folder, is_default = settings.local_dir, settings.local_dir_is_default
    if not folder.is_dir():
        if not is_default:
            raise ConfigError(f"{src}: writelocal is on but the folder {folder} does not exist "
                              "(create it or set [general] localdir / -destdir)")
        # lexists: a dangling symlink is a level that exists (mkdir fails on it), not a gap
        missing = [level for level in (folder, *folder.parents) if not os.path.lexists(level)]
        existing = folder.parents[len(missing) - 1] if missing else folder
        if not existing.is_dir():  # a file, a dangling symlink or a symlink loop
            raise local_dir_error(src, folder, f"{existing} is not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise local_dir_error(src, folder, f"this user cannot write into {existing}")
        return  # created when the daemon starts
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{src}: writelocal is on but this user cannot write into {folder}; "
                          f"{LOCAL_DIR_FIX}")


def redis_settings(section: dict, args: argparse.Namespace | None, source: str
                   ) -> RedisSettings:
    """Only the Redis part (for `pushcap trigger`, which needs no interfaces or caps)."""
    return _redis(TomlSection(zeros_unset(section, "redis"), "redis", REDIS_KEYS, source),
                  pcapdaemon_flags(args))


def _redis(sec: TomlSection, flags: dict) -> RedisSettings:
    host = flags.get("redisnode", sec.text("host", defaults.REDIS_HOST))
    port = flags.get("redisport", sec.integer("port", defaults.REDIS_PORT, 1, 65535))
    tls = sec.boolean("tls", False)
    username = sec.optional_text("user")
    password = sec.optional_text("auth")
    if "://" in host:  # redis://[user:pass@]host[:port] or rediss://...
        origin = "-redisnode" if "redisnode" in flags else sec.where("host")
        try:
            url = urlsplit(host)
            url_port = url.port
        except ValueError:  # a port that is not a number, a broken [IPv6] address
            raise ConfigError(f"{origin}: not a valid redis:// or rediss:// URL (the value is "
                              "not shown: it may hold a password)") from None
        if url.scheme not in ("redis", "rediss") or not url.hostname:
            raise ConfigError(f"{origin}: redis host {url.scheme}://{url.hostname}: use "
                              "redis:// or rediss://")
        tls = tls or url.scheme == "rediss"
        username = unquote(url.username) if url.username else username
        password = unquote(url.password) if url.password else password
        if url_port and "redisport" not in flags:
            port = url_port
        host = url.hostname
    channel = flags.get("redischannel", sec.text("channel", defaults.REDIS_CHANNEL))
    if not _CHANNEL.match(channel):
        raise ConfigError(f"redis channel {conceal(repr(channel))}: letters, digits and ._:/- "
                          "only")
    if not 1 <= port <= 65535:
        raise ConfigError(f"redis port {port}: must be 1..65535")
    return RedisSettings(
        host=host, port=port, channel=channel, password=password, username=username, tls=tls,
        tls_verify=sec.boolean("tlsverify", True), ca_file=sec.optional_text("cafile"),
        listen=sec.boolean("listen", True),
        configured=bool(sec.values) or "redisnode" in flags,
        stream_max_len=sec.integer("streammaxlen", defaults.RESULTS_STREAM_MAX_ENTRIES, 1))


def _cs_timeout_s(sec: TomlSection, flags: dict) -> float:
    """-cstimeout, else [cloudshark] timeout, in the range the file's key takes: a flag of nan,
    inf (1e400 is inf) or below a millisecond names the flag (0 never gets here: unset)."""
    if "cstimeout" not in flags:
        return sec.seconds("timeout", defaults.CS_TIMEOUT_S)
    timeout_s = float(flags["cstimeout"])
    if not _CS_TIMEOUT_MIN_S <= timeout_s <= MAX_SECONDS:  # False for nan as well
        raise ConfigError(f"-cstimeout {timeout_s:g}: must be {_CS_TIMEOUT_MIN_S:g} to "
                          f"{MAX_SECONDS:g} s (0 leaves the file's or the default)")
    return timeout_s


def _cloudshark(sec: TomlSection, flags: dict) -> CloudSharkSettings:
    scheme = flags.get("csscheme", sec.text("scheme", defaults.CS_SCHEME))
    if scheme not in ("http", "https"):
        raise ConfigError(f"[cloudshark] scheme {conceal(repr(scheme))}: use http or https")
    port = flags.get("csport", sec.integer("port", 0, 0, 65535)) or None
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError(f"-csport {port}: must be 1..65535")
    settings = CloudSharkSettings(
        host=flags.get("cshost", sec.text("host", defaults.CS_HOST)), scheme=scheme, port=port,
        token=flags.get("cstoken", sec.optional_text("token") or ""),
        timeout_s=_cs_timeout_s(sec, flags),
        upload=flags.get("upload", sec.boolean("upload", False)),
        verify_tls=sec.boolean("verify", True), ca_file=sec.optional_text("cafile"),
        retries=sec.integer("retries", defaults.CS_RETRIES, 0, 20),
        retry_backoff_s=sec.seconds("retrybackoff", defaults.CS_RETRY_BACKOFF_S, minimum_s=0.0))
    if settings.timeout_s <= 0:
        raise ConfigError("CloudShark timeout must be above 0 s")
    if settings.upload and not settings.token:
        raise ConfigError("CloudShark upload is on but the API token is missing "
                          "(set [cloudshark] token or -cstoken)")
    if settings.upload and not _TOKEN.fullmatch(settings.token):
        origin = "-cstoken" if "cstoken" in flags else sec.where("token")
        raise ConfigError(f"{origin}: CloudShark upload is on but the API token is not a token: "
                          "1-256 letters, digits, '_' or '-' (the value is not shown)")
    if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]+\]", settings.host):
        raise ConfigError(f"CloudShark host {conceal(repr(settings.host))} is not a host name")
    return settings
