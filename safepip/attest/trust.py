"""Trust on first use: the publisher of each project, remembered and then required.

The store is one human-readable TOML file in safepip's data directory
(``publishers.toml``); a project's ``pyproject.toml`` can pin publishers for the whole
team under ``[tool.safepip.publishers]`` (``name = "github:OWNER/REPO"``), and those pins
win over the store. ``judge`` applies the rules before anything is installed:

- a verified attestation by the remembered (or pinned) publisher: fine;
- by another publisher: refused, showing both, with the command that accepts it;
- none at all, for a project that was attested before or is pinned: refused;
- none, where ``--require-attestations`` covers the project: refused;
- provenance that is there but does not verify: always refused (fail closed);
- otherwise "not attested", which is reported; the first verified publisher of a
  project is recorded once the install succeeds.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name

from safepip._record import record
from safepip.attest.publisher import Publisher
from safepip.errors import AttestationError, SafepipError
from safepip.locate import default_data_dir

if TYPE_CHECKING:
    from safepip.attest.check import AttestationResult

HEADER = """\
# The publisher safepip has seen for each project (PEP 740 attestations, trust on
# first use). A release by another publisher, or without an attestation, is refused.
# Change an entry with `safepip trust NAME --publisher github:OWNER/REPO`, or forget
# it with `safepip trust NAME --reset`.
"""


@record(frozen=True)
class Record:
    publisher: Publisher
    version: str = ""  # the release it was first seen on
    recorded: str = ""  # the date
    source: str = ""  # where the expectation comes from (for messages)


def _s(value: str) -> str:
    return json.dumps(value)  # a TOML basic string is a JSON string for our characters


class TrustStore:
    """``publishers.toml``: read at start, written only after a successful install."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.records: dict[str, Record] = {}
        self.changed = False
        self.root_sha256 = ""  # a newer Sigstore trusted root the user accepted
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise SafepipError(f"cannot read the publisher trust store {path}: {exc}",
                               hint="fix its permissions, or delete it (safepip then "
                                    "starts trusting afresh)") from exc
        import tomllib  # (only when there is a store to read)

        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SafepipError(f"cannot read the publisher trust store {path}: {exc}",
                               hint="fix or delete the file (safepip then starts trusting "
                                    "afresh)") from exc
        root = data.get("sigstore-root", {})
        if isinstance(root, dict) and isinstance(root.get("sha256"), str):
            self.root_sha256 = root["sha256"]
        table = data.get("publishers", {})
        if not isinstance(table, dict):
            raise SafepipError(f"{path}: [publishers] must be a table",
                               hint="fix or delete the file")
        for name, entry in table.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str):
                raise SafepipError(f"{path}: publishers.{name} needs a kind",
                                   hint="fix or delete the entry")
            self.records[canonicalize_name(name)] = Record(
                Publisher.from_record(entry), str(entry.get("first-seen", "")),
                str(entry.get("recorded", "")), path)

    @classmethod
    def default(cls, data_dir: str | None = None) -> TrustStore:
        return cls(os.path.join(data_dir or default_data_dir(), "publishers.toml"))

    def set(self, name: str, publisher: Publisher, version: str = "") -> None:
        self.records[canonicalize_name(name)] = Record(
            publisher, version, datetime.date.today().isoformat(), self.path)
        self.changed = True

    def reset(self, name: str) -> bool:
        self.changed = True
        return self.records.pop(canonicalize_name(name), None) is not None

    @property
    def accepted_root(self) -> str:
        return os.path.join(os.path.dirname(self.path), "sigstore-trusted-root.json")

    def root_path(self) -> str:
        """The trusted root to verify with: the one shipped with safepip, unless the user
        accepted a newer one (``safepip trust --root``), which must still be the file
        whose digest was recorded then."""
        import hashlib

        from safepip.attest.verify import PINNED_ROOT

        if not self.root_sha256:
            return PINNED_ROOT
        try:
            with open(self.accepted_root, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
        except OSError as exc:
            raise SafepipError(f"the accepted Sigstore trusted root {self.accepted_root} "
                               f"cannot be read: {exc}",
                               hint="accept it again with `safepip trust --root FILE`, or "
                                    "go back to safepip's own with `safepip trust "
                                    "--reset-root`") from exc
        if digest != self.root_sha256:
            raise SafepipError(
                f"the Sigstore trusted root {self.accepted_root} has changed since it was "
                f"accepted (sha256 {digest}, recorded {self.root_sha256}); refusing to "
                "verify attestations with it",
                hint="accept it again with `safepip trust --root FILE`, or go back to "
                     "safepip's own with `safepip trust --reset-root`")
        return self.accepted_root

    def accept_root(self, path: str) -> str:
        """Check that ``path`` is a Sigstore trusted root, then keep a copy; its sha256."""
        import hashlib

        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise SafepipError(f"cannot read {path}: {exc}") from exc
        try:
            from sigstore.models import TrustedRoot

            TrustedRoot.from_file(path)
        except Exception as exc:  # whatever sigstore raises: it is not a root
            raise SafepipError(f"{path} is not a Sigstore trusted root: "
                               f"{type(exc).__name__}: {exc}") from exc
        os.makedirs(os.path.dirname(self.accepted_root), exist_ok=True)
        tmp = self.accepted_root + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, self.accepted_root)
        self.root_sha256 = hashlib.sha256(data).hexdigest()
        self.changed = True
        return self.root_sha256

    def reset_root(self) -> None:
        self.root_sha256 = ""
        self.changed = True
        if os.path.exists(self.accepted_root):
            os.unlink(self.accepted_root)

    def render(self) -> str:
        lines = [HEADER]
        if self.root_sha256:
            lines += ["# accepted with `safepip trust --root`", "[sigstore-root]",
                      f"sha256 = {_s(self.root_sha256)}", ""]
        for name in sorted(self.records):
            r = self.records[name]
            lines.append(f"[publishers.{_s(name)}]")
            lines.extend(f"{k} = {_s(v)}" for k, v in r.publisher.as_dict().items())
            if r.version:
                lines.append(f"first-seen = {_s(r.version)}")
            if r.recorded:
                lines.append(f"recorded = {_s(r.recorded)}")
            lines.append("")
        return "\n".join(lines)

    def save(self) -> None:
        if not self.changed:
            return
        d = os.path.dirname(self.path)
        os.makedirs(d, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".publishers-", dir=d)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self.render())
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        self.changed = False


def project_pins(start: str) -> dict[str, Record]:
    """``[tool.safepip.publishers]`` of the nearest pyproject.toml at or above ``start``."""
    d = os.path.abspath(start)
    while True:
        path = os.path.join(d, "pyproject.toml")
        if os.path.isfile(path):
            return _read_pins(path)
        parent = os.path.dirname(d)
        if parent == d:
            return {}
        d = parent


def _read_pins(path: str) -> dict[str, Record]:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return {}
    if b"safepip" not in raw:
        return {}  # no [tool.safepip...] table: not worth a TOML parser (every run reads it)
    import tomllib

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}  # not ours to judge here; commands that read it report errors
    table: Any = data.get("tool", {}).get("safepip", {}).get("publishers", {})
    if not isinstance(table, dict):
        raise SafepipError(f"{path}: [tool.safepip.publishers] must be a table")
    out: dict[str, Record] = {}
    for name, value in table.items():
        try:
            if isinstance(value, str):
                pub = Publisher.parse(value)
            elif isinstance(value, dict) and isinstance(value.get("kind"), str):
                pub = Publisher.from_record(value)
            else:
                raise ValueError("write github:OWNER/REPO or a table with a kind")
        except ValueError as exc:
            raise SafepipError(f"{path}: [tool.safepip.publishers] {name}: {exc}",
                               hint="fix the entry") from exc
        out[canonicalize_name(name)] = Record(pub, source=f"{path} [tool.safepip.publishers]")
    return out


@record
class Policy:
    """What the user asked for on the command line."""

    require: frozenset[str] = frozenset()  # project names, or ":all:"
    skip: frozenset[str] = frozenset()  # --skip-attestations: not checked at all

    def required(self, name: str) -> bool:
        return ":all:" in self.require or name in self.require


def judge(results: list[AttestationResult], store: TrustStore, pins: dict[str, Record],
          policy: Policy, locked: dict[str, list[Publisher]] | None = None) -> None:
    """Refuse (one error listing every problem) or accept; record first publishers."""
    problems: list[AttestationError] = []
    to_record: dict[str, tuple[Publisher, str]] = {}
    for r in results:
        name = canonicalize_name(r.project)
        if r.status == "skipped":
            continue
        lock_ids = (locked or {}).get(name)
        expected = pins.get(name) or store.records.get(name)
        if r.status == "invalid":
            assert r.error is not None
            problems.append(AttestationError(
                r.error.reason, filename=r.filename, project=name,
                hint=f"the file may not be what its publisher uploaded; to install it "
                     f"anyway: --skip-attestations {name} (not recommended)"))
            continue
        if r.verified is not None:
            got = r.verified.publisher
            if lock_ids is not None and got.key not in {p.key for p in lock_ids}:
                problems.append(AttestationError(
                    f"attested by {got.describe()}, but the lock requires "
                    f"{' or '.join(p.describe() for p in lock_ids)}",
                    filename=r.filename, project=name,
                    hint=f"re-lock after checking the change (safepip lock -P {name}), or "
                         f"--skip-attestations {name}"))
            elif expected is not None and expected.publisher.key != got.key:
                where = ("pinned in " + expected.source if "pyproject" in expected.source
                         else f"trusted since {expected.version or expected.recorded}")
                fix = (f"if {name} really moved, change the pin in {expected.source}"
                       if "pyproject" in expected.source else
                       f"if {name} really moved, accept the new publisher: safepip trust "
                       f"{name} --publisher {got.spec} (or --reset to forget the old one)")
                problems.append(AttestationError(
                    f"the publisher of {name} changed: {r.version} is attested by "
                    f"{got.describe()}, but {expected.publisher.describe()} is {where}",
                    filename=r.filename, project=name, hint=fix))
            elif expected is None:
                to_record.setdefault(name, (got, r.version))
            continue
        # no verified attestation: "none" or "unavailable"
        why = "it has no attestation" if r.status == "none" else (
            f"its attestation could not be fetched ({r.note})")
        if lock_ids:
            problems.append(AttestationError(
                f"the lock requires an attestation by {lock_ids[0].describe()}, but {why}",
                filename=r.filename, project=name,
                hint=f"re-lock (safepip lock -P {name}) after checking, or "
                     f"--skip-attestations {name}"))
        elif expected is not None:
            src = (f"pinned in {expected.source}" if "pyproject" in expected.source else
                   f"attested by {expected.publisher.describe()} before")
            fix = (f"remove the pin from {expected.source}" if "pyproject" in expected.source
                   else f"if you accept an unattested {name}: safepip trust {name} --reset")
            problems.append(AttestationError(
                f"{name} was {src}, but {r.version} is not: {why}",
                filename=r.filename, project=name, hint=fix))
        elif policy.required(name):
            problems.append(AttestationError(
                f"--require-attestations: {name} {r.version} is not attested ({why})",
                filename=r.filename, project=name,
                hint="drop --require-attestations for this package"))
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise AttestationError(
            f"{len(problems)} files fail their attestation checks:\n  - " +
            "\n  - ".join(p.message + (f"\n    hint: {p.hint}" if p.hint else "")
                          for p in problems))
    for project, (pub, version) in to_record.items():
        store.set(project, pub, version)
