"""PEP 740 verification with real attestations, offline, against the pinned root."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

import pytest

from safepip.attest.publisher import Publisher
from safepip.attest.verify import PINNED_ROOT, _check_statement, verify_provenance
from safepip.errors import AttestationError
from tests.attestations import fixtures_dir, provenance, read, statement, sums, wrap

PYPI_ATT = "pypi_attestations-0.0.19.tar.gz"
SIGSTORE = "sigstore-3.6.1.tar.gz"
GCB = "gcb_attestation_test-0.0.0.tar.gz"
GITLAB = "gitlab_oidc_project-0.0.3.tar.gz"


def verify(prov: bytes | dict[str, object], filename: str, sha256: str | None = None,
           root: str = PINNED_ROOT):  # type: ignore[no-untyped-def]
    raw = prov if isinstance(prov, bytes) else json.dumps(prov).encode()
    return verify_provenance(raw, filename, sha256 or sums()[filename], root)


@pytest.mark.parametrize(("filename", "describe", "key"), [
    (PYPI_ATT, "github.com/trailofbits/pypi-attestations (release.yml)",
     "github:trailofbits/pypi-attestations"),
    (SIGSTORE, "github.com/sigstore/sigstore-python (release.yml)",
     "github:sigstore/sigstore-python"),
    (GCB, "Google account 919436158236-compute@developer.gserviceaccount.com",
     "google:919436158236-compute@developer.gserviceaccount.com"),
])
def test_real_provenance_verifies(filename: str, describe: str, key: str) -> None:
    v = verify(read(filename + ".provenance"), filename)
    assert v.publisher.describe() == describe
    assert v.publisher.key == key
    assert v.predicates == ["PyPI publish"]
    (att,) = v.attestations
    assert att.log_index is not None and att.integrated_time is not None
    if v.publisher.kind == "GitHub":
        assert att.commit and att.ref.startswith("refs/tags/v")
        assert att.issuer == "https://token.actions.githubusercontent.com"
    else:
        assert att.issuer == "https://accounts.google.com"


def test_gitlab_publisher_verifies() -> None:
    att = json.loads(read(GITLAB + ".publish.attestation"))
    digest = statement(att)["subject"][0]["digest"]["sha256"]
    assert digest == sums()[GITLAB]
    pub = {"kind": "GitLab", "repository": "facutuesca/gitlab-oidc-project",
           "workflow_filepath": ".gitlab-ci.yml", "environment": None}
    v = verify(wrap(att, pub), GITLAB, digest)
    assert v.publisher.describe() == "gitlab.com/facutuesca/gitlab-oidc-project (.gitlab-ci.yml)"


def test_slsa_predicate_verifies() -> None:
    att = json.loads(read(PYPI_ATT + ".slsa.attestation"))
    pub = {"kind": "GitHub", "repository": "trailofbits/pypi-attestations",
           "workflow": "release.yml", "environment": None}
    v = verify(wrap(att, pub), PYPI_ATT)
    assert v.predicates == ["SLSA provenance"]


# -- the README's negative table, and more: each fails closed -------------------------

def _flip(hexdigest: str) -> str:
    return ("0" if hexdigest[0] != "0" else "1") + hexdigest[1:]


def _publisher(filename: str, **change: object) -> dict[str, object]:
    prov = provenance(filename)
    prov["attestation_bundles"][0]["publisher"].update(change)
    return prov


@pytest.mark.parametrize(("case", "expect"), [
    ("digest", "is not this file's sha256"),
    ("renamed", "the attestation is for another file: 'pypi_attestations-0.0.19.tar.gz'"),
    ("other-file", "the attestation is for another file: 'sigstore-3.6.1.tar.gz'"),
    ("workflow", "does not match expected Trusted Publisher (wrong.yml"),
    ("repository", "expected https://github.com/evil/pypi-attestations"),
    ("kind", "OIDCIssuerV2 does not match"),
    ("google-email", "do not match attacker@example.com"),
    ("signature", "invalid signature"),
    ("statement-digest", "invalid signature"),
    ("staging-root", "provenance does not verify"),
    ("malformed-json", "malformed provenance"),
    ("not-provenance", "malformed provenance: attestation_bundles"),
    ("no-attestations", "holds no attestation"),
    ("empty-bundles", "holds no attestation"),
    ("rekor2", "provenance does not verify"),
    ("unknown-publisher-kind", "malformed provenance"),
])
def test_bad_provenance_refused(case: str, expect: str) -> None:
    filename, sha = PYPI_ATT, sums()[PYPI_ATT]
    prov: object = provenance(PYPI_ATT)
    root = PINNED_ROOT
    if case == "digest":
        sha = _flip(sha)
    elif case == "renamed":
        filename = "pypi_attestations-0.0.20.tar.gz"
    elif case == "other-file":
        prov = provenance(SIGSTORE)
    elif case == "workflow":
        prov = _publisher(PYPI_ATT, workflow="wrong.yml")
    elif case == "repository":
        prov = _publisher(PYPI_ATT, repository="evil/pypi-attestations")
    elif case == "kind":
        prov = provenance(PYPI_ATT)
        prov["attestation_bundles"][0]["publisher"] = {  # type: ignore[index]
            "kind": "GitLab", "repository": "trailofbits/pypi-attestations",
            "workflow_filepath": "release.yml", "environment": None}
    elif case == "google-email":
        filename, sha = GCB, sums()[GCB]
        prov = _publisher(GCB, email="attacker@example.com")
    elif case == "signature":
        env = prov["attestation_bundles"][0]["attestations"][0]["envelope"]  # type: ignore[index]
        sig = bytearray(base64.b64decode(env["signature"]))
        sig[10] ^= 1
        env["signature"] = base64.b64encode(bytes(sig)).decode()
    elif case == "statement-digest":
        env = prov["attestation_bundles"][0]["attestations"][0]["envelope"]  # type: ignore[index]
        st = json.loads(base64.b64decode(env["statement"]))
        st["subject"][0]["digest"]["sha256"] = _flip(sha)
        env["statement"] = base64.b64encode(json.dumps(st).encode()).decode()
        sha = _flip(sha)
    elif case == "staging-root":
        root = str(fixtures_dir() / "trust" / "sigstore-staging.trusted_root.json")
    elif case == "malformed-json":
        prov = b'{"version": 1, "attestation_bundles": ['
    elif case == "not-provenance":
        prov = {"version": 1}
    elif case == "no-attestations":
        prov["attestation_bundles"][0]["attestations"] = []  # type: ignore[index]
    elif case == "empty-bundles":
        prov = {"version": 1, "attestation_bundles": []}
    elif case == "rekor2":
        att = json.loads(read(PYPI_ATT + ".publish.attestation.with_rekor2_timestamp"))
        prov = wrap(att, {"kind": "GitHub", "repository": "trailofbits/pypi-attestations",
                          "workflow": "release.yml", "environment": None})
    elif case == "unknown-publisher-kind":
        prov = _publisher(PYPI_ATT, kind="Bitbucket")
    with pytest.raises(AttestationError) as exc:
        verify(prov if isinstance(prov, (bytes, dict)) else {}, filename, sha, root)
    assert expect in exc.value.message, exc.value.message
    assert exc.value.message.startswith(filename + ": ")


def test_statement_checks() -> None:
    """What the signature covers is checked field by field (the crypto above is real)."""
    good = {"_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "a-1.0.tar.gz", "digest": {"sha256": "ab" * 32}}],
            "predicateType": "https://docs.pypi.org/attestations/publish/v1",
            "predicate": {}}
    assert _check_statement(json.dumps(good).encode(), "a-1.0.tar.gz", "ab" * 32)
    cases = {
        "unknown attestation predicate type": {"predicateType": "https://evil/v1"},
        "exactly one subject": {"subject": [good["subject"][0]] * 2},  # type: ignore[index]
        "not an in-toto statement": {"_type": "https://in-toto.io/Statement/v0.1"},
    }
    for expect, change in cases.items():
        bad = copy.deepcopy(good)
        bad.update(change)
        with pytest.raises(AttestationError, match=expect):
            _check_statement(json.dumps(bad).encode(), "a-1.0.tar.gz", "ab" * 32)
    # a wheel and an sdist of the same release are different files
    with pytest.raises(AttestationError, match="another file"):
        _check_statement(json.dumps(good).encode(), "a-1.0-py3-none-any.whl", "ab" * 32)


def test_a_root_planted_in_sigstores_cache_is_not_used(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """sigstore's offline mode trusts whatever trusted_root.json sits in its cache;
    safepip never reads it: a garbage root planted there changes nothing, and a root
    that would accept staging signatures does not make them pass."""
    cache = tmp_path / "xdg-cache"
    tuf = cache / "sigstore-python" / "tuf" / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
    tuf.mkdir(parents=True)
    (tuf / "trusted_root.json").write_bytes(
        read("trust/sigstore-staging.trusted_root.json"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    assert verify(read(SIGSTORE + ".provenance"), SIGSTORE).publisher.repository == (
        "sigstore/sigstore-python")
    (tuf / "trusted_root.json").write_text("{not json")
    assert verify(read(GCB + ".provenance"), GCB).publisher.kind == "Google"


@pytest.mark.parametrize(("spec", "key"), [
    ("github:pypa/pip", "github:pypa/pip"),
    ("https://github.com/PyPA/pip.git", "github:pypa/pip"),
    ("gitlab:group/sub/project", "gitlab:group/sub/project"),
    ("google:ci@example.iam.gserviceaccount.com", "google:ci@example.iam.gserviceaccount.com"),
])
def test_publisher_specs(spec: str, key: str) -> None:
    assert Publisher.parse(spec).key == key


@pytest.mark.parametrize("spec", ["pypa/pip", "github:pip", "google:someone", "svn:x/y", ""])
def test_bad_publisher_specs(spec: str) -> None:
    with pytest.raises(ValueError, match="publisher"):
        Publisher.parse(spec)


def test_publisher_policies_on_real_certificates() -> None:
    """The policies safepip relies on (through pypi-attestations), on two real leaf
    certificates: a GitHub one without the Source-Repository-Ref extension (accepted
    through the commit digest) and the Google one; and our claim reader on them."""
    import sigstore.errors
    from cryptography import x509
    from pypi_attestations import GitHubPublisher, GooglePublisher

    from safepip.attest.verify import _COMMIT, _REF, _cert_claims

    gh = x509.load_pem_x509_certificate(read("no-source-repository-ref-extension.pem"))
    GitHubPublisher(repository="SWIFTSIM/swiftgalaxy",
                    workflow="python-publish.yml")._as_policy().verify(gh)
    with pytest.raises(sigstore.errors.VerificationError):
        GitHubPublisher(repository="SWIFTSIM/swiftgalaxy",
                        workflow="release.yml")._as_policy().verify(gh)
    claims = _cert_claims(gh)
    assert claims[_COMMIT] == "a26eb006d04dd0c41a6e38dc15ddaf7b46143505"
    assert _REF not in claims
    google = x509.load_pem_x509_certificate(read("200170367.pem"))
    email = "919436158236-compute@developer.gserviceaccount.com"
    GooglePublisher(email=email)._as_policy().verify(google)
    with pytest.raises(sigstore.errors.VerificationError):
        GooglePublisher(email="attacker@example.com")._as_policy().verify(google)
    assert _cert_claims(google)["san"] == email


def test_first_publisher_is_recorded_and_then_required(tmp_path: Path) -> None:
    from safepip.attest.check import AttestationResult
    from safepip.attest.trust import Policy, TrustStore, judge

    v = verify(read(SIGSTORE + ".provenance"), SIGSTORE)
    good = AttestationResult("sigstore", "3.6.1", SIGSTORE, v.sha256, "attested", v)
    plain = AttestationResult("plain", "1.0", "plain-1.0.tar.gz", "00", "none")
    store = TrustStore(str(tmp_path / "publishers.toml"))
    judge([good, plain], store, {}, Policy())
    store.save()
    again = TrustStore(str(tmp_path / "publishers.toml"))
    assert set(again.records) == {"sigstore"}  # nothing is recorded for the unattested
    assert again.records["sigstore"].version == "3.6.1"
    gone = AttestationResult("sigstore", "3.7.0", "sigstore-3.7.0.tar.gz", "11", "none")
    with pytest.raises(AttestationError, match=r"sigstore was attested by github.com/"
                       r"sigstore/sigstore-python \(release.yml\) before, but 3.7.0 is not"):
        judge([gone], again, {}, Policy())
    # a refused run changes nothing
    assert not again.changed


def test_publisher_identity_of_other_kinds() -> None:
    """CircleCI publishers are told apart by project (not all "circleci:" alike); a kind
    safepip does not know is compared on all its fields."""
    a = Publisher.from_provenance({"kind": "CircleCI", "project_id": "p-1",
                                   "pipeline_definition_id": "d-1",
                                   "vcs_origin": "github.com/o/r"})
    b = Publisher.from_provenance({"kind": "CircleCI", "project_id": "p-1",
                                   "pipeline_definition_id": "d-2"})
    c = Publisher.from_provenance({"kind": "CircleCI", "project_id": "p-2",
                                   "pipeline_definition_id": "d-1"})
    assert a.key == b.key == "circleci:p-1" != c.key
    assert a.describe() == "CircleCI project p-1 (github.com/o/r)"
    assert Publisher.parse(a.spec).key == a.key
    assert Publisher.from_record(a.as_dict()) == a
    x = Publisher.from_provenance({"kind": "Future", "org": "o", "pipeline": "p"})
    y = Publisher.from_provenance({"kind": "Future", "org": "o", "pipeline": "q"})
    assert x.key != y.key and x.key != "future:"
