"""Fixtures: an isolated environment, a venv per test, a local index, and "Clean"."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from safepip.cli import main
from tests.indexserver import LocalIndex


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No pip configuration, no PIP_* variables, no user home, a fresh cache."""
    for key in list(os.environ):
        if key.startswith(("PIP_", "SAFEPIP_")) or key in ("VIRTUAL_ENV", "CONDA_PREFIX"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("SAFEPIP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SAFEPIP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def venv_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(path)], check=True)
    return path


@pytest.fixture
def venv(venv_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty virtual environment, activated (VIRTUAL_ENV)."""
    path = tmp_path / "venv"
    shutil.copytree(venv_template, path, symlinks=True)
    monkeypatch.setenv("VIRTUAL_ENV", str(path))
    return path


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


@pytest.fixture
def index() -> LocalIndex:
    idx = LocalIndex().start()
    yield idx  # type: ignore[misc]
    idx.stop()


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def run(*args: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def safepip(index: LocalIndex) -> object:
    """Run ``safepip`` in-process against the local index."""

    def _run(*args: str, use_index: bool = True) -> Result:
        argv = list(args)
        if use_index and argv and argv[0] in ("install", "sync") and "--index-url" not in argv and (
                "-i" not in argv):
            argv[1:1] = ["--index-url", index.url]
        return run(*argv)

    return _run


def tree_hash(*roots: Path) -> dict[str, str]:
    """Every file, directory and link under ``roots`` with its content hash: "Clean"."""
    out: dict[str, str] = {}
    for root in roots:
        if not root.exists():
            out[str(root)] = "absent"
            continue
        for dirpath, dirs, files in os.walk(root):
            for d in dirs:
                p = os.path.join(dirpath, d)
                out[p] = "link:" + os.readlink(p) if os.path.islink(p) else "dir"
            for f in files:
                p = os.path.join(dirpath, f)
                if os.path.islink(p):
                    out[p] = "link:" + os.readlink(p)
                else:
                    with open(p, "rb") as fh:
                        out[p] = hashlib.sha256(fh.read()).hexdigest()
    return out


@pytest.fixture
def clean(venv: Path, tmp_path: Path) -> object:
    """``with clean():`` asserts the venv and the cache are byte-identical afterwards."""

    @contextlib.contextmanager
    def _clean(*extra: Path):  # type: ignore[no-untyped-def]
        roots = (venv, tmp_path / "cache", tmp_path / "data", *extra)
        before = tree_hash(*roots)
        yield
        after = tree_hash(*roots)
        assert after == before, "not Clean: " + str(
            sorted(set(after.items()) ^ set(before.items()))[:10])

    return _clean


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("SAFEPIP_RUN_NETWORK") == "1":
        return
    if config.getoption("-m"):
        return
    skip = pytest.mark.skip(reason="network test: set SAFEPIP_RUN_NETWORK=1 or use -m network")
    for item in items:
        if "network" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def uv(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """uv and a clean environment for it (uv comes with the test extras, so CI has it)."""
    import shutil

    found = shutil.which("uv", path=os.path.dirname(sys.executable)) or shutil.which("uv")
    if found is None:
        if os.environ.get("CI") or os.environ.get("SAFEPIP_REQUIRE_SANDBOX") == "1":
            pytest.fail("uv is required in CI (it is in the test extras)")
        pytest.skip("uv is not installed in this environment")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
    env.update(UV_NO_CONFIG="1", UV_CACHE_DIR=str(tmp_path / "uvcache"))
    return found, env
