"""`[sqs]` and `[kafka]` of pcapdaemon.toml: pcapdaemon's other two ways requests arrive.

SQS is served (trigger/sqs_listener.py): pcapdaemon's keys listen, region, accessid, accesskey,
url, waitseconds (long polling, at most 20 s, SQS's limit) and chunksize (messages per receive,
at most 10), plus pushcap's `endpoint`, which by default is the queue URL's own scheme and host
(what AWS's and moto's queue URLs both need).

Kafka is not: no broker can run where pushcap is built and tested, and an untested listener would
be worse than none. `[kafka]` loads (its keys are checked), `listen = false` is accepted as it
is, and `listen = true` is kept so that `pushcap run` can refuse to start with one clear line
(`kafka_refusal`), while `pushcap check` loads the file and says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pushcap import defaults
from pushcap.config.model import ConfigError
from pushcap.config.toml_section import TomlSection

SQS_KEYS = {"listen", "region", "accessid", "accesskey", "url", "waitseconds", "chunksize",
            "endpoint"}
KAFKA_KEYS = {"listen", "server", "topic"}
_REGION = re.compile(r"[a-z0-9-]{1,64}")


@dataclass(frozen=True)
class SqsSettings:
    """An SQS queue to long-poll for requests. The keys never appear in repr or logs."""

    listen: bool = False
    url: str = ""
    endpoint_url: str = ""  # where boto3 sends its calls: the queue URL's scheme and host
    region: str = defaults.S3_REGION
    access_id: str = field(default="", repr=False)
    access_key: str = field(default="", repr=False)
    wait_s: int = defaults.SQS_WAIT_S
    chunk: int = defaults.SQS_CHUNK_MESSAGES

    def describe(self) -> str:
        return f"{self.url} region={self.region}"


@dataclass(frozen=True)
class KafkaSettings:
    """`[kafka]` as read: pushcap has no Kafka listener (module docstring)."""

    listen: bool = False
    servers: tuple[str, ...] = ()
    topic: str = ""
    where: str = ""  # `file: [kafka] listen (line n)`, for the refusal


def parse_sqs(section: dict, source: str) -> SqsSettings:
    sec = TomlSection(section, "sqs", SQS_KEYS, source)
    listen = sec.boolean("listen", False)
    access_id = sec.optional_text("accessid") or ""
    access_key = sec.optional_text("accesskey") or ""
    if bool(access_id) != bool(access_key):
        raise ConfigError(f"{source}: [sqs] accessid and accesskey go together: give both, or "
                          "neither (then boto3 takes AWS's own environment or instance role)")
    url = sec.optional_text("url") or ""
    if listen and not url:
        raise ConfigError(f"{source}: [sqs] listen = true needs the queue's url")
    parts = urlsplit(url) if url else None
    if parts is not None and (parts.scheme not in ("http", "https") or not parts.hostname
                              or parts.username or parts.password):
        raise ConfigError(f"{sec.where('url')}: must be the queue's http(s) URL "
                          "(https://sqs.<region>.amazonaws.com/<account>/<queue>)")
    endpoint = sec.optional_text("endpoint") or (f"{parts.scheme}://{parts.netloc}"
                                                  if parts is not None else "")
    if endpoint and urlsplit(endpoint).scheme not in ("http", "https"):
        raise ConfigError(f"{sec.where('endpoint')}: must be an http(s) URL")
    region = sec.text("region", defaults.S3_REGION)
    if not _REGION.fullmatch(region):
        raise ConfigError(f"{sec.where('region')}: {region!r} is not a region name "
                          "(e.g. us-east-1)")
    return SqsSettings(
        listen=listen, url=url, endpoint_url=endpoint, region=region, access_id=access_id,
        access_key=access_key,
        wait_s=sec.integer("waitseconds", defaults.SQS_WAIT_S, 0, 20),
        chunk=sec.integer("chunksize", defaults.SQS_CHUNK_MESSAGES, 1, 10))


def parse_kafka(section: dict, source: str) -> KafkaSettings:
    sec = TomlSection(section, "kafka", KAFKA_KEYS, source)
    servers = section.get("server", [])
    servers = [servers] if isinstance(servers, str) else servers
    if not isinstance(servers, list) or not all(isinstance(s, str) and s for s in servers):
        raise ConfigError(f"{sec.where('server')}: must be a list of host:port strings")
    return KafkaSettings(listen=sec.boolean("listen", False), servers=tuple(servers),
                         topic=sec.optional_text("topic") or "", where=sec.where("listen"))


def kafka_refusal(kafka: KafkaSettings | None) -> str | None:
    """The one-line reason `pushcap run` will not start with `[kafka] listen = true`."""
    if kafka is None or not kafka.listen:
        return None
    return (f"{kafka.where} = true: Kafka is not supported by pushcap (no Kafka listener is "
            "started); set listen = false or remove [kafka], and send requests through "
            "[redis] or [sqs]")
