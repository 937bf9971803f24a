"""HTTP/1.1 on the wire, for GET only: a request out, a response's head and body in.

What ``HttpClient`` needs and no more: keep-alive connections (RFC 9112 §9), bodies framed
by ``Content-Length``, ``Transfer-Encoding: chunked`` or the end of the connection
(§6.3), 1xx responses skipped, and limits on what a server can make it hold (a line,
the number of header fields). It is strict where a lenient reading could split one
response into two or run two into one: conflicting ``Content-Length`` values, transfer
codings it did not ask for, malformed chunk sizes and header lines are errors.

Written here rather than taken from http.client, which parses every response's head
with the email package: importing and running that was ~7% of a cold ``safepip lock``.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl
    from io import BufferedReader

MAX_LINE = 65536  # a status line, a header line or a chunk-size line
MAX_HEADERS = 100
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                   b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_HEX = frozenset(b"0123456789abcdefABCDEF")


class ProtocolError(Exception):
    """The server's bytes are not an HTTP/1.1 response safepip accepts."""


class ConnectionClosed(ProtocolError):
    """The connection ended before a response began (a kept-alive connection the server
    closed: a GET may be sent again on a new one)."""


class Proxy:
    """An HTTP proxy (``http://[user:password@]host:port``): https origins are reached
    through a CONNECT tunnel (TLS end to end, the proxy sees only the host name), plain
    http ones by asking the proxy for the absolute URL."""

    def __init__(self, host: str, port: int, authorization: str | None = None) -> None:
        self.host = host
        self.port = port
        self.authorization = authorization  # a Proxy-Authorization value, or None


class Connection:
    """One connection to one origin (directly or through a proxy); one request at a
    time."""

    def __init__(self, host: str, port: int, *, tls: ssl.SSLContext | None,
                 connect_timeout: float, read_timeout: float,
                 proxy: Proxy | None = None) -> None:
        self.host = host
        self.port = port
        default = 443 if tls is not None else 80
        name = f"[{host}]" if ":" in host else host
        self.host_header = name if port == default else f"{name}:{port}"
        to_host, to_port = (proxy.host, proxy.port) if proxy is not None else (host, port)
        # an ASCII name given as bytes: getaddrinfo() would otherwise load the IDNA codec
        # (stringprep, unicodedata) for every first connection, for nothing
        address = to_host.encode("ascii") if to_host.isascii() else to_host
        try:
            sock = socket.create_connection((address, to_port),  # type: ignore[arg-type]
                                            timeout=connect_timeout)
        except OSError as exc:
            if proxy is None:
                raise
            raise ConnectionError(f"the proxy {to_host}:{to_port}: {exc}") from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if proxy is not None and tls is not None:
                _tunnel(sock, f"{name}:{port}", proxy)
            if tls is not None:
                sock = tls.wrap_socket(sock, server_hostname=host)
            sock.settimeout(read_timeout)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.rfile: BufferedReader = sock.makefile("rb")
        # plain http through a proxy: the request names the whole URL, and the proxy's
        # credentials go with every request (to the proxy, which does not forward them)
        self.via = proxy if proxy is not None and tls is None else None

    def get(self, target: str, headers: dict[str, str]) -> Response:
        """Send ``GET target`` and read the response's head (its body is read from the
        returned response)."""
        if self.via is not None:
            target = f"http://{self.host_header}{target}"
        lines = [f"GET {target} HTTP/1.1", f"Host: {self.host_header}"]
        if self.via is not None and self.via.authorization:
            lines.append(f"Proxy-Authorization: {self.via.authorization}")
        names = {k.lower() for k in headers}
        if "accept-encoding" not in names:
            lines.append("Accept-Encoding: identity")
        for k, v in headers.items():
            if any(c in k or c in v for c in "\r\n\0") or not k:
                raise ProtocolError(f"a request header cannot hold a line break: {k!r}")
            lines.append(f"{k}: {v}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        return self._response()

    def close(self) -> None:
        self.rfile.close()
        self.sock.close()

    def fileno(self) -> int:
        return self.sock.fileno()

    # -- the response's head -----------------------------------------------------------

    def _response(self) -> Response:
        status, headers, http10 = _read_head(self.rfile)
        return Response(self, status, headers, http10=http10)


def _tunnel(sock: socket.socket, hostport: str, proxy: Proxy) -> None:
    """Ask ``proxy`` (connected to by ``sock``) for a tunnel to ``hostport``."""
    lines = [f"CONNECT {hostport} HTTP/1.1", f"Host: {hostport}"]
    if proxy.authorization:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    # nothing follows the proxy's answer until the TLS handshake starts, so reading it
    # through a buffer of its own takes nothing from the tunnel
    with sock.makefile("rb") as rfile:
        status, _headers, _http10 = _read_head(rfile)
    if status != 200:
        what = " (Proxy Authentication Required: give the proxy's user and password in " \
               "its URL)" if status == 407 else ""
        raise ProtocolError(f"the proxy {proxy.host}:{proxy.port} answered HTTP {status} "
                            f"to CONNECT {hostport}{what}")


def _line(rfile: BufferedReader, what: str) -> bytes:
    line = rfile.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise ProtocolError(f"{what} longer than {MAX_LINE} bytes")
    if line and not line.endswith(b"\n"):
        raise ProtocolError(f"the connection ended in a {what}")
    return line


def _read_head(rfile: BufferedReader) -> tuple[int, dict[str, str], bool]:
    """A response's status, header fields and whether it is HTTP/1.0 (1xx skipped)."""
    first = True
    while True:
        line = _line(rfile, "status line")
        if not line:
            if first:
                raise ConnectionClosed("the server closed the connection without answering")
            raise ProtocolError("the connection ended in a response's head")
        first = False
        version, _, rest = line.rstrip(b"\r\n").partition(b" ")
        code = rest[:3]
        if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 \
                or not code.isdigit() or rest[3:4] not in (b"", b" "):
            raise ProtocolError(f"not an HTTP/1.1 status line: {line[:80]!r}")
        status = int(code)
        headers = _read_fields(rfile)
        if 100 <= status < 200:  # informational (100 Continue, 103 Early Hints)
            continue
        return status, headers, version == b"HTTP/1.0"


def _read_fields(rfile: BufferedReader) -> dict[str, str]:
    fields: list[list[str]] = []
    while True:
        line = _line(rfile, "header line")
        if not line:
            raise ProtocolError("the connection ended in a response's head")
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t"):  # obsolete line folding: part of the one before
            if not fields:
                raise ProtocolError(f"a continuation line first: {line[:80]!r}")
            fields[-1][1] += " " + line.strip().decode("latin-1")
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name or not set(name) <= _TOKEN:
            raise ProtocolError(f"not a header line: {line[:80]!r}")
        if len(fields) >= MAX_HEADERS:
            raise ProtocolError(f"more than {MAX_HEADERS} header fields")
        fields.append([name.decode("ascii").lower(), value.strip().decode("latin-1")])
    headers: dict[str, str] = {}
    for key, text in fields:  # repeated fields: one value, comma-separated
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


class Response:
    """A response whose head was read; ``read()`` its body to the end before the
    connection is used again."""

    def __init__(self, conn: Connection, status: int, headers: dict[str, str], *,
                 http10: bool) -> None:
        self.conn = conn
        self.status = status
        self.headers = headers
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        self.will_close = http10 or "close" in tokens
        self._chunked = False
        self._left: int | None = None  # body bytes (or this chunk's) still to read
        self.done = False
        te = headers.get("transfer-encoding")
        if status in (204, 304):
            self.done = True
        elif te is not None:
            if te.strip().lower() != "chunked":
                raise ProtocolError(f"unsupported Transfer-Encoding {te!r}")
            self._chunked = True
            # framing by chunks and a Content-Length as well: the connection is not reused
            self.will_close = self.will_close or "content-length" in headers
        elif "content-length" in headers:
            values = {v.strip() for v in headers["content-length"].split(",")}
            if len(values) != 1 or not next(iter(values)).isdigit():
                raise ProtocolError(f"bad Content-Length {headers['content-length']!r}")
            self._left = int(values.pop())
            self.done = self._left == 0
        else:  # the body ends when the connection does
            self.will_close = True

    @property
    def missing(self) -> int | None:
        """Bytes a Content-Length announced that have not been read yet."""
        return None if self._chunked else self._left

    def read(self, amt: int) -> bytes:
        """Up to ``amt`` bytes of the body; ``b""`` at its end."""
        if self.done:
            return b""
        if self._chunked:
            return self._read_chunked(amt)
        rfile = self.conn.rfile
        if self._left is None:
            data = rfile.read1(amt)
            if not data:
                self.done = True
            return data
        data = rfile.read1(min(amt, self._left))
        if not data:
            raise ProtocolError(f"the connection ended with {self._left} bytes missing")
        self._left -= len(data)
        self.done = self._left == 0
        return data

    def _read_chunked(self, amt: int) -> bytes:
        """Up to ``amt`` bytes of the current chunk (the next one when it is done)."""
        rfile = self.conn.rfile
        if not self._left:
            size = self._chunk_size()
            if size == 0:
                self._trailers()
                self.done = True
                return b""
            self._left = size
        data = rfile.read1(min(amt, self._left))
        if not data:
            raise ProtocolError("the connection ended inside a chunk")
        self._left -= len(data)
        if self._left == 0 and rfile.read(2) != b"\r\n":
            raise ProtocolError("a chunk not followed by CRLF")
        return data

    def _chunk_size(self) -> int:
        line = _line(self.conn.rfile, "chunk-size line")
        if not line:
            raise ProtocolError("the connection ended before a chunk")
        digits = line.split(b";", 1)[0].strip()
        if not digits or not set(digits) <= _HEX or len(digits) > 16:
            raise ProtocolError(f"bad chunk size {line[:40]!r}")
        return int(digits, 16)

    def _trailers(self) -> None:
        for _ in range(MAX_HEADERS + 1):
            line = _line(self.conn.rfile, "trailer line")
            if not line:
                raise ProtocolError("the connection ended in the trailers")
            if line in (b"\r\n", b"\n"):
                return
        raise ProtocolError(f"more than {MAX_HEADERS} trailer fields")
