"""Frozen values passed between the layers of the pipeline (see docs/architecture.md)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from safepip._record import field, record

if TYPE_CHECKING:
    from collections.abc import Iterable

    from packaging.requirements import Requirement
    from packaging.tags import Tag
    from packaging.utils import NormalizedName
    from packaging.version import Version

FileKind = Literal["wheel", "sdist"]
_ONLY_EXTRA = re.compile(r"""extra\s*==\s*(["'])([^"']+)\1""")


@record(frozen=True)
class DistFile:
    """One file of a project as an index lists it."""

    filename: str
    url: str
    index_url: str
    project: NormalizedName
    version: Version
    kind: FileKind
    hashes: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    requires_python: str | None = None
    yanked: str | None = None  # None: not yanked; "" yanked without a reason
    upload_time: str | None = None
    size: int | None = None
    # PEP 658/714: False when not declared, True when declared (maybe with hashes).
    core_metadata: bool = False
    core_metadata_hashes: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    # PEP 740: the provenance URL; "" when the index says there is none; None when the
    # index does not say (then its Integrity API is asked)
    provenance: str | None = None
    tags: frozenset[Tag] = field(default_factory=frozenset, hash=False, compare=False)

    @property
    def sha256(self) -> str | None:
        return self.hashes.get("sha256")

    @property
    def is_yanked(self) -> bool:
        return self.yanked is not None


@record(frozen=True)
class ProjectPage:
    """An index's answer for one project."""

    project: NormalizedName
    index_url: str
    files: tuple[DistFile, ...]


@record(frozen=True)
class Metadata:
    """The parts of core metadata the resolver and installer use. Requires-Dist lines
    are parsed when they are first used (``dependencies``, ``requires_dist``): parsing
    them was most of reading metadata, and most lines are an extra's, never used."""

    name: str
    version: Version
    requires_dist_lines: tuple[str, ...]
    requires_python: str | None
    provides_extra: frozenset[str]
    raw: bytes = field(repr=False, compare=False)
    where: str = field(default="", repr=False, compare=False)  # said by a parse error
    _parsed: dict[str, Requirement] = field(default_factory=dict, repr=False, compare=False)

    @property
    def requires_dist(self) -> tuple[Requirement, ...]:
        """Every Requires-Dist, parsed."""
        return tuple(self._requirement(line) for line in self.requires_dist_lines)

    def dependencies(self, extras: Iterable[str]) -> list[Requirement]:
        """The Requires-Dist lines that may apply with these extras (none: the project
        alone), parsed; their markers are the caller's to evaluate. A line whose whole
        marker is ``extra == "X"`` applies only when X is asked for, and is not parsed
        otherwise."""
        from packaging.utils import canonicalize_name

        wanted = {canonicalize_name(e) for e in extras}
        out = []
        for line in self.requires_dist_lines:
            only = _only_extra(line)
            if only is None or canonicalize_name(only) in wanted:
                out.append(self._requirement(line))
        return out

    def _requirement(self, line: str) -> Requirement:
        req = self._parsed.get(line)
        if req is None:
            from packaging.requirements import InvalidRequirement, Requirement

            from safepip.errors import MetadataError

            try:
                req = Requirement(line)
            except InvalidRequirement as exc:
                raise MetadataError(f"{self.where}: invalid Requires-Dist {line!r}: "
                                    f"{exc}") from exc
            self._parsed[line] = req
        return req


def _only_extra(line: str) -> str | None:
    """X when the requirement's whole marker is ``extra == "X"`` (X not empty), else
    None. Only for a requirement by name: before a URL's end, a ``;`` may be the URL's."""
    head, sep, marker = line.partition(";")
    if not sep or "@" in head:
        return None
    m = _ONLY_EXTRA.fullmatch(marker.strip())
    return m[2] if m else None


@record(frozen=True)
class Candidate:
    """A (project, version) the resolver may pick, with the file it would install."""

    name: NormalizedName
    version: Version
    extras: frozenset[str]
    dist: DistFile | None  # None for an already-installed distribution kept as is
    installed_version: Version | None = None



@record(frozen=True)
class Artifact:
    """A downloaded file whose digest has been checked."""

    path: str
    sha256: str
    dist: DistFile
    verified_by: tuple[str, ...]  # e.g. ("the index sha256", "--hash sha256")
    from_cache: bool = False
    size: int = 0
    # the verified bytes themselves: validated and installed from this very buffer
    data: bytes = field(default=b"", repr=False, compare=False)


@record(frozen=True)
class Pin:
    """One resolved project: what to install and why."""

    name: NormalizedName
    version: Version
    dist: DistFile | None
    extras: frozenset[str]
    requested: bool
    metadata: Metadata | None
    via: tuple[str, ...] = ()  # what required it: project names, or where the user asked


@record(frozen=True)
class InstalledDist:
    """A distribution found in the target environment."""

    name: NormalizedName
    version: Version
    dist_info: str  # absolute path of the .dist-info directory
    installer: str | None
    requested: bool
