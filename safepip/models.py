"""Frozen values passed between the layers of the pipeline (see docs/architecture.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from safepip._record import field, record

if TYPE_CHECKING:
    from packaging.requirements import Requirement
    from packaging.tags import Tag
    from packaging.utils import NormalizedName
    from packaging.version import Version

FileKind = Literal["wheel", "sdist"]


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
    """The parts of core metadata the resolver and installer use."""

    name: str
    version: Version
    requires_dist: tuple[Requirement, ...]
    requires_python: str | None
    provides_extra: frozenset[str]
    raw: bytes = field(repr=False, compare=False)


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
