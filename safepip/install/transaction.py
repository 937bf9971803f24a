"""All-or-nothing installs: stage every wheel, then commit with rollback.

1. Every wheel is written by ``installer`` into a staging directory inside the target
   (same filesystem), through a destination that refuses writes through symlinked
   directories and writes over another distribution's files (threats.md rows 2, 29).
2. Commit: the files of versions being replaced are moved aside (only paths inside the
   scheme directories that the old RECORD lists and no other distribution owns, row
   31), then each staged file is renamed into place. Any failure puts back exactly what
   was there (row 27 for exceptions; a crash-safe journal is not there yet).
3. One install at a time per environment: an exclusive ``flock`` on the environment's
   directory itself, so no lock file is left behind (row 28).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import functools
import hashlib
import io
import json
import os
import shutil
import tempfile
import threading
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, BinaryIO

from installer.destinations import SchemeDictionaryDestination

from safepip._record import record
from safepip.errors import (
    DiskFullError,
    InstallError,
    SafepipError,
    WheelError,
    is_disk_full,
)
from safepip.install.installed import file_owners, record_paths
from safepip.install.unpacked import PathStream

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from installer.records import RecordEntry
    from installer.sources import WheelSource
    from installer.utils import Scheme

    from safepip.install.wheel import WheelInfo
    from safepip.models import InstalledDist
    from safepip.target import Target


@record
class InstallItem:
    """One wheel to install, and what it replaces."""

    wheel: WheelInfo
    requested: bool
    replaces: InstalledDist | None = None
    direct_url: dict[str, object] | None = None  # PEP 610 direct_url.json
    unpacked: str | None = None  # a complete unpacked cache entry to copy from
    new_unpacked: Callable[[], str] | None = None  # makes a (staged) entry to unpack into
    hardlink: bool = False  # --link-mode=hardlink: link files from the unpacked cache


def _within(path: str, root: str) -> bool:
    """``path`` is ``root`` or below it (both absolute and normalized: no ``..``)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


@contextlib.contextmanager
def environment_lock(root: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on the environment directory (no file is created)."""
    fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            if on_wait:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class _Destination(SchemeDictionaryDestination):
    """installer's destination, writing under a staging directory with safepip's checks.

    Each file is hashed while it is written and compared with the wheel's RECORD entry
    for it (the one decompression of that member), so a file whose bytes differ from
    RECORD stops the install before anything reaches the environment.
    """

    def __init__(self, run: _Run, wheel: WheelInfo, hardlink: bool = False) -> None:
        super().__init__(
            scheme_dict=dict(run.target.scheme),
            interpreter=run.target.interpreter.executable,
            script_kind="posix",
            destdir=run.stage,
        )
        self.run = run
        self.stage = run.stage
        self.wheel = wheel
        self.dist_name = _cname(wheel.name)
        self.filename = wheel.filename
        self.owners = run.owners
        self.claimed = run.claimed
        self.lock = run.lock
        self.bases = run.bases
        self.real_bases = run.real_bases
        self.checked_dirs: set[str] = set()
        self.absent_dirs: set[str] = set()  # checked, and not in the environment yet
        self.made_dirs: set[str] = set()
        self.written: list[str] = []
        self.hardlink = hardlink

    def _member(self, scheme: str, path: str) -> str:
        if scheme == self.wheel.root_scheme:
            return path
        return f"{self.wheel.data_dir}/{scheme}/{path}"

    def _check_dir(self, directory: str, scheme: str) -> None:
        """The nearest existing ancestor must really lie in the scheme directory (row 2)."""
        if directory in self.checked_dirs:
            return
        if os.path.dirname(directory) in self.absent_dirs:  # nothing below exists either
            self.absent_dirs.add(directory)
            self.checked_dirs.add(directory)
            return
        anc = directory
        while not os.path.lexists(anc) and anc != os.path.dirname(anc):
            anc = os.path.dirname(anc)
        if _within(anc, self.bases[scheme]) and not _within(self.run.realpath(anc),
                                                            self.real_bases[scheme]):
            raise WheelError(self.filename, "symlinked-dir",
                             f"{anc} is a link to {os.path.realpath(anc)}, outside the "
                             "environment; refusing to write through it")
        if anc != directory:
            self.absent_dirs.add(directory)
        self.checked_dirs.add(directory)

    def _make_dir(self, path: str) -> None:
        # one mkdir when the parent was made by this destination, else the whole chain
        if os.path.dirname(path) in self.made_dirs:
            try:
                os.mkdir(path)
            except FileExistsError:  # another wheel staged beside this one made it
                pass
        else:
            os.makedirs(path, exist_ok=True)
        self.made_dirs.add(path)

    def write_to_fs(self, scheme: Scheme, path: str, stream: BinaryIO,
                    is_executable: bool) -> RecordEntry:
        from installer.records import Hash, RecordEntry

        base = self.bases[scheme]
        real = os.path.normpath(os.path.join(base, path))
        if not _within(real, base):
            raise WheelError(self.filename, "member-path",
                             f"{path!r} would be written outside {scheme}")
        directory = os.path.dirname(real)
        self._check_dir(directory, scheme)
        if directory not in self.absent_dirs and os.path.islink(real):
            raise WheelError(self.filename, "symlinked-dir",
                             f"{real} is a symbolic link; refusing to write through it")
        owners = self.owners.get(real)
        if owners and owners != {self.dist_name}:
            other = sorted(owners - {self.dist_name})[0]
            raise WheelError(self.filename, "file-conflict",
                             f"{path} belongs to the installed distribution {other}",
                             hint=f"uninstall {other} first if it should be replaced")
        with self.lock:
            other = self.claimed.setdefault(real, self.dist_name)
        if other != self.dist_name:
            raise WheelError(self.filename, "file-conflict",
                             f"{path} is also installed by {other} in this same install")
        expected = None if scheme == "scripts" else self.wheel.record.get(
            self._member(scheme, path))
        algo = expected[0] if expected else "sha256"
        h = hashlib.sha256() if algo == "sha256" else hashlib.new(algo)
        h256 = h if algo == "sha256" else hashlib.sha256()
        staged = self.stage + real
        parent = self.stage + directory
        if parent not in self.made_dirs:
            self._make_dir(parent)
        size = 0
        self.written.append(real)
        if self.hardlink and scheme != "scripts" and isinstance(stream, PathStream):
            source = stream.name
            # --link-mode=hardlink: the cached file becomes the installed one; it is still
            # hashed against RECORD first
            while chunk := stream.read(1024 * 1024):
                h.update(chunk)
                if h256 is not h:
                    h256.update(chunk)
                size += len(chunk)
            try:
                os.link(source, staged)
            except OSError as exc:  # another filesystem: copy after all
                if exc.errno == errno.EXDEV:
                    self.hardlink = False  # and copy the wheel's other files at once
                shutil.copyfile(source, staged)
                if is_executable:
                    os.chmod(staged, 0o755)
        else:
            fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            try:
                while chunk := stream.read(1024 * 1024):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
                    h.update(chunk)
                    if h256 is not h:
                        h256.update(chunk)
                    size += len(chunk)
            finally:
                os.close(fd)
            if is_executable:
                os.chmod(staged, 0o755)
        digest = base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()
        if expected is not None and (digest != expected[1] or size != expected[2]):
            raise WheelError(self.filename, "record",
                             f"hash / size of {self._member(scheme, path)} didn't match RECORD")
        if h256 is not h:
            digest = base64.urlsafe_b64encode(h256.digest()).rstrip(b"=").decode()
        return RecordEntry(path, Hash("sha256", digest), size)


def _stage_jobs() -> int:
    """Staging threads. Half of staging is Python holding the GIL: two threads overlap
    one's system calls with the other's Python; more only trade the GIL back and forth
    (measured on 2 cores, the 30-package set: 1 thread 1.3x, 4 threads 1.2x, 8 threads
    1.6x the time of 2)."""
    jobs = os.environ.get("SAFEPIP_STAGE_JOBS")
    if jobs and jobs.isdigit() and int(jobs) > 0:
        return int(jobs)
    return 2


class _Run:
    """What the wheels staged by one ``run`` share."""

    def __init__(self, target: Target, stage: str, owners: dict[str, set[str]]) -> None:
        self.target = target
        self.stage = stage
        self.owners = owners
        self.claimed: dict[str, str] = {}  # path -> the distribution staging it
        self.lock = threading.Lock()
        self.bases = {k: os.path.abspath(v) for k, v in target.scheme.items()}
        self.real_bases = {k: self.realpath(v) for k, v in target.scheme.items()}

    @functools.cache  # noqa: B019 -- one run, whose environment is locked meanwhile
    def realpath(self, path: str) -> str:
        return os.path.realpath(path)


def _stage_one(item: InstallItem, run: _Run) -> list[str]:
    """Stage one wheel: from its unpacked cache entry when there is a good one."""
    from safepip.install.unpacked import UnpackedSource, unpack

    w = item.wheel
    if item.unpacked is not None:
        dest = _Destination(run, w, hardlink=item.hardlink)
        try:
            return _install_from(UnpackedSource(w, item.unpacked), dest, item)
        except (WheelError, OSError) as exc:
            if (isinstance(exc, WheelError) and exc.rule != "record") or is_disk_full(exc):
                raise
            # the cache entry was changed or damaged: forget what it staged and use
            # the verified wheel itself (a fresh entry replaces it if the run succeeds)
            for real in dest.written:
                with contextlib.suppress(OSError):
                    os.unlink(run.stage + real)
                with run.lock:
                    run.claimed.pop(real, None)
    if item.new_unpacked is not None:
        unpack_to = item.new_unpacked()
        unpack(w, unpack_to)
        dest = _Destination(run, w, hardlink=item.hardlink)
        return _install_from(UnpackedSource(w, unpack_to), dest, item)
    from installer.sources import WheelFile

    dest = _Destination(run, w)
    with zipfile.ZipFile(io.BytesIO(w.data)) as zf:
        zf.filename = w.filename
        return _install_from(WheelFile(zf), dest, item)


def _install_from(source: WheelSource, dest: _Destination, item: InstallItem) -> list[str]:
    from installer import install

    extra: dict[str, bytes] = {"INSTALLER": b"safepip\n"}
    if item.requested:
        extra["REQUESTED"] = b""
    if item.direct_url:
        extra["direct_url.json"] = json.dumps(item.direct_url).encode()
    try:
        install(source, dest, extra)
    except SafepipError:
        raise
    except (ValueError, KeyError) as exc:
        raise WheelError(item.wheel.filename, "install", str(exc)) from exc
    return dest.written


def _cname(name: str) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(name)


def _old_files(dist: InstalledDist, target: Target, owners: dict[str, set[str]]) -> list[str]:
    """Files of an installed version that may be removed: inside the scheme, its own."""
    bases = [(os.path.abspath(b), os.path.realpath(b)) for b in target.scheme.values()]
    out = []
    for p in record_paths(dist):
        parent = os.path.realpath(os.path.dirname(p))
        if not any(_within(p, lex) and _within(parent, real) for lex, real in bases):
            continue  # outside the environment: never touched (row 31)
        if owners.get(p, set()) - {dist.name}:
            continue  # another distribution lists it too: it stays
        if os.path.isdir(p) and not os.path.islink(p):
            continue
        if os.path.lexists(p):
            out.append(p)
        if p.endswith(".py"):
            cache = os.path.join(os.path.dirname(p), "__pycache__")
            stem = os.path.basename(p)[:-3] + "."
            with contextlib.suppress(OSError):
                out.extend(os.path.join(cache, f) for f in os.listdir(cache)
                           if f.startswith(stem) and f.endswith(".pyc"))
    return sorted(set(out))


def run(items: list[InstallItem], target: Target, installed: dict[str, InstalledDist],
        on_wait: Callable[[], None] | None = None,
        fault: Callable[[int], None] | None = None,
        removals: list[InstalledDist] | None = None) -> list[str]:
    """Install ``items`` into ``target`` and remove ``removals`` (by their RECORD, only
    inside the environment) as one transaction; return installer's warnings.

    ``fault`` is a test hook called before each file is committed (with the count so far).
    """
    os.makedirs(target.root, exist_ok=True)
    with environment_lock(target.root, on_wait):
        notes = [f"an install interrupted earlier was rolled back ({p})"
                 for p in recover(target.root)]
        if notes:  # what was installed has changed back: read it again
            from safepip.install.installed import scan

            installed = scan(target)
        owners = file_owners(installed)
        stage = tempfile.mkdtemp(prefix=".safepip-stage-", dir=target.root)
        try:
            shared = _Run(target, stage, owners)
            # wheels are staged in parallel: zlib, hashing and file writes release the GIL.
            # Warnings (installer skips __pycache__ members with one) are caught here, in
            # one place, since catch_warnings is process-wide state.
            with warnings.catch_warnings(record=True) as caught, ThreadPoolExecutor(
                    max_workers=_stage_jobs()) as pool:
                warnings.simplefilter("always")
                futs = [(item, pool.submit(_stage_one, item, shared)) for item in items]
                for item, fut in futs:
                    try:
                        fut.result()
                    except OSError as exc:
                        if is_disk_full(exc):
                            raise DiskFullError(
                                f"installing {item.wheel.filename}", target.root,
                                hint="free some space there; nothing was changed in the "
                                     "environment") from exc
                        raise InstallError(
                            f"installing {item.wheel.filename} failed: {exc}",
                            hint="nothing was changed in the environment") from exc
            _commit(items, target, stage, owners, fault, removals or [])
            return notes + [str(c.message) for c in caught]
        finally:
            shutil.rmtree(stage, ignore_errors=True)


def _commit(items: list[InstallItem], target: Target, stage: str, owners: dict[str, set[str]],
            fault: Callable[[int], None] | None, removals: list[InstalledDist]) -> None:
    backup = tempfile.mkdtemp(prefix=".safepip-backup-", dir=target.root)
    moved: list[tuple[str, str]] = []
    created: list[str] = []
    made_trees: list[str] = []
    emptied: set[str] = set()
    n = 0
    # The journal says what is about to happen before it happens, so that a process
    # killed in the middle (SIGKILL, power cut) can be undone by the next run: `recover`.
    journal = open(os.path.join(backup, JOURNAL), "w", encoding="utf-8")  # noqa: SIM115
    crash_at = int(os.environ.get("SAFEPIP_TEST_CRASH_AT", "-1"))  # tests only

    def intend(kind: str, *paths: str) -> None:
        journal.write(kind + "\t" + "\t".join(paths) + "\n")
        journal.flush()

    def move_aside(path: str) -> None:
        nonlocal n
        n += 1
        dst = os.path.join(backup, str(n))
        intend("M", path, str(n))
        os.replace(path, dst)
        moved.append((path, dst))
        emptied.add(os.path.dirname(path))

    try:
        for old in [item.replaces for item in items if item.replaces is not None] + removals:
            for p in _old_files(old, target, owners):
                move_aside(p)
        count = 0
        for dirpath, dirs, files in os.walk(stage):
            real_dir = os.sep + os.path.relpath(dirpath, stage) if dirpath != stage else os.sep
            keep = []
            for d in dirs:
                real = os.path.join(real_dir, d)
                if os.path.lexists(real):
                    keep.append(d)
                    continue
                # a directory that does not exist yet moves in as a whole (one rename)
                if fault is not None:
                    fault(count)
                if count == crash_at:
                    os._exit(137)
                intend("T", real)
                os.replace(os.path.join(dirpath, d), real)
                made_trees.append(real)
                count += 1
            dirs[:] = keep
            for fn in files:
                src = os.path.join(dirpath, fn)
                real = os.path.join(real_dir, fn)
                if fault is not None:
                    fault(count)
                if count == crash_at:
                    os._exit(137)
                if os.path.lexists(real):
                    move_aside(real)
                intend("C", real)
                os.replace(src, real)
                created.append(real)
                count += 1
    except BaseException as exc:
        journal.close()
        for path in reversed(created):
            with contextlib.suppress(OSError):
                os.unlink(path)
        for tree in reversed(made_trees):
            shutil.rmtree(tree, ignore_errors=True)  # did not exist before this commit
        for path, dst in reversed(moved):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.replace(dst, path)
        shutil.rmtree(backup, ignore_errors=True)
        if is_disk_full(exc):
            raise DiskFullError("moving the new files into the environment", target.root,
                                hint="free some space there; the install was rolled back, "
                                     "nothing was changed") from exc
        if isinstance(exc, OSError):
            raise InstallError(f"installing failed and was rolled back: {exc}",
                               hint="nothing was changed in the environment") from exc
        raise
    journal.close()
    shutil.rmtree(backup, ignore_errors=True)
    _prune_empty(emptied, [os.path.abspath(p) for p in target.scheme.values()])


JOURNAL = "journal"


def recover(root: str) -> list[str]:
    """Undo installs that were killed halfway (their journal survives), and drop stale
    staging directories. Returns what was recovered, for the message."""
    done: list[str] = []
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return done
    for entry in entries:
        path = os.path.join(root, entry)
        if entry.startswith(".safepip-stage-"):
            shutil.rmtree(path, ignore_errors=True)
        elif entry.startswith(".safepip-backup-"):
            _undo(path, os.path.abspath(root))
            shutil.rmtree(path, ignore_errors=True)
            done.append(path)
    return done


def _undo(backup: str, root: str) -> None:
    try:
        with open(os.path.join(backup, JOURNAL), encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return
    for line in reversed(lines):
        kind, *paths = line.split("\t")
        if not paths or not _within(os.path.normpath(paths[0]), root):
            continue  # a journal only ever names paths inside its environment
        if kind == "C" and len(paths) == 1 and os.path.lexists(paths[0]):
            with contextlib.suppress(OSError):
                os.unlink(paths[0])
        elif kind == "T" and len(paths) == 1 and os.path.lexists(paths[0]):
            shutil.rmtree(paths[0], ignore_errors=True)
        elif kind == "M" and len(paths) == 2:
            saved = os.path.join(backup, os.path.basename(paths[1]))
            if os.path.lexists(saved):
                os.makedirs(os.path.dirname(paths[0]), exist_ok=True)
                os.replace(saved, paths[0])


def _prune_empty(dirs: set[str], stop: list[str]) -> None:
    for d in sorted(dirs, key=len, reverse=True):
        cur = d
        while cur not in stop and any(_within(cur, s) for s in stop):
            try:
                os.rmdir(cur)
            except OSError:
                break
            cur = os.path.dirname(cur)
