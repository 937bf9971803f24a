"""Unpacked wheels in the cache: a warm install copies files instead of decompressing.

An entry ``unpacked/<wheel sha256>/`` holds the members of a validated wheel, written
from the verified buffer. It is never trusted as such: every file read from it is
hashed on its way into the staging directory and compared with the RECORD of the
verified wheel (``transaction._Destination``); an entry that does not match is not used
(the wheel is staged from the zip instead, and the entry is replaced).
"""

from __future__ import annotations

import io
import os
import zipfile
from typing import TYPE_CHECKING, BinaryIO, cast

from installer.sources import WheelSource

if TYPE_CHECKING:
    from collections.abc import Iterator

    from installer.sources import WheelContentElement

    from safepip.install.wheel import WheelInfo

COMPLETE = ".safepip-complete"


def unpack(info: WheelInfo, dest: str) -> None:
    """Write the wheel's members under ``dest`` (paths were validated already)."""
    made: set[str] = set()
    with zipfile.ZipFile(io.BytesIO(info.data)) as zf:
        for item in zf.infolist():
            if item.filename.endswith("/"):
                continue
            path = os.path.join(dest, *item.filename.split("/"))
            parent = os.path.dirname(path)
            if parent not in made:
                os.makedirs(parent, exist_ok=True)
                made.add(parent)
            with zf.open(item) as src, open(path, "xb") as out:
                while chunk := src.read(1024 * 1024):
                    out.write(chunk)
            if item.filename in info.executable:
                os.chmod(path, 0o755)
    with open(os.path.join(dest, COMPLETE), "w", encoding="utf-8") as f:
        f.write(info.filename + "\n")


class UnpackedSource(WheelSource):
    """installer's ``WheelSource`` over an unpacked cache entry of a validated wheel."""

    def __init__(self, info: WheelInfo, root: str) -> None:
        name, _, version = info.dist_info[: -len(".dist-info")].rpartition("-")
        super().__init__(name, version)
        self.info = info
        self.root = root

    @property
    def dist_info_dir(self) -> str:
        return self.info.dist_info

    @property
    def data_dir(self) -> str:
        return self.info.data_dir

    @property
    def dist_info_filenames(self) -> list[str]:
        return sorted(os.listdir(os.path.join(self.root, self.info.dist_info)))

    def read_dist_info(self, filename: str) -> str:
        with open(os.path.join(self.root, self.info.dist_info, filename),
                  encoding="utf-8") as f:
            return f.read()

    def validate_record(self) -> None:  # validated on the zip, and again while staging
        return None

    def get_contents(self) -> Iterator[WheelContentElement]:
        # installer takes only the path from these elements; the hash each file is held
        # to comes from the verified wheel's RECORD (WheelInfo.record), never from the
        # cache entry's own copy of it
        scripts = self.info.data_dir + "/scripts/"
        executable = self.info.executable
        for name in self.info.members:
            path = self.root + "/" + name  # member paths were validated: plain, relative
            elements = (name, "", "")
            if name.startswith(scripts):  # installer rewrites their shebang: a real file
                with open(path, "rb") as f:
                    yield elements, cast("BinaryIO", f), name in executable
                continue
            stream = PathStream(path)
            try:
                yield elements, cast("BinaryIO", stream), name in executable
            finally:
                stream.close()


class PathStream:
    """A file of an unpacked entry, opened when first read: raw ``os.read`` calls, none
    of ``open()``'s buffering set-up (``fstat``, ``isatty``, ``lseek`` per file), and in
    hardlink mode the destination links ``name`` after hashing what it reads."""

    __slots__ = ("_fd", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._fd = -1

    def read(self, n: int = -1) -> bytes:
        if self._fd < 0:
            self._fd = os.open(self.name, os.O_RDONLY | os.O_CLOEXEC)
        if n >= 0:
            return os.read(self._fd, n)
        parts = []
        while chunk := os.read(self._fd, 1024 * 1024):
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
