"""The real PEP 740 material in ``../shared/fixtures/attestations`` (see its README)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def fixtures_dir() -> Path:
    """The fixtures directory, or a skip (a failure where CI says they must be there)."""
    candidates = [Path(p) for p in [os.environ.get("SAFEPIP_ATTESTATION_FIXTURES", "")] if p]
    candidates += [ROOT.parent / "shared" / "fixtures" / "attestations",
                   Path("/work/shared/fixtures/attestations")]
    for c in candidates:
        if (c / "SHA256SUMS").is_file():
            return c
    import pytest  # here, not above: `nox -s bench` uses this module without pytest

    reason = "../shared/fixtures/attestations is not here (PEP 740 fixtures)"
    if os.environ.get("SAFEPIP_REQUIRE_FIXTURES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def sums() -> dict[str, str]:
    out = {}
    for line in (fixtures_dir() / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        out[os.path.basename(name)] = digest
    return out


def read(name: str) -> bytes:
    return (fixtures_dir() / name).read_bytes()


def provenance(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(read(name + ".provenance"))
    return data


def wrap(attestation: dict[str, Any], publisher: dict[str, Any]) -> bytes:
    """A bare attestation as the Integrity API would serve it."""
    return json.dumps({"version": 1, "attestation_bundles": [
        {"publisher": publisher, "attestations": [attestation]}]}).encode()


def statement(attestation: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(base64.b64decode(attestation["envelope"]["statement"]))
    return data


_dists: Path | None = None


def dists() -> Path:
    """The files the attestations attest, fetched from PyPI once by ``get-dists``."""
    global _dists
    if _dists is not None:
        return _dists
    fx = fixtures_dir()
    dest = Path(tempfile.gettempdir()) / "safepip-attestation-dists"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    proc = subprocess.run([sys.executable, str(fx / "get-dists"), str(dest)], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        import pytest

        reason = f"get-dists could not fetch the attested files: {proc.stderr.strip()[-300:]}"
        if os.environ.get("SAFEPIP_RUN_NETWORK") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    _dists = dest
    return dest
