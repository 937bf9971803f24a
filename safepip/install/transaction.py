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

import contextlib
import errno
import fcntl
import io
import json
import os
import shutil
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from installer.destinations import SchemeDictionaryDestination

from safepip.errors import InstallError, SafepipError, WheelError
from safepip.install.installed import file_owners, record_paths

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from installer.records import RecordEntry
    from installer.utils import Scheme

    from safepip.install.wheel import WheelInfo
    from safepip.models import InstalledDist
    from safepip.target import Target


@dataclass
class InstallItem:
    """One wheel to install, and what it replaces."""

    wheel: WheelInfo
    requested: bool
    replaces: InstalledDist | None = None
    direct_url: str | None = None


def _within(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


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
    """installer's destination, writing under ``destdir`` with safepip's checks."""

    def __init__(self, *, target: Target, stage: str, dist_name: str, owners: dict[str, set[str]],
                 claimed: dict[str, str], filename: str) -> None:
        super().__init__(
            scheme_dict=dict(target.scheme),
            interpreter=target.interpreter.executable,
            script_kind="posix",
            destdir=stage,
        )
        self.target = target
        self.dist_name = dist_name
        self.owners = owners
        self.claimed = claimed
        self.filename = filename
        self.written: list[str] = []

    def write_to_fs(self, scheme: Scheme, path: str, stream: BinaryIO,
                    is_executable: bool) -> RecordEntry:
        base = os.path.abspath(self.scheme_dict[scheme])
        real = os.path.abspath(os.path.join(base, path))
        if not _within(real, base):
            raise WheelError(self.filename, "member-path",
                             f"{path!r} would be written outside {scheme}")
        # the nearest existing ancestor must really be inside the scheme directory: a
        # symlinked directory must not carry the write elsewhere (row 2)
        anc = os.path.dirname(real)
        while not os.path.lexists(anc) and anc != os.path.dirname(anc):
            anc = os.path.dirname(anc)
        if _within(anc, base) and not _within(os.path.realpath(anc),
                                              os.path.realpath(base)):
            raise WheelError(self.filename, "symlinked-dir",
                             f"{anc} is a link to {os.path.realpath(anc)}, outside the "
                             "environment; refusing to write through it")
        if os.path.islink(real):
            raise WheelError(self.filename, "symlinked-dir",
                             f"{real} is a symbolic link; refusing to write through it")
        others = sorted(self.owners.get(real, set()) - {self.dist_name})
        if others:
            owner = others[0]
            raise WheelError(self.filename, "file-conflict",
                             f"{path} belongs to the installed distribution {owner}",
                             hint=f"uninstall {owner} first if it should be replaced")
        other = self.claimed.get(real)
        if other is not None and other != self.dist_name:
            raise WheelError(self.filename, "file-conflict",
                             f"{path} is also installed by {other} in this same install")
        self.claimed[real] = self.dist_name
        self.written.append(real)
        return super().write_to_fs(scheme, path, stream, is_executable)


def _stage_one(item: InstallItem, target: Target, stage: str, owners: dict[str, set[str]],
               claimed: dict[str, str]) -> list[str]:
    from installer import install
    from installer.sources import WheelFile

    w = item.wheel
    dest = _Destination(target=target, stage=stage, dist_name=_cname(w.name), owners=owners,
                        claimed=claimed, filename=w.filename)
    extra: dict[str, bytes] = {"INSTALLER": b"safepip\n"}
    if item.requested:
        extra["REQUESTED"] = b""
    if item.direct_url:
        extra["direct_url.json"] = json.dumps({"url": item.direct_url, "archive_info": {}}
                                              ).encode()
    with zipfile.ZipFile(io.BytesIO(w.data)) as zf:
        zf.filename = w.filename
        source = WheelFile(zf)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                install(source, dest, extra)
            except SafepipError:
                raise
            except (ValueError, KeyError, OSError) as exc:
                raise WheelError(w.filename, "install", str(exc)) from exc
        w.warnings.extend(str(c.message) for c in caught)
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
        fault: Callable[[int], None] | None = None) -> None:
    """Install ``items`` into ``target`` as one transaction.

    ``fault`` is a test hook called before each file is committed (with the count so far).
    """
    os.makedirs(target.root, exist_ok=True)
    with environment_lock(target.root, on_wait):
        owners = file_owners(installed)
        stage = tempfile.mkdtemp(prefix=".safepip-stage-", dir=target.root)
        try:
            claimed: dict[str, str] = {}
            for item in items:
                _stage_one(item, target, stage, owners, claimed)
            _commit(items, target, stage, owners, fault)
        finally:
            shutil.rmtree(stage, ignore_errors=True)


def _commit(items: list[InstallItem], target: Target, stage: str, owners: dict[str, set[str]],
            fault: Callable[[int], None] | None) -> None:
    backup = tempfile.mkdtemp(prefix=".safepip-backup-", dir=target.root)
    moved: list[tuple[str, str]] = []
    created: list[str] = []
    made_dirs: list[str] = []
    emptied: set[str] = set()
    n = 0

    def move_aside(path: str) -> None:
        nonlocal n
        n += 1
        dst = os.path.join(backup, str(n))
        os.replace(path, dst)
        moved.append((path, dst))
        emptied.add(os.path.dirname(path))

    try:
        for item in items:
            if item.replaces is not None:
                for p in _old_files(item.replaces, target, owners):
                    move_aside(p)
        count = 0
        for dirpath, _dirs, files in os.walk(stage):
            for fn in files:
                src = os.path.join(dirpath, fn)
                real = os.sep + os.path.relpath(src, stage)
                if fault is not None:
                    fault(count)
                if os.path.lexists(real):
                    move_aside(real)
                parent = os.path.dirname(real)
                missing = []
                while not os.path.exists(parent):
                    missing.append(parent)
                    parent = os.path.dirname(parent)
                for d in reversed(missing):
                    os.mkdir(d)
                    made_dirs.append(d)
                os.replace(src, real)
                created.append(real)
                count += 1
    except BaseException as exc:
        for path in reversed(created):
            with contextlib.suppress(OSError):
                os.unlink(path)
        for d in reversed(made_dirs):
            with contextlib.suppress(OSError):
                os.rmdir(d)
        for path, dst in reversed(moved):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.replace(dst, path)
        shutil.rmtree(backup, ignore_errors=True)
        if isinstance(exc, OSError):
            raise InstallError(f"installing failed and was rolled back: {exc}",
                               hint="nothing was changed in the environment") from exc
        raise
    shutil.rmtree(backup, ignore_errors=True)
    _prune_empty(emptied, [os.path.abspath(p) for p in target.scheme.values()])


def _prune_empty(dirs: set[str], stop: list[str]) -> None:
    for d in sorted(dirs, key=len, reverse=True):
        cur = d
        while cur not in stop and any(_within(cur, s) for s in stop):
            try:
                os.rmdir(cur)
            except OSError:
                break
            cur = os.path.dirname(cur)


def uninstall_paths(dist: InstalledDist, target: Target,
                    installed: dict[str, InstalledDist]) -> list[str]:
    """What an uninstall of ``dist`` would remove (used by the plan and tests)."""
    return _old_files(dist, target, file_owners(installed))
