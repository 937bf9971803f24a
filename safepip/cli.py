"""The command line: pip-compatible flags, and the ONLY place that prints errors and exits."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

from safepip.errors import SafepipError, UsageError
from safepip.ui import UI

# typing is not imported at run time (4 ms of a lock answered from its memo)
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator, Sequence
    from typing import Any

    from packaging.version import Version

    from safepip.attest.trust import Policy
    from safepip.config import Config, PipSettings
    from safepip.fetch.cache import Cache
    from safepip.pipeline import Outcome
    from safepip.reqfile import RequirementSet
    from safepip.sandbox import Limits


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
        cache = None if locate.no_cache(args.no_cache) else Cache(
            locate.cache_root(args.cache_dir))
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
    """A lock resolved (the memo did not answer before parsing: ``_lock_from_memo``)."""
    if args.output_file is None:
        args.output_file = "pylock.toml" if args.format == "pylock" else "requirements.txt"
    memo = _LockMemo.for_run(args, argv)
    with memo.recorder if memo is not None else contextlib.nullcontext(), \
            _probe_ahead(args, for_lock=True):
        return _lock_resolving(args, ui, memo)


def _lock_from_memo(argv: Sequence[str]) -> int | None:
    """``safepip lock`` answered from its memo before the command line is parsed
    (argparse, with the re, enum and gettext it imports, was a third of such a run). The
    memo's key is the command line itself, and the entry keeps what parsing it gave
    (the output file, --check, --python, -v and -q): a command line parsed once is
    parsed the same again. None: not answered (the run parses, and says what is wrong)."""
    if _LockMemo.off():
        return None
    try:
        hit = _LockMemo(argv, _cache_dir_in(argv)).lookup()
    except (SafepipError, OSError):
        return None
    if hit is None:
        return None
    ui = UI(hit["verbosity"])

    def answer() -> int:
        ui.detail("nothing this lock read has changed since it was made: its answer "
                  "comes from the cache (--no-cache resolves anew)")
        for kind, msg in hit["messages"]:
            (ui.warn if kind == "warn" else ui.info)(msg)
        return _finish_lock(hit["output_file"], hit["check"], ui, hit["text"],
                            hit["summary"])

    return _guarded(ui, answer)


def _cache_dir_in(argv: Sequence[str]) -> str | None:
    """--cache-dir as argparse takes it (the last one given), without parsing: where a
    memo is looked up. An entry vouches for itself (it is keyed by the whole command
    line and checks every input it read), so a place guessed wrong (an abbreviated
    option) can only miss."""
    found = None
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--cache-dir" and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith("--cache-dir="):
            found = arg.partition("=")[2]
    return found


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
            not_kept = (", ".join(why) if why
                        else memo.save(cache, args, ui, result, recording.said))
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


def _lock_target(python: str | None) -> str | None:
    """The fingerprint of the interpreter a lock with this --python is for (None: not
    located, which the run says)."""
    from safepip import locate

    try:
        return locate.fingerprint(locate.locate(python, for_lock=True))
    except SafepipError:
        return None


class _LockMemo:
    """``safepip lock``'s memo (safepip/lock/memo.py) for this command line."""

    def __init__(self, argv: Sequence[str], cache_dir: str | None,
                 target: str | None = None) -> None:
        from safepip import locate
        from safepip.fetch.cache import Cache
        from safepip.lock import memo

        root = locate.cache_root(cache_dir)
        self.key = memo.key(argv, os.environ, os.getcwd())
        self.cache, self.target = Cache(root), target
        self.recorder = memo.Recorder([os.path.join(root, "tmp")])

    @staticmethod
    def off(no_cache: bool = False) -> bool:
        from safepip import locate

        return locate.no_cache(no_cache) or os.environ.get("SAFEPIP_NO_LOCK_MEMO", "") == "1"

    @classmethod
    def for_run(cls, args: argparse.Namespace, argv: Sequence[str]) -> _LockMemo | None:
        """The memo a resolving run records into, None when it may not be kept."""
        if cls.off(args.no_cache):
            return None
        target = _lock_target(args.python)
        return None if target is None else cls(argv, args.cache_dir, target)

    def lookup(self) -> dict[str, Any] | None:
        from safepip.lock import memo

        return memo.lookup(self.cache, self.key, _lock_target)

    def save(self, cache: Cache, args: argparse.Namespace, ui: UI, result: dict[str, Any],
             said: list[tuple[str, str]]) -> str | None:
        from safepip.lock import memo

        assert self.target is not None  # (made by for_run)
        return memo.save(cache, self.key, self.recorder, float(result["fresh_until"]),
                         self.target, args.python,
                         {"text": result["text"], "summary": result["summary"],
                          "messages": said, "output_file": args.output_file,
                          "check": bool(args.check), "verbosity": ui.verbosity})


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
        # a run may add to its requirements: environments locked side by side each
        # have their own copy
        reqs = rs if len(targets) == 1 else copy.deepcopy(rs)
        request = pipeline.InstallRequest(
            reqs=reqs, dry_run=True, for_lock=True, preferred=preferred, python=args.python,
            sandbox=args.sandbox, unsafe_build_on_host=args.unsafe_build_on_host,
            limits=_limits(args),
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
    # said afresh by a memo's answer
    return _finish_lock(args.output_file, args.check, ui.plain, text, summary)


def _finish_lock(output_file: str, check: bool, ui: UI, text: str, summary: str) -> int:
    """--check compares; otherwise the lock is written (the same for a lock answered
    from its memo)."""
    from safepip.lock import output

    if check:
        try:
            with open(output_file, encoding="utf-8") as f:
                current = f.read()
        except OSError:
            current = ""
        if output.body(current) != output.body(text):
            print(f"{output_file} is out of date: `safepip lock` would change it",
                  file=sys.stderr)
            return 1
        ui.info(f"{output_file} is up to date")
        return 0
    output.write(output_file, text)
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
    if argv[:1] == ["lock"]:
        answered = _lock_from_memo(argv)
        if answered is not None:
            return answered
    from safepip.parser import parse

    try:
        parser, args = parse(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else 2
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    verbosity = getattr(args, "verbose", 0) - getattr(args, "quiet", 0)
    progress = {"on": True, "off": False}.get(getattr(args, "progress_bar", "auto"))
    ui = UI(verbosity, progress=progress)
    return _guarded(ui, lambda: _command(args, ui, argv))


def _command(args: argparse.Namespace, ui: UI, argv: Sequence[str]) -> int:
    if args.command == "sandbox":
        return _sandbox(args, ui)
    if args.command == "lock":
        return _lock(args, ui, argv)
    if args.command == "trust":
        return _trust(args)
    if args.command == "uninstall":
        return _uninstall(args, ui)
    if args.command == "verify":
        return _verify(args, ui)
    with _probe_ahead(args, for_lock=False):
        return _install(args, ui)


def _guarded(ui: UI, command: Callable[[], int]) -> int:
    """Runs a command: the one place where what went wrong becomes a message and an
    exit code."""
    start = time.perf_counter()
    try:
        return command()
    except SafepipError as exc:
        log = getattr(exc, "log", "")
        if log:
            lines = log.rstrip().splitlines()
            shown = lines[-60:] if ui.verbosity <= 0 else lines
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
            return _internal_error(exc, ui.verbosity)
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: no space left on the device{where}\n"
              "hint: free some space and run it again; an install that fails leaves the "
              "environment and the cache as they were", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no tracebacks
        return _internal_error(exc, ui.verbosity)
    finally:
        ui.detail(f"took {time.perf_counter() - start:.2f}s")
