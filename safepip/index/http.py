"""HTTP for indexes and files: HTTPS only, checked redirects, retries, no leaked credentials.

Rules (threats.md rows 19-21):
- ``https:`` always; ``http:`` only for a host named with ``--trusted-host`` or a
  loopback address (as pip does); anything else is refused before connecting.
- Redirects are followed here, hop by hop, with the same rule; a redirect to ``file:``
  or any other scheme is refused, and credentials never follow a redirect to another
  origin.
- Connection errors, 5xx and 429 are retried with exponential backoff.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import time
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from safepip.errors import InsecureURLError, NetworkError

if TYPE_CHECKING:
    from collections.abc import Iterator

    import urllib3

USER_AGENT = "safepip"
MAX_REDIRECTS = 10
CHUNK = 256 * 1024


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    user = parts.username or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:****@{netloc}"))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def origin(url: str) -> tuple[str, str, int | None]:
    p = urllib.parse.urlsplit(url)
    port = p.port or (443 if p.scheme == "https" else 80 if p.scheme == "http" else None)
    return (p.scheme, (p.hostname or "").lower(), port)


@dataclass
class Response:
    url: str
    status: int
    headers: dict[str, str]
    body: bytes


class HttpClient:
    """A small, careful HTTP client over urllib3 (one pool per process, thread-safe)."""

    def __init__(
        self,
        *,
        trusted_hosts: tuple[str, ...] = (),
        cert: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        max_body: int = 64 * 1024 * 1024,
        offline: bool = False,
    ) -> None:
        self.trusted_hosts = {h.split(":")[0].lower() for h in trusted_hosts}
        self.trusted_hostports = {h.lower() for h in trusted_hosts}
        self.cert = cert
        self.timeout = timeout
        self.retries = retries
        self.max_body = max_body
        self.offline = offline
        self._pool: urllib3.PoolManager | None = None

    # -- policy ---------------------------------------------------------------------

    def check_url(self, url: str) -> None:
        """Refuse a URL safepip must not fetch."""
        p = urllib.parse.urlsplit(url)
        if p.scheme == "https":
            return
        if p.scheme == "http":
            host = (p.hostname or "").lower()
            hostport = f"{host}:{p.port}" if p.port else host
            if host in self.trusted_hosts or hostport in self.trusted_hostports:
                return
            if _is_loopback(host):
                return
            raise InsecureURLError(
                redact(url),
                "refusing plain http: the index and its files must be served over https",
                hint=f"--trusted-host {host} allows plain http for this host",
            )
        raise InsecureURLError(redact(url), f"refusing to fetch a {p.scheme or 'relative'}: URL")

    @property
    def pool(self) -> urllib3.PoolManager:
        if self._pool is None:
            import ssl

            import truststore
            import urllib3

            ctx = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            if self.cert and os.path.exists(self.cert):
                ctx.load_verify_locations(cafile=self.cert)
            self._pool = urllib3.PoolManager(
                num_pools=16, maxsize=16, ssl_context=ctx, retries=False,
                headers={"User-Agent": USER_AGENT},
            )
        return self._pool

    # -- requests -------------------------------------------------------------------

    @staticmethod
    def _auth_headers(url: str) -> tuple[str, dict[str, str]]:
        p = urllib.parse.urlsplit(url)
        if p.username is None and p.password is None:
            return url, {}
        user = urllib.parse.unquote(p.username or "")
        pw = urllib.parse.unquote(p.password or "")
        token = base64.b64encode(f"{user}:{pw}".encode()).decode()
        netloc = p.hostname or ""
        if p.port:
            netloc += f":{p.port}"
        return urllib.parse.urlunsplit(p._replace(netloc=netloc)), {
            "Authorization": f"Basic {token}"
        }

    def _open(self, url: str, headers: dict[str, str]) -> urllib3.BaseHTTPResponse:
        """Open ``url`` with redirects followed under the rules above; body not read."""
        import urllib3

        self.check_url(url)
        if self.offline:
            raise NetworkError(redact(url), "--offline: this is not in the cache",
                               hint="run once without --offline to fetch it")
        bare, auth = self._auth_headers(url)
        auth_origin = origin(bare) if auth else None
        current = bare
        for _hop in range(MAX_REDIRECTS + 1):
            hdrs = dict(headers)
            if auth and origin(current) == auth_origin:
                hdrs.update(auth)
            attempt = 0
            while True:
                try:
                    resp = self.pool.request(
                        "GET", current, headers=hdrs, preload_content=False, redirect=False,
                        timeout=urllib3.Timeout(connect=min(self.timeout, 15), read=self.timeout),
                    )
                except urllib3.exceptions.HTTPError as exc:
                    if attempt >= self.retries:
                        raise NetworkError(redact(current), f"cannot connect: {exc}") from exc
                    attempt += 1
                    time.sleep(min(0.25 * 2**attempt, 4))
                    continue
                if (resp.status >= 500 or resp.status == 429) and attempt < self.retries:
                    resp.drain_conn()
                    resp.release_conn()
                    attempt += 1
                    time.sleep(min(0.25 * 2**attempt, 4))
                    continue
                break
            if resp.status in (301, 302, 303, 307, 308):
                location = resp.headers.get("Location")
                resp.drain_conn()
                resp.release_conn()
                if not location:
                    raise NetworkError(redact(current), "redirect without a Location")
                nxt = urllib.parse.urljoin(current, location)
                try:
                    self.check_url(nxt)
                except InsecureURLError as exc:
                    raise InsecureURLError(
                        redact(current), f"refusing a redirect to {redact(nxt)}: {exc.message}"
                    ) from exc
                # credentials embedded in a redirect target are not honoured
                current, _ = self._auth_headers(nxt)
                continue
            resp.url_final = current  # type: ignore[attr-defined]
            return resp
        raise NetworkError(redact(url), f"more than {MAX_REDIRECTS} redirects")

    def get(self, url: str, headers: dict[str, str] | None = None,
            max_body: int | None = None) -> Response:
        """GET the whole body (bounded by ``max_body``)."""
        if url.startswith("file:"):
            return self._get_file(url)
        limit = max_body or self.max_body
        resp = self._open(url, headers or {})
        try:
            declared = resp.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise NetworkError(redact(url), f"response too large ({declared} bytes)")
            chunks: list[bytes] = []
            total = 0
            for chunk in resp.stream(CHUNK):
                total += len(chunk)
                if total > limit:
                    raise NetworkError(redact(url), f"response larger than {limit} bytes")
                chunks.append(chunk)
        except _read_errors() as exc:
            raise NetworkError(redact(url), f"connection broken: {exc}") from exc
        finally:
            resp.release_conn()
        return Response(
            url=resp.url_final,  # type: ignore[attr-defined]
            status=resp.status,
            headers={k.lower(): v for k, v in resp.headers.items()},
            body=b"".join(chunks),
        )

    def stream(self, url: str, headers: dict[str, str] | None = None) -> Streamed:
        """Open ``url`` for streaming; the caller iterates and closes."""
        if url.startswith("file:"):
            r = self._get_file(url)
            return Streamed(url, r.status, r.headers, None, r.body)
        resp = self._open(url, headers or {})
        return Streamed(
            resp.url_final,  # type: ignore[attr-defined]
            resp.status,
            {k.lower(): v for k, v in resp.headers.items()},
            resp,
            None,
        )

    @staticmethod
    def _get_file(url: str) -> Response:
        path = file_url_to_path(url)
        try:
            if os.path.isdir(path):
                idx = os.path.join(path, "index.html")
                if os.path.isfile(idx):
                    path = idx
                else:
                    return Response(url, 404, {}, b"")
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return Response(url, 404, {}, b"")
        except OSError as exc:
            raise NetworkError(url, f"cannot read: {exc}") from exc
        ctype = "text/html" if path.endswith(".html") else "application/octet-stream"
        return Response(url, 200, {"content-type": ctype}, data)


class Streamed:
    """A response being streamed (or a local file read at once)."""

    def __init__(self, url: str, status: int, headers: dict[str, str],
                 raw: urllib3.BaseHTTPResponse | None, body: bytes | None) -> None:
        self.url = url
        self.status = status
        self.headers = headers
        self._raw = raw
        self._body = body

    def iter_chunks(self) -> Iterator[bytes]:
        if self._body is not None:
            yield self._body
            return
        assert self._raw is not None
        try:
            yield from self._raw.stream(CHUNK, decode_content=False)
        except _read_errors() as exc:
            raise NetworkError(redact(self.url), f"connection broken: {exc}") from exc

    def close(self) -> None:
        if self._raw is not None:
            self._raw.release_conn()


def _read_errors() -> tuple[type[BaseException], ...]:
    import urllib3

    return (urllib3.exceptions.HTTPError, OSError)


def file_url_to_path(url: str) -> str:
    from urllib.request import url2pathname

    return url2pathname(urllib.parse.urlsplit(url).path)
