"""The content-addressed cache, written transactionally.

Layout under the cache root::

    blobs/sha256/ab/cdef...         downloaded files, named by their sha256
    http/<sha256 of url>.json       index pages with their validators (ETag, max-age)
    tmp/<run>/...                   this run's writes, until it succeeds

A blob is never trusted by its name alone: its bytes are hashed again before use.
Entries that are facts rather than content (index pages, whose digests decide which
blobs are good; interpreter facts, which decide where files go; provenance answers;
wheel verdicts) cannot be checked against a digest, so they are sealed: an HMAC with a
key kept outside the cache (``cache.key`` in safepip's data directory, 0600). An entry
whose seal does not verify (a cache restored from elsewhere, say a CI cache written by
an untrusted job, or edited by hand) is treated as absent and fetched or computed again.

Nothing a run writes reaches the cache unless the whole run succeeds: every write
goes to the run's staging directory first and ``commit()`` moves it into place, so a
refused install leaves the cache byte-identical ("Clean").
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import threading
import time

# typing is not imported at run time (4 ms of a lock answered from its memo)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

KEY_FILE = "cache.key"
SEAL = b"safepip-seal-v1 "


class Cache:
    """A cache rooted at ``root``; ``root=None`` disables persistence (``--no-cache``)."""

    def __init__(self, root: str | None, data_dir: str | None = None) -> None:
        self.root = root
        self._stage: str | None = None
        self._created: list[str] = []
        self._lock = threading.RLock()
        self._writers = 0  # files being written outside the lock (_stage_bytes)
        self._no_writers = threading.Condition(self._lock)
        self._data_dir = data_dir
        self._key_bytes: bytes | None = None
        self._new_key = False
        self._replace_key = False
        self._closed = False  # committed or discarded: late writes are dropped
        self._dirs: set[str] = set()  # directories this run made or found
        self._puts: dict[str, str] = {}  # entry -> its staged copy
        self._put_root: str | None = None

    # -- sealed entries ---------------------------------------------------------------

    def _key_path(self) -> str:
        from safepip.locate import default_data_dir

        return os.path.join(self._data_dir or default_data_dir(), KEY_FILE)

    def _key(self, create: bool) -> bytes | None:
        """This user's cache key. A new one is made in memory by the first sealed write
        and saved by ``commit()`` (a refused run leaves the data directory as it was); a
        damaged key file verifies nothing and is replaced the same way."""
        if self._key_bytes is not None:
            return self._key_bytes
        with self._lock:
            if self._key_bytes is not None:
                return self._key_bytes
            try:
                with open(self._key_path(), "rb") as f:
                    key = bytes.fromhex(f.read().decode("ascii").strip())
                if len(key) < 32:
                    raise ValueError("short key")
            except FileNotFoundError:
                self._replace_key = False
                key = b""
            except (UnicodeDecodeError, ValueError):
                self._replace_key = True
                key = b""
            except OSError:
                return None  # unreadable: nothing sealed is trusted, nothing is sealed
            if not key:
                if not create:
                    return None
                import secrets

                key = secrets.token_bytes(32)
                self._new_key = True
            self._key_bytes = key
            return key

    def _save_key(self) -> None:
        import tempfile

        if not self._new_key or self._key_bytes is None:
            return
        path = self._key_path()
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".key-")  # 0600
        try:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(self._key_bytes.hex() + "\n")
            if self._replace_key:
                os.replace(tmp, path)
            else:
                with contextlib.suppress(FileExistsError):
                    # never replaces a key another process saved meanwhile (what this
                    # run sealed with its own key is then just not trusted next time)
                    os.link(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self._new_key = False

    def _seal(self, body: bytes) -> bytes | None:
        key = self._key(create=True)
        if key is None:
            return None
        return SEAL + hmac.new(key, body, hashlib.sha256).hexdigest().encode() + b"\n" + body

    def _unseal(self, data: bytes) -> bytes | None:
        head, sep, body = data.partition(b"\n")
        if not sep or not head.startswith(SEAL):
            return None
        key = self._key(create=False)
        if key is None:
            return None
        mac = hmac.new(key, body, hashlib.sha256).hexdigest().encode()
        return body if hmac.compare_digest(mac, head[len(SEAL):]) else None

    def _read_sealed(self, rel: str) -> bytes | None:
        for path in self._lookup(rel):
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            body = self._unseal(data)
            if body is not None:
                return body
        return None

    def _write_sealed(self, rel: str, body: bytes) -> None:
        if self.root is None:
            return
        sealed = self._seal(body)
        if sealed is None:
            return
        self._stage_bytes(rel, sealed)

    def _stage_bytes(self, rel: str, data: bytes) -> None:
        """Stage ``data`` as the entry ``rel``, outside the lock: a write (and a rename)
        waits for the disk and then for the GIL, and every other thread's cache write
        queued behind it (a cold lock's fetch threads waited ~0.6 s in all, up to 20 ms
        each). Not into a run that was committed or discarded; a run that ends meanwhile
        waits for the writes under way (``_close``), so that it commits them or removes
        them with the rest."""
        with self._lock:
            if self._closed:
                return
            self._writers += 1
        try:
            dst = self._put(rel)
            tmp = f"{dst}.{threading.get_ident()}.tmp"
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, dst)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        finally:
            with self._lock:
                self._writers -= 1
                self._no_writers.notify_all()

    def _close(self) -> None:
        """No more writes into this run (with the lock held): those under way finish."""
        self._closed = True
        while self._writers:
            self._no_writers.wait()

    def get_sealed(self, rel: str) -> bytes | None:
        """A sealed entry of another module's (its path under the cache), or None."""
        return self._read_sealed(rel)

    def put_sealed(self, rel: str, body: bytes) -> None:
        self._write_sealed(rel, body)

    # -- staging ----------------------------------------------------------------------

    def _makedirs(self, path: str) -> None:
        """``os.makedirs(path, exist_ok=True)``, once per directory and run."""
        if path not in self._dirs:
            os.makedirs(path, exist_ok=True)
            self._dirs.add(path)

    def _stage_dir(self) -> str:
        import tempfile

        if self._stage is not None:
            return self._stage
        with self._lock:
            if self._closed:
                # a late task of a run that ended: nothing of it may reach the cache
                raise RuntimeError("the run's cache was committed or discarded")
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

    _WHOLE_DIRS = ("unpacked" + os.sep, "built" + os.sep)

    def _put(self, rel: str) -> str:
        """Where this run writes its copy of the entry ``rel`` until commit.

        Staged entries lie side by side in one directory, each remembered with its final
        place: a staged copy of the cache's tree cost a mkdir for every new directory
        and a walk plus a tree removal at commit (a fifth of a cold lock)."""
        with self._lock:
            path = self._puts.get(rel)
            if path is None:
                # the entry's path made flat: its parts are digests and fixed words
                path = os.path.join(self._put_dir(), rel.replace(os.sep, "@"))
                self._puts[rel] = path
            return path

    def _put_dir(self) -> str:
        if self._put_root is None:
            self._put_root = os.path.join(self._stage_dir(), "put")
            os.makedirs(self._put_root, exist_ok=True)
        return self._put_root

    def _final(self, rel: str) -> str | None:
        return None if self.root is None else os.path.join(self.root, rel)

    def _lookup(self, rel: str) -> list[str]:
        """Where an entry may be: this run's staged copy first, then the cache itself."""
        staged = self._puts.get(rel)
        paths = [staged] if staged is not None else []
        final = self._final(rel)
        if final is not None:
            paths.append(final)
        return paths

    def commit(self) -> None:
        """Move this run's writes into the cache (only after the whole run succeeded)."""
        with self._lock:
            self._close()
            self._commit()

    def _commit(self) -> None:
        import shutil

        if self._stage is None:
            return
        if self.root is not None and self._puts:
            with contextlib.suppress(OSError):  # unsaved: its entries are just not reused
                self._save_key()
            for rel, src in self._puts.items():
                dst = os.path.join(self.root, rel)
                if rel.startswith(self._WHOLE_DIRS) and os.path.lexists(dst):
                    # unpacked and built wheels are directories: they replace a stale entry
                    shutil.rmtree(dst, ignore_errors=True)
                try:
                    os.replace(src, dst)
                except FileNotFoundError:
                    if not os.path.lexists(src):
                        continue  # made, then given up (an unpacking that failed)
                    self._makedirs(os.path.dirname(dst))  # its directory is new
                    os.replace(src, dst)
        self._puts.clear()
        self._created = []
        self._cleanup()

    def discard(self) -> None:
        """Forget this run's writes; the cache is as it was before the run."""
        with self._lock:
            self._close()
            self._cleanup()
        for d in self._created:
            with contextlib.suppress(OSError):
                os.rmdir(d)
        self._created = []

    def _cleanup(self) -> None:
        import shutil

        self._puts.clear()
        self._put_root = None
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
        import tempfile

        d = os.path.join(self._stage_dir(), "dl")
        os.makedirs(d, exist_ok=True)
        return tempfile.mkstemp(dir=d, suffix=".part")

    def put_blob(self, tmp_path: str, sha256: str) -> str:
        """Give a verified download its content address (staged) and return that path."""
        dst = self._put(self._blob_rel(sha256))
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
        import shutil

        path = self._put(os.path.join("unpacked", wheel_sha256))
        if os.path.lexists(path):
            shutil.rmtree(path)
        os.makedirs(path)
        return path

    # -- wheels built in the sandbox, by (source sha256, sandbox, python, settings) ------

    def get_built(self, key: str) -> tuple[str, bytes] | None:
        """(filename, bytes) of a built wheel, checked against its recorded digest."""
        import json  # (not needed by a lock answered from its memo)

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
        import json  # (not needed by a lock answered from its memo)

        if self.root is None:
            return
        d = self._put(os.path.join("built", key))
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
        self._stage_bytes(self._meta_rel(wheel_sha256), data)

    # -- http pages -------------------------------------------------------------------

    def _http_rel(self, key: str) -> str:
        return os.path.join("http", hashlib.sha256(key.encode()).hexdigest() + ".json")

    def get_page(self, key: str) -> dict[str, Any] | None:
        import json  # (not needed by a lock answered from its memo)

        body = self._read_sealed(self._http_rel(key))
        if body is None:
            return None
        try:
            data = json.loads(body)
        except ValueError:
            return None
        if isinstance(data, dict) and data.get("key") == key:
            return data
        return None

    def put_page(self, key: str, entry: dict[str, Any]) -> None:
        import json  # (not needed by a lock answered from its memo)

        entry = {**entry, "key": key, "stored": time.time()}
        self._write_sealed(self._http_rel(key), json.dumps(entry).encode())

    # -- verdicts of wheel validation, by the wheel's sha256 (sealed) -------------------

    @staticmethod
    def _verdict_rel(wheel_sha256: str) -> str:
        return os.path.join("verdicts", wheel_sha256[:2], wheel_sha256[2:] + ".json")

    def get_verdict(self, wheel_sha256: str) -> dict[str, Any] | None:
        import json  # (not needed by a lock answered from its memo)

        if self.root is None:
            return None
        body = self._read_sealed(self._verdict_rel(wheel_sha256))
        try:
            data = json.loads(body) if body is not None else None
        except ValueError:
            return None
        return data if isinstance(data, dict) and data.get("sha256") == wheel_sha256 else None

    def put_verdict(self, wheel_sha256: str, verdict: dict[str, Any]) -> None:
        import json  # (not needed by a lock answered from its memo)

        self._write_sealed(self._verdict_rel(wheel_sha256),
                           json.dumps({**verdict, "sha256": wheel_sha256}).encode())
