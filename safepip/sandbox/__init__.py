"""Sandboxes that run build code: one protocol, two backends (Docker, bubblewrap).

The contract every backend keeps (issue 3, "the sandbox contract"):
- no network: no interface but loopback;
- the only host paths it sees: the source tree (a fresh copy), the wheelhouse of build
  dependencies (read-only), an output directory, and safepip's build driver (read-only);
- no host environment: only ``ENV_ALLOWLIST``;
- a non-root user, a read-only root filesystem, a tmpfs ``/tmp``, no capabilities,
  no-new-privileges;
- limits on memory, CPU, process count, wall time, output size and log size; a run that
  exceeds one is killed and says which.
"""

from __future__ import annotations

import os
from typing import Protocol

from safepip._record import field, record

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "driver.py")
ENV_ALLOWLIST = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "SOURCE_DATE_EPOCH": "315532800",
}
BUILD_UID = 65534


@record(frozen=True)
class Limits:
    """Resource limits for one run; the defaults fit a large C++ build."""

    timeout: float = 1800.0
    memory: int = 8 * 1024**3
    cpus: float = float(os.cpu_count() or 2)
    pids: int = 2048
    output: int = 4 * 1024**3  # bytes written to /src and /out together
    log: int = 2 * 1024**2  # bytes of output kept (head and tail)


@record(frozen=True)
class RunSpec:
    """One command to run inside the sandbox."""

    src: str  # host directory, a fresh copy: becomes /src (writable)
    out: str  # host directory: becomes /out (writable); results come back from here
    wheelhouse: str  # host directory: becomes /wheelhouse (read-only)
    argv: tuple[str, ...]
    limits: Limits = field(default_factory=Limits)
    # editable builds: the project itself, seen at its own path (PEP 660 wheels point
    # there), instead of a fresh copy at /src
    in_place: bool = False

    @property
    def src_inside(self) -> str:
        return self.src if self.in_place else "/src"


@record
class RunResult:
    exit_code: int | None
    log: str
    duration: float
    killed: str | None = None  # "timeout", "memory", "output", "pids" ...
    log_truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.killed is None and self.exit_code == 0


class Sandbox(Protocol):
    """A way to run build code away from the host."""

    name: str

    def describe(self) -> str: ...

    def python_tag(self) -> str:
        """The interpreter inside, as ``cp311``, for the built-wheel cache key."""
        ...

    def identity(self) -> str:
        """What the built-wheel cache is keyed on: the image digest or rootfs id."""
        ...

    def run(self, spec: RunSpec) -> RunResult: ...


def driver_argv(hook: str) -> tuple[str, ...]:
    return ("python3", "-I", "-S", "/driver/driver.py", hook)


class LogBuffer:
    """Keeps the head and the tail of a build's output, counting everything."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        half = self.limit // 2
        if len(self.head) < half:
            take = data[: half - len(self.head)]
            self.head += take
            data = data[len(take):]
        if data:
            self.tail += data
            if len(self.tail) > half:
                del self.tail[: len(self.tail) - half]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + len(self.tail)

    def text(self) -> str:
        mid = (f"\n[... {self.total - len(self.head) - len(self.tail)} bytes of output "
               "left out ...]\n") if self.truncated else ""
        return (bytes(self.head).decode("utf-8", "replace") + mid +
                bytes(self.tail).decode("utf-8", "replace"))


def tree_size(*roots: str) -> int:
    total = 0
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for fn in files:
                try:
                    total += os.lstat(os.path.join(dirpath, fn)).st_size
                except OSError:
                    pass
    return total
