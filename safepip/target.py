"""Find the environment to install into, and ask its interpreter what it supports.

Discovery follows uv: ``--python PATH`` (an interpreter or an environment directory),
else ``$VIRTUAL_ENV``, else ``.venv`` in the working directory or a parent. Without
one of those safepip refuses, unless ``--system`` says a system interpreter is meant.
The interpreter is queried once, isolated (``-I -S``), so nothing in the target's
site-packages is imported while we look at it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

from safepip._record import record
from safepip.errors import TargetError

# finding the interpreter needs none of this module's imports (safepip.locate)
from safepip.locate import _NO_ENV_HINT, find_interpreter, fingerprint, locate
from safepip.locate import PROBE_SCRIPT as _PROBE_SCRIPT

if TYPE_CHECKING:
    from safepip.fetch.cache import Cache

__all__ = ["Interpreter", "Target", "discover", "find_interpreter", "fingerprint",
           "for_resolving", "locate", "probe", "start_probe"]


@record(frozen=True)
class Interpreter:
    """Facts about one Python interpreter."""

    executable: str
    prefix: str
    base_prefix: str
    version: str
    tags: tuple[str, ...]
    markers: dict[str, str]
    scheme: dict[str, str]
    prefix_scheme: str
    user_scheme: dict[str, str] | None
    stdlib: str

    @property
    def is_venv(self) -> bool:
        return self.prefix != self.base_prefix

    @property
    def externally_managed(self) -> bool:
        return os.path.exists(os.path.join(self.stdlib, "EXTERNALLY-MANAGED"))

    def scheme_for_prefix(self, prefix: str) -> dict[str, str]:
        """The install scheme with ``prefix`` in place of ``sys.prefix``."""
        out = {}
        for key, value in self.scheme.items():
            rel = os.path.relpath(value, self.prefix)
            out[key] = os.path.normpath(os.path.join(prefix, rel))
        return out


@record(frozen=True)
class Target:
    """Where files go: the interpreter whose tags and markers apply, and a scheme."""

    interpreter: Interpreter
    scheme: dict[str, str]  # purelib, platlib, scripts, data, headers
    root: str  # the directory every scheme path lies under: the lock and staging live here
    kind: str  # "venv", "system", "target", "prefix", "user"

    @property
    def site_dirs(self) -> list[str]:
        seen: list[str] = []
        for key in ("purelib", "platlib"):
            if self.scheme[key] not in seen:
                seen.append(self.scheme[key])
        return seen

    def describe(self) -> str:
        where = {"venv": "virtual environment", "system": "system environment"}.get(
            self.kind, self.kind
        )
        return f"{where} {self.root} (Python {self.interpreter.version})"


def probe(executable: str, cache: Cache | None = None) -> Interpreter:
    """The facts of ``executable``: from the cache when its fingerprint is unchanged
    (saves a subprocess, ~50 ms), else by running the isolated probe in it (or taking
    over the one ``start_probe`` began)."""
    key = fingerprint(executable) if cache is not None else None
    if cache is not None and key is not None:
        hit = cache.get_page(key)
        if hit is not None and isinstance(hit.get("facts"), dict):
            try:
                return _interpreter(hit["facts"])
            except (KeyError, TypeError):
                pass
    with _started_lock:
        known = _known.pop(executable, None)
    if known is not None:
        data = known
    elif is_running(executable):
        data = _facts_here(executable)
    else:
        data = _run_probe(executable)
    if cache is not None and key is not None:
        cache.put_page(key, {"facts": data})
    return _interpreter(data)


def is_running(executable: str) -> bool:
    """Whether ``executable`` is the interpreter safepip runs in, in the same environment
    (the same binary and the same virtual environment, or none): its facts can then be
    read here, without starting it again. Nothing is imported from it that is not
    imported already."""
    from safepip._probe import venv_dir

    try:
        if os.path.realpath(executable) != os.path.realpath(sys.executable):
            return False
        here, there = venv_dir(sys.executable), venv_dir(executable)
        if here is None or there is None:
            return here is there and sys.prefix == sys.base_prefix
        return os.path.samefile(here, there)
    except OSError:
        return False


def _facts_here(executable: str) -> dict[str, Any]:
    from safepip._probe import facts

    return facts(os.path.abspath(executable))


# probes started ahead of time, and facts read ahead of time, by executable (start_probe)
_started: dict[str, subprocess.Popen[str]] = {}
_known: dict[str, dict[str, Any]] = {}
_started_lock = threading.Lock()


def start_probe(executable: str, cache: Cache | None = None) -> None:
    """Begin probing ``executable`` in the background unless its facts are cached. The
    command line calls this first thing, so that the new interpreter starts and answers
    (~50 ms) while the rest of safepip is being imported; ``probe`` takes the answer
    over. Only a head start: a probe nobody takes over is just not used."""
    key = fingerprint(executable) if cache is not None else None
    if cache is not None and key is not None and cache.get_page(key) is not None:
        return
    if is_running(executable):
        # read here and now (~5 ms), before the run's threads compete for the GIL
        facts = _facts_here(executable)
        with _started_lock:
            _known[executable] = facts
        return
    with _started_lock:
        if executable not in _started:
            with contextlib.suppress(OSError):  # probe() runs it again and says why
                _started[executable] = _spawn_probe(executable)


def drop_started() -> None:
    """Stop the probes no run took over (one that ended before it needed them)."""
    with _started_lock:
        procs = list(_started.values())
        _started.clear()
        _known.clear()
    for proc in procs:
        proc.kill()
        proc.communicate()


def _spawn_probe(executable: str) -> subprocess.Popen[str]:
    import packaging

    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(packaging.__file__)))
    return subprocess.Popen([executable, "-I", "-S", _PROBE_SCRIPT, pkg_parent],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _run_probe(executable: str) -> dict[str, Any]:
    with _started_lock:
        started = _started.pop(executable, None)
    try:
        proc = started if started is not None else _spawn_probe(executable)
    except OSError as exc:
        raise TargetError(f"cannot run the interpreter {executable}: {exc}") from exc
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        proc.communicate()
        raise TargetError(f"the interpreter {executable} did not answer in 60 s") from exc
    if proc.returncode != 0:
        detail = err.strip().splitlines()[-1:] or ["no output"]
        raise TargetError(f"the interpreter {executable} could not be queried: {detail[0]}")
    data: dict[str, Any] = json.loads(out)
    return data


def _interpreter(data: dict[str, Any]) -> Interpreter:
    return Interpreter(
        executable=data["executable"],
        prefix=data["prefix"],
        base_prefix=data["base_prefix"],
        version=data["version"],
        tags=tuple(data["tags"]),
        markers=data["markers"],
        scheme=data["scheme"],
        prefix_scheme=data["prefix_scheme"],
        user_scheme=data["user_scheme"],
        stdlib=data["stdlib"],
    )


def _common_root(paths: list[str]) -> str:
    return os.path.commonpath([os.path.abspath(p) for p in paths])


def discover(
    *,
    python: str | None = None,
    system: bool = False,
    target_dir: str | None = None,
    prefix: str | None = None,
    user: bool = False,
    break_system_packages: bool = False,
    cache: Cache | None = None,
    exe: str | None = None,
) -> Target:
    """Find the environment and build the scheme the install writes into (``exe``: what
    ``locate`` found already)."""
    if exe is None:
        exe = locate(python, system=system, target_dir=target_dir)
    interp = probe(exe, cache)
    if target_dir is not None:
        d = os.path.abspath(target_dir)
        scheme = {
            "purelib": d,
            "platlib": d,
            "scripts": os.path.join(d, "bin"),
            "data": d,
            "headers": os.path.join(d, "include"),
        }
        return Target(interp, scheme, d, "target")
    if prefix is not None:
        p = os.path.abspath(prefix)
        scheme = _pick(interp.scheme_for_prefix(p))
        return Target(interp, scheme, p, "prefix")
    if user:
        if interp.is_venv:
            raise TargetError(
                "--user cannot be used inside a virtual environment (its packages are not "
                "visible there)"
            )
        if interp.user_scheme is None:
            raise TargetError("this interpreter has no user scheme")
        scheme = _pick(interp.user_scheme)
        return Target(interp, scheme, _common_root(list(scheme.values())), "user")
    if not interp.is_venv:
        if not system:
            raise TargetError(
                f"{exe} is not a virtual environment's interpreter", hint=_NO_ENV_HINT
            )
        if interp.externally_managed and not break_system_packages:
            raise TargetError(
                f"the environment of {exe} is externally managed (PEP 668: "
                f"{os.path.join(interp.stdlib, 'EXTERNALLY-MANAGED')}); install with the "
                "system package manager or use a virtual environment",
                hint="--break-system-packages installs anyway",
            )
    scheme = _pick(interp.scheme)
    kind = "venv" if interp.is_venv else "system"
    root = interp.prefix if interp.is_venv else _common_root(list(scheme.values()))
    if os.path.realpath(root) == os.path.realpath(sys.prefix) and not interp.is_venv:
        raise TargetError("refusing to install into safepip's own interpreter")
    return Target(interp, scheme, root, kind)


def _pick(paths: dict[str, str]) -> dict[str, str]:
    """installer's five schemes from sysconfig's path names."""
    scheme = {k: paths[k] for k in ("purelib", "platlib", "scripts", "data")}
    scheme["headers"] = paths.get("include", os.path.join(paths["data"], "include"))
    return scheme


def for_resolving(python: str | None, cache: Cache | None = None,
                  exe: str | None = None) -> Target:
    """The interpreter a lock is resolved for (see ``locate``)."""
    if exe is None:
        exe = locate(python, for_lock=True)
    interp = probe(exe, cache)
    return Target(interp, _pick(interp.scheme), interp.prefix, "lock")
