"""The HTTP client's own behaviour, byte for byte: keep-alive, connections the server
closed, chunked and truncated bodies, bodies compressed without being asked, retries, and
the framing rules of HTTP/1.1 (safepip reads responses itself: safepip/index/wire.py)."""

from __future__ import annotations

import contextlib
import gzip
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from safepip.errors import InsecureURLError, NetworkError
from safepip.index.http import HttpClient, Proxies

# what the scripted server does with one request: the bytes to answer and whether to
# close the connection afterwards (None: close without answering)
Script = Callable[[bytes, int], tuple[bytes | None, bool]]


class RawServer:
    """A server answering each request with the script's bytes, counting connections."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.connections = 0
        self.requests: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(ConnectionError):  # a client closing as it likes
            self._exchange(conn)

    def _exchange(self, conn: socket.socket) -> None:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            self.requests.append(head)
            answer, close = self.script(head, len(self.requests))
            if answer is None:
                return
            conn.sendall(answer)
            if close:
                return

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Script], RawServer]]:
    servers: list[RawServer] = []

    def start(script: Script) -> RawServer:
        servers.append(RawServer(script))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def ok(body: bytes, *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def test_keep_alive_reuses_one_connection(serve: Callable[[Script], RawServer]) -> None:
    srv = serve(lambda head, n: (ok(b"page %d" % n), False))
    http = HttpClient()
    assert [http.get(f"{srv.url}/simple/p{i}/").body for i in range(1, 4)] == [
        b"page 1", b"page 2", b"page 3"]
    assert srv.connections == 1
    assert srv.requests[0].startswith(b"GET /simple/p1/ HTTP/1.1\r\n")
    assert b"User-Agent: safepip" in srv.requests[0]


def test_idle_connection_closed_by_the_server(serve: Callable[[Script], RawServer]) -> None:
    # the server answers and then closes although it said nothing of closing
    srv = serve(lambda head, n: (ok(b"x%d" % n), True))
    http = HttpClient()
    assert http.get(srv.url + "/a").body == b"x1"
    import time

    time.sleep(0.05)  # the close reaches the client: seen before the connection is reused
    assert http.get(srv.url + "/b").body == b"x2"
    assert srv.connections == 2


def test_connection_closed_as_it_is_reused(serve: Callable[[Script], RawServer]) -> None:
    # the second request on a kept-alive connection is read and dropped unanswered (the
    # server's idle timeout firing just then): sent again on a new connection, no retry
    # delay, no error
    srv = serve(lambda head, n: (None, True) if n == 2 else (ok(b"y%d" % n), False))
    http = HttpClient(retries=0)
    assert http.get(srv.url + "/a").body == b"y1"
    assert http.get(srv.url + "/b").body == b"y3"
    assert srv.connections == 2


def test_a_new_connection_that_answers_nothing_is_an_error(
        serve: Callable[[Script], RawServer]) -> None:
    srv = serve(lambda head, n: (None, True))
    with pytest.raises(NetworkError, match="closed the connection without answering"):
        HttpClient(retries=1).get(srv.url + "/a")
    assert srv.connections == 2  # one attempt, one retry


@pytest.mark.parametrize(("chunks", "body"), [
    (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
    # a chunk extension, and a trailer field after the last chunk
    (b"3;name=value\r\nabc\r\n0\r\nX-Trailer: yes\r\n\r\n", b"abc"),
])
def test_chunked_body(serve: Callable[[Script], RawServer], chunks: bytes,
                      body: bytes) -> None:
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    srv = serve(lambda head, n: (answer, False))
    http = HttpClient()
    assert http.get(srv.url + "/c").body == body
    assert http.get(srv.url + "/c").body == body  # read to its end: the connection is reused
    assert srv.connections == 1


def test_truncated_chunked_body(serve: Callable[[Script], RawServer]) -> None:
    body = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"
    srv = serve(lambda head, n: (body, True))
    with pytest.raises(NetworkError, match="connection broken"):
        HttpClient().get(srv.url + "/c")


def test_body_shorter_than_its_content_length(serve: Callable[[Script], RawServer]) -> None:
    srv = serve(lambda head, n: (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcd", True))
    with pytest.raises(NetworkError, match="6 bytes missing"):
        HttpClient().get(srv.url + "/t")
    resp = HttpClient().stream(srv.url + "/t")
    with pytest.raises(NetworkError, match="6 bytes missing"):
        b"".join(resp.iter_chunks())
    resp.close()


def test_unrequested_gzip_is_decoded_and_bounded(serve: Callable[[Script], RawServer]) -> None:
    small = gzip.compress(b"<html>page</html>")
    bomb = gzip.compress(b"\0" * 10_000_000)
    srv = serve(lambda head, n: (ok(bomb if b"/bomb" in head else small,
                                    "Content-Encoding: gzip"), False))
    http = HttpClient()
    assert http.get(srv.url + "/p").body == b"<html>page</html>"
    assert b"Accept-Encoding: identity" in srv.requests[0]
    with pytest.raises(NetworkError, match="larger than 1000000 bytes"):
        http.get(srv.url + "/bomb", max_body=1_000_000)


def test_unknown_content_encoding_is_named(serve: Callable[[Script], RawServer]) -> None:
    srv = serve(lambda head, n: (ok(b"??", "Content-Encoding: br"), False))
    with pytest.raises(NetworkError, match="unsupported Content-Encoding 'br'"):
        HttpClient().get(srv.url + "/p")


def test_server_errors_are_retried(serve: Callable[[Script], RawServer]) -> None:
    busy = b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy"
    srv = serve(lambda head, n: (busy if n == 1 else ok(b"fine"), False))
    resp = HttpClient().get(srv.url + "/p")
    assert (resp.status, resp.body) == (200, b"fine")
    assert srv.connections == 1  # the error's body was read: the connection was kept


def test_request_target_is_quoted(serve: Callable[[Script], RawServer]) -> None:
    srv = serve(lambda head, n: (ok(b""), False))
    HttpClient().get(srv.url + "/simple/caf\u00e9 x/?a=1 2#frag")
    assert srv.requests[0].startswith(b"GET /simple/caf%C3%A9%20x/?a=1%202 HTTP/1.1\r\n")


def test_unreachable_port_cannot_connect() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(NetworkError, match="cannot connect"):
        HttpClient(retries=0).get(f"http://127.0.0.1:{port}/a")


def test_informational_responses_are_skipped(serve: Callable[[Script], RawServer]) -> None:
    srv = serve(lambda head, n: (b"HTTP/1.1 100 Continue\r\n\r\n"
                                 b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
                                 + ok(b"body"), False))
    resp = HttpClient().get(srv.url + "/p")
    assert (resp.status, resp.body) == (200, b"body")


def test_body_until_the_connection_ends(serve: Callable[[Script], RawServer]) -> None:
    # HTTP/1.0, no Content-Length: the body is what comes before the close
    srv = serve(lambda head, n: (b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n"
                                 b"all of it %d" % n, True))
    http = HttpClient()
    assert http.get(srv.url + "/a").body == b"all of it 1"
    assert http.get(srv.url + "/b").body == b"all of it 2"
    assert srv.connections == 2


@pytest.mark.parametrize(("extra", "reused"), [
    ("Connection: close", False), ("Connection: keep-alive", True), ("", True)])
def test_connection_close_is_honoured(serve: Callable[[Script], RawServer], extra: str,
                                      reused: bool) -> None:
    srv = serve(lambda head, n: (ok(b"x", *([extra] if extra else [])), False))
    http = HttpClient()
    http.get(srv.url + "/a")
    http.get(srv.url + "/b")
    assert srv.connections == (1 if reused else 2)


@pytest.mark.parametrize("status", [b"204 No Content", b"304 Not Modified"])
def test_responses_without_a_body(serve: Callable[[Script], RawServer], status: bytes) -> None:
    srv = serve(lambda head, n: (b"HTTP/1.1 " + status + b"\r\n\r\n" if n == 1 else ok(b"next"),
                                 False))
    http = HttpClient()
    assert http.get(srv.url + "/a").body == b""
    assert http.get(srv.url + "/b").body == b"next"  # the same connection, in step
    assert srv.connections == 1


def test_header_fields(serve: Callable[[Script], RawServer]) -> None:
    srv = serve(lambda head, n: (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Folded: one\r\n"
                                 b"  two\r\nX-Twice: a\r\nx-twice: b\r\nETag: \"\xe9\"\r\n\r\nok",
                                 False))
    headers = HttpClient().get(srv.url + "/h").headers
    assert headers["x-folded"] == "one two"
    assert headers["x-twice"] == "a, b"
    assert headers["etag"] == '"\u00e9"'  # Latin-1, as http.client reads it


def test_chunked_and_content_length_closes(serve: Callable[[Script], RawServer]) -> None:
    body = (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\nhi\r\n0\r\n\r\n")
    srv = serve(lambda head, n: (body, False))
    http = HttpClient()
    assert http.get(srv.url + "/c").body == b"hi"  # the chunks frame it, not the length
    assert http.get(srv.url + "/c").body == b"hi"
    assert srv.connections == 2  # and the connection is not trusted again


@pytest.mark.parametrize(("answer", "message"), [
    (b"ICY 200 OK\r\n\r\n", "not an HTTP/1.1 status line"),
    (b"HTTP/1.1 2000 OK\r\n\r\n", "not an HTTP/1.1 status line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
     "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
     "unsupported Transfer-Encoding"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd", "chunk not followed"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "not a header line"),
    (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", "more than 100 header fields"),
    (b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70000 + b"\r\n\r\n", "longer than 65536 bytes"),
    (b"HTTP/1.1 200 OK\r\nContent-Le", "ended in a header line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n", "ended in a response's head"),
    (b"HTTP/1.1 2", "ended in a status line"),
])
def test_malformed_responses_are_errors(serve: Callable[[Script], RawServer], answer: bytes,
                                        message: str) -> None:
    srv = serve(lambda head, n: (answer, True))
    with pytest.raises(NetworkError, match=message):
        HttpClient(retries=0).get(srv.url + "/bad")


# -- proxies ---------------------------------------------------------------------------

def test_plain_http_through_a_proxy(serve: Callable[[Script], RawServer]) -> None:
    """The proxy is asked for the absolute URL, with its credentials; the origin's name
    is never resolved here."""
    proxy = serve(lambda head, n: (ok(b"via proxy"), False))
    http = HttpClient(trusted_hosts=("pkgs.example.invalid",), proxies=Proxies(
        http=f"http://user:pa%40ss@127.0.0.1:{proxy.sock.getsockname()[1]}"))
    assert http.get("http://pkgs.example.invalid/simple/a/").body == b"via proxy"
    assert http.get("http://pkgs.example.invalid/simple/b/").body == b"via proxy"
    first = proxy.requests[0].decode()
    assert first.startswith("GET http://pkgs.example.invalid/simple/a/ HTTP/1.1\r\n")
    assert "Host: pkgs.example.invalid\r\n" in first
    assert "Proxy-Authorization: Basic dXNlcjpwYUBzcw==" in first  # user:pa@ss
    assert proxy.connections == 1  # kept alive like any connection


def test_a_proxy_that_refuses_the_tunnel(serve: Callable[[Script], RawServer]) -> None:
    proxy = serve(lambda head, n: (b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                                   b"Content-Length: 0\r\n\r\n", True))
    http = HttpClient(retries=0, proxies=Proxies(
        https=f"http://127.0.0.1:{proxy.sock.getsockname()[1]}"))
    with pytest.raises(NetworkError, match=re.escape(
            "answered HTTP 407 to CONNECT pypi.example.invalid:443 (Proxy Authentication")):
        http.get("https://pypi.example.invalid/simple/")
    assert proxy.requests[0].startswith(b"CONNECT pypi.example.invalid:443 HTTP/1.1\r\n")


def test_an_unreachable_proxy_is_named() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    http = HttpClient(retries=0, proxies=Proxies(https=f"http://127.0.0.1:{port}"))
    with pytest.raises(NetworkError, match=f"cannot connect: the proxy 127.0.0.1:{port}: "):
        http.get("https://pypi.example.invalid/simple/")


def test_https_through_a_connect_tunnel(tmp_path: Path) -> None:
    """TLS runs end to end through the tunnel: the certificate is checked for the
    origin's name (here against a CA given with --cert), the proxy sees only CONNECT."""
    ca_file, server_ctx = _tls_origin(tmp_path, "pypi.example.invalid")
    origin = socket.socket()
    origin.bind(("127.0.0.1", 0))
    origin.listen(4)
    seen: list[bytes] = []

    def serve_origin() -> None:
        conn, _ = origin.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            head = b""
            while b"\r\n\r\n" not in head:
                head += tls.recv(4096)
            seen.append(head)
            tls.sendall(ok(b"over tls"))

    proxy = socket.socket()
    proxy.bind(("127.0.0.1", 0))
    proxy.listen(4)
    connects: list[bytes] = []

    def serve_proxy() -> None:
        client, _ = proxy.accept()
        head = b""
        while b"\r\n\r\n" not in head:
            head += client.recv(4096)
        connects.append(head)
        upstream = socket.create_connection(origin.getsockname())
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        _relay(client, upstream)

    for target in (serve_origin, serve_proxy):
        threading.Thread(target=target, daemon=True).start()
    http = HttpClient(cert=str(ca_file), proxies=Proxies(
        https=f"http://127.0.0.1:{proxy.getsockname()[1]}"))
    try:
        assert http.get("https://pypi.example.invalid/simple/").body == b"over tls"
    finally:
        http.close()
        origin.close()
        proxy.close()
    assert connects[0].startswith(b"CONNECT pypi.example.invalid:443 HTTP/1.1\r\n")
    assert seen[0].startswith(b"GET /simple/ HTTP/1.1\r\nHost: pypi.example.invalid\r\n")


def _relay(a: socket.socket, b: socket.socket) -> None:
    def pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    threading.Thread(target=pump, args=(b, a), daemon=True).start()
    pump(a, b)


def _tls_origin(tmp_path: Path, name: str) -> tuple[Path, ssl.SSLContext]:
    """A CA (its certificate written to a file) and a server context for ``name``."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "safepip test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain = tmp_path / "server.pem"
    chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(chain)
    return ca_file, ctx


@pytest.mark.parametrize(("no_proxy", "host", "port", "proxied"), [
    ("", "pypi.org", 443, True),
    ("pypi.org", "pypi.org", 443, False),
    ("pypi.org", "files.pypi.org", 443, False),  # a domain covers its subdomains
    (".pypi.org", "files.pypi.org", 443, False),
    ("pypi.org", "notpypi.org", 443, True),
    ("pypi.org:8443", "pypi.org", 443, True),  # another port
    ("pypi.org:443", "pypi.org", 443, False),
    ("10.0.0.0/8", "10.1.2.3", 443, False),
    ("10.0.0.0/8", "11.1.2.3", 443, True),
    ("*", "pypi.org", 443, False),
    (" example.com , PyPI.org ", "pypi.org", 443, False),
    ("", "127.0.0.1", 8080, False),  # loopback: never through a proxy
    ("", "localhost", 8080, False),
])
def test_which_origins_go_through_the_proxy(no_proxy: str, host: str, port: int,
                                            proxied: bool) -> None:
    proxies = Proxies("http://proxy.example:3128", "http://proxy.example:3128", no_proxy)
    assert (proxies.for_origin("https", host, port) is not None) is proxied


def test_proxy_settings_from_the_environment() -> None:
    env = {"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2",
           "http_proxy": "proxy.example:3", "NO_PROXY": "internal.example"}
    p = Proxies.from_environment(environ=env)
    assert p.urls == {"http": "proxy.example:3", "https": "http://lower:2"}
    https = p.for_origin("https", "pypi.org", 443)
    assert https is not None and (https.host, https.port) == ("lower", 2)
    assert p.for_origin("https", "pkgs.internal.example", 443) is None
    # --proxy (pip's) is for both schemes; no_proxy still applies
    p = Proxies.from_environment("http://flag:4", env)
    assert p.urls == {"http": "http://flag:4", "https": "http://flag:4"}
    assert Proxies.from_environment(environ={"ALL_PROXY": "http://all:5"}).urls == {
        "http": "http://all:5", "https": "http://all:5"}
    assert Proxies.from_environment(environ={}).for_origin("https", "pypi.org", 443) is None
    with pytest.raises(InsecureURLError, match="only an http:// proxy"):
        Proxies(https="socks5://proxy.example:1080")
