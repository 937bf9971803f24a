"""Wheel validation: everything is checked before a single byte is written.

The wheel is read into memory once; its digest is checked on that buffer, and the same
buffer is validated and installed (threats.md implication 1). Checks, with the rule
name each failure reports:

- ``zip-structure``: the central directory agrees with every local header (name,
  method, sizes), no overlapping members, nothing before the first member or after the
  end record, one end record, no duplicate names (rows 4, 5);
- ``zip-bomb``: caps on members, total size and compression ratio (row 3);
- ``member-path``: no absolute, ``..``, backslash, drive or NUL paths; no links or
  other non-regular files (rows 1, 2);
- ``dist-info``: one ``.dist-info`` whose name and version equal the filename's and
  METADATA's; WHEEL version 1.x (row 8);
- ``record``: RECORD present, lists every file with the right hash and size, and no
  entry escapes (row 6);
- ``data-dir``: only known schemes under ``.data/`` (row 7);
- ``pth``: a ``.pth`` file that would run code at interpreter start (row 10);
- ``entry-point``: script names that escape the scripts directory or shadow the
  interpreter (row 11);
- ``metadata-mismatch``: the metadata resolution used differs from the wheel's (row 9).
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import re
import stat
import struct
import zipfile
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from safepip._record import field, record
from safepip.errors import SafepipError, WheelError
from safepip.index.metadata import parse_metadata

if TYPE_CHECKING:
    from safepip.models import Metadata

MAX_MEMBERS = 100_000
MAX_TOTAL = 8 * 1024**3
MAX_RATIO = 200
RATIO_MIN_SIZE = 1024 * 1024
SCHEMES = ("purelib", "platlib", "headers", "scripts", "data")
INTERPRETER_NAMES = re.compile(
    r"^(python|pythonw|python3|python3\.\d+|python3\.\d+t|pypy|pypy2|pypy3|graalpy)"
    r"(\.exe)?$", re.IGNORECASE)
FLAGGED_NAMES = re.compile(r"^(pip|pip3|pip3\.\d+|activate.*|sudo|su|ssh|git|ls|sh|bash|"
                           r"env|curl|wget|safepip)$")
SCRIPT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]*$")


@record
class WheelInfo:
    """What validation learned about a wheel."""

    filename: str
    name: str
    version: Version
    dist_info: str
    data_dir: str
    metadata: Metadata
    data: bytes = field(repr=False)
    warnings: list[str] = field(default_factory=list)
    # member path -> (hash algorithm, urlsafe-b64 digest, size) from RECORD
    record: dict[str, tuple[str, str, int]] = field(default_factory=dict, repr=False)
    root_scheme: str = "purelib"
    members: list[str] = field(default_factory=list, repr=False)  # files, in zip order
    executable: frozenset[str] = frozenset()  # members whose zip mode has an x bit
    code_pth: list[str] = field(default_factory=list)  # .pth files that run code


# Bump when a check of ``inspect_wheel`` changes: sealed verdicts of older rules are
# not reused (the safepip version is part of the key as well).
VERDICT_RULES = 1


def verdict_of(info: WheelInfo) -> dict[str, Any]:
    """What ``inspect_wheel`` concluded, for the sealed verdict cache (issue 2: a warm
    install reuses it instead of reading every member name and RECORD row again)."""
    from safepip import __version__

    return {
        "rules": f"{VERDICT_RULES}/{__version__}",
        "filename": info.filename,
        "dist_info": info.dist_info,
        "data_dir": info.data_dir,
        "root_scheme": info.root_scheme,
        "members": info.members,
        "executable": sorted(info.executable),
        "record": {k: list(v) for k, v in info.record.items()},
        "code_pth": info.code_pth,
        "warnings": info.warnings,
        "metadata": base64.b64encode(info.metadata.raw).decode("ascii"),
    }


def from_verdict(verdict: dict[str, Any] | None, data: bytes, filename: str,
                 expected: Metadata | None = None) -> WheelInfo | None:
    """The ``WheelInfo`` of a sealed verdict for the wheel whose verified bytes are
    ``data``; None when there is none for these rules, or it does not fit."""
    from safepip import __version__

    if not verdict or verdict.get("rules") != f"{VERDICT_RULES}/{__version__}" or \
            verdict.get("filename") != filename:
        return None
    try:
        raw = base64.b64decode(verdict["metadata"])
        md = expected if expected is not None and expected.raw == raw else parse_metadata(
            raw, filename)
        record = {str(k): (str(a), str(d), int(n)) for k, (a, d, n) in verdict["record"].items()}
        return WheelInfo(
            filename, md.name, md.version, str(verdict["dist_info"]),
            str(verdict["data_dir"]), md, data, warnings=[str(w) for w in verdict["warnings"]],
            record=record, root_scheme=str(verdict["root_scheme"]),
            members=[str(m) for m in verdict["members"]],
            executable=frozenset(str(m) for m in verdict["executable"]),
            code_pth=[str(p) for p in verdict["code_pth"]])
    except (KeyError, TypeError, ValueError, AttributeError, SafepipError):
        return None


def _fail(filename: str, rule: str, detail: str, hint: str | None = None) -> WheelError:
    return WheelError(filename, rule, detail, hint=hint)


def check_zip_structure(data: bytes, filename: str) -> zipfile.ZipFile:
    """uv's strict zip reading, in Python: refuse any archive two readers could disagree on.
    Returns the archive, read once."""
    eocd_sig = b"PK\x05\x06"
    pos = data.rfind(eocd_sig)
    if pos < 0 or len(data) - pos < 22:
        raise _fail(filename, "zip-structure", "no end of central directory record")
    (_sig, disk, cd_disk, n_disk, n_total, cd_size, cd_off, comment_len) = struct.unpack(
        "<4sHHHHIIH", data[pos:pos + 22])
    if pos + 22 + comment_len != len(data):
        raise _fail(filename, "zip-structure", "data after the end of the archive")
    if disk or cd_disk or n_disk != n_total:
        raise _fail(filename, "zip-structure", "multi-disk archives are not wheels")
    if n_total == 0xFFFF or cd_off == 0xFFFFFFFF:
        zip64 = True
    else:
        zip64 = False
        if cd_off + cd_size != pos:
            raise _fail(filename, "zip-structure",
                        "the central directory does not end where the end record starts")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _fail(filename, "zip-structure", f"not a valid zip archive: {exc}") from exc
    infos = zf.infolist()
    if not zip64 and len(infos) != n_total:
        raise _fail(filename, "zip-structure", "member count differs from the end record")
    if len(infos) > MAX_MEMBERS:
        raise _fail(filename, "zip-bomb", f"{len(infos)} members (limit {MAX_MEMBERS})")
    spans: list[tuple[int, int, str, bool]] = []
    seen: set[str] = set()
    seen_folded: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        if name in seen:
            raise _fail(filename, "zip-structure", f"duplicate member {name!r}")
        seen.add(name)
        folded = name.lower()
        if folded in seen_folded and not name.endswith("/"):
            raise _fail(filename, "zip-structure",
                        f"members differing only in case: {name!r}")
        seen_folded.add(folded)
        off = info.header_offset
        if off + 30 > len(data) or data[off:off + 4] != b"PK\x03\x04":
            raise _fail(filename, "zip-structure", f"{name!r}: no local header at its offset")
        (_s, _ver, flags, method, _t, _d, crc, csize, usize, nlen, xlen) = struct.unpack(
            "<4sHHHHHIIIHH", data[off:off + 30])
        lname = data[off + 30:off + 30 + nlen]
        cname = info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")
        if lname != cname:
            raise _fail(filename, "zip-structure",
                        f"{name!r}: local header names {lname!r} instead")
        if method != info.compress_type:
            raise _fail(filename, "zip-structure", f"{name!r}: compression method differs")
        if not flags & 0x08 and csize != 0xFFFFFFFF and (
                csize != info.compress_size or usize != info.file_size or crc != info.CRC):
            raise _fail(filename, "zip-structure", f"{name!r}: local header sizes differ")
        start = off
        end = off + 30 + nlen + xlen + info.compress_size
        if end > cd_off and not zip64:
            raise _fail(filename, "zip-structure", f"{name!r}: overlaps the central directory")
        spans.append((start, end, name, bool(flags & 0x08)))
        total += info.file_size
        if info.file_size > RATIO_MIN_SIZE and info.file_size > MAX_RATIO * max(
                1, info.compress_size):
            raise _fail(filename, "zip-bomb",
                        f"{name!r} expands {info.file_size // max(1, info.compress_size)}"
                        f"-fold (limit {MAX_RATIO})")
    if total > MAX_TOTAL:
        raise _fail(filename, "zip-bomb", f"unpacks to {total} bytes (limit {MAX_TOTAL})")
    spans.sort()
    if spans and spans[0][0] != 0:
        raise _fail(filename, "zip-structure", "data before the first member")
    # Between members only a data descriptor may stand (at most 24 bytes, and only after
    # a member that announces one); anything else is hidden data another reader may see,
    # such as a second archive (CVE-2025-54368).
    bounds = [*((s_, e_, n_, d_) for s_, e_, n_, d_ in spans), (cd_off, cd_off, "", False)]
    for (_s1, e1, n1, dd), (s2, _e2, n2, _d2) in itertools.pairwise(bounds):
        if s2 < e1:
            raise _fail(filename, "zip-structure", f"members {n1!r} and {n2!r} overlap")
        gap = s2 - e1
        if gap and not (dd and gap <= 24) and not zip64:
            raise _fail(filename, "zip-structure", f"{gap} unexplained bytes after {n1!r}")
    return zf


def check_member_path(name: str, filename: str) -> None:
    bad = None
    if "\x00" in name:
        bad = "a NUL character"
    elif "\\" in name:
        bad = "a backslash"
    elif name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ":" in name.split("/")[0]:
        bad = "an absolute or drive path"
    elif any(part == ".." for part in name.split("/")):
        bad = "a '..' component"
    if bad:
        raise _fail(filename, "member-path", f"member {name!r} has {bad}")


def _read_dist_file(zf: zipfile.ZipFile, path: str, filename: str) -> bytes:
    try:
        return zf.read(path)
    except KeyError as exc:
        raise _fail(filename, "dist-info", f"{path} is missing") from exc


def _pth_runs_code(text: str) -> bool:
    # site.py executes a .pth line that starts with "import " or "import\t"
    return any(line.startswith(("import ", "import\t")) for line in text.splitlines())


def validate(data: bytes, filename: str, *, expected: Metadata | None = None,
             allow_pth: frozenset[str] = frozenset(),
             inspected: WheelInfo | None = None) -> WheelInfo:
    """Validate an in-memory wheel; raise ``WheelError`` on the first broken rule.

    ``data`` must be the buffer whose digest the downloader verified. The contents of
    files are checked against RECORD while they are staged (one decompression), except
    scripts, whose shebang is rewritten on the way and which are checked here.
    ``inspected``: the result of ``inspect_wheel`` on the same buffer, if it was done already
    (the early unpacker does it while downloads are still running).
    """
    info = inspected if inspected is not None else inspect_wheel(data, filename)
    if expected is not None and expected.raw != info.metadata.raw:
        _compare_metadata(expected, info.metadata, filename)
    if info.code_pth and canonicalize_name(info.name) not in allow_pth:
        raise _fail(
            filename, "pth",
            f"{info.code_pth[0]} runs code every time Python starts (a line beginning with "
            "'import')",
            hint=f"--allow-pth {canonicalize_name(info.name)} installs it anyway, if you "
                 "trust this package to run code in every Python process",
        )
    return info


def inspect_wheel(data: bytes, filename: str) -> WheelInfo:
    """The structural checks of ``validate``: everything that depends on the bytes alone."""
    try:
        fname, fversion, _build, _tags = parse_wheel_filename(filename)
    except Exception as exc:
        raise _fail(filename, "dist-info", f"invalid wheel filename: {exc}") from exc
    zf = check_zip_structure(data, filename)
    zf.filename = filename  # installer's WheelFile wants a name for its messages
    names = zf.namelist()
    executable = set()
    for zinfo in zf.infolist():
        check_member_path(zinfo.filename, filename)
        mode = zinfo.external_attr >> 16
        if mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
            kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
            raise _fail(filename, "member-path", f"member {zinfo.filename!r} is {kind}")
        if mode and stat.S_ISREG(mode) and mode & 0o111:  # installer's rule
            executable.add(zinfo.filename)

    tops = {n.split("/", 1)[0] for n in names}
    dist_infos = [t for t in tops if t.endswith(".dist-info")]
    if len(dist_infos) != 1:
        raise _fail(filename, "dist-info",
                    f"expected one .dist-info directory, found {len(dist_infos)}")
    dist_info = dist_infos[0]
    di_name, _, di_version = dist_info[: -len(".dist-info")].rpartition("-")
    try:
        di_ok = canonicalize_name(di_name) == fname and Version(di_version) == fversion
    except InvalidVersion:
        di_ok = False
    if not di_ok:
        raise _fail(filename, "dist-info",
                    f"{dist_info} does not match the filename's {fname} {fversion}")
    wheel_meta = _read_dist_file(zf, f"{dist_info}/WHEEL", filename).decode("utf-8", "replace")
    wv = re.search(r"^Wheel-Version:\s*(\S+)", wheel_meta, re.MULTILINE)
    if not wv or not wv.group(1).startswith("1."):
        raise _fail(filename, "dist-info", "WHEEL has no Wheel-Version 1.x")
    raw_md = _read_dist_file(zf, f"{dist_info}/METADATA", filename)
    md = parse_metadata(raw_md, filename)
    if canonicalize_name(md.name) != fname or md.version != fversion:
        raise _fail(filename, "dist-info",
                    f"METADATA says {md.name} {md.version}, the filename {fname} {fversion}")
    data_dir = dist_info[: -len(".dist-info")] + ".data"
    for n in names:
        if n.startswith(data_dir + "/"):
            rest = n[len(data_dir) + 1:]
            scheme, sep, _path = rest.partition("/")
            if not sep or not _path:
                if n.endswith("/"):
                    continue
                raise _fail(filename, "data-dir", f"{n!r} lies directly in {data_dir}/")
            if scheme not in SCHEMES:
                raise _fail(filename, "data-dir", f"{n!r}: unknown scheme {scheme!r}")
        elif n.split("/", 1)[0].endswith(".data"):
            raise _fail(filename, "data-dir", f"{n!r}: a .data directory of another name")

    record = _check_record(zf, dist_info, data_dir, filename)
    root = "purelib" if re.search(r"^Root-Is-Purelib:\s*true\s*$", wheel_meta,
                                  re.MULTILINE | re.IGNORECASE) else "platlib"
    info = WheelInfo(filename, md.name, md.version, dist_info, data_dir, md, data,
                     record=record, root_scheme=root,
                     members=[n for n in names if not n.endswith("/")],
                     executable=frozenset(executable))
    info.code_pth = _code_pth(zf, names, data_dir)
    _check_scripts(zf, names, dist_info, data_dir, filename, info)
    return info


def _compare_metadata(expected: Metadata, got: Metadata, filename: str) -> None:
    diffs = []
    if canonicalize_name(expected.name) != canonicalize_name(got.name):
        diffs.append(f"Name {expected.name!r} vs {got.name!r}")
    if expected.version != got.version:
        diffs.append(f"Version {expected.version} vs {got.version}")
    if {str(r) for r in expected.requires_dist} != {str(r) for r in got.requires_dist}:
        diffs.append("Requires-Dist")
    if (expected.requires_python or "") != (got.requires_python or ""):
        diffs.append("Requires-Python")
    if expected.provides_extra != got.provides_extra:
        diffs.append("Provides-Extra")
    if diffs:
        raise _fail(
            filename, "metadata-mismatch",
            "the metadata the index served for resolution differs from the wheel's own "
            f"METADATA ({', '.join(diffs)}); the resolution cannot be trusted",
        )


def record_digest(algo: str, data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.new(algo, data).digest()).rstrip(b"=").decode()


def _check_record(zf: zipfile.ZipFile, dist_info: str, data_dir: str,
                  filename: str) -> dict[str, tuple[str, str, int]]:
    from installer.sources import WheelFile

    record = f"{dist_info}/RECORD"
    try:
        text = zf.read(record).decode("utf-8")
    except KeyError as exc:
        raise _fail(filename, "record", "RECORD is missing") from exc
    except UnicodeDecodeError as exc:
        raise _fail(filename, "record", "RECORD is not UTF-8") from exc
    import csv

    entries: dict[str, tuple[str, str, int]] = {}
    for row in csv.reader(text.splitlines()):
        if not row:
            continue
        path = row[0]
        if path.startswith("/") or ".." in path.split("/") or "\\" in path:
            raise _fail(filename, "record", f"RECORD entry {path!r} escapes the wheel")
        if len(row) >= 3 and "=" in row[1] and row[2].isdigit():
            algo, _, digest = row[1].partition("=")
            if algo not in hashlib.algorithms_guaranteed or algo in ("md5", "sha1"):
                raise _fail(filename, "record", f"RECORD entry {path!r} uses {algo!r}")
            entries[path] = (algo, digest, int(row[2]))
    # names (every file listed, with a hash and size) are checked by installer; the
    # contents while staging, where each member is decompressed once anyway
    wf = WheelFile(zf)
    try:
        wf.validate_record(validate_contents=False)
    except Exception as exc:
        issues = getattr(exc, "issues", None) or [str(exc)]
        first = str(issues[0]).replace(f"In {zf.filename}, ", "")
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        raise _fail(filename, "record", first + more) from exc
    scripts = f"{data_dir}/scripts/"
    for name, (algo, digest, size) in entries.items():
        if name.startswith(scripts):
            content = zf.read(name)
            if len(content) != size or record_digest(algo, content) != digest:
                raise _fail(filename, "record", f"hash / size of {name} didn't match RECORD")
    return entries


def _code_pth(zf: zipfile.ZipFile, names: list[str], data_dir: str) -> list[str]:
    """Top-level .pth files (hidden ones too) that would run code at interpreter start."""
    found = []
    for n in names:
        top = n
        for scheme in ("purelib", "platlib"):
            prefix = f"{data_dir}/{scheme}/"
            if n.startswith(prefix):
                top = n[len(prefix):]
        if "/" in top or not top.endswith(".pth"):
            continue
        if _pth_runs_code(zf.read(n).decode("utf-8", "replace")):
            found.append(top)
    return found


def _check_scripts(zf: zipfile.ZipFile, names: list[str], dist_info: str, data_dir: str,
                   filename: str, info: WheelInfo) -> None:
    scripts: list[str] = []
    ep = f"{dist_info}/entry_points.txt"
    if ep in names:
        import configparser

        cp = configparser.ConfigParser(delimiters=("=",), interpolation=None)
        cp.optionxform = str  # type: ignore[assignment,method-assign]
        try:
            cp.read_string(zf.read(ep).decode("utf-8"))
        except (configparser.Error, UnicodeDecodeError) as exc:
            raise _fail(filename, "entry-point", f"entry_points.txt is malformed: {exc}") from exc
        for section in ("console_scripts", "gui_scripts"):
            if cp.has_section(section):
                scripts.extend(cp.options(section))
    prefix = f"{data_dir}/scripts/"
    scripts.extend(n[len(prefix):] for n in names if n.startswith(prefix) and not n.endswith("/"))
    for s in scripts:
        if not SCRIPT_NAME.match(s) or s in (".", "..") or "/" in s:
            raise _fail(filename, "entry-point", f"script name {s!r} is not a plain file name")
        if INTERPRETER_NAMES.match(s):
            raise _fail(filename, "entry-point",
                        f"script {s!r} would replace the environment's Python interpreter")
        if FLAGGED_NAMES.match(s) and canonicalize_name(info.name) not in (
                "pip", "safepip", "virtualenv"):
            info.warnings.append(f"{info.name} installs a command named {s!r}, which shadows "
                                 "a common command")
