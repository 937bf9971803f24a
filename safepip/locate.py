"""Where things are, found with ``os`` alone: the interpreter an install or a lock is
for, what its cached facts depend on, and safepip's own user directories.

Kept apart from ``target`` (dataclasses, subprocess, the probe) and ``config``: a lock
answered from its memo (``lock.memo``) needs these and nothing heavier.
"""

from __future__ import annotations

import os
import sys

from safepip.errors import TargetError

# the probe: a script run inside the target interpreter with -I -S (only the stdlib and
# the copy of `packaging` that ships with safepip are importable there)
PROBE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_probe.py")

_NO_ENV_HINT = (
    "create one and activate it:  python3 -m venv .venv && . .venv/bin/activate\n"
    "or name one with --python PATH; --system installs into the system interpreter"
)


def _user_dir(env: str, xdg: str, xdg_default: str, kind: str) -> str:
    """``env`` if set; else the platform's user directory of this ``kind`` ("data",
    "cache"): on Linux the XDG one, computed as platformdirs does without importing it
    (4 ms of every run); elsewhere platformdirs'."""
    value = os.environ.get(env)
    if value:
        return os.path.abspath(value)
    if sys.platform.startswith("linux"):
        base = os.environ.get(xdg, "").strip()
        if not base or not os.path.isabs(base):
            base = os.path.expanduser(xdg_default)
        return os.path.join(base, "safepip")
    import platformdirs

    return str(getattr(platformdirs, f"user_{kind}_dir")("safepip", appauthor=False))


def default_data_dir() -> str:
    """Where safepip keeps its own state (trust store, cache key)."""
    return _user_dir("SAFEPIP_DATA_DIR", "XDG_DATA_HOME", "~/.local/share", "data")


def default_cache_dir() -> str:
    return _user_dir("SAFEPIP_CACHE_DIR", "XDG_CACHE_HOME", "~/.cache", "cache")


def cache_root(cache_dir: str | None) -> str:
    """The cache a run uses: ``--cache-dir``, else the default."""
    return os.path.abspath(cache_dir) if cache_dir else default_cache_dir()


def no_cache(flag: bool = False) -> bool:
    """``--no-cache`` or ``SAFEPIP_NO_CACHE=1``."""
    return flag or os.environ.get("SAFEPIP_NO_CACHE", "") == "1"


def _venv_python(env_dir: str) -> str | None:
    for rel in ("bin/python", "bin/python3", "Scripts/python.exe"):
        cand = os.path.join(env_dir, rel)
        if os.path.exists(cand):
            return cand
    return None


def _which(name: str) -> str | None:
    """``shutil.which`` without importing shutil on POSIX (with bz2, lzma and re: a
    tenth of a lock answered from its memo)."""
    if os.name == "nt":
        import shutil

        return shutil.which(name)
    dirs = [""] if os.sep in name else os.environ.get("PATH", os.defpath).split(os.pathsep)
    for d in dirs:
        cand = os.path.join(d, name)
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def find_interpreter(python: str | None, system: bool) -> str:
    """The path of the interpreter to install for (not probed yet)."""
    if python:
        p = os.path.expanduser(python)
        if os.path.isdir(p):
            found = _venv_python(p)
            if found is None:
                raise TargetError(f"--python {python}: no Python interpreter in this directory")
            return found
        if os.path.exists(p):
            return p
        which = _which(python)
        if which:
            return which
        raise TargetError(f"--python {python}: no such interpreter")
    venv = os.environ.get("VIRTUAL_ENV")
    if venv and not system:
        found = _venv_python(venv)
        if found is None:
            raise TargetError(
                f"VIRTUAL_ENV is set to {venv}, but it holds no Python interpreter",
                hint=_NO_ENV_HINT,
            )
        return found
    if not system:
        d = os.path.realpath(os.getcwd())
        while True:
            cand = os.path.join(d, ".venv")
            if os.path.isdir(cand):
                found = _venv_python(cand)
                if found is not None:
                    return found
            parent = os.path.dirname(d)
            if parent == d:
                break
            d = parent
        raise TargetError("no virtual environment found (VIRTUAL_ENV, or .venv here or above)",
                          hint=_NO_ENV_HINT)
    which = _which("python3") or _which("python")
    if not which:
        raise TargetError("--system: no python3 on PATH")
    return which


def locate(python: str | None, *, system: bool = False, target_dir: str | None = None,
           for_lock: bool = False) -> str:
    """The interpreter an install (or a lock) is for, without running it: cheap, and
    the place where "no virtual environment" is said."""
    if for_lock:
        # a lock is resolved for the environment's interpreter, else python3 on PATH:
        # nothing is installed, so neither a virtual environment nor PEP 668 is required
        try:
            return find_interpreter(python, False)
        except TargetError:
            if python:
                raise
            return find_interpreter(None, True)
    # --target writes into a plain directory: any interpreter's tags will do, so an
    # absent venv is not an error there (pip uses its own interpreter in that case).
    return find_interpreter(python, system or target_dir is not None)


_probe_digests: list[str] = []


def _probe_digest() -> str:
    """The probe script's sha256, read once per process (a run fingerprints its
    interpreter up to three times: the memo, the probe started ahead, the probe)."""
    if not _probe_digests:
        import hashlib

        with open(PROBE_SCRIPT, "rb") as f:
            _probe_digests.append(hashlib.sha256(f.read()).hexdigest())
    return _probe_digests[0]


def fingerprint(executable: str) -> str | None:
    """What the probe's answer depends on: the interpreter binary it resolves to, the
    venv's pyvenv.cfg, the probe itself and safepip's version."""
    from safepip import __version__

    parts = [executable, __version__, _probe_digest()]
    try:
        for path in (os.path.realpath(executable),
                     os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
                         executable))), "pyvenv.cfg")):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                parts.append(f"{path}:absent")
                continue
            parts.append(f"{path}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}")
    except OSError:
        return None
    return "interpreter " + "|".join(parts)
