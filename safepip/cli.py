"""The command line: pip-compatible flags, and the ONLY place that prints errors and exits."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time

from safepip import __version__
from safepip.errors import SafepipError, UsageError
from safepip.ui import UI

# typing is not imported at run time (4 ms of a lock answered from its memo)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from typing import Any

    from packaging.version import Version

    from safepip.attest.trust import Policy
    from safepip.config import Config, PipSettings
    from safepip.fetch.cache import Cache
    from safepip.pipeline import Outcome
    from safepip.reqfile import RequirementSet
    from safepip.sandbox import Limits

PROG = "safepip"
DESCRIPTION = """\
safepip installs Python packages like `pip install`, safely by default:
every file's hash is checked, PEP 740 attestations say who published it
(and a change of publisher is caught), no package's build code runs on your
machine, and wheels that try to escape their directory, overwrite other
packages or run code at every Python start are refused, each with a flag to
override.
"""


def _add_install(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 sync: bool = False) -> None:
    if sync:
        p = sub.add_parser(
            "sync",
            help="make the environment exactly a lock: install it, remove the rest",
            description="Install exactly the packages of a lock (pylock.toml, or a "
                        "requirements.txt\nwhose every line is pinned with ==), nothing "
                        "resolved, every hash checked,\nand remove every other package "
                        "(pip, setuptools, wheel and safepip are kept\nunless the lock "
                        "lists them).",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog="examples:\n  safepip sync pylock.toml\n"
                   "  safepip sync requirements.txt --dry-run",
        )
        p.add_argument("lock_files", nargs="+", metavar="LOCK",
                       help="pylock.toml or a pinned requirements.txt")
    else:
        p = sub.add_parser(
            "install",
            help="install packages into the active virtual environment",
            description="Install packages into the active virtual environment "
                        "($VIRTUAL_ENV, or .venv here or above, or --python). Takes pip's "
                        "arguments.",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog="examples:\n  safepip install requests\n"
                   "  safepip install 'django>=5,<6' 'rich[jupyter]'\n"
                   "  safepip install -r requirements.txt -c constraints.txt\n"
                   "  safepip install -U httpx\n"
                   "  safepip install --dry-run --report out.json flask",
        )
        _add_what_to_install(p)
    _add_where(p.add_argument_group("where to install"))
    _add_index_options(p.add_argument_group("package index"))
    g = p.add_argument_group("safety and builds")
    g.add_argument("--allow-pth", action="append", default=[], metavar="NAME",
                   help="allow this package to install a .pth file that runs code at "
                        "every Python start")
    _add_cooldown_option(g)
    _add_sandbox_options(g)
    _add_attestation_options(g)
    g = p.add_argument_group("output and cache")
    g.add_argument("--dry-run", action="store_true",
                   help="resolve and report, but download and install nothing")
    g.add_argument("--report", metavar="FILE",
                   help="write pip's installation report (JSON) to FILE ('-' for stdout)")
    g.add_argument("--no-cache", "--no-cache-dir", dest="no_cache", action="store_true",
                   help="do not read or write the cache")
    g.add_argument("--cache-dir", metavar="DIR", help="the cache directory")
    g.add_argument("--link-mode", choices=["hardlink", "copy"],
                   default=os.environ.get("SAFEPIP_LINK_MODE", "hardlink"),
                   help="hardlink files from the cache (default, as uv does; each is hashed "
                        "against its wheel's RECORD first, and copied when the cache is on "
                        "another filesystem), or copy them: slower, but editing a file in "
                        "site-packages then changes no other environment "
                        "(SAFEPIP_LINK_MODE)")
    g.add_argument("-q", "--quiet", action="count", default=0, help="less output")
    g.add_argument("-v", "--verbose", action="count", default=0, help="more output")
    g.add_argument("--progress-bar", choices=["on", "off", "auto"], default="auto")
    for compat in ("--disable-pip-version-check", "--no-build-isolation", "--no-color",
                   "--no-warn-script-location", "--no-compile", "--compile"):
        g.add_argument(compat, action="store_true", help=argparse.SUPPRESS)
    g.add_argument("--root-user-action", help=argparse.SUPPRESS)


def _add_where(g: argparse._ArgumentGroup) -> None:
    """The environment: install, sync and uninstall take the same options."""
    g.add_argument("--python", metavar="PATH",
                   help="the interpreter or environment directory to work on")
    g.add_argument("--system", action="store_true",
                   help="the system interpreter found on PATH")
    g.add_argument("--break-system-packages", action="store_true",
                   help="with --system: change even an externally managed (PEP 668) "
                        "environment")
    g.add_argument("-t", "--target", metavar="DIR", help="a plain directory")
    g.add_argument("--prefix", metavar="DIR", help="an installation prefix")
    g.add_argument("--user", action="store_true", help="the user site")


def _add_what_to_install(p: argparse.ArgumentParser) -> None:
    p.add_argument("requirements_args", nargs="*", metavar="REQUIREMENT",
                   help="a requirement (name, name[extra]>=1, name @ URL) or a path to a wheel")
    g = p.add_argument_group("what to install")
    g.add_argument("-r", "--requirement", action="append", default=[], metavar="FILE",
                   help="install from a requirements file (may be repeated)")
    g.add_argument("-c", "--constraint", action="append", default=[], metavar="FILE",
                   help="constrain versions with a constraints file")
    g.add_argument("-e", "--editable", action="append", default=[], metavar="PATH",
                   help="editable (PEP 660) install of a local project, built in the sandbox")
    g.add_argument("-U", "--upgrade", action="store_true",
                   help="upgrade the named packages to the newest allowed versions")
    g.add_argument("--upgrade-strategy", choices=["only-if-needed", "eager"],
                   default="only-if-needed",
                   help="with -U: upgrade dependencies only when needed (default) or all")
    g.add_argument("--force-reinstall", action="store_true",
                   help="reinstall everything, even what is up to date")
    g.add_argument("--no-deps", action="store_true", help="do not install dependencies")
    g.add_argument("--pre", action="store_true", help="allow pre-release versions")
    g.add_argument("--only-binary", action="append", default=[], metavar="NAMES",
                   help="wheels only for these (comma-separated, or :all:)")
    g.add_argument("--no-binary", action="append", default=[], metavar="NAMES",
                   help="never use wheels for these (they then need a build)")
    g.add_argument("--prefer-binary", action="store_true", help="accepted for pip "
                   "compatibility; safepip always prefers wheels")
    g.add_argument("--require-hashes", action="store_true",
                   help="require a --hash for every requirement (hash-checking mode)")


def _add_sandbox_options(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--sandbox", choices=["auto", "docker", "podman", "bwrap"],
                   default=os.environ.get("SAFEPIP_SANDBOX", "auto"),
                   help="where source builds run (auto: Docker if its engine answers, else "
                        "Podman's socket, else bubblewrap)")
    g.add_argument("--unsafe-build-on-host", action="store_true",
                   help="build sources on this machine, with your rights: NOT sandboxed")
    g.add_argument("--build-timeout", type=float, metavar="SECONDS",
                   help="wall-time limit of one build (default 1800)")
    g.add_argument("--build-memory", metavar="SIZE",
                   help="memory limit of one build, e.g. 8g (default 8g)")
    g.add_argument("--build-output", metavar="SIZE",
                   help="limit on what one build may write, e.g. 4g (default 4g)")
    g.add_argument("--build-processes", type=int, metavar="N",
                   help="limit on processes of one build (default 2048)")


def _add_attestation_options(g: argparse._ArgumentGroup) -> None:
    # bare, it means every package (main() rewrites it so that it never takes the
    # requirement after it as its value); --require-attestations=NAME names one
    g.add_argument("--require-attestations", action="append", default=[],
                   metavar="[=NAME]",
                   help="refuse packages without a verified PEP 740 attestation: all of "
                        "them, or with =NAME only that one (may be repeated)")
    g.add_argument("--skip-attestations", action="append", default=[], metavar="NAME",
                   help="do not check NAME's attestation or publisher (not recommended)")


def _add_cooldown_option(g: argparse._ArgumentGroup) -> None:
    from safepip.cooldown import DEFAULT

    g.add_argument("--min-release-age", metavar="AGE",
                   default=os.environ.get("SAFEPIP_MIN_RELEASE_AGE") or DEFAULT,
                   help="take no file uploaded less than AGE ago (2d, 12h, 30m; a plain "
                        "number is days; 0 turns it off): a compromised account's new "
                        "release waits out the days it takes to be caught. A version "
                        "pinned with == is exempt, and said to be (default: 2d, or "
                        "SAFEPIP_MIN_RELEASE_AGE)")


def _min_release_age(args: argparse.Namespace) -> float:
    from safepip.cooldown import parse_age

    return parse_age(args.min_release_age)


def _attest_policy(args: argparse.Namespace) -> Policy:
    from safepip.attest.trust import Policy

    return Policy(require=frozenset(_names(args.require_attestations)),
                  skip=frozenset(_names(args.skip_attestations)))


def _size(text: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
    t = text.strip().lower().rstrip("b")
    try:
        if t and t[-1] in units:
            return int(float(t[:-1]) * units[t[-1]])
        return int(t)
    except ValueError as exc:
        raise UsageError(f"{text!r} is not a size (e.g. 512m, 8g)") from exc


def _limits(args: argparse.Namespace) -> Limits | None:
    """The build limits the flags ask for (None: the defaults)."""
    if not (args.build_timeout or args.build_memory or args.build_processes
            or args.build_output):
        return None
    from safepip.sandbox import Limits

    base = Limits()
    return Limits(
        timeout=args.build_timeout or base.timeout,
        memory=_size(args.build_memory) if args.build_memory else base.memory,
        cpus=base.cpus,
        pids=args.build_processes or base.pids,
        output=_size(args.build_output) if args.build_output else base.output,
        log=base.log,
    )


def _add_index_options(g: argparse._ArgumentGroup) -> None:
    g.add_argument("-i", "--index-url", metavar="URL",
                   help="the main index (default: PyPI, or pip's configured index)")
    g.add_argument("--extra-index-url", action="append", default=[], metavar="URL",
                   help="more indexes; a project is taken only from the first index that has "
                        "it")
    g.add_argument("--no-index", action="store_true", help="use no index")
    g.add_argument("-f", "--find-links", action="append", default=[], metavar="DIR|URL",
                   help="also look for files here: a directory, a file, or a page of links "
                        "(with --no-index: only here)")
    g.add_argument("--trusted-host", action="append", default=[], metavar="HOST",
                   help="allow plain http for this host")
    g.add_argument("--cert", metavar="FILE", help="extra CA bundle")
    g.add_argument("--proxy", metavar="URL",
                   help="an http:// proxy, as http://[user:password@]host:port (default: "
                        "https_proxy / http_proxy, minus no_proxy)")
    g.add_argument("--timeout", type=float, metavar="SECONDS", help="network timeout")
    g.add_argument("--isolated", action="store_true",
                   help="ignore pip's configuration files and PIP_* variables")
    g.add_argument("--offline", action="store_true",
                   help="use the network for nothing: index pages, files and provenance "
                        "from the cache only (attestations are verified offline always)")


def _add_lock(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "lock", help="write a hash-pinned requirements.txt or pylock.toml",
        description="Resolve the project's requirements (pyproject.toml, or -r FILE, or "
                    "names)\nfor this interpreter and write them pinned, with the sha256 of "
                    "every file\nof each pinned version, in pip-compile's shape. Pins of an "
                    "existing lock are\nkept unless upgraded. The same lock again, with "
                    "nothing it read changed and\nits index pages still fresh, is answered "
                    "from the cache (SAFEPIP_NO_LOCK_MEMO=1\nresolves anew).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  safepip lock                      # pyproject.toml -> "
               "requirements.txt\n  safepip lock --extra dev -o dev.txt\n"
               "  safepip lock -r requirements.in\n  safepip lock --check  # in CI",
    )
    p.add_argument("requirements_args", nargs="*", metavar="REQUIREMENT")
    g = p.add_argument_group("what to lock")
    g.add_argument("-r", "--requirement", action="append", default=[], metavar="FILE")
    g.add_argument("-c", "--constraint", action="append", default=[], metavar="FILE")
    g.add_argument("--extra", action="append", default=[], metavar="NAME",
                   help="include [project.optional-dependencies] NAME")
    g.add_argument("--group", action="append", default=[], metavar="NAME",
                   help="include the PEP 735 [dependency-groups] NAME")
    g.add_argument("-o", "--output-file", default=None, metavar="FILE",
                   help="default: requirements.txt, or pylock.toml with --format pylock")
    g.add_argument("--format", choices=["requirements", "pylock"], default=None,
                   help="requirements.txt with hashes, or PEP 751 pylock.toml (also chosen "
                        "by an output file named pylock*.toml)")
    g.add_argument("-U", "--upgrade", action="store_true", help="re-pin everything")
    g.add_argument("-P", "--upgrade-package", action="append", default=[], metavar="NAME",
                   help="re-pin this package (may be repeated)")
    g.add_argument("--check", action="store_true",
                   help="exit 1 when the lock no longer matches the inputs; write nothing")
    g.add_argument("--pre", action="store_true", help="allow pre-releases")
    g.add_argument("--only-binary", action="append", default=[], metavar="NAMES")
    g.add_argument("--no-binary", action="append", default=[], metavar="NAMES")
    g.add_argument("--python", metavar="PATH", help="resolve for this interpreter")
    g.add_argument("--python-version", metavar="X.Y", action="append", default=[],
                   help="resolve for this Python version instead of the interpreter's "
                        "(repeat it for a pylock.toml that covers several)")
    g.add_argument("--platform", metavar="PLATFORM", action="append", default=[],
                   help="resolve for this platform: manylinux_2_28_x86_64, "
                        "musllinux_1_2_aarch64, macosx_12_0_arm64, win_amd64, or linux, "
                        "linux-arm64, macos, macos-x86_64, windows (repeat it for a "
                        "pylock.toml that covers several)")
    _add_index_options(p.add_argument_group("package index"))
    g = p.add_argument_group("builds, attestations, output and cache")
    _add_cooldown_option(g)
    _add_sandbox_options(g)
    _add_attestation_options(g)
    g.add_argument("--no-cache", "--no-cache-dir", dest="no_cache", action="store_true")
    g.add_argument("--cache-dir", metavar="DIR")
    g.add_argument("-q", "--quiet", action="count", default=0)
    g.add_argument("-v", "--verbose", action="count", default=0)
    g.add_argument("--progress-bar", choices=["on", "off", "auto"], default="auto")


def _add_sandbox_cmd(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sandbox", help="the sandbox that source builds run in",
                       description="Inspect or prepare the sandbox that builds run in.")
    ssub = p.add_subparsers(dest="sandbox_command", metavar="ACTION", required=True)
    st = ssub.add_parser("status", help="which backend builds would use, and why")
    st.add_argument("--sandbox", choices=["auto", "docker", "podman", "bwrap"],
                    default=os.environ.get("SAFEPIP_SANDBOX", "auto"))
    bi = ssub.add_parser("build-image",
                         help="build the sandbox image / root filesystem from Debian packages")
    bi.add_argument("--rootfs", help="where the root filesystem goes (bubblewrap's root)")
    bi.add_argument("--image", help="the Docker image name to import it as")
    bi.add_argument("--from", dest="base", metavar="IMAGE",
                    help="build the Docker image on this base image with Python instead "
                         "(e.g. python:3.12-slim-bookworm, or your registry's mirror of "
                         "it), through the Docker API; bubblewrap's root is not touched")
    bi.add_argument("-v", "--verbose", action="count", default=0, help="show the build")


def _add_uninstall(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "uninstall", help="remove packages from the environment",
        description="Remove installed distributions, each by the files its RECORD lists "
                    "(only inside the\nenvironment, and not files another distribution "
                    "owns), all in one transaction.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  safepip uninstall requests\n  safepip uninstall -r "
               "requirements.txt --dry-run",
    )
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("-r", "--requirement", action="append", default=[], metavar="FILE",
                   help="uninstall what this requirements file names")
    p.add_argument("-y", "--yes", action="store_true",
                   help="accepted for pip compatibility (safepip does not ask)")
    p.add_argument("--dry-run", action="store_true", help="say what would be removed")
    _add_where(p.add_argument_group("which environment"))
    p.add_argument("-q", "--quiet", action="count", default=0)
    p.add_argument("-v", "--verbose", action="count", default=0)


def _uninstall(args: argparse.Namespace, ui: UI) -> int:
    from safepip import pipeline
    from safepip.reqfile import RequirementSet, read_file

    rs = RequirementSet()
    for path in args.requirement:
        read_file(path, rs)
    names = list(args.names) + [r.name for r in rs.requirements]
    if not names:
        raise UsageError("nothing to uninstall", hint="name a package, or use -r FILE")
    target, found, missing = pipeline.uninstall(
        names, python=args.python, system=args.system, target_dir=args.target,
        prefix=args.prefix, user=args.user,
        break_system_packages=args.break_system_packages, dry_run=args.dry_run, ui=ui)
    for name in missing:
        ui.warn(f"{name} is not installed in {target.describe()}")
    verb = "Would remove" if args.dry_run else "Removed"
    for dist in found:
        ui.info(f"{verb} {dist.name} {dist.version}")
    return 0


def _add_trust(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "trust", help="show or change the publisher trusted for each project",
        description="safepip remembers the first verified PEP 740 publisher of each\n"
                    "project and then refuses releases by anyone else, or without an\n"
                    "attestation. Without arguments: list what is trusted.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  safepip trust\n"
               "  safepip trust requests --publisher github:psf/requests\n"
               "  safepip trust requests --reset\n"
               "  safepip trust --root trusted_root.json   # a newer Sigstore root",
    )
    p.add_argument("name", nargs="?", metavar="NAME", help="a project")
    p.add_argument("--publisher", metavar="SPEC",
                   help="trust this publisher for NAME: github:OWNER/REPO, "
                        "gitlab:NAMESPACE/PROJECT or google:EMAIL")
    p.add_argument("--reset", action="store_true",
                   help="forget NAME's publisher (the next attested release is trusted)")
    p.add_argument("--root", metavar="FILE",
                   help="verify with this (newer) Sigstore trusted_root.json from now on")
    p.add_argument("--reset-root", action="store_true",
                   help="go back to the Sigstore trusted root shipped with safepip")


def _add_verify(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "verify", help="show and check the PEP 740 provenance of a file or release",
        description="Verify the PEP 740 attestations of a distribution file (a path) or\n"
                    "of every file of a release (NAME==VERSION), offline, and show who\n"
                    "published it: repository, workflow, commit, when, and its\n"
                    "transparency-log entry. The repository URLs the project declares\n"
                    "are compared with the one its attestation proves.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  safepip verify sigstore==3.6.1\n"
               "  safepip verify ./dist/pkg-1.0.tar.gz --provenance pkg-1.0.tar.gz.provenance",
    )
    p.add_argument("what", metavar="FILE|NAME==VERSION")
    p.add_argument("--provenance", metavar="FILE",
                   help="the provenance JSON of FILE (default: asked from the index)")
    _add_index_options(p.add_argument_group("package index"))
    p.add_argument("--no-cache", "--no-cache-dir", dest="no_cache", action="store_true")
    p.add_argument("--cache-dir", metavar="DIR")
    p.add_argument("-q", "--quiet", action="count", default=0)
    p.add_argument("-v", "--verbose", action="count", default=0)


def make_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or (``command``) only that command's part: building the
    seven sub-parsers costs a run ~10 ms, most of it gettext looking for translations."""
    parser = argparse.ArgumentParser(
        prog=PROG, description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'safepip COMMAND --help' for a command's options.",
    )
    parser.add_argument("-V", "--version", action="version",
                        version=f"safepip {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands: dict[str, Callable[[], None]] = {
        "install": lambda: _add_install(sub),
        "sync": lambda: _add_install(sub, sync=True),
        "uninstall": lambda: _add_uninstall(sub),
        "lock": lambda: _add_lock(sub),
        "trust": lambda: _add_trust(sub),
        "verify": lambda: _add_verify(sub),
        "sandbox": lambda: _add_sandbox_cmd(sub),
    }
    for name, add in commands.items():
        if command not in commands or command == name:
            add()
    return parser


def _names(values: list[str]) -> set[str]:
    from packaging.utils import canonicalize_name

    out: set[str] = set()
    for v in values:
        for part in v.split(","):
            part = part.strip()
            if part:
                out.add(part if part in (":all:", ":none:") else canonicalize_name(part))
    return out


def _requirements(args: argparse.Namespace) -> RequirementSet:
    """The requirements and constraints named on the command line and in -r/-c files."""
    from safepip.reqfile import RequirementSet, parse_requirement, read_file

    rs = RequirementSet()
    for text in args.requirements_args:
        rs.requirements.append(parse_requirement(text, "command line", os.getcwd()))
    for path in args.requirement:
        read_file(path, rs)
    for path in args.constraint:
        read_file(path, rs, constraint=True)
    return rs


@contextlib.contextmanager
def _probe_ahead(args: argparse.Namespace, for_lock: bool) -> Iterator[None]:
    """Start asking the target interpreter for its facts now, in the background (a new
    interpreter process: ~50 ms, otherwise waited for after the imports that follow),
    unless they are cached. Finding the interpreter is done again by the run, which
    reports any problem; a probe the run did not take over is stopped at the end."""
    from safepip import locate
    from safepip.fetch.cache import Cache

    try:
        exe = locate.locate(args.python, system=getattr(args, "system", False),
                            target_dir=getattr(args, "target", None), for_lock=for_lock)
    except SafepipError:
        exe = None
    if exe is not None:
        no_cache = args.no_cache or os.environ.get("SAFEPIP_NO_CACHE", "") == "1"
        cache = None if no_cache else Cache(
            os.path.abspath(args.cache_dir) if args.cache_dir else locate.default_cache_dir())
        key = locate.fingerprint(exe) if cache is not None else None
        if cache is None or key is None or cache.get_page(key) is None:
            from safepip import target  # (the probe's module: only when it must run)

            target.start_probe(exe, cache)
    try:
        yield
    finally:
        # probes can only have been started if the module was imported
        if "safepip.target" in sys.modules:
            sys.modules["safepip.target"].drop_started()


def _config(args: argparse.Namespace, rs: RequirementSet) -> tuple[Config, PipSettings]:
    """Flags (and option lines of requirements files) merged with pip's settings."""
    from safepip.config import build_config, isolated_from_env

    return build_config(
        isolated=args.isolated or isolated_from_env(),
        index_url=args.index_url or rs.index_url,
        extra_index_urls=args.extra_index_url + rs.extra_index_urls,
        trusted_hosts=args.trusted_host + rs.trusted_hosts,
        find_links=args.find_links + rs.find_links,
        no_index=args.no_index or rs.no_index,
        no_cache=args.no_cache,
        cache_dir=args.cache_dir,
        timeout=args.timeout,
        cert=args.cert,
        offline=args.offline,
        proxy=args.proxy,
    )


def _install(args: argparse.Namespace, ui: UI) -> int:
    from safepip.reqfile import parse_requirement, read_file

    sync = args.command == "sync"
    if sync:
        rs = _lock_requirements(args.lock_files)
    else:
        rs = _requirements(args)
        for path in args.editable:
            rs.requirements.append(parse_requirement(path, "command line", os.getcwd(),
                                                     editable=True))
    cfg, pip_settings = _config(args, rs)
    for path in [] if sync else pip_settings.constraints:
        # pip's configured constraint files apply to safepip too (the same machine policy)
        if os.path.isfile(path):
            read_file(path, rs, constraint=True)
            ui.detail(f"constraints from pip's configuration: {path}")
    if not rs.requirements and not rs.pylocks:
        raise UsageError("nothing to install", hint="name a package, or use -r FILE")
    return _run_install(args, ui, rs, cfg, sync)


def _lock_requirements(paths: list[str]) -> RequirementSet:
    """What `safepip sync` installs: lock files whose every requirement is exact."""
    from safepip.reqfile import RequirementSet, read_file

    rs = RequirementSet()
    for path in paths:
        read_file(path, rs)
    loose = [f"{r.req} ({r.source})" for r in rs.requirements if not r.link and not any(
        s.operator in ("==", "===") for s in r.req.specifier)]
    if loose:
        raise UsageError("sync installs exactly what a lock lists, and these are not pinned "
                         "with ==:\n  - " + "\n  - ".join(loose),
                         hint="write the lock with `safepip lock`, or use `safepip install "
                              "-r` to resolve")
    if rs.constraints:
        raise UsageError("a lock given to sync cannot have -c constraints")
    return rs


def _run_install(args: argparse.Namespace, ui: UI, rs: RequirementSet, cfg: Config,
                 sync: bool) -> int:
    from packaging.utils import canonicalize_name

    from safepip import pipeline, report

    def opt(name: str, default: object = False) -> object:
        return getattr(args, name, default)  # sync has no "what to install" options

    def names(name: str) -> set[str]:
        values = getattr(args, name, [])
        return _names(values if isinstance(values, list) else [])

    rs.pre = rs.pre or bool(opt("pre"))
    rs.require_hashes = rs.require_hashes or bool(opt("require_hashes"))
    rs.only_binary |= names("only_binary")
    rs.no_binary |= names("no_binary")
    request = pipeline.InstallRequest(
        reqs=rs,
        upgrade=bool(opt("upgrade")),
        upgrade_strategy=str(opt("upgrade_strategy", "only-if-needed")),
        force_reinstall=bool(opt("force_reinstall")),
        no_deps=bool(opt("no_deps")) or sync,
        sync=sync,
        dry_run=args.dry_run,
        link_mode=args.link_mode,
        allow_pth=frozenset(canonicalize_name(n) for n in args.allow_pth),
        python=args.python,
        system=args.system,
        target_dir=args.target,
        prefix=args.prefix,
        user=args.user,
        break_system_packages=args.break_system_packages,
        sandbox=args.sandbox,
        unsafe_build_on_host=args.unsafe_build_on_host,
        limits=_limits(args),
        attest=_attest_policy(args),
        min_release_age=_min_release_age(args),
    )
    outcome = pipeline.run(request, cfg, ui)
    if args.report:
        report.write(args.report, report.build(
            outcome.to_install, outcome.target.interpreter.markers,
            pipeline.requested_extras(rs), pipeline.verification_summary(outcome)))
    _summary(outcome, ui, args.dry_run)
    return 0


def _lock(args: argparse.Namespace, ui: UI, argv: Sequence[str]) -> int:
    if args.output_file is None:
        args.output_file = "pylock.toml" if args.format == "pylock" else "requirements.txt"
    memo = _LockMemo.open(args, argv)
    if memo is not None:
        hit = memo.lookup()
        if hit is not None:
            ui.detail("nothing this lock read has changed since it was made: its answer "
                      "comes from the cache (--no-cache resolves anew)")
            for kind, msg in hit["messages"]:
                (ui.warn if kind == "warn" else ui.info)(msg)
            return _finish_lock(args, ui, hit["text"], hit["summary"])
    with memo.recorder if memo is not None else contextlib.nullcontext(), \
            _probe_ahead(args, for_lock=True):
        return _lock_resolving(args, ui, memo)


def _lock_resolving(args: argparse.Namespace, ui: UI, memo: _LockMemo | None) -> int:
    from packaging.utils import canonicalize_name

    from safepip import pipeline
    from safepip.lock import requirements as lock

    rs = _requirements(args)
    if not args.requirements_args and not args.requirement:
        lock.pyproject_requirements("pyproject.toml", args.extra, args.group, rs)
    cfg, _pip = _config(args, rs)
    rs.pre = rs.pre or args.pre
    rs.only_binary |= _names(args.only_binary)
    rs.no_binary |= _names(args.no_binary)
    preferred = {} if args.upgrade else lock.existing_pins(args.output_file)
    for name in args.upgrade_package:
        preferred.pop(canonicalize_name(name), None)
    is_pylock = args.format == "pylock" or os.path.basename(
        args.output_file).startswith("pylock.")
    targets = [(v, p) for v in (args.python_version or [None])
               for p in (args.platform or [None])]
    if len(targets) > 1 and not is_pylock:
        raise UsageError("a lock for several environments is a pylock.toml",
                         hint="add --format pylock (or -o pylock.toml)")
    cache = pipeline.new_cache(cfg)  # committed once the lock is written
    result: dict[str, Any] = {}
    recording = _RecordingUI(ui)
    try:
        code = _lock_with(args, recording, cfg, rs, preferred, targets, is_pylock, cache,
                          result)
        if memo is not None:
            why = list(dict.fromkeys(result.get("unrecorded", ["?"])))
            not_kept = ", ".join(why) if why else memo.save(cache, result, recording.said)
            if not_kept:
                ui.detail(f"this lock is not remembered: {not_kept}")
    except BaseException:
        cache.discard()
        raise
    cache.commit()
    return code


class _RecordingUI(UI):
    """The run's UI, keeping what it said (for a lock's memo to say again)."""

    def __init__(self, ui: UI, shared: _RecordingUI | None = None) -> None:
        super().__init__(ui.verbosity, ui.stream, progress=ui.progress_enabled)
        self.plain = ui
        self.said: list[tuple[str, str]] = [] if shared is None else shared.said
        self._said_lock: threading.Lock = (threading.Lock() if shared is None
                                           else shared._said_lock)

    def info(self, msg: str) -> None:
        if self._new("info", msg):
            super().info(msg)

    def warn(self, msg: str) -> None:
        if self._new("warn", msg):
            super().warn(msg)

    def _new(self, kind: str, msg: str) -> bool:
        """Said once: environments locked side by side say the same about a package."""
        with self._said_lock:
            if (kind, msg) in self.said:
                return False
            self.said.append((kind, msg))
            return True

    def quiet_copy(self) -> _RecordingUI:
        """The same, without progress bars (for environments locked side by side)."""
        copy = _RecordingUI(self.plain, self)
        copy.progress_enabled = False
        return copy


class _LockMemo:
    """``safepip lock``'s memo (safepip/lock/memo.py) for this command line."""

    def __init__(self, key: str, cache: Cache, target: str, exclude: str) -> None:
        from safepip.lock import memo

        self.key, self.cache, self.target = key, cache, target
        self.recorder = memo.Recorder([exclude])

    @classmethod
    def open(cls, args: argparse.Namespace, argv: Sequence[str]) -> _LockMemo | None:
        from safepip import locate
        from safepip.fetch.cache import Cache
        from safepip.lock import memo

        if args.no_cache or "1" in (os.environ.get("SAFEPIP_NO_CACHE", ""),
                                    os.environ.get("SAFEPIP_NO_LOCK_MEMO", "")):
            return None
        root = os.path.abspath(args.cache_dir) if args.cache_dir else locate.default_cache_dir()
        try:
            exe = locate.locate(args.python, for_lock=True)
        except SafepipError:
            return None  # the run says what is wrong
        fingerprint = locate.fingerprint(exe)
        if fingerprint is None:
            return None
        return cls(memo.key(argv, os.environ, os.getcwd()), Cache(root), fingerprint,
                   os.path.join(root, "tmp"))

    def lookup(self) -> dict[str, Any] | None:
        from safepip.lock import memo

        return memo.lookup(self.cache, self.key, self.target)

    def save(self, cache: Cache, result: dict[str, Any],
             said: list[tuple[str, str]]) -> str | None:
        from safepip.lock import memo

        return memo.save(cache, self.key, self.recorder, float(result["fresh_until"]), self.target,
                  {"text": result["text"], "summary": result["summary"], "messages": said})


def _lock_with(args: argparse.Namespace, ui: _RecordingUI, cfg: Config, rs: RequirementSet,
               preferred: dict[str, Version], targets: list[tuple[str | None, str | None]],
               is_pylock: bool, cache: Cache, result: dict[str, Any]) -> int:
    import copy
    import shlex

    from safepip import pipeline
    from safepip.lock import requirements as lock

    min_age = _min_release_age(args)

    def resolve_for(target: tuple[str | None, str | None], ui: UI) -> pipeline.Outcome:
        version, plat = target
        if len(targets) > 1:
            ui.info(f"Resolving for Python {version or 'this interpreter'} on "
                    f"{plat or 'this platform'}")
        request = pipeline.InstallRequest(
            reqs=copy.deepcopy(rs), dry_run=True, for_lock=True, preferred=preferred,
            python=args.python, sandbox=args.sandbox,
            unsafe_build_on_host=args.unsafe_build_on_host, limits=_limits(args),
            attest=_attest_policy(args), python_version=version, platform=plat,
            min_release_age=min_age)
        return pipeline.run(request, cfg, ui, cache=cache)

    # the first environment alone (it fetches the pages all share), the others side by
    # side (what is left for them is mostly their own platform's files), without
    # progress bars, which cannot share the terminal
    outcomes = [resolve_for(targets[0], ui)]
    if len(targets) > 1:
        from concurrent.futures import ThreadPoolExecutor

        quiet = ui.quiet_copy()
        with ThreadPoolExecutor(max_workers=min(4, len(targets) - 1)) as pool:
            outcomes += pool.map(lambda t: resolve_for(t, quiet), targets[1:])
    outcome = outcomes[0]
    identities = {name: att.verified.publisher for o in outcomes
                  for name, att in o.attestations.items() if att.verified is not None}
    command = "safepip lock" + "".join(f" {shlex.quote(a)}" for a in sys.argv[2:]) \
        if sys.argv[1:2] == ["lock"] else "safepip lock"
    if is_pylock:
        from safepip.lock import pylock

        text = pylock.render_environments(
            [pylock.LockedEnv(o.target.interpreter.markers, o.pins, o.files)
             for o in outcomes], identities,
            os.path.dirname(os.path.abspath(args.output_file)))
    else:
        from safepip.platforms import describe

        version, plat = targets[0]
        text = lock.render(outcome.pins, outcome.files,
                           outcome.target.interpreter.version, command, identities,
                           describe(version, plat, outcome.target.interpreter)
                           if version or plat else "this interpreter and platform",
                           options=lock.source_options(
                               cfg, outcome.find_links_used, args.output_file))
    count = len({p.name for o in outcomes for p in o.pins if p.dist})
    envs = f" for {len(outcomes)} environments" if len(outcomes) > 1 else ""
    summary = f"Locked {count} packages{envs} into {args.output_file} (every file's sha256)"
    result.update(text=text, summary=summary,
                  fresh_until=min(o.fresh_until for o in outcomes),
                  unrecorded=[u for o in outcomes for u in o.unrecorded])
    return _finish_lock(args, ui.plain, text, summary)  # said afresh by a memo's answer


def _finish_lock(args: argparse.Namespace, ui: UI, text: str, summary: str) -> int:
    """--check compares; otherwise the lock is written (the same for a lock answered
    from its memo)."""
    from safepip.lock import output

    if args.check:
        try:
            with open(args.output_file, encoding="utf-8") as f:
                current = f.read()
        except OSError:
            current = ""
        if output.body(current) != output.body(text):
            print(f"{args.output_file} is out of date: `safepip lock` would change it",
                  file=sys.stderr)
            return 1
        ui.info(f"{args.output_file} is up to date")
        return 0
    output.write(args.output_file, text)
    ui.info(summary)
    return 0


def _sandbox(args: argparse.Namespace, ui: UI) -> int:
    import subprocess

    from safepip.sandbox.bwrap import rootfs_path
    from safepip.sandbox.docker_backend import image_name
    from safepip.sandbox.select import choose, close

    if args.sandbox_command == "build-image" and args.base:
        from safepip.sandbox.docker_backend import build_image

        tag = args.image or image_name()
        version = build_image(args.base, tag, on_line=ui.detail)
        when = "" if tag == image_name() else f" when SAFEPIP_SANDBOX_IMAGE={tag}"
        print(f"built {tag} on {args.base}: Python {version} with compilers; Docker "
              f"builds use it{when}")
        return 0
    if args.sandbox_command == "build-image":
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox",
                              "build-base.sh")
        return subprocess.call(["bash", script, args.rootfs or rootfs_path(),
                                args.image or image_name()])
    choice = choose(args.sandbox)
    if choice.sandbox is not None:
        sb = choice.sandbox
        print(f"builds run in: {sb.describe()}")
        print(f"  identity: {sb.identity()}")
        print(f"  python:   {sb.python_tag()}")
        close(sb)
    else:
        print("no sandbox is available: source builds will be refused\n"
              "  to get one: install Docker (or, on Linux, bubblewrap), then run "
              "`safepip sandbox build-image`")
    for reason in choice.reasons:
        print(f"  not used: {reason}")
    return 0 if choice.sandbox is not None else 1


def _trust(args: argparse.Namespace) -> int:
    from packaging.utils import canonicalize_name

    from safepip.attest.publisher import Publisher
    from safepip.attest.trust import TrustStore, project_pins

    store = TrustStore.default()
    if args.root or args.reset_root:
        if args.root:
            digest = store.accept_root(args.root)
            print(f"attestations are now verified with the Sigstore trusted root {args.root} "
                  f"(sha256 {digest}), kept as {store.accepted_root}")
        else:
            store.reset_root()
            print("attestations are verified with the Sigstore trusted root shipped with "
                  "safepip again")
        store.save()
        return 0
    if args.name is None:
        if args.publisher or args.reset:
            raise UsageError("--publisher and --reset need a project NAME")
        pins = project_pins(os.getcwd())
        if not store.records and not pins:
            print(f"no publishers are trusted yet ({store.path}); safepip records a "
                  "project's publisher the first time it installs an attested release")
            return 0
        width = max(len(n) for n in [*store.records, *pins])
        for name, rec in sorted(pins.items()):
            print(f"{name:<{width}}  {rec.publisher.describe()}  (pinned in {rec.source})")
        for name, rec in sorted(store.records.items()):
            if name in pins:
                continue
            since = f"since {rec.version}" if rec.version else "set by hand"
            print(f"{name:<{width}}  {rec.publisher.describe()}  ({since}, {rec.recorded})")
        print(f"(trust store: {store.path})")
        return 0
    name = canonicalize_name(args.name)
    if args.reset == bool(args.publisher):
        raise UsageError("give either --publisher SPEC or --reset",
                         hint="e.g. safepip trust NAME --publisher github:OWNER/REPO")
    if args.reset:
        had = store.reset(name)
        store.save()
        print(f"{name}: {'forgotten' if had else 'was not in the trust store'}; the next "
              "attested release's publisher will be trusted")
        return 0
    try:
        publisher = Publisher.parse(args.publisher)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    old = store.records.get(name)
    store.set(name, publisher)
    store.save()
    was = f" (was {old.publisher.describe()})" if old is not None else ""
    print(f"{name}: releases must now be attested by {publisher.describe()}{was}")
    return 0


def _verify(args: argparse.Namespace, ui: UI) -> int:
    from safepip.attest.inspect import inspect_file, inspect_release
    from safepip.reqfile import RequirementSet

    cfg, _pip = _config(args, RequirementSet())
    if os.path.exists(args.what) or args.what.endswith((".whl", ".tar.gz", ".zip")):
        accounts = [inspect_file(args.what, args.provenance, cfg)]
    else:
        if args.provenance:
            raise UsageError("--provenance goes with a FILE, not NAME==VERSION")
        accounts = inspect_release(args.what, cfg)
    ok = True
    for n, acc in enumerate(accounts):
        if n:
            print()
        print("\n".join(acc.lines()))
        ok = ok and acc.result.status == "attested"
    if not ok and len(accounts) > 1:
        bad = sum(a.result.status != "attested" for a in accounts)
        print(f"\n{bad} of {len(accounts)} files are not attested")
    return 0 if ok else 1


def _fmt_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def _summary(outcome: Outcome, ui: UI, dry_run: bool) -> None:
    t = outcome.timings
    ui.info(f"Resolved {len(outcome.pins)} package{'s' if len(outcome.pins) != 1 else ''} "
            f"in {t.get('resolve', 0):.2f}s")
    if dry_run:
        if not outcome.to_install and not outcome.removed:
            ui.info("Would install nothing: everything is already satisfied")
        for dist in outcome.removed:
            ui.info(f"Would remove {dist.name} {dist.version} (not in the lock)")
        for pin in outcome.to_install:
            old = outcome.replaced.get(pin.name)
            change = f" (replacing {old})" if old is not None else ""
            att = outcome.attestations.get(pin.name)
            att_note = f" · {att.describe()}" if att is not None and att.status != "local" \
                else ""
            ui.info(f"Would install {pin.name} {pin.version}{change}{att_note}")
        return
    removed = [f" - {d.name} {d.version}  (removed: not in the lock)" for d in outcome.removed]
    if not outcome.to_install:
        if not removed:
            ui.info(f"Nothing to do: all requirements are already satisfied in "
                    f"{outcome.target.describe()}")
        for line in removed:
            ui.info(line)
        return
    fetched = [a for a in outcome.artifacts.values() if not a.from_cache]
    total = sum(a.size for a in fetched)
    ui.info(f"Downloaded {len(fetched)} file{'s' if len(fetched) != 1 else ''} "
            f"({_fmt_size(total)}), {len(outcome.artifacts) - len(fetched)} from cache, "
            f"in {t.get('download', 0):.2f}s")
    ui.info(f"Installed {len(outcome.to_install)} package"
            f"{'s' if len(outcome.to_install) != 1 else ''} into "
            f"{outcome.target.describe()} in {t.get('install', 0):.2f}s")
    width = max(len(f"{p.name} {p.version}") for p in outcome.to_install)
    for pin in outcome.to_install:
        art = outcome.artifacts[pin.name]
        old = outcome.replaced.get(pin.name)
        mark = "~" if old is not None else "+"
        label = f"{pin.name} {pin.version}"
        sources = [v.replace("the index ", "index ") for v in art.verified_by
                   if not v.startswith(("none", "built", "from the built"))]
        builds = [v for v in art.verified_by if v.startswith(("built", "from the built"))]
        what = "sdist sha256" if builds else "sha256"
        hash_note = f"{what} ✓ {'+'.join(sources)}" if sources else (
            "a local file (no hash to check it against)" if art.dist.url.startswith("file:")
            else f"{what}: no hash known")
        if builds:
            hash_note += " · " + builds[0]
        if pin.name in outcome.notes:
            hash_note = outcome.notes[pin.name]
        change = f"  (was {old})" if old is not None else ""
        att = outcome.attestations.get(pin.name)
        att_note = f" · {att.describe()}" if att is not None and att.status != "local" else ""
        ui.info(f" {mark} {label:<{width}}  {hash_note} · wheel checked{att_note}{change}")
    for line in removed:
        ui.info(line)
    for problem in outcome.broken:
        ui.warn(problem)


def _internal_error(exc: BaseException, verbosity: int) -> int:
    if verbosity > 0:
        import traceback

        traceback.print_exception(exc)
    print(f"error: internal error in safepip: {type(exc).__name__}: {exc}\n"
          "This is a bug in safepip; please report it (rerun with -v for details).",
          file=sys.stderr)
    return 70


def entry() -> None:
    """The ``safepip`` command: ``main()``, then an exit that skips the interpreter's
    teardown (module finalisation and a last garbage collection: ~10 ms of every run,
    measured on a warm lock). Safe here because by then every file safepip wrote is
    closed, its thread pools were shut down and its cache committed or discarded; what
    is left to do is flushing the standard streams, done first. The garbage collector
    runs less often too: a run is short, and its objects live until it ends."""
    import gc

    gc.set_threshold(50_000, 20, 100)
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    argv = ["--require-attestations=:all:" if a == "--require-attestations" else a
            for a in (sys.argv[1:] if argv is None else argv)]
    parser = make_parser(argv[0] if argv else None)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else 2
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    verbosity = getattr(args, "verbose", 0) - getattr(args, "quiet", 0)
    progress = {"on": True, "off": False}.get(getattr(args, "progress_bar", "auto"))
    ui = UI(verbosity, progress=progress)
    start = time.perf_counter()
    try:
        if args.command == "sandbox":
            return _sandbox(args, ui)
        if args.command == "lock":
            return _lock(args, ui, argv)  # the probe starts unless its memo answers
        if args.command == "trust":
            return _trust(args)
        if args.command == "uninstall":
            return _uninstall(args, ui)
        if args.command == "verify":
            return _verify(args, ui)
        with _probe_ahead(args, for_lock=False):
            return _install(args, ui)
    except SafepipError as exc:
        log = getattr(exc, "log", "")
        if log:
            lines = log.rstrip().splitlines()
            shown = lines[-60:] if verbosity <= 0 else lines
            print(f"--- build output{' (last 60 lines)' if len(shown) < len(lines) else ''} "
                  "---", file=sys.stderr)
            print("\n".join(shown), file=sys.stderr)
            print("--- end of build output ---", file=sys.stderr)
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; nothing was changed", file=sys.stderr)
        return 130
    except OSError as exc:
        from safepip.errors import is_disk_full

        if not is_disk_full(exc):
            return _internal_error(exc, verbosity)
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: no space left on the device{where}\n"
              "hint: free some space and run it again; an install that fails leaves the "
              "environment and the cache as they were", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no tracebacks
        return _internal_error(exc, verbosity)
    finally:
        ui.detail(f"took {time.perf_counter() - start:.2f}s")
