"""Downloads with digests computed while streaming and checked before the file is named.

A file reaches its content address only after every digest we know for it (the
index's, any ``--hash`` or lock hash) matched; otherwise the partial file is deleted and
the error names both digests (threats.md rows 17-19).
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Protocol

from safepip.errors import (
    DiskFullError,
    HashMismatchError,
    NetworkError,
    SafepipError,
    is_disk_full,
)
from safepip.models import Artifact

if TYPE_CHECKING:
    from collections.abc import Callable

    from safepip.fetch.cache import Cache
    from safepip.index.http import HttpClient
    from safepip.models import DistFile

MAX_ATTEMPTS = 3


class Progress(Protocol):
    """Receives download progress; the default does nothing."""

    def start(self, key: str, name: str, total: int | None) -> None: ...
    def advance(self, key: str, n: int) -> None: ...
    def finish(self, key: str) -> None: ...


class NullProgress:
    def start(self, key: str, name: str, total: int | None) -> None:
        pass

    def advance(self, key: str, n: int) -> None:
        pass

    def finish(self, key: str) -> None:
        pass


class Downloader:
    """Fetch ``DistFile``s into the cache, once each, verified."""

    def __init__(self, http: HttpClient, cache: Cache,
                 progress: Progress | None = None) -> None:
        self.http = http
        self.cache = cache
        self.progress: Progress = progress or NullProgress()
        self._futures: dict[str, Future[Artifact]] = {}
        self._lock = threading.Lock()
        # called with each verified artifact (the installer starts unpacking early)
        self.on_fetched: Callable[[Artifact], None] | None = None
        # digests demanded by --hash or a lock, by project: algorithm -> allowed digests
        self.required: dict[str, dict[str, set[str]]] = {}

    def require_hashes(self, project: str, algo: str, digests: set[str]) -> None:
        self.required.setdefault(project, {}).setdefault(algo, set()).update(digests)

    def get(self, dist: DistFile) -> Artifact:
        """The verified artifact for ``dist`` (downloading at most once per run)."""
        with self._lock:
            fut = self._futures.get(dist.url)
            owner = fut is None
            if fut is None:
                fut = Future()
                self._futures[dist.url] = fut
        if not owner:
            return fut.result()
        try:
            art = self._get(dist)
        except BaseException as exc:
            fut.set_exception(exc)
            raise
        fut.set_result(art)
        if self.on_fetched is not None:
            self.on_fetched(art)
        return art

    def data_for(self, dist: DistFile) -> bytes:
        return self.get(dist).data

    def _expected(self, dist: DistFile) -> list[tuple[str, set[str], str]]:
        """(algorithm, acceptable digests, who says so) that the bytes must satisfy."""
        checks: list[tuple[str, set[str], str]] = []
        for algo, digest in dist.hashes.items():
            if algo in hashlib.algorithms_guaranteed:
                checks.append((algo, {digest}, "the index"))
        for algo, digests in self.required.get(dist.project, {}).items():
            checks.append((algo, digests, "--hash"))
        return checks

    def _get(self, dist: DistFile) -> Artifact:
        checks = self._expected(dist)
        verified_by = tuple(sorted({f"{who} {algo}" for algo, _, who in checks}))
        known = dist.sha256 or next(
            (next(iter(d)) for a, d, _ in checks if a == "sha256" and len(d) == 1), None
        )
        if known:
            cached = self.cache.blob_path(known)
            if cached is not None:
                # read once, verify that buffer: it is the one that is validated and
                # installed (a corrupt cache entry is simply downloaded again)
                with open(cached, "rb") as f:
                    data = f.read()
                if self._satisfies(data, checks) is None and hashlib.sha256(
                        data).hexdigest() == known:
                    return Artifact(cached, known, dist, verified_by, from_cache=True,
                                    size=len(data), data=data)
        last: SafepipError | None = None
        for _attempt in range(MAX_ATTEMPTS):
            try:
                return self._download(dist, checks, verified_by)
            except NetworkError as exc:  # incomplete or broken: try again
                last = exc
        assert last is not None
        raise last

    @staticmethod
    def _satisfies(data: bytes, checks: list[tuple[str, set[str], str]]) -> str | None:
        for algo, digests, _who in checks:
            if hashlib.new(algo, data).hexdigest() not in digests:
                return algo
        return None

    def _download(self, dist: DistFile, checks: list[tuple[str, set[str], str]],
                  verified_by: tuple[str, ...]) -> Artifact:
        algos = {a for a, _, _ in checks} | {"sha256"}
        hs = {a: hashlib.new(a) for a in algos}
        fd, tmp = self.cache.new_download()
        ok = False
        try:
            resp = self.http.stream(dist.url, {"Accept-Encoding": "identity"})
            try:
                if resp.status != 200:
                    raise SafepipError(
                        f"cannot download {dist.filename}: HTTP {resp.status} from "
                        f"{dist.url}"
                    )
                declared = resp.headers.get("content-length")
                total = int(declared) if declared and declared.isdigit() else dist.size
                self.progress.start(dist.url, dist.filename, total)
                got = 0
                chunks: list[bytes] = []
                with os.fdopen(fd, "wb") as out:
                    fd = -1
                    for chunk in resp.iter_chunks():
                        out.write(chunk)
                        chunks.append(chunk)
                        for h in hs.values():
                            h.update(chunk)
                        got += len(chunk)
                        self.progress.advance(dist.url, len(chunk))
            finally:
                resp.close()
                self.progress.finish(dist.url)
            if declared and declared.isdigit() and got != int(declared):
                raise NetworkError(dist.url, f"incomplete download: {got} of {declared} bytes")
            for algo, digests, who in checks:
                digest = hs[algo].hexdigest()
                if digest not in digests:
                    exp = sorted(digests)[0] if len(digests) == 1 else " or ".join(
                        sorted(digests))
                    raise HashMismatchError(dist.filename, exp, digest, who, algo)
            sha = hs["sha256"].hexdigest()
            path = self.cache.put_blob(tmp, sha)
            ok = True
            return Artifact(path, sha, dist, verified_by or ("none: no hash known",), size=got,
                            data=b"".join(chunks))
        except OSError as exc:
            if is_disk_full(exc):
                raise DiskFullError(
                    f"downloading {dist.filename}", self.cache.root or os.path.dirname(tmp),
                    hint="free some space there, or use --cache-dir DIR on another disk; "
                         "nothing was installed and the cache is as it was") from exc
            raise
        finally:
            if fd >= 0:
                os.close(fd)
            if not ok and os.path.exists(tmp):
                os.unlink(tmp)
