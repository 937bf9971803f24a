"""What is installed in the target: distributions, their metadata and their files.

Only files are read; nothing in the target is imported (threats.md row 12).
"""

from __future__ import annotations

import csv
import os
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from safepip.index.metadata import parse_metadata
from safepip.models import InstalledDist

if TYPE_CHECKING:
    from safepip.models import Metadata
    from safepip.target import Target


def scan(target: Target) -> dict[str, InstalledDist]:
    """Installed distributions by normalized name (the first on the path wins)."""
    found: dict[str, InstalledDist] = {}
    for site in target.site_dirs:
        try:
            entries = sorted(os.listdir(site))
        except OSError:
            continue
        for entry in entries:
            if not entry.endswith(".dist-info"):
                continue
            path = os.path.join(site, entry)
            md_path = os.path.join(path, "METADATA")
            try:
                with open(md_path, "rb") as f:
                    head = f.read(64 * 1024)
            except OSError:
                continue
            name = version = None
            for line in head.split(b"\n"):
                if line.startswith(b"Name:"):
                    name = line[5:].strip().decode("utf-8", "replace")
                elif line.startswith(b"Version:"):
                    version = line[8:].strip().decode("utf-8", "replace")
                elif not line.strip():
                    break
            if not name or not version:
                continue
            try:
                ver = Version(version)
            except InvalidVersion:
                continue
            cname = canonicalize_name(name)
            if cname in found:
                continue
            installer = _read_text(os.path.join(path, "INSTALLER"))
            found[cname] = InstalledDist(
                name=cname,
                version=ver,
                dist_info=path,
                installer=installer.strip() if installer else None,
                requested=os.path.exists(os.path.join(path, "REQUESTED")),
            )
    return found


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def read_metadata(dist: InstalledDist) -> Metadata:
    with open(os.path.join(dist.dist_info, "METADATA"), "rb") as f:
        return parse_metadata(f.read(), dist.dist_info)


def record_paths(dist: InstalledDist) -> list[str]:
    """Absolute, normalized paths listed in the distribution's RECORD."""
    site = os.path.dirname(dist.dist_info)
    text = _read_text(os.path.join(dist.dist_info, "RECORD"))
    if text is None:
        return []
    return [os.path.normpath(os.path.join(site, row[0]))
            for row in csv.reader(text.splitlines()) if row and row[0]]


def file_owners(installed: dict[str, InstalledDist]) -> dict[str, set[str]]:
    """Map each recorded file to the distributions whose RECORD lists it."""
    owners: dict[str, set[str]] = {}
    for name, dist in installed.items():
        for p in record_paths(dist):
            owners.setdefault(p, set()).add(name)
    return owners
