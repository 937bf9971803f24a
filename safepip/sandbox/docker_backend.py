"""The Docker backend, through the Docker Engine API (``docker`` SDK).

Everything goes in and out through the API, never through bind mounts, so a remote
engine (``DOCKER_HOST``: Podman's socket, another machine) works the same: the
container starts on a tiny bootstrap that waits; the driver, the wheelhouse and the
source go in with ``put_archive`` onto size-limited tmpfs mounts; the bootstrap then
execs the driver; ``/out`` comes back with ``get_archive``.
"""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from safepip.errors import SandboxError
from safepip.sandbox import BUILD_UID, DRIVER, ENV_ALLOWLIST, LogBuffer, RunResult

if TYPE_CHECKING:
    from collections.abc import Iterator

    from safepip.sandbox import RunSpec

DEFAULT_IMAGE = "safepip-sandbox:bookworm"
# open files per build process: enough for parallel C++ builds, and set explicitly
# (with nproc) because engines differ: Podman asks for 1048576 by default, which a
# service whose own limit is lower cannot grant ("error setting rlimit type 7")
NOFILE = 8192


def _ulimits(pids: int = 64) -> list[Any]:
    """nofile and nproc, explicitly (nproc also backs the cgroup's pids limit)."""
    from docker.types import Ulimit

    return [Ulimit(name="nofile", soft=NOFILE, hard=NOFILE),
            Ulimit(name="nproc", soft=pids, hard=pids)]

# Waits for the go-file, runs the command (argv[1:]) with only safepip's environment,
# writes its exit code, and stays alive so that /out can still be read (the volumes go
# when the container stops).
_BOOT = (
    "import os,subprocess,sys,time\n"
    "t=time.time()\n"
    "while not os.path.exists('/tmp/.safepip-go'):\n"
    "    if time.time()-t>300: sys.exit(97)\n"
    "    time.sleep(0.01)\n"
    # only the variables safepip set reach the build (engines add their own: Podman
    # sets container=podman and TERM)
    "keep=set(os.environ.pop('SAFEPIP_ENV_KEYS','').split(','))\n"
    "env={k:v for k,v in os.environ.items() if k in keep}\n"
    "rc=subprocess.call(sys.argv[1:],env=env)\n"
    "open('/tmp/.safepip-rc','w').write(str(rc))\n"
    "time.sleep(600)\n"
)


def image_name() -> str:
    return os.environ.get("SAFEPIP_SANDBOX_IMAGE", DEFAULT_IMAGE)


def _tar_dir(root: str, arc_root: str, uid: int, mode_dirs: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for dirpath, dirs, files in os.walk(root):
            dirs.sort()
            rel = os.path.relpath(dirpath, root)
            for name in [*dirs, *sorted(files)]:
                full = os.path.join(dirpath, name)
                arc = os.path.normpath(os.path.join(arc_root, rel, name))
                if os.path.islink(full):
                    continue  # the source copy holds no links (sdist extraction refuses them)
                ti = tarfile.TarInfo(arc)
                ti.uid = ti.gid = uid
                st = os.stat(full)
                if os.path.isdir(full):
                    ti.type = tarfile.DIRTYPE
                    ti.mode = mode_dirs
                    tf.addfile(ti)
                else:
                    ti.size = st.st_size
                    ti.mode = 0o755 if st.st_mode & 0o111 else 0o644
                    with open(full, "rb") as f:
                        tf.addfile(ti, f)
    return buf.getvalue()


def _tar_file(path: str, arcname: str, data: bytes | None = None, mode: int = 0o444) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        if data is None:
            with open(path, "rb") as f:
                data = f.read()
        content = data
        ti = tarfile.TarInfo(arcname)
        ti.size = len(content)
        ti.mode = mode
        tf.addfile(ti, io.BytesIO(content))
    return buf.getvalue()


class DockerSandbox:
    """Builds in a hardened container of ``image`` on the engine ``docker`` talks to."""

    name = "docker"

    def __init__(self, image: str | None = None, host: str | None = None,
                 name: str = "docker") -> None:
        self.image = image or image_name()
        self.host = host  # None: DOCKER_HOST or the local engine
        self.name = name
        self._client: Any = None
        self._error: str | None = None
        self._podman: bool | None = None

    @property
    def client(self) -> Any:
        if self._client is None and self._error is None:
            try:
                import docker

                self._client = (docker.DockerClient(base_url=self.host, timeout=60)
                                if self.host else docker.from_env(timeout=60))
                self._client.ping()
            except Exception as exc:  # noqa: BLE001 - the SDK raises many kinds
                self._error = f"no Docker engine answered ({type(exc).__name__}: {exc})"
                self.close()
        if self._client is None:
            raise SandboxError(self._error or "no Docker engine")
        return self._client

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None

    def problems(self) -> list[str]:
        try:
            import docker  # noqa: F401
        except ImportError:
            return ["the docker SDK is not installed (pip install docker)"]
        try:
            client = self.client
        except SandboxError as exc:
            return [exc.message]
        try:
            client.images.get(self.image)
        except Exception:  # noqa: BLE001
            return [f"the image {self.image} is missing (run: safepip sandbox build-image)"]
        return []

    def describe(self) -> str:
        host = self.host or os.environ.get("DOCKER_HOST", "the local engine")
        engine = "Podman" if self.name == "podman" else "Docker"
        return f"{engine} ({host}), image {self.image}"

    @property
    def is_podman(self) -> bool:
        """Is the engine Podman's Docker-compatible service?"""
        if self._podman is None:
            try:
                components = self.client.version().get("Components") or []
                self._podman = any("podman" in str(c.get("Name", "")).lower()
                                   for c in components)
            except Exception:  # noqa: BLE001 - unknown: assume Docker
                self._podman = False
        return self._podman

    def identity(self) -> str:
        with _engine_errors(f"the image {self.image} cannot be inspected",
                            hint="safepip sandbox build-image"):
            return str(self.client.images.get(self.image).id)

    def python_tag(self) -> str:
        with _engine_errors(f"the engine cannot run a container of {self.image}",
                            hint="see `safepip sandbox status`"):
            return _run_quick(self.client, self.image,
                              ["python3", "-I", "-S", "-c",
                               "import sys;print('cp%d%d' % sys.version_info[:2])"],
                              user=f"{BUILD_UID}:{BUILD_UID}").strip()

    def run(self, spec: RunSpec) -> RunResult:
        from docker.types import Mount

        limits = spec.limits
        client = self.client
        start = time.monotonic()
        # Files can only be put into a running container on a volume (a tmpfs mount of
        # the container hides what the API writes); tmpfs-backed volumes are size-limited,
        # which caps the build's output, and work on a remote engine too.
        run_id = uuid.uuid4().hex[:12]
        size = max(64, limits.output // (1024 * 1024))
        uid = gid = BUILD_UID
        if spec.in_place:
            # an editable build sees the project itself, at its own path, as its owner
            host = self.host or os.environ.get("DOCKER_HOST", "unix://")
            if host.split("://")[0] not in ("unix", ""):
                raise SandboxError("editable installs need a local Docker engine (the project "
                                   "is mounted in place); use --sandbox bwrap")
            st = os.stat(spec.src)
            uid, gid = st.st_uid, st.st_gid
            if uid == 0:
                # the container would run as root (no capabilities, but uid 0 all the same)
                raise SandboxError(
                    f"an editable build in {self.describe()} runs as the project's owner, "
                    f"and {spec.src} is owned by root: refusing to build as root",
                    hint="--sandbox bwrap (builds as an unprivileged user mapped onto you), "
                         "or let a non-root user own the project")
        user = f"{uid}:{gid}"

        def cap(mib: int) -> str:
            # Podman reads "size" in a volume's options as a disk quota (and refuses it
            # where the filesystem has none); tmpfs's own nr_blocks (4 KiB pages) is
            # passed through by both engines
            return f"nr_blocks={mib * 256}" if self.is_podman else f"size={mib}m"

        layout = {
            "/src": (f"{cap(size)},uid={uid},gid={gid},mode=0755"),
            "/out": (f"{cap(size)},uid={uid},gid={gid},mode=0755"),
            "/wheelhouse": f"{cap(2048)},mode=0755",
            "/driver": f"{cap(16)},mode=0755",
            "/tmp": f"{cap(2048)},mode=1777",
        }
        volumes = []
        try:
            for path, opts in layout.items():
                volumes.append(client.volumes.create(
                    name=f"safepip-{run_id}{path.replace('/', '-')}", driver="local",
                    driver_opts={"type": "tmpfs", "device": "tmpfs", "o": opts},
                    labels={"safepip": "build"}))
        except Exception as exc:
            self._remove(volumes)
            raise SandboxError(f"cannot create the build volumes: {exc}") from exc
        mounts = [Mount(path, vol.name, type="volume") for path, vol in
                  zip(layout, volumes, strict=True)]
        if spec.in_place:
            mounts.append(Mount(spec.src, spec.src, type="bind"))
        try:
            container = client.containers.create(
                self.image,
                ["python3", "-I", "-S", "-c", _BOOT, *spec.argv],
                user=user,
                network_mode="none",
                read_only=True,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                pids_limit=limits.pids,
                mem_limit=limits.memory,
                memswap_limit=limits.memory,
                nano_cpus=int(limits.cpus * 1e9),
                environment={**ENV_ALLOWLIST, "SAFEPIP_SRC": spec.src_inside,
                             "SAFEPIP_ENV_KEYS": ",".join([*ENV_ALLOWLIST, "SAFEPIP_SRC"])},
                working_dir=spec.src_inside,
                mounts=mounts,
                ulimits=_ulimits(limits.pids),
                detach=True,
            )
        except Exception as exc:
            self._remove(volumes)
            raise SandboxError(f"cannot create the build container: {exc}") from exc
        log = LogBuffer(limits.log)
        killed: str | None = None
        exit_code: int | None = None
        try:
            with _engine_errors("the engine cannot start the build container"):
                container.start()
            with _engine_errors("the build container failed"):
                exit_code, killed = self._drive(container, spec, log,
                                                start + limits.timeout, limits.output)
        finally:
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)
            self._remove(volumes)
        return RunResult(exit_code, log.text(), time.monotonic() - start, killed,
                         log.truncated)

    def _drive(self, container: Any, spec: RunSpec, log: LogBuffer, deadline: float,
               output: int) -> tuple[int | None, str | None]:
        """Put the inputs in, let the build go, follow its log, read /out back."""
        # tmpfs mounts exist once the container runs: files go in now, root-owned and
        # read-only except the source, which belongs to the build user
        container.put_archive("/driver", _tar_file(DRIVER, "driver.py"))
        for name in sorted(os.listdir(spec.wheelhouse)):
            container.put_archive("/wheelhouse", _tar_file(
                os.path.join(spec.wheelhouse, name), name))
        if not spec.in_place:
            container.put_archive("/src", _tar_dir(spec.src, ".", BUILD_UID, 0o755))
        container.put_archive("/tmp", _tar_file("", ".safepip-go", b"", 0o444))
        # the log stream is opened in the reader thread: Podman answers a follow=True
        # request only once the container has printed something
        streams: list[Any] = []
        reader = threading.Thread(target=self._pump, args=(container, log, streams),
                                  daemon=True)
        reader.start()
        exit_code, killed = self._await(container, deadline)
        if killed is None:
            # the volumes vanish with the container: /out is read while it still runs
            self._fetch_out(container, spec.out, output)
        if not streams:  # the stream never came (Podman, silent build): read it now
            with contextlib.suppress(Exception):
                log.feed(container.logs(stdout=True, stderr=True, tail=5000))
        with contextlib.suppress(Exception):
            container.kill()
        reader.join(timeout=5)
        for stream in streams:
            with contextlib.suppress(Exception):
                stream.close()
        return exit_code, killed

    @staticmethod
    def _await(container: Any, deadline: float) -> tuple[int | None, str | None]:
        """Wait for the command's exit code (the bootstrap writes it, then waits)."""
        delay = 0.02
        while True:
            try:
                stream, _ = container.get_archive("/tmp/.safepip-rc")
                raw = b"".join(stream)
                with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
                    member = tf.next()
                    f = tf.extractfile(member) if member else None
                    text = f.read(32).decode().strip() if f else ""
                rc = int(text) if text.lstrip("-").isdigit() else -1
                # only the kernel's OOM killer sends SIGKILL in there (the container's own
                # OOMKilled flag is about its first process, which is still alive)
                return rc, ("memory" if rc == -9 else None)
            except Exception:  # noqa: BLE001 - docker.errors.NotFound until it is written
                pass
            container.reload()
            state = container.attrs.get("State", {})
            if state.get("Status") in ("exited", "dead"):
                if state.get("OOMKilled"):
                    return None, "memory"
                return int(state.get("ExitCode", -1)) or -1, None
            if time.monotonic() > deadline:
                return None, "timeout"
            time.sleep(delay)
            delay = min(0.25, delay * 1.5)

    @staticmethod
    def _remove(volumes: list[Any]) -> None:
        for vol in volumes:
            with contextlib.suppress(Exception):
                vol.remove(force=True)

    @staticmethod
    def _pump(container: Any, log: LogBuffer, streams: list[Any]) -> None:
        with contextlib.suppress(Exception):
            stream = container.logs(stream=True, follow=True)
            streams.append(stream)
            for chunk in stream:
                log.feed(chunk)

    @staticmethod
    def _fetch_out(container: Any, out: str, limit: int) -> None:
        """Copy /out back: regular files only, bounded, no paths outside ``out``."""
        from safepip.builder.extract import _check_name

        try:
            stream, _stat = container.get_archive("/out/.")
        except Exception:  # noqa: BLE001
            return
        buf = io.BytesIO()
        for chunk in stream:
            buf.write(chunk)
            if buf.tell() > limit:
                raise SandboxError("the build's output is larger than the output limit")
        buf.seek(0)
        with tarfile.open(fileobj=buf, mode="r:") as tf:
            for member in tf:
                parts = _check_name(member.name, "build output")
                if parts and parts[0] in (".", "out"):
                    parts = parts[1:]
                if not parts:
                    continue
                target = os.path.join(out, *parts)
                if member.isdir():
                    os.makedirs(target, exist_ok=True)
                elif member.isreg():
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    src = tf.extractfile(member)
                    assert src is not None
                    with open(target, "wb") as f:
                        f.write(src.read())
                # links and anything else in the output are dropped, never followed


def podman_host() -> str | None:
    """Podman's Docker-compatible socket: CONTAINER_HOST, the user's, or the system's."""
    for env in ("SAFEPIP_PODMAN_HOST", "CONTAINER_HOST"):
        if os.environ.get(env):
            return os.environ[env]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    for path in ([os.path.join(runtime, "podman", "podman.sock")] if runtime else []) + [
            "/run/podman/podman.sock"]:
        if os.path.exists(path):
            return f"unix://{path}"
    return None


def _run_quick(client: Any, image: str, cmd: list[str], user: str | None = None,
               timeout: float = 120) -> str:
    """Run a short command without network and return its output: create, start, wait,
    then read the logs whole (no follow=True stream: Podman's can miss the end of a
    container that exits at once, and hang)."""
    container = client.containers.create(image, cmd, network_mode="none", user=user,
                                         ulimits=_ulimits())
    try:
        container.start()
        result = container.wait(timeout=timeout)
        out = container.logs(stdout=True, stderr=False)
        if int(result.get("StatusCode", 1)) != 0:
            raise SandboxError(f"{' '.join(cmd[:2])} failed in {image} "
                               f"(exit {result.get('StatusCode')})")
        return bytes(out).decode(errors="replace")
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)


@contextlib.contextmanager
def _engine_errors(what: str, hint: str | None = None) -> Iterator[None]:
    """The Docker SDK raises many kinds of exceptions (API errors, timeouts, connection
    errors): each becomes a SandboxError saying ``what`` failed; ours pass through."""
    try:
        yield
    except SandboxError:
        raise
    except Exception as exc:  # the SDK's own, of many kinds
        raise SandboxError(f"{what}: {_short(exc)}", hint=hint) from exc


def _short(exc: BaseException) -> str:
    """The engine's own explanation, without the SDK's URL noise."""
    text = str(getattr(exc, "explanation", "") or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def build_image(base: str, tag: str, on_line: Any = None) -> str:
    """Build the sandbox image on ``base`` (an image with Python) through the engine's
    API (local or ``DOCKER_HOST``); return its Python version. The build context is just
    the Dockerfile shipped with safepip."""
    try:
        import docker
        import docker.errors
    except ImportError as exc:
        raise SandboxError("the docker SDK is not installed") from exc
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "Dockerfile"), "rb") as f:
        dockerfile = f.read()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tf.addfile(info, io.BytesIO(dockerfile))
    buf.seek(0)
    try:
        client = docker.from_env(timeout=600)
    except docker.errors.DockerException as exc:
        raise SandboxError(f"no Docker engine answered: {exc}",
                           hint="start Docker, or set DOCKER_HOST") from exc
    try:
        try:
            client.images.get(base)
        except docker.errors.ImageNotFound:
            if on_line:
                on_line(f"pulling {base} ...")
            try:
                client.images.pull(base)
            except docker.errors.APIError as exc:
                raise SandboxError(
                    f"the base image {base} is not here and cannot be pulled: {exc}",
                    hint="--from an image your site has (a mirror of python:3.X-slim), or "
                         "`safepip sandbox build-image` without --from (Debian packages "
                         "only)") from exc
        try:
            for chunk in client.api.build(fileobj=buf, custom_context=True, tag=tag, rm=True,
                                          forcerm=True, buildargs={"BASE": base},
                                          decode=True, pull=False):
                if "error" in chunk:
                    raise SandboxError(f"building {tag} on {base} failed: "
                                       f"{str(chunk['error']).strip()}")
                line = str(chunk.get("stream", "")).rstrip()
                if line and on_line:
                    on_line(line)
        except docker.errors.APIError as exc:
            raise SandboxError(f"building {tag} on {base} failed: {exc}") from exc
        with _engine_errors(f"{tag} was built but does not run"):
            return _run_quick(client, tag, ["python3", "-c", "import sys; print("
                                            "'%d.%d' % sys.version_info[:2])"]).strip()
    finally:
        with contextlib.suppress(Exception):
            client.close()
