"""Requirements files as pip reads them; each bad line named by file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from safepip.errors import RequirementsFileError, SafepipError
from safepip.reqfile import RequirementSet, parse_requirement, read_file


def parse(tmp_path: Path, text: str, **files: str) -> RequirementSet:
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    (tmp_path / "req.txt").write_text(text)
    rs = RequirementSet()
    read_file(str(tmp_path / "req.txt"), rs)
    return rs


def test_comments_continuations_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIBVER", "2.0")
    rs = parse(tmp_path, """
# a comment
--index-url https://example.org/simple/
--extra-index-url=https://extra.example.org/simple/
--trusted-host example.org
--pre
--only-binary :all:
--prefer-binary
requests[socks] >= 2.0 ; python_version >= "3" # trailing comment
lib==${LIBVER} \\
    --hash=sha256:aaaa \\
    --hash=sha256:bbbb
-r sub.txt
-c cons.txt
""", **{"sub.txt": "other\n", "cons.txt": "requests<3\n"})
    names = [r.name for r in rs.requirements]
    assert names == ["requests", "lib", "other"]
    assert rs.index_url == "https://example.org/simple/"
    assert rs.extra_index_urls == ["https://extra.example.org/simple/"]
    assert rs.trusted_hosts == ["example.org"]
    assert rs.pre is True
    assert rs.only_binary == {":all:"}
    lib = next(r for r in rs.requirements if r.name == "lib")
    assert str(lib.req.specifier) == "==2.0"
    assert lib.hashes == {"sha256": frozenset({"aaaa", "bbbb"})}
    assert lib.source.endswith("req.txt:10")
    assert rs.hash_checking()
    assert [c.name for c in rs.constraints] == ["requests"]


@pytest.mark.parametrize(("text", "message"), [
    ("--frobnicate\n", "req.txt:1: unknown option --frobnicate"),
    ("lib==1.0 --hash=md5:abc\n", "unsupported hash algorithm"),
    ("lib==1.0 --hash=abc\n", "is not of the form algorithm:digest"),
    ("\n\nlib>=>1\n", "req.txt:3: invalid requirement"),
    ("-r missing.txt\n", "missing.txt: no such file"),
    ("-e ./nowhere\n", "editable installs take a local project directory"),
    ("./some/project\n", "is neither a wheel, a source distribution nor a project"),
    ("./missing-1.0.tar.gz\n", "no such file or directory"),
    ("lib @ https://example.org/lib-1.0.tar.gz\n", "only direct references to wheels"),
])
def test_bad_lines(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SafepipError) as exc:
        parse(tmp_path, text)
    assert message in str(exc.value)


def test_cycle_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("-r b.txt\n")
    (tmp_path / "b.txt").write_text("-r a.txt\n")
    with pytest.raises(RequirementsFileError, match="nest too deeply"):
        read_file(str(tmp_path / "a.txt"), RequirementSet())


def test_wheel_paths_and_urls(tmp_path: Path) -> None:
    r = parse_requirement("./dist/pkg_name-1.2-py3-none-any.whl", "command line", str(tmp_path))
    assert r.name == "pkg-name" and str(r.req.specifier) == "==1.2"
    assert r.link == (tmp_path / "dist" / "pkg_name-1.2-py3-none-any.whl").as_uri()
    r = parse_requirement("pkg @ https://example.org/pkg-1.0-py3-none-any.whl", "command line")
    assert r.link == "https://example.org/pkg-1.0-py3-none-any.whl"
