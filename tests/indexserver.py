"""A local package index on 127.0.0.1 that can be told to misbehave.

Serves PEP 691 JSON and PEP 503 HTML (by the Accept header, or forced), files with
range support, PEP 658 ``.metadata`` sidecars, ``upload-time``, ``yanked`` and
``requires-python``; and, when told, other bytes than the listed hash, truncated bodies,
redirects, or a huge page.
"""

from __future__ import annotations

import hashlib
import html
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

from tests.factory import Built


@dataclass
class Entry:
    filename: str
    data: bytes
    metadata: bytes | None
    yanked: bool | str = False
    requires_python: str | None = None
    upload_time: str = "2024-01-01T00:00:00.000000Z"
    core_metadata: bool = True
    listed_sha256: str | None = None
    serve: bytes | None = None  # other bytes than listed
    truncate: bool = False
    sidecar: bytes | None = None  # other metadata than the wheel's
    disposition: str | None = None  # a Content-Disposition header to send with the file
    provenance: bytes | None = None  # PEP 740 provenance served for the file
    provenance_url: str | None = None  # where the page says it is (default: beside it)

    @property
    def sha256(self) -> str:
        return self.listed_sha256 or hashlib.sha256(self.data).hexdigest()


class _Server(ThreadingHTTPServer):
    # socketserver's listen backlog of 5 drops SYNs when a dozen connections open at
    # once, and each costs a 1 s retransmit
    request_queue_size = 256
    daemon_threads = True


@dataclass
class LocalIndex:
    host: str = "127.0.0.1"
    projects: dict[str, list[Entry]] = field(default_factory=dict)
    format: str = "auto"  # auto | json | html
    redirects: dict[str, str] = field(default_factory=dict)
    log: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    raw_pages: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    fail_next: dict[str, int] = field(default_factory=dict)  # path -> how many 503s
    # PEP 740 in the simple API: True lists each file's provenance URL (or null); False
    # lists nothing and serves /integrity/<project>/<version>/<file>/provenance instead
    pep740: bool = False
    page_headers: dict[str, str] = field(default_factory=dict)  # e.g. PyPI's max-age
    api_version: str = "1.1"  # the simple API's version (PEP 740 needs 1.3)
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/simple/"

    def add(self, built: Built, **kw: Any) -> Entry:
        if built.filename.endswith(".whl"):
            name = parse_wheel_filename(built.filename)[0]
        else:
            name = parse_sdist_filename(built.filename)[0]
        meta = built.metadata if built.filename.endswith(".whl") else None
        e = Entry(built.filename, built.data, meta, **kw)
        if not built.filename.endswith(".whl"):
            e.core_metadata = False
        self.projects.setdefault(canonicalize_name(name), []).append(e)
        return e

    def find(self, filename: str) -> Entry | None:
        for entries in self.projects.values():
            for e in entries:
                if e.filename == filename:
                    return e
        return None

    # -- serving ------------------------------------------------------------------------

    def page(self, project: str, as_json: bool) -> bytes:
        entries = self.projects.get(project, [])
        if as_json:
            files = []
            for e in entries:
                f: dict[str, Any] = {
                    "filename": e.filename,
                    "url": f"../../files/{e.filename}",
                    "hashes": {"sha256": e.sha256},
                    "requires-python": e.requires_python,
                    "yanked": e.yanked,
                    "upload-time": e.upload_time,
                    "size": len(e.data),
                }
                if e.core_metadata and e.metadata is not None:
                    md = e.sidecar if e.sidecar is not None else e.metadata
                    f["core-metadata"] = {"sha256": hashlib.sha256(md).hexdigest()}
                if self.pep740:
                    f["provenance"] = self.provenance_url(e)
                files.append(f)
            return json.dumps({"meta": {"api-version": self.api_version}, "name": project,
                               "files": files}).encode()
        rows = []
        for e in entries:
            attrs = ""
            if e.requires_python:
                attrs += f' data-requires-python="{html.escape(e.requires_python)}"'
            if e.yanked:
                reason = e.yanked if isinstance(e.yanked, str) else ""
                attrs += f' data-yanked="{html.escape(reason)}"'
            if e.core_metadata and e.metadata is not None:
                md = e.sidecar if e.sidecar is not None else e.metadata
                attrs += f' data-core-metadata="sha256={hashlib.sha256(md).hexdigest()}"'
            if self.pep740 and (prov := self.provenance_url(e)):
                attrs += f' data-provenance="{html.escape(prov)}"'
            rows.append(f'<a href="../../files/{e.filename}#sha256={e.sha256}"{attrs}>'
                        f"{e.filename}</a><br>")
        return ('<!DOCTYPE html><html><head><meta name="pypi:repository-version" '
                f'content="{self.api_version}"></head><body>' + "\n".join(rows) +
                "</body></html>").encode()

    def provenance_url(self, e: Entry) -> str | None:
        if e.provenance_url is not None:
            return e.provenance_url
        return f"{self.base}/files/{e.filename}.provenance" if e.provenance else None

    def start(self) -> LocalIndex:
        index = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, ctype: str = "text/html",
                      headers: dict[str, str] | None = None, length: int | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                index.log.append((path, dict(self.headers.items())))
                if index.fail_next.get(path, 0) > 0:
                    index.fail_next[path] -= 1
                    self._send(503, b"try again")
                    return
                if path in index.redirects:
                    self._send(302, b"", headers={"Location": index.redirects[path]})
                    return
                if path in index.raw_pages:
                    ctype, body = index.raw_pages[path]
                    self._send(200, body, ctype)
                    return
                parts = path.strip("/").split("/")
                if len(parts) == 2 and parts[0] == "simple":
                    project = canonicalize_name(parts[1])
                    if project not in index.projects:
                        self._send(404, b"not found")
                        return
                    accept = self.headers.get("Accept", "")
                    as_json = index.format == "json" or (
                        index.format == "auto" and "application/vnd.pypi.simple.v1+json" in accept)
                    ctype = "application/vnd.pypi.simple.v1+json" if as_json else "text/html"
                    self._send(200, index.page(project, as_json), ctype,
                               headers=index.page_headers)
                    return
                if len(parts) == 5 and parts[0] == "integrity" and parts[4] == "provenance":
                    e = index.find(parts[3])
                    if index.pep740 or e is None or e.provenance is None:
                        self._send(404, b"")
                        return
                    self._send(200, e.provenance, "application/json")
                    return
                if len(parts) == 2 and parts[0] == "files" and parts[1].endswith(
                        ".provenance"):
                    e = index.find(parts[1][: -len(".provenance")])
                    if e is None or e.provenance is None:
                        self._send(404, b"")
                        return
                    self._send(200, e.provenance, "application/json")
                    return
                if len(parts) == 2 and parts[0] == "files":
                    name = parts[1]
                    if name.endswith(".metadata"):
                        e = index.find(name[: -len(".metadata")])
                        if e is None or not e.core_metadata or e.metadata is None:
                            self._send(404, b"")
                            return
                        self._send(200, e.sidecar if e.sidecar is not None else e.metadata,
                                   "application/octet-stream")
                        return
                    e = index.find(name)
                    if e is None:
                        self._send(404, b"")
                        return
                    body = e.serve if e.serve is not None else e.data
                    rng = self.headers.get("Range")
                    if rng and rng.startswith("bytes=") and not e.truncate:
                        spec = rng[6:]
                        total = len(body)
                        if spec.startswith("-"):
                            start = max(0, total - int(spec[1:]))
                            end = total - 1
                        else:
                            a, _, b = spec.partition("-")
                            start, end = int(a), min(total - 1, int(b) if b else total - 1)
                        self._send(206, body[start:end + 1], "application/octet-stream",
                                   {"Content-Range": f"bytes {start}-{end}/{total}",
                                    "Accept-Ranges": "bytes"})
                        return
                    if e.truncate:
                        self._send(200, body[: len(body) // 2], "application/octet-stream",
                                   length=len(body))
                        self.close_connection = True
                        return
                    headers = {"Accept-Ranges": "bytes"}
                    if e.disposition:
                        headers["Content-Disposition"] = e.disposition
                    self._send(200, body, "application/octet-stream", headers)
                    return
                self._send(404, b"not found")

        self._server = _Server((self.host, 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def requests_for(self, prefix: str) -> list[str]:
        return [p for p, _h in self.log if p.startswith(prefix)]
