"""What ``safepip verify`` finds out about a file or a release (the CLI prints it)."""

from __future__ import annotations

import datetime
import hashlib
import io
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from safepip._record import field, record
from safepip.attest.account import DeclaredURL, declared_urls
from safepip.attest.check import AttestationResult, Checker
from safepip.attest.trust import TrustStore, project_pins
from safepip.attest.verify import verify_provenance
from safepip.errors import AttestationError, SafepipError, UsageError

if TYPE_CHECKING:
    from safepip.config import Config
    from safepip.fetch.cache import Cache
    from safepip.index.http import HttpClient
    from safepip.models import DistFile


@record
class Account:
    result: AttestationResult
    trust: str = ""
    declared: list[DeclaredURL] = field(default_factory=list)

    def lines(self) -> list[str]:
        r = self.result
        out = [f"{r.filename}", f"  sha256        {r.sha256}"]
        v = r.verified
        if v is None:
            out.append(f"  provenance    {r.describe()}" + (f": {r.note}" if r.note else ""))
        else:
            pub = v.publisher
            out.append(f"  attested by   {pub.describe()}")
            if pub.repository_url:
                out.append(f"  repository    {pub.repository_url}")
            if pub.environment:
                out.append(f"  environment   {pub.environment}")
            for a in v.attestations:
                out.append(f"  statement     {v.predicates[v.attestations.index(a)]} "
                           f"({a.predicate_type})")
                if a.ref or a.commit:
                    out.append(f"  source        {a.ref or '?'} @ {a.commit or '?'}")
                if a.run:
                    out.append(f"  run           {a.run}")
                out.append(f"  certificate   {a.identity}" +
                           (f" (issuer {a.issuer})" if a.issuer else ""))
                when = (datetime.datetime.fromtimestamp(a.integrated_time, datetime.UTC)
                        .strftime("%Y-%m-%d %H:%M:%S UTC") if a.integrated_time else "?")
                entry = (f"Rekor log index {a.log_index} "
                         f"(https://search.sigstore.dev/?logIndex={a.log_index})"
                         if a.log_index is not None else "no log entry")
                out.append(f"  signed        {when}, {entry}")
        if self.trust:
            out.append(f"  trust         {self.trust}")
        if self.declared:
            out.append("  declared URLs (written by the uploader, not verified):")
            width = max(len(d.label) for d in self.declared)
            for d in self.declared:
                mark = ""
                if d.matches is True:
                    mark = "  ✓ the attested repository"
                elif d.matches is False:
                    mark = ("  ✗ NOT the attested repository: the project claims it but "
                            "was not built from it")
                elif d.repository is not None and v is None:
                    mark = "  (unproven: nothing attested to compare with)"
                out.append(f"    {d.label:<{width}}  {d.url}{mark}")
        return out


def _trust_line(name: str, result: AttestationResult, store: TrustStore) -> str:
    pins = project_pins(os.getcwd())
    rec = pins.get(name) or store.records.get(name)
    if rec is None:
        return ("nothing recorded yet: the next install records this publisher"
                if result.verified else "no publisher recorded for this project")
    where = f"pinned in {rec.source}" if "pyproject" in rec.source else (
        f"recorded since {rec.version or rec.recorded}")
    if result.verified is None:
        return f"REFUSED on install: {rec.publisher.describe()} is {where}, this is not attested"
    if result.verified.publisher.key == rec.publisher.key:
        return f"the trusted publisher ({where})"
    return f"REFUSED on install: {rec.publisher.describe()} is {where}"


def _metadata_of(filename: str, data: bytes) -> bytes | None:
    if filename.endswith(".whl"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                names = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith(
                    ".dist-info/METADATA")]
                return zf.read(names[0]) if len(names) == 1 else None
        except (zipfile.BadZipFile, OSError, KeyError):
            return None
    from safepip.builder import sdist_pkg_info

    return sdist_pkg_info(data, filename)


def _project_of(filename: str) -> tuple[str, str]:
    try:
        if filename.endswith(".whl"):
            name, version, _b, _t = parse_wheel_filename(filename)
        else:
            name, version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename) as exc:
        raise UsageError(f"{filename} is not a distribution file name: {exc}") from exc
    return name, str(version)


def _session(cfg: Config) -> tuple[HttpClient, Cache]:
    from safepip.fetch.cache import Cache

    http = cfg.http()
    return http, Cache(None if cfg.no_cache else cfg.cache_dir)


def inspect_file(path: str, provenance_path: str | None, cfg: Config) -> Account:
    filename = os.path.basename(path)
    name, version = _project_of(filename)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise SafepipError(f"cannot read {path}: {exc}") from exc
    sha = hashlib.sha256(data).hexdigest()
    store = TrustStore.default()
    if provenance_path is not None:
        try:
            with open(provenance_path, "rb") as f:
                raw = f.read()
        except OSError as exc:
            raise SafepipError(f"cannot read {provenance_path}: {exc}") from exc
        verified = verify_provenance(raw, filename, sha, store.root_path())
        result = AttestationResult(name, version, filename, sha, "attested", verified,
                                   url=provenance_path)
    else:
        result = _from_index(filename, name, sha, cfg, store)
    md = _metadata_of(filename, data)
    return Account(result, _trust_line(name, result, store),
                   declared_urls(md, result.verified.publisher if result.verified else None)
                   if md else [])


def _from_index(filename: str, name: str, sha: str, cfg: Config,
                store: TrustStore) -> AttestationResult:
    from safepip.index.simple import IndexClient

    http, cache = _session(cfg)
    try:
        page = IndexClient(http, cfg.index_urls, cache, offline=cfg.offline).project(name)
        dist = next((d for d in page.files if d.filename == filename), None) if page else None
        if dist is None:
            raise SafepipError(f"{filename} is not on the index ({', '.join(cfg.index_urls)})",
                               hint="give its provenance with --provenance FILE, or the "
                                    "index with --index-url")
        if dist.sha256 and dist.sha256 != sha:
            raise AttestationError(
                f"this file's sha256 is {sha}, but the index lists {dist.sha256} for "
                "that name: it is not the file the index serves", filename=filename)
        result = Checker(http, cache, store.root_path()).check(dist, sha)
    except BaseException:
        cache.discard()
        raise
    finally:
        http.close()
    cache.commit()
    if result.error is not None:
        raise result.error
    return result


def inspect_release(spec: str, cfg: Config) -> list[Account]:
    """Every file of NAME==VERSION on the index, checked in parallel."""
    from safepip.fetch.download import Downloader
    from safepip.index.simple import IndexClient

    try:
        req = Requirement(spec)
    except InvalidRequirement as exc:
        raise UsageError(f"{spec!r}: give a file or NAME==VERSION ({exc})") from exc
    pinned = [s.version for s in req.specifier if s.operator in ("==", "===")]
    if len(pinned) != 1 or "*" in pinned[0]:
        raise UsageError(f"{spec!r}: name one version, as NAME==VERSION")
    name = canonicalize_name(req.name)
    http, cache = _session(cfg)
    store = TrustStore.default()
    try:
        page = IndexClient(http, cfg.index_urls, cache, offline=cfg.offline).project(name)
        files: list[DistFile] = [d for d in (page.files if page else ())
                                 if req.specifier.contains(d.version, prereleases=True)]
        if not files:
            raise SafepipError(f"{spec}: no such release on the index "
                               f"({', '.join(cfg.index_urls)})")
        downloader = Downloader(http, cache)
        checker = Checker(http, cache, store.root_path())

        def one(d: DistFile) -> AttestationResult:
            return checker.check(d, d.sha256 or downloader.get(d).sha256)

        with ThreadPoolExecutor(max_workers=cfg.jobs) as pool:
            results = list(pool.map(one, files))
        md = _release_metadata(files, http, downloader, cache)
    except BaseException:
        cache.discard()
        raise
    finally:
        http.close()
    cache.commit()
    accounts = [Account(r) for r in results]
    first = next((a for a in accounts if a.result.verified), accounts[0])
    first.trust = _trust_line(name, first.result, store)
    if md:
        first.declared = declared_urls(
            md, first.result.verified.publisher if first.result.verified else None)
    return accounts


def _release_metadata(files: list[DistFile], http: HttpClient, downloader: object,
                      cache: Cache) -> bytes | None:
    from safepip.fetch.download import Downloader
    from safepip.index.metadata import MetadataFetcher

    assert isinstance(downloader, Downloader)
    wheel = next((d for d in files if d.kind == "wheel"), None)
    try:
        if wheel is not None:
            return MetadataFetcher(http, downloader.data_for, cache).fetch(wheel).raw
        sdist = files[0]
        return _metadata_of(sdist.filename, downloader.get(sdist).data)
    except SafepipError:
        return None
