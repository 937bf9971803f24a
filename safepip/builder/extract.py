"""Unpacking source distributions: regular files and directories only (threats.md 13-15).

Not ``tarfile``'s ``data_filter`` (seven bypasses in 2025-26): every member is looked at
here and anything but a regular file or a directory, with a plain relative path inside
the one top-level directory, is refused. Links of both kinds, devices, FIFOs and
setuid bits never reach the disk; a PAX header that changes a member's size is refused.
Only the data of regular files is written, by us, with modes we choose.
"""

from __future__ import annotations

import os
import re
import stat
import tarfile
import zipfile
from typing import IO

from safepip.errors import SdistError

MAX_MEMBERS = 200_000
MAX_TOTAL = 4 * 1024**3


def _check_name(name: str, filename: str) -> list[str]:
    if "\x00" in name or "\\" in name:
        raise SdistError(filename, "member-path", f"member {name!r} has a NUL or backslash")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise SdistError(filename, "member-path", f"member {name!r} is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise SdistError(filename, "member-path", f"member {name!r} has a '..' component")
    return parts


def unpack_sdist(path: str, dest: str, filename: str | None = None) -> str:
    """Unpack the sdist at ``path`` into ``dest``; return the project directory in it."""
    filename = filename or os.path.basename(path)
    if filename.endswith(".zip"):
        tops = _unpack_zip(path, dest, filename)
    else:
        tops = _unpack_tar(path, dest, filename)
    if len(tops) != 1:
        raise SdistError(filename, "layout",
                         f"expected one top-level directory, found {len(tops)}")
    root = os.path.join(dest, next(iter(tops)))
    if not os.path.isdir(root):
        raise SdistError(filename, "layout", "the top-level entry is not a directory")
    return root


def _write(dest: str, parts: list[str], src: IO[bytes], executable: bool) -> None:
    target = os.path.join(dest, *parts)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "xb") as out:
        while chunk := src.read(1024 * 1024):
            out.write(chunk)
    os.chmod(target, 0o755 if executable else 0o644)


def _unpack_tar(path: str, dest: str, filename: str) -> set[str]:
    tops: set[str] = set()
    total = 0
    try:
        tf = tarfile.open(path, mode="r:*")  # noqa: SIM115 - closed by the with below
    except (tarfile.TarError, OSError) as exc:
        raise SdistError(filename, "archive", f"not a readable tar archive: {exc}") from exc
    with tf:
        count = 0
        seen: set[str] = set()
        for member in tf:
            count += 1
            if count > MAX_MEMBERS:
                raise SdistError(filename, "archive", f"more than {MAX_MEMBERS} members")
            parts = _check_name(member.name, filename)
            if not parts:
                continue
            if member.issym() or member.islnk():
                kind = "symbolic" if member.issym() else "hard"
                raise SdistError(filename, "link",
                                 f"member {member.name!r} is a {kind} link to "
                                 f"{member.linkname!r}; links are not unpacked")
            if not (member.isreg() or member.isdir()):
                raise SdistError(filename, "special-file",
                                 f"member {member.name!r} is a device, FIFO or other special "
                                 "file")
            if "size" in member.pax_headers and _ustar_size(tf, member) != member.size:
                # tarfile believes the PAX size; other readers believe the header's
                # (CVE-2025-62518 "TARmageddon"): refuse the disagreement
                raise SdistError(filename, "pax", f"member {member.name!r} has a PAX size "
                                 "that differs from its header")
            tops.add(parts[0])
            key = "/".join(parts)
            if member.isdir():
                os.makedirs(os.path.join(dest, *parts), exist_ok=True)
                continue
            if key in seen:
                raise SdistError(filename, "duplicate", f"member {member.name!r} appears twice")
            seen.add(key)
            total += member.size
            if total > MAX_TOTAL:
                raise SdistError(filename, "archive", f"unpacks to more than {MAX_TOTAL} bytes")
            src = tf.extractfile(member)
            if src is None:
                raise SdistError(filename, "archive", f"member {member.name!r} has no data")
            executable = bool(member.mode & 0o111) and not member.mode & (
                stat.S_ISUID | stat.S_ISGID)
            _write(dest, parts, src, executable)
    return tops


def _ustar_size(tf: tarfile.TarFile, member: tarfile.TarInfo) -> int | None:
    """The size field of the member's own 512-byte header, before PAX applies."""
    pos = tf.fileobj.tell() if tf.fileobj else 0
    try:
        assert tf.fileobj is not None
        tf.fileobj.seek(member.offset_data - tarfile.BLOCKSIZE)
        raw = tf.fileobj.read(tarfile.BLOCKSIZE)
        field = raw[124:136]
        if field[:1] in (b"\x80", b"\xff"):  # base-256
            return int.from_bytes(field[1:], "big")
        text = field.rstrip(b"\x00 ").decode("ascii") or "0"
        return int(text, 8)
    except (ValueError, OSError, AssertionError):
        return None
    finally:
        if tf.fileobj is not None:
            tf.fileobj.seek(pos)


def _unpack_zip(path: str, dest: str, filename: str) -> set[str]:
    from safepip.install.wheel import check_zip_structure

    with open(path, "rb") as f:
        data = f.read()
    check_zip_structure(data, filename)
    tops: set[str] = set()
    import io

    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            parts = _check_name(info.filename, filename)
            if not parts:
                continue
            mode = info.external_attr >> 16
            if mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise SdistError(filename, "link" if stat.S_ISLNK(mode) else "special-file",
                                 f"member {info.filename!r} is not a regular file")
            tops.add(parts[0])
            if info.is_dir():
                os.makedirs(os.path.join(dest, *parts), exist_ok=True)
                continue
            with zf.open(info) as src:
                _write(dest, parts, src, bool(mode & 0o111))
    return tops
