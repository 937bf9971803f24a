"""threats.md rows 17-25: hashes, downloads, redirects, plain http, confusion, bad pages."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import site_packages
from tests.factory import make_wheel, metadata_text
from tests.indexserver import LocalIndex


def test_row17_wrong_pinned_hash(index: LocalIndex, venv: Path, safepip, clean,
                                 tmp_path: Path) -> None:
    w = make_wheel("lib")
    index.add(w)
    wrong = "0" * 64
    (tmp_path / "req.txt").write_text(f"lib==1.0 --hash=sha256:{wrong}\n")
    with clean():
        r = safepip("install", "-r", "req.txt")
    assert r.code == 1
    assert f"--hash says sha256:{wrong}" in r.err
    assert f"the downloaded file is sha256:{w.sha256}" in r.err


def test_row17_right_pinned_hash(index: LocalIndex, venv: Path, safepip, tmp_path: Path) -> None:
    w = make_wheel("lib")
    index.add(w)
    (tmp_path / "req.txt").write_text(f"lib==1.0 \\\n    --hash=sha256:{w.sha256}\n")
    r = safepip("install", "-r", "req.txt")
    assert r.code == 0, r.text
    assert "--hash sha256" in r.err


def test_hash_checking_mode_needs_every_hash(index: LocalIndex, venv: Path, safepip, clean,
                                             tmp_path: Path) -> None:
    w = make_wheel("app", requires=["lib"])
    index.add(w)
    index.add(make_wheel("lib"))
    index.add(make_wheel("other"))
    (tmp_path / "req.txt").write_text(f"app==1.0 --hash=sha256:{w.sha256}\nother\n")
    with clean():
        r = safepip("install", "-r", "req.txt")
    assert r.code == 1
    assert "hash-checking mode" in r.err
    assert "other" in r.err and "has no --hash" in r.err
    assert "lib==1.0 (a dependency) has no --hash" in r.err


def test_row18_served_bytes_differ_from_index_hash(index: LocalIndex, venv: Path, safepip,
                                                   clean) -> None:
    w = make_wheel("lib")
    other = make_wheel("lib", files={"lib/__init__.py": "evil = 1\n"})
    index.add(w, serve=other.data)
    with clean():
        r = safepip("install", "lib")
    assert r.code == 1
    assert f"the index says sha256:{w.sha256}" in r.err
    assert f"the downloaded file is sha256:{other.sha256}" in r.err


def test_row19_truncated_download(index: LocalIndex, venv: Path, safepip, clean) -> None:
    index.add(make_wheel("lib"), truncate=True)
    with clean():
        r = safepip("install", "lib")
    assert r.code == 1
    assert "lib-1.0-py3-none-any.whl" in r.err or "connection broken" in r.err
    assert "Traceback" not in r.err


@pytest.fixture
def second_index() -> LocalIndex:
    idx = LocalIndex().start()
    yield idx  # type: ignore[misc]
    idx.stop()


def test_row20_redirect_to_file_refused(index: LocalIndex, venv: Path, safepip,
                                        clean) -> None:
    index.add(make_wheel("lib"))
    index.redirects["/files/lib-1.0-py3-none-any.whl"] = "file:///etc/passwd"
    with clean():
        r = safepip("install", "lib")
    assert r.code == 1
    assert "refusing a redirect to file:///etc/passwd" in r.err


def test_row20_redirect_to_plain_http_refused(index: LocalIndex, venv: Path, safepip,
                                              clean) -> None:
    index.add(make_wheel("lib"))
    index.redirects["/simple/lib/"] = "http://example.invalid/simple/lib/"
    with clean():
        r = safepip("install", "lib")
    assert r.code == 1
    assert "refusing a redirect to http://example.invalid/simple/lib/" in r.err
    assert "refusing plain http" in r.err


def test_row20_credentials_not_sent_to_another_host(index: LocalIndex,
                                                    second_index: LocalIndex, venv: Path,
                                                    safepip) -> None:
    w = make_wheel("lib")
    index.add(w)
    second_index.add(w)
    index.redirects["/files/lib-1.0-py3-none-any.whl"] = (
        f"{second_index.base}/files/lib-1.0-py3-none-any.whl")
    authed = index.url.replace("http://", "http://user:s3cret@")
    r = safepip("install", "-i", authed, "lib")
    assert r.code == 0, r.text
    assert any("Authorization" in h for p, h in index.log if p.startswith("/simple/"))
    assert second_index.log, "the redirect was followed"
    assert all("Authorization" not in h for _p, h in second_index.log)
    assert "s3cret" not in r.text


def test_row21_plain_http_index_refused(venv: Path, safepip, clean) -> None:
    with clean():
        r = safepip("install", "-i", "http://pypi.example.invalid/simple/", "lib")
    assert r.code == 1
    assert "refusing plain http" in r.err
    assert "--trusted-host pypi.example.invalid" in r.err


def test_row22_dependency_confusion_first_index_wins(index: LocalIndex,
                                                     second_index: LocalIndex, venv: Path,
                                                     safepip) -> None:
    private, public = index, second_index
    private.add(make_wheel("internal-lib", "1.0"))
    public.add(make_wheel("internal-lib", "99.0",
                          files={"internal_lib/__init__.py": "pwned = True\n"}))
    public.add(make_wheel("public-lib", "2.0"))
    r = safepip("install", "-i", private.url, "--extra-index-url", public.url, "internal-lib",
                "public-lib", "--report", "-")
    assert r.code == 0, r.text
    sp = site_packages(venv)
    assert (sp / "internal_lib-1.0.dist-info").is_dir()
    assert (sp / "public_lib-2.0.dist-info").is_dir()
    report = json.loads(r.out)
    by_name = {i["metadata"]["name"]: i for i in report["install"]}
    assert by_name["internal-lib"]["safepip"]["index"] == private.url


def test_row24_requires_python_in_metadata(index: LocalIndex, venv: Path, safepip,
                                           clean) -> None:
    md = metadata_text("lib", "1.0", requires_python=">=3.99")
    index.add(make_wheel("lib", metadata=md), requires_python=">=3.8")
    with clean():
        r = safepip("install", "lib")
    assert r.code == 1
    assert "requires Python >=3.99" in r.err and "the index said >=3.8" in r.err


def test_row25_malformed_entries_are_skipped(index: LocalIndex, venv: Path, safepip) -> None:
    w = make_wheel("lib", "1.0")
    index.add(w)
    good = json.loads(index.page("lib", True))
    files = good["files"] + [
        {"filename": "lib-2011k.tar.gz", "url": "x", "hashes": {}},
        {"filename": 5, "url": None},
        "not a dict",
        {"filename": "lib-3.0-py3-none-any.whl", "url": "../../files/x.whl",
         "hashes": [1, 2], "requires-python": ">=3<4", "yanked": {"odd": 1}},
        {"filename": "other-9.0-py3-none-any.whl", "url": "../../files/y.whl", "hashes": {}},
    ]
    index.raw_pages["/simple/lib/"] = ("application/vnd.pypi.simple.v1+json",
                                       json.dumps({"files": files}).encode())
    r = safepip("install", "lib")
    assert r.code == 0, r.text
    assert (site_packages(venv) / "lib-1.0.dist-info").is_dir()


def test_row25_not_json_is_an_error_not_a_traceback(index: LocalIndex, venv: Path, safepip,
                                                     clean) -> None:
    index.raw_pages["/simple/lib/"] = ("application/vnd.pypi.simple.v1+json", b"{nope")
    with clean():
        r = safepip("install", "lib")
    assert r.code == 1
    assert "invalid JSON" in r.err and "Traceback" not in r.err


def test_row25_huge_page_is_bounded(index: LocalIndex, venv: Path, safepip, clean,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from safepip.index import http

    big = b"<html>" + b"<a href='x'>x</a>" * (5 * 1024 * 1024 // 16) + b"</html>"
    index.raw_pages["/simple/lib/"] = ("text/html", big)
    original = http.HttpClient.__init__

    def small(self, **kw):  # type: ignore[no-untyped-def]
        original(self, **kw)
        self.max_body = 1024 * 1024

    monkeypatch.setattr(http.HttpClient, "__init__", small)
    with clean():
        r = safepip("install", "lib")
    assert r.code == 1
    assert "too large" in r.err


def test_metadata_sidecar_hash_checked(index: LocalIndex, venv: Path, safepip, clean) -> None:
    w = make_wheel("lib")
    e = index.add(w)
    e.sidecar = metadata_text("lib", "1.0")  # served sidecar differs from the listed hash
    page = json.loads(index.page("lib", True))
    page["files"][0]["core-metadata"] = {"sha256": hashlib.sha256(b"other").hexdigest()}
    index.raw_pages["/simple/lib/"] = ("application/vnd.pypi.simple.v1+json",
                                       json.dumps(page).encode())
    with clean():
        r = safepip("install", "lib")
    assert r.code == 1
    assert "lib-1.0-py3-none-any.whl.metadata: the index says sha256:" in r.err


@pytest.mark.parametrize(("headers", "fresh_for"), [
    ({"cache-control": "max-age=600, public"}, 600),
    ({"cache-control": "no-cache", "last-modified": "Mon, 01 Jan 2024 00:00:00 GMT"}, 0),
    ({"expires": "Mon, 01 Jan 2024 00:10:00 GMT",
      "last-modified": "Mon, 01 Jan 2024 00:00:00 GMT"}, 0),
    # RFC 9111's heuristic: a tenth of the page's age, at most ten minutes
    ({"date": "Mon, 01 Jan 2024 00:30:00 GMT",
      "last-modified": "Mon, 01 Jan 2024 00:00:00 GMT"}, 180),
    ({"date": "Tue, 02 Jan 2024 00:00:00 GMT",
      "last-modified": "Mon, 01 Jan 2024 00:00:00 GMT"}, 600),
    ({"last-modified": "not a date"}, 0),
    ({}, 0),
])
def test_page_freshness(headers: dict[str, str], fresh_for: int) -> None:
    from safepip.index.simple import _max_age

    assert _max_age(headers) == fresh_for


@pytest.mark.parametrize("text", [
    "Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate, read by safepip itself
    "Tue, 29 Feb 2028 23:59:59 GMT",
    "Sunday, 06-Nov-94 08:49:37 GMT",  # the obsolete RFC 850 form
    "Sun Nov  6 08:49:37 1994",  # asctime
])
def test_http_dates_as_the_email_package_reads_them(text: str) -> None:
    from email.utils import parsedate_to_datetime

    from safepip.index.simple import http_date

    assert http_date(text) == parsedate_to_datetime(text).timestamp()
