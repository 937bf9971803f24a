"""Requirements as pip reads them: arguments, ``-r``/``-c`` files, per-line options.

Supported in files: comments, ``\\`` continuations, ``${VAR}`` expansion, nested
``-r``/``-c`` (relative to the including file), ``--hash`` per requirement, and option
lines (``--index-url``, ``--extra-index-url``, ``--find-links``, ``--trusted-host``,
``--pre``, ``--only-binary``, ``--no-binary``, ``--no-index``, ``--require-hashes``,
``--prefer-binary``). Unknown options are errors that name the file and line.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)

from safepip._record import field, record
from safepip.errors import RequirementsFileError, UsageError

if TYPE_CHECKING:
    from safepip.attest.publisher import Publisher

_ENV_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")
_COMMENT = re.compile(r"(^|\s+)#.*$")
MAX_DEPTH = 20


@record(frozen=True)
class UserRequirement:
    """One requirement as the user gave it."""

    req: Requirement
    source: str  # "command line" or "path:line"
    link: str | None = None  # a direct URL (file:// for a local wheel)
    hashes: dict[str, frozenset[str]] = field(default_factory=dict, hash=False, compare=False)
    editable: bool = False
    local: str | None = None  # a local project directory or sdist file, to build first
    index: str | None = None  # from a lock: the index this exact file came from

    @property
    def name(self) -> str:
        return canonicalize_name(self.req.name)


@record
class RequirementSet:
    """Everything gathered from arguments and files."""

    requirements: list[UserRequirement] = field(default_factory=list)
    constraints: list[UserRequirement] = field(default_factory=list)
    index_url: str | None = None
    extra_index_urls: list[str] = field(default_factory=list)
    find_links: list[str] = field(default_factory=list)
    trusted_hosts: list[str] = field(default_factory=list)
    pre: bool = False
    no_index: bool = False
    require_hashes: bool = False
    from_lock: bool = False  # a pylock.toml was given: complete, nothing to resolve
    pylocks: list[str] = field(default_factory=list)
    only_binary: set[str] = field(default_factory=set)
    no_binary: set[str] = field(default_factory=set)
    # publishers a lock requires, by project (PEP 751 attestation-identities)
    locked_publishers: dict[str, list[Publisher]] = field(default_factory=dict)

    def hash_checking(self) -> bool:
        """pip's rule: one hash anywhere turns on hash-checking mode for everything."""
        return self.require_hashes or any(r.hashes for r in self.requirements)


def _is_path_like(text: str) -> bool:
    return (
        text.startswith((".", "/", "~"))
        or os.sep in text
        or text.endswith((".whl", ".tar.gz", ".zip"))
    )


def parse_requirement(text: str, source: str, base_dir: str | None = None,
                      hashes: dict[str, frozenset[str]] | None = None,
                      editable: bool = False) -> UserRequirement:
    """A requirement string: PEP 508, ``name @ url``, or a path/URL to a wheel."""
    text = text.strip()
    hashes = hashes or {}
    if editable:
        m = re.match(r"^(.*?)(\[[A-Za-z0-9_,.\- ]*\])?$", text)
        path_text, extras = (m.group(1), m.group(2) or "") if m else (text, "")
        path = Path(os.path.expanduser(path_text))
        if base_dir and not path.is_absolute():
            path = Path(base_dir) / path
        if urllib.parse.urlsplit(path_text).scheme or not path.is_dir():
            raise _err(source, f"-e {text}: editable installs take a local project directory")
        placeholder = re.sub(r"[^A-Za-z0-9]+", "-", path.resolve().name).strip("-")
        return UserRequirement(Requirement(f"{placeholder or 'project'}{extras}"), source,
                               None, hashes, editable=True, local=str(path.resolve()))
    scheme = urllib.parse.urlsplit(text).scheme
    if scheme in ("http", "https", "file") or (_is_path_like(text) and "@" not in text):
        url = text
        extras = ""
        m = re.match(r"^(.*?)(\[[A-Za-z0-9_,.\- ]*\])$", text)
        if m and scheme not in ("http", "https"):
            text, extras = m.group(1), m.group(2)
            url = text
        if scheme not in ("http", "https", "file"):
            p = Path(os.path.expanduser(text))
            if base_dir and not p.is_absolute():
                p = Path(base_dir) / p
            url = p.resolve().as_uri()
        filename = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
        if filename.endswith(".whl"):
            try:
                name, version, _b, _t = parse_wheel_filename(filename)
            except InvalidWheelFilename as exc:
                raise _err(source, f"invalid wheel filename {filename!r}: {exc}") from exc
            return UserRequirement(Requirement(f"{name}{extras}=={version}"), source, url,
                                   hashes)
        if scheme in ("http", "https"):
            raise _err(source, f"{text!r}: only wheels can be installed from a URL")
        from urllib.request import url2pathname

        local = os.path.abspath(url2pathname(urllib.parse.urlsplit(url).path))
        if not (os.path.isdir(local) or local.endswith((".tar.gz", ".zip"))):
            raise _err(source, f"{text!r} is neither a wheel, a source distribution nor a "
                       "project directory")
        if not os.path.exists(local):
            raise _err(source, f"{text!r}: no such file or directory")
        placeholder = re.sub(r"[^A-Za-z0-9]+", "-", os.path.basename(local)).strip("-")
        return UserRequirement(Requirement(f"{placeholder or 'project'}{extras}"), source,
                               None, hashes, local=local)
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise _err(source, f"invalid requirement {text!r}: {exc}") from exc
    link = req.url
    if link:
        fname = urllib.parse.unquote(urllib.parse.urlsplit(link).path.rsplit("/", 1)[-1])
        if not fname.endswith(".whl"):
            raise _err(source, f"{text!r}: only direct references to wheels can be installed "
                       "without a build")
    return UserRequirement(req, source, link, hashes)


def _err(source: str, message: str, hint: str | None = None) -> SafepipErrorLike:
    if ":" in source and source != "command line":
        path, _, line = source.rpartition(":")
        return RequirementsFileError(path, int(line) if line.isdigit() else None, message,
                                     hint=hint)
    return UsageError(message, hint=hint)


SafepipErrorLike = RequirementsFileError | UsageError


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join continuations, drop comments; (first line number, content)."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for num, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start = num
        line = raw
        if line.endswith("\\") and not _COMMENT.search(line[:-1]):
            buf.append(line[:-1])
            continue
        buf.append(line)
        joined = _COMMENT.sub("", "".join(buf)).strip()
        buf = []
        if joined:
            out.append((start, joined))
    if buf:
        joined = _COMMENT.sub("", "".join(buf)).strip()
        if joined:
            out.append((start, joined))
    return out


def _expand(text: str) -> str:
    return _ENV_VAR.sub(lambda m: os.environ.get(m.group(1), m.group(0)), text)


_ARG_OPTS = {
    "-r": "requirement", "--requirement": "requirement",
    "-c": "constraint", "--constraint": "constraint",
    "-e": "editable", "--editable": "editable",
    "-i": "index_url", "--index-url": "index_url",
    "--extra-index-url": "extra_index_url",
    "-f": "find_links", "--find-links": "find_links",
    "--trusted-host": "trusted_host",
    "--only-binary": "only_binary", "--no-binary": "no_binary",
}
_FLAG_OPTS = {
    "--pre": "pre", "--no-index": "no_index", "--require-hashes": "require_hashes",
    "--prefer-binary": None, "--use-feature": None,
}


def _binary_names(value: str) -> set[str]:
    return {":all:" if v == ":all:" else ":none:" if v == ":none:" else canonicalize_name(v)
            for v in value.split(",") if v}


def read_file(path: str, rs: RequirementSet, *, constraint: bool = False,
              depth: int = 0) -> None:
    """Add the contents of a requirements (or constraints) file to ``rs``."""
    if depth > MAX_DEPTH:
        raise RequirementsFileError(path, None, "requirements files nest too deeply (a cycle?)")
    if urllib.parse.urlsplit(path).scheme in ("http", "https"):
        raise RequirementsFileError(path, None, "remote requirements files are not supported",
                                    hint="download it and pass the local copy")
    name = os.path.basename(path)
    if name == "pylock.toml" or (name.startswith("pylock.") and name.endswith(".toml")):
        if constraint:
            raise RequirementsFileError(path, None, "a lock file cannot be a constraint")
        rs.pylocks.append(path)  # read once the target's tags and markers are known
        rs.from_lock = True
        return
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise RequirementsFileError(path, None, "no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RequirementsFileError(path, None, f"cannot read: {exc}") from exc
    base = os.path.dirname(os.path.abspath(path))
    if not constraint:
        _attested_by(text, path, rs)
    for lineno, line in _logical_lines(text):
        source = f"{path}:{lineno}"
        line = _expand(line)
        if line.startswith("-"):
            try:
                tokens = shlex.split(line, posix=True)
            except ValueError as exc:
                raise RequirementsFileError(path, lineno, f"cannot parse: {exc}") from exc
            _option_line(tokens, path, lineno, base, rs, constraint, depth)
            continue
        # a requirement, then per-requirement options from the first word starting with
        # "-" (as pip splits it); the requirement keeps its quotes
        words = line.split()
        cut = next((i for i, w in enumerate(words) if w.startswith("-")), len(words))
        req_text = " ".join(words[:cut])
        tokens = ["", *words[cut:]]
        hashes: dict[str, set[str]] = {}
        i = 1
        while i < len(tokens):
            tok = tokens[i]
            if tok.startswith("--hash"):
                value = tok.split("=", 1)[1] if "=" in tok else (
                    tokens[i + 1] if i + 1 < len(tokens) else "")
                if "=" not in tok:
                    i += 1
                algo, sep, digest = value.partition(":")
                if not sep or not digest:
                    raise RequirementsFileError(
                        path, lineno, f"--hash {value!r} is not of the form algorithm:digest")
                if algo not in ("sha256", "sha384", "sha512"):
                    raise RequirementsFileError(
                        path, lineno, f"--hash {algo}: unsupported hash algorithm",
                        hint="use sha256, sha384 or sha512")
                hashes.setdefault(algo, set()).add(digest.lower())
            elif tok.startswith(("--global-option", "--config-settings")):
                raise RequirementsFileError(path, lineno, f"{tok}: build options are not "
                                            "supported (nothing is built)")
            else:
                raise RequirementsFileError(path, lineno,
                                            f"unknown option {tok} after a requirement")
            i += 1
        ur = parse_requirement(req_text, source, base,
                               {k: frozenset(v) for k, v in hashes.items()})
        (rs.constraints if constraint else rs.requirements).append(ur)


_ATTESTED_BY = re.compile(r"^\s+#\s*attested-by:\s*(\S+)\s*$")
_REQ_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


def _attested_by(text: str, path: str, rs: RequirementSet) -> None:
    """``# attested-by: github:OWNER/REPO`` under a pin (as ``safepip lock`` writes
    them): the locked package must be attested by that publisher."""
    from safepip.attest.publisher import Publisher

    current: str | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        m = _ATTESTED_BY.match(line)
        if m and current is not None:
            try:
                pub = Publisher.parse(m.group(1))
            except ValueError as exc:
                raise RequirementsFileError(path, lineno, str(exc)) from exc
            rs.locked_publishers.setdefault(current, []).append(pub)
            continue
        if line[:1].isspace() or line.startswith(("#", "-")):
            continue
        n = _REQ_NAME.match(line)
        current = canonicalize_name(n.group(1)) if n else None


def _option_line(tokens: list[str], path: str, lineno: int, base: str, rs: RequirementSet,
                 constraint: bool, depth: int) -> None:
    opt, value = tokens[0], None
    if "=" in opt and opt.startswith("--"):
        opt, value = opt.split("=", 1)
    elif len(opt) > 2 and opt[:2] in ("-r", "-c", "-e", "-i", "-f") and not opt.startswith("--"):
        opt, value = opt[:2], opt[2:]
    if opt in _FLAG_OPTS:
        key = _FLAG_OPTS[opt]
        if key:
            setattr(rs, key, True)
        return
    kind = _ARG_OPTS.get(opt)
    if kind is None:
        raise RequirementsFileError(path, lineno, f"unknown option {opt}")
    if value is None:
        if len(tokens) < 2:
            raise RequirementsFileError(path, lineno, f"{opt} needs a value")
        value = " ".join(tokens[1:])
    if kind in ("requirement", "constraint"):
        target = value if os.path.isabs(value) or urllib.parse.urlsplit(value).scheme in (
            "http", "https") else os.path.join(base, value)
        read_file(target, rs, constraint=constraint or kind == "constraint", depth=depth + 1)
    elif kind == "editable":
        ur = parse_requirement(value, f"{path}:{lineno}", base, editable=True)
        (rs.constraints if constraint else rs.requirements).append(ur)
    elif kind == "index_url":
        rs.index_url = value
    elif kind == "extra_index_url":
        rs.extra_index_urls.append(value)
    elif kind == "find_links":
        # a relative directory is taken relative to the requirements file, when it is
        # there (pip's rule), else to the working directory
        near = os.path.join(base, value)
        sys.audit("safepip.stat", near)  # decided by looking: said to a lock's memo
        rs.find_links.append(near if "://" not in value and not os.path.isabs(value)
                             and os.path.exists(near) else value)
    elif kind == "trusted_host":
        rs.trusted_hosts.append(value)
    elif kind == "only_binary":
        rs.only_binary |= _binary_names(value)
    elif kind == "no_binary":
        rs.no_binary |= _binary_names(value)
