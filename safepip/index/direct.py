"""Candidates for direct references: a wheel given by path or URL."""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING

from packaging.utils import (
    InvalidSdistFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from safepip.errors import UsageError
from safepip.models import Candidate, DistFile

if TYPE_CHECKING:
    from packaging.tags import Tag

    from safepip.models import FileKind


def candidate_for_link(link: str, name: str, extras: frozenset[str],
                       index_url: str = "") -> Candidate:
    """The one candidate a direct wheel (or, from a lock, sdist) reference allows
    (``index_url``: the index a lock file says the file came from; empty for a true
    direct reference)."""
    filename = urllib.parse.unquote(urllib.parse.urlsplit(link).path.rsplit("/", 1)[-1])
    kind: FileKind = "wheel"
    tags: frozenset[Tag] = frozenset()
    if filename.endswith(".whl"):
        wname, version, _build, tags = parse_wheel_filename(filename)
    else:
        try:
            wname, version = parse_sdist_filename(filename)
        except InvalidSdistFilename as exc:
            raise UsageError(f"{link}: not a wheel or sdist file name ({exc})") from exc
        kind = "sdist"
    if wname != canonicalize_name(name):
        raise UsageError(f"{link}: the wheel is {wname}, but the requirement names {name}")
    frag = urllib.parse.urlsplit(link).fragment
    hashes = {}
    if "=" in frag:
        algo, _, digest = frag.partition("=")
        hashes[algo.lower()] = digest.lower()
    dist = DistFile(
        filename=filename,
        url=urllib.parse.urlunsplit(urllib.parse.urlsplit(link)._replace(fragment="")),
        index_url=index_url,
        project=wname,
        version=version,
        kind=kind,
        hashes=hashes,
        tags=tags,
    )
    return Candidate(wname, version, extras, dist)
