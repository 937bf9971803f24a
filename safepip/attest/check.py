"""For each file to install: find its provenance, fetch it (cached), verify it.

Where the provenance is:
- the index's JSON says so per file (PEP 740 ``provenance``: a URL, or null for none);
  an HTML page's ``data-provenance`` attribute likewise;
- when the index does not say (an older API version, a proxy), the Integrity API of the
  index's host is asked: ``/integrity/<project>/<version>/<filename>/provenance``; a 4xx
  there means "none".

A provenance URL on another host than the index is refused (the index must vouch for
it). Responses, and "none" answers, are cached by (file sha256, URL) in the run's staged
cache; a cached provenance is verified again every time (it costs milliseconds), so the
cache is never trusted for the verdict.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from typing import TYPE_CHECKING, Literal

from safepip._record import record
from safepip.errors import AttestationError, NetworkError
from safepip.index.http import origin, redact

if TYPE_CHECKING:
    from collections.abc import Callable

    from safepip.attest.verify import Verified
    from safepip.fetch.cache import Cache
    from safepip.index.http import HttpClient
    from safepip.models import DistFile

MAX_PROVENANCE = 4 * 1024 * 1024
Status = Literal["attested", "none", "unavailable", "invalid", "skipped", "local"]


@record(frozen=True)
class AttestationResult:
    """What is known about one file's provenance."""

    project: str
    version: str
    filename: str
    sha256: str
    status: Status
    verified: Verified | None = None
    url: str = ""
    note: str = ""  # why none / unavailable / invalid
    error: AttestationError | None = None

    def describe(self) -> str:
        if self.verified is not None:
            return f"attested by {self.verified.publisher.describe()}"
        if self.status == "skipped":
            return "attestation not checked (--skip-attestations)"
        if self.status == "unavailable":
            return f"attestation unavailable ({self.note})"
        if self.status == "invalid":
            return "attestation INVALID"
        return "not attested"


def provenance_url(dist: DistFile) -> str | None:
    """Where this file's provenance is; None when the index says it has none."""
    if dist.provenance is not None:
        return dist.provenance or None
    if not dist.index_url.startswith(("https:", "http:")):
        return None
    p = urllib.parse.urlsplit(dist.index_url)
    path = "/".join(urllib.parse.quote(part, safe="") for part in (
        dist.project, str(dist.version), dist.filename))
    return urllib.parse.urlunsplit((p.scheme, p.netloc, f"/integrity/{path}/provenance", "",
                                    ""))


class Checker:
    """Checks files' provenance; thread-safe (the pipeline runs it beside downloads)."""

    def __init__(self, http: HttpClient, cache: Cache,
                 root_path: str | Callable[[], str] | None = None) -> None:
        """``root_path``: the Sigstore trusted root, or what finds it when a provenance is
        first verified (None: the one safepip ships)."""
        self.http = http
        self.cache = cache
        self._root_path = root_path
        self._root_lock = threading.Lock()

    @property
    def root_path(self) -> str:
        with self._root_lock:
            if callable(self._root_path):
                self._root_path = self._root_path()
            if self._root_path is None:
                from safepip.attest.verify import PINNED_ROOT

                self._root_path = PINNED_ROOT
            return self._root_path

    def check(self, dist: DistFile, sha256: str) -> AttestationResult:
        base = {"project": dist.project, "version": str(dist.version),
                "filename": dist.filename, "sha256": sha256}
        url = provenance_url(dist)
        if url is None:
            return AttestationResult(**base, status="none",  # type: ignore[arg-type]
                                     note="the index lists no provenance")
        declared = dist.provenance is not None
        if declared and origin(url) != origin(dist.index_url):
            err = AttestationError(
                f"the index points this file's provenance to another host: "
                f"{redact(url)} (the index is {redact(dist.index_url)})",
                filename=dist.filename, project=dist.project)
            return AttestationResult(**base, status="invalid", url=url,  # type: ignore[arg-type]
                                     note="provenance on another host", error=err)
        try:
            status, body = self._fetch(url, sha256)
        except NetworkError as exc:
            return AttestationResult(**base, status="unavailable",  # type: ignore[arg-type]
                                     url=url, note=exc.message)
        if status in (404, 410) or (not declared and 400 <= status < 500):
            return AttestationResult(**base, status="none", url=url,  # type: ignore[arg-type]
                                     note=f"HTTP {status} from {redact(url)}")
        if status != 200:
            return AttestationResult(**base, status="unavailable",  # type: ignore[arg-type]
                                     url=url, note=f"HTTP {status} from {redact(url)}")
        from safepip.attest.verify import verify_provenance  # sigstore's code

        root = self.root_path  # a damaged trusted root is the run's error, not this file's
        try:
            verified = verify_provenance(body, dist.filename, sha256, root)
        except AttestationError as exc:
            exc.project = dist.project
            return AttestationResult(**base, status="invalid", url=url,  # type: ignore[arg-type]
                                     note=exc.reason, error=exc)
        return AttestationResult(**base, status="attested",  # type: ignore[arg-type]
                                 verified=verified, url=url)

    def _fetch(self, url: str, sha256: str) -> tuple[int, bytes]:
        key = f"provenance {sha256} {url}"
        cached = self.cache.get_page(key)
        if cached is not None and isinstance(cached.get("status"), int) and isinstance(
                cached.get("body"), str):
            return int(cached["status"]), str(cached["body"]).encode()
        resp = self.http.get(url, {"Accept": "application/json"}, max_body=MAX_PROVENANCE)
        if resp.status == 200:
            try:
                body = resp.body.decode("utf-8")
                json.loads(body)
            except ValueError:
                return 200, resp.body  # verified (and refused) but not cached
            self.cache.put_page(key, {"status": 200, "body": body})
        elif resp.status in (404, 410):
            self.cache.put_page(key, {"status": resp.status, "body": ""})
        return resp.status, resp.body
