"""``--find-links`` / ``-f``: local directories, files and pages of links, as pip reads them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import site_packages
from tests.factory import make_sdist, make_wheel
from tests.indexserver import LocalIndex


def _put(directory: Path, *built) -> Path:  # type: ignore[no-untyped-def]
    directory.mkdir(parents=True, exist_ok=True)
    for b in built:
        (directory / b.filename).write_bytes(b.data)
    return directory


def _version(venv: Path, name: str) -> str:
    (dist,) = site_packages(venv).glob(f"{name}-*.dist-info")
    return dist.name[len(name) + 1:-len(".dist-info")]


def test_air_gapped_install_from_a_directory(venv: Path, safepip, tmp_path: Path) -> None:
    """pip's offline recipe: --no-index -f DIR, dependencies found there too."""
    wheels = _put(tmp_path / "wheels", make_wheel("app", requires=["lib>=1"]),
                  make_wheel("lib", "1.0"), make_wheel("lib", "2.0"))
    (wheels / "README.txt").write_text("not a distribution\n")
    r = safepip("install", "--no-index", "-f", str(wheels), "app", "--report", "-",
                use_index=False)
    assert r.code == 0, r.text
    assert _version(venv, "lib") == "2.0"
    report = json.loads(r.out)
    urls = {i["metadata"]["name"]: i["download_info"]["url"] for i in report["install"]}
    assert urls["lib"] == (wheels / "lib-2.0-py3-none-any.whl").as_uri()


def test_find_links_join_the_index(index: LocalIndex, venv: Path, safepip,
                                   tmp_path: Path) -> None:
    """The best version among the index's and the directory's files wins (pip, uv)."""
    index.add(make_wheel("lib", "1.0"))
    index.add(make_wheel("lib", "3.0"))
    wheels = _put(tmp_path / "wheels", make_wheel("lib", "2.0"))
    assert safepip("install", "-f", str(wheels), "lib").code == 0
    assert _version(venv, "lib") == "3.0"
    r = safepip("install", "-f", wheels.as_uri(), "lib==2.0")
    assert r.code == 0, r.text
    assert _version(venv, "lib") == "2.0"


def test_find_links_file_and_requirements_file(venv: Path, safepip, tmp_path: Path) -> None:
    """A single file, and ``--find-links`` in a requirements file, relative to it."""
    project = tmp_path / "project"
    _put(project / "vendor", make_wheel("lib", "1.0"))
    (project / "requirements.txt").write_text("--no-index\n--find-links vendor\nlib\n")
    r = safepip("install", "-r", str(project / "requirements.txt"), use_index=False)
    assert r.code == 0, r.text
    assert _version(venv, "lib") == "1.0"
    single = _put(tmp_path / "one", make_wheel("other", "1.5")) / "other-1.5-py3-none-any.whl"
    r = safepip("install", "--no-index", "-f", str(single), "other", use_index=False)
    assert r.code == 0, r.text
    assert _version(venv, "other") == "1.5"


def test_find_links_page_over_http(index: LocalIndex, venv: Path, safepip,
                                   tmp_path: Path) -> None:
    """An HTML page of links; a #sha256 fragment is checked like an index's hash."""
    good = make_wheel("lib", "1.0")
    index.add(good)  # serves /files/lib-1.0-py3-none-any.whl
    page = (f'<a href="/files/{good.filename}#sha256={good.sha256}">{good.filename}</a>\n'
            '<a href="/files/notes.txt">notes</a>\n').encode()
    index.raw_pages["/links/"] = ("text/html", page)
    r = safepip("install", "--no-index", "-f", f"{index.base}/links/", "lib",
                use_index=False)
    assert r.code == 0, r.text
    assert _version(venv, "lib") == "1.0"


def test_find_links_page_hash_mismatch_is_refused(index: LocalIndex, venv: Path, safepip,
                                                  clean, tmp_path: Path) -> None:
    good = make_wheel("lib", "1.0")
    index.add(good)
    page = f'<a href="/files/{good.filename}#sha256={"0" * 64}">x</a>'.encode()
    index.raw_pages["/links/"] = ("text/html", page)
    with clean():
        r = safepip("install", "--no-index", "-f", f"{index.base}/links/", "lib",
                    use_index=False)
    assert r.code == 1
    assert good.sha256 in r.err and "0" * 64 in r.err


def test_find_links_serve_build_requirements_too(venv: Path, safepip, clean,
                                                 tmp_path: Path) -> None:
    """An sdist found through -f is built like any other (in the sandbox), and its build
    requirements are looked for in the same places: here they are not there."""
    sdists = _put(tmp_path / "sdists", make_sdist("lib", "1.0"))
    with clean():
        r = safepip("install", "--no-index", "-f", str(sdists), "lib", use_index=False)
    assert r.code == 1
    assert "setuptools was not found on any index (no index configured; nor in " \
           f"--find-links {sdists})" in r.err


def test_missing_find_links_location_is_a_warning(index: LocalIndex, venv: Path, safepip,
                                                  tmp_path: Path) -> None:
    index.add(make_wheel("lib"))
    r = safepip("install", "-f", str(tmp_path / "nowhere"), "lib")
    assert r.code == 0, r.text
    assert "find-links location" in r.err and "does not exist" in r.err


def test_no_index_without_find_links_finds_nothing(venv: Path, safepip, clean) -> None:
    with clean():
        r = safepip("install", "--no-index", "lib", use_index=False)
    assert r.code == 1
    assert "lib" in r.err


def test_lock_with_find_links_installs_anywhere(venv: Path, safepip, tmp_path: Path,
                                                venv_template: Path) -> None:
    """The lock hashes the directory's files (no index gave hashes), names the location
    relative to itself, and still installs after the lock and the files move."""
    import shutil

    project = tmp_path / "project"
    _put(project / "wheels", make_wheel("app", requires=["lib"]), make_wheel("lib", "2.0"))
    out = project / "locks" / "requirements.txt"
    out.parent.mkdir()
    r = safepip("lock", "--no-index", "-f", str(project / "wheels"), "app", "-o", str(out))
    assert r.code == 0, r.text
    text = out.read_text()
    assert "--no-index\n--find-links ../wheels\n" in text
    lib = make_wheel("lib", "2.0")
    assert f"--hash=sha256:{lib.sha256}" in text
    r = safepip("lock", "--no-index", "-f", str(project / "wheels"), "app",
                "-o", str(project / "pylock.toml"))
    assert r.code == 0, r.text
    assert 'path = "wheels/lib-2.0-py3-none-any.whl"' in (project / "pylock.toml").read_text()
    moved = tmp_path / "elsewhere"
    shutil.move(str(project), str(moved))
    for lock in (moved / "locks" / "requirements.txt", moved / "pylock.toml"):
        shutil.rmtree(venv)
        shutil.copytree(venv_template, venv, symlinks=True)
        r = safepip("install", "-r", str(lock), use_index=False)
        assert r.code == 0, (lock, r.text)
        assert _version(venv, "lib") == "2.0"


def test_lock_hashes_files_an_index_lists_without_hashes(index: LocalIndex, safepip,
                                                         tmp_path: Path) -> None:
    """Every file of the pinned version is hashed (downloaded), as pip-compile does;
    never a pin without --hash."""
    w1, w2 = make_wheel("lib", "1.0"), make_wheel("lib", "1.0", tag="py311-none-any")
    index.add(w1)
    index.add(w2)
    index.raw_pages["/simple/lib/"] = ("text/html", (
        f'<a href="../../files/{w1.filename}">{w1.filename}</a>\n'
        f'<a href="../../files/{w2.filename}">{w2.filename}</a>\n').encode())
    out = tmp_path / "requirements.txt"
    r = safepip("lock", "--index-url", index.url, "lib", "-o", str(out))
    assert r.code == 0, r.text
    text = out.read_text()
    assert f"--hash=sha256:{w1.sha256}" in text and f"--hash=sha256:{w2.sha256}" in text


def _find_links_locks(safepip, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    project = tmp_path / "project"
    _put(project / "wheels", make_wheel("app", requires=["lib"]), make_wheel("lib", "2.0"))
    (project / "locks").mkdir()
    for out in ("locks/requirements.txt", "pylock.toml"):
        r = safepip("lock", "--no-index", "-f", str(project / "wheels"), "app",
                    "-o", str(project / out))
        assert r.code == 0, r.text
    return project


def test_pip_and_uv_install_a_find_links_lock(safepip, tmp_path: Path, uv) -> None:
    """Our find-links locks, read by the other tools from another working directory:
    pip (hash-checking mode) and uv the requirements.txt, uv the pylock.toml's paths."""
    import os
    import subprocess
    import sys

    project = _find_links_locks(safepip, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--require-hashes",
                    "--target", str(tmp_path / "pip-target"), "-r",
                    str(project / "locks" / "requirements.txt")], check=True, env=env,
                   cwd=elsewhere)
    assert (tmp_path / "pip-target" / "lib-2.0.dist-info").is_dir()
    exe, uv_env = uv
    for lock in (project / "locks" / "requirements.txt", project / "pylock.toml"):
        venv = tmp_path / f"uv-{lock.suffix[1:]}"
        subprocess.run([exe, "venv", "-q", str(venv)], check=True, env=uv_env, cwd=elsewhere)
        subprocess.run([exe, "pip", "install", "-q", "--python", str(venv), "-r", str(lock)],
                       check=True, env=uv_env, cwd=elsewhere)
        assert list(venv.glob("lib/python3*/site-packages/lib-2.0.dist-info")), lock


def test_find_links_page_that_fails_is_refused(index: LocalIndex, venv: Path, safepip,
                                               clean) -> None:
    import socket

    index.add(make_wheel("lib"))
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/links/"
    for url, message in ((f"{index.base}/links/", "the find-links page answered HTTP 404"),
                         (closed, "the find-links page cannot be read: cannot connect")):
        with clean():
            r = safepip("install", "-f", url, "lib")
        assert r.code == 1
        assert message in r.err, r.err
        assert "check the --find-links URL" in r.err
