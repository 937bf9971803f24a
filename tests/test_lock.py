"""``safepip lock``: hash-pinned requirements.txt that pip and safepip install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import site_packages, tree_hash
from tests.factory import make_sdist, make_wheel
from tests.indexserver import LocalIndex


def test_lock_pins_every_file_and_says_why(index: LocalIndex, safepip, tmp_path: Path) -> None:
    app = make_wheel("app", "1.0", requires=["lib>=1"])
    lib_py3 = make_wheel("lib", "2.0")
    lib_other = make_wheel("lib", "2.0", tag="cp311-cp311-win_amd64")
    lib_sdist = make_sdist("lib", "2.0")
    for w in (app, lib_py3, lib_other, lib_sdist, make_wheel("lib", "1.0")):
        index.add(w)
    r = safepip("lock", "--index-url", index.url, "app")
    assert r.code == 0, r.text
    text = (tmp_path / "requirements.txt").read_text()
    assert "app==1.0 \\\n" in text and "lib==2.0 \\\n" in text
    for built in (app, lib_py3, lib_other, lib_sdist):
        assert f"--hash=sha256:{built.sha256}" in text
    assert "    # via app\n" in text and "    # via command line\n" in text
    assert "resolved for this interpreter" in text


def test_pip_and_safepip_install_the_lock(index: LocalIndex, venv: Path, safepip,
                                          tmp_path: Path) -> None:
    index.add(make_wheel("app", "1.0", requires=["lib"]))
    index.add(make_wheel("lib", "1.5"))
    assert safepip("lock", "--index-url", index.url, "app").code == 0
    r = safepip("install", "-r", "requirements.txt")
    assert r.code == 0, r.text
    assert "--hash sha256" in r.err
    assert (site_packages(venv) / "lib-1.5.dist-info").is_dir()
    # pip, in hash-checking mode, into another environment
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    target = tmp_path / "pip-target"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--require-hashes",
                    "--no-deps", "--target", str(target), "--index-url", index.url,
                    "-r", "requirements.txt"], check=True, env=env)
    assert (target / "lib" / "__init__.py").exists()


def test_existing_pins_are_kept_until_upgraded(index: LocalIndex, safepip,
                                               tmp_path: Path) -> None:
    index.add(make_wheel("lib", "1.0"))
    index.add(make_wheel("other", "1.0"))
    assert safepip("lock", "--index-url", index.url, "lib", "other").code == 0
    index.add(make_wheel("lib", "2.0"))
    index.add(make_wheel("other", "2.0"))
    assert safepip("lock", "--index-url", index.url, "lib", "other").code == 0
    text = (tmp_path / "requirements.txt").read_text()
    assert "lib==1.0" in text and "other==1.0" in text
    assert safepip("lock", "--index-url", index.url, "-P", "lib", "lib", "other").code == 0
    text = (tmp_path / "requirements.txt").read_text()
    assert "lib==2.0" in text and "other==1.0" in text
    assert safepip("lock", "--index-url", index.url, "-U", "lib", "other").code == 0
    assert "other==2.0" in (tmp_path / "requirements.txt").read_text()


def test_check_and_refusals_leave_the_lock_alone(index: LocalIndex, safepip,
                                                 tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "demo"\nversion = "0"\ndependencies = ["lib"]\n'
        '[project.optional-dependencies]\ndev = ["devtool"]\n'
        '[dependency-groups]\ntest = ["testtool", {include-group = "lint"}]\n'
        'lint = ["linter"]\n')
    for name in ("lib", "devtool", "testtool", "linter"):
        index.add(make_wheel(name, "1.0"))
    assert safepip("lock", "--index-url", index.url, "--extra", "dev", "--group",
                   "test").code == 0
    lock = tmp_path / "requirements.txt"
    text = lock.read_text()
    assert all(f"{n}==1.0" in text for n in ("lib", "devtool", "testtool", "linter"))
    assert "# via -r pyproject.toml" in text
    r = safepip("lock", "--index-url", index.url, "--extra", "dev", "--group", "test",
                "--check")
    assert r.code == 0 and "up to date" in r.err
    before = tree_hash(lock)
    r = safepip("lock", "--index-url", index.url, "--check")  # inputs changed: no extras
    assert r.code == 1 and "out of date" in r.err
    r = safepip("lock", "--index-url", index.url, "lib>=5")  # cannot resolve
    assert r.code == 1 and "no version of lib" in r.err
    assert tree_hash(lock) == before


def _uv_compile(uv: tuple[str, dict[str, str]], index: LocalIndex, tmp_path: Path,
                *args: str) -> None:
    index.add(make_wheel("app", "1.0", requires=["lib>=1"]))
    index.add(make_wheel("lib", "1.5"))
    (tmp_path / "requirements.in").write_text("app\n")
    exe, env = uv
    subprocess.run([exe, "pip", "compile", "-q", "--index-url", index.url, "--python-version",
                    "3.11", "requirements.in", *args], check=True, env=env, cwd=tmp_path)


def _pylock(index: LocalIndex, safepip, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    index.add(make_wheel("app", "1.0", requires=["lib"]))
    index.add(make_wheel("lib", "1.5"))
    index.add(make_wheel("lib", "1.5", tag="cp311-cp311-win_amd64"))
    r = safepip("lock", "--index-url", index.url, "--format", "pylock", "app")
    assert r.code == 0, r.text
    return tmp_path / "pylock.toml"


def test_pylock_written_and_installed_without_resolving(index: LocalIndex, venv: Path,
                                                        safepip, tmp_path: Path) -> None:
    import tomllib

    path = _pylock(index, safepip, tmp_path)
    data = tomllib.loads(path.read_text())
    assert data["lock-version"] == "1.0"
    lib = next(p for p in data["packages"] if p["name"] == "lib")
    assert lib["index"] == index.url and len(lib["wheels"]) == 2
    assert all("sha256" in w["hashes"] and w["size"] > 0 for w in lib["wheels"])
    pages_before = len(index.requests_for("/simple/"))
    r = safepip("install", "-r", "pylock.toml")
    assert r.code == 0, r.text
    assert (site_packages(venv) / "lib-1.5.dist-info").is_dir()
    assert not (site_packages(venv) / "lib-1.5.dist-info" / "direct_url.json").exists()
    assert len(index.requests_for("/simple/")) == pages_before  # no index page read


def test_uv_installs_our_pylock(index: LocalIndex, safepip, tmp_path: Path,
                                uv: tuple[str, dict[str, str]]) -> None:
    path = _pylock(index, safepip, tmp_path)
    exe, env = uv
    subprocess.run([exe, "venv", "-q", str(tmp_path / "uvenv")], check=True, env=env)
    subprocess.run([exe, "pip", "install", "-q", "--python", str(tmp_path / "uvenv"), "-r",
                    str(path)], check=True, env=env)
    assert list((tmp_path / "uvenv").glob("lib/python3*/site-packages/lib-1.5.dist-info"))


BAD_LOCKS = {
    "unknown-key": ("lock-version = '1.0'\nsurprise = 1\n[[packages]]\nname = 'lib'\n",
                    "unknown keys ['surprise']"),
    "wrong-version": ("lock-version = '1.0'\n[[packages]]\nname = 'lib'\nversion = '9.9'\n"
                      "wheels = [{name = 'lib-1.5-py3-none-any.whl', url = 'URL', "
                      "hashes = {sha256 = 'SHA'}}]\n", "the wheel lib-1.5-py3-none-any.whl is "
                      "lib 1.5"),
    "md5-only": ("lock-version = '1.0'\n[[packages]]\nname = 'lib'\nversion = '1.5'\n"
                 "wheels = [{name = 'lib-1.5-py3-none-any.whl', url = 'URL', "
                 "hashes = {md5 = 'abc'}}]\n", "has no sha256 (only md5)"),
    "missing-hash": ("lock-version = '1.0'\n[[packages]]\nname = 'lib'\nversion = '1.5'\n"
                     "wheels = [{name = 'lib-1.5-py3-none-any.whl', url = 'URL'}]\n",
                     "a wheel without url (or path) or hashes"),
    "other-host": ("lock-version = '1.0'\n[[packages]]\nname = 'lib'\nversion = '1.5'\n"
                   "index = 'https://private.example/simple/'\n"
                   "wheels = [{name = 'lib-1.5-py3-none-any.whl', "
                   "url = 'https://evil.example/lib-1.5-py3-none-any.whl', "
                   "hashes = {sha256 = 'SHA'}}]\n", "on another host than its index"),
    "plain-http": ("lock-version = '1.0'\n[[packages]]\nname = 'lib'\nversion = '1.5'\n"
                   "index = 'http://mirror.example/simple/'\n"
                   "wheels = [{name = 'lib-1.5-py3-none-any.whl', "
                   "url = 'http://mirror.example/lib-1.5-py3-none-any.whl', "
                   "hashes = {sha256 = 'SHA'}}]\n", "is not an https URL"),
    "duplicated": ("lock-version = '1.0'\n" + ("[[packages]]\nname = 'lib'\nversion = '1.5'\n"
                   "wheels = [{name = 'lib-1.5-py3-none-any.whl', url = 'URL', "
                   "hashes = {sha256 = 'SHA'}}]\n") * 2, "lib is listed twice"),
    "version-2": ("lock-version = '2.0'\n", "lock-version '2.0' is not supported"),
}


def test_bad_pylocks_are_refused(index: LocalIndex, venv: Path, safepip, clean,
                                 tmp_path: Path) -> None:
    w = make_wheel("lib", "1.5")
    index.add(w)
    url = f"{index.base}/files/{w.filename}"
    for case, (text, message) in BAD_LOCKS.items():
        path = tmp_path / f"pylock.{case}.toml"
        path.write_text(text.replace("URL", url).replace("SHA", w.sha256))
        with clean(path):
            r = safepip("install", "-r", str(path))
        assert r.code != 0, case
        assert message in r.err, (case, r.err)
        if "Traceback" in r.err:
            pytest.fail(f"{case}: traceback")


def test_safepip_installs_what_uv_pip_compile_writes(index: LocalIndex, venv: Path, safepip,
                                                     tmp_path: Path,
                                                     uv: tuple[str, dict[str, str]]) -> None:
    """`uv pip compile --generate-hashes` output, installed by safepip (hash-checking)."""
    _uv_compile(uv, index, tmp_path, "--generate-hashes", "-o", "locked.txt")
    assert "--hash=sha256:" in (tmp_path / "locked.txt").read_text()
    r = safepip("install", "-r", "locked.txt")
    assert r.code == 0, r.text
    assert "--hash sha256" in r.err
    assert (site_packages(venv) / "lib-1.5.dist-info").is_dir()


def test_safepip_installs_what_uv_exports_as_pylock(index: LocalIndex, venv: Path, safepip,
                                                    tmp_path: Path,
                                                    uv: tuple[str, dict[str, str]]) -> None:
    """`uv pip compile --format pylock.toml` (PEP 751 from uv), installed by safepip."""
    _uv_compile(uv, index, tmp_path, "--format", "pylock.toml", "-o", "pylock.toml")
    r = safepip("install", "-r", "pylock.toml")
    assert r.code == 0, r.text
    assert (site_packages(venv) / "lib-1.5.dist-info").is_dir()


def test_sync_installs_the_lock_and_removes_the_rest(index: LocalIndex, venv: Path, safepip,
                                                     clean, tmp_path: Path) -> None:
    path = _pylock(index, safepip, tmp_path)
    index.add(make_wheel("stray", "1.0", files={"stray_mod.py": "X = 1\n"}))
    index.add(make_wheel("lib", "1.0"))
    assert safepip("install", "stray", "lib==1.0").code == 0
    sp = site_packages(venv)
    with clean():
        r = safepip("sync", "--dry-run", str(path))
    assert r.code == 0, r.text
    assert "Would remove stray 1.0 (not in the lock)" in r.err
    assert "Would install lib 1.5 (replacing 1.0)" in r.err
    r = safepip("sync", str(path))
    assert r.code == 0, r.text
    assert " - stray 1.0  (removed: not in the lock)" in r.err
    assert not (sp / "stray_mod.py").exists() and not (sp / "stray-1.0.dist-info").exists()
    assert (sp / "lib-1.5.dist-info").is_dir() and (sp / "app-1.0.dist-info").is_dir()
    assert not (sp / "lib-1.0.dist-info").exists()
    r = safepip("sync", str(path))
    assert r.code == 0 and "Nothing to do" in r.err, r.text


def test_sync_keeps_the_installers_and_refuses_loose_requirements(
        index: LocalIndex, venv: Path, safepip, clean, tmp_path: Path) -> None:
    for name in ("pip", "setuptools", "lib"):
        index.add(make_wheel(name, "1.0"))
    assert safepip("install", "pip", "setuptools").code == 0
    req = tmp_path / "requirements.txt"
    req.write_text("lib==1.0\n")
    r = safepip("sync", str(req))
    assert r.code == 0, r.text
    sp = site_packages(venv)
    assert (sp / "pip-1.0.dist-info").is_dir() and (sp / "setuptools-1.0.dist-info").is_dir()
    req.write_text("lib>=1\nother\n")
    with clean(req):
        r = safepip("sync", str(req))
    assert r.code == 2
    assert "sync installs exactly what a lock lists, and these are not pinned with ==:" in r.err
    assert f"lib>=1 ({req}:1)" in r.err


def test_sync_refused_changes_nothing(index: LocalIndex, venv: Path, safepip, clean,
                                      tmp_path: Path) -> None:
    w = make_wheel("lib", "1.5")
    index.add(w)
    index.add(make_wheel("stray", "1.0"))
    assert safepip("install", "stray").code == 0
    req = tmp_path / "requirements.txt"
    req.write_text(f"lib==1.5 --hash=sha256:{'0' * 64}\n")
    with clean(req):
        r = safepip("sync", str(req))
    assert r.code == 1 and "sha256" in r.err


def test_lock_for_another_python_and_platform(index: LocalIndex, safepip,
                                              tmp_path: Path) -> None:
    """--python-version / --platform: tags, markers and Requires-Python of that target."""
    import tomllib

    index.add(make_wheel("app", "1.0", requires=["lib", "winonly; sys_platform == 'win32'"]))
    index.add(make_wheel("lib", "1.0"))
    index.add(make_wheel("lib", "2.0", requires_python=">=3.12"), requires_python=">=3.12")
    index.add(make_wheel("winonly", "1.0", tag="cp312-cp312-win_amd64"))
    r = safepip("lock", "--index-url", index.url, "app")
    assert r.code == 0, r.text
    text = (tmp_path / "requirements.txt").read_text()
    assert "lib==1.0" in text and "winonly" not in text
    r = safepip("lock", "--index-url", index.url, "app", "--python-version", "3.12",
                "--platform", "windows", "-o", "win.txt")
    assert r.code == 0, r.text
    text = (tmp_path / "win.txt").read_text()
    assert "# (resolved for Python 3.12 on win_amd64), by the following command:" in text
    assert "lib==2.0" in text and "winonly==1.0" in text
    r = safepip("lock", "--index-url", index.url, "app", "--python-version", "3.12",
                "--platform", "win_amd64", "-o", "pylock.toml")
    assert r.code == 0, r.text
    data = tomllib.loads((tmp_path / "pylock.toml").read_text())
    assert data["environments"] == ["python_version == '3.12' and sys_platform == 'win32' "
                                    "and platform_machine == 'AMD64'"]
    # a wheel only for Windows does not make a Linux lock
    r = safepip("lock", "--index-url", index.url, "winonly", "--python-version", "3.12",
                "--platform", "manylinux_2_28_x86_64", "-o", "linux.txt")
    assert r.code == 1 and "winonly" in r.err
    assert not (tmp_path / "linux.txt").exists()
    before = tree_hash(tmp_path / "requirements.txt")
    r = safepip("lock", "--index-url", index.url, "app", "--platform", "solaris")
    assert r.code == 2 and "--platform solaris: not a platform safepip knows" in r.err
    assert tree_hash(tmp_path / "requirements.txt") == before


def test_lock_for_several_environments(index: LocalIndex, venv: Path, safepip,
                                       tmp_path: Path, uv: tuple[str, dict[str, str]]) -> None:
    """PEP 751 `environments`: each target resolved on its own, then merged; a package
    only some environments take (or take at another version) carries a marker."""
    import tomllib

    index.add(make_wheel("app", "1.0", requires=["lib", "winonly; sys_platform == 'win32'"]))
    index.add(make_wheel("lib", "1.0"))
    index.add(make_wheel("lib", "2.0", requires_python=">=3.12"), requires_python=">=3.12")
    index.add(make_wheel("winonly", "1.0", tag="py3-none-win_amd64"))
    r = safepip("lock", "--index-url", index.url, "app", "-o", "pylock.toml",
                "--python-version", "3.11", "--python-version", "3.12",
                "--platform", "linux", "--platform", "windows")
    assert r.code == 0, r.text
    assert "Locked 3 packages for 4 environments" in r.err
    data = tomllib.loads((tmp_path / "pylock.toml").read_text())
    assert len(data["environments"]) == 4 and data["requires-python"] == ">=3.11,<3.13"
    by = {(p["name"], p["version"]): p for p in data["packages"]}
    assert "marker" not in by[("app", "1.0")]
    assert by[("lib", "1.0")]["marker"].count("python_version == '3.11'") == 2
    assert "python_version == '3.12'" in by[("lib", "2.0")]["marker"]
    assert "sys_platform == 'win32'" in by[("winonly", "1.0")]["marker"]
    assert "linux" not in by[("winonly", "1.0")]["marker"]
    # this interpreter (3.11 on Linux) takes its own share, without resolving
    r = safepip("install", "-r", "pylock.toml")
    assert r.code == 0, r.text
    sp = site_packages(venv)
    assert (sp / "lib-1.0.dist-info").is_dir() and not (sp / "winonly-1.0.dist-info").exists()
    exe, env = uv
    subprocess.run([exe, "venv", "-q", str(tmp_path / "uvenv")], check=True, env=env)
    subprocess.run([exe, "pip", "install", "-q", "--python", str(tmp_path / "uvenv"), "-r",
                    str(tmp_path / "pylock.toml")], check=True, env=env)
    assert list((tmp_path / "uvenv").glob("lib/python3*/site-packages/lib-1.0.dist-info"))
    r = safepip("lock", "--index-url", index.url, "app", "--platform", "linux",
                "--platform", "windows")
    assert r.code == 2 and "a lock for several environments is a pylock.toml" in r.err
    assert not (tmp_path / "requirements.txt").exists()
