"""The resolver's provider on its own: what it fetches ahead of resolution."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from safepip.models import DistFile, Metadata, ProjectPage
from safepip.resolve import Options, Req
from safepip.resolve.provider import Provider

# a chain app -> lib -> leaf, and a dependency only Windows takes
GRAPH = {"app": ["lib>=1"], "lib": ["leaf", "winonly; sys_platform == 'win32'"], "leaf": [],
         "winonly": []}


class Index:
    def __init__(self) -> None:
        self.index_urls = ["https://example.invalid/simple/"]
        self.find_links = None
        self.asked: list[str] = []

    def project(self, name: str) -> ProjectPage:
        self.asked.append(name)
        project = NormalizedName(canonicalize_name(name))
        dist = DistFile(f"{name}-1.0-py3-none-any.whl", f"https://example.invalid/{name}.whl",
                        self.index_urls[0], project, Version("1.0"), "wheel",
                        tags=frozenset({Tag("py3", "none", "any")}))
        return ProjectPage(project, self.index_urls[0], (dist,))


class Fetcher:
    def fetch(self, dist: DistFile) -> Metadata:
        return Metadata(dist.project, dist.version, tuple(GRAPH[dist.project]), None,
                        frozenset(), b"")


def test_dependencies_are_fetched_before_resolution_asks() -> None:
    """When a page's best file has its metadata, its dependencies' pages are asked for
    at once, level after level, with no resolution step in between; markers that do not
    apply are not followed."""
    index = Index()
    opts = Options(python_version=Version("3.11"), tags=["py3-none-any"],
                   markers={"sys_platform": "linux", "python_version": "3.11"})
    with ThreadPoolExecutor(4) as pool:
        provider = Provider(index, Fetcher(), opts, pool, {NormalizedName("app")})  # type: ignore[arg-type]
        provider.prefetch([Req(NormalizedName("app"), frozenset(), SpecifierSet(), "test")])
        deadline = time.monotonic() + 10
        while "leaf" not in index.asked and time.monotonic() < deadline:
            time.sleep(0.01)
    assert index.asked[:3] == ["app", "lib", "leaf"]
    assert "winonly" not in index.asked


def test_no_deps_fetches_no_dependencies() -> None:
    index = Index()
    opts = Options(python_version=Version("3.11"), tags=["py3-none-any"],
                   markers={"sys_platform": "linux"}, no_deps=True)
    with ThreadPoolExecutor(4) as pool:
        provider = Provider(index, Fetcher(), opts, pool, {NormalizedName("app")})  # type: ignore[arg-type]
        provider.prefetch([Req(NormalizedName("app"), frozenset(), SpecifierSet(), "test")])
    assert index.asked == ["app"]
