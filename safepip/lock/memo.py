"""A lock's memo: what ``safepip lock`` wrote, answered again while nothing it read changed.

A lock is a function of its inputs: the command line, the environment, the working
directory, the files it read (requirements, pyproject.toml, pip's configuration, the
trust store, the cached index pages and metadata, the interpreter's cached facts) and
the time (index pages stay fresh for their max-age; the cooldown moves). A run that
resolved records them all: every file opened for reading and every directory listed,
seen by an audit hook (``sys.addaudithook``: nothing that reads escapes it, in any
thread), with each file's identity (device, inode, size, modification and change times)
at the moment it was read, and the instant from which the answer may differ (the first
cached page to go stale, the first held-back file to leave the cooldown). What the code
decides by looking rather than reading (a --find-links location exists, a file: index
has a page) it says with a ``safepip.stat`` audit event, recorded the same way; where
the interpreter is and the nearest pyproject.toml are part of the key. The next run
with the same command line, environment and directory looks its memo up before parsing
that command line (``cli._lock_from_memo``), let alone importing the resolver: if
every file and directory is as it was, and that instant has not come, the lock is the
recorded one. Otherwise, or when anything the run used could not be
recorded (a page fetched without a cache entry, a remote --find-links page, a local
project, a source build, a provenance that could not be fetched, a file changed just
before it was read), it resolves as always.

The memo is sealed like every cached fact (``fetch.cache``): a cache restored from
elsewhere cannot make a run write a lock of its choosing. ``--no-cache`` never uses one.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import stat
import sys
import threading
import time

from safepip import __version__

# typing is not imported at run time (4 ms of a lock answered from its memo)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any

    from safepip.fetch.cache import Cache

MEMO_VERSION = 2
# what differs between two runs of the same command in the same shell without bearing on
# the lock; a variable a requirements file names as ${VAR} is never one of these
_VOLATILE_ENV = frozenset({"_", "OLDPWD", "SHLVL", "COLUMNS", "LINES",
                           "PYTEST_CURRENT_TEST"})


def nearest_pyproject(start: str) -> str | None:
    """The pyproject.toml whose ``[tool.safepip]`` a run reads (found by stat, which the
    audit hook does not see: so it is part of the key)."""
    d = os.path.abspath(start)
    while True:
        path = os.path.join(d, "pyproject.toml")
        if os.path.isfile(path):
            return path
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def key(argv: Sequence[str], env: Mapping[str, str], cwd: str) -> str:
    """What two runs must share for one to answer the other."""
    doc = repr((MEMO_VERSION, __version__, sys.version, list(argv), list(sys.argv), cwd,
                nearest_pyproject(cwd),
                sorted((k, v) for k, v in env.items() if k not in _VOLATILE_ENV)))
    return hashlib.sha256(doc.encode("utf-8", "surrogateescape")).hexdigest()


# a file changed this shortly before it was read might change again within the same
# tick of the file system's clock (Linux stamps files with a coarse clock: a few ms)
# and keep its identity: such a run is not remembered ("racy git", which git's index
# guards the same way)
RACY_NS = 50_000_000


def _identity(path: str) -> tuple[str, int | None]:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return "absent", None
    except OSError as exc:
        return f"error {exc.errno}", None
    kind = "d" if stat.S_ISDIR(st.st_mode) else "f"
    return (f"{kind}:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}",
            max(st.st_mtime_ns, st.st_ctime_ns))


def signature(path: str) -> str:
    """A file's identity now: a rewrite (safepip's cache writes are replacements), an
    edit or a removal changes it. For a directory, what a listing of it decided: POSIX
    moves its modification time with every entry made, removed or renamed in it (a stat:
    listing and hashing the import system's directories made recording cost 5% of a
    cold lock)."""
    return _identity(path)[0]


class Recorder:
    """Every file a run opens for reading and every directory it lists ("f", "d"), as
    it was then."""

    def __init__(self, exclude: Iterable[str]) -> None:
        self.exclude = tuple(os.path.join(os.path.abspath(p), "") for p in exclude)
        self.inputs: dict[tuple[str, str], str] = {}
        self.racy: list[str] = []  # inputs changed just before they were read
        self._busy = threading.local()  # the hook's own stat is not a read of the run

    def saw(self, kind: str, path: str) -> None:
        path = os.path.abspath(path)
        if path.startswith(self.exclude) or (kind, path) in self.inputs:
            return
        sig, changed_ns = _identity(path)
        self.inputs[(kind, path)] = sig
        if changed_ns is not None and changed_ns >= time.time_ns() - RACY_NS:
            self.racy.append(path)

    def __enter__(self) -> Recorder:
        global _active
        _install_hook()
        _active = self
        return self

    def __exit__(self, *exc: object) -> None:
        global _active
        _active = None


_active: Recorder | None = None
_hook_installed = False
_WRITING = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


_EVENTS = frozenset({"open", "os.listdir", "os.scandir", "safepip.stat"})


def _audit(event: str, args: tuple[Any, ...]) -> None:
    # called for every audited event of the process (thousands in a run: imports, exec,
    # sockets), so the others are turned away first
    if event not in _EVENTS:
        return
    rec = _active
    if rec is None or getattr(rec._busy, "on", False):
        return
    try:
        rec._busy.on = True
        if event == "open":
            path, mode, flags = args
            if isinstance(path, bytes):
                path = os.fsdecode(path)
            if not isinstance(path, str):
                return  # a descriptor: its file was opened (and seen) before
            writing = (any(c in mode for c in "wax+") if isinstance(mode, str)
                       else isinstance(flags, int) and bool(flags & _WRITING))
            if not writing:
                rec.saw("f", path)
        elif event == "safepip.stat" and isinstance(args[0], str):
            rec.saw("f", args[0])  # a decision made by looking (exists, isdir)
        elif event in ("os.listdir", "os.scandir"):
            path = args[0] if args and args[0] is not None else "."
            if isinstance(path, bytes):
                path = os.fsdecode(path)
            if isinstance(path, str):
                rec.saw("d", path)
    except Exception:  # noqa: BLE001 - an audit hook must never break what it watches
        with contextlib.suppress(Exception):
            rec.inputs[("!", "")] = "unrecorded"  # a memo that cannot be trusted
    finally:
        rec._busy.on = False


def _install_hook() -> None:
    global _hook_installed
    if not _hook_installed:
        sys.addaudithook(_audit)  # for good: audit hooks cannot be removed (PEP 578)
        _hook_installed = True


def _rel(memo_key: str) -> str:
    # marshal, not json: no module to import (json costs a lock answered from its memo a
    # fifth of its time), and what is loaded is sealed by this user's key first
    return os.path.join("memo", memo_key[:2], memo_key[2:] + ".marshal")


def save(cache: Cache, memo_key: str, rec: Recorder, valid_until: float, target: str,
         python: str | None, answer: dict[str, Any]) -> str | None:
    """Remember this run's ``answer`` (the lock's text, the summary line, what was said
    on the way and what the command line said of the output: ``output_file``, ``check``,
    ``verbosity``) for the interpreter ``target`` (a fingerprint of the one ``--python
    python`` found); staged: it reaches the cache when the run commits. Returns why it
    was not remembered, if it was not."""
    if ("!", "") in rec.inputs:
        return "a read could not be recorded"
    if rec.racy:
        return f"{rec.racy[0]} changed as it was read"
    if valid_until <= time.time():
        return "an index page it used says nothing of how long it stays fresh (no max-age)"
    entry = {"key": memo_key, "valid_until": valid_until, "target": target,
             "python": python, **answer,
             "inputs": [[k, p, s] for (k, p), s in sorted(rec.inputs.items())]}
    cache.put_sealed(_rel(memo_key), marshal.dumps(entry))
    return None


_ANSWER_TYPES = {"text": str, "summary": str, "output_file": str, "check": bool,
                 "verbosity": int}


def lookup(cache: Cache, memo_key: str,
           target: Callable[[str | None], str | None]) -> dict[str, Any] | None:
    """The recorded answer when nothing it depended on changed, else None. ``target``
    gives the fingerprint of the interpreter a --python names now."""
    body = cache.get_sealed(_rel(memo_key))
    if body is None:
        return None
    try:
        entry = marshal.loads(body)  # only once its seal proved it ours
        if entry["key"] != memo_key or float(entry["valid_until"]) <= time.time():
            return None
        if not (all(isinstance(entry[k], t) for k, t in _ANSWER_TYPES.items())
                and all(isinstance(k, str) and isinstance(m, str)
                        for k, m in entry["messages"])
                and (entry["python"] is None or isinstance(entry["python"], str))):
            return None
        for _kind, path, sig in entry["inputs"]:
            if signature(path) != sig:
                return None
        if entry["target"] != target(entry["python"]):
            return None
    except (ValueError, KeyError, TypeError, EOFError):
        return None
    return dict(entry)
