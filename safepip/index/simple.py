"""The simple repository API: PEP 691 JSON, PEP 503 HTML as fallback.

Untrusted input is validated once, here, into ``DistFile`` values: an entry with a
wrong type, an unparsable filename or version, or a file of another project is skipped
(threats.md row 25), never a traceback.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

from packaging.tags import Tag, parse_tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from safepip.errors import IndexError_, NetworkError
from safepip.models import DistFile, ProjectPage

if TYPE_CHECKING:
    from collections.abc import Iterable
    from concurrent.futures import Executor, Future

    from packaging.utils import NormalizedName

    from safepip.fetch.cache import Cache
    from safepip.index.findlinks import FindLinks
    from safepip.index.http import HttpClient

ACCEPT = (
    "application/vnd.pypi.simple.v1+json, "
    "application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
)
MAX_FILES = 200_000


def project_url(index_url: str, name: str) -> str:
    return index_url.rstrip("/") + "/" + canonicalize_name(name) + "/"


def _hashes(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {
        str(k).lower(): str(v).lower()
        for k, v in value.items()
        if isinstance(k, str) and isinstance(v, str)
    }


_WHEEL_NAME = re.compile(r"^[A-Za-z0-9_.]+$")
_VERSIONS: dict[str, Version] = {}
_TAGS: dict[str, frozenset[Tag]] = {}


def _parse_wheel_name(filename: str) -> tuple[NormalizedName, Version, frozenset[Tag]]:
    """``parse_wheel_filename``, memoized on the version and tag strings.

    A project page repeats both thousands of times (numpy lists 4,000+ files), and
    parsing them is most of the cost of reading a page.
    """
    parts = filename[:-4].split("-")
    if len(parts) not in (5, 6) or not _WHEEL_NAME.match(parts[0]):
        name, version, _build, tags = parse_wheel_filename(filename)
        return name, version, tags
    if len(parts) == 6 and not parts[2][:1].isdigit():
        raise InvalidWheelFilename(f"invalid build number: {filename}")
    found = _VERSIONS.get(parts[1])
    version = found if found is not None else _VERSIONS.setdefault(parts[1], Version(parts[1]))
    tag_text = "-".join(parts[-3:])
    cached = _TAGS.get(tag_text)
    if cached is None:
        try:
            cached = _TAGS[tag_text] = parse_tag(tag_text)
        except ValueError as exc:  # packaging's InvalidTag
            raise InvalidWheelFilename(f"invalid tags in {filename}: {exc}") from exc
    return canonicalize_name(parts[0]), version, cached


def project_of(filename: str) -> NormalizedName | None:
    """The project a distribution file name belongs to, or None for other files."""
    try:
        if filename.endswith(".whl"):
            return _parse_wheel_name(filename)[0]
        if filename.endswith((".tar.gz", ".zip")):
            return parse_sdist_filename(filename)[0]
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None
    return None


def make_dist(
    *,
    filename: str,
    url: str,
    index_url: str,
    project: NormalizedName,
    hashes: dict[str, str],
    requires_python: str | None,
    yanked: str | None,
    upload_time: str | None = None,
    size: int | None = None,
    core_metadata: Any = None,
    provenance: str | None = None,
) -> DistFile | None:
    """A ``DistFile`` for a listed file, or None when the entry is unusable."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in ("http", "https") and not (
            scheme == "file" and index_url.startswith("file:")):
        return None  # only a local (file:) index may point at local files
    if "/" in filename or "\\" in filename or filename in ("", ".", ".."):
        return None
    try:
        if filename.endswith(".whl"):
            name, version, tags = _parse_wheel_name(filename)
            kind = "wheel"
        elif filename.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(filename)
            tags = frozenset()
            kind = "sdist"
        else:
            return None
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None
    if name != project:
        return None
    cm_hashes: dict[str, str] = {}
    if isinstance(core_metadata, dict):
        cm_hashes = _hashes(core_metadata)
        has_cm = True
    else:
        has_cm = core_metadata is True or (
            isinstance(core_metadata, str) and core_metadata.lower() not in ("", "false")
        )
        if isinstance(core_metadata, str) and "=" in core_metadata:
            algo, _, digest = core_metadata.partition("=")
            cm_hashes = {algo.lower(): digest.lower()}
    return DistFile(
        filename=filename,
        url=url,
        index_url=index_url,
        project=project,
        version=version,
        kind=kind,  # type: ignore[arg-type]
        hashes=hashes,
        requires_python=requires_python or None,
        yanked=yanked,
        upload_time=upload_time,
        size=size,
        core_metadata=has_cm,
        core_metadata_hashes=cm_hashes,
        provenance=provenance,
        tags=tags,
    )


def _absolute(base: str, url: str) -> str:
    # PyPI's URLs are absolute: skip urljoin, the largest cost of reading a big page
    return url if url.startswith(("https://", "http://")) else urllib.parse.urljoin(base, url)


def _at_least(version: object, wanted: tuple[int, int]) -> bool:
    """An API version string ("1.3") is at least ``wanted``."""
    if not isinstance(version, str):
        return False
    try:
        major, minor = (int(x) for x in version.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= wanted


def parse_json_page(body: bytes, page_url: str, index_url: str,
                    project: NormalizedName) -> list[DistFile]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise IndexError_(f"{page_url}: the index answered invalid JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise IndexError_(f"{page_url}: the index answered JSON without a 'files' list")
    meta = data.get("meta")
    pep740 = _at_least(meta.get("api-version") if isinstance(meta, dict) else None, (1, 3))
    out: list[DistFile] = []
    for entry in data["files"][:MAX_FILES]:
        if not isinstance(entry, dict):
            continue
        filename, url = entry.get("filename"), entry.get("url")
        if not isinstance(filename, str) or not isinstance(url, str):
            continue
        yanked_v = entry.get("yanked", False)
        yanked = (yanked_v if isinstance(yanked_v, str) else "") if yanked_v else None
        rp = entry.get("requires-python")
        ut = entry.get("upload-time")
        size = entry.get("size")
        prov = entry.get("provenance")
        cm = entry.get("core-metadata", entry.get("dist-info-metadata"))
        d = make_dist(
            filename=filename,
            url=_absolute(page_url, url),
            index_url=index_url,
            project=project,
            hashes=_hashes(entry.get("hashes")),
            requires_python=rp if isinstance(rp, str) else None,
            yanked=yanked,
            upload_time=ut if isinstance(ut, str) else None,
            size=size if isinstance(size, int) and not isinstance(size, bool) else None,
            core_metadata=cm,
            # PEP 740: a URL; null says "none"; no key at all: the index does not say
            provenance=(_absolute(page_url, prov) if isinstance(prov, str) and prov else
                        None if "provenance" not in entry and not pep740 else ""),
        )
        if d is not None:
            out.append(d)
    return out


class _AnchorParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self.base: str | None = None
        self.meta: dict[str, str] = {}
        self._current: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")
        elif tag == "meta":
            m = dict(attrs)
            if m.get("name") and m.get("content") is not None:
                self.meta[str(m["name"])] = str(m["content"])
        elif tag == "a":
            self._current = dict(attrs)
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._current is not None:
            self.anchors.append((self._current, "".join(self._text).strip()))
            self._current = None


def parse_html_page(body: bytes, page_url: str, index_url: str,
                    project: NormalizedName | None) -> list[DistFile]:
    """The files a PEP 503 page lists; ``project=None`` (a --find-links page): files of
    any project, each taken from its file name."""
    parser = _AnchorParser()
    parser.feed(body.decode("utf-8", errors="replace"))
    base = urllib.parse.urljoin(page_url, parser.base) if parser.base else page_url
    # PEP 740: from repository version 1.3 on, a file without data-provenance has none
    # (before, the index just does not say, and its Integrity API is asked)
    no_provenance = "" if _at_least(parser.meta.get("pypi:repository-version"), (1, 3)) \
        else None
    out: list[DistFile] = []
    for attrs, _text in parser.anchors[:MAX_FILES]:
        href = attrs.get("href")
        if not href:
            continue
        url = urllib.parse.urljoin(base, href)
        parts = urllib.parse.urlsplit(url)
        filename = urllib.parse.unquote(parts.path.rsplit("/", 1)[-1])
        hashes: dict[str, str] = {}
        if parts.fragment and "=" in parts.fragment:
            algo, _, digest = parts.fragment.partition("=")
            hashes[algo.lower()] = digest.lower()
        url = urllib.parse.urlunsplit(parts._replace(fragment=""))
        yanked = attrs.get("data-yanked")
        cm = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
        prov = attrs.get("data-provenance")
        owner = project if project is not None else project_of(filename)
        if owner is None:
            continue
        d = make_dist(
            filename=filename,
            url=url,
            index_url=index_url,
            project=owner,
            hashes=hashes,
            requires_python=attrs.get("data-requires-python"),
            yanked=(yanked or "") if "data-yanked" in attrs else None,
            core_metadata=cm if "data-core-metadata" in attrs or
            "data-dist-info-metadata" in attrs else None,
            provenance=urllib.parse.urljoin(base, prov) if prov else no_provenance,
        )
        if d is not None:
            out.append(d)
    return out


class IndexClient:
    """Project pages from one or more indexes, with first-index pinning and caching."""

    def __init__(self, http: HttpClient, index_urls: list[str], cache: Cache,
                 offline: bool = False, find_links: FindLinks | None = None) -> None:
        self.http = http
        self.index_urls = index_urls
        self.cache = cache
        self.offline = offline
        self.find_links = find_links
        self._early: dict[str, Future[ProjectPage | None]] = {}
        self._early_lock = threading.Lock()
        # for a lock's memo (lock.memo): when the first page used goes stale, and what
        # was used that no file holds (an HTTP 404, a stale page used offline)
        self.fresh_until = float("inf")
        # remote --find-links pages are not cached; local ones are files, recorded as such
        self.uncached: list[str] = [
            f"--find-links {loc}" for loc in (find_links.locations if find_links else [])
            if urllib.parse.urlsplit(loc).scheme.lower() in ("http", "https")]

    def _used(self, url: str, until: float | None) -> None:
        with self._early_lock:
            if until is None:
                self.uncached.append(url)
            else:
                self.fresh_until = min(self.fresh_until, until)

    def prefetch(self, names: Iterable[str], pool: Executor) -> None:
        """Start fetching these projects' pages (run starts them while the target
        interpreter is being probed); ``project`` then waits for them."""
        with self._early_lock:
            for name in names:
                cname = canonicalize_name(name)
                if cname not in self._early:
                    self._early[cname] = pool.submit(self._project, cname)

    def _fetch(self, index_url: str, name: NormalizedName) -> ProjectPage | None:
        url = project_url(index_url, name)
        if url.startswith("file:"):
            # a local index's pages are files: what a lock's memo records of them is
            # what they are (and whether they exist); never stale otherwise
            resp = self.http.get(url)
            if resp.status == 404:
                return None
            files = parse_html_page(resp.body, url, index_url, name)
            return ProjectPage(name, index_url, tuple(files))
        cached = self.cache.get_page(url)
        headers = {"Accept": ACCEPT}
        if cached is not None:
            expires = float(cached.get("stored", 0)) + float(cached.get("max_age", 0))
            fresh = time.time() < expires
            if fresh or self.offline:
                self._used(url, expires if fresh else None)
                return self._parse(cached, index_url, name)
            if cached.get("etag"):
                headers["If-None-Match"] = str(cached["etag"])
            if cached.get("last_modified"):
                headers["If-Modified-Since"] = str(cached["last_modified"])
        resp = self.http.get(url, headers)
        if resp.status == 304 and cached is not None:
            # the 304's headers, with the page's own Last-Modified when it does not repeat it
            headers = dict(resp.headers)
            if cached.get("last_modified") and "last-modified" not in headers:
                headers["last-modified"] = str(cached["last_modified"])
            cached["max_age"] = _max_age(headers)
            self._used(url, time.time() + cached["max_age"])
            self.cache.put_page(url, cached)
            return self._parse(cached, index_url, name)
        if resp.status == 404:
            self._used(url, None)
            return None
        if resp.status != 200:
            raise NetworkError(url, f"the index answered HTTP {resp.status}")
        entry = {
            "url": resp.url,
            "content_type": resp.headers.get("content-type", ""),
            "etag": resp.headers.get("etag"),
            "last_modified": resp.headers.get("last-modified"),
            "max_age": _max_age(resp.headers),
            "body": resp.body.decode("utf-8", errors="replace"),
        }
        page = self._parse(entry, index_url, name)
        self._used(url, time.time() + _max_age(resp.headers))
        self.cache.put_page(url, entry)
        return page

    @staticmethod
    def _parse(entry: dict[str, Any], index_url: str, name: NormalizedName) -> ProjectPage:
        body = str(entry["body"]).encode("utf-8")
        ctype = str(entry.get("content_type", ""))
        page_url = str(entry["url"])
        if "json" in ctype:
            files = parse_json_page(body, page_url, index_url, name)
        else:
            files = parse_html_page(body, page_url, index_url, name)
        return ProjectPage(name, index_url, tuple(files))

    def project(self, name: str) -> ProjectPage | None:
        """The files of ``name`` from the first index that lists it (uv's first-index).

        Taking a project from one index only is what stops a public index answering
        for a private name (dependency confusion, threats.md row 22).
        """
        cname = canonicalize_name(name)
        with self._early_lock:
            early = self._early.get(cname)
        if early is not None:
            return early.result()
        return self._project(cname)

    def _project(self, cname: NormalizedName) -> ProjectPage | None:
        found = None
        for index_url in self.index_urls:
            page = self._fetch(index_url, cname)
            if page is not None and page.files:
                found = page
                break
        linked = self.find_links.files(cname) if self.find_links is not None else []
        if not linked:
            return found
        # --find-links files join the index's (pip's and uv's behaviour): the resolver
        # takes the best candidate among them all
        return ProjectPage(cname, found.index_url if found else linked[0].index_url,
                           tuple(linked) + (found.files if found else ()))


HEURISTIC_MAX = 600  # seconds: PyPI's own max-age for simple pages


def _max_age(headers: dict[str, str]) -> int:
    """How long a page stays fresh: its Cache-Control max-age; without one, RFC 9111's
    heuristic (a tenth of the time since Last-Modified, as browsers and uv do), capped at
    PyPI's own ten minutes; no-cache / no-store: revalidate every time."""
    cc = headers.get("cache-control", "")
    for part in cc.split(","):
        part = part.strip().lower()
        if part in ("no-store", "no-cache"):
            return 0
        if part.startswith("max-age="):
            try:
                return max(0, int(part.split("=", 1)[1]))
            except ValueError:
                return 0
    if cc.strip() or "expires" in headers:
        return 0  # explicit caching rules we do not interpret further: revalidate
    try:
        modified = http_date(headers["last-modified"])
        now = http_date(headers["date"]) if "date" in headers else time.time()
    except (KeyError, TypeError, ValueError, IndexError):
        return 0
    return int(min(HEURISTIC_MAX, max(0.0, (now - modified) / 10)))


_IMF_FIXDATE = re.compile(r"[A-Z][a-z]{2}, (\d\d) ([A-Z][a-z]{2}) (\d{4}) "
                          r"(\d\d):(\d\d):(\d\d) GMT")
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
                                       "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


def http_date(text: str) -> float:
    """An HTTP-date (RFC 9110 §5.6.7) as a POSIX timestamp: the preferred IMF-fixdate read
    here, the two obsolete forms by the email package."""
    m = _IMF_FIXDATE.fullmatch(text.strip())
    if m is not None and m[2] in _MONTHS:
        import datetime

        return datetime.datetime(int(m[3]), _MONTHS[m[2]], int(m[1]), int(m[4]), int(m[5]),
                                 int(m[6]), tzinfo=datetime.UTC).timestamp()
    from email.utils import parsedate_to_datetime

    return parsedate_to_datetime(text).timestamp()
