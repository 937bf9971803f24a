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
import contextlib
import functools
import ipaddress
import os
import sys
import threading
import time
import urllib.parse
from typing import TYPE_CHECKING

from safepip._record import record
from safepip.errors import InsecureURLError, NetworkError
from safepip.index import wire

if TYPE_CHECKING:
    import ssl
    import zlib
    from collections.abc import Iterator

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


@functools.lru_cache(maxsize=64)
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


@record
class Response:
    url: str
    status: int
    headers: dict[str, str]
    body: bytes


class HttpClient:
    """A small, careful HTTP client with keep-alive connections shared by threads (one
    client per run)."""

    def __init__(
        self,
        *,
        trusted_hosts: tuple[str, ...] = (),
        cert: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        max_body: int = 64 * 1024 * 1024,
        offline: bool = False,
        proxies: Proxies | None = None,
    ) -> None:
        self.trusted_hosts = {h.split(":")[0].lower() for h in trusted_hosts}
        self.trusted_hostports = {h.lower() for h in trusted_hosts}
        self.cert = cert
        self.timeout = timeout
        self.retries = retries
        self.max_body = max_body
        self.offline = offline
        self.proxies = proxies or Proxies()
        self._conns: _Connections | None = None
        self._conns_lock = threading.Lock()

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

    def _connections(self) -> _Connections:
        with self._conns_lock:
            if self._conns is None:
                self._conns = _Connections(self.cert, connect_timeout=min(self.timeout, 15),
                                           read_timeout=self.timeout, proxies=self.proxies)
            return self._conns

    def close(self) -> None:
        """Close the connections kept for reuse (one still in use closes when released)."""
        with self._conns_lock:
            if self._conns is not None:
                self._conns.close()

    def _open(self, url: str, headers: dict[str, str]) -> _Exchange:
        """Open ``url`` with redirects followed under the rules above; body not read."""
        self.check_url(url)
        if self.offline:
            raise NetworkError(redact(url), "--offline: this is not in the cache",
                               hint="run once without --offline to fetch it")
        bare, auth = self._auth_headers(url)
        auth_origin = origin(bare) if auth else None
        current = bare
        conns = self._connections()
        for _hop in range(MAX_REDIRECTS + 1):
            hdrs = {"User-Agent": USER_AGENT, **headers}
            if auth and origin(current) == auth_origin:
                hdrs.update(auth)
            attempt = 0
            while True:
                try:
                    resp = conns.exchange(current, hdrs)
                except (OSError, wire.ProtocolError) as exc:
                    if attempt >= self.retries:
                        what = "cannot connect" if isinstance(exc, OSError) else "bad response"
                        raise NetworkError(redact(current), f"{what}: {_say(exc)}") from exc
                    attempt += 1
                    time.sleep(min(0.25 * 2**attempt, 4))
                    continue
                if (resp.status >= 500 or resp.status == 429) and attempt < self.retries:
                    resp.discard()
                    attempt += 1
                    time.sleep(min(0.25 * 2**attempt, 4))
                    continue
                break
            if resp.status in (301, 302, 303, 307, 308):
                location = resp.headers.get("location")
                resp.discard()
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
            resp.url = current
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
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise NetworkError(redact(url), f"response too large ({declared} bytes)")
            decoder = _decoder(url, resp.headers.get("content-encoding", ""))
            chunks: list[bytes] = []
            total = 0
            for chunk in resp.chunks():
                if decoder is not None:
                    chunk = decoder.decompress(chunk, limit + 1 - total)
                    if decoder.unconsumed_tail:
                        raise NetworkError(redact(url),
                                           f"response larger than {limit} bytes")
                total += len(chunk)
                if total > limit:
                    raise NetworkError(redact(url), f"response larger than {limit} bytes")
                chunks.append(chunk)
        finally:
            resp.release()
        return Response(url=resp.url, status=resp.status, headers=resp.headers,
                        body=b"".join(chunks))

    def stream(self, url: str, headers: dict[str, str] | None = None) -> Streamed:
        """Open ``url`` for streaming; the caller iterates and closes."""
        if url.startswith("file:"):
            r = self._get_file(url)
            return Streamed(url, r.status, r.headers, None, r.body)
        resp = self._open(url, headers or {})
        return Streamed(resp.url, resp.status, resp.headers, resp, None)

    @staticmethod
    def _get_file(url: str) -> Response:
        path = file_url_to_path(url)
        # what is decided by looking, said to a lock's memo (lock.memo: it sees reads)
        sys.audit("safepip.stat", path)
        try:
            if os.path.isdir(path):
                idx = os.path.join(path, "index.html")
                sys.audit("safepip.stat", idx)
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
                 raw: _Exchange | None, body: bytes | None) -> None:
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
        yield from self._raw.chunks()

    def close(self) -> None:
        if self._raw is not None:
            self._raw.release()


def file_url_to_path(url: str) -> str:
    from urllib.request import url2pathname

    return url2pathname(urllib.parse.urlsplit(url).path)


# -- connections --------------------------------------------------------------------------

Origin = tuple[str, str, int]
# what may appear in a request target as it is (RFC 3986 pchar, "/" and "%" of an escape)
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"


def _say(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class _Connections:
    """Open connections by origin: an exchange takes an idle one (or opens one), and
    gives it back once its response was read to the end and the server keeps it open.
    HTTP/1.1 keep-alive (``wire``); TLS with the system's trust store (truststore), plus
    ``--cert``; every connection has the connect and read timeouts."""

    MAX_IDLE = 16

    def __init__(self, cert: str | None, *, connect_timeout: float,
                 read_timeout: float, proxies: Proxies | None = None) -> None:
        self.cert = cert
        self.proxies = proxies or Proxies()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: dict[Origin, list[wire.Connection]] = {}
        self._lock = threading.Lock()
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    def _context(self) -> ssl.SSLContext:
        with self._lock:
            if self._ssl is None:
                import ssl

                import truststore

                ctx = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                if self.cert and os.path.exists(self.cert):
                    ctx.load_verify_locations(cafile=self.cert)
                self._ssl = ctx
            return self._ssl

    def _new(self, key: Origin) -> wire.Connection:
        scheme, host, port = key
        return wire.Connection(host, port,
                               tls=self._context() if scheme == "https" else None,
                               connect_timeout=self.connect_timeout,
                               read_timeout=self.read_timeout,
                               proxy=self.proxies.for_origin(scheme, host, port))

    def _take(self, key: Origin) -> wire.Connection | None:
        """An idle connection to ``key`` that the server has not closed meanwhile."""
        import select

        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                conn = idle.pop()
            try:  # readable while idle: closed by the server (or junk): not reusable
                dropped = bool(select.select([conn], [], [], 0)[0])
            except (OSError, ValueError):
                dropped = True
            if not dropped:
                return conn
            conn.close()

    def give(self, key: Origin, conn: wire.Connection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.MAX_IDLE and not self._closed:
                idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle = [c for conns in self._idle.values() for c in conns]
            self._idle.clear()
        for conn in idle:
            conn.close()

    def exchange(self, url: str, headers: dict[str, str]) -> _Exchange:
        """Send a GET for ``url`` and read the response's head."""
        p = urllib.parse.urlsplit(url)
        scheme = p.scheme
        port = p.port or (443 if scheme == "https" else 80)
        key = (scheme, (p.hostname or "").lower(), port)
        target = urllib.parse.quote(p.path or "/", safe=_PATH_SAFE)
        if p.query:
            target += "?" + urllib.parse.quote(p.query, safe=_PATH_SAFE + "?")
        conn = self._take(key)
        reused = conn is not None
        while True:
            if conn is None:
                conn = self._new(key)
            try:
                resp = conn.get(target, headers)
            except (OSError, wire.ProtocolError) as exc:
                conn.close()
                # a kept-alive connection the server closed just as it was reused: once
                # more on a new one (nothing was answered, a GET can be sent again)
                if reused and isinstance(exc, (ConnectionError, wire.ConnectionClosed)):
                    conn, reused = None, False
                    continue
                raise
            return _Exchange(self, key, resp)


class _Exchange:
    """One response: its status and head, its body read by ``chunks()``; ``release()``
    keeps the connection for another request when that is safe, else closes it."""

    def __init__(self, owner: _Connections, key: Origin, resp: wire.Response) -> None:
        self.owner = owner
        self.key = key
        self.resp = resp
        self.url = ""
        self.status = resp.status
        self.headers = resp.headers
        self._released = False

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        resp = self.resp
        try:
            while chunk := resp.read(size):
                yield chunk
        except (OSError, wire.ProtocolError) as exc:
            raise NetworkError(redact(self.url), f"connection broken: {_say(exc)}") from exc

    def discard(self) -> None:
        """Skip a small body (a redirect's, an error's) to keep the connection."""
        resp, budget = self.resp, 65536
        with contextlib.suppress(OSError, wire.ProtocolError):
            while not resp.will_close and not resp.done and budget > 0:
                budget -= len(resp.read(budget)) or budget
        self.release()

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        if self.resp.done and not self.resp.will_close:
            self.owner.give(self.key, self.resp.conn)
        else:
            self.resp.conn.close()


class Proxies:
    """Which proxy, if any, each origin is reached through: ``--proxy`` (pip's: for http
    and https alike), else ``https_proxy`` / ``http_proxy`` / ``all_proxy`` (lower case
    first, as curl and Python read them), minus ``no_proxy`` (host names, domain
    suffixes, ``host:port``, IP networks, ``*``). Loopback addresses are never proxied.
    Only ``http://`` proxies: the tunnel to an https origin is TLS end to end."""

    def __init__(self, http: str | None = None, https: str | None = None,
                 no_proxy: str = "") -> None:
        self.urls = {"http": http, "https": https}
        self._proxies = {scheme: _proxy(url) for scheme, url in self.urls.items() if url}
        self.no_proxy = [e.strip().lower() for e in no_proxy.split(",") if e.strip()]

    @classmethod
    def from_environment(cls, flag: str | None = None,
                         environ: dict[str, str] | None = None) -> Proxies:
        env = dict(os.environ) if environ is None else environ

        def var(name: str) -> str | None:
            return env.get(name.lower()) or env.get(name.upper()) or None

        no_proxy = var("no_proxy") or ""
        if flag:
            return cls(flag, flag, no_proxy)
        everything = var("all_proxy")
        return cls(var("http_proxy") or everything, var("https_proxy") or everything,
                   no_proxy)

    def for_origin(self, scheme: str, host: str, port: int) -> wire.Proxy | None:
        proxy = self._proxies.get(scheme)
        if proxy is None or _is_loopback(host) or self._bypassed(host, port):
            return None
        return proxy

    def _bypassed(self, host: str, port: int) -> bool:
        host = host.lower().strip("[]")
        for entry in self.no_proxy:
            if entry == "*":
                return True
            if "/" in entry:  # an IP network
                try:
                    if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                        return True
                except ValueError:
                    pass
                continue
            name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 \
                else (entry, "", "")
            if entry_port and entry_port != str(port):
                continue
            name = name.strip("[]").lstrip(".")
            if host == name or host.endswith("." + name):
                return True
        return False


def _proxy(url: str) -> wire.Proxy:
    """A proxy URL (``http://[user:password@]host[:port]``; pip's ``host:port`` too)."""
    if "://" not in url:
        url = "http://" + url
    p = urllib.parse.urlsplit(url)
    if p.scheme != "http" or not p.hostname:
        raise InsecureURLError(redact(url), "safepip can use only an http:// proxy (the "
                               "tunnel to an https index is TLS end to end through it)",
                               hint="give the proxy as http://[user:password@]host:port")
    authorization = None
    if p.username is not None or p.password is not None:
        pair = f"{urllib.parse.unquote(p.username or '')}:" \
               f"{urllib.parse.unquote(p.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode()
    return wire.Proxy(p.hostname, p.port or 80, authorization)


def _decoder(url: str, encoding: str) -> zlib._Decompress | None:
    """A decoder for a body the server compressed although it was not asked to."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    import zlib

    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise NetworkError(redact(url), f"the server sent an unsupported Content-Encoding "
                       f"{encoding!r} (safepip asks for none)")
