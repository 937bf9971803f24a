"""Settings: flags > ``SAFEPIP_*`` > pip's ``PIP_*`` variables > pip.conf files > defaults.

safepip reads the pip settings that say *where packages come from* (index URLs,
trusted hosts, a CA bundle, a timeout, constraint files), so that a machine set up for
pip works the same for safepip. Settings that would weaken a check are never taken
from pip's configuration. ``--isolated`` (or ``SAFEPIP_ISOLATED=1``) ignores all of it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from safepip._record import field, record
from safepip.locate import cache_root
from safepip.locate import no_cache as no_cache_wanted

PYPI_SIMPLE = "https://pypi.org/simple/"

if TYPE_CHECKING:
    from safepip.index.http import HttpClient


@record(frozen=True)
class PipSettings:
    """What was read from pip's configuration, and where from."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()
    cert: str | None = None
    timeout: float | None = None
    no_index: bool = False
    proxy: str | None = None
    sources: tuple[str, ...] = ()


@record(frozen=True)
class Config:
    """The settings one run of safepip works with."""

    index_url: str = PYPI_SIMPLE
    extra_index_urls: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    cert: str | None = None
    timeout: float = 30.0
    retries: int = 3
    cache_dir: str = ""
    no_cache: bool = False
    no_index: bool = False
    jobs: int = 8
    offline: bool = False  # nothing from the network: the cache only
    proxy: str | None = None  # --proxy or pip's; None: the *_proxy environment variables
    notes: tuple[str, ...] = field(default=(), compare=False)

    def http(self) -> HttpClient:
        from safepip.index.http import HttpClient, Proxies

        return HttpClient(trusted_hosts=self.trusted_hosts, cert=self.cert,
                          timeout=self.timeout, retries=self.retries, offline=self.offline,
                          proxies=Proxies.from_environment(self.proxy))

    @property
    def index_urls(self) -> list[str]:
        if self.no_index:
            return []
        urls = [self.index_url, *self.extra_index_urls]
        out: list[str] = []
        for u in urls:
            if u not in out:
                out.append(u)
        return out


def _split(value: str) -> tuple[str, ...]:
    return tuple(v for v in value.split() if v)


def _pip_config_files() -> list[Path]:
    env_file = os.environ.get("PIP_CONFIG_FILE")
    if env_file is not None:
        # pip: PIP_CONFIG_FILE=os.devnull means "no configuration files at all"
        return [] if env_file == os.devnull else [Path(env_file)]
    files: list[Path] = []
    xdg_dirs = os.environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(os.pathsep)
    files += [Path(d) / "pip" / "pip.conf" for d in reversed(xdg_dirs) if d]
    files.append(Path("/etc/pip.conf"))
    home = Path.home()
    files.append(home / ".pip" / "pip.conf")
    xdg_home = os.environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    files.append(Path(xdg_home) / "pip" / "pip.conf")
    venv = os.environ.get("VIRTUAL_ENV")
    if venv:
        files.append(Path(venv) / "pip.conf")
    return files


_KEYS = ("index-url", "extra-index-url", "trusted-host", "find-links", "constraint", "cert",
         "timeout", "default-timeout", "no-index", "proxy")


def read_pip_settings(environ: dict[str, str] | None = None) -> PipSettings:
    """pip's index-related settings, from its config files and ``PIP_*`` variables."""
    env = os.environ if environ is None else environ
    values: dict[str, str] = {}
    sources: list[str] = []
    for path in _pip_config_files():
        # opened, not tested first: an absent file is then a read that failed, which a
        # lock's memo (lock.memo) sees, so that a pip.conf created later is noticed
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError):
            continue
        import configparser  # (not needed with --isolated)

        parser = configparser.RawConfigParser()
        try:
            parser.read_string(text, source=str(path))
        except configparser.Error:
            continue
        found = False
        for section in ("global", "install"):
            if parser.has_section(section):
                for key in _KEYS:
                    if parser.has_option(section, key):
                        values[key] = parser.get(section, key)
                        found = True
        if found:
            sources.append(str(path))
    for key in _KEYS:
        var = "PIP_" + key.upper().replace("-", "_")
        if var in env:
            values[key] = env[var]
            sources.append(var)
    timeout = values.get("timeout") or values.get("default-timeout")
    try:
        timeout_f = float(timeout) if timeout else None
    except ValueError:
        timeout_f = None
    return PipSettings(
        index_url=values.get("index-url") or None,
        extra_index_urls=_split(values.get("extra-index-url", "")),
        trusted_hosts=_split(values.get("trusted-host", "")),
        find_links=_split(values.get("find-links", "")),
        constraints=_split(values.get("constraint", "")),
        cert=values.get("cert") or None,
        timeout=timeout_f,
        no_index=values.get("no-index", "").lower() in ("1", "true", "yes", "on"),
        proxy=values.get("proxy") or None,
        sources=tuple(sources),
    )


def isolated_from_env() -> bool:
    return os.environ.get("SAFEPIP_ISOLATED", "").lower() in ("1", "true", "yes")


def build_config(
    *,
    isolated: bool,
    index_url: str | None,
    extra_index_urls: list[str],
    trusted_hosts: list[str],
    find_links: list[str],
    no_index: bool,
    no_cache: bool,
    cache_dir: str | None,
    timeout: float | None,
    cert: str | None,
    offline: bool = False,
    proxy: str | None = None,
) -> tuple[Config, PipSettings]:
    """Merge flags with pip's settings (unless isolated) into a ``Config``."""
    pip = PipSettings() if isolated else read_pip_settings()
    notes: list[str] = []
    if pip.sources:
        notes.append("pip settings read from " + ", ".join(pip.sources))
    env_index = os.environ.get("SAFEPIP_INDEX_URL")
    idx = index_url or env_index or pip.index_url or PYPI_SIMPLE
    # Flags replace pip's extra indexes rather than adding to them, as pip does for
    # the same option given on the command line.
    extras = tuple(extra_index_urls) if extra_index_urls else pip.extra_index_urls
    links = tuple(find_links) if find_links else pip.find_links
    cfg = Config(
        index_url=idx,
        extra_index_urls=extras,
        trusted_hosts=tuple(trusted_hosts) + pip.trusted_hosts,
        find_links=links,
        cert=cert or pip.cert,
        timeout=timeout or pip.timeout or 30.0,
        cache_dir=cache_root(cache_dir),
        no_cache=no_cache_wanted(no_cache),
        no_index=no_index or pip.no_index,
        offline=offline,
        proxy=proxy or pip.proxy,
        notes=tuple(notes),
    )
    return cfg, pip
