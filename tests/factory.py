"""The package factory: wheels written with zipfile, so broken ones are easy to make."""

from __future__ import annotations

import base64
import hashlib
import io
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field

from packaging.utils import canonicalize_name


@dataclass
class Built:
    filename: str
    data: bytes
    metadata: bytes
    name: str
    version: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Member:
    name: str
    data: bytes
    mode: int | None = None  # unix mode bits, e.g. stat.S_IFLNK | 0o777


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def metadata_text(name: str, version: str, requires: list[str] | None = None,
                  requires_python: str | None = None,
                  extras: dict[str, list[str]] | None = None) -> bytes:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines.extend(f"Requires-Dist: {r}" for r in requires or [])
    for extra, reqs in (extras or {}).items():
        lines.append(f"Provides-Extra: {extra}")
        lines.extend(f'Requires-Dist: {r}; extra == "{extra}"' for r in reqs)
    return ("\n".join(lines) + "\n\n").encode()


def make_wheel(
    name: str,
    version: str = "1.0",
    *,
    files: dict[str, bytes | str] | None = None,
    requires: list[str] | None = None,
    requires_python: str | None = None,
    extras: dict[str, list[str]] | None = None,
    entry_points: dict[str, dict[str, str]] | None = None,
    tag: str = "py3-none-any",
    metadata: bytes | None = None,
    extra_members: list[Member] | None = None,
    record: str = "good",  # good | missing | wrong-hash | unlisted
    mutate: Callable[[list[Member]], None] | None = None,
    filename: str | None = None,
    dist_info_name: str | None = None,
) -> Built:
    """A wheel for ``name``; by default valid, with one module and a full RECORD."""
    norm = canonicalize_name(name).replace("-", "_")
    di = dist_info_name or f"{norm}-{version}.dist-info"
    md = metadata if metadata is not None else metadata_text(
        name, version, requires, requires_python, extras)
    members: list[Member] = []
    for path, content in (files if files is not None else {
            f"{norm}/__init__.py": f"__version__ = {version!r}\n"}).items():
        members.append(Member(path, content.encode() if isinstance(content, str) else content))
    members.append(Member(f"{di}/METADATA", md))
    members.append(Member(f"{di}/WHEEL",
                          f"Wheel-Version: 1.0\nGenerator: factory\nRoot-Is-Purelib: true\n"
                          f"Tag: {tag}\n".encode()))
    if entry_points:
        text = "".join(
            f"[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
            for section, eps in entry_points.items())
        members.append(Member(f"{di}/entry_points.txt", text.encode()))
    members.extend(extra_members or [])
    if mutate:
        mutate(members)
    if record != "missing":
        rows = []
        for m in members:
            if m.name.endswith("/"):
                continue
            h = _record_hash(m.data)
            if record == "wrong-hash" and m.name.endswith("__init__.py"):
                h = _record_hash(b"something else")
            if record == "unlisted" and m.name.endswith("__init__.py"):
                continue
            rows.append(f"{m.name},{h},{len(m.data)}")
        if record == "escape":
            rows.append("../../../evil.txt,,")
        rows.append(f"{di}/RECORD,,")
        members.append(Member(f"{di}/RECORD", ("\n".join(rows) + "\n").encode()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for m in members:
            zi = zipfile.ZipInfo(m.name, date_time=(2024, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = ((m.mode if m.mode is not None else stat.S_IFREG | 0o644)
                                << 16)
            zf.writestr(zi, m.data)
    fn = filename or f"{norm}-{version}-{tag}.whl"
    return Built(fn, buf.getvalue(), md, name, version)


@dataclass
class SdistSpec:
    files: dict[str, bytes] = field(default_factory=dict)


def make_sdist(name: str, version: str = "1.0") -> Built:
    """A minimal sdist (tar.gz) with PKG-INFO; safepip must not build it on the host."""
    import tarfile

    norm = canonicalize_name(name).replace("-", "_")
    root = f"{norm}-{version}"
    md = metadata_text(name, version)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for path, data in ((f"{root}/PKG-INFO", md),
                           (f"{root}/setup.py", b"raise SystemExit('built on the host!')\n")):
            ti = tarfile.TarInfo(path)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return Built(f"{root}.tar.gz", buf.getvalue(), md, name, version)


BACKEND_HEADER = '''
import base64, hashlib, json, os, zipfile
NAME, VERSION = {name!r}, {version!r}
NORM = NAME.replace("-", "_")

def _rec(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

def make_wheel(wheel_directory, files, name=NAME, version=VERSION, links=()):
    fn = f"{{name.replace('-', '_')}}-{{version}}-py3-none-any.whl"
    di = f"{{name.replace('-', '_')}}-{{version}}.dist-info"
    files = dict(files)
    files[f"{{di}}/METADATA"] = (f"Metadata-Version: 2.1\\nName: {{name}}\\n"
                                f"Version: {{version}}\\n").encode()
    files[f"{{di}}/WHEEL"] = (b"Wheel-Version: 1.0\\nGenerator: test\\n"
                             b"Root-Is-Purelib: true\\nTag: py3-none-any\\n")
    rows = [f"{{k}},{{_rec(v)}},{{len(v)}}" for k, v in files.items()] + [f"{{di}}/RECORD,,"]
    files[f"{{di}}/RECORD"] = ("\\n".join(rows) + "\\n").encode()
    with zipfile.ZipFile(os.path.join(wheel_directory, fn), "w") as zf:
        for k, v in files.items():
            zf.writestr(k, v)
        for link, target in links:
            info = zipfile.ZipInfo(link)
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, target)
    return fn

def get_requires_for_build_wheel(config_settings=None):
    return []
'''

DEFAULT_BUILD = '''
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return make_wheel(wheel_directory, {f"{NORM}/__init__.py": b"BUILT = True\\n"})
'''


def make_backend_sdist(name: str, version: str = "1.0", build: str = DEFAULT_BUILD,
                       extra_files: dict[str, str] | None = None,
                       static_metadata: bool = False) -> Built:
    """An sdist whose in-tree PEP 517 backend (``backend-path``) runs ``build``.

    The backend needs nothing from any index, so a sandboxed build is hermetic; ``build``
    is Python source defining ``build_wheel`` (and may misbehave on purpose).
    """
    import tarfile

    norm = canonicalize_name(name).replace("-", "_")
    root = f"{norm}-{version}"
    md = (f"Metadata-Version: 2.2\nName: {name}\nVersion: {version}\n\n" if static_metadata
          else f"Metadata-Version: 2.2\nName: {name}\nVersion: {version}\n"
          "Dynamic: Requires-Dist\n\n").encode()
    files = {
        "PKG-INFO": md,
        "pyproject.toml": b'[build-system]\nrequires = []\nbuild-backend = "backend"\n'
                          b'backend-path = ["_build"]\n',
        "_build/backend.py": (BACKEND_HEADER.format(name=name, version=version) + build
                              ).encode(),
    }
    for path, text in (extra_files or {}).items():
        files[path] = text.encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for path, data in files.items():
            ti = tarfile.TarInfo(f"{root}/{path}")
            ti.size = len(data)
            ti.mode = 0o644
            tf.addfile(ti, io.BytesIO(data))
    return Built(f"{root}.tar.gz", buf.getvalue(), md, name, version)
