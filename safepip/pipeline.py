"""``safepip install``: target → resolve → fetch → validate → install → report."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name
from packaging.version import Version

from safepip._record import field, record, replace
from safepip.attest.trust import Policy, TrustStore, judge, project_pins
from safepip.cooldown import DEFAULT, Cooldown, parse_age
from safepip.cooldown import describe as describe_age
from safepip.cooldown import window as cooldown_window
from safepip.errors import HashRequiredError, SafepipError
from safepip.fetch.cache import Cache
from safepip.fetch.download import Downloader
from safepip.index.metadata import MetadataFetcher
from safepip.index.simple import IndexClient
from safepip.install import installed as installed_mod
from safepip.resolve import Options, Req, resolve
from safepip.target import discover, for_resolving, locate

if TYPE_CHECKING:
    from collections.abc import Callable

    from safepip.attest.check import AttestationResult
    from safepip.buildctx import BuildContext
    from safepip.builder import Builder
    from safepip.config import Config
    from safepip.install.wheel import WheelInfo
    from safepip.models import Artifact, DistFile, InstalledDist, Pin
    from safepip.reqfile import RequirementSet, UserRequirement
    from safepip.resolve.provider import Provider
    from safepip.sandbox import Limits, Sandbox
    from safepip.target import Target
    from safepip.ui import UI, DownloadProgress


DEFAULT_AGE = parse_age(DEFAULT)

# what `safepip sync` leaves alone unless the lock lists it (as pip-sync does): the
# environment's own installers
SYNC_KEEPS = frozenset({"pip", "setuptools", "wheel", "safepip"})


@record
class InstallRequest:
    reqs: RequirementSet
    upgrade: bool = False
    upgrade_strategy: str = "only-if-needed"
    force_reinstall: bool = False
    no_deps: bool = False
    dry_run: bool = False
    allow_pth: frozenset[str] = frozenset()
    python: str | None = None
    system: bool = False
    target_dir: str | None = None
    prefix: str | None = None
    user: bool = False
    break_system_packages: bool = False
    link_mode: str = "hardlink"
    for_lock: bool = False  # resolve afresh (ignore what is installed), report every file
    preferred: dict[str, Version] = field(default_factory=dict)  # an existing lock's pins
    sandbox: str = "auto"
    unsafe_build_on_host: bool = False
    limits: Limits | None = None  # the sandbox's build limits (None: its defaults)
    attest: Policy = field(default_factory=Policy)
    sync: bool = False  # also remove what the requirements do not list (safepip sync)
    python_version: str | None = None  # lock for another target than this interpreter
    platform: str | None = None
    data_dir: str | None = None  # where the publisher trust store lives
    min_release_age: float = DEFAULT_AGE  # seconds; files newer than this wait (0: off)


@record
class Outcome:
    """What happened, for the summary and the exit code."""

    target: Target
    pins: list[Pin]
    to_install: list[Pin]
    kept: list[Pin]
    replaced: dict[str, Version]
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)  # how a local project was built
    files: dict[str, list[DistFile]] = field(default_factory=dict)  # for locks: all files
    timings: dict[str, float] = field(default_factory=dict)
    removed: list[InstalledDist] = field(default_factory=list)  # safepip sync
    attestations: dict[str, AttestationResult] = field(default_factory=dict)
    find_links_used: list[str] = field(default_factory=list)  # locations locked files are in
    # for a lock's memo (lock.memo): until when this answer holds, and what it used that
    # no recorded file holds (then it is not remembered)
    fresh_until: float = float("inf")
    unrecorded: list[str] = field(default_factory=list)
    cooldown: dict[str, dict[str, Any]] = field(default_factory=dict)  # what it changed


def _check_hash_mode(reqs: RequirementSet, pins: list[Pin]) -> None:
    """pip's hash-checking mode: every requirement pinned with ==, every pin hashed."""
    if not reqs.hash_checking():
        return
    problems = []
    hashed = {r.name for r in reqs.requirements if r.hashes}
    for r in reqs.requirements:
        if not r.hashes:
            problems.append(f"{r.req} ({r.source}) has no --hash")
        elif not r.link and not any(s.operator in ("==", "===") for s in r.req.specifier):
            problems.append(f"{r.req} ({r.source}) is not pinned with ==")
    user_names = {r.name for r in reqs.requirements}
    problems.extend(
        f"{pin.name}=={pin.version} (a dependency) has no --hash"
        for pin in pins
        if pin.dist is not None and pin.name not in user_names and pin.name not in hashed
    )
    if problems:
        raise HashRequiredError(
            "hash-checking mode (one requirement has --hash, so all must):\n  - "
            + "\n  - ".join(problems),
            hint="add --hash=sha256:... for each of these (safepip lock writes them), or "
                 "remove all hashes",
        )


def new_cache(cfg: Config, data_dir: str | None = None) -> Cache:
    return Cache(None if cfg.no_cache else cfg.cache_dir, data_dir=data_dir)


def run(request: InstallRequest, cfg: Config, ui: UI, cache: Cache | None = None) -> Outcome:
    """Resolve, fetch, check and (unless a dry run) install. What it adds to the cache
    is committed when it succeeds, or, when the caller passes its own ``cache``, left
    for the caller to commit once its own work (writing a lock) has succeeded too."""
    t0 = time.perf_counter()
    own = cache is None
    if cache is None:
        cache = new_cache(cfg, request.data_dir)
    # pages and metadata are fetched in one pool (its threads start while others parse
    # pages, each start waiting for the GIL: a pool for resolution apart cost ~5 ms)
    fetch_pool = ThreadPoolExecutor(max_workers=cfg.jobs, thread_name_prefix="safepip-fetch")
    ok = False
    index: IndexClient | None = None
    try:
        exe = locate(request.python, system=request.system, target_dir=request.target_dir,
                     for_lock=request.for_lock)
        index = _index_client(cfg, cache)
        # the top-level requirements' pages are fetched while the interpreter is probed
        index.prefetch([r.name for r in request.reqs.requirements
                        if not r.link and not r.local], fetch_pool)
        target = for_resolving(request.python, cache, exe) if request.for_lock else discover(
            python=request.python, system=request.system, target_dir=request.target_dir,
            prefix=request.prefix, user=request.user,
            break_system_packages=request.break_system_packages, cache=cache, exe=exe,
        )
        if request.for_lock and (request.python_version or request.platform):
            from safepip.platforms import foreign

            target = replace(target, interpreter=foreign(
                target.interpreter, request.python_version, request.platform))
        ui.detail(f"target: {target.describe()}")
        for note in cfg.notes:
            ui.detail(note)
        # a lock resolves as if nothing were installed (as pip-compile does)
        installed = {} if request.for_lock else installed_mod.scan(target)
        store = TrustStore.default(request.data_dir)
        outcome = _run(request, cfg, ui, target, installed, cache, t0, store, index,
                       fetch_pool)
        ok = True
    finally:
        # fetches under way are waited for, also after a failure (a metadata fetch may be
        # downloading a wheel into the run's staging, which discarding removes); the
        # ones not started are not made
        fetch_pool.shutdown(wait=True, cancel_futures=not ok)
        if index is not None:
            index.http.close()
        if not ok and own:
            cache.discard()
    if own:
        cache.commit()
    if not request.dry_run:
        store.save()  # first publishers seen, now that the install succeeded
    return outcome


def _index_client(cfg: Config, cache: Cache) -> IndexClient:
    http = cfg.http()
    for u in cfg.index_urls:
        if not u.startswith("file:"):
            http.check_url(u)  # refused before any request is made
    find_links = None
    if cfg.find_links:
        from safepip.index.findlinks import FindLinks

        find_links = FindLinks(http, cfg.find_links, offline=cfg.offline)
    return IndexClient(http, cfg.index_urls, cache, offline=cfg.offline,
                       find_links=find_links)


def _run(request: InstallRequest, cfg: Config, ui: UI, target: Target,
         installed: dict[str, Any], cache: Cache, t0: float, store: TrustStore,
         index: IndexClient, fetch_pool: ThreadPoolExecutor) -> Outcome:
    rs = request.reqs
    http = index.http
    progress = ui.download_progress()
    downloader = Downloader(http, cache, progress)
    for r in rs.requirements:
        for algo, digests in r.hashes.items():
            downloader.require_hashes(r.name, algo, set(digests))
    metadata = MetadataFetcher(http, downloader.data_for, cache,
                               prefer_download=not request.dry_run)
    unpacker = _EarlyUnpacker(cache) if cache.root and not request.dry_run else None
    if unpacker is not None:
        downloader.on_fetched = unpacker.submit

    for lock_path in rs.pylocks:
        from safepip.lock.pylock import read_pylock

        read_pylock(lock_path, rs, target.interpreter.markers, target.interpreter.tags)
    constraints: dict[str, list[Req]] = {}
    for c in rs.constraints:
        constraints.setdefault(c.name, []).append(Req.from_requirement(c.req, c.source))
    upgrade: frozenset[str] = frozenset()
    if request.upgrade:
        upgrade = frozenset({":all:"}) if request.upgrade_strategy == "eager" else frozenset(
            r.name for r in rs.requirements)
    if request.force_reinstall:
        upgrade = frozenset({":all:"})
    markers = dict(target.interpreter.markers)
    opts = Options(
        python_version=Version(target.interpreter.version),
        tags=target.interpreter.tags,
        markers=markers,
        pre=rs.pre,
        upgrade=upgrade,
        only_binary=frozenset(rs.only_binary),
        no_binary=frozenset(rs.no_binary),
        no_deps=request.no_deps or rs.from_lock,
        constraints=constraints,
        installed={} if request.force_reinstall or request.for_lock else installed,
        preferred=dict(request.preferred),
        link_index={r.link: r.index for r in rs.requirements if r.link and r.index},
        installed_metadata=installed_mod.read_metadata,
        cooldown=Cooldown(request.min_release_age, time.time())
        if request.min_release_age > 0 else None,
    )
    build = _build_context(request, target, ui, cache, downloader, index, metadata, opts,
                           cfg.jobs)
    session = _Session(request, cfg, ui, target, installed, cache, index, progress,
                       downloader, metadata, opts, build, t0, unpacker, store, fetch_pool)
    try:
        return _resolve_and_install(session)
    finally:
        build.close()
        if unpacker is not None:
            unpacker.close()


class _EarlyUnpacker:
    """Unpacks each downloaded wheel into the (staged) unpacked cache while the network
    is still busy, so that a cold install's staging is a copy, not a decompression.

    Only wheels that pass the structural checks are unpacked (the full validation,
    policy included, still runs before the install); a failure here just means the
    install unpacks it itself."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="safepip-unpack")
        self.futures: dict[str, Future[str | None]] = {}
        self.inspected: dict[str, WheelInfo] = {}  # structural checks already done
        self.lock = threading.Lock()

    def submit(self, art: Artifact) -> None:
        if art.dist.kind != "wheel" or self.cache.unpacked_path(art.sha256) is not None:
            return
        with self.lock:
            if art.sha256 not in self.futures:
                self.futures[art.sha256] = self.pool.submit(self._unpack, art)

    def _unpack(self, art: Artifact) -> str | None:
        from safepip.install.unpacked import unpack
        from safepip.install.wheel import inspect_wheel

        try:
            info = inspect_wheel(art.data, art.dist.filename)
            self.inspected[art.sha256] = info
            path = self.cache.new_unpacked(art.sha256)
            unpack(info, path)
        except (SafepipError, OSError, ValueError):
            return None
        return path

    def wait(self, sha256: str) -> WheelInfo | None:
        """Wait for the wheel's early unpacking; its inspection, if that passed."""
        with self.lock:
            fut = self.futures.get(sha256)
        if fut is not None:
            fut.result()
        return self.inspected.get(sha256)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


@record
class _Session:
    """What one install works with, once set up."""

    request: InstallRequest
    cfg: Config
    ui: UI
    target: Target
    installed: dict[str, Any]
    cache: Cache
    index: IndexClient
    progress: DownloadProgress
    downloader: Downloader
    metadata: MetadataFetcher
    opts: Options
    build: BuildContext
    t0: float
    unpacker: _EarlyUnpacker | None
    store: TrustStore
    fetch_pool: ThreadPoolExecutor  # pages and metadata (the run shuts it down)


def _resolve_and_install(s: _Session) -> Outcome:
    # provenance is checked beside resolution (a file's check starts once resolution
    # reads its metadata) and the downloads: it needs only the index's sha256
    provenance = _Provenance(s)
    s.opts.on_candidate = provenance.early
    try:
        return _resolve_and_install_with(s, provenance)
    finally:
        provenance.close()


def _resolve_and_install_with(s: _Session, provenance: _Provenance) -> Outcome:
    request, cfg, ui, target, installed, cache = (s.request, s.cfg, s.ui, s.target,
                                                  s.installed, s.cache)
    index, progress, _downloader, metadata, opts, build = (s.index, s.progress, s.downloader,
                                                          s.metadata, s.opts, s.build)
    rs, markers, t0 = request.reqs, opts.markers, s.t0
    direct_urls: dict[str, dict[str, object]] = {}
    rs.requirements = [_built_local(r, build, cache, direct_urls) if r.local else r
                       for r in rs.requirements]
    # an editable project's own .pth is what makes it editable: allowed for it alone
    request.allow_pth = request.allow_pth | {
        name for name, du in direct_urls.items()
        if isinstance(di := du.get("dir_info"), dict) and di.get("editable")}
    user_reqs = [Req.from_requirement(r.req, r.source, r.link) for r in rs.requirements]
    # requirements whose markers do not apply to this environment are left out, as pip does
    active = []
    for ur, req in zip(rs.requirements, user_reqs, strict=True):
        if ur.req.marker is not None and not ur.req.marker.evaluate(dict(markers, extra="")):
            ui.detail(f"ignoring {ur.req} ({ur.source}): markers do not match")
            continue
        active.append(req)
    with progress:
        progress.status("Resolving dependencies")
        pins, _provider = resolve(
            active, index, metadata, opts, jobs=cfg.jobs,
            on_pin=lambda n, what: progress.status(f"Resolving dependencies: {n} ({what})"),
            build=build, pool=s.fetch_pool)
        progress.clear_status()
    t_resolved = time.perf_counter()
    cooled = _say_cooldown(ui, _provider, pins)
    for note in index.find_links.notes if index.find_links is not None else []:
        ui.warn(note)
    ui.detail(f"metadata: {metadata.stats}")
    _check_hash_mode(rs, pins)

    to_install: list[Pin] = []
    kept: list[Pin] = []
    replaced: dict[str, Version] = {}
    for pin in pins:
        have = installed.get(pin.name)
        if pin.dist is None:
            kept.append(pin)
            continue
        if have is not None:
            replaced[pin.name] = have.version
        to_install.append(pin)
    outcome = Outcome(target, pins, to_install, kept, replaced, cooldown=cooled)
    if request.sync:
        listed = {p.name for p in pins}
        outcome.removed = [d for name, d in sorted(installed.items())
                           if name not in listed and name not in SYNC_KEEPS]
    for name, du in direct_urls.items():
        where = str(du.get("url", "")).removeprefix("file://")
        editable = isinstance(di := du.get("dir_info"), dict) and di.get("editable")
        outcome.notes[name] = (f"built in the {build.builder.sandbox.name} sandbox from "
                               f"{where}{' (editable)' if editable else ''}")
    outcome.timings["resolve"] = t_resolved - t0
    attest_futs: dict[str, Future[AttestationResult]] = {
        p.name: provenance.check(p.dist)
        for p in (pins if request.for_lock else to_install) if p.dist is not None}
    if request.dry_run or request.for_lock:
        _judge_attestations(s, outcome, attest_futs)
    else:
        _download(s, outcome, to_install)
        _judge_attestations(s, outcome, attest_futs)
        for pin in to_install:  # sdists: built in the sandbox, one at a time
            if pin.dist is not None and pin.dist.kind == "sdist":
                outcome.artifacts[pin.name] = build.build_pin(pin)
    if request.for_lock:
        for pin in pins:
            page_fut = _provider._pages.get(pin.name)
            page = page_fut.result() if page_fut is not None else None
            outcome.files[pin.name] = _provider.lockable(
                pin.name, pin.version, [f for f in page.files if f.version == pin.version]
            ) if page is not None else []
        _hash_unhashed(s, outcome)
        _memo_facts(s, outcome, _provider)
        if index.find_links is not None:
            origin = index.find_links.origin
            outcome.find_links_used = sorted({origin[f.url] for fs in outcome.files.values()
                                              for f in fs if f.url in origin})
    if request.dry_run or request.for_lock:
        _show_timings(ui, outcome)
        return outcome

    t_dl = time.perf_counter()
    outcome.timings["download"] = t_dl - t_resolved

    from safepip.install import transaction  # installer: not needed by lock or --dry-run
    from safepip.install.wheel import from_verdict, validate, verdict_of

    items = []
    n_reused = 0
    for pin in to_install:
        art = outcome.artifacts[pin.name]
        inspected = s.unpacker.wait(art.sha256) if s.unpacker is not None else None
        reused = None
        if inspected is None:  # a wheel seen before: its sealed verdict, if there is one
            inspected = reused = from_verdict(cache.get_verdict(art.sha256), art.data,
                                              art.dist.filename, pin.metadata)
        info = validate(art.data, art.dist.filename, expected=pin.metadata,
                        allow_pth=request.allow_pth, inspected=inspected)
        if reused is None:
            cache.put_verdict(art.sha256, verdict_of(info))
        else:
            n_reused += 1
        outcome.warnings.extend(info.warnings)
        unpacked = cache.unpacked_path(art.sha256) if cache.root else None
        items.append(transaction.InstallItem(
            wheel=info,
            requested=pin.requested,
            replaces=installed.get(pin.name),
            direct_url=direct_urls.get(pin.name) or (
                {"url": art.dist.url, "archive_info": {"hashes": {"sha256": art.sha256}}}
                if art.dist.index_url == "" else None),
            unpacked=unpacked,
            new_unpacked=functools.partial(cache.new_unpacked, art.sha256) if cache.root
            else None,
            hardlink=request.link_mode == "hardlink",
        ))
    for w in outcome.warnings:
        ui.warn(w)
    ui.detail(f"wheel checks: {len(items) - n_reused} inspected, {n_reused} from sealed "
              "verdicts of earlier runs")
    t_valid = time.perf_counter()
    outcome.timings["validate"] = t_valid - t_dl
    for w in transaction.run(items, target, installed, on_wait=_waiting(ui),
                             removals=outcome.removed):
        ui.warn(w)
    t_inst = time.perf_counter()
    outcome.timings["stage+commit"] = t_inst - t_valid
    outcome.timings["install"] = t_inst - t_dl
    outcome.broken = check_environment(target, markers)
    outcome.timings["check"] = time.perf_counter() - t_inst
    _show_timings(ui, outcome)
    return outcome


def _memo_facts(s: _Session, outcome: Outcome, provider: Provider) -> None:
    """Until when a lock's answer holds, and what it used that a memo cannot vouch for."""
    index = s.index
    outcome.fresh_until = index.fresh_until
    outcome.unrecorded = list(index.uncached)
    outcome.unrecorded += [f"{r.name}: a direct reference" for r in s.request.reqs.requirements
                           if r.link or r.local]
    outcome.unrecorded += [f"{p.name}: built from source" for p in outcome.pins
                           if p.dist is not None and p.dist.kind == "sdist"]
    outcome.unrecorded += [f"{name}: provenance unavailable"
                           for name, att in outcome.attestations.items()
                           if att.status == "unavailable"]
    cd = provider.opts.cooldown
    if cd is None:
        return
    # the first file inside the cooldown to leave it (ISO dates compare as text: only
    # files of the last days are parsed)
    import datetime

    first_day = datetime.datetime.fromtimestamp(cd.cutoff, datetime.UTC).strftime("%Y-%m-%d")
    for fut in list(provider._pages.values()):
        page = fut.result() if fut.done() and fut.exception() is None else None
        for f in page.files if page is not None else ():
            if f.upload_time and f.upload_time[:10] >= first_day:
                age = cd.age_if_too_new(f)
                if age is not None:
                    outcome.fresh_until = min(outcome.fresh_until, cd.now - age + cd.min_age)


def _say_cooldown(ui: UI, provider: Provider, pins: list[Pin]) -> dict[str, dict[str, Any]]:
    """What the cooldown changed, said and returned (for --report): newer versions held
    back, and files inside it taken because a pin asked for them."""
    cd = provider.opts.cooldown
    out: dict[str, dict[str, Any]] = {}
    if cd is None:
        return out
    window = cooldown_window(cd.min_age)
    for pin in pins:
        exempt = provider.exempt.get((pin.name, pin.version))
        if exempt is not None and pin.dist is not None:
            age, why = exempt
            ui.warn(f"{pin.name} {pin.version} has files uploaded {describe_age(age)} ago, "
                    f"inside the {window} cooldown: taken because it is {why}")
            out.setdefault(pin.name, {})["taken_inside"] = {"age_s": round(age),
                                                            "because": why}
        newer = [v for v in provider.held_back.get(pin.name, {}) if v > pin.version]
        if newer and pin.dist is not None:
            v = max(newer)
            age = provider.held_back[pin.name][v]
            ui.info(f"{pin.name}: {v} held back (uploaded {describe_age(age)} ago, inside "
                    f"the {window} cooldown), {pin.version} taken; --min-release-age 0 "
                    "takes it")
            out.setdefault(pin.name, {})["held_back"] = {"version": str(v),
                                                         "age_s": round(age)}
    for entry in out.values():
        entry["min_release_age_s"] = round(cd.min_age)
    return out


def _show_timings(ui: UI, outcome: Outcome) -> None:
    ui.detail("timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in outcome.timings.items()))


def _waiting(ui: UI) -> Callable[[], None]:
    """What the environment lock says while another safepip holds it."""
    return lambda: ui.info("waiting for another safepip using this environment...")


def _hash_unhashed(s: _Session, outcome: Outcome) -> None:
    """A lock pins every file by its sha256: files that no index gave a hash for (a
    --find-links directory, an index without hashes) are read (downloaded, cached) and
    hashed here, as pip-compile --generate-hashes does."""
    for pin in outcome.pins:  # a direct URL: its one file
        if pin.dist is not None and not outcome.files.get(pin.name):
            outcome.files[pin.name] = [pin.dist]
    missing = [(name, i, f) for name, fs in outcome.files.items()
               for i, f in enumerate(fs) if not f.sha256]
    if not missing:
        return
    with s.progress, ThreadPoolExecutor(max_workers=s.cfg.jobs) as pool:
        futs = [(name, i, f, pool.submit(s.downloader.get, f)) for name, i, f in missing]
        for name, i, f, fut in futs:
            outcome.files[name][i] = replace(
                f, hashes={**f.hashes, "sha256": fut.result().sha256})


def _download(s: _Session, outcome: Outcome, to_install: list[Pin]) -> None:
    """Parallel downloads (some may be there already from the metadata fallback)."""
    with s.progress, ThreadPoolExecutor(max_workers=s.cfg.jobs) as pool:
        futs = {p.name: pool.submit(s.downloader.get, p.dist) for p in to_install
                if p.dist is not None and p.dist.kind == "wheel"}
        for name, fut in futs.items():
            outcome.artifacts[name] = fut.result()


class _Provenance:
    """Each file's PEP 740 provenance check, started at most once (in a pool of its own):
    early, speculatively, for the first file of each project whose metadata resolution
    reads (the one it pins, unless it backtracks), and for every file pinned once
    resolution is done. Only the pinned files' answers are judged."""

    def __init__(self, s: _Session) -> None:
        from safepip.attest.check import Checker

        self.s = s
        self.checker = Checker(s.downloader.http, s.cache, s.store.root_path)
        self.pool = ThreadPoolExecutor(max_workers=s.cfg.jobs,
                                       thread_name_prefix="safepip-attest")
        self.futures: dict[str, Future[AttestationResult]] = {}
        self.projects: set[str] = set()
        self.lock = threading.Lock()

    def early(self, dist: DistFile) -> None:
        """A file resolution is reading: checked now if the index gave its sha256 (a
        check never downloads a file that may not be pinned) and it is its project's
        first."""
        if not dist.sha256 or dist.url.startswith("file:"):
            return
        with self.lock:
            if dist.project in self.projects:
                return
            self.projects.add(dist.project)
        with contextlib.suppress(RuntimeError):  # closed: the run is over
            self.check(dist)

    def check(self, dist: DistFile) -> Future[AttestationResult]:
        from safepip.attest.check import provenance_url

        with self.lock:
            fut = self.futures.get(dist.url)
            if fut is None:
                if dist.sha256 and provenance_url(dist) is None:
                    # nothing to fetch (the index lists no provenance for it): answered
                    # here, rather than by a thread started for it (a thread start
                    # waits for the GIL, ~5 ms while the others parse pages)
                    fut = Future()
                    try:
                        fut.set_result(self._one(dist))
                    except Exception as exc:  # noqa: BLE001 - the pool's way: for result()
                        fut.set_exception(exc)
                else:
                    fut = self.pool.submit(self._one, dist)
                self.futures[dist.url] = fut
            return fut

    def _one(self, dist: DistFile) -> AttestationResult:
        from safepip.attest.check import AttestationResult

        if dist.url.startswith("file:") and not dist.index_url:
            return AttestationResult(dist.project, str(dist.version), dist.filename,
                                     dist.sha256 or "", "local", note="a local file")
        if dist.project in self.s.request.attest.skip:
            return AttestationResult(dist.project, str(dist.version), dist.filename,
                                     dist.sha256 or "", "skipped")
        sha = dist.sha256 or self.s.downloader.get(dist).sha256
        return self.checker.check(dist, sha)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _judge_attestations(s: _Session, outcome: Outcome,
                        futs: dict[str, Future[AttestationResult]]) -> None:
    """Refuse before anything is installed if any file's provenance says so."""
    t = time.perf_counter()
    for name, fut in futs.items():
        outcome.attestations[name] = fut.result()
    for name in s.request.attest.skip & set(futs):
        s.ui.warn(f"--skip-attestations: the provenance of {name} is NOT checked")
    judge(list(outcome.attestations.values()), s.store, project_pins(os.getcwd()),
          s.request.attest, s.request.reqs.locked_publishers)
    outcome.timings["attestations (wait)"] = time.perf_counter() - t


def uninstall(names: list[str], *, python: str | None = None, system: bool = False,
              target_dir: str | None = None, prefix: str | None = None, user: bool = False,
              break_system_packages: bool = False, dry_run: bool = False,
              ui: UI | None = None) -> tuple[Target, list[InstalledDist], list[str]]:
    """Remove distributions by their RECORD, only inside the environment, as one
    transaction; returns what was (or would be) removed and the names not installed."""
    target = discover(python=python, system=system, target_dir=target_dir, prefix=prefix,
                      user=user, break_system_packages=break_system_packages)
    installed = installed_mod.scan(target)
    wanted = list(dict.fromkeys(canonicalize_name(n) for n in names))
    found = [installed[n] for n in wanted if n in installed]
    missing: list[str] = [n for n in wanted if n not in installed]
    if found and not dry_run:
        from safepip.install import transaction

        transaction.run([], target, installed, removals=found,
                        on_wait=_waiting(ui) if ui else None)
    return target, found, missing


def check_environment(target: Target, markers: dict[str, str]) -> list[str]:
    """Unmet dependencies among what is installed now (pip check's warnings)."""
    from safepip.errors import MetadataError

    now = installed_mod.scan(target)
    problems = []
    for name, dist in sorted(now.items()):
        try:
            md = installed_mod.read_metadata(dist)
        except (OSError, MetadataError):
            continue
        for req in md.dependencies(()):
            if req.marker is not None and not req.marker.evaluate(dict(markers, extra="")):
                continue
            dep = now.get(canonicalize_name(req.name))
            if dep is None:
                problems.append(f"{name} {dist.version} requires {req}, which is not installed")
            elif not req.specifier.contains(dep.version, prereleases=True):
                problems.append(f"{name} {dist.version} requires {req}, but {dep.name} "
                                f"{dep.version} is installed")
    return problems


def _build_context(request: InstallRequest, target: Target, ui: UI, cache: Cache,
                   downloader: Downloader, index: IndexClient, metadata: MetadataFetcher,
                   opts: Options, jobs: int) -> BuildContext:
    """Builds happen in the sandbox that ``--sandbox`` picks, chosen only when needed
    (and the builder is made only then: a run without sdists imports none of it)."""
    from safepip.buildctx import BuildContext

    def make_builder() -> Builder:
        from packaging.tags import parse_tag

        from safepip.builder import Builder
        from safepip.sandbox import Limits

        supported = {str(t) for tag in target.interpreter.tags for t in parse_tag(tag)}
        return Builder(sandbox, lambda reqs, depth: [],
                       None if cache.root is None else cache, ui, request.limits or Limits(),
                       target_tags=supported.__contains__)

    def sandbox() -> Sandbox:
        from safepip.errors import SandboxError
        from safepip.sandbox.select import HostRunner, choose

        if request.unsafe_build_on_host:
            ui.warn("--unsafe-build-on-host: build code runs ON THIS MACHINE, with your "
                    "rights, network and files; nothing is sandboxed")
            return HostRunner(target.interpreter.executable)
        # an editable project owned by root cannot be built in place by Docker without
        # running as root: auto then takes bubblewrap first
        root_owned = any(r.editable and r.local and os.path.exists(r.local)
                         and os.stat(r.local).st_uid == 0 for r in request.reqs.requirements)
        choice = choose(request.sandbox, prefer_bwrap=root_owned)
        if choice.sandbox is None:
            raise SandboxError(
                "a build is needed, and no sandbox is available to run it:\n  - "
                + "\n  - ".join(choice.reasons),
                hint="see `safepip sandbox status`; install Docker or bubblewrap (and run "
                     "`safepip sandbox build-image`), or pass --unsafe-build-on-host to build "
                     "on this machine (not recommended)")
        return choice.sandbox

    return BuildContext(make_builder=make_builder, downloader=downloader, index=index,
                        metadata=metadata, options=opts, scratch=cache.scratch, jobs=jobs,
                        wheels_needed=not request.dry_run)


def _built_local(req: UserRequirement, build: BuildContext, cache: Cache,
                 direct_urls: dict[str, dict[str, object]]) -> UserRequirement:
    """A local project or sdist file, built in the sandbox, as a direct wheel requirement."""
    import hashlib
    import os
    from pathlib import Path

    from packaging.requirements import Requirement
    from packaging.utils import parse_wheel_filename

    assert req.local is not None
    if req.editable:
        built = build.builder.build_editable(req.local)
        info: dict[str, object] = {"url": Path(req.local).as_uri(),
                                   "dir_info": {"editable": True}}
    else:
        built = build.build_local(req.local)
        if os.path.isdir(req.local):
            info = {"url": Path(req.local).as_uri(), "dir_info": {}}
        else:
            with open(req.local, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            info = {"url": Path(req.local).as_uri(),
                    "archive_info": {"hashes": {"sha256": digest}}}
    path = os.path.join(cache.scratch(), "local", built.filename)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(built.data)
    name, version, _b, _t = parse_wheel_filename(built.filename)
    extras = f"[{','.join(sorted(req.req.extras))}]" if req.req.extras else ""
    direct_urls[name] = info
    return replace(req, req=Requirement(f"{name}{extras}=={version}"),
                   link=Path(path).as_uri(), local=None, editable=False)


def requested_extras(reqs: RequirementSet) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in reqs.requirements:
        if r.req.extras:
            out.setdefault(canonicalize_name(r.req.name), []).extend(sorted(r.req.extras))
    return out


def verification_summary(outcome: Outcome) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, art in outcome.artifacts.items():
        out[name] = {"sha256": art.sha256, "verified_by": list(art.verified_by),
                     "from_cache": art.from_cache, "record_checked": True}
    for name, att in outcome.attestations.items():
        entry = out.setdefault(name, {})
        entry["attestation"] = attestation_summary(att)
    for name, cooled in outcome.cooldown.items():
        out.setdefault(name, {})["cooldown"] = cooled
    return out


def attestation_summary(att: AttestationResult) -> dict[str, Any]:
    """A file's provenance check, for --report and lock files."""
    out: dict[str, Any] = {"status": att.status, "file": att.filename}
    if att.note:
        out["note"] = att.note
    if att.verified is not None:
        out["publisher"] = att.verified.publisher.as_dict()
        out["predicates"] = att.verified.predicates
        out["rekor_log_index"] = [a.log_index for a in att.verified.attestations]
    return out


__all__ = ["InstallRequest", "Outcome", "run"]
