"""The cache: blobs are checked by their digest, facts by a seal (an HMAC keyed outside
the cache), and a warm install reuses sealed wheel verdicts and hardlinks verified files.

The attack these tests stand for: a cache restored from elsewhere (a CI cache written by
an untrusted job, a shared cache directory) whose entries were rewritten."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from safepip.fetch.cache import Cache
from tests.conftest import site_packages
from tests.factory import Member, make_wheel
from tests.indexserver import LocalIndex
from tests.test_threats_wheel import _extra


def _sealed_files(cache: Path, sub: str) -> list[Path]:
    return sorted(p for p in (cache / sub).rglob("*") if p.is_file())


def _reseal_body(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    """Rewrite a sealed entry's body and keep its (now wrong) seal line."""
    head, _, body = path.read_bytes().partition(b"\n")
    path.write_bytes(head + b"\n" + edit(body))


def test_sealed_entries_need_this_users_key(tmp_path: Path) -> None:
    root, data = tmp_path / "cache", tmp_path / "data"
    c = Cache(str(root), data_dir=str(data))
    c.put_page("k", {"body": "x"})
    assert not (data / "cache.key").exists()  # nothing is saved before the commit
    c.commit()
    assert (data / "cache.key").stat().st_mode & 0o777 == 0o600
    assert Cache(str(root), data_dir=str(data)).get_page("k")["body"] == "x"
    # another data directory (another machine, another user): another key
    assert Cache(str(root), data_dir=str(tmp_path / "other")).get_page("k") is None
    # an edited entry, or one without a seal, is absent
    (entry,) = _sealed_files(root, "http")
    _reseal_body(entry, lambda b: b.replace(b'"x"', b'"y"'))
    assert Cache(str(root), data_dir=str(data)).get_page("k") is None
    entry.write_text(json.dumps({"key": "k", "body": "y", "stored": 0}))
    assert Cache(str(root), data_dir=str(data)).get_page("k") is None
    # a damaged key verifies nothing, and the next committed run replaces it
    (data / "cache.key").write_text("not hex\n")
    c2 = Cache(str(root), data_dir=str(data))
    assert c2.get_page("k") is None
    c2.put_page("k2", {"body": "z"})
    c2.commit()
    assert len(bytes.fromhex((data / "cache.key").read_text())) == 32
    assert Cache(str(root), data_dir=str(data)).get_page("k2")["body"] == "z"


def test_discarded_run_saves_no_key(tmp_path: Path) -> None:
    c = Cache(str(tmp_path / "cache"), data_dir=str(tmp_path / "data"))
    c.put_page("k", {"body": "x"})
    c.discard()
    assert not (tmp_path / "data").exists()
    assert not (tmp_path / "cache").exists()


def test_poisoned_index_page_is_not_used(index: LocalIndex, venv: Path, safepip,
                                         tmp_path: Path, venv_template: Path) -> None:
    """A cached page whose digest was swapped (to match a planted blob) is refetched,
    though the index said it stays fresh for ten minutes (as PyPI does)."""
    good = make_wheel("lib", files={"lib/__init__.py": "v = 'good'\n"})
    evil = make_wheel("lib", files={"lib/__init__.py": "v = 'evil'\n"})
    index.page_headers = {"Cache-Control": "max-age=600"}
    index.add(good)
    assert safepip("install", "lib").code == 0
    cache = tmp_path / "cache"
    blob = cache / "blobs" / "sha256" / evil.sha256[:2] / evil.sha256[2:]
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(evil.data)  # the planted wheel, under its own (correct) digest
    pages = [p for p in _sealed_files(cache, "http") if good.sha256.encode() in p.read_bytes()]
    assert pages
    for p in pages:
        _reseal_body(p, lambda b: b.replace(good.sha256.encode(), evil.sha256.encode()))
    shutil.rmtree(venv)
    shutil.copytree(venv_template, venv, symlinks=True)
    before = len(index.requests_for("/simple/lib"))
    r = safepip("install", "lib")
    assert r.code == 0, r.text
    assert (site_packages(venv) / "lib" / "__init__.py").read_text() == "v = 'good'\n"
    assert len(index.requests_for("/simple/lib")) == before + 1  # fetched again


def test_poisoned_interpreter_facts_are_not_used(index: LocalIndex, venv: Path, safepip,
                                                 tmp_path: Path) -> None:
    """Cached interpreter facts decide where files go: an edited entry is probed again."""
    index.add(make_wheel("lib"))
    assert safepip("install", "lib").code == 0
    outside = tmp_path / "outside"
    facts = [p for p in _sealed_files(tmp_path / "cache", "http")
             if b'"facts"' in p.read_bytes()]
    assert facts
    for p in facts:
        _reseal_body(p, lambda b: b.replace(str(site_packages(venv)).encode(),
                                            str(outside).encode()))
    index.add(make_wheel("other"))
    assert safepip("install", "other").code == 0
    assert (site_packages(venv) / "other").is_dir()
    assert not outside.exists()


def test_warm_install_reuses_sealed_verdicts(index: LocalIndex, venv: Path, safepip,
                                             tmp_path: Path, venv_template: Path) -> None:
    index.add(make_wheel("lib", files={"lib/__init__.py": "v = 1\n"}))
    r = safepip("install", "lib", "-v")
    assert r.code == 0, r.text
    assert "wheel checks: 1 inspected, 0 from sealed verdicts" in r.err
    shutil.rmtree(venv)
    shutil.copytree(venv_template, venv, symlinks=True)
    r = safepip("install", "lib", "-v")
    assert r.code == 0, r.text
    assert "wheel checks: 0 inspected, 1 from sealed verdicts" in r.err
    # hardlinked by default: the cache's verified copy and the installed file are one
    installed = site_packages(venv) / "lib" / "__init__.py"
    assert installed.stat().st_nlink == 2
    shutil.rmtree(venv)
    shutil.copytree(venv_template, venv, symlinks=True)
    assert safepip("install", "lib", "--link-mode", "copy").code == 0
    assert installed.stat().st_nlink == 1


def test_edited_verdict_is_not_trusted(index: LocalIndex, venv: Path, safepip, clean,
                                       tmp_path: Path, venv_template: Path) -> None:
    """A verdict edited to hide a code-running .pth: the wheel is inspected again and
    refused, Clean."""
    index.add(make_wheel("lib", mutate=_extra(Member("lib.pth", b"import os\n"))))
    assert safepip("install", "--allow-pth", "lib", "lib").code == 0
    (verdict,) = _sealed_files(tmp_path / "cache", "verdicts")
    _reseal_body(verdict, lambda b: b.replace(b'"code_pth": ["lib.pth"]', b'"code_pth": []'))
    assert b'"code_pth": []' in verdict.read_bytes()
    shutil.rmtree(venv)
    shutil.copytree(venv_template, venv, symlinks=True)
    with clean():
        r = safepip("install", "lib")
    assert r.code == 1
    assert "[pth]" in r.err and "--allow-pth lib" in r.err


def test_verdict_of_other_rules_is_not_reused(index: LocalIndex, venv: Path, safepip,
                                              tmp_path: Path, venv_template: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from safepip.install import wheel

    index.add(make_wheel("lib"))
    assert safepip("install", "lib").code == 0
    monkeypatch.setattr(wheel, "VERDICT_RULES", wheel.VERDICT_RULES + 1)
    shutil.rmtree(venv)
    shutil.copytree(venv_template, venv, symlinks=True)
    r = safepip("install", "lib", "-v")
    assert r.code == 0, r.text
    assert "wheel checks: 1 inspected, 0 from sealed verdicts" in r.err


def test_blob_digest_still_checked_with_a_verdict(index: LocalIndex, venv: Path, safepip,
                                                  tmp_path: Path,
                                                  venv_template: Path) -> None:
    """A sealed verdict says what a wheel holds; the bytes installed are still the ones
    whose digest matches the index, and each file matches RECORD."""
    w = make_wheel("lib", files={"lib/__init__.py": "v = 'good'\n"})
    index.add(w)
    assert safepip("install", "lib").code == 0
    unpacked = tmp_path / "cache" / "unpacked" / w.sha256 / "lib" / "__init__.py"
    unpacked.unlink()  # not in place: the venv's hardlink keeps the old inode intact
    unpacked.write_text("v = 'evil'\n")
    shutil.rmtree(venv)
    shutil.copytree(venv_template, venv, symlinks=True)
    r = safepip("install", "lib", "-v")
    assert r.code == 0, r.text
    assert (site_packages(venv) / "lib" / "__init__.py").read_text() == "v = 'good'\n"
    assert hashlib.sha256(unpacked.read_bytes()).hexdigest() == hashlib.sha256(
        b"v = 'good'\n").hexdigest()


@pytest.mark.parametrize("end", ["discard", "commit"])
def test_a_write_under_way_when_the_run_ends_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, end: str) -> None:
    """Cache files are written outside the cache's lock (other threads' writes do not
    queue behind a slow one); a run that ends meanwhile waits for the write: a discarded
    run leaves the cache as it was (Clean), a committed one has the entry, whole."""
    import safepip.fetch.cache as cache_mod

    root = tmp_path / "cache"
    c = Cache(str(root), data_dir=str(tmp_path / "data"))
    c.put_metadata("a" * 64, b"kept")
    started, go = threading.Event(), threading.Event()
    real_open = open

    class SlowFile:
        def __init__(self, f: Any) -> None:
            self.f = f

        def __enter__(self) -> SlowFile:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

        def write(self, data: bytes) -> int:
            started.set()
            go.wait(10)
            return int(self.f.write(data))

    def slow_open(path: str, mode: str = "r", *a: Any, **k: Any) -> Any:
        f = real_open(path, mode, *a, **k)
        return SlowFile(f) if "w" in mode else f

    monkeypatch.setattr(cache_mod, "open", slow_open, raising=False)
    writer = threading.Thread(target=c.put_metadata, args=("b" * 64, b"late"))
    writer.start()
    assert started.wait(10)
    ender = threading.Thread(target=getattr(c, end))
    ender.start()
    time.sleep(0.2)
    assert ender.is_alive()  # waiting for the write under way
    go.set()
    writer.join(10)
    ender.join(10)
    assert not ender.is_alive()
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    if end == "discard":
        assert not root.exists() or files == []
    else:
        assert files == [os.path.join("metadata", "sha256", "aa", "a" * 62),
                         os.path.join("metadata", "sha256", "bb", "b" * 62)]
        assert (root / files[1]).read_bytes() == b"late"
    c.put_metadata("c" * 64, b"after the end")  # dropped
    assert not (root / "metadata" / "sha256" / "cc").exists()


def test_a_late_task_of_an_ended_run_reaches_nothing(tmp_path: Path) -> None:
    """What a run's threads still do after its end (a fetch finishing late) neither
    writes an entry nor makes a staging directory: the cache stays Clean."""
    root = tmp_path / "cache"
    c = Cache(str(root), data_dir=str(tmp_path / "data"))
    c.put_page("k", {"body": "x"})
    c.discard()
    c.put_page("k2", {"body": "y"})
    c.put_metadata("a" * 64, b"late")
    with pytest.raises(RuntimeError, match="committed or discarded"):
        c.new_download()
    assert not root.exists() or list(root.rglob("*")) == []
