"""PEP 740 provenance, verified offline against a Sigstore trusted root we ship.

``verify_provenance(raw, filename, sha256)`` checks, for every attestation in the
provenance object the index served:

1. the Sigstore bundle: the signing certificate chains to the pinned Fulcio CA at the
   time the transparency log (or a timestamp authority) saw it, the log entry is signed
   by the pinned Rekor key, and the DSSE signature is the certificate's;
2. the certificate's OIDC claims match the Trusted Publisher the provenance names
   (repository and workflow for GitHub/GitLab, the account for Google), so the
   publisher we report is proven, not just stated by the index;
3. the signed statement is in-toto, has exactly one subject, whose name is this file's
   name and whose sha256 is the digest we verified the bytes against;
4. its predicate is one PyPI knows (publish/v1, SLSA provenance v1).

The trusted root comes from this package (or one the user accepted with ``safepip trust
--root``), never from sigstore's TUF cache: a file planted there changes nothing. No
network is used. Every failure of any kind (pydantic, sigstore, cryptography, our own
checks) becomes an ``AttestationError``: verification fails closed.
"""

from __future__ import annotations

import json
import os
import threading
from typing import TYPE_CHECKING, Any

from safepip._record import field, record
from safepip.attest.publisher import Publisher
from safepip.errors import AttestationError

if TYPE_CHECKING:
    from sigstore.verify import Verifier

PINNED_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "sigstore-production.trusted_root.json")
IN_TOTO = "application/vnd.in-toto+json"
STATEMENT_TYPES = {"https://in-toto.io/Statement/v1"}
PREDICATES = {
    "https://docs.pypi.org/attestations/publish/v1": "PyPI publish",
    "https://slsa.dev/provenance/v1": "SLSA provenance",
}
MAX_ATTESTATIONS = 16

# Fulcio's certificate extensions (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md)
_OID = "1.3.6.1.4.1.57264.1."
_ISSUER, _SOURCE_REPO, _COMMIT, _REF, _BUILD_CONFIG, _RUN = (
    _OID + "8", _OID + "12", _OID + "13", _OID + "14", _OID + "18", _OID + "21")


@record(frozen=True)
class Signed:
    """What one verified attestation's certificate and log entry say."""

    predicate_type: str
    identity: str  # the certificate's subject alternative name
    issuer: str = ""
    source_repository: str = ""
    commit: str = ""
    ref: str = ""
    build_config: str = ""
    run: str = ""
    log_index: int | None = None
    integrated_time: int | None = None  # seconds since the epoch


@record(frozen=True)
class Verified:
    """A file's provenance, verified."""

    filename: str
    sha256: str
    publisher: Publisher
    attestations: tuple[Signed, ...] = field(default_factory=tuple)

    @property
    def predicates(self) -> list[str]:
        return [PREDICATES.get(a.predicate_type, a.predicate_type) for a in self.attestations]


_verifiers: dict[str, Verifier] = {}
_lock = threading.Lock()


def _verifier(root_path: str) -> Verifier:
    with _lock:
        v = _verifiers.get(root_path)
        if v is None:
            from sigstore.models import TrustedRoot
            from sigstore.verify import Verifier

            v = Verifier(trusted_root=TrustedRoot.from_file(root_path))
            _verifiers[root_path] = v
        return v


def _der_utf8(raw: bytes) -> str:
    """The text of a DER UTF8String (how Fulcio encodes its newer extensions)."""
    if len(raw) >= 2 and raw[0] == 0x0C:
        n, i = raw[1], 2
        if n & 0x80:
            width = n & 0x7F
            n, i = int.from_bytes(raw[2:2 + width], "big"), 2 + width
        return raw[i:i + n].decode("utf-8", "replace")
    return raw.decode("utf-8", "replace")


def _cert_claims(cert: Any) -> dict[str, str]:
    from cryptography import x509

    out: dict[str, str] = {}
    for ext in cert.extensions:
        oid = ext.oid.dotted_string
        if oid in (_ISSUER, _SOURCE_REPO, _COMMIT, _REF, _BUILD_CONFIG, _RUN):
            value = ext.value
            raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
            out[oid] = _der_utf8(raw)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n.value) for n in san]
        out["san"] = names[0] if names else ""
    except x509.ExtensionNotFound:
        out["san"] = ""
    return out


def _same_dist(subject_name: str, filename: str) -> bool:
    """Do two file names name the same distribution file (name, version, tags)?"""
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        parse_sdist_filename,
        parse_wheel_filename,
    )

    def parsed(fn: str) -> tuple[Any, ...]:
        if fn.endswith(".whl"):
            return ("wheel", *parse_wheel_filename(fn))
        if fn.endswith((".tar.gz", ".zip")):
            return ("sdist", *parse_sdist_filename(fn))
        raise ValueError(fn)

    try:
        return parsed(subject_name) == parsed(filename)
    except (ValueError, InvalidSdistFilename, InvalidWheelFilename):
        return False


def _err(message: str) -> AttestationError:
    return AttestationError(message)


def _check_statement(payload: bytes, filename: str, sha256: str) -> str:
    """Rules 3 and 4 on a DSSE payload whose signature has been verified; its predicate."""
    try:
        statement = json.loads(payload)
    except ValueError as exc:
        raise _err("the signed statement is not JSON") from exc
    if not isinstance(statement, dict) or statement.get("_type") not in STATEMENT_TYPES:
        raise _err("the signed statement is not an in-toto statement")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(
            subjects[0], dict):
        raise _err("the statement must name exactly one subject")
    name, digest = subjects[0].get("name"), subjects[0].get("digest")
    if not isinstance(name, str) or not _same_dist(name, filename):
        raise _err(f"the attestation is for another file: {name!r}")
    got = digest.get("sha256") if isinstance(digest, dict) else None
    if got != sha256:
        raise _err(f"the attested sha256 {got} is not this file's sha256 {sha256}")
    ptype = statement.get("predicateType")
    if ptype not in PREDICATES:
        raise _err(f"unknown attestation predicate type {ptype!r}")
    return str(ptype)


def verify_provenance(raw: bytes, filename: str, sha256: str,
                      root_path: str = PINNED_ROOT) -> Verified:
    """Verify a provenance object (the Integrity API's answer) for this file."""
    try:
        return _verify(raw, filename, sha256, root_path)
    except AttestationError as exc:
        raise AttestationError(exc.reason, filename=filename) from exc
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise AttestationError(f"provenance does not verify: {type(exc).__name__}"
                               f"{': ' + detail if detail else ''}", filename=filename
                               ) from exc


def _verify(raw: bytes, filename: str, sha256: str, root_path: str) -> Verified:
    from pydantic import ValidationError
    from pypi_attestations import Provenance

    try:
        prov = Provenance.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors()
        where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
        msg = errors[0]["msg"] if errors else "invalid"
        raise _err(f"malformed provenance: {where or 'document'}: {msg}") from exc
    if not prov.attestation_bundles:
        raise _err("the provenance holds no attestation")
    verifier = _verifier(root_path)
    publishers: list[Publisher] = []
    signed: list[Signed] = []
    for bundle in prov.attestation_bundles:
        publisher = Publisher.from_provenance(bundle.publisher.model_dump())
        publishers.append(publisher)
        if not bundle.attestations:
            raise _err("a provenance bundle holds no attestation")
        policy = bundle.publisher._as_policy()
        for att in bundle.attestations[:MAX_ATTESTATIONS]:
            sig_bundle = att.to_bundle()
            ptype, payload = verifier.verify_dsse(sig_bundle, policy)
            if ptype != IN_TOTO:
                raise _err(f"the envelope holds {ptype}, not in-toto")
            predicate = _check_statement(payload, filename, sha256)
            claims = _cert_claims(sig_bundle.signing_certificate)
            inner = getattr(sig_bundle.log_entry, "_inner", None)
            log_index = getattr(inner, "log_index", None)
            itime = getattr(inner, "integrated_time", None)
            signed.append(Signed(
                predicate_type=predicate, identity=claims.get("san", ""),
                issuer=claims.get(_ISSUER, ""), source_repository=claims.get(_SOURCE_REPO, ""),
                commit=claims.get(_COMMIT, ""), ref=claims.get(_REF, ""),
                build_config=claims.get(_BUILD_CONFIG, ""), run=claims.get(_RUN, ""),
                log_index=int(log_index) if log_index is not None else None,
                integrated_time=int(itime) if itime else None))
    if len({p.key for p in publishers}) != 1:
        raise _err("the provenance names several publishers: " +
                               ", ".join(p.describe() for p in publishers))
    return Verified(filename, sha256, publishers[0], tuple(signed))
