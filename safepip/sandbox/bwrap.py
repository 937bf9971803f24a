"""The bubblewrap backend: no daemon; the sandbox root is a Debian rootfs, read-only.

Namespaces (user, pid, net, ipc, uts, cgroup) come from ``--unshare-all``; limits from a
cgroup of our own when the cgroup filesystem is writable (v1 or v2: pids, memory, cpu),
else from rlimits; wall time and output size are watched from the host.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import threading
import time
import uuid
from typing import TYPE_CHECKING

from safepip.errors import SandboxError
from safepip.sandbox import (
    BUILD_UID,
    DRIVER,
    ENV_ALLOWLIST,
    LogBuffer,
    RunResult,
    tree_size,
)

if TYPE_CHECKING:
    from safepip.sandbox import Limits, RunSpec

DEFAULT_ROOTFS = "/var/lib/safepip/rootfs-bookworm"


def rootfs_path() -> str:
    return os.environ.get("SAFEPIP_ROOTFS", DEFAULT_ROOTFS)


class _Cgroup:
    """A cgroup for one run (v2 unified, or v1 pids/memory/cpu); absent if not writable."""

    def __init__(self, limits: Limits) -> None:
        self.dirs: list[str] = []
        name = f"safepip-{uuid.uuid4().hex[:12]}"
        base = "/sys/fs/cgroup"
        if os.path.exists(os.path.join(base, "cgroup.controllers")):
            d = os.path.join(base, name)
            with contextlib.suppress(OSError):
                os.mkdir(d)
                self.dirs.append(d)
                self._write(d, "pids.max", str(limits.pids))
                self._write(d, "memory.max", str(limits.memory))
                self._write(d, "memory.swap.max", "0")
                self._write(d, "cpu.max", f"{int(limits.cpus * 100000)} 100000")
            return
        for ctrl, settings in (
            ("pids", {"pids.max": str(limits.pids)}),
            ("memory", {"memory.limit_in_bytes": str(limits.memory)}),
            ("cpu", {"cpu.cfs_period_us": "100000",
                     "cpu.cfs_quota_us": str(int(limits.cpus * 100000))}),
        ):
            d = os.path.join(base, ctrl, name)
            try:
                os.mkdir(d)
            except OSError:
                continue
            self.dirs.append(d)
            for key, value in settings.items():
                self._write(d, key, value)

    @staticmethod
    def _write(d: str, key: str, value: str) -> None:
        with contextlib.suppress(OSError), open(os.path.join(d, key), "w") as f:
            f.write(value)

    @property
    def enforced(self) -> list[str]:
        return [os.path.basename(os.path.dirname(d)) if "safepip-" in d else d
                for d in self.dirs]

    def enter(self) -> None:
        """Called in the child before exec: move it (and its descendants) in."""
        for d in self.dirs:
            with contextlib.suppress(OSError), open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))

    def oom_killed(self) -> bool:
        for d in self.dirs:
            for key in ("memory.events", "memory.oom_control"):
                with contextlib.suppress(OSError), open(os.path.join(d, key)) as f:
                    text = f.read()
                    for line in text.splitlines():
                        k, _, v = line.partition(" ")
                        if k in ("oom_kill", "oom") and v.strip() not in ("", "0"):
                            return True
        return False

    def pids_hit(self) -> bool:
        for d in self.dirs:
            with contextlib.suppress(OSError), open(os.path.join(d, "pids.events")) as f:
                if any(line.startswith("max ") and line.split()[1] != "0"
                       for line in f.read().splitlines()):
                    return True
        return False

    def kill_all(self) -> None:
        for d in self.dirs:
            with contextlib.suppress(OSError), open(os.path.join(d, "cgroup.procs")) as f:
                for pid in f.read().split():
                    with contextlib.suppress(OSError):
                        os.kill(int(pid), signal.SIGKILL)

    def remove(self) -> None:
        for d in self.dirs:
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except OSError:
                    self.kill_all()
                    time.sleep(0.05)


class BwrapSandbox:
    """Builds under ``bwrap`` with a Debian root filesystem."""

    name = "bwrap"

    def __init__(self, rootfs: str | None = None) -> None:
        self.rootfs = rootfs or rootfs_path()
        self.bwrap = shutil.which("bwrap")

    def problems(self) -> list[str]:
        out = []
        if self.bwrap is None:
            out.append("bubblewrap is not installed (apt-get install bubblewrap)")
        if not os.path.exists(os.path.join(self.rootfs, "usr", "bin", "python3")):
            out.append(f"no sandbox root filesystem at {self.rootfs} (run "
                       "safepip sandbox build-image, or set SAFEPIP_ROOTFS)")
        if not out:
            probe = subprocess.run([self.bwrap or "bwrap", "--unshare-all", "--ro-bind",
                                    self.rootfs, "/", "--", "/usr/bin/true"],
                                   capture_output=True, text=True, check=False)
            if probe.returncode != 0:
                out.append("bwrap cannot create namespaces here: " +
                           (probe.stderr.strip() or f"exit {probe.returncode}"))
        return out

    def describe(self) -> str:
        return f"bubblewrap ({self.bwrap}) with root filesystem {self.rootfs}"

    def python_tag(self) -> str:
        out = subprocess.run([self.bwrap or "bwrap", "--unshare-all", "--ro-bind",
                              self.rootfs, "/", "--", "/usr/bin/python3", "-I", "-S", "-c",
                              "import sys;print('cp%d%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=False)
        return out.stdout.strip() or "unknown"

    def identity(self) -> str:
        try:
            st = os.stat(os.path.join(self.rootfs, ".safepip-complete"))
        except OSError:
            st = os.stat(self.rootfs)
        return f"rootfs:{self.rootfs}:{int(st.st_mtime)}"

    def command(self, spec: RunSpec) -> list[str]:
        if self.bwrap is None:
            raise SandboxError("bubblewrap is not installed")
        env: list[str] = []
        for k, v in ENV_ALLOWLIST.items():
            env += ["--setenv", k, v]
        env += ["--setenv", "SAFEPIP_SRC", spec.src_inside]
        # The root is a tmpfs holding read-only binds of the rootfs' top-level entries, so
        # that mount points can be made anywhere (an editable project at its own path);
        # it is remounted read-only once everything is in place.
        root: list[str] = ["--tmpfs", "/"]
        for entry in sorted(os.listdir(self.rootfs)):
            if entry in ("proc", "dev", "tmp", "sys") or entry.startswith("."):
                continue
            path = os.path.join(self.rootfs, entry)
            if os.path.islink(path):
                root += ["--symlink", os.readlink(path), "/" + entry]
            elif os.path.isdir(path):
                root += ["--ro-bind", path, "/" + entry]
        return [
            self.bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
            *env,
            *root,
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
            "--bind", spec.src, spec.src_inside,
            "--bind", spec.out, "/out",
            "--ro-bind", spec.wheelhouse, "/wheelhouse",
            "--tmpfs", "/driver", "--ro-bind", DRIVER, "/driver/driver.py",
            "--remount-ro", "/driver",
            "--remount-ro", "/",
            "--uid", str(BUILD_UID), "--gid", str(BUILD_UID),
            "--cap-drop", "ALL",
            "--chdir", spec.src_inside,
            "--", *spec.argv,
        ]

    def run(self, spec: RunSpec) -> RunResult:
        limits = spec.limits
        cg = _Cgroup(limits)

        def child_setup() -> None:
            cg.enter()
            # rlimits as a second line (cgroups may be missing; NPROC binds non-root users)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            resource.setrlimit(resource.RLIMIT_FSIZE, (limits.output, limits.output))
            if not cg.dirs:
                resource.setrlimit(resource.RLIMIT_AS, (limits.memory, limits.memory))
                resource.setrlimit(resource.RLIMIT_NPROC, (limits.pids, limits.pids))

        start = time.monotonic()
        log = LogBuffer(limits.log)
        try:
            proc = subprocess.Popen(self.command(spec), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    preexec_fn=child_setup, start_new_session=True,
                                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        except OSError as exc:
            cg.remove()
            raise SandboxError(f"cannot start bubblewrap: {exc}") from exc
        reader = threading.Thread(target=_pump, args=(proc, log), daemon=True)
        reader.start()
        killed: str | None = None
        try:
            while proc.poll() is None:
                if time.monotonic() - start > limits.timeout:
                    killed = "timeout"
                elif tree_size(spec.src, spec.out) > limits.output:
                    killed = "output"
                if killed:
                    _kill(proc)
                    cg.kill_all()
                    break
                time.sleep(0.05 if time.monotonic() - start < 2 else 0.25)
            proc.wait()
            reader.join(timeout=5)
            if killed is None and proc.returncode != 0:
                if cg.oom_killed():
                    killed = "memory"
                elif cg.pids_hit():
                    killed = "pids"
                elif proc.returncode == -signal.SIGXFSZ or proc.returncode == 128 + 25:
                    killed = "output"
        finally:
            cg.kill_all()
            cg.remove()
            if proc.stdout is not None:
                proc.stdout.close()
        return RunResult(proc.returncode, log.text(), time.monotonic() - start, killed,
                         log.truncated)


def _pump(proc: subprocess.Popen[bytes], log: LogBuffer) -> None:
    assert proc.stdout is not None
    while chunk := proc.stdout.read1(65536):  # type: ignore[attr-defined]
        log.feed(chunk)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        proc.kill()
