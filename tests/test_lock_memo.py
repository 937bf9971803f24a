"""A lock's memo: the same ``safepip lock`` again, with nothing it read changed and its
pages still fresh, is answered from the cache without resolving; any change of what it
read, of the command, the environment or the time it holds for, resolves anew."""

from __future__ import annotations

import marshal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from safepip.lock import memo
from tests.factory import make_wheel
from tests.indexserver import LocalIndex


@pytest.fixture
def fresh_index(index: LocalIndex) -> LocalIndex:
    index.page_headers = {"Cache-Control": "max-age=600"}  # as PyPI says
    index.add(make_wheel("app", "1.0", requires=["lib>=1"]))
    index.add(make_wheel("lib", "1.5"))
    return index


def _lock(safepip, index: LocalIndex, *args: str):  # type: ignore[no-untyped-def]
    # runs a moment apart, as people and scripts make them: a file the last run wrote
    # (the lock) that is read within the file system's clock tick is not vouched for
    time.sleep(memo.RACY_NS / 1e9 + 0.01)
    index.log.clear()
    r = safepip("lock", "-v", "--index-url", index.url, "-r", "requirements.in", *args)
    assert r.code == 0, r.text
    return r


ANSWERED = "nothing this lock read has changed since it was made"


def _memos(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "cache" / "memo").rglob("*.marshal"))


def test_an_unchanged_lock_is_answered_without_resolving(fresh_index: LocalIndex, safepip,
                                                         tmp_path: Path) -> None:
    (tmp_path / "requirements.in").write_text("app\n")
    lock = tmp_path / "requirements.txt"
    _lock(safepip, fresh_index)  # pages fetched: not yet in the cache when read
    first = lock.read_text()
    lock.unlink()
    r = _lock(safepip, fresh_index)  # everything from the cache: remembered
    assert ANSWERED not in r.err and lock.read_text() == first
    lock.unlink()
    r = _lock(safepip, fresh_index)
    assert ANSWERED in r.err
    assert fresh_index.log == []  # not one request
    assert lock.read_text() == first
    assert "Locked 2 packages into requirements.txt" in r.err
    # the lock there already: read as the pins to keep, and the same again
    r = _lock(safepip, fresh_index)
    r = _lock(safepip, fresh_index)
    assert ANSWERED in r.err and lock.read_text() == first
    r = safepip("lock", "--index-url", fresh_index.url, "-r", "requirements.in", "--check")
    assert r.code == 0 and "requirements.txt is up to date" in r.err


# what a lock answered from its memo must not import: the resolver and everything
# under it (the memo exists to skip them; one import in the wrong place costs the hit
# path more than the rest of it), nor the command line's parser (the answer is looked
# up before parsing)
_HEAVY = ("packaging", "resolvelib", "json", "typing", "safepip.resolve",
          "safepip.pipeline", "safepip.index", "safepip.models", "safepip.parser",
          "argparse", "re", "enum", "gettext", "shutil")


def test_an_answered_lock_imports_nothing_of_the_resolver(fresh_index: LocalIndex,
                                                          tmp_path: Path) -> None:
    (tmp_path / "requirements.in").write_text("app\n")
    cmd = [sys.executable, "-X", "importtime", "-m", "safepip", "lock", "-v",
           "--index-url", fresh_index.url, "-r", "requirements.in"]
    for _ in range(3):
        time.sleep(memo.RACY_NS / 1e9 + 0.01)
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, check=False)
        assert r.returncode == 0, r.stderr
    assert ANSWERED in r.stderr
    imported = {line.rpartition("|")[2].strip() for line in r.stderr.splitlines()
                if line.startswith("import time:")}
    assert "safepip.cli" in imported
    assert sorted(m for m in imported
                  if any(m == h or m.startswith(h + ".") for h in _HEAVY)) == []


def test_the_answer_is_that_of_the_same_command_line(fresh_index: LocalIndex, safepip,
                                                     tmp_path: Path) -> None:
    """Looked up before the command line is parsed: --cache-dir (either spelling) is
    where, and what parsing gave is kept (the output file, --check, -q)."""
    (tmp_path / "requirements.in").write_text("app\n")
    cache = tmp_path / "elsewhere"
    for spelling in (["--cache-dir", str(cache)], [f"--cache-dir={cache}"]):
        for _ in range(3):
            r = _lock(safepip, fresh_index, "-o", "locked.txt", *spelling)
        assert ANSWERED in r.err and "into locked.txt" in r.err
        assert "lib==1.5" in (tmp_path / "locked.txt").read_text()
    assert len(sorted((cache / "memo").rglob("*.marshal"))) == 2 and _memos(tmp_path) == []
    check = ["lock", "-v", "--index-url", fresh_index.url, "-r", "requirements.in", "-o",
             "locked.txt", "--check"]
    for _ in range(3):
        time.sleep(memo.RACY_NS / 1e9 + 0.01)
        r = safepip(*check)
        assert r.code == 0 and "locked.txt is up to date" in r.err
    assert ANSWERED in r.err and "Locked" not in r.err
    quiet = ["lock", "-q", "--index-url", fresh_index.url, "-r", "requirements.in", "-o",
             "locked.txt"]
    for _ in range(3):
        time.sleep(memo.RACY_NS / 1e9 + 0.01)
        r = safepip(*quiet)
        assert r.code == 0 and r.err == ""
    assert len(_memos(tmp_path)) == 2  # --check's and -q's: the last -q run was answered
    locked = tmp_path / "locked.txt"
    locked.write_text(locked.read_text().replace("lib==1.5", "lib==1.4"))
    r = safepip(*check)
    assert r.code == 1 and "locked.txt is out of date" in r.err


def _remembered(safepip, index: LocalIndex, tmp_path: Path, *args: str) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "requirements.in").write_text("app\n")
    for _ in range(3):
        r = _lock(safepip, index, *args)
    assert ANSWERED in r.err


def test_the_memo_can_be_turned_off(fresh_index: LocalIndex, safepip, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEPIP_NO_LOCK_MEMO", "1")
    (tmp_path / "requirements.in").write_text("app\n")
    for _ in range(3):
        assert ANSWERED not in _lock(safepip, fresh_index).err
    assert _memos(tmp_path) == []


def test_an_edited_input_file_resolves_anew(fresh_index: LocalIndex, safepip,
                                            tmp_path: Path) -> None:
    _remembered(safepip, fresh_index, tmp_path)
    fresh_index.add(make_wheel("extra", "2.0"))
    (tmp_path / "requirements.in").write_text("app\nextra\n")
    r = _lock(safepip, fresh_index)
    assert ANSWERED not in r.err
    assert "extra==2.0" in (tmp_path / "requirements.txt").read_text()


def test_an_edited_lock_resolves_anew(fresh_index: LocalIndex, safepip, tmp_path: Path) -> None:
    _remembered(safepip, fresh_index, tmp_path)
    lock = tmp_path / "requirements.txt"
    lock.write_text(lock.read_text().replace("lib==1.5", "lib==1.4"))
    r = safepip("lock", "--index-url", fresh_index.url, "-r", "requirements.in", "--check")
    assert r.code == 1 and "out of date" in r.err


def test_another_command_or_environment_resolves_anew(fresh_index: LocalIndex, safepip,
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _remembered(safepip, fresh_index, tmp_path)
    # the environment: a variable a requirements file might name
    monkeypatch.setenv("LIB_VERSION", "1.5")
    assert ANSWERED not in _lock(safepip, fresh_index).err
    # the command line
    assert ANSWERED not in _lock(safepip, fresh_index, "--min-release-age", "1d").err


def test_a_stale_page_resolves_anew(fresh_index: LocalIndex, safepip, tmp_path: Path) -> None:
    fresh_index.page_headers = {"Cache-Control": "max-age=2"}
    _remembered(safepip, fresh_index, tmp_path)
    time.sleep(2.1)
    r = _lock(safepip, fresh_index)
    assert ANSWERED not in r.err
    assert fresh_index.requests_for("/simple/")  # revalidated


def test_pages_without_freshness_are_never_remembered(index: LocalIndex, safepip,
                                                      tmp_path: Path) -> None:
    index.add(make_wheel("app", "1.0"))
    (tmp_path / "requirements.in").write_text("app\n")
    for _ in range(3):
        r = _lock(safepip, index)
        assert ANSWERED not in r.err
    assert "this lock is not remembered: an index page it used says nothing of how long " \
           "it stays fresh (no max-age)" in r.err
    assert _memos(tmp_path) == []


def test_a_find_links_directory_is_an_input(index: LocalIndex, safepip, tmp_path: Path) -> None:
    """A local --find-links directory is files and a listing: remembered, and a wheel
    put there later resolves anew (and is locked)."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    built = make_wheel("app", "1.0")
    (wheels / built.filename).write_bytes(built.data)
    (tmp_path / "requirements.in").write_text("app\n")
    lock = tmp_path / "requirements.txt"

    def run():  # type: ignore[no-untyped-def]
        # no lock to keep pins from: only the directory differs between the runs
        lock.unlink(missing_ok=True)
        time.sleep(memo.RACY_NS / 1e9 + 0.01)
        r = safepip("lock", "-v", "--no-index", "-f", str(wheels), "-r", "requirements.in")
        assert r.code == 0, r.text
        return r

    for _ in range(3):
        r = run()
    assert ANSWERED in r.err and "app==1.0" in lock.read_text()
    newer = make_wheel("app", "1.1")
    (wheels / newer.filename).write_bytes(newer.data)
    r = run()
    assert ANSWERED not in r.err and "app==1.1" in lock.read_text()


def test_a_find_links_page_is_never_remembered(index: LocalIndex, safepip,
                                               tmp_path: Path) -> None:
    index.page_headers = {"Cache-Control": "max-age=600"}
    e = index.add(make_wheel("app", "1.0"))
    index.raw_pages["/links/"] = ("text/html", f'<a href="{index.base}/files/{e.filename}">'
                                  f'{e.filename}</a>'.encode())
    (tmp_path / "requirements.in").write_text("app\n")
    for _ in range(3):
        time.sleep(memo.RACY_NS / 1e9 + 0.01)
        r = safepip("lock", "-v", "--no-index", "-f", f"{index.base}/links/", "-r",
                    "requirements.in")
        assert r.code == 0, r.text
        assert ANSWERED not in r.err
    assert f"this lock is not remembered: --find-links {index.base}/links/" in r.err
    assert _memos(tmp_path) == []


def test_a_memo_from_elsewhere_is_not_believed(fresh_index: LocalIndex, safepip,
                                               tmp_path: Path) -> None:
    """A cache restored from another machine (or written by an untrusted job) cannot
    make a run write a lock of its choosing: the memo is sealed like every cached fact."""
    _remembered(safepip, fresh_index, tmp_path)
    (entry,) = _memos(tmp_path)
    head, _, body = entry.read_bytes().partition(b"\n")
    doc = marshal.loads(body)
    doc["text"] = doc["text"].replace("lib==1.5", "evil==6.6.6")
    entry.write_bytes(head + b"\n" + marshal.dumps(doc))
    r = _lock(safepip, fresh_index)
    assert ANSWERED not in r.err
    assert "evil" not in (tmp_path / "requirements.txt").read_text()


def test_an_input_changed_as_it_was_read_is_not_vouched_for(fresh_index: LocalIndex,
                                                            safepip, tmp_path: Path) -> None:
    """A file written a moment before it is read could be written again within the same
    tick of the file system's clock, its identity unchanged: not remembered."""
    for _ in range(3):
        (tmp_path / "requirements.in").write_text("app\n")
        r = safepip("lock", "-v", "--index-url", fresh_index.url, "-r", "requirements.in")
        assert r.code == 0, r.text
        assert ANSWERED not in r.err
    assert "changed as it was read" in r.err
    assert _memos(tmp_path) == []


def test_the_recorder_sees_reads_not_writes(tmp_path: Path) -> None:
    seen, written, listed = tmp_path / "seen", tmp_path / "written", tmp_path / "d"
    seen.write_text("x")
    listed.mkdir()
    (listed / "a").write_text("")
    with memo.Recorder([tmp_path / "ignored"]) as rec:
        seen.read_text()
        written.write_text("y")
        (tmp_path / "ignored").mkdir()
        (tmp_path / "ignored" / "f").write_text("z")
        (tmp_path / "ignored" / "f").read_text()
        with pytest.raises(FileNotFoundError):
            (tmp_path / "absent").read_text()
        sorted(listed.iterdir())
    assert rec.inputs == {
        ("f", str(seen)): memo.signature(str(seen)),
        ("f", str(tmp_path / "absent")): "absent",
        ("d", str(listed)): memo.signature(str(listed)),
    }
    seen.read_text()  # after the run: not recorded
    assert len(rec.inputs) == 3
    # what a listing decided changes with the directory's entries
    before = memo.signature(str(listed))
    (listed / "b").write_text("")
    assert memo.signature(str(listed)) != before
    before = memo.signature(str(listed))
    (listed / "a").unlink()
    assert memo.signature(str(listed)) != before


def test_a_pip_configuration_made_later_resolves_anew(fresh_index: LocalIndex, safepip,
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """What was looked for and not found is an input too: a pip.conf that appears later
    (it could name another index) is noticed."""
    conf = tmp_path / "pip.conf"
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    _remembered(safepip, fresh_index, tmp_path)
    conf.write_text("[global]\ntimeout = 20\n")
    assert ANSWERED not in _lock(safepip, fresh_index).err


def test_a_new_virtual_environment_resolves_anew(fresh_index: LocalIndex, safepip,
                                                 tmp_path: Path, venv_template: Path) -> None:
    """The interpreter a lock is for is found by looking (.venv here or above): a .venv
    made later is another target."""
    import shutil

    _remembered(safepip, fresh_index, tmp_path)
    shutil.copytree(venv_template, tmp_path / ".venv", symlinks=True)
    r = _lock(safepip, fresh_index)
    assert ANSWERED not in r.err
    assert str(tmp_path / ".venv") in r.err  # "target: lock <the new venv>"
