"""Attestations through the whole install path: the local index serves the real files
(fetched once by the fixtures' get-dists) under their real names with their real
provenance; refusals happen before anything is installed, and leave everything Clean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safepip.attest.publisher import Publisher
from safepip.attest.trust import TrustStore
from tests.attestations import dists, provenance, read
from tests.factory import Built, make_wheel
from tests.indexserver import LocalIndex

SIGSTORE = "sigstore-3.6.1.tar.gz"
GCB = "gcb_attestation_test-0.0.0.tar.gz"
SIGSTORE_PUB = "github.com/sigstore/sigstore-python (release.yml)"


def serve(index: LocalIndex, filename: str, prov: bytes | None = b"",
          **kw: object) -> None:
    from packaging.utils import parse_sdist_filename

    data = (dists() / filename).read_bytes()
    name, version = parse_sdist_filename(filename)
    e = index.add(Built(filename, data, b"", name, str(version)), **kw)  # type: ignore[arg-type]
    e.provenance = read(filename + ".provenance") if prov == b"" else prov


def store(tmp_path: Path) -> TrustStore:
    return TrustStore(str(tmp_path / "data" / "publishers.toml"))


def remember(tmp_path: Path, name: str, spec: str) -> None:
    s = store(tmp_path)
    s.set(name, Publisher.parse(spec), "3.6.0")
    s.save()


@pytest.mark.parametrize("pep740", [True, False], ids=["simple-api-key", "integrity-api"])
def test_attested_sdist_reported(index: LocalIndex, venv: Path, safepip, tmp_path: Path,
                                 pep740: bool) -> None:
    index.pep740 = pep740
    serve(index, SIGSTORE)
    r = safepip("install", "--dry-run", "--no-deps", "sigstore==3.6.1", "--report",
                str(tmp_path / "r.json"))
    assert r.code == 0, r.text
    assert f"Would install sigstore 3.6.1 · attested by {SIGSTORE_PUB}" in r.err
    where = ("/files/sigstore-3.6.1.tar.gz.provenance" if pep740 else
             "/integrity/sigstore/3.6.1/sigstore-3.6.1.tar.gz/provenance")
    assert index.requests_for(where)
    att = json.loads((tmp_path / "r.json").read_text())["install"][0]["safepip"]["attestation"]
    assert att["status"] == "attested"
    assert att["publisher"] == {"kind": "GitHub", "repository": "sigstore/sigstore-python",
                                "workflow": "release.yml"}
    assert att["rekor_log_index"] == [156716889]
    # a dry run records nothing; the provenance answer is cached with the file
    assert not (tmp_path / "data" / "publishers.toml").exists()
    index.log.clear()
    r = safepip("install", "--dry-run", "--no-deps", "sigstore==3.6.1")
    assert "attested by github.com/sigstore/sigstore-python" in r.err
    assert not index.requests_for(where)


def test_google_publisher(index: LocalIndex, venv: Path, safepip) -> None:
    serve(index, GCB)
    r = safepip("install", "--dry-run", "gcb-attestation-test==0.0.0")
    assert r.code == 0, r.text
    assert ("attested by Google account 919436158236-compute@developer.gserviceaccount.com"
            in r.err)


def test_publisher_changed_is_refused(index: LocalIndex, venv: Path, safepip, clean,
                                      tmp_path: Path) -> None:
    serve(index, SIGSTORE)
    remember(tmp_path, "sigstore", "github:evil/sigstore-python")
    with clean():
        r = safepip("install", "--no-deps", "sigstore==3.6.1")
    assert r.code == 1
    assert ("error: sigstore-3.6.1.tar.gz: the publisher of sigstore changed: 3.6.1 is "
            f"attested by {SIGSTORE_PUB}, but github.com/evil/sigstore-python is trusted "
            "since 3.6.0") in r.err
    assert ("hint: if sigstore really moved, accept the new publisher: safepip trust "
            "sigstore --publisher github:sigstore/sigstore-python") in r.err


def test_project_that_stops_attesting_is_refused(index: LocalIndex, venv: Path, safepip,
                                                 clean, tmp_path: Path) -> None:
    serve(index, SIGSTORE, prov=None)
    remember(tmp_path, "sigstore", "github:sigstore/sigstore-python")
    with clean():
        r = safepip("install", "--no-deps", "sigstore==3.6.1")
    assert r.code == 1
    assert ("sigstore was attested by github.com/sigstore/sigstore-python before, but "
            "3.6.1 is not: it has no attestation") in r.err
    assert "hint: if you accept an unattested sigstore: safepip trust sigstore --reset" in r.err


def test_team_pin_in_pyproject(index: LocalIndex, venv: Path, safepip, clean, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    serve(index, SIGSTORE)
    project = tmp_path / "proj"
    (project / "sub").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[tool.safepip.publishers]\nsigstore = "github:sigstore/other-repo"\n')
    monkeypatch.chdir(project / "sub")
    with clean(project):
        r = safepip("install", "--no-deps", "sigstore==3.6.1")
    assert r.code == 1
    assert "github.com/sigstore/other-repo is pinned in" in r.err
    assert "[tool.safepip.publishers]" in r.err
    (project / "pyproject.toml").write_text(
        '[tool.safepip.publishers]\nsigstore = "https://github.com/sigstore/sigstore-python"\n')
    assert safepip("install", "--dry-run", "--no-deps", "sigstore==3.6.1").code == 0


@pytest.mark.parametrize(("case", "expect"), [
    ("other-file", "the attestation is for another file: 'gcb_attestation_test-0.0.0.tar.gz'"),
    ("malformed", "malformed provenance"),
    ("other-host", "the index points this file's provenance to another host: "
                   "https://attacker.example/p"),
    ("bad-signature", "provenance does not verify: VerificationError: DSSE: invalid signature"),
])
def test_bad_provenance_is_refused(index: LocalIndex, venv: Path, safepip, clean,
                                   case: str, expect: str) -> None:
    index.pep740 = True
    if case == "other-file":
        serve(index, SIGSTORE, prov=read(GCB + ".provenance"))
    elif case == "malformed":
        serve(index, SIGSTORE, prov=b'{"version": 1, "attestation_bundles": "no"}')
    elif case == "other-host":
        serve(index, SIGSTORE, provenance_url="https://attacker.example/p")
    else:
        prov = provenance(SIGSTORE)
        env = prov["attestation_bundles"][0]["attestations"][0]["envelope"]
        env["signature"] = "A" + env["signature"][1:]
        serve(index, SIGSTORE, prov=json.dumps(prov).encode())
    with clean():
        r = safepip("install", "--no-deps", "sigstore==3.6.1")
    assert r.code == 1
    assert f"error: sigstore-3.6.1.tar.gz: {expect}" in r.err, r.err
    assert "hint: the file may not be what its publisher uploaded; to install it anyway: " \
           "--skip-attestations sigstore (not recommended)" in r.err
    # the override works, loudly
    r = safepip("install", "--dry-run", "--no-deps", "--skip-attestations", "sigstore",
                "sigstore==3.6.1")
    assert r.code == 0, r.text
    assert "--skip-attestations: the provenance of sigstore is NOT checked" in r.err


def test_unattested_wheels_install_and_are_said_so(index: LocalIndex, venv: Path, safepip,
                                                   tmp_path: Path) -> None:
    index.add(make_wheel("plain", "1.0"))
    r = safepip("install", "plain")
    assert r.code == 0, r.text
    assert "sha256 ✓ index sha256 · wheel checked · not attested" in r.err
    assert not (tmp_path / "data" / "publishers.toml").exists()


def test_require_attestations(index: LocalIndex, venv: Path, safepip, clean) -> None:
    index.add(make_wheel("plain", "1.0", requires=["other"]))
    index.add(make_wheel("other", "1.0"))
    with clean():
        r = safepip("install", "--require-attestations=plain", "plain")
    assert r.code == 1
    assert ("error: plain-1.0-py3-none-any.whl: --require-attestations: plain 1.0 is not "
            "attested (it has no attestation)") in r.err
    with clean():  # bare: every package; it never swallows the requirement after it
        r = safepip("install", "--require-attestations", "plain")
    assert r.code == 1 and "2 files fail their attestation checks:" in r.err
    assert "other 1.0 is not attested" in r.err
    assert safepip("install", "plain", "--require-attestations=unrelated").code == 0


def test_provenance_unavailable_for_a_trusted_project(index: LocalIndex, venv: Path, safepip,
                                                      clean, tmp_path: Path) -> None:
    """An index that errors on the provenance cannot downgrade a known publisher."""
    index.pep740 = True
    serve(index, SIGSTORE)
    index.fail_next["/files/sigstore-3.6.1.tar.gz.provenance"] = 100
    remember(tmp_path, "sigstore", "github:sigstore/sigstore-python")
    with clean():
        r = safepip("install", "--no-deps", "sigstore==3.6.1")
    assert r.code == 1
    assert "its attestation could not be fetched (HTTP 503" in r.err


def test_trust_store_is_human_readable(tmp_path: Path) -> None:
    remember(tmp_path, "Sigstore", "github:sigstore/sigstore-python")
    text = (tmp_path / "data" / "publishers.toml").read_text()
    assert '[publishers."sigstore"]\nkind = "GitHub"\nrepository = "sigstore/sigstore-python"' \
        in text
    assert text.startswith("# The publisher safepip has seen")
    again = store(tmp_path)
    assert again.records["sigstore"].publisher.key == "github:sigstore/sigstore-python"
    assert again.records["sigstore"].version == "3.6.0"


def test_trust_command(index: LocalIndex, venv: Path, safepip, tmp_path: Path) -> None:
    r = safepip("trust")
    assert r.code == 0 and "no publishers are trusted yet" in r.out
    r = safepip("trust", "sigstore", "--publisher", "github:evil/sigstore-python")
    assert r.code == 0
    assert "sigstore: releases must now be attested by github.com/evil/sigstore-python" in r.out
    serve(index, SIGSTORE)
    r = safepip("install", "--dry-run", "--no-deps", "sigstore==3.6.1")
    assert r.code == 1 and "the publisher of sigstore changed" in r.err
    r = safepip("trust", "sigstore", "--publisher", "github:sigstore/sigstore-python")
    assert "(was github.com/evil/sigstore-python)" in r.out
    assert safepip("install", "--dry-run", "--no-deps", "sigstore==3.6.1").code == 0
    r = safepip("trust")
    assert "sigstore  github.com/sigstore/sigstore-python  (set by hand" in r.out
    r = safepip("trust", "sigstore", "--reset")
    assert "sigstore: forgotten" in r.out
    assert "sigstore" not in store(tmp_path).records
    for bad in (["trust", "sigstore"], ["trust", "--reset"],
                ["trust", "x", "--publisher", "sigstore/sigstore-python"]):
        r = safepip(*bad)
        assert r.code == 2 and r.err.startswith("error: "), r.err


def test_trusted_root_update(index: LocalIndex, venv: Path, safepip, tmp_path: Path) -> None:
    """A newer root is accepted explicitly, checked by digest on every use."""
    from tests.attestations import fixtures_dir

    serve(index, SIGSTORE)
    staging = fixtures_dir() / "trust" / "sigstore-staging.trusted_root.json"
    bogus = tmp_path / "bogus.json"
    bogus.write_text('{"mediaType": "nope"}')
    r = safepip("trust", "--root", str(bogus))
    assert r.code == 1 and "is not a Sigstore trusted root" in r.err
    r = safepip("trust", "--root", str(staging))
    assert r.code == 0, r.text
    # the production-signed provenance does not verify with the staging root
    r = safepip("install", "--dry-run", "--no-deps", "sigstore==3.6.1")
    assert r.code == 1 and "provenance does not verify" in r.err
    # a root changed behind safepip's back is not used
    accepted = tmp_path / "data" / "sigstore-trusted-root.json"
    accepted.write_bytes(accepted.read_bytes() + b"\n")
    r = safepip("install", "--dry-run", "--no-deps", "sigstore==3.6.1")
    assert r.code == 1 and "has changed since it was accepted" in r.err
    assert "safepip trust --reset-root" in r.err
    assert safepip("trust", "--reset-root").code == 0
    assert safepip("install", "--dry-run", "--no-deps", "sigstore==3.6.1").code == 0


def test_verify_command(index: LocalIndex, venv: Path, safepip, tmp_path: Path) -> None:
    serve(index, SIGSTORE)
    index.add(make_wheel("sigstore", "3.6.1"))
    r = safepip("verify", "sigstore==3.6.1", "--index-url", index.url)
    assert r.code == 1, r.text  # the wheel made here has no attestation
    assert "attested by   github.com/sigstore/sigstore-python (release.yml)" in r.out
    assert "source        refs/tags/v3.6.1 @ 896cfe13105495e6dc6f8faf23e1007da35edeeb" in r.out
    assert "Rekor log index 156716889" in r.out
    assert "1 of 2 files are not attested" in r.out
    path = dists() / SIGSTORE
    r = safepip("verify", str(path), "--index-url", index.url)
    assert r.code == 0, r.text
    assert ("Source         https://github.com/sigstore/sigstore-python  ✓ the attested "
            "repository") in r.out
    # another file under that name: the index vouches for other bytes
    other = tmp_path / SIGSTORE
    other.write_bytes(path.read_bytes() + b"\0")
    r = safepip("verify", str(other), "--index-url", index.url)
    assert r.code == 1 and "it is not the file the index serves" in r.err


def test_verify_shows_a_borrowed_repository() -> None:
    """Metadata that claims a famous repository the file was not built from is shown as
    such (the attestation here is real; the claim is the uploader's, so any text works)."""
    from safepip.attest.account import declared_urls
    from safepip.attest.check import AttestationResult
    from safepip.attest.inspect import Account
    from safepip.attest.verify import verify_provenance
    from tests.attestations import sums

    v = verify_provenance(read(SIGSTORE + ".provenance"), SIGSTORE, sums()[SIGSTORE])
    md = (b"Metadata-Version: 2.1\nName: sigstore\nVersion: 3.6.1\n"
          b"Home-page: https://github.com/Sigstore/sigstore-python.git\n"
          b"Project-URL: Source, https://github.com/psf/requests\n"
          b"Project-URL: Docs, https://example.org/\n")
    acc = Account(AttestationResult("sigstore", "3.6.1", SIGSTORE, v.sha256, "attested", v),
                  declared=declared_urls(md, v.publisher))
    text = "\n".join(acc.lines())
    assert ("Home-page  https://github.com/Sigstore/sigstore-python.git  ✓ the attested "
            "repository") in text
    assert ("Source     https://github.com/psf/requests  ✗ NOT the attested repository: "
            "the project claims it but was not built from it") in text
    assert "Docs       https://example.org/\n" in text + "\n"


GOOGLE = "google:919436158236-compute@developer.gserviceaccount.com"


def test_locks_carry_publishers(index: LocalIndex, venv: Path, safepip, clean, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    serve(index, GCB)
    monkeypatch.chdir(tmp_path)
    r = safepip("lock", "gcb-attestation-test==0.0.0", "--index-url", index.url)
    assert r.code == 0, r.text
    text = (tmp_path / "requirements.txt").read_text()
    assert f"    # via command line\n    # attested-by: {GOOGLE}\n" in text
    r = safepip("lock", "gcb-attestation-test==0.0.0", "--index-url", index.url,
                "-o", "pylock.toml")
    assert r.code == 0, r.text
    assert ('attestation-identities = [{ kind = "Google", email = '
            '"919436158236-compute@developer.gserviceaccount.com" }]'
            ) in (tmp_path / "pylock.toml").read_text()
    # the lock's publisher is required when installing from it (nothing else is trusted)
    (tmp_path / "requirements.txt").write_text(text.replace(GOOGLE, "google:x@example.com"))
    with clean(tmp_path):
        r = safepip("install", "-r", "requirements.txt")
    assert r.code == 1
    assert ("attested by Google account 919436158236-compute@developer.gserviceaccount.com, "
            "but the lock requires Google account x@example.com") in r.err
    assert "hint: re-lock after checking the change (safepip lock -P gcb-attestation-test)" \
        in r.err


def test_pylock_publisher_required(index: LocalIndex, venv: Path, safepip, clean,
                                   tmp_path: Path) -> None:
    w = make_wheel("plain", "1.0")
    index.add(w)
    lock = tmp_path / "pylock.toml"
    wheel = (f'{{ name = "{w.filename}", url = "{index.base}/files/{w.filename}", '
             f'hashes = {{ sha256 = "{w.sha256}" }} }}')
    lock.write_text(f'''lock-version = "1.0"
created-by = "test"

[[packages]]
name = "plain"
version = "1.0"
index = "{index.url}"
wheels = [{wheel}]
attestation-identities = [{{ kind = "GitHub", repository = "o/plain", workflow = "r.yml" }}]
''')
    with clean(tmp_path):
        r = safepip("install", "-r", str(lock))
    assert r.code == 1
    assert ("plain-1.0-py3-none-any.whl: the lock requires an attestation by "
            "github.com/o/plain (r.yml), but it has no attestation") in r.err
    lock.write_text(lock.read_text().replace('{ kind = "GitHub", ', '{ '))
    r = safepip("install", "-r", str(lock))
    assert r.code == 1 and "attestation-identities must be tables with a kind" in r.err


def test_offline_uses_cached_provenance(index: LocalIndex, venv: Path, safepip,
                                        clean) -> None:
    """--offline: pages, files and provenance from the cache; verified with the pinned
    root; anything not cached is an error that says so."""
    serve(index, SIGSTORE)
    assert safepip("install", "--dry-run", "--no-deps", "sigstore==3.6.1").code == 0
    index.stop()
    r = safepip("install", "--offline", "--dry-run", "--no-deps", "sigstore==3.6.1")
    assert r.code == 0, r.text
    assert f"attested by {SIGSTORE_PUB}" in r.err
    with clean():
        r = safepip("install", "--offline", "other")
    assert r.code == 1
    assert "--offline: this is not in the cache" in r.err
    assert "hint: run once without --offline to fetch it" in r.err


@pytest.mark.parametrize("fmt", ["json", "html"])
@pytest.mark.parametrize(("api", "asked"), [("1.1", True), ("1.3", False)])
def test_simple_api_13_says_no_provenance_by_leaving_it_out(index: LocalIndex, venv: Path,
                                                            safepip, fmt: str, api: str,
                                                            asked: bool) -> None:
    """PEP 740: an index at API version 1.3 or later lists provenance where there is
    some, so a file without it has none (no Integrity API request); before 1.3 the
    index does not say, and its Integrity API is asked."""
    index.format = fmt
    index.api_version = api
    index.add(make_wheel("lib"))
    r = safepip("install", "lib", "--report", "-")
    assert r.code == 0, r.text
    assert bool(index.requests_for("/integrity/")) is asked
    assert "not attested" in r.err
