"""The content-addressed cache, written transactionally.

Layout under the cache root::

    blobs/sha256/ab/cdef...         downloaded files, named by their sha256
    http/<sha256 of url>.json       index pages with their validators (ETag, max-age)
    tmp/<run>/...                   this run's writes, until it succeeds

A blob is never trusted by its name alone: ``blob_path`` re-hashes it before handing it
out. Nothing a run writes reaches the cache unless the whole run succeeds: every write
goes to the run's staging directory first and ``commit()`` moves it into place, so a
refused install leaves the cache byte-identical ("Clean").
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from typing import Any


class Cache:
    """A cache rooted at ``root``; ``root=None`` disables persistence (``--no-cache``)."""

    def __init__(self, root: str | None) -> None:
        self.root = root
        self._stage: str | None = None
        self._created: list[str] = []
        self._lock = threading.Lock()

    # -- staging ----------------------------------------------------------------------

    def _stage_dir(self) -> str:
        with self._lock:
            if self._stage is None:
                if self.root is None:
                    self._stage = tempfile.mkdtemp(prefix="safepip-")
                else:
                    tmp = os.path.join(self.root, "tmp")
                    # remember the directories we create (deepest first), so that a
                    # discarded run removes them again
                    d, missing = tmp, []
                    while not os.path.exists(d):
                        missing.append(d)
                        d = os.path.dirname(d)
                    os.makedirs(tmp, exist_ok=True)
                    self._created = missing
                    self._stage = tempfile.mkdtemp(prefix="run-", dir=tmp)
            return self._stage

    def scratch(self) -> str:
        """A directory for temporary files of this run (removed at the end)."""
        return self._stage_dir()

    def _staged(self, rel: str) -> str:
        return os.path.join(self._stage_dir(), "put", rel)

    def _final(self, rel: str) -> str | None:
        return None if self.root is None else os.path.join(self.root, rel)

    def _lookup(self, rel: str) -> list[str]:
        """Where an entry may be: this run's staged copy first, then the cache itself."""
        paths = [self._staged(rel)] if self._stage is not None else []
        final = self._final(rel)
        if final is not None:
            paths.append(final)
        return paths

    def commit(self) -> None:
        """Move this run's writes into the cache (only after the whole run succeeded)."""
        if self._stage is None:
            return
        put = os.path.join(self._stage, "put")
        unpacked = os.path.join(put, "unpacked")
        if self.root is not None and os.path.isdir(unpacked):
            # unpacked wheels move as whole directories (replacing a stale entry)
            os.makedirs(os.path.join(self.root, "unpacked"), exist_ok=True)
            for entry in os.listdir(unpacked):
                dst = os.path.join(self.root, "unpacked", entry)
                if os.path.lexists(dst):
                    shutil.rmtree(dst, ignore_errors=True)
                os.replace(os.path.join(unpacked, entry), dst)
            os.rmdir(unpacked)
        if self.root is not None and os.path.isdir(put):
            for dirpath, _dirs, files in os.walk(put):
                for fn in files:
                    src = os.path.join(dirpath, fn)
                    rel = os.path.relpath(src, put)
                    dst = os.path.join(self.root, rel)
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    os.replace(src, dst)
        self._created = []
        self._cleanup()

    def discard(self) -> None:
        """Forget this run's writes; the cache is as it was before the run."""
        self._cleanup()
        for d in self._created:
            with contextlib.suppress(OSError):
                os.rmdir(d)
        self._created = []

    def _cleanup(self) -> None:
        if self._stage is not None:
            shutil.rmtree(self._stage, ignore_errors=True)
            if self.root is not None:
                # the shared tmp/ directory is removed when it is empty
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(self.root, "tmp"))
            self._stage = None

    # -- blobs ------------------------------------------------------------------------

    @staticmethod
    def _blob_rel(sha256: str) -> str:
        return os.path.join("blobs", "sha256", sha256[:2], sha256[2:])

    def new_download(self) -> tuple[int, str]:
        """A temporary file (fd, path) for a download in progress."""
        d = os.path.join(self._stage_dir(), "dl")
        os.makedirs(d, exist_ok=True)
        return tempfile.mkstemp(dir=d, suffix=".part")

    def put_blob(self, tmp_path: str, sha256: str) -> str:
        """Give a verified download its content address (staged) and return that path."""
        dst = self._staged(self._blob_rel(sha256))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.replace(tmp_path, dst)
        return dst

    def blob_path(self, sha256: str) -> str | None:
        """The path of a blob with this digest, or None; the caller verifies its bytes."""
        for path in self._lookup(self._blob_rel(sha256)):
            if os.path.isfile(path):
                return path
        return None

    # -- unpacked wheels ---------------------------------------------------------------

    def unpacked_path(self, wheel_sha256: str) -> str | None:
        """A complete unpacked entry for this wheel (its files are checked on use)."""
        from safepip.install.unpacked import COMPLETE

        for path in self._lookup(os.path.join("unpacked", wheel_sha256)):
            if os.path.isfile(os.path.join(path, COMPLETE)):
                return path
        return None

    def new_unpacked(self, wheel_sha256: str) -> str:
        """Where to unpack this wheel (staged: it reaches the cache only on success)."""
        path = self._staged(os.path.join("unpacked", wheel_sha256))
        if os.path.lexists(path):
            shutil.rmtree(path)
        os.makedirs(path)
        return path

    # -- wheels built in the sandbox, by (source sha256, sandbox, python, settings) ------

    def get_built(self, key: str) -> tuple[str, bytes] | None:
        """(filename, bytes) of a built wheel, checked against its recorded digest."""
        for d in self._lookup(os.path.join("built", key)):
            try:
                with open(os.path.join(d, "entry.json"), encoding="utf-8") as f:
                    entry = json.load(f)
                with open(os.path.join(d, "wheel"), "rb") as f:
                    data = f.read()
            except (OSError, ValueError):
                continue
            if hashlib.sha256(data).hexdigest() == entry.get("sha256"):
                return str(entry["filename"]), data
        return None

    def put_built(self, key: str, filename: str, data: bytes) -> None:
        if self.root is None:
            return
        d = self._staged(os.path.join("built", key))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "wheel"), "wb") as f:
            f.write(data)
        with open(os.path.join(d, "entry.json"), "w", encoding="utf-8") as f:
            json.dump({"filename": filename, "sha256": hashlib.sha256(data).hexdigest()}, f)

    # -- core metadata of wheels, by the wheel's sha256 ---------------------------------

    def _meta_rel(self, wheel_sha256: str) -> str:
        return os.path.join("metadata", "sha256", wheel_sha256[:2], wheel_sha256[2:])

    def get_metadata(self, wheel_sha256: str) -> bytes | None:
        for path in self._lookup(self._meta_rel(wheel_sha256)):
            try:
                with open(path, "rb") as f:
                    return f.read()
            except OSError:
                continue
        return None

    def put_metadata(self, wheel_sha256: str, data: bytes) -> None:
        if self.root is None:
            return
        dst = self._staged(self._meta_rel(wheel_sha256))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst + ".tmp", "wb") as f:
            f.write(data)
        os.replace(dst + ".tmp", dst)

    # -- http pages -------------------------------------------------------------------

    def _http_rel(self, key: str) -> str:
        return os.path.join("http", hashlib.sha256(key.encode()).hexdigest() + ".json")

    def get_page(self, key: str) -> dict[str, Any] | None:
        for path in self._lookup(self._http_rel(key)):
            try:
                with open(path, encoding="utf-8") as f:
                    data = json.load(f)
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and data.get("key") == key:
                return data
        return None

    def put_page(self, key: str, entry: dict[str, Any]) -> None:
        if self.root is None:
            return
        entry = {**entry, "key": key, "stored": time.time()}
        dst = self._staged(self._http_rel(key))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        tmp = dst + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(entry, f)
        os.replace(tmp, dst)
