"""What the resolver needs from building, and building from resolving (uv's BuildContext).

The resolver asks for an sdist's metadata; the builder asks for a wheelhouse of build
dependencies, which is a resolution of its own (for the same target), whose sdists are
built in turn, one level deeper (bounded by ``builder.MAX_DEPTH``).

Outside the ``safepip.builder`` package on purpose: every resolution holds a context, and
importing it must not import the builder and the sandboxes (a run without sdists needs
neither).
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from safepip._record import replace
from safepip.models import Artifact, DistFile

if TYPE_CHECKING:
    from collections.abc import Callable

    from packaging.requirements import Requirement

    from safepip.builder import Builder, Built
    from safepip.fetch.download import Downloader
    from safepip.index.metadata import MetadataFetcher
    from safepip.index.simple import IndexClient
    from safepip.models import Metadata, Pin
    from safepip.resolve import Options


class BuildContext:
    """Shared by a run and the builds it starts (each at its depth). The builder, and
    with it the sandbox code, is made on first use: a run that builds nothing imports
    none of it."""

    def __init__(self, *, make_builder: Callable[[], Builder], downloader: Downloader,
                 index: IndexClient, metadata: MetadataFetcher, options: Options,
                 scratch: Callable[[], str], jobs: int = 8, depth: int = 0,
                 wheels_needed: bool = True) -> None:
        self.wheels_needed = wheels_needed
        self.downloader = downloader
        self.index = index
        self.metadata = metadata
        self.options = options
        self._scratch = scratch
        self.jobs = jobs
        self.depth = depth
        self._shared = _Shared(make_builder, self)

    @property
    def builder(self) -> Builder:
        return self._shared.builder()

    @property
    def scratch(self) -> str:
        return self._scratch()

    def close(self) -> None:
        """Close the builder (its sandbox's connections), if one was made."""
        if self._shared.made is not None:
            self._shared.made.close()

    def at_depth(self, depth: int) -> BuildContext:
        ctx = BuildContext.__new__(BuildContext)
        ctx.__dict__.update(self.__dict__)
        ctx.depth = depth
        return ctx

    # -- for the resolver ---------------------------------------------------------------

    def sdist_metadata(self, dist: DistFile) -> Metadata:
        art = self.downloader.get(dist)
        # build dependencies are always built; the top level only when installing
        return self.builder.metadata(dist.project, sdist=(art.data, dist.filename),
                                     depth=self.depth,
                                     wheel_needed=self.wheels_needed or self.depth > 0)

    # -- for the installer --------------------------------------------------------------

    def build_pin(self, pin: Pin) -> Artifact:
        """The wheel built from the pin's sdist, as an artifact ready to validate."""
        assert pin.dist is not None and pin.dist.kind == "sdist"
        sdist = self.downloader.get(pin.dist)
        built = self.builder.build(pin.name, sdist=(sdist.data, pin.dist.filename),
                                   depth=self.depth, expect_version=str(pin.version))
        return self._artifact(built, pin.dist, sdist)

    def build_local(self, path: str) -> Built:
        name = os.path.basename(os.path.abspath(path))
        if os.path.isdir(path):
            return self.builder.build(name, project_dir=path, depth=self.depth)
        with open(path, "rb") as f:
            data = f.read()
        from packaging.utils import parse_sdist_filename

        fname = os.path.basename(path)
        project, version = parse_sdist_filename(fname)
        return self.builder.build(project, sdist=(data, fname), depth=self.depth,
                                  expect_version=str(version))

    @staticmethod
    def _artifact(built: Built, sdist_dist: DistFile, sdist: Artifact) -> Artifact:
        from packaging.utils import parse_wheel_filename

        _name, _version, _b, tags = parse_wheel_filename(built.filename)
        wheel_dist = replace(sdist_dist, filename=built.filename, kind="wheel", tags=tags,
                             hashes={}, core_metadata=False)
        sha = hashlib.sha256(built.data).hexdigest()
        how = ("from the built-wheel cache" if built.from_cache else
               f"built in the {built.sandbox} sandbox")
        return Artifact("", sha, wheel_dist,
                        (*sdist.verified_by, how), from_cache=built.from_cache,
                        size=len(built.data), data=built.data)

    # -- for the builder ----------------------------------------------------------------

    def wheelhouse(self, requirements: list[Requirement], depth: int) -> list[str]:
        """Resolve build requirements for the target and return verified wheel paths."""
        from safepip.resolve import Req, resolve

        if not requirements:
            return []
        reqs = [Req.from_requirement(r, "build-system.requires") for r in requirements
                if r.marker is None or r.marker.evaluate(dict(self.options.markers, extra=""))]
        opts = replace(self.options, installed={}, upgrade=frozenset(), no_deps=False,
                       constraints={}, on_candidate=None)
        ctx = self.at_depth(depth)
        pins, _prov = resolve(reqs, self.index, self.metadata, opts, jobs=self.jobs, build=ctx)
        out_dir = os.path.join(self.scratch, f"wheelhouse-{depth}")
        os.makedirs(out_dir, exist_ok=True)

        def fetch(pin: Pin) -> str:
            assert pin.dist is not None
            if pin.dist.kind == "sdist":
                art = ctx.build_pin(pin)
                filename, data = art.dist.filename, art.data
            else:
                art = self.downloader.get(pin.dist)
                filename, data = pin.dist.filename, art.data
            path = os.path.join(out_dir, filename)
            with open(path, "wb") as f:
                f.write(data)
            return path

        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            return list(pool.map(fetch, [p for p in pins if p.dist is not None]))


class _Shared:
    """The one builder of a run, made when first asked for."""

    def __init__(self, make: Callable[[], Builder], root: BuildContext) -> None:
        self.make = make
        self.root = root
        self.made: Builder | None = None
        self.lock = threading.Lock()

    def builder(self) -> Builder:
        with self.lock:
            if self.made is None:
                builder = self.make()
                builder.wheelhouse = self.root.wheelhouse
                self.made = builder
            return self.made
