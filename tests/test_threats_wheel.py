"""threats.md rows 1-12: bad wheels, each refused with its rule named, and Clean."""

from __future__ import annotations

import io
import stat
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.conftest import site_packages
from tests.factory import Built, Member, make_wheel
from tests.indexserver import LocalIndex


def _extra(*members: Member):  # type: ignore[no-untyped-def]
    return lambda ms: ms.extend(members)


TRAVERSAL = ["../evil.py", "/abs/evil.py", "lib/../../evil.py", "..\\evil.py", "C:evil.py",
             "\\\\server\\share\\evil.py"]


@pytest.mark.parametrize("member", TRAVERSAL)
def test_row1_member_path_traversal(index: LocalIndex, venv: Path, safepip, clean,
                                    member: str) -> None:
    index.add(make_wheel("lib", mutate=_extra(Member(member, b"x = 1\n"))))
    with clean():
        r = safepip("install", "lib")
    assert r.code == 1
    assert "[member-path]" in r.err
    assert not (venv.parent / "evil.py").exists()


def test_row1_sibling_prefix_dir_via_data(index: LocalIndex, venv: Path, safepip, clean) -> None:
    # a .data/purelib path that climbs into a sibling directory of site-packages
    index.add(make_wheel("lib", mutate=_extra(
        Member("lib-1.0.data/purelib/../../site-packages-evil/x.py", b""))))
    with clean():
        r = safepip("install", "lib")
    assert r.code == 1
    assert "[member-path]" in r.err


def test_row2_symlink_member(index: LocalIndex, venv: Path, safepip, clean) -> None:
    index.add(make_wheel("lib", mutate=_extra(
        Member("lib/link", b"/etc/passwd", mode=stat.S_IFLNK | 0o777))))
    with clean():
        r = safepip("install", "lib")
    assert r.code == 1
    assert "symbolic link" in r.err and "[member-path]" in r.err


def test_row2_symlinked_target_dir(index: LocalIndex, venv: Path, safepip, clean,
                                   tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (site_packages(venv) / "lib").symlink_to(outside)
    index.add(make_wheel("lib"))
    with clean(outside):
        r = safepip("install", "lib")
    assert r.code == 1
    assert "[symlinked-dir]" in r.err
    assert list(outside.iterdir()) == []


def test_row3_zip_bomb(index: LocalIndex, venv: Path, safepip, clean) -> None:
    index.add(make_wheel("lib", files={"lib/__init__.py": b"",
                                       "lib/zeros.bin": b"\0" * (50 * 1024 * 1024)}))
    with clean():
        r = safepip("install", "lib")
    assert r.code == 1
    assert "[zip-bomb]" in r.err and "fold" in r.err


def _raw_zip(entries: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def _wheel_with_duplicate() -> Built:
    good = make_wheel("lib")
    # append a second member with the same name as an existing one
    buf = io.BytesIO(good.data)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(buf, "a") as zf:
            zf.writestr("lib/__init__.py", b"import os; os.system('evil')\n")
    return Built(good.filename, buf.getvalue(), good.metadata, "lib", "1.0")


def test_row4_duplicate_names(index: LocalIndex, venv: Path, safepip, clean) -> None:
    index.add(_wheel_with_duplicate())
    with clean():
        r = safepip("install", "lib")
    assert r.code == 1
    assert "duplicate member 'lib/__init__.py'" in r.err and "[zip-structure]" in r.err


def _differential(kind: str) -> Built:
    w = make_wheel("lib")
    data = bytearray(w.data)
    if kind == "trailing":
        data += b"trailing garbage"
    elif kind == "prefix":
        data = bytearray(b"PK\x03\x04junk") + data
    elif kind == "local-name":
        # rename the first local header's file name (central directory unchanged)
        nlen = struct.unpack("<H", data[26:28])[0]
        data[30:30 + nlen] = b"X" * nlen
    elif kind == "zip-in-comment":
        inner = _raw_zip([("lib/__init__.py", b"evil")])
        eocd = data.rfind(b"PK\x05\x06")
        data = data[:eocd + 20] + struct.pack("<H", len(inner)) + inner
        data = bytearray(data)
    elif kind == "hidden-between":
        # hide an extra local file between the last member and the central directory
        eocd = data.rfind(b"PK\x05\x06")
        _cd_size, cd_off = struct.unpack("<II", data[eocd + 12:eocd + 20])
        hidden = b"PK\x03\x04" + b"\0" * 40
        data = data[:cd_off] + hidden + data[cd_off:]
        data = bytearray(data)
        eocd += len(hidden)
        data[eocd + 16:eocd + 20] = struct.pack("<I", cd_off + len(hidden))
        # fix the central directory offsets of nothing: the members still start at 0
    return Built(w.filename, bytes(data), w.metadata, "lib", "1.0")


@pytest.mark.parametrize("kind", ["trailing", "prefix", "local-name", "zip-in-comment",
                                  "hidden-between"])
def test_row5_zip_parser_differentials(index: LocalIndex, venv: Path, safepip, clean,
                                       kind: str) -> None:
    index.add(_differential(kind))
    with clean():
        r = safepip("install", "lib")
    assert r.code == 1
    assert "[zip-structure]" in r.err, r.err


@pytest.mark.parametrize(("record", "message"), [
    ("missing", "RECORD is missing"),
    ("wrong-hash", "didn't match RECORD"),
    ("unlisted", "is not mentioned in RECORD"),
    ("escape", "escapes the wheel"),
])
def test_row6_record(index: LocalIndex, venv: Path, safepip, clean, record: str,
                     message: str) -> None:
    index.add(make_wheel("lib", record=record))
    with clean():
        r = safepip("install", "lib")
    assert r.code == 1
    assert "[record]" in r.err and message in r.err


@pytest.mark.parametrize(("member", "message"), [
    ("lib-1.0.data/file.txt", "lies directly in lib-1.0.data/"),
    ("lib-1.0.data/evilscheme/x.txt", "unknown scheme 'evilscheme'"),
    ("lib-1.0.data/../x.txt", "[member-path]"),
])
def test_row7_data_dir(index: LocalIndex, venv: Path, safepip, clean, member: str,
                       message: str) -> None:
    index.add(make_wheel("lib", mutate=_extra(Member(member, b"x"))))
    with clean():
        r = safepip("install", "lib")
    assert r.code == 1
    assert message in r.err


def test_row8_metadata_version_differs_from_filename(index: LocalIndex, venv: Path, safepip,
                                                     clean) -> None:
    from tests.factory import metadata_text

    w = make_wheel("lib", "1.0", metadata=metadata_text("lib", "2.0"))
    index.add(w, core_metadata=False)
    with clean():
        r = safepip("install", "lib")
    assert r.code == 1
    assert "says lib 2.0, not lib 1.0" in r.err or "[dist-info]" in r.err


def test_row8_dist_info_of_another_project(index: LocalIndex, venv: Path, safepip,
                                           clean) -> None:
    w = make_wheel("lib", "1.0", dist_info_name="other-1.0.dist-info")
    index.add(w)
    with clean():
        r = safepip("install", "lib")
    assert r.code == 1
    assert "[dist-info]" in r.err


def test_row8_content_disposition_ignored(index: LocalIndex, venv: Path, safepip,
                                          tmp_path: Path) -> None:
    # the file name comes from the index listing, never from the server's headers
    hostile = 'attachment; filename="../../evil-1.0-py3-none-any.whl"'
    index.add(make_wheel("lib"), disposition=hostile, core_metadata=False)
    r = safepip("install", "--no-cache", "lib")
    assert r.code == 0, r.text
    assert (site_packages(venv) / "lib-1.0.dist-info").is_dir()
    assert not list(tmp_path.parent.glob("evil*")) and not list(tmp_path.glob("**/evil*"))


def test_row9_sidecar_differs_from_wheel(index: LocalIndex, venv: Path, safepip,
                                         clean) -> None:
    from tests.factory import metadata_text

    w = make_wheel("lib", "1.0", requires=["evil"])
    index.add(w, sidecar=metadata_text("lib", "1.0"))
    index.add(make_wheel("evil"))
    with clean():
        r = safepip("install", "lib")
    assert r.code == 1
    assert "[metadata-mismatch]" in r.err and "Requires-Dist" in r.err


@pytest.mark.parametrize("pth", ["evil.pth", ".hidden.pth", "lib-1.0.data/purelib/evil.pth"])
def test_row10_code_running_pth(index: LocalIndex, venv: Path, safepip, clean,
                                pth: str) -> None:
    index.add(make_wheel("lib", mutate=_extra(Member(pth, b"import os;os.system('x')\n"))))
    with clean():
        r = safepip("install", "lib")
    assert r.code == 1
    assert "[pth]" in r.err and "--allow-pth lib" in r.err


def test_row10_pth_allowed_by_flag_and_path_only(index: LocalIndex, venv: Path,
                                                 safepip) -> None:
    index.add(make_wheel("lib", mutate=_extra(Member("lib.pth", b"import sys\n"))))
    index.add(make_wheel("paths", mutate=_extra(Member("paths.pth", b"some/dir\n"))))
    assert safepip("install", "paths").code == 0
    assert safepip("install", "--allow-pth", "lib", "lib").code == 0
    assert (site_packages(venv) / "lib.pth").exists()


@pytest.mark.parametrize("name", ["../../x", "python", "python3", "python3.11", "pypy3"])
def test_row11_bad_entry_point_names(index: LocalIndex, venv: Path, safepip, clean,
                                     name: str) -> None:
    index.add(make_wheel("lib", entry_points={"console_scripts": {name: "lib:main"}}))
    with clean():
        r = safepip("install", "lib")
    assert r.code == 1
    assert "[entry-point]" in r.err


@pytest.mark.parametrize("name", ["pip", "activate", "sudo"])
def test_row11_flagged_entry_point_names(index: LocalIndex, venv: Path, safepip,
                                         name: str) -> None:
    index.add(make_wheel("lib", entry_points={"console_scripts": {name: "lib:main"}}))
    r = safepip("install", "lib")
    assert r.code == 0
    assert f"installs a command named {name!r}" in r.err


def test_row11_no_foreign_script_overwritten(index: LocalIndex, venv: Path, safepip,
                                             clean) -> None:
    index.add(make_wheel("first", entry_points={"console_scripts": {"tool": "first:main"}}))
    index.add(make_wheel("second", entry_points={"console_scripts": {"tool": "second:main"}}))
    assert safepip("install", "first").code == 0
    with clean():
        r = safepip("install", "second")
    assert r.code == 1
    assert "[file-conflict]" in r.err and "first" in r.err


def test_row12_payload_is_never_imported(index: LocalIndex, venv: Path, safepip,
                                         tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    payload = f"open({str(marker)!r}, 'w').write('x')\n"
    index.add(make_wheel("lib", files={
        "json.py": payload, "ssl.py": payload, "safepip/__init__.py": payload,
        "packaging/__init__.py": payload, "sitecustomize.py": payload}))
    # the install itself, and a second run that probes the environment again
    assert safepip("install", "lib").code == 0
    index.add(make_wheel("other"))
    assert safepip("install", "other").code == 0
    assert not marker.exists()


def test_row29_file_of_another_distribution(index: LocalIndex, venv: Path, safepip,
                                            clean) -> None:
    index.add(make_wheel("pkga", files={"shared/mod.py": "a = 1\n"}))
    index.add(make_wheel("pkgb", files={"shared/mod.py": "b = 1\n"}))
    assert safepip("install", "pkga").code == 0
    with clean():
        r = safepip("install", "pkgb")
    assert r.code == 1
    assert "shared/mod.py belongs to the installed distribution pkga" in r.err
    assert (site_packages(venv) / "shared" / "mod.py").read_text() == "a = 1\n"


def test_row29_two_wheels_of_one_install_collide(index: LocalIndex, venv: Path, safepip,
                                                 clean) -> None:
    index.add(make_wheel("pkga", files={"shared/mod.py": "a = 1\n"}))
    index.add(make_wheel("pkgb", files={"shared/mod.py": "b = 1\n"}))
    with clean():
        r = safepip("install", "pkga", "pkgb")
    assert r.code == 1
    assert "[file-conflict]" in r.err


def test_row31_uninstall_keeps_foreign_files(index: LocalIndex, venv: Path, safepip,
                                             tmp_path: Path) -> None:
    index.add(make_wheel("pkga", files={"pkga/__init__.py": "", "shared.py": "a\n"}))
    index.add(make_wheel("lib", "1.0"))
    index.add(make_wheel("lib", "2.0"))
    assert safepip("install", "pkga", "lib==1.0").code == 0
    sp = site_packages(venv)
    victim = tmp_path / "home" / ".bashrc"
    victim.write_text("keep me")
    record = sp / "lib-1.0.dist-info" / "RECORD"
    record.write_text(record.read_text() + f"{Path('../../../..') / victim},,\n"
                      "shared.py,,\n")
    assert safepip("install", "lib==2.0").code == 0
    assert victim.read_text() == "keep me"
    assert (sp / "shared.py").read_text() == "a\n"


def test_row27_failure_halfway_restores_everything(index: LocalIndex, venv: Path,
                                                   clean, monkeypatch) -> None:
    from safepip.install import transaction
    from tests.conftest import run

    index.add(make_wheel("lib", "1.0", files={"lib/__init__.py": "v = 1\n", "lib/a.py": ""}))
    index.add(make_wheel("lib", "2.0", files={"lib/__init__.py": "v = 2\n", "lib/b.py": "",
                                               "lib/c.py": ""}))
    index.add(make_wheel("other", "1.0"))
    assert run("install", "-i", index.url, "lib==1.0").code == 0
    original = transaction._commit

    def failing(items, target, stage, owners, fault, removals):  # type: ignore[no-untyped-def]
        def boom(n: int) -> None:
            if n == 3:
                raise OSError(28, "No space left on device")
        return original(items, target, stage, owners, boom, removals)

    monkeypatch.setattr(transaction, "_commit", failing)
    with clean():
        r = run("install", "-i", index.url, "lib==2.0", "other")
    assert r.code == 1
    assert "rolled back" in r.err and "no space left on the device" in r.err
    out = subprocess.run([str(venv / "bin" / "python"), "-c", "import lib; print(lib.v)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


@pytest.mark.parametrize(("cap", "value", "message"), [
    ("MAX_MEMBERS", 3, "members (limit 3)"),
    ("MAX_TOTAL", 100, "unpacks to"),
])
def test_row3_member_and_size_caps(index: LocalIndex, venv: Path, safepip, clean,
                                   monkeypatch: pytest.MonkeyPatch, cap: str, value: int,
                                   message: str) -> None:
    from safepip.install import wheel

    monkeypatch.setattr(wheel, cap, value)
    index.add(make_wheel("lib", files={"lib/__init__.py": "x" * 200, "lib/a.py": "",
                                       "lib/b.py": ""}))
    with clean():
        r = safepip("install", "lib")
    assert r.code == 1
    assert "[zip-bomb]" in r.err and message in r.err


@pytest.mark.parametrize("crash_at", [0, 2, 5])
def test_row27_killed_halfway_is_rolled_back_by_the_next_run(index: LocalIndex, venv: Path,
                                                              crash_at: int) -> None:
    """SIGKILL-like death in the middle of the commit: the journal undoes it."""
    import os
    import sys

    from tests.conftest import run, tree_hash

    index.add(make_wheel("lib", "1.0", files={"lib/__init__.py": "v = 1\n", "lib/a.py": ""}))
    index.add(make_wheel("lib", "2.0", files={"lib/__init__.py": "v = 2\n", "lib/b.py": "",
                                               "lib/sub/c.py": ""}))
    index.add(make_wheel("other", "1.0"))
    assert run("install", "-i", index.url, "lib==1.0").code == 0
    before = tree_hash(venv)
    env = dict(os.environ, SAFEPIP_TEST_CRASH_AT=str(crash_at))
    proc = subprocess.run([sys.executable, "-m", "safepip", "install", "-i", index.url,
                           "lib==2.0", "other"], env=env, capture_output=True, text=True)
    assert proc.returncode == 137, proc.stderr
    assert list(venv.glob(".safepip-backup-*"))  # the journal survived the crash
    # the next run (of anything) rolls it back first
    r = run("install", "-i", index.url, "--dry-run", "lib==1.0")
    assert r.code == 0, r.text
    index.add(make_wheel("unrelated", "1.0"))
    r = run("install", "-i", index.url, "unrelated")
    assert r.code == 0, r.text
    assert "an install interrupted earlier was rolled back" in r.err
    after = {k: v for k, v in tree_hash(venv).items() if "unrelated" not in k}
    assert after == before
