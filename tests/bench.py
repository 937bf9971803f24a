"""``nox -s bench``: safepip against pip and uv on the same inputs, as ratios of one run.

Scenarios (each: medians of --runs, fresh venv per run, venv creation not timed):
- local mirror on 127.0.0.1 (filled once from PyPI with the 30-package set's wheels and
  their PEP 658 sidecars), cold cache and warm cache;
- PyPI itself, cold and warm;
- ``safepip lock`` against ``uv pip compile``, ``pip-compile`` and ``pip lock`` (hashes),
  on the local mirror, cold and warm;
- what attestation verification costs;
- ``safepip --version``.

Usage: python tests/bench.py [--runs N] [--only local|pypi|sandbox|attest|lock] [--set FILE]
                            [--mirror DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).parent
SET30 = HERE / "data" / "set30.txt"
PYPI = "https://pypi.org/simple/"


def clean_env() -> dict[str, str]:
    # PYTHONDONTWRITEBYTECODE (set on the CI machines) would make every safepip run
    # compile its own modules again; installed from a wheel they are compiled once
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "UV_", "SAFEPIP_"))
           and k not in ("VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["UV_NO_CONFIG"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def bin_of(name: str) -> str:
    path = shutil.which(name, path=os.path.dirname(sys.executable) + os.pathsep +
                        os.environ.get("PATH", ""))
    if not path:
        raise SystemExit(f"{name} not found: run this through `nox -s bench`")
    return path


def build_mirror(root: Path, reqs: Path) -> None:
    """Download the set's wheels with pip and lay them out as a PEP 503 index."""
    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:",
                    "-d", str(files), "-r", str(reqs), "--index-url", PYPI],
                   check=True, env=clean_env())
    write_pages(root)


# PEP 740: an index of repository version 1.3 or later lists each file's provenance, so a
# file listed without one has none, as on PyPI. The mirror's files have none (pip does
# not download provenance). Before December 2026 its pages declared no version, and
# safepip asked the mirror's Integrity API for each file's provenance (48 answers of 404,
# about 50 ms of a cold lock), which it never does against PyPI.
PAGE_HEAD = '<html><head><meta name="pypi:repository-version" content="1.3"></head><body>\n'


def write_pages(root: Path) -> None:
    """The simple pages of the wheels in ``root/files`` (and their sidecars)."""
    files = root / "files"
    projects: dict[str, list[Path]] = {}
    for whl in sorted(files.glob("*.whl")):
        name = whl.name.split("-")[0].lower().replace("_", "-").replace(".", "-")
        projects.setdefault(name, []).append(whl)
        with zipfile.ZipFile(whl) as zf:
            md = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA")
                      and n.count("/") == 1)
            (files / (whl.name + ".metadata")).write_bytes(zf.read(md))
    simple = root / "simple"
    for name, wheels in projects.items():
        d = simple / name
        d.mkdir(parents=True, exist_ok=True)
        rows = []
        for whl in wheels:
            sha = hashlib.sha256(whl.read_bytes()).hexdigest()
            msha = hashlib.sha256((files / (whl.name + ".metadata")).read_bytes()).hexdigest()
            rows.append(f'<a href="../../files/{html.escape(whl.name)}#sha256={sha}" '
                        f'data-dist-info-metadata="sha256={msha}" '
                        f'data-core-metadata="sha256={msha}">{html.escape(whl.name)}</a>')
        (d / "index.html").write_text(PAGE_HEAD + "\n".join(rows) + "\n</body></html>")


class MirrorServer(ThreadingHTTPServer):
    # socketserver's default listen backlog of 5 overflows when a tool opens a dozen
    # connections at once, and each dropped SYN costs that connection a 1 s retransmit:
    # the mirror, not the tool, would be measured
    request_queue_size = 256
    daemon_threads = True


def serve(root: Path) -> tuple[ThreadingHTTPServer, str]:
    class Quiet(SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as PyPI's CDN
        # without it, headers and body leave in two segments and Nagle waits for the
        # client's delayed ACK: 40 ms per response on a kept-alive connection
        disable_nagle_algorithm = True

        def log_message(self, *a: object) -> None:
            pass

        def end_headers(self) -> None:
            # PyPI's CDN says how long a page stays fresh (max-age=600); without it each
            # tool guesses from Last-Modified, and a mirror built a minute ago would be
            # revalidated by one tool (a tenth of its age: seconds) and not by another
            # (uv assumes ten minutes): the guess, not the tool, would be measured
            if self.path.startswith("/simple/"):
                self.send_header("Cache-Control", "max-age=600, public")
            super().end_headers()

    srv = MirrorServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}/simple/"


def fresh_venv(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


def commands(tool: str, py: Path, reqs: Path, index: str, cache: Path) -> list[str]:
    if tool.startswith("safepip"):
        link = ["--link-mode", "copy"] if tool.endswith("copy") else []
        return [bin_of("safepip"), "install", "-q", "--python", str(py), "-r", str(reqs),
                "--index-url", index, "--cache-dir", str(cache), "--isolated", *link]
    if tool == "pip":
        return [sys.executable, "-m", "pip", "--python", str(py), "install", "-q",
                "--only-binary", ":all:", "-r", str(reqs), "--index-url", index,
                "--cache-dir", str(cache)]
    return [bin_of("uv"), "pip", "install", "-q", "--python", str(py), "-r", str(reqs),
            "--index-url", index, "--cache-dir", str(cache), "--only-binary", ":all:"]


def timed(cmd: list[str], **env: str) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env={**clean_env(), **env}, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def scenario(label: str, index: str, reqs: Path, runs: int, work: Path) -> dict[str, dict]:
    results: dict[str, dict] = {}
    for warm in (False, True):
        key = f"{label} {'warm' if warm else 'cold'}"
        times: dict[str, list[float]] = {"safepip": [], "pip": [], "uv": []}
        if warm:
            times["safepip-copy"] = []
        for _ in range(runs):
            # interleave the tools within each round so that drift hits all alike
            for tool in times:
                cache = work / f"cache-{label}-{tool}"
                if not warm:
                    shutil.rmtree(cache, ignore_errors=True)
                elif not cache.exists():
                    py = fresh_venv(work / "venv")
                    timed(commands(tool, py, reqs, index, cache))  # fill the cache
                py = fresh_venv(work / "venv")
                times[tool].append(timed(commands(tool, py, reqs, index, cache)))
        med = {t: statistics.median(v) for t, v in times.items()}
        results[key] = {
            "median_s": {t: round(v, 3) for t, v in med.items()},
            "safepip/uv": round(med["safepip"] / med["uv"], 2),
            "safepip/pip": round(med["safepip"] / med["pip"], 2),
            "runs": runs,
        }
        extra = ""
        if "safepip-copy" in med:
            results[key]["safepip-copy/uv"] = round(med["safepip-copy"] / med["uv"], 2)
            extra = (f"  | --link-mode copy {med['safepip-copy']:.2f}s, /uv "
                     f"{results[key]['safepip-copy/uv']:.2f}")
        print(f"{key:>12}: safepip {med['safepip']:.2f}s  pip {med['pip']:.2f}s  "
              f"uv {med['uv']:.2f}s  | safepip/uv {results[key]['safepip/uv']:.2f}  "
              f"safepip/pip {results[key]['safepip/pip']:.2f}{extra}", flush=True)
    return results


def lock_commands(tool: str, reqs: Path, index: str, cache: Path, out: Path) -> list[str]:
    if tool.startswith("safepip"):
        # the interpreter named, as for uv: every tool locks for the same one (pip-compile
        # and pip lock for the one they run on, this one), not for what `python3` on PATH
        # is (a pyenv shim here, run only by safepip's probe)
        return [bin_of("safepip"), "lock", "-q", "-r", str(reqs), "-o", str(out),
                "--index-url", index, "--cache-dir", str(cache), "--isolated",
                "--python", sys.executable]
    if tool == "uv":
        # the interpreter named, as safepip and pip-compile lock for the one they run on:
        # left to find one on PATH, uv runs whatever `python3` is there first (a pyenv
        # shim here: +55 ms a run, which flattered every lock ratio before session 4)
        return [bin_of("uv"), "pip", "compile", "-q", "--generate-hashes", str(reqs), "-o",
                str(out), "--index-url", index, "--cache-dir", str(cache),
                "--python", sys.executable]
    if tool == "pip-compile":
        return [bin_of("pip-compile"), "-q", "--generate-hashes", str(reqs), "-o", str(out),
                "--index-url", index, "--cache-dir", str(cache), "--rebuild"]
    return [sys.executable, "-m", "pip", "lock", "-q", "-r", str(reqs), "-o",
            str(out.with_name("pylock.bench.toml")), "--index-url", index, "--cache-dir",
            str(cache)]


def lock_scenario(label: str, index: str, reqs: Path, runs: int,
                  work: Path) -> dict[str, dict]:
    """`safepip lock` against `uv pip compile --generate-hashes`, `pip-compile
    --generate-hashes` and `pip lock`: a fresh output each time (nothing kept from an
    earlier lock but what each tool keeps in its cache: safepip's lock memo among it),
    cold and warm cache."""
    results: dict[str, dict] = {}
    # "safepip resolving": the same with its lock memo off (SAFEPIP_NO_LOCK_MEMO=1), so
    # that a warm lock's resolution is measured too, not only its memo's answer
    tools = ["safepip", "safepip resolving", "uv", "pip-compile", "pip lock"]
    memo_off = {"SAFEPIP_NO_LOCK_MEMO": "1"}
    for warm in (False, True):
        key = f"lock {label} {'warm' if warm else 'cold'}"
        times: dict[str, list[float]] = {t: [] for t in tools}
        for _ in range(runs):
            for tool in tools:
                cache = work / f"lockcache-{label}-{tool.replace(' ', '-')}"
                out = work / "locked.txt"
                if not warm:
                    shutil.rmtree(cache, ignore_errors=True)
                env = memo_off if tool == "safepip resolving" else {}
                if warm and not cache.exists():
                    timed(lock_commands(tool, reqs, index, cache, out), **env)
                for f in (out, out.with_name("pylock.bench.toml")):
                    f.unlink(missing_ok=True)
                times[tool].append(timed(lock_commands(tool, reqs, index, cache, out),
                                         **env))
        med = {t: statistics.median(v) for t, v in times.items()}
        results[key] = {"median_s": {t: round(v, 3) for t, v in med.items()},
                        "safepip/uv": round(med["safepip"] / med["uv"], 2),
                        "safepip resolving/uv": round(med["safepip resolving"] / med["uv"], 2),
                        "safepip/pip-compile": round(med["safepip"] / med["pip-compile"], 2),
                        "safepip/pip lock": round(med["safepip"] / med["pip lock"], 2),
                        "runs": runs}
        print(f"{key:>16}: " + "  ".join(f"{t} {v:.2f}s" for t, v in med.items()) +
              f"  | safepip/uv {results[key]['safepip/uv']:.2f} (resolving "
              f"{results[key]['safepip resolving/uv']:.2f})  safepip/pip-compile "
              f"{results[key]['safepip/pip-compile']:.2f}  safepip/pip-lock "
              f"{results[key]['safepip/pip lock']:.2f}", flush=True)
    return results


def metadata_strategies(reqs: Path, work: Path) -> dict[str, dict[str, float]]:
    """What each way of getting a wheel's metadata costs on PyPI (sequential, one thread)."""
    from safepip.index.http import HttpClient
    from safepip.index.metadata import MetadataFetcher
    from safepip.models import DistFile

    report = work / "report.json"
    py = fresh_venv(work / "venv-md")
    subprocess.run([bin_of("safepip"), "install", "-q", "--python", str(py), "--dry-run",
                    "--isolated", "--no-cache", "--report", str(report), "-r", str(reqs)],
                   check=True, env=clean_env())
    urls = [i["download_info"]["url"] for i in json.loads(report.read_text())["install"]]
    http = HttpClient()
    fetcher = MetadataFetcher(http)
    out: dict[str, dict[str, float]] = {}

    def measure(name: str, fn) -> None:  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        nbytes = 0
        for u in urls:
            nbytes += fn(u)
        out[name] = {"seconds": round(time.perf_counter() - t, 2), "MB": round(nbytes / 1e6, 2),
                     "files": len(urls)}

    measure("sidecar (.metadata)", lambda u: len(http.get(u + ".metadata").body))

    def ranged(u: str) -> int:
        from packaging.utils import parse_wheel_filename

        fn = u.rsplit("/", 1)[1]
        name, ver, _b, tags = parse_wheel_filename(fn)
        dist = DistFile(fn, u, "", name, ver, "wheel", tags=tags)
        return len(fetcher._by_range(dist))

    measure("range requests", ranged)
    measure("whole wheel", lambda u: len(http.get(u, max_body=1 << 31).body))
    for k, v in out.items():
        print(f"metadata by {k:>20}: {v['seconds']:.2f}s for {v['files']} wheels "
              f"({v['MB']} MB of metadata or wheels)", flush=True)
    return out


def sandbox_overhead(runs: int, work: Path) -> dict[str, dict[str, float]]:
    """Per backend: a trivial sdist's install time minus the same build on the host, and a
    cached re-install (which builds nothing)."""
    sys.path.insert(0, str(HERE.parent))
    from safepip.sandbox.select import choose, close
    from tests.factory import make_backend_sdist
    from tests.indexserver import LocalIndex

    index = LocalIndex().start()
    index.add(make_backend_sdist("trivial", "1.0"))
    out: dict[str, dict[str, float]] = {}
    try:
        def install(flags: list[str], cache: Path) -> float:
            py = fresh_venv(work / "venv-sb")
            return timed([bin_of("safepip"), "install", "-q", "--python", str(py),
                          "--isolated", "--index-url", index.url, "--cache-dir", str(cache),
                          *flags, "trivial"])

        def median_of(flags: list[str], warm: bool) -> float:
            ts = []
            for i in range(runs):
                cache = work / f"cache-sb-{'-'.join(flags)}-{i}"
                shutil.rmtree(cache, ignore_errors=True)
                if warm:
                    install(flags, cache)
                ts.append(install(flags, cache))
            return statistics.median(ts)

        host = median_of(["--unsafe-build-on-host"], warm=False)
        for mode in ("docker", "bwrap"):
            choice = choose(mode)
            if choice.sandbox is None:
                print(f"sandbox {mode}: unavailable ({'; '.join(choice.reasons)})")
                continue
            close(choice.sandbox)
            cold = median_of(["--sandbox", mode], warm=False)
            cached = median_of(["--sandbox", mode], warm=True)
            out[mode] = {"install_s": round(cold, 3), "host_build_install_s": round(host, 3),
                         "overhead_s": round(cold - host, 3), "cached_reinstall_s":
                         round(cached, 3)}
            print(f"sandbox {mode:>6}: install {cold:.2f}s, same build on the host "
                  f"{host:.2f}s -> overhead {cold - host:.2f}s (two sandbox runs: "
                  f"get_requires + build_wheel); cached re-install {cached:.2f}s", flush=True)
    finally:
        index.stop()
    return out


def attestation_cost(runs: int) -> dict[str, float]:
    """What PEP 740 verification costs: importing sigstore (paid only when some file has
    provenance), loading the pinned root, and verifying one real provenance."""
    from tests.attestations import fixtures_dir, sums

    fx = fixtures_dir()
    code = ("import time; t = time.perf_counter(); import pypi_attestations, sigstore.verify; "
            "print(time.perf_counter() - t)")
    imports = [float(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                    text=True, check=True).stdout) for _ in range(runs)]
    from safepip.attest import verify as v

    files = ["pypi_attestations-0.0.19.tar.gz", "sigstore-3.6.1.tar.gz",
             "gcb_attestation_test-0.0.0.tar.gz"]
    digests = sums()
    t = time.perf_counter()
    v.verify_provenance((fx / (files[0] + ".provenance")).read_bytes(), files[0],
                        digests[files[0]])
    first = time.perf_counter() - t
    per_file = []
    for _ in range(20):
        for fn in files:
            raw = (fx / (fn + ".provenance")).read_bytes()
            t = time.perf_counter()
            v.verify_provenance(raw, fn, digests[fn])
            per_file.append(time.perf_counter() - t)
    out = {"import sigstore+pypi-attestations s": round(statistics.median(imports), 3),
           "first verification (imports + root) s": round(first, 4),
           "verification per file ms": round(statistics.median(per_file) * 1000, 2)}
    print("attestations: " + ", ".join(f"{k} {val}" for k, val in out.items()))
    return out


def version_time(runs: int) -> float:
    exe = bin_of("safepip")
    ts = []
    for _ in range(max(5, runs)):
        t = time.perf_counter()
        subprocess.run([exe, "--version"], check=True, stdout=subprocess.DEVNULL)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", choices=["local", "pypi", "sandbox", "attest", "lock"])
    ap.add_argument("--set", type=Path, default=SET30)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--mirror", type=Path, help="reuse a mirror built by an earlier run")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="safepip-bench-"))
    out: dict[str, object] = {}
    try:
        for tool in ("pip", "uv"):
            v = subprocess.run([*([bin_of("uv")] if tool == "uv" else
                                  [sys.executable, "-m", "pip"]),
                                "--version"], capture_output=True, text=True,
                               env=clean_env()).stdout.strip()
            print(f"{tool}: {v}")
        if args.only in (None, "local", "lock"):
            mirror = args.mirror or work / "mirror"
            if not (mirror / "simple").is_dir():
                build_mirror(mirror, args.set)
            elif not next((mirror / "simple").glob("*/index.html")).read_text().startswith(
                    PAGE_HEAD):
                write_pages(mirror)  # a mirror built before its pages declared PEP 740
            srv, url = serve(mirror)
            try:
                if args.only in (None, "local"):
                    out.update(scenario("local", url, args.set, args.runs, work))
                out.update(lock_scenario("local", url, args.set, args.runs, work))
            finally:
                srv.shutdown()
        if args.only in (None, "pypi"):
            out.update(scenario("pypi", PYPI, args.set, args.runs, work))
            out["metadata strategies"] = metadata_strategies(args.set, work)
        if args.only in (None, "sandbox"):
            out["sandbox"] = sandbox_overhead(args.runs, work)
        if args.only in (None, "attest"):
            out["attestations"] = attestation_cost(args.runs)
        vt = version_time(args.runs)
        out["safepip --version s"] = round(vt, 3)
        print(f"safepip --version: {vt * 1000:.0f} ms")
        if args.json:
            args.json.write_text(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
