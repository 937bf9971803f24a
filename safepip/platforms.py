"""Another target than this interpreter, for ``safepip lock --python-version/--platform``.

The tags and markers of a Python version and platform that is not the one running, as
pip's ``--platform``/``--python-version`` and uv's ``--python-platform`` do:

- ``manylinux_2_28_x86_64`` means glibc 2.28 or newer: every manylinux tag down to
  ``manylinux_2_5`` (with the legacy aliases), then ``linux_x86_64``;
- ``musllinux_1_2_aarch64`` likewise down to ``musllinux_1_0``;
- ``macosx_12_0_arm64``: packaging's own list of macOS tags up to that version;
- ``win_amd64``, ``win32``, ``win_arm64`` as they are;
- short names: ``linux`` (manylinux_2_28_x86_64), ``linux-arm64``
  (manylinux_2_28_aarch64), ``macos`` (macosx_12_0_arm64), ``macos-x86_64``
  (macosx_12_0_x86_64), ``windows`` (win_amd64).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from safepip._record import replace
from safepip.errors import UsageError

if TYPE_CHECKING:
    from safepip.target import Interpreter

ALIASES = {
    "linux": "manylinux_2_28_x86_64",
    "linux-arm64": "manylinux_2_28_aarch64",
    "macos": "macosx_12_0_arm64",
    "macos-x86_64": "macosx_12_0_x86_64",
    "windows": "win_amd64",
}
_LEGACY = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


def platform_tags(platform: str) -> list[str]:
    """Platform tags a wheel may carry to run on ``platform``, most specific first."""
    p = ALIASES.get(platform, platform)
    if m := re.fullmatch(r"manylinux_(\d+)_(\d+)_(\w+)", p):
        major, minor, arch = int(m[1]), int(m[2]), m[3]
        if major != 2 or minor < 5:
            raise UsageError(f"--platform {platform}: only glibc 2.5 and newer (manylinux_2_Y)")
        out = []
        for y in range(minor, 4, -1):
            out.append(f"manylinux_2_{y}_{arch}")
            legacy = _LEGACY.get(y)
            if legacy and (y == 17 or arch in ("x86_64", "i686")):
                out.append(f"{legacy}_{arch}")
        return [*out, f"linux_{arch}"]
    if m := re.fullmatch(r"musllinux_(\d+)_(\d+)_(\w+)", p):
        major, minor, arch = int(m[1]), int(m[2]), m[3]
        return [f"musllinux_{major}_{y}_{arch}" for y in range(minor, -1, -1)] + [
            f"linux_{arch}"]
    if m := re.fullmatch(r"macosx_(\d+)_(\d+)_(\w+)", p):
        from packaging.tags import mac_platforms

        return list(mac_platforms((int(m[1]), int(m[2])), m[3]))
    if p in ("win_amd64", "win32", "win_arm64"):
        return [p]
    raise UsageError(f"--platform {platform}: not a platform safepip knows",
                     hint="e.g. manylinux_2_28_x86_64, musllinux_1_2_x86_64, "
                          "macosx_12_0_arm64, win_amd64, or linux, macos, windows")


def _markers(platform: str, version: str, base: dict[str, str]) -> dict[str, str]:
    p = ALIASES.get(platform, platform)
    out = dict(base)
    if p.startswith(("manylinux", "musllinux")):
        arch = p.rsplit("_", 1)[1] if not p.endswith("x86_64") else "x86_64"
        out.update(sys_platform="linux", platform_system="Linux", os_name="posix",
                   platform_machine=arch)
    elif p.startswith("macosx"):
        arch = "x86_64" if p.endswith("x86_64") else p.rsplit("_", 1)[1]
        out.update(sys_platform="darwin", platform_system="Darwin", os_name="posix",
                   platform_machine=arch)
    else:
        machine = {"win_amd64": "AMD64", "win32": "x86", "win_arm64": "ARM64"}[p]
        out.update(sys_platform="win32", platform_system="Windows", os_name="nt",
                   platform_machine=machine)
    out.update(platform_release="", platform_version="")
    return out


def foreign(base: Interpreter, python_version: str | None,
            platform: str | None) -> Interpreter:
    """``base`` with another Python version and/or platform (for resolving only)."""
    from packaging.tags import compatible_tags, cpython_tags, parse_tag

    version = base.version
    if python_version:
        if not re.fullmatch(r"3\.\d+(\.\d+)?", python_version):
            raise UsageError(f"--python-version {python_version}: write 3.X or 3.X.Y")
        version = python_version if python_version.count(".") == 2 else python_version + ".0"
    major, minor = (int(x) for x in version.split(".")[:2])
    if platform:
        plats = platform_tags(platform)
        markers = _markers(platform, version, base.markers)
    else:  # this machine's platforms, in this interpreter's order
        plats = list(dict.fromkeys(t.platform for text in base.tags for t in parse_tag(text)
                                   if t.platform != "any"))
        markers = dict(base.markers)
    markers.update(python_version=f"{major}.{minor}", python_full_version=version,
                   implementation_name="cpython", platform_python_implementation="CPython",
                   implementation_version=version)
    tags = [str(t) for t in cpython_tags((major, minor), platforms=plats)]
    tags += [str(t) for t in compatible_tags((major, minor), f"cp{major}{minor}", plats)]
    return replace(base, version=version, tags=tuple(dict.fromkeys(tags)),
                               markers=markers)


def describe(python_version: str | None, platform: str | None, base: Interpreter) -> str:
    plat = ALIASES.get(platform, platform) if platform else "this platform"
    return f"Python {python_version or base.version} on {plat}"


__all__ = ["ALIASES", "describe", "foreign", "platform_tags"]
