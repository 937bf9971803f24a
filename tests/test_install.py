"""End-to-end installs from the local index: the things a pip user expects."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run, site_packages, tree_hash
from tests.factory import make_sdist, make_wheel
from tests.indexserver import LocalIndex


def py(venv: Path, code: str) -> str:
    return subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True,
                          text=True, check=True).stdout.strip()


def test_installs_with_dependencies(index: LocalIndex, venv: Path, safepip) -> None:
    index.add(make_wheel("app", "1.0", requires=["lib>=1.0"]))
    index.add(make_wheel("lib", "1.0"))
    index.add(make_wheel("lib", "2.0"))
    r = safepip("install", "app")
    assert r.code == 0, r.text
    sp = site_packages(venv)
    assert (sp / "app-1.0.dist-info").is_dir()
    assert (sp / "lib-2.0.dist-info").is_dir()
    assert (sp / "app-1.0.dist-info" / "INSTALLER").read_text() == "safepip\n"
    assert (sp / "app-1.0.dist-info" / "REQUESTED").exists()
    assert not (sp / "lib-2.0.dist-info" / "REQUESTED").exists()
    assert py(venv, "import lib; print(lib.__version__)") == "2.0"
    assert "Installed 2 packages" in r.err
    assert "sha256 ✓" in r.err
    # no staging or backup directories are left behind
    assert not list(venv.glob(".safepip-*"))


def test_html_index_and_range_metadata(index: LocalIndex, venv: Path, safepip) -> None:
    index.format = "html"
    index.add(make_wheel("app", "1.0", requires=["lib"]), core_metadata=False)
    index.add(make_wheel("lib", "1.0"), core_metadata=False)
    r = safepip("install", "app", "-v")
    assert r.code == 0, r.text
    assert (site_packages(venv) / "lib-1.0.dist-info").is_dir()
    # the metadata came from range requests, not whole downloads
    assert "'range': 2" in r.err
    ranged = [h for p, h in index.log if p.startswith("/files/") and "Range" in h]
    assert ranged


def test_extras_and_markers(index: LocalIndex, venv: Path, safepip) -> None:
    index.add(make_wheel("app", "1.0", requires=['winonly; sys_platform == "win32"'],
                         extras={"fast": ["speedup>=2"]}))
    index.add(make_wheel("speedup", "2.1"))
    index.add(make_wheel("winonly", "1.0"))
    r = safepip("install", "app[fast]")
    assert r.code == 0, r.text
    sp = site_packages(venv)
    assert (sp / "speedup-2.1.dist-info").is_dir()
    assert not (sp / "winonly-1.0.dist-info").exists()


def test_requires_python_and_tags_filter(index: LocalIndex, venv: Path, safepip) -> None:
    index.add(make_wheel("lib", "1.0"))
    index.add(make_wheel("lib", "2.0"), requires_python=">=3.99")
    index.add(make_wheel("lib", "3.0", tag="cp27-cp27m-win32"))
    r = safepip("install", "lib")
    assert r.code == 0, r.text
    assert (site_packages(venv) / "lib-1.0.dist-info").is_dir()


def test_yanked_skipped_unless_pinned(index: LocalIndex, venv: Path, safepip) -> None:
    index.add(make_wheel("lib", "1.0"))
    index.add(make_wheel("lib", "2.0"), yanked="broken")
    r = safepip("install", "lib")
    assert r.code == 0, r.text
    assert (site_packages(venv) / "lib-1.0.dist-info").is_dir()
    r = safepip("install", "lib==2.0")
    assert r.code == 0, r.text
    assert (site_packages(venv) / "lib-2.0.dist-info").is_dir()
    assert not (site_packages(venv) / "lib-1.0.dist-info").exists()


def test_range_matching_only_yanked_is_refused(index: LocalIndex, venv: Path, safepip,
                                               clean) -> None:
    index.add(make_wheel("lib", "1.0"))
    index.add(make_wheel("lib", "2.0"), yanked=True)
    with clean():
        r = safepip("install", "lib>=2")
    assert r.code == 1
    assert "no version of lib satisfies" in r.err
    assert "lib 2.0 is yanked" in r.err


def test_prereleases(index: LocalIndex, venv: Path, safepip) -> None:
    index.add(make_wheel("lib", "1.0"))
    index.add(make_wheel("lib", "2.0b1"))
    assert safepip("install", "lib").code == 0
    assert (site_packages(venv) / "lib-1.0.dist-info").is_dir()
    assert safepip("install", "--pre", "-U", "lib").code == 0
    assert (site_packages(venv) / "lib-2.0b1.dist-info").is_dir()


def test_keep_installed_and_upgrade(index: LocalIndex, venv: Path, safepip) -> None:
    index.add(make_wheel("lib", "1.0", files={"lib/__init__.py": "v = 1\n",
                                                "lib/old_only.py": ""}))
    assert safepip("install", "lib").code == 0
    index.add(make_wheel("lib", "2.0", files={"lib/__init__.py": "v = 2\n"}))
    r = safepip("install", "lib")
    assert r.code == 0
    assert "Nothing to do" in r.err
    sp = site_packages(venv)
    assert (sp / "lib-1.0.dist-info").is_dir()
    r = safepip("install", "-U", "lib")
    assert r.code == 0, r.text
    assert (sp / "lib-2.0.dist-info").is_dir()
    assert not (sp / "lib-1.0.dist-info").exists()
    assert not (sp / "lib" / "old_only.py").exists()
    assert py(venv, "import lib; print(lib.v)") == "2"


def test_console_scripts(index: LocalIndex, venv: Path, safepip) -> None:
    index.add(make_wheel("tool", "1.0", files={"tool/__init__.py": "def main():\n print('hi')\n"},
                         entry_points={"console_scripts": {"tool-cli": "tool:main"}}))
    assert safepip("install", "tool").code == 0
    script = venv / "bin" / "tool-cli"
    assert script.read_text().startswith(f"#!{venv}/bin/python")
    out = subprocess.run([str(script)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "hi"


def test_requirements_and_constraints_files(index: LocalIndex, venv: Path, safepip,
                                            tmp_path: Path) -> None:
    for v in ("1.0", "2.0", "3.0"):
        index.add(make_wheel("lib", v))
    index.add(make_wheel("other", "1.0"))
    (tmp_path / "base.txt").write_text("other  # a comment\n")
    (tmp_path / "requirements.txt").write_text(
        "# top\n-r base.txt\nlib \\\n  >=1.0\n")
    (tmp_path / "constraints.txt").write_text("lib<3\n")
    r = safepip("install", "-r", "requirements.txt", "-c", "constraints.txt")
    assert r.code == 0, r.text
    sp = site_packages(venv)
    assert (sp / "lib-2.0.dist-info").is_dir()
    assert (sp / "other-1.0.dist-info").is_dir()


def test_dry_run_report(index: LocalIndex, venv: Path, safepip, tmp_path: Path) -> None:
    index.add(make_wheel("app", "1.0", requires=["lib"]))
    index.add(make_wheel("lib", "1.5"))
    report = tmp_path / "out.json"
    before = tree_hash(venv)
    r = safepip("install", "--dry-run", "--report", str(report), "app[x]")
    assert r.code == 0, r.text
    assert "Would install app 1.0" in r.err
    assert tree_hash(venv) == before  # a dry run changes nothing in the environment
    data = json.loads(report.read_text())
    assert data["version"] == "1"
    names = {i["metadata"]["name"]: i for i in data["install"]}
    assert set(names) == {"app", "lib"}
    assert names["app"]["requested"] is True
    assert names["lib"]["requested"] is False
    assert names["app"]["requested_extras"] == ["x"]
    assert names["lib"]["download_info"]["archive_info"]["hashes"]["sha256"]
    assert data["environment"]["python_version"].startswith("3.")


def test_target_directory(index: LocalIndex, safepip, tmp_path: Path) -> None:
    index.add(make_wheel("lib", "1.0"))
    r = safepip("install", "--target", str(tmp_path / "out"), "lib")
    assert r.code == 0, r.text
    assert (tmp_path / "out" / "lib" / "__init__.py").exists()


def test_no_deps(index: LocalIndex, venv: Path, safepip) -> None:
    index.add(make_wheel("app", "1.0", requires=["lib"]))
    r = safepip("install", "--no-deps", "app")
    assert r.code == 0, r.text
    assert not list(site_packages(venv).glob("lib-*"))


def test_local_wheel_path(index: LocalIndex, venv: Path, safepip, tmp_path: Path) -> None:
    w = make_wheel("local-thing", "0.3")
    p = tmp_path / w.filename
    p.write_bytes(w.data)
    r = safepip("install", str(p))
    assert r.code == 0, r.text
    di = site_packages(venv) / "local_thing-0.3.dist-info"
    assert json.loads((di / "direct_url.json").read_text())["url"] == p.as_uri()


def test_second_install_uses_cache(index: LocalIndex, venv: Path, safepip, tmp_path: Path,
                                   venv_template: Path) -> None:
    index.add(make_wheel("lib", "1.0"))
    assert safepip("install", "lib").code == 0
    before = len(index.requests_for("/files/lib-1.0-py3-none-any.whl"))
    import shutil

    shutil.rmtree(venv)
    shutil.copytree(venv_template, venv, symlinks=True)
    r = safepip("install", "lib")
    assert r.code == 0, r.text
    assert "1 from cache" in r.err
    assert len(index.requests_for("/files/lib-1.0-py3-none-any.whl")) == before


def test_sdist_with_unavailable_build_requirements(index: LocalIndex, venv: Path, safepip,
                                                   clean) -> None:
    # a legacy sdist needs setuptools, which this index does not have; its setup.py
    # would fail loudly if anything ran it on the host
    index.add(make_sdist("srconly", "1.0"))
    with clean():
        r = safepip("install", "srconly")
    assert r.code == 1
    assert "building srconly failed: its build requirements cannot be installed" in r.err
    assert "setuptools" in r.err


def test_no_venv_is_a_clear_error(index: LocalIndex, safepip, tmp_path: Path) -> None:
    r = safepip("install", "lib")
    assert r.code == 1
    assert "no virtual environment found" in r.err
    assert "python3 -m venv .venv" in r.err


def test_dot_venv_is_found(index: LocalIndex, venv_template: Path, tmp_path: Path,
                           safepip) -> None:
    import shutil

    shutil.copytree(venv_template, tmp_path / ".venv", symlinks=True)
    (tmp_path / "sub").mkdir()
    index.add(make_wheel("lib", "1.0"))
    import os

    os.chdir(tmp_path / "sub")
    r = safepip("install", "lib")
    assert r.code == 0, r.text
    assert (site_packages(tmp_path / ".venv") / "lib-1.0.dist-info").is_dir()


@pytest.mark.parametrize("fmt", ["json", "html"])
def test_conflict_message_names_both_sides(index: LocalIndex, venv: Path, safepip, fmt: str,
                                           clean) -> None:
    index.format = fmt
    index.add(make_wheel("a", "1.0", requires=["lib>=2"]))
    index.add(make_wheel("b", "1.0", requires=["lib<2"]))
    index.add(make_wheel("lib", "1.0"))
    index.add(make_wheel("lib", "2.0"))
    with clean():
        r = safepip("install", "a", "b")
    assert r.code == 1
    assert "lib>=2 (required by a 1.0)" in r.err
    assert "lib<2 (required by b 1.0)" in r.err


def test_unknown_project(index: LocalIndex, venv: Path, safepip, clean) -> None:
    with clean():
        r = safepip("install", "does-not-exist")
    assert r.code == 1
    assert "does-not-exist was not found on any index" in r.err


def test_backtracking(index: LocalIndex, venv: Path, safepip) -> None:
    # newest app needs lib>=3 which does not exist for this python; resolver backtracks
    index.add(make_wheel("app", "2.0", requires=["lib>=3"]))
    index.add(make_wheel("app", "1.0", requires=["lib>=1"]))
    index.add(make_wheel("lib", "1.0"))
    index.add(make_wheel("lib", "3.0"), requires_python="<3")
    r = safepip("install", "app")
    assert r.code == 0, r.text
    sp = site_packages(venv)
    assert (sp / "app-1.0.dist-info").is_dir()


def test_broken_dependency_is_warned(index: LocalIndex, venv: Path, safepip) -> None:
    index.add(make_wheel("app", "1.0", requires=["lib<2"]))
    index.add(make_wheel("lib", "1.0"))
    index.add(make_wheel("lib", "2.0"))
    assert safepip("install", "app").code == 0
    r = safepip("install", "lib==2.0")
    assert r.code == 0, r.text
    assert "app 1.0 requires lib<2, but lib 2.0 is installed" in r.err


def test_server_errors_are_retried(index: LocalIndex, venv: Path, safepip) -> None:
    index.add(make_wheel("lib"))
    index.fail_next["/simple/lib/"] = 2
    r = safepip("install", "lib")
    assert r.code == 0, r.text
    assert len(index.requests_for("/simple/lib/")) == 3


def test_no_cache_leaves_no_cache(index: LocalIndex, venv: Path, safepip,
                                  tmp_path: Path) -> None:
    index.add(make_wheel("lib"))
    r = safepip("install", "--no-cache", "lib")
    assert r.code == 0, r.text
    assert not (tmp_path / "cache").exists()


def test_corrupt_cache_entries_are_not_trusted(index: LocalIndex, venv: Path, safepip,
                                               tmp_path: Path, venv_template: Path) -> None:
    import shutil

    w = make_wheel("lib", files={"lib/__init__.py": "v = 'good'\n"})
    index.add(w)
    assert safepip("install", "lib").code == 0
    cache = tmp_path / "cache"
    blob = cache / "blobs" / "sha256" / w.sha256[:2] / w.sha256[2:]
    assert blob.is_file()
    blob.write_bytes(b"corrupted")  # a damaged blob ...
    unpacked = cache / "unpacked" / w.sha256 / "lib" / "__init__.py"
    unpacked.write_text("v = 'evil'\n")  # ... and a tampered unpacked copy
    shutil.rmtree(venv)
    shutil.copytree(venv_template, venv, symlinks=True)
    r = safepip("install", "lib")
    assert r.code == 0, r.text
    assert py(venv, "import lib; print(lib.v)") == "good"
    # both were replaced by good copies
    import hashlib

    assert hashlib.sha256(blob.read_bytes()).hexdigest() == w.sha256
    assert unpacked.read_text() == "v = 'good'\n"


def test_metadata_from_the_whole_wheel(index: LocalIndex, venv: Path, safepip,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from safepip.index import metadata

    def no_ranges(self, dist):  # type: ignore[no-untyped-def]
        raise metadata.NetworkError(dist.url, "range requests not supported")

    monkeypatch.setattr(metadata.MetadataFetcher, "_by_range", no_ranges)
    index.add(make_wheel("app", requires=["lib"]), core_metadata=False)
    index.add(make_wheel("lib"), core_metadata=False)
    r = safepip("install", "app", "-v")
    assert r.code == 0, r.text
    assert "'wheel': 2" in r.err
    # each wheel was downloaded once, for its metadata, then reused for the install
    assert index.requests_for("/files/app-1.0-py3-none-any.whl") == [
        "/files/app-1.0-py3-none-any.whl"]


def test_link_mode_hardlink(index: LocalIndex, venv: Path, safepip, tmp_path: Path,
                            venv_template: Path) -> None:
    import shutil

    index.add(make_wheel("lib", files={"lib/__init__.py": "v = 'good'\n"}))
    assert safepip("install", "lib").code == 0  # fills the cache
    shutil.rmtree(venv)
    shutil.copytree(venv_template, venv, symlinks=True)
    r = safepip("install", "--link-mode", "hardlink", "lib")
    assert r.code == 0, r.text
    installed = site_packages(venv) / "lib" / "__init__.py"
    assert installed.stat().st_nlink == 2  # the cache's copy and this one
    # a cache file changed behind safepip's back is noticed (RECORD) and not linked
    cached = next((tmp_path / "cache" / "unpacked").glob("*/lib/__init__.py"))
    shutil.rmtree(venv)
    shutil.copytree(venv_template, venv, symlinks=True)
    cached.unlink()
    cached.write_text("v = 'evil'\n")
    r = safepip("install", "--link-mode", "hardlink", "lib")
    assert r.code == 0, r.text
    assert py(venv, "import lib; print(lib.v)") == "good"


def test_requires_python_only_in_metadata_backtracks(index: LocalIndex, venv: Path,
                                                     safepip) -> None:
    """An index that does not list Requires-Python: the metadata's is found when the
    candidate is looked at, and the resolver goes back to an older version (pip's
    behaviour), or says which Python was needed."""
    index.add(make_wheel("lib", "1.0"))
    index.add(make_wheel("lib", "2.0", requires_python=">=3.99"))
    r = safepip("install", "lib")
    assert r.code == 0, r.text
    assert (site_packages(venv) / "lib-1.0.dist-info").is_dir()
    r = safepip("install", "--dry-run", "lib==2.0")
    assert r.code == 1
    assert "this environment's Python 3.11" in r.err
    assert ("Python >=3.99 (its metadata requires Python >=3.99; the index said nothing) "
            "(required by lib 2.0)") in r.err


def test_uninstall(index: LocalIndex, venv: Path, safepip, clean, tmp_path: Path) -> None:
    index.add(make_wheel("lib", "1.0", files={"lib_extra.py": "X = 1\n"},
                         entry_points={"console_scripts": {"libcli": "lib:main"}}))
    index.add(make_wheel("other", "1.0"))
    assert safepip("install", "lib", "other").code == 0
    sp = site_packages(venv)
    assert (venv / "bin" / "libcli").exists()
    with clean():
        r = safepip("uninstall", "--dry-run", "lib")
    assert r.code == 0 and "Would remove lib 1.0" in r.err
    r = safepip("uninstall", "-y", "LIB", "nothere")
    assert r.code == 0, r.text
    assert "Removed lib 1.0" in r.err and "nothere is not installed" in r.err
    assert not (sp / "lib").exists() and not (sp / "lib_extra.py").exists()
    assert not (sp / "lib-1.0.dist-info").exists() and not (venv / "bin" / "libcli").exists()
    assert (sp / "other-1.0.dist-info").is_dir()
    r = safepip("uninstall")
    assert r.code == 2 and "nothing to uninstall" in r.err


@pytest.mark.parametrize("command", ["install", "lock", "sync", "uninstall", "trust"])
def test_an_unknown_option_is_the_commands_usage_error(command: str, tmp_path: Path) -> None:
    before = tree_hash(tmp_path)
    r = run(command, "--bogus", "x")
    assert tree_hash(tmp_path) == before  # Clean: nothing read into the cache, nothing made
    assert r.code == 2
    assert f"usage: safepip {command} " in r.err
    assert f"safepip {command}: error: unrecognized arguments: --bogus" in r.err
