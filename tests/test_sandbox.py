"""Sandboxed builds, in BOTH backends: happy paths and malicious sdists (threats.md 16).

Each malicious sdist has an in-tree backend that tries something and records what it
saw in a ``findings.json`` shipped inside the wheel it builds (or fails the build); the
test then checks that the attempt failed or was contained, and nothing reached the host.
With SAFEPIP_REQUIRE_SANDBOX=1 (CI) a missing backend fails these tests instead of
skipping them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from safepip.sandbox.select import choose, close
from tests.conftest import site_packages
from tests.factory import DEFAULT_BUILD as DEFAULT_BUILD_FOR_EDITABLE
from tests.factory import make_backend_sdist
from tests.indexserver import LocalIndex

FINDINGS_BUILD = '''
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    findings = probe()
    return make_wheel(wheel_directory, {
        f"{NORM}/__init__.py": b"",
        f"{NORM}/findings.json": json.dumps(findings).encode(),
    })
'''


def require_backend(mode: str) -> str:
    """Skip without the backend, or fail when SAFEPIP_REQUIRE_SANDBOX=1 (CI)."""
    choice = choose(mode)
    if choice.sandbox is None:
        why = "; ".join(choice.reasons)
        if os.environ.get("SAFEPIP_REQUIRE_SANDBOX") == "1":
            pytest.fail(f"the {mode} sandbox is required here but unavailable: {why}")
        pytest.skip(f"the {mode} sandbox is unavailable: {why}")
    close(choice.sandbox)
    return mode


@pytest.fixture(params=["bwrap", "docker", "podman"])
def backend(request: pytest.FixtureRequest) -> str:
    return require_backend(str(request.param))


def findings(venv: Path, name: str) -> dict[str, object]:
    data = (site_packages(venv) / name / "findings.json").read_text()
    result: dict[str, object] = json.loads(data)
    return result


def test_in_tree_backend_sdist_builds_and_installs(index: LocalIndex, venv: Path, safepip,
                                                   backend: str, venv_template: Path) -> None:
    index.add(make_backend_sdist("fromsource", "1.0"))
    r = safepip("install", "--sandbox", backend, "fromsource")
    assert r.code == 0, r.text
    assert f"in the {backend} sandbox" in r.err
    assert (site_packages(venv) / "fromsource" / "__init__.py").read_text() == "BUILT = True\n"
    assert "built in" in r.err or "sandboxed build" in r.err
    # a second install in a fresh environment builds nothing: the built wheel is cached
    shutil.rmtree(venv)
    shutil.copytree(venv_template, venv, symlinks=True)
    r = safepip("install", "--sandbox", backend, "fromsource")
    assert r.code == 0, r.text
    assert "Building" not in r.err


def test_static_metadata_needs_no_sandbox(index: LocalIndex, venv: Path, safepip,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """PEP 643: a non-dynamic PKG-INFO is read, no code runs to resolve."""
    monkeypatch.setenv("SAFEPIP_ROOTFS", "/nonexistent")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    monkeypatch.setenv("SAFEPIP_PODMAN_HOST", "unix:///nonexistent-podman.sock")
    index.add(make_backend_sdist("staticmd", "1.0", static_metadata=True))
    r = safepip("install", "--dry-run", "staticmd")
    assert r.code == 0, r.text
    assert "Would install staticmd 1.0" in r.err


def test_no_sandbox_refuses_to_build(index: LocalIndex, venv: Path, safepip, clean,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEPIP_ROOTFS", "/nonexistent")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    monkeypatch.setenv("SAFEPIP_PODMAN_HOST", "unix:///nonexistent-podman.sock")
    index.add(make_backend_sdist("needsbuild", "1.0"))
    with clean():
        r = safepip("install", "needsbuild")
    assert r.code == 1
    assert "no sandbox is available" in r.err
    assert "--unsafe-build-on-host" in r.err


def test_local_project_directory(venv: Path, safepip, backend: str, tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    sd = make_backend_sdist("localproj", "2.0")
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(sd.data)) as tf:
        tf.extractall(tmp_path, filter="data")
    (tmp_path / "localproj-2.0").rename(proj)
    (proj / "secret-link").symlink_to("/etc/passwd")
    r = safepip("install", "--sandbox", backend, str(proj))
    assert r.code == 0, r.text
    assert (site_packages(venv) / "localproj-2.0.dist-info").is_dir()


NETWORK_PROBE = '''
def probe():
    import socket
    cfg = json.load(open("config.json"))
    out = {"interfaces": sorted(n for _i, n in socket.if_nameindex())}
    try:
        socket.create_connection(("127.0.0.1", cfg["port"]), timeout=3).close()
        out["host_loopback"] = "connected"
    except OSError as e:
        out["host_loopback"] = "failed: %s" % e
    try:
        socket.getaddrinfo("pypi.org", 443)
        out["dns"] = "resolved"
    except OSError as e:
        out["dns"] = "failed: %s" % e
    return out
'''


def test_no_network(index: LocalIndex, venv: Path, safepip, backend: str) -> None:
    """Only loopback inside; the host's services and DNS are out of reach.

    (The probe never sends traffic to an outside address: the test network allows
    loopback only. It connects to the test's own index on the host's 127.0.0.1, which
    a sandbox with its own network namespace cannot see.)
    """
    index.add(make_backend_sdist("netprobe", build=NETWORK_PROBE + FINDINGS_BUILD,
                                 extra_files={"config.json": json.dumps({"port": index.port})}))
    r = safepip("install", "--sandbox", backend, "netprobe")
    assert r.code == 0, r.text
    f = findings(venv, "netprobe")
    assert f["interfaces"] == ["lo"]
    assert str(f["host_loopback"]).startswith("failed")
    assert str(f["dns"]).startswith("failed")


SECRETS_PROBE = '''
def probe():
    cfg = json.load(open("config.json"))
    out = {"env": dict(os.environ), "uid": os.getuid()}
    for key in ("ssh_key", "home"):
        try:
            path = cfg[key]
            out[key] = open(path).read() if os.path.isfile(path) else os.listdir(path)
        except OSError as e:
            out[key] = "failed: %s" % e
    out["docker_sock"] = os.path.exists("/var/run/docker.sock")
    out["ssh_agent"] = os.environ.get("SSH_AUTH_SOCK")
    writes = {}
    for path in (cfg["escape"], "/etc/safepip-evil", "/usr/safepip-evil", "/safepip-evil"):
        try:
            open(path, "w").write("x")
            writes[path] = "written"
        except OSError as e:
            writes[path] = "failed: %s" % e.__class__.__name__
    out["writes"] = writes
    try:
        open("/tmp/scratch", "w").write("tmp is writable")
        out["tmp"] = "ok"
    except OSError as e:
        out["tmp"] = "failed"
    return out
'''


def test_no_secrets_no_writes_outside(index: LocalIndex, venv: Path, safepip, backend: str,
                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = Path(os.environ["HOME"])
    (home / ".ssh").mkdir()
    key = home / ".ssh" / "id_rsa"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY----- top secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-token-value")
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "agent.sock"))
    escape = tmp_path / "escaped.txt"
    config = {"ssh_key": str(key), "home": str(home), "escape": str(escape)}
    index.add(make_backend_sdist("secrets", build=SECRETS_PROBE + FINDINGS_BUILD,
                                 extra_files={"config.json": json.dumps(config)}))
    r = safepip("install", "--sandbox", backend, "secrets")
    assert r.code == 0, r.text
    f = findings(venv, "secrets")
    text = json.dumps(f)
    assert "top secret" not in text and "s3cr3t-token-value" not in text
    assert str(f["ssh_key"]).startswith("failed") and str(f["home"]).startswith("failed")
    allowed = {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONDONTWRITEBYTECODE",
               "SOURCE_DATE_EPOCH", "SAFEPIP_SRC", "HOSTNAME", "PWD", "SHLVL", "_"}
    assert set(f["env"]) <= allowed  # type: ignore[arg-type]
    assert f["uid"] != 0
    assert f["docker_sock"] is False and f["ssh_agent"] is None
    assert all(v.startswith("failed") for v in f["writes"].values())  # type: ignore[union-attr]
    assert f["tmp"] == "ok"
    assert not escape.exists()


FORK_BOMB = '''
def probe():
    import signal, time
    pids = []
    for _ in range(400):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return {"forked": len(pids)}
'''


def test_fork_bomb_is_bounded(index: LocalIndex, venv: Path, safepip, backend: str) -> None:
    index.add(make_backend_sdist("forker", build=FORK_BOMB + FINDINGS_BUILD))
    r = safepip("install", "--sandbox", backend, "--build-processes", "64", "forker")
    if r.code == 0:
        assert int(findings(venv, "forker")["forked"]) < 64  # type: ignore[call-overload]
    else:
        assert "forker" in r.err


def test_sleeping_forever_is_killed(index: LocalIndex, venv: Path, safepip, backend: str,
                                    clean) -> None:
    index.add(make_backend_sdist("sleeper", build='''
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    import time
    time.sleep(3600)
'''))
    with clean():
        r = safepip("install", "--sandbox", backend, "--build-timeout", "4", "sleeper")
    assert r.code == 1
    assert "the sandbox killed the build: it ran longer than 4s" in r.err


def test_writing_gigabytes_is_stopped(index: LocalIndex, venv: Path, safepip, backend: str,
                                      clean) -> None:
    index.add(make_backend_sdist("filler", build='''
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    block = b"x" * (1024 * 1024)
    with open("big.bin", "wb") as f:
        for _ in range(2048):
            f.write(block)
'''))
    with clean():
        r = safepip("install", "--sandbox", backend, "--build-output", "64m", "filler")
    assert r.code == 1
    assert "building filler failed" in r.err


def test_printing_megabytes_is_truncated(index: LocalIndex, venv: Path, safepip,
                                         backend: str) -> None:
    index.add(make_backend_sdist("chatty", build='''
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    import sys
    line = "spam " * 200 + "\\n"
    for _ in range(30000):
        sys.stdout.write(line)
    raise RuntimeError("the end")
'''))
    r = safepip("install", "--sandbox", backend, "chatty")
    assert r.code == 1
    assert "RuntimeError: the end" in r.err
    assert len(r.err) < 3 * 1024 * 1024


def test_symlink_in_built_wheel_is_refused(index: LocalIndex, venv: Path, safepip,
                                           backend: str, clean) -> None:
    index.add(make_backend_sdist("linker", build='''
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return make_wheel(wheel_directory, {f"{NORM}/__init__.py": b""},
                      links=[(f"{NORM}/passwd", "/etc/passwd")])
'''))
    with clean():
        r = safepip("install", "--sandbox", backend, "linker")
    assert r.code == 1
    assert "symbolic link" in r.err


def test_wheel_of_another_project_is_refused(index: LocalIndex, venv: Path, safepip,
                                             backend: str, clean) -> None:
    index.add(make_backend_sdist("honest", build='''
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return make_wheel(wheel_directory, {"requests/__init__.py": b"evil = 1"}, name="requests")
'''))
    with clean():
        r = safepip("install", "--sandbox", backend, "honest")
    assert r.code == 1
    assert "wheel of another project" in r.err


def test_build_failure_shows_the_log(index: LocalIndex, venv: Path, safepip, backend: str,
                                     clean) -> None:
    index.add(make_backend_sdist("broken", build='''
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    print("compiling things...")
    raise SystemExit("error: missing header foo.h")
'''))
    with clean():
        r = safepip("install", "--sandbox", backend, "broken")
    assert r.code == 1
    assert "--- build output" in r.err and "missing header foo.h" in r.err


def test_sandbox_status(backend: str) -> None:
    out = subprocess.run([sys.executable, "-m", "safepip", "sandbox", "status",
                          "--sandbox", backend], capture_output=True, text=True,
                         env=dict(os.environ))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "builds run in:" in out.stdout and "python:   cp3" in out.stdout


def test_memory_limit(index: LocalIndex, venv: Path, safepip, backend: str, clean) -> None:
    index.add(make_backend_sdist("hog", build='''
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    blocks = []
    for _ in range(2048):
        blocks.append(bytearray(1024 * 1024))  # touch 2 GiB, 1 MiB at a time
'''))
    with clean():
        r = safepip("install", "--sandbox", backend, "--build-memory", "256m", "hog")
    assert r.code == 1
    assert "building hog failed" in r.err
    assert "more memory than the limit" in r.err or "MemoryError" in r.err


def test_sdist_file_on_the_command_line(venv: Path, safepip, backend: str,
                                        tmp_path: Path) -> None:
    sd = make_backend_sdist("afile", "3.0")
    path = tmp_path / sd.filename
    path.write_bytes(sd.data)
    r = safepip("install", "--sandbox", backend, str(path))
    assert r.code == 0, r.text
    assert (site_packages(venv) / "afile-3.0.dist-info").is_dir()


def test_unsafe_build_on_host_says_so(index: LocalIndex, venv: Path, safepip,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEPIP_ROOTFS", "/nonexistent")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    index.add(make_backend_sdist("onhost", "1.0"))
    r = safepip("install", "--unsafe-build-on-host", "onhost")
    assert r.code == 0, r.text
    assert "build code runs ON THIS MACHINE" in r.err
    assert (site_packages(venv) / "onhost-1.0.dist-info").is_dir()


EDITABLE_BACKEND = '''
def get_requires_for_build_editable(config_settings=None):
    return []

def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # a PEP 660 wheel: a .pth naming the project directory, as the backend sees it
    return make_wheel(wheel_directory, {f"__editable__.{NORM}.pth": os.getcwd().encode()})
'''


def test_editable_install_picks_up_edits(venv: Path, safepip, backend: str,
                                         tmp_path: Path, clean) -> None:
    import io
    import tarfile

    sd = make_backend_sdist("editme", "0.1", build=DEFAULT_BUILD_FOR_EDITABLE + EDITABLE_BACKEND)
    with tarfile.open(fileobj=io.BytesIO(sd.data)) as tf:
        tf.extractall(tmp_path, filter="data")
    proj = tmp_path / "editme-0.1"
    (proj / "editme").mkdir()
    (proj / "editme" / "__init__.py").write_text("VALUE = 1\n")
    if backend != "bwrap" and os.getuid() == 0:
        # Docker/Podman build in place as the project's owner: never root
        with clean(proj):
            r = safepip("install", "--sandbox", backend, "-e", str(proj))
        assert r.code == 1 and "is owned by root: refusing to build as root" in r.err
        assert "hint: --sandbox bwrap" in r.err
        for p in [proj, *proj.rglob("*")]:
            os.chown(p, 1000, 1000)
    r = safepip("install", "--sandbox", backend, "-e", str(proj))
    assert r.code == 0, r.text
    py = str(venv / "bin" / "python")
    code = "import editme; print(editme.VALUE)"
    assert subprocess.run([py, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "1"
    (proj / "editme" / "__init__.py").write_text("VALUE = 2\n")
    assert subprocess.run([py, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "2"
    di = next(site_packages(venv).glob("editme-0.1.dist-info"))
    assert json.loads((di / "direct_url.json").read_text()) == {
        "url": proj.as_uri(), "dir_info": {"editable": True}}


def test_auto_builds_a_root_owned_editable_project_in_bwrap(
        venv: Path, safepip, tmp_path: Path) -> None:
    """auto takes bubblewrap first for a root-owned editable project (Docker would have
    to run the build as root)."""
    import io
    import tarfile

    require_backend("bwrap")
    require_backend("docker")
    if os.getuid() != 0:
        pytest.skip("needs a root-owned project")
    sd = make_backend_sdist("editauto", "0.1",
                           build=DEFAULT_BUILD_FOR_EDITABLE + EDITABLE_BACKEND)
    with tarfile.open(fileobj=io.BytesIO(sd.data)) as tf:
        tf.extractall(tmp_path, filter="data")
    proj = tmp_path / "editauto-0.1"
    (proj / "editauto").mkdir()
    (proj / "editauto" / "__init__.py").write_text("VALUE = 1\n")
    r = safepip("install", "--sandbox", "auto", "-e", str(proj))
    assert r.code == 0, r.text
    assert "Builds run in: bubblewrap" in r.err


def test_sdist_only_build_dependency_is_built_first(index: LocalIndex, venv: Path, safepip,
                                                    backend: str) -> None:
    """A build requirement that is itself sdist-only is built in the sandbox first."""
    helper_build = '''
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return make_wheel(wheel_directory, {"buildhelper/__init__.py": b"HELPED = True\\n"})
'''
    index.add(make_backend_sdist("buildhelper", "1.0", build=helper_build))
    main_build = '''
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    import sys
    sys.path.insert(0, "/tmp/buildenv")
    import buildhelper
    assert buildhelper.HELPED
    return make_wheel(wheel_directory, {f"{NORM}/__init__.py": b"OK = True\\n"})
'''
    sd = make_backend_sdist("needshelper", "1.0", build=main_build)
    # its pyproject asks for buildhelper at build time
    import io
    import tarfile

    from tests.factory import Built

    buf = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(sd.data)) as src, \
            tarfile.open(fileobj=buf, mode="w:gz") as dst:
        for m in src:
            data = src.extractfile(m).read() if m.isreg() else b""  # type: ignore[union-attr]
            if m.name.endswith("pyproject.toml"):
                data = data.replace(b"requires = []", b'requires = ["buildhelper"]')
                m.size = len(data)
            dst.addfile(m, io.BytesIO(data))
    index.add(Built(sd.filename, buf.getvalue(), sd.metadata, "needshelper", "1.0"))
    r = safepip("install", "--sandbox", backend, "needshelper")
    assert r.code == 0, r.text
    assert "Building buildhelper" in r.err
    assert (site_packages(venv) / "needshelper" / "__init__.py").read_text() == "OK = True\n"
    assert not (site_packages(venv) / "buildhelper").exists()  # only a build dependency


def test_dry_run_prepares_metadata_without_building(index: LocalIndex, venv: Path, safepip,
                                                    backend: str) -> None:
    prepare = '''
def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    di = f"{NORM}-{VERSION}.dist-info"
    os.makedirs(os.path.join(metadata_directory, di))
    with open(os.path.join(metadata_directory, di, "METADATA"), "w") as f:
        f.write(f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n"
                "Requires-Dist: depofprepared\\n")
    return di

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise SystemExit("build_wheel must not run for a dry run")
'''
    index.add(make_backend_sdist("prepared", build=prepare))
    from tests.factory import make_wheel

    index.add(make_wheel("depofprepared"))
    r = safepip("install", "--sandbox", backend, "--dry-run", "prepared")
    assert r.code == 0, r.text
    assert "prepare_metadata_for_build_wheel" in r.err
    assert "Would install depofprepared 1.0" in r.err


def test_docker_host_elsewhere(index: LocalIndex, venv: Path, safepip,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """DOCKER_HOST naming another endpoint (here: the local engine re-exposed on a
    loopback TCP port): the source goes in and the wheel comes out through the API."""
    import socket
    import threading

    require_backend("docker")
    engine = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not engine.startswith("unix://"):
        pytest.skip("the engine is not on a local unix socket")
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def serve() -> None:
        while True:
            try:
                client, _ = srv.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(engine.removeprefix("unix://"))
            threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{port}")
    index.add(make_backend_sdist("viatcp", "1.0"))
    try:
        r = safepip("install", "--sandbox", "docker", "viatcp")
    finally:
        srv.close()
    assert r.code == 0, r.text
    assert f"Docker (tcp://127.0.0.1:{port})" in r.err
    assert (site_packages(venv) / "viatcp" / "__init__.py").read_text() == "BUILT = True\n"


def test_locked_sdist_builds_in_the_sandbox(index: LocalIndex, venv: Path, safepip,
                                            tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock whose package has only an sdist: its hash is required, and it is built in
    the sandbox (no resolution: the lock says what to install)."""
    require_backend("bwrap")
    sd = make_backend_sdist("fromlock", "1.0")
    index.add(sd)
    monkeypatch.chdir(tmp_path)
    r = safepip("lock", "--index-url", index.url, "--format", "pylock", "fromlock",
                "--sandbox", "bwrap")
    assert r.code == 0, r.text
    text = (tmp_path / "pylock.toml").read_text()
    assert "sdist = { name = \"fromlock-1.0.tar.gz\"" in text and "wheels" not in text
    r = safepip("install", "-r", "pylock.toml", "--sandbox", "bwrap")
    assert r.code == 0, r.text
    assert (site_packages(venv) / "fromlock" / "__init__.py").read_text() == "BUILT = True\n"
    # the locked hash is what the file must have
    (tmp_path / "pylock.toml").write_text(text.replace(sd.sha256, "0" * 64))
    r = safepip("install", "--force-reinstall", "-r", "pylock.toml", "--sandbox", "bwrap")
    assert r.code == 1 and "0" * 64 in r.err


def _setuptools_wheel(tmp: Path) -> Path:
    """A setuptools wheel new enough to build wheels by itself (>= 70.1, no `wheel`
    needed): one already on this machine (virtualenv's embedded seeds, ensurepip's or
    Debian's bundled copies), else downloaded once from PyPI."""
    import glob

    from packaging.version import Version

    root = Path(__file__).resolve().parent.parent
    patterns = [str(root / ".dev" / "lib" / "python3*" / "site-packages" / "virtualenv" /
                    "seed" / "wheels" / "embed" / "setuptools-*.whl"),
                "/usr/share/python-wheels/setuptools-*.whl"]
    try:
        import ensurepip

        patterns.append(os.path.join(os.path.dirname(ensurepip.__file__), "_bundled",
                                     "setuptools-*.whl"))
    except ImportError:
        pass
    found = [Path(p) for pat in patterns for p in glob.glob(pat)
             if Version(Path(p).name.split("-")[1]) >= Version("70.1")]
    if found:
        return max(found, key=lambda p: Version(p.name.split("-")[1]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                           "--only-binary", ":all:", "-d", str(tmp), "setuptools>=70.1",
                           "--index-url", "https://pypi.org/simple"],
                          capture_output=True, text=True, env=env, check=False)
    got = sorted(tmp.glob("setuptools-*.whl"))
    if proc.returncode != 0 or not got:
        why = "no setuptools>=70.1 wheel on this machine, and PyPI cannot be reached"
        if os.environ.get("SAFEPIP_REQUIRE_SANDBOX") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return got[-1]


def test_setuptools_sdist_with_setuptools_from_the_local_index(
        index: LocalIndex, venv: Path, safepip, backend: str, tmp_path: Path) -> None:
    """A classic setup.py sdist: its build dependency (setuptools) is resolved on the
    host from the local index, hash-checked, and handed to the sandbox as the wheelhouse."""
    import io
    import tarfile
    import zipfile

    from tests.factory import Built

    whl = _setuptools_wheel(tmp_path)
    version = whl.name.split("-")[1]
    with zipfile.ZipFile(whl) as zf:
        md = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA")))
    index.add(Built(whl.name, whl.read_bytes(), md, "setuptools", version))
    root = "classic_pkg-1.0"
    files = {
        f"{root}/PKG-INFO": b"Metadata-Version: 2.1\nName: classic-pkg\nVersion: 1.0\n",
        f"{root}/pyproject.toml": b'[build-system]\nrequires = ["setuptools"]\n'
                                  b'build-backend = "setuptools.build_meta"\n',
        f"{root}/setup.py": b"from setuptools import setup\n"
                            b"setup(name='classic-pkg', version='1.0', py_modules=['classic'])\n",
        f"{root}/classic.py": b"ANSWER = 42\n",
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for path, data in files.items():
            ti = tarfile.TarInfo(path)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    index.add(Built(f"{root}.tar.gz", buf.getvalue(), b"", "classic-pkg", "1.0"))
    r = safepip("install", "--sandbox", backend, "classic-pkg")
    assert r.code == 0, r.text
    assert f"in the {backend} sandbox" in r.err
    assert index.requests_for(f"/files/{whl.name}")  # setuptools came from the local index
    assert (site_packages(venv) / "classic.py").read_text() == "ANSWER = 42\n"
    assert not (site_packages(venv) / "setuptools").exists()  # a build dependency only


def test_image_built_from_a_base_image(index: LocalIndex, venv: Path, safepip,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`build-image --from IMAGE`: the Dockerfile path, through the API (here on the
    Debian-packages image, since no registry can be reached), then used for a build."""
    import uuid

    from safepip.sandbox.docker_backend import DEFAULT_IMAGE

    require_backend("docker")
    tag = f"safepip-test-derived:{uuid.uuid4().hex[:8]}"
    r = safepip("sandbox", "build-image", "--from", DEFAULT_IMAGE, "--image", tag)
    try:
        assert r.code == 0, r.text
        assert f"built {tag} on {DEFAULT_IMAGE}: Python 3.11 with compilers" in r.out
        monkeypatch.setenv("SAFEPIP_SANDBOX_IMAGE", tag)
        index.add(make_backend_sdist("derived", "1.0"))
        r = safepip("install", "--sandbox", "docker", "derived")
        assert r.code == 0, r.text
        assert tag in r.err
    finally:
        import docker

        client = docker.from_env()
        with contextlib.suppress(docker.errors.DockerException):
            client.images.remove(tag, force=True)
        client.close()
    r = safepip("sandbox", "build-image", "--from", "safepip-test/no-such-image:1",
                "--image", tag)
    assert r.code == 1 and "is not here and cannot be pulled" in r.err
