"""Where safepip installs: venv discovery, --system and PEP 668, --user, --prefix, locking."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from safepip import locate
from safepip import target as target_mod
from safepip._record import replace
from tests.conftest import run, site_packages
from tests.factory import make_wheel
from tests.indexserver import LocalIndex


def test_python_flag_with_env_dir(index: LocalIndex, venv: Path, safepip,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIRTUAL_ENV")
    index.add(make_wheel("lib"))
    r = safepip("install", "--python", str(venv), "lib")
    assert r.code == 0, r.text
    assert (site_packages(venv) / "lib-1.0.dist-info").is_dir()


def test_bad_virtual_env(index: LocalIndex, safepip, tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTUAL_ENV", str(tmp_path / "nope"))
    r = safepip("install", "lib")
    assert r.code == 1
    assert "holds no Python interpreter" in r.err


def test_base_interpreter_is_not_a_venv(index: LocalIndex, safepip) -> None:
    base = getattr(sys, "_base_executable", sys.executable)
    r = safepip("install", "--python", base, "lib")
    assert r.code == 1
    assert "is not a virtual environment's interpreter" in r.err
    assert "--system" in r.err


def _fake_system(monkeypatch: pytest.MonkeyPatch, venv: Path, stdlib: Path) -> None:
    """Make the probe report ``venv`` as a system interpreter whose stdlib is ``stdlib``."""
    real = target_mod.probe

    def probe(exe: str, cache: object = None) -> target_mod.Interpreter:
        interp = real(exe)
        return replace(interp, base_prefix=interp.prefix, stdlib=str(stdlib))

    monkeypatch.setattr(target_mod, "probe", probe)
    monkeypatch.setattr(locate, "_which", lambda name: str(venv / "bin" / "python"))


def test_pep668_externally_managed(index: LocalIndex, venv: Path, safepip, clean,
                                   monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stdlib = tmp_path / "stdlib"
    stdlib.mkdir()
    (stdlib / "EXTERNALLY-MANAGED").write_text("[externally-managed]\nError=use apt\n")
    _fake_system(monkeypatch, venv, stdlib)
    monkeypatch.delenv("VIRTUAL_ENV")
    index.add(make_wheel("lib"))
    with clean():
        r = safepip("install", "--system", "lib")
    assert r.code == 1
    assert "externally managed (PEP 668" in r.err
    assert "--break-system-packages" in r.err
    r = safepip("install", "--system", "--break-system-packages", "lib")
    assert r.code == 0, r.text
    assert (site_packages(venv) / "lib-1.0.dist-info").is_dir()


def test_prefix_and_user(index: LocalIndex, venv: Path, safepip, tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    index.add(make_wheel("lib", entry_points={"console_scripts": {"libcli": "lib:main"}}))
    prefix = tmp_path / "pfx"
    r = safepip("install", "--prefix", str(prefix), "lib")
    assert r.code == 0, r.text
    assert list(prefix.glob("lib/python3*/site-packages/lib/__init__.py"))
    assert (prefix / "bin" / "libcli").exists()
    r = safepip("install", "--user", "lib")
    assert r.code == 1
    assert "--user cannot be used inside a virtual environment" in r.err


def test_python_dash_m(index: LocalIndex, venv: Path) -> None:
    index.add(make_wheel("lib"))
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-m", "safepip", "install", "-q", "-i", index.url,
                          "lib"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert (site_packages(venv) / "lib-1.0.dist-info").is_dir()


def test_version_and_help() -> None:
    out = subprocess.run([sys.executable, "-m", "safepip", "--version"], capture_output=True,
                         text=True)
    assert out.stdout.startswith("safepip ")
    r = run()
    assert r.code == 2 and "install" in r.err
    out = subprocess.run([sys.executable, "-m", "safepip", "install", "--help"],
                         capture_output=True, text=True)
    assert "--require-hashes" in out.stdout and "examples:" in out.stdout


def test_row28_second_install_waits_for_the_first(index: LocalIndex, venv: Path) -> None:
    index.add(make_wheel("lib"))
    fd = os.open(venv, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "safepip", "install", "-i", index.url,
                                 "lib"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        time.sleep(3)  # long enough for the install to have finished, were it not waiting
        assert proc.poll() is None, "the second install did not wait"
        assert not (site_packages(venv) / "lib-1.0.dist-info").exists()
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "waiting for another safepip" in err
    assert (site_packages(venv) / "lib-1.0.dist-info").is_dir()


def test_interpreter_facts_are_cached_by_fingerprint(index: LocalIndex, venv: Path, safepip,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe subprocess runs once; a changed pyvenv.cfg (a rebuilt venv) runs it again."""
    calls: list[str] = []
    real = target_mod._run_probe

    def counting(exe: str) -> dict[str, object]:
        calls.append(exe)
        return real(exe)

    monkeypatch.setattr(target_mod, "_run_probe", counting)
    index.add(make_wheel("lib"))
    assert safepip("install", "--dry-run", "lib").code == 0
    assert safepip("install", "--dry-run", "lib").code == 0
    assert len(calls) == 1
    cfg = venv / "pyvenv.cfg"
    cfg.write_text(cfg.read_text() + "\n")
    assert safepip("install", "--dry-run", "lib").code == 0
    assert len(calls) == 2


def test_probe_started_ahead_is_taken_over(index: LocalIndex, venv: Path, safepip,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The command starts the probe before the imports; the run waits for that one
    instead of starting another, and cached facts start none at all."""
    spawned: list[str] = []
    real = target_mod._spawn_probe

    def counting(exe: str) -> object:
        spawned.append(exe)
        return real(exe)

    monkeypatch.setattr(target_mod, "_spawn_probe", counting)
    index.add(make_wheel("lib"))
    assert safepip("install", "--dry-run", "lib").code == 0
    assert spawned == [str(venv / "bin" / "python")]
    assert target_mod._started == {}  # taken over by the run
    assert safepip("install", "--dry-run", "lib").code == 0
    assert safepip("lock", "lib", "-o", "req.txt").code == 0
    assert len(spawned) == 1  # the facts were cached


def test_a_probe_started_for_nothing_is_harmless(venv: Path) -> None:
    target_mod.start_probe(str(venv / "bin" / "python"))
    target_mod.start_probe(str(venv / "bin" / "python"))  # once per interpreter
    assert len(target_mod._started) == 1
    assert target_mod.probe(str(venv / "bin" / "python")).version.startswith("3.")
    assert target_mod._started == {}


def test_facts_of_the_running_interpreter_are_read_here(venv: Path) -> None:
    """safepip's own interpreter and environment is not started again to be asked: what
    it reads in-process must be what the isolated probe says, field for field; another
    environment of the same binary (the venv fixture, the base interpreter) is probed."""
    import sys

    assert target_mod.is_running(sys.executable)
    assert target_mod._facts_here(sys.executable) == target_mod._run_probe(sys.executable)
    assert not target_mod.is_running(str(venv / "bin" / "python"))
    assert not target_mod.is_running(os.path.join(sys.base_prefix, "bin", "python3"))


def test_probe_markers_are_packagings(venv: Path) -> None:
    """The probe writes PEP 508's environment out instead of importing packaging.markers:
    it must say exactly what packaging.markers.default_environment() says there."""
    import json
    import subprocess

    import packaging

    from safepip.target import _run_probe

    facts = _run_probe(str(venv / "bin" / "python"))
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(packaging.__file__)))
    expected = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-S", "-c",
         "import json, sys; sys.path.insert(0, sys.argv[1]); "
         "from packaging.markers import default_environment; "
         "print(json.dumps(default_environment()))", pkg_parent],
        capture_output=True, text=True, check=True).stdout
    assert facts["markers"] == json.loads(expected)


def test_which_finds_what_shutil_finds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """locate's PATH search (shutil is not imported on a memo's answer) agrees with it."""
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
    (a / "tool").write_text("")  # not executable: skipped
    (a / "sub").mkdir()  # a directory: skipped
    (b / "tool").write_text("#!/bin/sh\n")
    (b / "tool").chmod(0o755)
    (b / "sub").write_text("")
    (b / "sub").chmod(0o755)
    monkeypatch.setenv("PATH", os.pathsep.join([str(a), str(b)]))
    for name in ("tool", "sub", "absent", str(b / "tool"), str(a / "tool")):
        assert locate._which(name) == shutil.which(name), name
