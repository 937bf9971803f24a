"""The cooldown (``--min-release-age``, default two days): a file uploaded less than that
ago is not taken unless its version is pinned with ``==`` (or kept from a lock), and the
summary says what was held back or taken anyway."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from safepip.cooldown import describe, parse_age, upload_timestamp, window
from safepip.errors import UsageError
from tests.conftest import site_packages
from tests.factory import make_wheel
from tests.indexserver import LocalIndex


def _ago(**delta: float) -> str:
    """An upload time as PyPI writes it, ``delta`` before now."""
    when = datetime.datetime.now(datetime.UTC) - datetime.timedelta(**delta)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _installed(venv: Path, name: str) -> list[str]:
    return sorted(p.name for p in site_packages(venv).glob(f"{name}-*.dist-info"))


@pytest.mark.parametrize(("text", "seconds"), [
    ("2d", 172800), ("2", 172800), ("0.5", 43200), ("36h", 129600), ("90m", 5400),
    ("3600s", 3600), ("1w", 604800), ("0", 0), (" 12H ", 43200),
])
def test_ages_are_read(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["", "two days", "-1d", "2y", "1d2h"])
def test_a_bad_age_names_the_flag(text: str) -> None:
    with pytest.raises(UsageError, match="--min-release-age") as exc:
        parse_age(text)
    assert exc.value.hint is not None and "0 to turn it off" in exc.value.hint


def test_ages_are_said_plainly() -> None:
    assert describe(172800) == "2 days"
    assert describe(3600) == "1 hour"
    assert describe(5400) == "1.5 hours"
    assert describe(600) == "10 minutes"
    assert describe(3) == "3 seconds"
    assert window(172800) == "2-day" and window(5400) == "1.5-hour"
    assert upload_timestamp("2024-01-01T00:00:00.000000Z") == 1704067200.0
    assert upload_timestamp("2024-01-01T00:00:00") == 1704067200.0  # naive: UTC
    assert upload_timestamp("yesterday") is None


def test_a_new_release_waits_and_is_said_to(index: LocalIndex, venv: Path, safepip,
                                           tmp_path: Path) -> None:
    index.add(make_wheel("lib", "1.0"))
    index.add(make_wheel("lib", "2.0"), upload_time=_ago(hours=3))
    index.add(make_wheel("pinned", "1.0"), upload_time=_ago(minutes=5))
    report = tmp_path / "report.json"
    r = safepip("install", "lib", "pinned==1.0", "--report", str(report))
    assert r.code == 0, r.text
    assert _installed(venv, "lib") == ["lib-1.0.dist-info"]
    assert "lib: 2.0 held back (uploaded 3 hours ago, inside the 2-day cooldown), " \
           "1.0 taken; --min-release-age 0 takes it" in r.err
    # --report says it per package
    items = {i["metadata"]["name"]: i["safepip"] for i in json.loads(report.read_text())[
        "install"]}
    held = items["lib"]["cooldown"]
    assert held["held_back"]["version"] == "2.0" and held["min_release_age_s"] == 172800
    assert 3 * 3600 - 60 < held["held_back"]["age_s"] < 3 * 3600 + 60
    assert items["pinned"]["cooldown"]["taken_inside"]["because"] == "pinned with =="


@pytest.mark.parametrize(("args", "env"), [
    (["--min-release-age", "0"], None),
    (["--min-release-age", "2h"], None),  # three hours old is old enough for that
    ([], "0"),
])
def test_the_cooldown_can_be_shortened_or_turned_off(index: LocalIndex, venv: Path, safepip,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     args: list[str], env: str | None) -> None:
    if env is not None:
        monkeypatch.setenv("SAFEPIP_MIN_RELEASE_AGE", env)
    index.add(make_wheel("lib", "1.0"))
    index.add(make_wheel("lib", "2.0"), upload_time=_ago(hours=3))
    r = safepip("install", "lib", *args)
    assert r.code == 0, r.text
    assert _installed(venv, "lib") == ["lib-2.0.dist-info"]
    assert "held back" not in r.err


def test_an_exact_pin_is_exempt_and_said_to_be(index: LocalIndex, venv: Path, safepip) -> None:
    index.add(make_wheel("lib", "1.0"))
    index.add(make_wheel("lib", "2.0"), upload_time=_ago(minutes=20))
    r = safepip("install", "lib==2.0")
    assert r.code == 0, r.text
    assert _installed(venv, "lib") == ["lib-2.0.dist-info"]
    assert "lib 2.0 has files uploaded 20 minutes ago, inside the 2-day cooldown: taken " \
           "because it is pinned with ==" in r.err


def test_only_new_releases_is_a_refusal_with_the_way_out(index: LocalIndex, venv: Path,
                                                         safepip, clean) -> None:
    index.add(make_wheel("app", "1.0", requires=["fresh>=1"]))
    index.add(make_wheel("fresh", "1.0"), upload_time=_ago(hours=5))
    index.add(make_wheel("fresh", "1.1"), upload_time=_ago(hours=1))
    with clean():
        r = safepip("install", "app")
    assert r.code == 1
    assert "no version of fresh satisfies all of:" in r.err
    assert "  - fresh>=1 (required by app 1.0)" in r.err
    assert "held back by the 2-day cooldown: 1.1 (uploaded 1 hour ago), 1.0 (uploaded " \
           "5 hours ago)" in r.err
    assert "hint: --min-release-age 0 takes files of any age (or pin the version with ==, " \
           "which is exempt)" in r.err


def test_a_new_file_of_an_old_release_waits_too(index: LocalIndex, venv: Path, safepip,
                                                tmp_path: Path) -> None:
    """A wheel added to an old version (what a hijacked account can do without a new
    version number) is neither installed nor locked until it is old enough."""
    old = index.add(make_wheel("lib", "1.0"))
    # a more specific tag than the old wheel's: the better file, were it old enough
    new = index.add(make_wheel("lib", "1.0", tag="py311-none-any"), upload_time=_ago(hours=1))
    r = safepip("install", "lib")
    assert r.code == 0, r.text
    assert "Tag: py3-none-any" in (site_packages(venv) / "lib-1.0.dist-info" / "WHEEL"
                                   ).read_text()
    assert safepip("lock", "--index-url", index.url, "lib").code == 0
    text = (tmp_path / "requirements.txt").read_text()
    assert old.sha256 in text and new.sha256 not in text
    # locked again, the pin is kept, and the new file of its version still waits
    r = safepip("lock", "--index-url", index.url, "lib")
    assert r.code == 0 and "kept from the lock" not in r.err
    text = (tmp_path / "requirements.txt").read_text()
    assert "lib==1.0" in text and old.sha256 in text and new.sha256 not in text
    # pinned with ==, the version is taken as it is now: every file of it is locked
    assert safepip("lock", "--index-url", index.url, "-U", "lib==1.0").code == 0
    text = (tmp_path / "requirements.txt").read_text()
    assert old.sha256 in text and new.sha256 in text


def test_pages_without_upload_times_cannot_be_judged(index: LocalIndex, venv: Path,
                                                     safepip) -> None:
    index.format = "html"  # PEP 503 pages carry no upload time
    index.add(make_wheel("lib", "1.0"))
    index.add(make_wheel("lib", "2.0"), upload_time=_ago(hours=3))
    r = safepip("install", "lib")
    assert r.code == 0, r.text
    assert _installed(venv, "lib") == ["lib-2.0.dist-info"]


def test_a_lock_applies_it_to_what_it_newly_picks(index: LocalIndex, safepip,
                                                  tmp_path: Path) -> None:
    index.add(make_wheel("lib", "1.0"))
    index.add(make_wheel("lib", "2.0"), upload_time=_ago(hours=3))
    index.add(make_wheel("other", "1.0"))
    index.add(make_wheel("other", "2.0"), upload_time=_ago(hours=3))
    lock = tmp_path / "requirements.txt"
    r = safepip("lock", "--index-url", index.url, "lib", "other")
    assert r.code == 0, r.text
    assert "lib==1.0" in lock.read_text() and "other==1.0" in lock.read_text()
    assert "lib: 2.0 held back" in r.err
    # a lock made without the cooldown keeps its pins when locked again with it...
    r = safepip("lock", "--index-url", index.url, "--min-release-age", "0", "-U", "lib",
                "other")
    assert r.code == 0, r.text
    assert "lib==2.0" in lock.read_text() and "other==2.0" in lock.read_text()
    r = safepip("lock", "--index-url", index.url, "-P", "other", "lib", "other")
    assert r.code == 0, r.text
    text = lock.read_text()
    assert "lib==2.0" in text
    assert "lib 2.0 has files uploaded 3 hours ago, inside the 2-day cooldown: taken " \
           "because it is kept from the lock" in r.err
    # ... while what it picks anew (-P other) waits
    assert "other==1.0" in text
    # --check judges the same way: the lock is what a new lock would write
    r = safepip("lock", "--index-url", index.url, "--check", "lib", "other")
    assert r.code == 0, r.text


def test_a_bad_age_is_a_usage_error(index: LocalIndex, venv: Path, safepip, clean) -> None:
    index.add(make_wheel("lib", "1.0"))
    with clean():
        r = safepip("install", "--min-release-age", "soon", "lib")
    assert r.code == 2
    assert "error: --min-release-age 'soon' is not an age" in r.err


def test_environments_locked_side_by_side_say_it_once(index: LocalIndex, safepip,
                                                     tmp_path: Path) -> None:
    index.add(make_wheel("lib", "1.0"))
    index.add(make_wheel("lib", "2.0"), upload_time=_ago(hours=3))
    r = safepip("lock", "--index-url", index.url, "-o", "pylock.toml", "--platform", "linux",
                "--platform", "windows", "--platform", "macos", "lib")
    assert r.code == 0, r.text
    assert r.err.count("lib: 2.0 held back") == 1
    assert 'version = "1.0"' in (tmp_path / "pylock.toml").read_text()
