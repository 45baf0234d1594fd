#!/usr/bin/env python3
"""A small stand-in for CloudShark's upload API, for tests and for `make run` users.

Implements `POST /api/v1/<token>/upload` as CloudShark documents it: a wrong token answers 401,
a missing or non-capture `file` part 422, both with `{"status", "exceptions": [...]}`; success
answers 200 `{"id", "filename"}`. Each upload is stored as <dir>/<id>/<filename> with a
meta.json holding the tags. `fail_times` answers 500 that many times first (`-1`: forever), so
tests can drive the uploader's retries and fallback.

    python tools/cloudshark_receiver.py --port 0 --dir D --token T   # prints the port
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import uuid
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CAPTURE_MAGICS = {b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
                  b"\xa1\xb2\x3c\x4d", b"\x0a\x0d\x0d\x0a"}
MAX_UPLOAD_BYTES = 512 * 1024 * 1024
_PATH = re.compile(r"^/api/v1/([^/]+)/upload/?$")
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


class Receiver:
    """The server and what it received; usable as a context manager."""

    def __init__(self, folder: str | Path, token: str, port: int = 0, fail_times: int = 0,
                 host: str = "127.0.0.1") -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.token = token
        self.fail_times = fail_times  # -1: answer 500 forever
        self.requests = 0
        self.uploads: list[dict] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> Receiver:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="cloudshark-receiver")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    def _should_fail(self) -> bool:
        with self._lock:
            self.requests += 1
            if self.fail_times == 0:
                return False
            if self.fail_times > 0:
                self.fail_times -= 1
            return True

    def store(self, filename: str, data: bytes, fields: dict[str, str]) -> dict:
        capture_id = uuid.uuid4().hex[:12]
        name = _SAFE.sub("_", filename).lstrip(".") or "upload.pcap"
        where = self.folder / capture_id
        where.mkdir()
        (where / name).write_bytes(data)
        record = {"id": capture_id, "filename": name, "path": str(where / name),
                  "additional_tags": fields.get("additional_tags", ""),
                  "form_filename": fields.get("filename"), "bytes": len(data)}
        (where / "meta.json").write_text(json.dumps(record, indent=1))
        with self._lock:
            self.uploads.append(record)
        return record


def _handler(receiver: Receiver):
    class Handler(BaseHTTPRequestHandler):
        server_version = "cloudshark-receiver/1"

        def log_message(self, *_args) -> None:  # the token is in the path: never log it
            pass

        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, *exceptions: str) -> None:
            self._answer(status, {"status": status, "exceptions": list(exceptions)})

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            match = _PATH.match(self.path.split("?", 1)[0])
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if 0 < length <= MAX_UPLOAD_BYTES else b""
            if not match:
                return self._error(404, "Not found")
            if match.group(1) != receiver.token:
                return self._error(401, "API Token is invalid")
            if receiver._should_fail():
                return self._error(500, "Internal server error (simulated)")
            fields, files = parse_multipart(self.headers.get("Content-Type", ""), body)
            if "file" not in files:
                return self._error(422, "No file was uploaded (multipart part 'file')")
            filename, data = files["file"]
            if data[:4] not in CAPTURE_MAGICS:
                return self._error(422, "The file is not a capture file")
            record = receiver.store(fields.get("filename") or filename, data, fields)
            self._answer(200, {"id": record["id"], "filename": record["filename"]})

        def do_GET(self) -> None:  # noqa: N802
            self._error(404, "Not found")

    return Handler


def parse_multipart(content_type: str, body: bytes
                    ) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """multipart/form-data → (text fields, files as (filename, bytes)); stdlib email parser."""
    if not content_type.startswith("multipart/form-data"):
        return {}, {}
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            files[name] = (filename, payload)
        else:
            fields[name] = payload.decode("utf-8", "replace")
    return fields, files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--dir", required=True, help="folder to store uploads in")
    parser.add_argument("--token", required=True, help="the API token to accept")
    parser.add_argument("--fail", type=int, default=0, help="answer 500 this many times first")
    parser.add_argument("--fail-forever", action="store_true", help="always answer 500")
    args = parser.parse_args(argv)
    receiver = Receiver(args.dir, args.token, args.port, -1 if args.fail_forever else args.fail,
                        args.host)
    print(receiver.port, flush=True)
    try:
        receiver._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        receiver._server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
