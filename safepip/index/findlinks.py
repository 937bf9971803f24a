"""``--find-links``: directories, single files and HTML pages of links (pip's flat sources).

Each location is read once per run. A local directory lists the wheels and sdists in it
(not below it); a local file is itself; an ``http(s)`` URL is a page whose links are the
files (a ``#sha256=`` fragment gives a file its hash, as on a simple index page; the page
is fetched with the same rules as an index: HTTPS unless the host is trusted, redirects
checked). A location that does not exist is skipped with a note, as pip does.

Their files join those of the first index that has the project, as pip's and uv's do;
a local file has no hash before it is read, so it is hashed as it is read (and, in
hash-checking mode, held to the requirement's ``--hash``). They carry no provenance.
"""

from __future__ import annotations

import os
import sys
import threading
import urllib.parse
from typing import TYPE_CHECKING

from safepip._record import replace
from safepip.errors import NetworkError
from safepip.index.simple import make_dist, parse_html_page, project_of

if TYPE_CHECKING:
    from collections.abc import Sequence

    from packaging.utils import NormalizedName

    from safepip.index.http import HttpClient
    from safepip.models import DistFile


def local_path(location: str) -> str | None:
    """The local path a location names (a path or a ``file:`` URL), else None."""
    parts = urllib.parse.urlsplit(location)
    if parts.scheme.lower() in ("http", "https"):
        return None
    if parts.scheme.lower() == "file":
        from urllib.request import url2pathname  # (it imports http.client: only if needed)

        return os.path.abspath(url2pathname(parts.path))
    return os.path.abspath(os.path.expanduser(location))


class FindLinks:
    """The files of the ``--find-links`` locations, by project; thread-safe."""

    def __init__(self, http: HttpClient, locations: Sequence[str], *,
                 offline: bool = False) -> None:
        self.http = http
        self.locations = list(dict.fromkeys(locations))
        self.offline = offline
        self.notes: list[str] = []
        self.origin: dict[str, str] = {}  # file URL -> the location that listed it
        self._files: dict[NormalizedName, list[DistFile]] | None = None
        self._lock = threading.Lock()

    def files(self, project: NormalizedName) -> list[DistFile]:
        with self._lock:
            if self._files is None:
                found: dict[NormalizedName, list[DistFile]] = {}
                for location in self.locations:
                    for d in self._list(location):
                        found.setdefault(d.project, []).append(d)
                        self.origin.setdefault(d.url, location)
                self._files = found
        return self._files.get(project, [])

    def _list(self, location: str) -> list[DistFile]:
        path = local_path(location)
        if path is None:
            return self._page(location)
        from urllib.request import pathname2url

        sys.audit("safepip.stat", path)  # decided by looking: said to a lock's memo
        if os.path.isdir(path):
            base = urllib.parse.urljoin("file:", pathname2url(path)) + "/"
            names = sorted(n for n in os.listdir(path)
                           if os.path.isfile(os.path.join(path, n)))
        elif os.path.isfile(path):
            base = urllib.parse.urljoin("file:", pathname2url(os.path.dirname(path))) + "/"
            names = [os.path.basename(path)]
        else:
            self.notes.append(f"find-links location {location} does not exist: ignored")
            return []
        out = []
        directory = path if os.path.isdir(path) else os.path.dirname(path)
        for name in names:
            project = project_of(name)
            if project is None:
                continue
            d = make_dist(filename=name, url=base + urllib.parse.quote(name), index_url=base,
                          project=project, hashes={}, requires_python=None, yanked=None,
                          size=os.path.getsize(os.path.join(directory, name)),
                          provenance="")
            if d is not None:
                out.append(d)
        return out

    def _page(self, url: str) -> list[DistFile]:
        if self.offline:
            self.notes.append(f"find-links page {url} not read: --offline")
            return []
        try:
            resp = self.http.get(url)
        except NetworkError as exc:
            raise NetworkError(url, f"the find-links page cannot be read: {exc.message}",
                               hint="check the --find-links URL, or leave it out") from exc
        if resp.status != 200:
            raise NetworkError(url, f"the find-links page answered HTTP {resp.status}",
                               hint="check the --find-links URL, or leave it out")
        # a find-links page is no index: its files carry no provenance to look for
        return [d if d.provenance is not None else replace(d, provenance="")
                for d in parse_html_page(resp.body, resp.url or url, resp.url or url, None)]
