"""`[s3]` of pcapdaemon.toml: where triggered captures are uploaded to S3, and how rclone is told.

pcapdaemon's keys (accessid, accesskey, endpoint, region, bucket, folder, upload, acl,
encryption) plus pushcap's `provider`, `retries`, `retrybackoff` and `timeout` (CloudShark's
retry policy and defaults, so both uploads behave alike). The upload itself goes through the
rclone binary (trigger/s3_upload.py) as an on-the-fly remote: this module builds that remote's
connection string, which holds no credential, and the environment that carries the keys
(`RCLONE_S3_ACCESS_KEY_ID`, `RCLONE_S3_SECRET_ACCESS_KEY`): a command line is visible to every
user in `ps`, a child's environment is not.

Every value that goes into the connection string is checked against a plain character set here,
so nothing in the file can add an rclone option of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pushcap import defaults
from pushcap.config.model import ConfigError
from pushcap.config.toml_section import TomlSection

S3_KEYS = {"accessid", "accesskey", "endpoint", "region", "bucket", "folder", "upload", "acl",
           "encryption", "provider", "retries", "retrybackoff", "timeout"}
# S3's canned ACLs (what pcapdaemon passed on as `ACL`); rclone's `acl` option takes the same.
CANNED_ACLS = {"private", "public-read", "public-read-write", "authenticated-read",
               "aws-exec-read", "bucket-owner-read", "bucket-owner-full-control"}
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_FOLDER_PART = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
_REGION = re.compile(r"[a-z0-9-]{1,64}")
_PROVIDER = re.compile(r"[A-Za-z0-9]{1,32}")
_HOST_PORT = re.compile(r"[A-Za-z0-9.-]{1,253}(?::\d{1,5})?|\[[0-9A-Fa-f:.]+\](?::\d{1,5})?")


@dataclass(frozen=True)
class S3Settings:
    """An S3 destination. The keys never appear in repr, logs or the rclone command line."""

    upload: bool = False
    endpoint_url: str = f"https://{defaults.S3_ENDPOINT}"  # scheme://host[:port]
    region: str = defaults.S3_REGION
    bucket: str = ""
    folder: str = ""  # "" or "a/b": objects are <bucket>/<folder>/<file>
    acl: str = defaults.S3_ACL
    encryption: bool = False  # server-side encryption AES256
    provider: str = "AWS"  # rclone's provider: AWS for amazonaws.com, else Other
    access_id: str = field(default="", repr=False)
    access_key: str = field(default="", repr=False)
    retries: int = defaults.CS_RETRIES
    retry_backoff_s: float = defaults.CS_RETRY_BACKOFF_S
    timeout_s: float = defaults.S3_TIMEOUT_S

    def key(self, filename: str) -> str:
        """The object key of a capture file."""
        return f"{self.folder}/{filename}" if self.folder else filename

    def remote(self, filename: str) -> str:
        """rclone's on-the-fly remote path of the object (no credential in it)."""
        options = [f"provider={self.provider}", f"endpoint='{self.endpoint_url}'",
                   f"region={self.region}", f"acl={self.acl}", "force_path_style=true"]
        if self.encryption:
            options.append("server_side_encryption=AES256")
        if not self.access_id:
            options.append("env_auth=true")  # AWS's own variables, profile or instance role
        return f":s3,{','.join(options)}:{self.bucket}/{self.key(filename)}"

    def environment(self) -> dict[str, str]:
        """What the rclone child gets on top of pushcap's environment: the credentials."""
        if not self.access_id:
            return {}
        return {"RCLONE_S3_ACCESS_KEY_ID": self.access_id,
                "RCLONE_S3_SECRET_ACCESS_KEY": self.access_key}

    def object_url(self, filename: str) -> str:
        """The object's path-style URL (pcapdaemon forced path style too)."""
        return f"{self.endpoint_url}/{self.bucket}/{self.key(filename)}"

    def describe(self) -> str:
        """For logs: where, never with what credentials."""
        return f"{self.endpoint_url}/{self.bucket}/{self.folder}"


def parse_s3(section: dict, source: str) -> S3Settings:
    """Validate `[s3]`; an absent section is an S3 destination that is off."""
    sec = TomlSection(section, "s3", S3_KEYS, source)
    endpoint_url = _endpoint(sec)
    access_id = sec.optional_text("accessid") or ""
    access_key = sec.optional_text("accesskey") or ""
    if bool(access_id) != bool(access_key):
        raise ConfigError(f"{source}: [s3] accessid and accesskey go together: give both, or "
                          "neither (then rclone takes AWS's own environment or instance role)")
    bucket = sec.text("bucket", "-") if "bucket" in section else ""
    upload = sec.boolean("upload", False)
    if bucket and not _BUCKET.fullmatch(bucket):
        raise ConfigError(f"{sec.where('bucket')}: {bucket!r} is not a bucket name "
                          "(letters, digits, '.', '_', '-')")
    if upload and not bucket:
        raise ConfigError(f"{source}: [s3] upload = true needs a bucket")
    region = sec.text("region", defaults.S3_REGION)
    if not _REGION.fullmatch(region):
        raise ConfigError(f"{sec.where('region')}: {region!r} is not a region name "
                          "(e.g. us-east-1)")
    acl = sec.text("acl", defaults.S3_ACL)
    if acl not in CANNED_ACLS:
        raise ConfigError(f"{sec.where('acl')}: {acl!r}: use one of S3's canned ACLs "
                          f"({', '.join(sorted(CANNED_ACLS))})")
    host = urlsplit(endpoint_url).hostname or ""
    provider = sec.text("provider", "AWS" if host.endswith("amazonaws.com") else "Other")
    if not _PROVIDER.fullmatch(provider):
        raise ConfigError(f"{sec.where('provider')}: {provider!r} is not an rclone S3 "
                          "provider name (e.g. AWS, Minio, Ceph, Other)")
    timeout_s = sec.seconds("timeout", defaults.S3_TIMEOUT_S, minimum_s=0.0) \
        or defaults.S3_TIMEOUT_S  # 0: unset, as CloudShark's
    return S3Settings(
        upload=upload, endpoint_url=endpoint_url, region=region, bucket=bucket,
        folder=_folder(sec), acl=acl, encryption=sec.boolean("encryption", False),
        provider=provider, access_id=access_id, access_key=access_key,
        retries=sec.integer("retries", defaults.CS_RETRIES, 0, 20),
        retry_backoff_s=sec.seconds("retrybackoff", defaults.CS_RETRY_BACKOFF_S, minimum_s=0.0),
        timeout_s=timeout_s)


def _endpoint(sec: TomlSection) -> str:
    """`s3.amazonaws.com` (pcapdaemon's form: https is meant) or `http(s)://host[:port]`."""
    value = sec.text("endpoint", defaults.S3_ENDPOINT)
    scheme, _, rest = value.partition("://") if "://" in value else ("https", "", value)
    rest = rest.rstrip("/")
    if scheme not in ("http", "https") or not _HOST_PORT.fullmatch(rest):
        raise ConfigError(f"{sec.where('endpoint')}: {value!r}: give a host name "
                          "(s3.amazonaws.com) or http(s)://host[:port], without a path")
    return f"{scheme}://{rest}"


def _folder(sec: TomlSection) -> str:
    value = sec.values.get("folder", "")
    parts = [p for p in value.split("/") if p] if isinstance(value, str) else None
    if parts is None or not all(_FOLDER_PART.fullmatch(p) for p in parts):
        raise ConfigError(f"{sec.where('folder')}: must be a folder path inside the bucket "
                          "(letters, digits, '.', '_', '-' and '/'; no '..')")
    return "/".join(parts)
