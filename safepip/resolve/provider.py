"""The resolvelib provider: candidates from the index, dependencies from metadata.

Behaves as pip's resolver does on the same inputs: newest acceptable version first,
wheels for the target's tags (most specific tag wins), ``Requires-Python`` checked,
yanked files only for an exact ``==`` pin, files inside the cooldown (``cooldown``) only
for an exact pin or a lock's kept pin, pre-releases only with ``--pre``, an explicit
pre-release specifier, or when nothing else matches; an installed distribution is kept
when it satisfies (unless ``--upgrade`` names it); extras as separate identifiers that
depend on their base project at the same version.

Index pages and metadata are fetched ahead of need in a thread pool: when a candidate's
dependencies are known, the pages of those dependencies and the metadata of their most
likely candidates are requested at once, so that resolution is not a chain of round
trips.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from typing import TYPE_CHECKING, Any, cast

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import parse_tag
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version
from resolvelib import AbstractProvider

from safepip._record import field, record
from safepip.errors import BuildRequiredError
from safepip.models import Candidate

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
    from concurrent.futures import Future, ThreadPoolExecutor

    from packaging.requirements import Requirement
    from resolvelib.structs import Matches, RequirementInformation

    from safepip.buildctx import BuildContext
    from safepip.cooldown import Cooldown
    from safepip.index.metadata import MetadataFetcher
    from safepip.index.simple import IndexClient
    from safepip.models import DistFile, InstalledDist, Metadata, ProjectPage


@record(frozen=True)
class Req:
    """A requirement on one identifier, with where it came from."""

    name: NormalizedName
    extras: frozenset[str]
    specifier: SpecifierSet
    source: str  # "command line", "requirements.txt:3", "flask 3.0.0"
    link: str | None = None
    text: str = ""

    @property
    def identifier(self) -> str:
        return identify(self.name, self.extras)

    @classmethod
    def from_requirement(cls, req: Requirement, source: str, link: str | None = None) -> Req:
        return cls(
            name=canonicalize_name(req.name),
            extras=frozenset(canonicalize_name(e) for e in req.extras),
            specifier=req.specifier,
            source=source,
            link=link,
            text=str(req),
        )


# The interpreter, as a requirement: a candidate whose metadata needs another Python
# than the index said depends on it, cannot be satisfied, and is backtracked over (as
# pip's RequiresPythonRequirement does) instead of stopping the resolution.
PYTHON = cast("NormalizedName", "<python>")


def identify(name: str, extras: frozenset[str]) -> str:
    return f"{name}[{','.join(sorted(extras))}]" if extras else name


@record
class Options:
    """Resolution settings."""

    python_version: Version
    tags: Sequence[str]
    markers: dict[str, str]
    pre: bool = False
    upgrade: frozenset[str] = frozenset()  # names to upgrade; {":all:"} for eager
    only_binary: frozenset[str] = frozenset()
    no_binary: frozenset[str] = frozenset()
    no_deps: bool = False
    constraints: dict[str, list[Req]] = field(default_factory=dict)
    installed: dict[str, InstalledDist] = field(default_factory=dict)
    installed_metadata: Any = None  # Callable[[InstalledDist], Metadata]
    preferred: dict[str, Version] = field(default_factory=dict)  # an existing lock's pins
    link_index: dict[str, str] = field(default_factory=dict)  # locked file URL -> its index
    # told of each file whose metadata resolution reads (a candidate it is about to pin,
    # most often), so that what is checked about the file can start meanwhile
    on_candidate: Callable[[DistFile], None] | None = None
    cooldown: Cooldown | None = None  # None: files of any age are taken


class Provider(AbstractProvider[Req, Candidate, str]):
    def __init__(self, index: IndexClient, metadata: MetadataFetcher, opts: Options,
                 pool: ThreadPoolExecutor, user_names: set[NormalizedName],
                 build: BuildContext | None = None) -> None:
        self.build = build
        self.index = index
        self.metadata = metadata
        self.opts = opts
        self.pool = pool
        self.user_names = user_names
        # a wheel tag's rank among the target's, by the tag's text (lower case, as Tag
        # makes it): the probe lists ~900 tags one by one, and making a Tag of each cost
        # a resolution 4 ms; a compressed tag set is expanded
        self._tag_rank: dict[str, int] = {}
        for i, t in enumerate(opts.tags):
            if t.count("-") == 2 and "." not in t:
                self._tag_rank.setdefault(t.lower(), i)
            else:
                for tag in parse_tag(t):
                    self._tag_rank.setdefault(str(tag), i)
        self._pages: dict[str, Future[ProjectPage | None]] = {}
        self._md: dict[str, Future[Metadata]] = {}
        self._lock = threading.Lock()
        self.skipped: dict[str, list[str]] = {}  # name -> why files were left out
        self._py_cache: dict[str, bool] = {}
        self._by_version: dict[str, dict[Version, list[DistFile]]] = {}
        self._best: dict[tuple[str, Version, bool], DistFile | None] = {}
        self.metadata_by_candidate: dict[tuple[str, Version], Metadata] = {}
        # candidates whose metadata needs another Python: their Requires-Python
        self.python_mismatch: dict[tuple[str, Version], str] = {}
        self._satisfied: dict[tuple[int, Version], tuple[SpecifierSet, bool]] = {}
        self._deps_prefetched: set[str] = set()  # files whose dependencies were prefetched
        # the cooldown at work: versions whose every file is too new (held back), and
        # versions taken although some of their files are, because a pin asked for them
        self.held_back: dict[str, dict[Version, float]] = {}  # name -> version -> age
        self.exempt: dict[tuple[str, Version], tuple[float, str]] = {}  # -> (age, why)

    # -- fetching, memoized and prefetched ------------------------------------------

    def page_future(self, name: str) -> Future[ProjectPage | None]:
        with self._lock:
            fut = self._pages.get(name)
            if fut is None:
                fut = self.pool.submit(self.index.project, name)
                self._pages[name] = fut
        return fut

    def metadata_future(self, dist: DistFile) -> Future[Metadata]:
        with self._lock:
            fut = self._md.get(dist.url)
            if fut is None:
                fut = self.pool.submit(self.metadata.fetch, dist)
                self._md[dist.url] = fut
                if self.opts.on_candidate is not None:
                    self.opts.on_candidate(dist)
        return fut

    def prefetch(self, reqs: Iterable[Req]) -> None:
        for r in reqs:
            if r.link or r.name == PYTHON:
                continue
            fut = self.page_future(r.name)
            fut.add_done_callback(functools.partial(self._prefetch_best, r))

    def _prefetch_best(self, req: Req, fut: Future[ProjectPage | None]) -> None:
        try:
            page = fut.result()
        except Exception:  # noqa: BLE001 - a prefetch failure surfaces when it is needed
            return
        if page is None or req.name in self.opts.installed:
            return
        for cand in self._candidates_from_page(page, [req], record=False):
            if cand.dist is not None and cand.dist.kind == "wheel":
                with contextlib.suppress(RuntimeError):  # the pool is already shut down
                    md = self.metadata_future(cand.dist)
                    with self._lock:
                        first = cand.dist.url not in self._deps_prefetched
                        self._deps_prefetched.add(cand.dist.url)
                    if first and not self.opts.no_deps:
                        md.add_done_callback(self._prefetch_deps)
            break

    def _prefetch_deps(self, fut: Future[Metadata]) -> None:
        """The dependencies of the file resolution will most likely pin, asked for as
        soon as its metadata is here rather than when resolution gets to it: otherwise a
        dependency graph's pages and metadata arrive one level after the other, a round
        trip each (as uv, which fetches ahead the same way)."""
        try:
            md = fut.result()
        except Exception:  # noqa: BLE001 - a prefetch failure surfaces when it is needed
            return
        env = dict(self.opts.markers, extra="")
        deps = []
        try:
            reqs = md.dependencies(())
        except Exception:  # noqa: BLE001 - resolution parses them again and says why
            return
        for r in reqs:
            try:
                if r.url is None and (r.marker is None or r.marker.evaluate(env)):
                    deps.append(Req.from_requirement(r, f"{md.name} {md.version}"))
            except Exception:  # noqa: BLE001 - resolution evaluates it again and says why
                continue
        with contextlib.suppress(RuntimeError):  # the pool is already shut down
            self.prefetch(deps)

    # -- candidates -----------------------------------------------------------------

    def _wheel_rank(self, dist: DistFile) -> int | None:
        rank = self._tag_rank.get
        ranks = [r for t in dist.tags if (r := rank(str(t))) is not None]
        return min(ranks) if ranks else None

    def _allows_binary(self, name: str) -> bool:
        nb = self.opts.no_binary
        return not (name in nb or (":all:" in nb and name not in self.opts.only_binary))

    def _allows_source(self, name: str) -> bool:
        ob = self.opts.only_binary
        return not (name in ob or (":all:" in ob and name not in self.opts.no_binary))

    def _python_ok(self, requires_python: str) -> bool:
        """Requires-Python against the target, memoized (pages repeat a few values)."""
        ok = self._py_cache.get(requires_python)
        if ok is None:
            try:
                ok = SpecifierSet(requires_python).contains(self.opts.python_version,
                                                            prereleases=True)
            except InvalidSpecifier:
                ok = False  # an unparsable Requires-Python is skipped, as pip does
            self._py_cache[requires_python] = ok
        return ok

    def _versions(self, page: ProjectPage) -> dict[Version, list[DistFile]]:
        by_version = self._by_version.get(page.project)
        if by_version is None:
            by_version = {}
            for f in page.files:
                by_version.setdefault(f.version, []).append(f)
            self._by_version[page.project] = by_version
        return by_version

    def _best_file(self, files: list[DistFile], name: str,
                   why: list[str] | None) -> DistFile | None:
        best: tuple[int, DistFile] | None = None
        sdist: DistFile | None = None
        for f in files:
            if f.requires_python and not self._python_ok(f.requires_python):
                if why is not None:
                    why.append(f"{f.filename} requires Python {f.requires_python}")
                continue
            if f.kind == "wheel":
                if not self._allows_binary(name):
                    continue
                rank = self._wheel_rank(f)
                if rank is None:
                    if why is not None:
                        why.append(f"{f.filename} has no tag this interpreter supports")
                    continue
                if best is None or rank < best[0]:
                    best = (rank, f)
            elif self._allows_source(name) and sdist is None:
                sdist = f
        if best is not None:
            return best[1]
        return sdist

    def _candidates_from_page(self, page: ProjectPage, reqs: Sequence[Req],
                              record: bool = True) -> Iterator[Candidate]:
        name = page.project
        specs = [r.specifier for r in reqs] + [
            c.specifier for c in self.opts.constraints.get(name, [])]
        spec = SpecifierSet()
        for s in specs:
            spec &= s
        pinned = {str(s.version) for sp in specs for s in sp if s.operator in ("==", "===")}
        by_version = self._versions(page)
        why: list[str] | None = self.skipped.setdefault(name, []) if record else None
        allow_pre = self.opts.pre or bool(spec.prereleases)
        versions = sorted(by_version, reverse=True)
        matching = [v for v in versions if spec.contains(v, prereleases=allow_pre)]
        if not matching and not allow_pre:
            matching = [v for v in versions if spec.contains(v, prereleases=True)]
        extras = next((r.extras for r in reqs), frozenset())
        kept = self.opts.preferred.get(name)
        for v in matching:
            files = by_version[v]
            exact = str(v) in pinned or any(
                Version(p) == v for p in pinned if _is_version(p))
            key = (name, v, exact)
            if key in self._best:
                best = self._best[key]
            else:
                live = [f for f in files if not f.is_yanked or exact]
                if not live:
                    if why is not None:
                        why.append(f"{name} {v} is yanked")
                    continue
                live = self._cooled(name, v, live, exact, v == kept)
                best = self._best[key] = self._best_file(live, name, why) if live else None
            if best is None:
                continue
            yield Candidate(name, v, extras, best)

    def _cooled(self, name: str, v: Version, files: list[DistFile], exact: bool,
                kept: bool) -> list[DistFile]:
        """``files`` without those inside the cooldown, unless the version is pinned with
        ``==`` (then all of them, and that is remembered). A version kept from the lock
        keeps its older files only: a file added to it since (what a hijacked account
        can do without a new version number) waits like any other; only when all its
        files are new (a lock made without the cooldown) is it taken whole."""
        cd = self.opts.cooldown
        if cd is None:
            return files
        fresh = [(f, age) for f in files if (age := cd.age_if_too_new(f)) is not None]
        if not fresh:
            return files
        youngest = min(a for _f, a in fresh)
        if exact:
            with self._lock:
                self.exempt[(name, v)] = (youngest, "pinned with ==")
            return files
        fresh_names = {f.filename for f, _age in fresh}
        left = [f for f in files if f.filename not in fresh_names]
        if left:
            return left
        with self._lock:
            if kept:
                self.exempt[(name, v)] = (youngest, "kept from the lock")
                return files
            self.held_back.setdefault(name, {})[v] = youngest
        return left

    def lockable(self, name: str, version: Version, files: list[DistFile]) -> list[DistFile]:
        """The files of a pinned version that a lock lists: those inside the cooldown
        only when the pin was exempt from it."""
        cd = self.opts.cooldown
        if cd is None or (name, version) in self.exempt:
            return files
        return [f for f in files if cd.age_if_too_new(f) is None]

    def find_matches(self, identifier: str, requirements: Mapping[str, Iterator[Req]],
                     incompatibilities: Mapping[str, Iterator[Candidate]]) -> Matches[Candidate]:
        reqs = list(requirements[identifier])
        if identifier == PYTHON:
            current = self.opts.python_version
            ok = all(r.specifier.contains(current, prereleases=True) for r in reqs)
            return [Candidate(PYTHON, current, frozenset(), None)] if ok else []
        bad = {c.version for c in incompatibilities[identifier]}
        name = reqs[0].name if reqs else canonicalize_name(identifier.split("[")[0])
        extras = frozenset().union(*(r.extras for r in reqs)) if reqs else frozenset()
        reqs = [Req(r.name, extras, r.specifier, r.source, r.link, r.text) for r in reqs]
        out: list[Candidate] = []
        links = {r.link for r in reqs if r.link}
        if links:
            from safepip.index.direct import candidate_for_link

            for link in links:
                cand = candidate_for_link(link, name, extras,
                                          self.opts.link_index.get(link, ""))
                if cand.version not in bad and all(
                        r.specifier.contains(cand.version, prereleases=True) for r in reqs):
                    out.append(cand)
            # a lock's file (it has an index) for the version that is installed already:
            # kept, as pip keeps what satisfies a hashed requirement (-U / --force-
            # reinstall install the locked file again)
            have = self.opts.installed.get(name)
            if (have is not None and not (":all:" in self.opts.upgrade or name in
                                          self.opts.upgrade)
                    and any(c.version == have.version and c.dist is not None
                            and c.dist.index_url for c in out)):
                out.insert(0, Candidate(name, have.version, extras, None, have.version))
            return out
        installed = self.opts.installed.get(name)
        upgrade = ":all:" in self.opts.upgrade or name in self.opts.upgrade
        inst_cand = None
        if installed is not None and installed.version not in bad:
            specs = [r.specifier for r in reqs] + [
                c.specifier for c in self.opts.constraints.get(name, [])]
            if all(s.contains(installed.version, prereleases=True) for s in specs):
                inst_cand = Candidate(name, installed.version, extras, None, installed.version)
        page = self.page_future(name).result()

        def candidates() -> Iterator[Candidate]:
            # lazy: resolvelib usually takes the first; files of older versions are
            # looked at only when it backtracks (or when nothing fits, for the message)
            given = False
            if inst_cand is not None and not upgrade:
                given = True
                yield inst_cand
            want = None if upgrade else self.opts.preferred.get(name)
            if want is not None and page is not None and want not in bad:
                # a lock's pin is kept while it still fits (pip-compile's behaviour)
                for c in self._candidates_from_page(page, reqs):
                    if c.version == want:
                        yield c
                        break
                else:
                    want = None
            for c in self._candidates_from_page(page, reqs) if page is not None else ():
                if c.version in bad or c.version == want:
                    continue
                if inst_cand is not None and c.version == inst_cand.version:
                    if not given:  # same version: keep what is there
                        given = True
                        yield inst_cand
                    continue
                yield c
            if inst_cand is not None and not given:
                yield inst_cand

        return candidates

    # -- the rest of the protocol ---------------------------------------------------

    def identify(self, requirement_or_candidate: Req | Candidate) -> str:
        x = requirement_or_candidate
        return identify(x.name, x.extras)

    def get_preference(self, identifier: str, resolutions: Mapping[str, Candidate],
                       candidates: Mapping[str, Iterator[Candidate]],
                       information: Mapping[str, Iterator[RequirementInformation[Req, Candidate]]],
                       backtrack_causes: Sequence[RequirementInformation[Req, Candidate]]) -> Any:
        infos = list(information[identifier])
        pinned = any(
            s.operator in ("==", "===") and "*" not in s.version
            for i in infos for s in i.requirement.specifier
        )
        direct = any(i.requirement.link for i in infos)
        from_user = any(i.parent is None for i in infos)
        causes = {c.requirement.name for c in backtrack_causes}
        return (not direct, not pinned, identifier.split("[")[0] not in causes,
                not from_user, "[" in identifier, identifier)

    def is_satisfied_by(self, requirement: Req, candidate: Candidate) -> bool:
        if requirement.name == PYTHON:
            return requirement.specifier.contains(candidate.version, prereleases=True)
        if requirement.link:
            if candidate.dist is None:  # installed, kept for a lock's file (find_matches)
                return (requirement.link in self.opts.link_index
                        and requirement.specifier.contains(candidate.version,
                                                           prereleases=True))
            # the link's #sha256=... fragment is a hash, not part of the file's URL
            return candidate.dist.url == requirement.link.split("#", 1)[0]
        # resolvelib asks the same (specifier, version) again and again (3,500 times for
        # the 30-package set, 60 distinct questions). Keyed by the specifier object, kept
        # alive in the value so that its id is not reused: comparing SpecifierSets for
        # equality would cost more than the answer.
        spec = requirement.specifier
        key = (id(spec), candidate.version)
        hit = self._satisfied.get(key)
        if hit is None:
            hit = self._satisfied[key] = (spec, spec.contains(candidate.version,
                                                              prereleases=True))
        return hit[1]

    def candidate_metadata(self, candidate: Candidate) -> Metadata:
        key = (candidate.name, candidate.version)
        md = self.metadata_by_candidate.get(key)
        if md is not None:
            return md
        if candidate.dist is None:
            md = self.opts.installed_metadata(self.opts.installed[candidate.name])
        else:
            if candidate.dist.kind == "wheel":
                md = self.metadata_future(candidate.dist).result()
            elif self.build is None:
                raise BuildRequiredError(candidate.name, str(candidate.version),
                                         candidate.dist.filename)
            else:
                md = self.build.sdist_metadata(candidate.dist)
            if md.requires_python:
                try:
                    ok = SpecifierSet(md.requires_python).contains(
                        self.opts.python_version, prereleases=True)
                except InvalidSpecifier:
                    ok = True
                if not ok:  # get_dependencies turns this into a requirement on Python
                    self.python_mismatch[key] = md.requires_python
        self.metadata_by_candidate[key] = md
        return md

    def get_dependencies(self, candidate: Candidate) -> Iterable[Req]:
        if candidate.name == PYTHON:
            return []
        md = self.candidate_metadata(candidate)
        source = f"{candidate.name} {candidate.version}"
        needs = self.python_mismatch.get((candidate.name, candidate.version))
        if needs is not None:
            said = candidate.dist.requires_python if candidate.dist is not None else None
            return [Req(PYTHON, frozenset(), SpecifierSet(needs), source, None,
                        f"Python {needs} (its metadata requires Python {needs}; the index "
                        f"said {said or 'nothing'})")]
        deps: list[Req] = []
        if candidate.extras:
            # name[extra] depends on name itself at exactly this version
            deps.append(Req(candidate.name, frozenset(), SpecifierSet(f"=={candidate.version}"),
                            source, candidate.dist.url if candidate.dist and _is_direct(
                                candidate) else None))
        if self.opts.no_deps:
            return deps
        wanted_extras = candidate.extras or frozenset({""})
        for r in md.dependencies(candidate.extras):
            for extra in wanted_extras:
                env = dict(self.opts.markers, extra=extra)
                if r.marker is None:
                    if not candidate.extras:
                        deps.append(Req.from_requirement(r, source, r.url))
                    break
                if r.marker.evaluate(env) and (candidate.extras == frozenset() or
                                               not r.marker.evaluate(dict(env, extra=""))):
                    deps.append(Req.from_requirement(r, source, r.url))
                    break
        self.prefetch(deps)
        return deps


def _is_direct(candidate: Candidate) -> bool:
    return candidate.dist is not None and candidate.dist.index_url == ""


def _is_version(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True
