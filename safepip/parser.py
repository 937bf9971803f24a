"""The command line's grammar: pip-compatible flags, their help and defaults.

Apart from ``cli`` (what the commands do) so that a lock answered from its memo, which
needs no parsing (``cli._lock_from_memo``), does not import argparse (with re, enum and
gettext: a third of that run).
"""

from __future__ import annotations

import argparse
import os

from safepip import __version__

# typing is not imported at run time
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

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


def make_parser(command: str | None = None
                ) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The whole command line, or (``command``) only that command's part: building the
    seven sub-parsers costs a run ~10 ms, most of it gettext looking for translations.
    With it, the commands' own parsers by name."""
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
    return parser, sub.choices


def parse(argv: list[str]) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """The parser and what it made of ``argv``. An argument no command knows is the
    command's error, with the command's usage (argparse says it with the whole
    program's, which names no option)."""
    parser, commands = make_parser(argv[0] if argv else None)
    args, extra = parser.parse_known_args(argv)
    if extra:
        chosen = commands.get(args.command) if args.command else None
        (chosen or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    return parser, args
