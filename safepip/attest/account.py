"""``safepip verify``: a readable account of a file's provenance.

Besides the verified publisher, it compares the repository URLs the project *declares*
in its metadata (which anyone can write) with the repository its attestation proves it
was built from: a package that claims a famous repository it was not built from (the
"borrowed GitHub stars" trick) is shown as such.
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING

from safepip._record import record

if TYPE_CHECKING:
    from safepip.attest.publisher import Publisher

REPO_HOSTS = ("github.com", "gitlab.com")


@record(frozen=True)
class DeclaredURL:
    label: str
    url: str
    repository: str | None  # "github.com/owner/repo" when the URL names a repository
    matches: bool | None  # None: not a repository URL, or nothing attested to compare


def repository_of(url: str) -> str | None:
    """``github.com/owner/repo`` (lower case) for a URL into a repository, else None."""
    p = urllib.parse.urlsplit(url.strip())
    host = (p.hostname or "").lower().removeprefix("www.")
    if host not in REPO_HOSTS:
        return None
    path = p.path.split("/-/")[0] if host == "gitlab.com" else p.path
    parts = [s for s in path.split("/") if s]
    if len(parts) < 2:
        return None
    if host == "github.com":
        parts = parts[:2]
    else:  # GitLab groups nest; stop where the repository's own pages begin
        for i, part in enumerate(parts):
            if part in ("tree", "blob", "issues", "merge_requests", "wikis", "releases"):
                parts = parts[:i]
                break
    parts[-1] = parts[-1].removesuffix(".git")
    return f"{host}/{'/'.join(parts)}".lower()


def declared_urls(raw_metadata: bytes, attested: Publisher | None) -> list[DeclaredURL]:
    from packaging.metadata import parse_email

    fields, _ = parse_email(raw_metadata)
    urls: list[tuple[str, str]] = []
    if fields.get("home_page"):
        urls.append(("Home-page", str(fields["home_page"])))
    if fields.get("download_url"):
        urls.append(("Download-URL", str(fields["download_url"])))
    urls.extend((label, url) for label, url in (fields.get("project_urls") or {}).items())
    proven = attested.repository_url if attested is not None else None
    proven_repo = repository_of(proven) if proven else None
    out = []
    for label, url in urls:
        repo = repository_of(url)
        matches = None if repo is None or proven_repo is None else repo == proven_repo
        out.append(DeclaredURL(label, url, repo, matches))
    return out
