"""What safepip needs to know of an interpreter: version, tags, markers, install scheme.

Run as a script inside the target interpreter (``python -I -S _probe.py PACKAGING_PARENT``:
nothing of the target's site-packages is imported, only the stdlib and the copy of
``packaging`` that ships with safepip), which prints the facts as JSON; or imported by
safepip when the target is the very interpreter and environment it runs in (nothing to
isolate from then, and no new process to wait for). Standard library only.
"""

from __future__ import annotations  # runs on the target's Python, which may be older

import os
import sys


def _version_of(info: sys._version_info) -> str:
    v = f"{info.major}.{info.minor}.{info.micro}"
    return v if info.releaselevel == "final" else v + info.releaselevel[0] + str(info.serial)


def venv_dir(executable: str) -> str | None:
    """The virtual environment ``executable`` belongs to (where pyvenv.cfg is), if any."""
    exe_dir = os.path.dirname(os.path.abspath(executable))
    for d in (exe_dir, os.path.dirname(exe_dir)):
        if os.path.isfile(os.path.join(d, "pyvenv.cfg")):
            return d
    return None


def facts(executable: str) -> dict[str, object]:
    import platform
    import sysconfig

    from packaging import tags

    # PEP 508's environment markers, written out (importing packaging.markers for its
    # default_environment() costs the probe a third of its time)
    markers = {
        "implementation_name": sys.implementation.name,
        "implementation_version": _version_of(sys.implementation.version),
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }

    def paths(scheme: str, base: str | None = None) -> dict[str, str]:
        v = {} if base is None else {"base": base, "platbase": base}
        return sysconfig.get_paths(scheme=scheme, vars=v)

    # the user base from the environment as it is now (sysconfig's config variables keep
    # the one of their first use, and this may run in a process that began long ago)
    getuserbase = getattr(sysconfig, "_getuserbase", None)
    user_vars = {"userbase": getuserbase()} if getuserbase is not None else {}
    names = sysconfig.get_scheme_names()
    prefix_scheme = "venv" if "venv" in names else (
        "posix_prefix" if os.name == "posix" else "nt")
    user_scheme = os.name + "_user" if os.name + "_user" in names else None
    # without site (-S), sys.prefix is not the venv's: find pyvenv.cfg as site.py would
    prefix = venv_dir(executable) or sys.prefix
    return {
        "executable": executable,
        "prefix": prefix,
        "base_prefix": sys.base_prefix,
        "version": "{}.{}.{}".format(*sys.version_info[:3]),
        "tags": [str(t) for t in tags.sys_tags()],
        "markers": markers,
        "scheme": paths(prefix_scheme, prefix),
        "prefix_scheme": prefix_scheme,
        "user_scheme": sysconfig.get_paths(scheme=user_scheme, vars=user_vars)
        if user_scheme else None,
        "stdlib": sysconfig.get_paths()["stdlib"],
    }


if __name__ == "__main__":
    import json

    sys.path.insert(0, sys.argv[1])
    sys.stdout.write(json.dumps(facts(sys.executable)))
