"""threats.md rows 13-15: source archives that try to escape, link, or lie."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from safepip.builder.extract import unpack_sdist
from safepip.errors import SdistError


def make_tar(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]],
             name: str = "pkg-1.0.tar.gz") -> Path:
    path = tmp_path / name
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return path


def reg(name: str, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info


def special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_a_good_sdist(tmp_path: Path) -> None:
    path = make_tar(tmp_path, [(reg("pkg-1.0/PKG-INFO"), b"Name: pkg\n"),
                               (reg("pkg-1.0/run.sh", 0o4755), b"#!/bin/sh\n")])
    out = tmp_path / "out"
    out.mkdir()
    root = unpack_sdist(str(path), str(out))
    assert root == str(out / "pkg-1.0")
    mode = os.stat(out / "pkg-1.0" / "run.sh").st_mode
    assert not mode & stat.S_ISUID  # setuid never survives (row 15)


@pytest.mark.parametrize(("members", "rule"), [
    ([(reg("pkg-1.0/../evil"), b"x")], "member-path"),
    ([(reg("/etc/evil"), b"x")], "member-path"),
    ([(reg("pkg-1.0/a/../../../evil"), b"x")], "member-path"),
    ([(special("pkg-1.0/x", tarfile.SYMTYPE, "/etc"), None),
      (reg("pkg-1.0/x/passwd"), b"x")], "link"),
    ([(special("pkg-1.0/shadow", tarfile.LNKTYPE, "/etc/shadow"), None)], "link"),
    ([(special("pkg-1.0/", tarfile.SYMTYPE, ""), None)], "link"),
    ([(special("pkg-1.0/dev", tarfile.CHRTYPE), None)], "special-file"),
    ([(special("pkg-1.0/fifo", tarfile.FIFOTYPE), None)], "special-file"),
    ([(reg("pkg-1.0/a"), b"x"), (reg("other-1.0/b"), b"y")], "layout"),
])
def test_refused_members(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]],
                         rule: str) -> None:
    path = make_tar(tmp_path, members)
    out = tmp_path / "out"
    out.mkdir()
    before = tree(tmp_path)
    with pytest.raises(SdistError) as exc:
        unpack_sdist(str(path), str(out))
    assert f"[{rule}]" in str(exc.value)
    assert "pkg-1.0.tar.gz" in str(exc.value)
    assert not (tmp_path / "evil").exists() and not Path("/etc/evil").exists()
    # nothing outside the output directory changed
    assert [p for p in tree(tmp_path) if not p.startswith("out")] == [
        p for p in before if not p.startswith("out")]


def test_pax_size_differential(tmp_path: Path) -> None:
    info = reg("pkg-1.0/empty")
    info.pax_headers = {"size": "1000"}
    path = make_tar(tmp_path, [(info, b"")])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SdistError, match=r"\[pax\]|not a readable"):
        unpack_sdist(str(path), str(out))


def test_zip_sdist_with_a_link(tmp_path: Path) -> None:
    path = tmp_path / "pkg-1.0.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pkg-1.0/PKG-INFO", "Name: pkg\n")
        info = zipfile.ZipInfo("pkg-1.0/link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SdistError, match=r"\[link\]"):
        unpack_sdist(str(path), str(out))


def test_refused_sdist_from_the_index_is_clean(tmp_path: Path, venv: Path, safepip, clean,
                                               index) -> None:  # type: ignore[no-untyped-def]
    from tests.factory import Built

    path = make_tar(tmp_path, [(reg("evil-1.0/PKG-INFO"),
                                b"Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n\n"),
                               (special("evil-1.0/x", tarfile.SYMTYPE, "/etc"), None)],
                    name="evil-1.0.tar.gz")
    index.add(Built("evil-1.0.tar.gz", path.read_bytes(), b"", "evil", "1.0"))
    path.unlink()
    with clean():
        r = safepip("install", "evil")
    assert r.code == 1
    assert "evil-1.0.tar.gz: member 'evil-1.0/x' is a symbolic link" in r.err
