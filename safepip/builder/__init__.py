"""Source distributions and local projects → wheels, built inside the sandbox only.

For one source (an sdist's bytes, or a local project directory):
1. unpack it safely (``extract``) into a fresh work directory, or copy the project;
2. read ``[build-system]`` on the host (TOML parsing runs no code);
3. resolve the build requirements on the host with safepip's own resolver, download and
   verify them like any install, and lay them out as the wheelhouse;
4. in the sandbox: ``get_requires_for_build_wheel`` (then resolve what it adds), then
   ``build_wheel`` (or ``prepare_metadata_for_build_wheel`` when only metadata is needed);
5. check the one wheel that comes out (name, version, tags) and validate it like any
   downloaded wheel, then cache it under (source sha256, sandbox identity, Python tag).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import tomllib
import zipfile
from typing import TYPE_CHECKING, Protocol

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from safepip._record import record
from safepip.builder.extract import unpack_sdist
from safepip.errors import BuildError, SdistError
from safepip.index.metadata import parse_metadata
from safepip.sandbox import Limits, RunSpec, driver_argv

if TYPE_CHECKING:
    from collections.abc import Callable

    from safepip.fetch.cache import Cache
    from safepip.models import Metadata
    from safepip.sandbox import RunResult, Sandbox
    from safepip.ui import UI

LEGACY_REQUIRES = ("setuptools>=40.8.0",)
MAX_DEPTH = 3


class WheelhouseResolver(Protocol):
    """Resolves build requirements and returns the paths of verified wheels."""

    def __call__(self, requirements: list[Requirement], depth: int) -> list[str]: ...


@record(frozen=True)
class Built:
    filename: str
    data: bytes
    from_cache: bool
    sandbox: str = ""


def static_sdist_metadata(pkg_info: bytes, where: str) -> Metadata | None:
    """PEP 643: an sdist's PKG-INFO is usable when Requires-Dist is not dynamic."""
    text = pkg_info.decode("utf-8", "replace")
    version = ""
    dynamic = set()
    for line in text.splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        if key.lower() == "metadata-version":
            version = value.strip()
        elif key.lower() == "dynamic":
            dynamic.add(value.strip().lower())
    try:
        major, minor = (int(x) for x in version.split(".")[:2])
    except ValueError:
        return None
    if (major, minor) < (2, 2) or "requires-dist" in dynamic or "requires-python" in dynamic:
        return None
    return parse_metadata(pkg_info, where)


def sdist_pkg_info(data: bytes, filename: str) -> bytes | None:
    """The top-level PKG-INFO of an sdist, read without unpacking anything."""
    import tarfile

    try:
        if filename.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                names = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith(
                    "/PKG-INFO")]
                return zf.read(names[0]) if len(names) == 1 else None
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
            for m in tf:
                parts = m.name.strip("/").split("/")
                if len(parts) == 2 and parts[1] == "PKG-INFO" and m.isreg():
                    f = tf.extractfile(m)
                    return f.read(1024 * 1024) if f else None
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError):
        return None
    return None


class Builder:
    """Builds wheels from sources in a sandbox, with a cache of built wheels."""

    def __init__(self, sandbox: Callable[[], Sandbox], wheelhouse: WheelhouseResolver,
                 cache: Cache | None, ui: UI, limits: Limits | None = None,
                 target_tags: Callable[[str], bool] | None = None) -> None:
        self._sandbox_factory = sandbox
        self._sandbox: Sandbox | None = None
        self.wheelhouse = wheelhouse
        self.cache = cache
        self.ui = ui
        self.limits = limits or Limits()
        self.target_tags = target_tags
        self._identity: str | None = None
        self._pytag: str | None = None
        self._this_run: dict[str, Built] = {}

    @property
    def sandbox(self) -> Sandbox:
        """The sandbox, chosen on first use (nothing is probed unless a build is needed)."""
        if self._sandbox is None:
            self._sandbox = self._sandbox_factory()
            self.ui.info(f"Builds run in: {self._sandbox.describe()}")
        return self._sandbox

    def close(self) -> None:
        if self._sandbox is not None:
            from safepip.sandbox.select import close

            close(self._sandbox)

    def _key(self, source_sha256: str, hook: str) -> str:
        if self._identity is None:
            self._identity = self.sandbox.identity()
            self._pytag = self.sandbox.python_tag()
        return hashlib.sha256(json.dumps(
            [source_sha256, self._identity, self._pytag, hook, {}]).encode()).hexdigest()

    # -- the work directory ---------------------------------------------------------------

    def _prepare(self, work: str, *, sdist: tuple[bytes, str] | None = None,
                 project_dir: str | None = None) -> str:
        src_parent = os.path.join(work, "unpacked")
        os.makedirs(src_parent)
        if sdist is not None:
            data, filename = sdist
            archive = os.path.join(work, filename)
            with open(archive, "wb") as f:
                f.write(data)
            root = unpack_sdist(archive, src_parent, filename)
            os.unlink(archive)
            return root
        assert project_dir is not None
        root = os.path.join(src_parent, "project")
        shutil.copytree(project_dir, root, symlinks=True,
                        ignore=shutil.ignore_patterns(".git", ".hg", ".venv", ".nox", ".tox",
                                                      "__pycache__"))
        # links are dropped: the sandbox must not be handed a way out of the tree
        for dirpath, dirs, files in os.walk(root):
            for name in [*dirs, *files]:
                p = os.path.join(dirpath, name)
                if os.path.islink(p):
                    os.unlink(p)
        return root

    @staticmethod
    def build_requires(src: str, name: str) -> list[Requirement]:
        path = os.path.join(src, "pyproject.toml")
        if not os.path.exists(path):
            return [Requirement(r) for r in LEGACY_REQUIRES]
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
            raise SdistError(name, "pyproject", f"pyproject.toml is not valid TOML: {exc}"
                             ) from exc
        table = data.get("build-system")
        if table is None:
            return [Requirement(r) for r in LEGACY_REQUIRES]
        reqs = table.get("requires")
        if not isinstance(reqs, list) or not all(isinstance(r, str) for r in reqs):
            raise SdistError(name, "pyproject", "[build-system] requires must be a list of "
                             "strings")
        try:
            return [Requirement(r) for r in reqs]
        except InvalidRequirement as exc:
            raise SdistError(name, "pyproject", f"invalid build requirement: {exc}") from exc

    def _wheelhouse(self, name: str, reqs: list[Requirement], depth: int) -> list[str]:
        from safepip.errors import ResolutionError

        try:
            return self.wheelhouse(reqs, depth)
        except ResolutionError as exc:
            raise BuildError(name, "its build requirements cannot be installed: "
                             + exc.message, hint=exc.hint) from exc

    def _run(self, name: str, src: str, work: str, hook: str, wheels: list[str],
             in_place: bool = False) -> dict[str, object]:
        wheelhouse = os.path.join(work, "wheelhouse")
        out = os.path.join(work, "out")
        for d in (wheelhouse, out):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
        for w in wheels:
            shutil.copy(w, os.path.join(wheelhouse, os.path.basename(w)))
        self.ui.info(f"Building {name} in the {self.sandbox.name} sandbox ({hook})...")
        result = self.sandbox.run(RunSpec(src, out, wheelhouse, driver_argv(hook),
                                          self.limits, in_place=in_place))
        return self._result(name, hook, result, out)

    def _result(self, name: str, hook: str, result: RunResult, out: str) -> dict[str, object]:
        if result.killed is not None:
            what = {"timeout": f"it ran longer than {self.limits.timeout:.0f}s",
                    "memory": "it used more memory than the limit (it was killed by the "
                              "out-of-memory killer)",
                    "pids": "it started more processes than the limit",
                    "output": "it wrote more than the output limit"}.get(
                result.killed, result.killed)
            raise BuildError(name, f"the sandbox killed the build: {what}", log=result.log,
                             hint="raise the limit with --build-timeout / --build-memory if "
                                  "the build is honest")
        try:
            with open(os.path.join(out, "result.json"), encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            data = {}
        if not isinstance(data, dict) or result.exit_code != 0 or "error" in data:
            detail = str(data.get("error", "")) if isinstance(data, dict) else ""
            raise BuildError(name, f"{hook} exited with {result.exit_code}",
                             log=(result.log + "\n" + detail).strip())
        return data

    # -- public -------------------------------------------------------------------------

    def metadata(self, name: str, *, sdist: tuple[bytes, str] | None = None,
                 project_dir: str | None = None, depth: int = 0,
                 wheel_needed: bool = True) -> Metadata:
        """Core metadata: static PKG-INFO (PEP 643) when allowed, else from the sandbox.

        When the wheel will be installed anyway it is built now (and cached for the
        install); otherwise (``--dry-run``) ``prepare_metadata_for_build_wheel`` is asked,
        which is cheaper, with ``build_wheel`` as the fallback if the backend lacks it.
        """
        if sdist is not None:
            pkg = sdist_pkg_info(*sdist)
            if pkg is not None:
                md = static_sdist_metadata(pkg, sdist[1])
                if md is not None:
                    return md
            if not wheel_needed:
                prepared = self._prepare_metadata(name, sdist, depth)
                if prepared is not None:
                    return prepared
        wheel = self.build(name, sdist=sdist, project_dir=project_dir, depth=depth)
        with zipfile.ZipFile(io.BytesIO(wheel.data)) as zf:
            from safepip.index.metadata import metadata_from_wheel_zip

            fname, fver, _b, _t = parse_wheel_filename(wheel.filename)
            from safepip.models import DistFile

            dist = DistFile(wheel.filename, "", "", fname, fver, "wheel")
            return parse_metadata(metadata_from_wheel_zip(zf, dist), wheel.filename)

    def _prepare_metadata(self, name: str, sdist: tuple[bytes, str],
                          depth: int) -> Metadata | None:
        work = tempfile.mkdtemp(prefix="safepip-build-")
        try:
            src = self._prepare(work, sdist=sdist)
            reqs = self.build_requires(src, name)
            wheels = self._wheelhouse(name, reqs, depth + 1)
            data = self._run(name, src, work, "get_requires_for_build_wheel", wheels)
            extra = data.get("result") or []
            if isinstance(extra, list) and extra:
                wheels = self._wheelhouse(name, reqs + [Requirement(str(r)) for r in extra],
                                          depth + 1)
            data = self._run(name, src, work, "prepare_metadata_for_build_wheel", wheels)
            if data.get("missing"):
                return None
            dist_info = str(data.get("result", ""))
            if "/" in dist_info or not dist_info.endswith(".dist-info"):
                raise BuildError(name, f"prepare_metadata_for_build_wheel returned "
                                 f"{dist_info!r}")
            path = os.path.join(work, "out", "dist", dist_info, "METADATA")
            if os.path.islink(path) or not os.path.isfile(path):
                raise BuildError(name, f"{dist_info}/METADATA is missing or not a file")
            with open(path, "rb") as f:
                md = parse_metadata(f.read(1024 * 1024 * 16), f"{name} (prepared metadata)")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if canonicalize_name(md.name) != canonicalize_name(name):
            raise BuildError(name, f"its metadata names another project: {md.name}")
        return md

    def build(self, name: str, *, sdist: tuple[bytes, str] | None = None,
              project_dir: str | None = None, depth: int = 0,
              expect_version: str | None = None) -> Built:
        if depth > MAX_DEPTH:
            raise BuildError(name, f"build dependencies nest deeper than {MAX_DEPTH} levels")
        source_sha = hashlib.sha256(sdist[0]).hexdigest() if sdist else None
        key = self._key(source_sha, "build_wheel") if source_sha else None
        cached = self._cached(key)
        if cached is not None:
            return cached
        work = tempfile.mkdtemp(prefix="safepip-build-")
        try:
            src = self._prepare(work, sdist=sdist, project_dir=project_dir)
            reqs = self.build_requires(src, name)
            wheels = self._wheelhouse(name, reqs, depth + 1)
            data = self._run(name, src, work, "get_requires_for_build_wheel", wheels)
            extra = data.get("result") or []
            if isinstance(extra, list) and extra:
                try:
                    more = [Requirement(str(r)) for r in extra]
                except InvalidRequirement as exc:
                    raise BuildError(name, f"the backend asked for an invalid requirement: "
                                     f"{exc}") from exc
                wheels = self._wheelhouse(name, reqs + more, depth + 1)
            data = self._run(name, src, work, "build_wheel", wheels)
            expect_name = name if sdist is not None else _project_name(src)
            built = self._collect(name, os.path.join(work, "out", "dist"), data,
                                  expect_name, expect_version)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if key is not None:
            self._store(key, built)
        return built

    def build_editable(self, project_dir: str) -> Built:
        """PEP 660: the project, in place, builds an editable wheel (never cached)."""
        name = os.path.basename(os.path.abspath(project_dir))
        src = os.path.abspath(project_dir)
        work = tempfile.mkdtemp(prefix="safepip-build-")
        try:
            reqs = self.build_requires(src, name)
            wheels = self._wheelhouse(name, reqs, 1)
            data = self._run(name, src, work, "get_requires_for_build_editable", wheels,
                             in_place=True)
            if data.get("missing"):
                raise BuildError(name, "its build backend does not support editable installs "
                                 "(PEP 660)", hint="install it normally, without -e")
            extra = data.get("result") or []
            if isinstance(extra, list) and extra:
                more = [Requirement(str(r)) for r in extra]
                wheels = self._wheelhouse(name, reqs + more, 1)
            data = self._run(name, src, work, "build_editable", wheels, in_place=True)
            if data.get("missing"):
                raise BuildError(name, "its build backend does not support editable installs "
                                 "(PEP 660)", hint="install it normally, without -e")
            return self._collect(name, os.path.join(work, "out", "dist"), data,
                                 _project_name(src), None)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _collect(self, name: str, dist_dir: str, data: dict[str, object],
                 expect_name: str | None, expect_version: str | None) -> Built:
        wheels = list(os.listdir(dist_dir)) if os.path.isdir(dist_dir) else []
        if len(wheels) != 1 or not wheels[0].endswith(".whl"):
            raise BuildError(name, f"expected one wheel, the build produced {wheels or 'none'}")
        filename = wheels[0]
        if data.get("result") != filename:
            raise BuildError(name, f"build_wheel returned {data.get('result')!r} but wrote "
                             f"{filename!r}")
        path = os.path.join(dist_dir, filename)
        if os.path.islink(path) or not os.path.isfile(path):
            raise BuildError(name, f"{filename} is not a regular file")
        try:
            wname, wver, _b, tags = parse_wheel_filename(filename)
        except ValueError as exc:  # InvalidWheelFilename, InvalidVersion
            raise BuildError(name, f"{filename} is not a valid wheel name: {exc}") from exc
        if expect_name is not None and wname != canonicalize_name(expect_name):
            raise BuildError(name, f"the build produced a wheel of another project: {filename}")
        if expect_version is not None and str(wver) != expect_version:
            from packaging.version import Version

            if wver != Version(expect_version):
                raise BuildError(name, f"the build produced version {wver}, the source is "
                                 f"{expect_version}")
        if self.target_tags is not None and not any(self.target_tags(str(t)) for t in tags):
            raise BuildError(name, f"{filename} does not run on the target environment "
                             "(its tags do not match)",
                             hint="the sandbox image's Python must match the target's")
        with open(path, "rb") as f:
            return Built(filename, f.read(), False, self.sandbox.name)

    # -- built-wheel cache ----------------------------------------------------------------

    def _cached(self, key: str | None) -> Built | None:
        if key is None:
            return None
        if key in self._this_run:
            return self._this_run[key]
        if self.cache is None:
            return None
        found = self.cache.get_built(key)
        return Built(found[0], found[1], True) if found else None

    def _store(self, key: str, built: Built) -> None:
        self._this_run[key] = built
        if self.cache is not None:
            self.cache.put_built(key, built.filename, built.data)


def _project_name(src: str) -> str | None:
    """``[project] name`` of a local project's pyproject.toml, if it says."""
    try:
        with open(os.path.join(src, "pyproject.toml"), "rb") as f:
            name = tomllib.load(f).get("project", {}).get("name")
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError, AttributeError):
        return None
    return name if isinstance(name, str) else None
