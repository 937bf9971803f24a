"""PEP 751 ``pylock.toml``: written by ``safepip lock -o pylock.toml``, installed by
``safepip install -r pylock.toml`` without resolving.

The lock is for one environment (the interpreter it was resolved for), which its
``environments`` entry states, so an installer on another platform refuses it instead of
guessing. Every file of each pinned version is listed with its URL, size, upload time,
index and sha256.
"""

from __future__ import annotations

import json
import os
import platform
import tomllib
from typing import TYPE_CHECKING, Any

from packaging.markers import InvalidMarker, Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from safepip import __version__
from safepip._record import record
from safepip.errors import RequirementsFileError

if TYPE_CHECKING:
    from safepip.attest.publisher import Publisher
    from safepip.models import DistFile, Pin
    from safepip.reqfile import RequirementSet

KNOWN_TOP = {"lock-version", "environments", "requires-python", "extras",
             "dependency-groups", "default-groups", "created-by", "packages", "tool"}
KNOWN_PACKAGE = {"name", "version", "marker", "requires-python", "dependencies", "index",
                 "vcs", "directory", "archive", "sdist", "wheels", "attestation-identities",
                 "tool"}


def _s(value: str) -> str:
    return json.dumps(value)  # a TOML basic string is a JSON string for our characters


def _file(f: DistFile, lock_dir: str) -> str:
    local = local_file(f.url)
    # a local file (a --find-links directory, a file: index) is locked by its path,
    # relative to the lock (PEP 751), so that the lock and the files can move together
    where = f"path = {_s(os.path.relpath(local, lock_dir))}" if local else f"url = {_s(f.url)}"
    parts = [f"name = {_s(f.filename)}", where]
    if f.upload_time:
        parts.append(f"upload-time = {f.upload_time}")
    if f.size is not None:
        parts.append(f"size = {f.size}")
    parts.append("hashes = {" + ", ".join(f"{k} = {_s(v)}" for k, v in sorted(
        f.hashes.items()) if k == "sha256") + "}")
    return "{ " + ", ".join(parts) + " }"


def environment_marker(markers: dict[str, str]) -> str:
    return (f"python_version == {_s(markers['python_version'])} and sys_platform == "
            f"{_s(markers['sys_platform'])} and platform_machine == "
            f"{_s(markers['platform_machine'])}").replace('"', "'")


@record
class LockedEnv:
    """One environment a lock was resolved for: its markers and its resolution."""

    markers: dict[str, str]
    pins: list[Pin]
    files: dict[str, list[DistFile]]


def local_file(url: str) -> str | None:
    if not url.startswith("file:"):
        return None
    import urllib.parse
    import urllib.request

    return urllib.request.url2pathname(urllib.parse.urlsplit(url).path)


def render(pins: list[Pin], files: dict[str, list[DistFile]], markers: dict[str, str],
           identities: dict[str, Publisher] | None = None, lock_dir: str = ".") -> str:
    return render_environments([LockedEnv(markers, pins, files)], identities, lock_dir)


def _python_range(versions: list[str]) -> str:
    """``==3.11.*``, or ``>=3.11,<3.13`` for the minor versions of several environments."""
    if len(versions) == 1:
        return f"=={versions[0]}.*"
    major, top = versions[-1].split(".")[:2]
    return f">={versions[0]},<{major}.{int(top) + 1}"


def render_environments(envs: list[LockedEnv],
                        identities: dict[str, Publisher] | None = None,
                        lock_dir: str = ".") -> str:
    """A lock for one or several environments (each resolved on its own): a package
    every environment pins at the same version is listed once; otherwise each of its
    versions carries a marker naming the environments that take it."""
    env_markers = [environment_marker(e.markers) for e in envs]
    pythons = sorted({e.markers["python_full_version"].rsplit(".", 1)[0] for e in envs},
                     key=lambda v: tuple(int(x) for x in v.split(".")))
    out = [
        'lock-version = "1.0"',
        "environments = [" + ", ".join(_s(m) for m in dict.fromkeys(env_markers)) + "]",
        "requires-python = " + _s(_python_range(pythons)),
        f"created-by = {_s('safepip')}",
        "",
    ]
    # (name, version) -> the environments that pin it, and their pins and files
    chosen: dict[tuple[str, str], list[int]] = {}
    for i, env in enumerate(envs):
        for pin in env.pins:
            if pin.dist is not None:
                chosen.setdefault((pin.name, str(pin.version)), []).append(i)
    for (name, version), where in sorted(chosen.items(), key=lambda kv: kv[0]):
        first = envs[where[0]]
        pin = next(p for p in first.pins if p.name == name)
        assert pin.dist is not None
        pf: dict[str, DistFile] = {}
        for i in where:
            for f in envs[i].files.get(name, []):
                if f.sha256 and str(f.version) == version:
                    pf.setdefault(f.filename, f)
        if not pf and pin.dist.sha256:
            pf[pin.dist.filename] = pin.dist
        if not pf:
            raise RequirementsFileError("pylock.toml", None,
                                        f"{name} {version}: no file with a sha256")
        out.append("[[packages]]")
        out.append(f"name = {_s(name)}")
        out.append(f"version = {_s(version)}")
        if len(where) < len(envs):
            markers = [env_markers[i] for i in where]
            out.append("marker = " + _s(" or ".join(f"({m})" for m in markers)
                                        if len(markers) > 1 else markers[0]))
        if pin.dist.index_url and not pin.dist.index_url.startswith("file:"):
            out.append(f"index = {_s(pin.dist.index_url)}")
        if pin.metadata is not None and pin.metadata.requires_dist_lines:
            deps = sorted({canonicalize_name(r.name) for r in pin.metadata.dependencies(())
                           if r.marker is None or any(r.marker.evaluate(
                               dict(envs[i].markers, extra="")) for i in where)})
            if deps:
                out.append("dependencies = [" + ", ".join(
                    "{ name = " + _s(d) + " }" for d in deps) + "]")
        sdists = [f for f in pf.values() if f.kind == "sdist"]
        wheels = [f for f in pf.values() if f.kind == "wheel"]
        if sdists:
            out.append("sdist = " + _file(sdists[0], lock_dir))
        if wheels:
            out.append("wheels = [")
            out.extend(f"  {_file(w, lock_dir)}," for w in sorted(wheels,
                                                                 key=lambda w: w.filename))
            out.append("]")
        if identities and name in identities:
            ident = identities[name].as_dict()
            out.append("attestation-identities = [{ " + ", ".join(
                f"{k} = {_s(v)}" for k, v in ident.items()) + " }]")
        out.append("")
    out.append("[tool.safepip]")
    out.append(f"version = {_s(__version__)}")
    out.append(f"platform = {_s(platform.platform())}")
    return "\n".join(out) + "\n"


def _err(path: str, message: str) -> RequirementsFileError:
    return RequirementsFileError(path, None, message)


def read_pylock(path: str, rs: RequirementSet, markers: dict[str, str],
                tags: tuple[str, ...]) -> None:
    """Turn a pylock.toml into exact, hash-pinned file requirements for this environment.

    Nothing is resolved: the installer takes, for each package whose marker applies, the
    best wheel for this interpreter from the files the lock lists, and requires its hash.
    """
    from safepip.attest.publisher import Publisher
    from safepip.reqfile import UserRequirement

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError as exc:
        raise _err(path, "no such file") from exc
    except (tomllib.TOMLDecodeError, OSError) as exc:
        raise _err(path, f"not valid TOML: {exc}") from exc
    if str(data.get("lock-version", "")).split(".")[0] != "1":
        raise _err(path, f"lock-version {data.get('lock-version')!r} is not supported")
    unknown = set(data) - KNOWN_TOP
    if unknown:
        raise _err(path, f"unknown keys {sorted(unknown)}")
    env = dict(markers)
    envs = data.get("environments")
    if envs is not None:
        try:
            if not any(Marker(e).evaluate(dict(env)) for e in envs):
                raise _err(path, "this lock is for other environments: " + "; ".join(envs))
        except InvalidMarker as exc:
            raise _err(path, f"invalid environments marker: {exc}") from exc
    packages = data.get("packages")
    if not isinstance(packages, list):
        raise _err(path, "no [[packages]]")
    seen: set[str] = set()
    for i, pkg in enumerate(packages):
        where = f"{path}:packages[{i}]"
        if not isinstance(pkg, dict) or "name" not in pkg:
            raise _err(path, f"packages[{i}] has no name")
        unknown = set(pkg) - KNOWN_PACKAGE
        if unknown:
            raise _err(path, f"packages[{i}] ({pkg['name']}): unknown keys {sorted(unknown)}")
        name = canonicalize_name(str(pkg["name"]))
        if "marker" in pkg:
            try:
                if not Marker(str(pkg["marker"])).evaluate(dict(env, extra="")):
                    continue
            except InvalidMarker as exc:
                raise _err(path, f"{name}: invalid marker: {exc}") from exc
        if name in seen:
            raise _err(path, f"{name} is listed twice for this environment")
        seen.add(name)
        try:
            version = Version(str(pkg["version"]))
        except (KeyError, InvalidVersion) as exc:
            raise _err(path, f"{name}: a missing or invalid version") from exc
        if "vcs" in pkg or "directory" in pkg or "archive" in pkg:
            raise _err(path, f"{name}: only index files are supported in locks for now")
        wheels = pkg.get("wheels") or []
        chosen = _best_wheel(path, name, version, wheels, tags)
        if chosen is None and pkg.get("sdist") is not None:
            chosen = _sdist(path, name, version, pkg["sdist"])  # built in the sandbox
        if chosen is None:
            raise _err(path, f"{name} {version}: no locked wheel runs on this interpreter, "
                       "and no sdist is locked")
        url, sha = chosen
        idents = pkg.get("attestation-identities")
        if idents is not None:
            if not isinstance(idents, list) or not all(
                    isinstance(i, dict) and isinstance(i.get("kind"), str) for i in idents):
                raise _err(path, f"{name}: attestation-identities must be tables with a kind")
            rs.locked_publishers[name] = [Publisher.from_record(i) for i in idents]
        index = pkg.get("index")
        index_url = str(index) if isinstance(index, str) else ""
        if index_url:
            _same_host(path, name, index_url, url)
        rs.requirements.append(UserRequirement(
            Requirement(f"{name}=={version}"), where, f"{url}#sha256={sha}",
            {"sha256": frozenset({sha})}, index=index_url or None))
    rs.from_lock = True


def _same_host(path: str, name: str, index: str, url: str) -> None:
    import urllib.parse

    if urllib.parse.urlsplit(url).scheme != "https" and not url.startswith(
            ("http://127.0.0.1", "http://localhost")):
        raise _err(path, f"{name}: {url} is not an https URL")
    if index.startswith("https://pypi.org/"):
        return  # PyPI's files live on files.pythonhosted.org
    if urllib.parse.urlsplit(index).netloc != urllib.parse.urlsplit(url).netloc:
        raise _err(path, f"{name}: the file {url} is on another host than its index {index}")


def _file_entry(path: str, name: str, entry: Any, what: str) -> tuple[str, str, str]:
    """(url, sha256, file name) of a locked wheel or sdist table, checked."""
    if not isinstance(entry, dict):
        raise _err(path, f"{name}: a {what} entry is not a table")
    url, local, hashes = entry.get("url"), entry.get("path"), entry.get("hashes")
    if url is None and isinstance(local, str):  # relative to the lock file
        import pathlib

        url = pathlib.Path(os.path.dirname(os.path.abspath(path)), local).resolve().as_uri()
    if not isinstance(url, str) or not isinstance(hashes, dict):
        raise _err(path, f"{name}: a {what} without url (or path) or hashes")
    if "sha256" not in hashes:
        raise _err(path, f"{name}: {entry.get('name', url)} has no sha256 (only "
                   f"{', '.join(sorted(hashes)) or 'no hashes'})")
    filename = str(entry.get("name") or url.rsplit("/", 1)[-1])
    return url, str(hashes["sha256"]).lower(), filename


def _sdist(path: str, name: str, version: Version, sdist: Any) -> tuple[str, str]:
    from packaging.utils import InvalidSdistFilename, parse_sdist_filename

    url, sha, filename = _file_entry(path, name, sdist, "sdist")
    try:
        sname, sver = parse_sdist_filename(filename)
    except InvalidSdistFilename as exc:
        raise _err(path, f"{name}: {exc}") from exc
    if sname != name or sver != version:
        raise _err(path, f"{name} {version}: the sdist {filename} is {sname} {sver}")
    return url, sha


def _best_wheel(path: str, name: str, version: Version, wheels: list[Any],
                tags_in_order: tuple[str, ...]) -> tuple[str, str] | None:
    from packaging.tags import parse_tag
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    rank: dict[Any, int] = {}
    for i, text in enumerate(tags_in_order):
        for t in parse_tag(text):
            rank.setdefault(t, i)
    best: tuple[int, str, str] | None = None
    for w in wheels:
        url, sha, filename = _file_entry(path, name, w, "wheel")
        try:
            wname, wver, _b, tags = parse_wheel_filename(filename)
        except InvalidWheelFilename as exc:
            raise _err(path, f"{name}: {exc}") from exc
        if wname != name or wver != version:
            raise _err(path, f"{name} {version}: the wheel {filename} is {wname} {wver}")
        r = min((rank[t] for t in tags if t in rank), default=None)
        if r is not None and (best is None or r < best[0]):
            best = (r, url, sha)
    return (best[1], best[2]) if best else None
