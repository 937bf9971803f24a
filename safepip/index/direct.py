"""Candidates for direct references: a wheel given by path or URL."""

from __future__ import annotations

import urllib.parse

from packaging.utils import canonicalize_name, parse_wheel_filename

from safepip.errors import UsageError
from safepip.models import Candidate, DistFile


def candidate_for_link(link: str, name: str, extras: frozenset[str],
                       index_url: str = "") -> Candidate:
    """The one candidate a direct wheel reference allows (``index_url``: the index a
    lock file says the file came from; empty for a true direct reference)."""
    filename = urllib.parse.unquote(urllib.parse.urlsplit(link).path.rsplit("/", 1)[-1])
    wname, version, _build, tags = parse_wheel_filename(filename)
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
        kind="wheel",
        hashes=hashes,
        tags=tags,
    )
    return Candidate(wname, version, extras, dist)
