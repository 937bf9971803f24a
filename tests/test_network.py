"""Smoke tests against the real PyPI (marked ``network``): same answers as pip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run, site_packages
from tests.indexserver import LocalIndex

pytestmark = pytest.mark.network

SET30 = Path(__file__).parent / "data" / "set30.txt"


def pip_picks(args: list[str], tmp_path: Path) -> dict[str, str]:
    """What pip would install into a fresh 3.11 environment for ``args``."""
    report = tmp_path / "pip-report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
         "--only-binary", ":all:", "--quiet", "--report", str(report),
         "--index-url", "https://pypi.org/simple/", *args],
        check=True, env=env,
    )
    data = json.loads(report.read_text())
    return {i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"]
            for i in data["install"]}


def installed(venv: Path) -> dict[str, str]:
    out = {}
    for di in site_packages(venv).glob("*.dist-info"):
        name, _, version = di.name[: -len(".dist-info")].rpartition("-")
        out[name.lower().replace("_", "-")] = version
    return out


def pip_check(venv: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                    "check"], check=True, env=env)


# pip has no cooldown: these compare like with like (tests/test_cooldown.py has its own)
SAME_AS_PIP = ("--min-release-age", "0")


def test_requests_from_pypi(venv: Path, tmp_path: Path) -> None:
    r = run("install", *SAME_AS_PIP, "requests")
    assert r.code == 0, r.text
    assert installed(venv) == pip_picks(["requests"], tmp_path)
    pip_check(venv)
    subprocess.run([str(venv / "bin" / "python"), "-c", "import requests"], check=True)


def test_thirty_packages_match_pip(venv: Path, tmp_path: Path) -> None:
    r = run("install", *SAME_AS_PIP, "-r", str(SET30))
    assert r.code == 0, r.text
    assert installed(venv) == pip_picks(["-r", str(SET30)], tmp_path)
    pip_check(venv)
    # C extensions built for this platform import on the host
    subprocess.run([str(venv / "bin" / "python"), "-c",
                    "import numpy, markupsafe._speedups, psutil, cryptography.hazmat.bindings._rust"
                    "; numpy.arange(3).sum()"], check=True)
    # a second run in the same environment has nothing to do
    r = run("install", *SAME_AS_PIP, "-r", str(SET30))
    assert r.code == 0 and "Nothing to do" in r.err


def test_upgrade_and_dry_run_report(venv: Path, tmp_path: Path) -> None:
    assert run("install", "idna==3.6").code == 0
    out = tmp_path / "r.json"
    r = run("install", "-U", "idna", "--dry-run", "--report", str(out))
    assert r.code == 0, r.text
    data = json.loads(out.read_text())
    assert [i["metadata"]["name"] for i in data["install"]] == ["idna"]
    assert installed(venv)["idna"] == "3.6"
    assert run("install", "-U", "idna").code == 0
    assert installed(venv)["idna"] == data["install"][0]["metadata"]["version"]


@pytest.mark.parametrize("backend", ["bwrap", "docker"])
def test_sdist_only_package_from_pypi(venv: Path, backend: str) -> None:
    """docopt 0.6.2 exists only as an sdist with a setup.py: built in the sandbox."""
    from tests.test_sandbox import require_backend

    require_backend(backend)
    r = run("install", "--sandbox", backend, "docopt==0.6.2")
    assert r.code == 0, r.text
    assert f"built in the {backend} sandbox" in r.err
    subprocess.run([str(venv / "bin" / "python"), "-c", "import docopt"], check=True)


@pytest.mark.parametrize("backend", ["bwrap", "docker"])
def test_c_extension_built_from_source(venv: Path, backend: str) -> None:
    """markupsafe's C speedups, compiled by gcc in the container, imported on the host."""
    from tests.test_sandbox import require_backend

    require_backend(backend)
    r = run("install", "--sandbox", backend, "--no-binary", "markupsafe", "markupsafe")
    assert r.code == 0, r.text
    assert "built in the" in r.err
    out = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "import markupsafe._speedups as s; print(s.__file__)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith(".so")


def test_attested_sdist_installs_and_its_publisher_is_remembered(
        index: LocalIndex, venv: Path, tmp_path: Path) -> None:
    """The real gcb-attestation-test sdist with its real (Google) provenance, served by
    the local index, built in the sandbox with setuptools from PyPI; the publisher is
    recorded, and a later release without attestation is refused."""
    from tests.attestations import dists, read
    from tests.factory import Built
    from tests.test_sandbox import require_backend

    require_backend("bwrap")
    fn = "gcb_attestation_test-0.0.0.tar.gz"
    e = index.add(Built(fn, (dists() / fn).read_bytes(), b"", "gcb-attestation-test", "0.0.0"))
    e.provenance = read(fn + ".provenance")
    r = run("install", "--sandbox", "bwrap", "--index-url", index.url, "--extra-index-url",
            "https://pypi.org/simple", "gcb-attestation-test==0.0.0")
    assert r.code == 0, r.text
    assert ("attested by Google account 919436158236-compute@developer.gserviceaccount.com"
            in r.err)
    store = (tmp_path / "data" / "publishers.toml").read_text()
    assert ('[publishers."gcb-attestation-test"]\nkind = "Google"\n'
            'email = "919436158236-compute@developer.gserviceaccount.com"\n'
            'first-seen = "0.0.0"') in store
    e.provenance = None  # (the cached provenance of this very file would still count)
    r = run("install", "--no-cache", "--force-reinstall", "--sandbox", "bwrap", "--index-url",
            index.url,
            "--extra-index-url", "https://pypi.org/simple", "gcb-attestation-test==0.0.0")
    assert r.code == 1
    assert "gcb-attestation-test was attested by Google account" in r.err


@pytest.fixture(scope="module")
def piptools(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A venv with the newest pip (for `pip lock`) and pip-tools, from PyPI."""
    d = tmp_path_factory.mktemp("piptools")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "SAFEPIP_"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    subprocess.run([sys.executable, "-m", "venv", str(d / "venv")], check=True)
    subprocess.run([str(d / "venv" / "bin" / "pip"), "install", "-q", "--index-url",
                    "https://pypi.org/simple", "-U", "pip>=25.1", "pip-tools"],
                   check=True, env=env)
    return d / "venv" / "bin", env


def _lock_inputs(index: LocalIndex, tmp_path: Path) -> Path:
    from tests.factory import make_sdist, make_wheel

    index.add(make_wheel("app", "1.0", requires=["lib>=1"]))
    index.add(make_wheel("lib", "1.5"))
    index.add(make_sdist("lib", "1.5"))
    index.add(make_wheel("lib", "1.5", tag="cp311-cp311-win_amd64"))
    (tmp_path / "requirements.in").write_text("app\n")
    return tmp_path / "requirements.in"


def test_safepip_installs_what_pip_compile_writes(index: LocalIndex, venv: Path,
                                                  tmp_path: Path, piptools) -> None:
    bindir, env = piptools
    src = _lock_inputs(index, tmp_path)
    subprocess.run([str(bindir / "pip-compile"), "-q", "--generate-hashes", "--index-url",
                    index.url, "--no-emit-index-url", "-o", str(tmp_path / "locked.txt"),
                    str(src)], check=True, env=env, cwd=tmp_path)
    text = (tmp_path / "locked.txt").read_text()
    assert "lib==1.5" in text and text.count("--hash=sha256:") == 4
    r = run("install", "--index-url", index.url, "-r", str(tmp_path / "locked.txt"))
    assert r.code == 0, r.text
    assert "--hash sha256" in r.err
    assert (site_packages(venv) / "lib-1.5.dist-info").is_dir()
    r = run("sync", "--index-url", index.url, str(tmp_path / "locked.txt"))
    assert r.code == 0 and "Nothing to do" in r.err, r.text


def test_safepip_installs_what_pip_lock_writes(index: LocalIndex, venv: Path, tmp_path: Path,
                                               piptools) -> None:
    bindir, env = piptools
    src = _lock_inputs(index, tmp_path)
    subprocess.run([str(bindir / "pip"), "lock", "-q", "--index-url", index.url, "-r",
                    str(src), "-o", str(tmp_path / "pylock.toml")], check=True, env=env,
                   cwd=tmp_path)
    r = run("install", "-r", str(tmp_path / "pylock.toml"))
    assert r.code == 0, r.text
    assert (site_packages(venv) / "app-1.0.dist-info").is_dir()
    assert (site_packages(venv) / "lib-1.5.dist-info").is_dir()


def test_pip_installs_a_find_links_pylock(tmp_path: Path, piptools) -> None:
    """pip 26 reads the `path` entries safepip writes for local files (PEP 751)."""
    from tests.factory import make_wheel

    bindir, env = piptools
    project = tmp_path / "project"
    (project / "wheels").mkdir(parents=True)
    for w in (make_wheel("app", requires=["lib"]), make_wheel("lib", "2.0")):
        (project / "wheels" / w.filename).write_bytes(w.data)
    r = run("lock", "--no-index", "-f", str(project / "wheels"), "app",
            "-o", str(project / "pylock.toml"))
    assert r.code == 0, r.text
    subprocess.run([str(bindir / "pip"), "install", "-q", "--target", str(tmp_path / "t"),
                    "-r", str(project / "pylock.toml")], check=True, env=env, cwd=tmp_path)
    assert (tmp_path / "t" / "lib-2.0.dist-info").is_dir()
