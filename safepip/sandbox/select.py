"""Which sandbox runs builds: ``--sandbox auto|docker|bwrap``, and why."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING

from safepip._record import field, record
from safepip.errors import SandboxError
from safepip.sandbox import ENV_ALLOWLIST, LogBuffer, RunResult

if TYPE_CHECKING:
    from safepip.sandbox import RunSpec, Sandbox

MODES = ("auto", "docker", "podman", "bwrap")


@record
class Choice:
    sandbox: Sandbox | None
    reasons: list[str] = field(default_factory=list)


def choose(mode: str, prefer_bwrap: bool = False) -> Choice:
    """The sandbox for ``mode``, with the reasons the others were not taken
    (``prefer_bwrap``: auto tries bubblewrap first, for root-owned editable projects)."""
    from safepip.sandbox.bwrap import BwrapSandbox
    from safepip.sandbox.docker_backend import DockerSandbox, podman_host

    if mode not in MODES:
        raise SandboxError(f"unknown sandbox {mode!r}; choose one of {', '.join(MODES)}")
    reasons: list[str] = []
    candidates: list[Sandbox] = []
    if mode in ("auto", "docker"):
        candidates.append(DockerSandbox())
    if mode in ("auto", "podman"):
        host = podman_host()
        if host is not None:
            candidates.append(DockerSandbox(host=host, name="podman"))
        elif mode == "podman":
            reasons.append("podman: no Podman socket (start it with `podman system service "
                           "--time=0`, or set CONTAINER_HOST)")
    if mode in ("auto", "bwrap") and sys.platform.startswith("linux"):
        candidates.append(BwrapSandbox())
    if prefer_bwrap and mode == "auto":
        candidates.sort(key=lambda sb: sb.name != "bwrap")
    for sb in candidates:
        problems = sb.problems()  # type: ignore[attr-defined]
        if not problems:
            return Choice(sb, reasons)
        reasons.extend(f"{sb.name}: {p}" for p in problems)
        close(sb)
    if mode == "bwrap" and not sys.platform.startswith("linux"):
        reasons.append("bwrap: bubblewrap needs Linux")
    return Choice(None, reasons)


def close(sandbox: object) -> None:
    """Release what a sandbox holds (the Docker client's connections)."""
    closer = getattr(sandbox, "close", None)
    if callable(closer):
        closer()


class HostRunner:
    """``--unsafe-build-on-host``: the driver runs on this machine, as you. Loudly."""

    name = "host (UNSAFE)"

    def __init__(self, python: str) -> None:
        self.python = python

    def describe(self) -> str:
        return f"NO SANDBOX: builds run on this machine with {self.python}"

    def identity(self) -> str:
        return f"host:{self.python}"

    def python_tag(self) -> str:
        out = subprocess.run([self.python, "-I", "-S", "-c",
                              "import sys;print('cp%d%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=False)
        return out.stdout.strip()

    def run(self, spec: RunSpec) -> RunResult:
        from safepip.sandbox import DRIVER

        env = dict(ENV_ALLOWLIST)
        env.update(SAFEPIP_SRC=spec.src, SAFEPIP_OUT=spec.out,
                   SAFEPIP_WHEELHOUSE=spec.wheelhouse,
                   SAFEPIP_BUILDENV=os.path.join(spec.out, ".buildenv"))
        argv = [self.python, "-I", "-S", DRIVER, spec.argv[-1]]
        start = time.monotonic()
        log = LogBuffer(spec.limits.log)
        try:
            proc = subprocess.run(argv, cwd=spec.src, env=env, capture_output=True,
                                  timeout=spec.limits.timeout, check=False)
        except subprocess.TimeoutExpired:
            return RunResult(None, "", time.monotonic() - start, "timeout")
        log.feed(proc.stdout + proc.stderr)
        import shutil

        shutil.rmtree(os.path.join(spec.out, ".buildenv"), ignore_errors=True)
        return RunResult(proc.returncode, log.text(), time.monotonic() - start, None,
                         log.truncated)
