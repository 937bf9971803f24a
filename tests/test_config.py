"""pip's configuration: what safepip takes from it, and what it leaves alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from safepip.config import read_pip_settings
from tests.conftest import site_packages
from tests.factory import make_wheel
from tests.indexserver import LocalIndex


def test_reads_pip_conf_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://mirror.example/simple\n"
                    "extra-index-url = file:///opt/pypi/simple file:///nonexistent/simple\n"
                    "constraint = /etc/xdg/pip/constraints.txt\nfind-links = /opt/wheels\n"
                    "timeout = 12\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.setenv("PIP_TRUSTED_HOST", "mirror.example")
    s = read_pip_settings()
    assert s.index_url == "https://mirror.example/simple"
    assert s.extra_index_urls == ("file:///opt/pypi/simple", "file:///nonexistent/simple")
    assert s.constraints == ("/etc/xdg/pip/constraints.txt",)
    assert s.find_links == ("/opt/wheels",)
    assert s.timeout == 12.0
    assert s.trusted_hosts == ("mirror.example",)


def test_local_file_index_and_missing_entries(index: LocalIndex, venv: Path, safepip,
                                              tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine whose pip.conf adds file:// indexes (one missing) and find-links."""
    w = make_wheel("onlylocal", "1.0")
    local = tmp_path / "local"
    (local / "simple" / "onlylocal").mkdir(parents=True)
    (local / "files").mkdir()
    (local / "files" / w.filename).write_bytes(w.data)
    (local / "simple" / "onlylocal" / "index.html").write_text(
        f'<a href="../../files/{w.filename}#sha256={w.sha256}">{w.filename}</a>')
    index.add(make_wheel("public", "1.0"))
    cons = tmp_path / "cons.txt"
    cons.write_text("public<2\n")
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nindex-url = {index.url}\n"
                    f"extra-index-url = {(local / 'simple').as_uri()} file:///nonexistent/simple\n"
                    f"find-links = /nonexistent/wheels\nconstraint = {cons}\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    index.add(make_wheel("public", "2.0"))
    r = safepip("install", "onlylocal", "public", "-v", use_index=False)
    assert r.code == 0, r.text
    sp = site_packages(venv)
    assert (sp / "onlylocal-1.0.dist-info").is_dir()
    assert (sp / "public-1.0.dist-info").is_dir()  # pip's configured constraint applied
    assert "find-links location /nonexistent/wheels does not exist: ignored" in r.err
    # --isolated ignores all of it
    r = safepip("install", "--isolated", "--dry-run", "--force-reinstall", "onlylocal")
    assert r.code == 1


def test_http_index_cannot_point_at_local_files(index: LocalIndex, venv: Path, safepip,
                                                clean) -> None:
    import json

    index.raw_pages["/simple/lib/"] = ("application/vnd.pypi.simple.v1+json", json.dumps({
        "files": [{"filename": "lib-1.0-py3-none-any.whl", "url": "file:///etc/passwd",
                   "hashes": {}}]}).encode())
    with clean():
        r = safepip("install", "lib")
    assert r.code == 1
    assert "no version of lib" in r.err or "not found" in r.err


@pytest.mark.parametrize("xdg", [None, "/x/xdg", "relative"])
def test_user_directories_are_platformdirs(monkeypatch: pytest.MonkeyPatch, xdg) -> None:
    """On Linux the cache and data directories are computed without importing
    platformdirs; they must be the ones it gives (a relative XDG value is ignored)."""
    import platformdirs

    from safepip.locate import default_cache_dir, default_data_dir

    for var in ("SAFEPIP_CACHE_DIR", "SAFEPIP_DATA_DIR", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(var, raising=False)
    if xdg is not None:
        monkeypatch.setenv("XDG_CACHE_HOME", xdg + "/cache")
        monkeypatch.setenv("XDG_DATA_HOME", xdg + "/data")
    assert default_cache_dir() == platformdirs.user_cache_dir("safepip", appauthor=False)
    assert default_data_dir() == platformdirs.user_data_dir("safepip", appauthor=False)


def test_proxy_from_flag_pip_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             index: LocalIndex, venv: Path, safepip) -> None:
    """--proxy, pip's `proxy` (pip.conf or PIP_PROXY), else the *_proxy variables; a
    proxy safepip cannot use is a clear error; the local index (loopback) is reached
    directly even with a proxy configured."""
    from safepip.config import Config, build_config

    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nproxy = http://pip-proxy.example:3128\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    assert read_pip_settings().proxy == "http://pip-proxy.example:3128"
    monkeypatch.setenv("PIP_PROXY", "http://env-proxy.example:3128")
    assert read_pip_settings().proxy == "http://env-proxy.example:3128"

    def config(**kw: object) -> Config:
        args: dict[str, object] = {
            "isolated": False, "index_url": None, "extra_index_urls": [],
            "trusted_hosts": [], "find_links": [], "no_index": False, "no_cache": True,
            "cache_dir": None, "timeout": None, "cert": None}
        return build_config(**{**args, **kw})[0]  # type: ignore[arg-type]

    assert config().proxy == "http://env-proxy.example:3128"
    assert config(proxy="http://flag.example:1").proxy == "http://flag.example:1"
    assert config(isolated=True).proxy is None  # then https_proxy & co. decide
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    client = config(isolated=True).http()
    via = client.proxies.for_origin("https", "pypi.org", 443)
    assert via is not None and (via.host, via.port) == ("proxy.example", 3128)

    index.add(make_wheel("lib"))
    r = safepip("install", "lib")  # the loopback index: not through the proxy
    assert r.code == 0, r.text
    r = safepip("install", "--proxy", "socks5://proxy.example:1080", "lib")
    assert r.code == 1 and "safepip can use only an http:// proxy" in r.err
    assert "Traceback" not in r.err
