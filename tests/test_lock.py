"""``safepip lock``: hash-pinned requirements.txt that pip and safepip install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
