"""Core metadata for resolution without downloading whole wheels.

In order of cost:
1. the PEP 658/714 sidecar ``<url>.metadata`` the index declares (its hash checked);
2. when it declares none and the wheel is going to be installed anyway and is small:
   the whole wheel, verified and cached like any download (the install reuses it);
3. HTTP range requests into the wheel: the zip's central directory, then the METADATA
   member alone;
4. the sidecar nevertheless (some indexes serve it undeclared; after three 404s from an
   index that never served one we stop asking);
5. the whole wheel.

Whatever was used, the installer later compares it with the METADATA inside the wheel
it installs (threats.md row 9).
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from safepip.errors import MetadataError, NetworkError
from safepip.models import Metadata

if TYPE_CHECKING:
    import zipfile
    from collections.abc import Callable

    from safepip.fetch.cache import Cache
    from safepip.index.http import HttpClient
    from safepip.models import DistFile

MAX_METADATA = 16 * 1024 * 1024


# the fields resolution reads; the others (Description above all) are skipped
_SINGLE = ("name", "version", "requires-python")
_MULTIPLE = ("requires-dist", "provides-extra")
_FIELD = re.compile(r"^(name|version|requires-python|requires-dist|provides-extra):(.*)$",
                    re.MULTILINE | re.IGNORECASE)
_BLANK = re.compile(r"(?>\r\n|\r|\n)(?>\r\n|\r|\n)")  # atomic: CRLF is one line end
# a line that neither starts a field (printable ASCII but the colon, then a colon: the
# email package's rule) nor continues one
_NOT_FIELD = re.compile(r"^(?![!-9;-~]+:|[ \t])", re.MULTILINE)
_FOLD = re.compile(r"\n(?=[ \t])")


def read_headers(raw: bytes, where: str) -> dict[str, list[str]]:
    """The header fields of core metadata that resolution reads (lower-case names, each
    with its values in order). Core metadata is RFC 822 style: ``Name: value`` lines, a
    line starting with a space or tab continues the one before (unfolded, as RFC 5322
    says: the line break goes, the whitespace stays), and the first line that is not a
    header (normally an empty one) starts the body, the description, not read here.

    Read with a few regular expressions rather than the email package (as
    packaging.metadata does): the same answers for these fields (a test holds it to
    packaging's), at a fraction of the time and of the import cost, which every
    resolution pays for every distribution."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # what packaging.metadata falls back to as well
    blank = _BLANK.search(text)  # the body, often most of the bytes, is not read
    head = (text[:blank.start()] if blank else text).replace("\r\n", "\n").replace("\r", "\n")
    if head[:1] in (" ", "\t"):
        return {}  # a continuation of nothing: no headers at all
    stop = _NOT_FIELD.search(head)
    if stop is not None:
        head = head[:stop.start()]
    fields: dict[str, list[str]] = {}
    for name, value in _FIELD.findall(_FOLD.sub("", head)):
        fields.setdefault(name.lower(), []).append(value.strip())
    for single in _SINGLE:
        if len(fields.get(single, ())) > 1:
            raise MetadataError(f"{where}: metadata with {len(fields[single])} "
                                f"{single.title()} fields")
    return fields


def parse_metadata(raw: bytes, where: str) -> Metadata:
    """Parse core metadata (RFC 822 style) into the fields the resolver needs."""
    fields = read_headers(raw, where)
    name = fields.get("name", [""])[0]
    version = fields.get("version", [""])[0]
    if not name or not version:
        raise MetadataError(f"{where}: metadata without Name or Version")
    try:
        ver = Version(version)
    except InvalidVersion as exc:
        raise MetadataError(f"{where}: invalid version {version!r} in metadata") from exc
    md = Metadata(
        name=name,
        version=ver,
        requires_dist_lines=tuple(fields.get("requires-dist", [])),
        requires_python=fields.get("requires-python", [None])[0],
        provides_extra=frozenset(canonicalize_name(e) for e in fields.get("provides-extra", [])),
        raw=raw,
        where=where,
    )
    # what the project needs without extras is parsed (and refused if invalid) now; an
    # extra's own lines are parsed when that extra is asked for (Metadata.dependencies)
    md.dependencies(())
    return md


def metadata_from_wheel_zip(zf: zipfile.ZipFile, dist: DistFile) -> bytes:
    """The METADATA member of the wheel's one ``.dist-info`` directory."""
    candidates = [
        n for n in zf.namelist()
        if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
    ]
    wanted = [n for n in candidates
              if canonicalize_name(n.split("/")[0][: -len(".dist-info")].rsplit("-", 1)[0])
              == dist.project]
    if len(wanted) != 1:
        raise MetadataError(
            f"{dist.filename}: expected one {dist.project} .dist-info/METADATA, "
            f"found {len(wanted)}"
        )
    info = zf.getinfo(wanted[0])
    if info.file_size > MAX_METADATA:
        raise MetadataError(f"{dist.filename}: METADATA is {info.file_size} bytes")
    return zf.read(info)


class _RangeFile(io.RawIOBase):
    """A read-only, seekable view of a remote file, fetched in ranges on demand."""

    BLOCK = 64 * 1024

    def __init__(self, http: HttpClient, url: str, tail: bytes, length: int) -> None:
        self.http = http
        self.url = url
        self.length = length
        self.pos = 0
        self.chunks: dict[int, bytes] = {length - len(tail): tail}

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.length}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def _have(self, start: int, end: int) -> bytes | None:
        for off, data in self.chunks.items():
            if off <= start and end <= off + len(data):
                return data[start - off:end - off]
        return None

    def read(self, size: int = -1) -> bytes:
        end = self.length if size is None or size < 0 else min(self.length, self.pos + size)
        if end <= self.pos:
            return b""
        data = self._have(self.pos, end)
        if data is None:
            start = self.pos
            stop = max(end, min(self.length, start + self.BLOCK))
            resp = self.http.get(self.url, {"Range": f"bytes={start}-{stop - 1}",
                                            "Accept-Encoding": "identity"},
                                 max_body=MAX_METADATA * 2)
            if resp.status != 206 or len(resp.body) != stop - start:
                raise NetworkError(self.url, "range request not honoured")
            self.chunks[start] = resp.body
            data = resp.body[: end - start]
        self.pos += len(data)
        return data

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


class MetadataFetcher:
    """Get a wheel's core metadata by the cheapest way that works."""

    def __init__(self, http: HttpClient,
                 download: Callable[[DistFile], bytes] | None = None,
                 cache: Cache | None = None, prefer_download: bool = False,
                 whole_wheel_max: int = 20 * 1024 * 1024) -> None:
        self.http = http
        self.download = download
        self.cache = cache
        # when the wheels are going to be installed, small ones are downloaded whole
        self.prefer_download = prefer_download
        self.whole_wheel_max = whole_wheel_max
        self._no_sidecar: set[str] = set()
        self._no_ranges: set[str] = set()
        self._misses: dict[str, int] = {}
        self._lock = threading.Lock()
        self.stats: dict[str, int] = {"cache": 0, "sidecar": 0, "range": 0, "wheel": 0}

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    def fetch(self, dist: DistFile) -> Metadata:
        assert dist.kind == "wheel"
        sha = dist.sha256
        raw = self.cache.get_metadata(sha) if self.cache is not None and sha else None
        if raw is not None:
            self._count("cache")
        else:
            raw = self._raw(dist)
            if self.cache is not None and sha:
                self.cache.put_metadata(sha, raw)
        md = parse_metadata(raw, dist.filename)
        if canonicalize_name(md.name) != dist.project or md.version != dist.version:
            raise MetadataError(
                f"{dist.filename}: its metadata says {md.name} {md.version}, "
                f"not {dist.project} {dist.version}"
            )
        return md

    def _raw(self, dist: DistFile) -> bytes:
        if dist.core_metadata:
            body = self._sidecar(dist)
            if body is None:
                raise NetworkError(dist.url + ".metadata", "declared but not served")
            return body
        # Undeclared: a wheel that will be installed anyway is cheapest to download whole
        # (measured on PyPI: ~50 ms a wheel, against ~55 ms for two range requests and
        # ~85 ms for an undeclared .metadata); otherwise ranges, then a speculative
        # sidecar, then the whole wheel after all.
        import zipfile

        small = dist.size is not None and dist.size <= self.whole_wheel_max
        if not (self.prefer_download and small and self.download is not None):
            host_key = dist.index_url
            if not dist.url.startswith("file:") and host_key not in self._no_ranges:
                try:
                    raw = self._by_range(dist)
                    self._count("range")
                    return raw
                except (NetworkError, zipfile.BadZipFile, OSError):
                    with self._lock:
                        self._no_ranges.add(host_key)
            if host_key not in self._no_sidecar:
                body = self._sidecar(dist)
                if body is not None:
                    return body
        if self.download is None:
            raise MetadataError(f"{dist.filename}: no way to read its metadata")
        data = self.download(dist)
        self._count("wheel")
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return metadata_from_wheel_zip(zf, dist)

    def _sidecar(self, dist: DistFile) -> bytes | None:
        resp = self.http.get(dist.url + ".metadata", max_body=MAX_METADATA)
        if resp.status != 200:
            if resp.status in (404, 403, 410):
                # an index that has never served one is not asked again
                with self._lock:
                    self._misses[dist.index_url] = self._misses.get(dist.index_url, 0) + 1
                    if self._misses[dist.index_url] >= 3 and self.stats["sidecar"] == 0:
                        self._no_sidecar.add(dist.index_url)
            return None
        for algo, expected in dist.core_metadata_hashes.items():
            if algo in hashlib.algorithms_guaranteed:
                got = hashlib.new(algo, resp.body).hexdigest()
                if got != expected:
                    raise MetadataError(
                        f"{dist.filename}.metadata: the index says {algo}:{expected}, "
                        f"the file served is {algo}:{got}"
                    )
        self._count("sidecar")
        return resp.body

    def _by_range(self, dist: DistFile) -> bytes:
        tail_size = 64 * 1024
        resp = self.http.get(dist.url, {"Range": f"bytes=-{tail_size}",
                                        "Accept-Encoding": "identity"},
                             max_body=tail_size * 2)
        if resp.status != 206:
            raise NetworkError(dist.url, "range requests not supported")
        crange = resp.headers.get("content-range", "")
        try:
            length = int(crange.rsplit("/", 1)[1])
        except (IndexError, ValueError) as exc:
            raise NetworkError(dist.url, "bad Content-Range") from exc
        import zipfile

        rf = _RangeFile(self.http, dist.url, resp.body, length)
        with zipfile.ZipFile(rf) as zf:
            return metadata_from_wheel_zip(zf, dist)
