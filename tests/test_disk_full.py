"""threats.md row 30, disk full: a real small filesystem (tmpfs) fills up during the
download or during the install. A clear error, the environment rolled back, no truncated
or cached file: Clean."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import site_packages
from tests.factory import make_wheel
from tests.indexserver import LocalIndex

SMALL = "2m"


@pytest.fixture
def small_fs(tmp_path: Path) -> Path:
    """A 2 MiB tmpfs (root only, as in CI; elsewhere the test is skipped)."""
    path = tmp_path / "small"
    path.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        if os.environ.get("SAFEPIP_REQUIRE_SANDBOX") == "1":
            pytest.fail("the disk-full tests need root to mount a small tmpfs")
        pytest.skip("needs root to mount a small tmpfs")
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL}", "tmpfs", str(path)],
                   check=True)
    yield path  # type: ignore[misc]
    subprocess.run(["umount", "-l", str(path)], check=False)


def _big_wheel(name: str) -> object:
    # incompressible, so that the download itself is larger than the filesystem
    return make_wheel(name, files={f"{name}/__init__.py": "",
                                   f"{name}/blob.bin": os.urandom(3 * 1024 * 1024)})


def test_row30_disk_full_while_downloading(index: LocalIndex, venv: Path, safepip, clean,
                                           small_fs: Path) -> None:
    index.add(_big_wheel("big"))
    cache = small_fs / "cache"
    with clean(cache):
        r = safepip("install", "--cache-dir", str(cache), "big")
    assert r.code == 1, r.text
    assert "no space left on the device while downloading big-1.0-py3-none-any.whl" in r.err
    assert "--cache-dir" in r.err  # the way out
    assert "Traceback" not in r.err
    assert not any(small_fs.rglob("*.part"))
    assert not list(small_fs.iterdir())  # nothing cached, not even the staging directory


def test_row30_disk_full_while_installing(index: LocalIndex, venv: Path, safepip, clean,
                                          small_fs: Path, venv_template: Path) -> None:
    """The environment lies on the full filesystem: an upgrade that cannot be written
    leaves the installed version as it was."""
    index.add(make_wheel("big", "1.0", files={"big/__init__.py": "v = 1\n"}))
    env = small_fs / "venv"
    shutil.copytree(venv_template, env, symlinks=True)
    assert safepip("install", "--python", str(env / "bin" / "python"), "big==1.0").code == 0
    index.add(_big_wheel_version("big", "2.0"))
    with clean(env):
        r = safepip("install", "--python", str(env / "bin" / "python"), "big==2.0")
    assert r.code == 1, r.text
    assert "no space left on the device while installing big-2.0-py3-none-any.whl" in r.err
    assert "nothing was changed" in r.err
    assert "Traceback" not in r.err
    assert (site_packages(env) / "big" / "__init__.py").read_text() == "v = 1\n"
    assert not [p for p in env.iterdir() if p.name.startswith(".safepip-")]


def _big_wheel_version(name: str, version: str) -> object:
    return make_wheel(name, version, files={f"{name}/__init__.py": "v = 2\n",
                                            f"{name}/blob.bin": os.urandom(3 * 1024 * 1024)})


def test_row30_disk_full_while_writing_the_lock(index: LocalIndex, safepip, clean,
                                                small_fs: Path) -> None:
    index.add(make_wheel("lib"))
    lock = small_fs / "requirements.txt"
    lock.write_text("# the old lock\n")
    fd = os.open(small_fs / "filler", os.O_WRONLY | os.O_CREAT)  # fill it to the last block
    with contextlib.suppress(OSError):
        while os.write(fd, b"\0" * 4096):
            pass
    os.close(fd)
    with clean(small_fs):
        r = safepip("lock", "--index-url", index.url, "lib", "-o", str(lock))
    assert r.code == 1, r.text
    assert f"no space left on the device while writing the lock ({lock})" in r.err
    assert "the lock is as it was" in r.err
    assert lock.read_text() == "# the old lock\n"


def test_row30_cache_full_from_the_start(index: LocalIndex, safepip, clean,
                                         small_fs: Path) -> None:
    """A cache directory on a full disk: the first page written to it fails; the message
    is the same plain one (not an internal error), and nothing is left there."""
    index.add(make_wheel("lib"))
    cache = small_fs / "cache"
    fd = os.open(small_fs / "filler", os.O_WRONLY | os.O_CREAT)
    with contextlib.suppress(OSError):
        while os.write(fd, b"\0" * 4096):
            pass
    os.close(fd)
    with clean(cache):
        r = safepip("lock", "--index-url", index.url, "--cache-dir", str(cache), "lib",
                    "-o", str(small_fs.parent / "requirements.txt"))
    assert r.code == 1, r.text
    assert "no space left on the device" in r.err and "internal error" not in r.err
    assert not (small_fs.parent / "requirements.txt").exists()
    assert sorted(p.name for p in small_fs.iterdir()) == ["filler"]
