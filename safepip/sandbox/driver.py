"""The build driver: runs INSIDE the sandbox, with the standard library only.

    python3 -I -S /driver/driver.py HOOK

It makes the build environment by unpacking the wheels of ``/wheelhouse`` (verified on
the host) into ``/tmp/buildenv``, imports the PEP 517 backend named by
``/src/pyproject.toml`` (``backend-path`` honoured, and kept inside ``/src``), calls one
hook, and writes ``/out/result.json``:
``{"hook": ..., "result": ...}`` or ``{"hook": ..., "error": ..., "missing": bool}``.
HOOK is one of get_requires_for_build_wheel, prepare_metadata_for_build_wheel,
build_wheel, get_requires_for_build_editable, prepare_metadata_for_build_editable,
build_editable. Nothing else is read from outside the sandbox.
"""

import json
import os
import sys
import traceback
import zipfile
from typing import Any

SRC = os.environ.get("SAFEPIP_SRC", "/src")
OUT = os.environ.get("SAFEPIP_OUT", "/out")
WHEELHOUSE = os.environ.get("SAFEPIP_WHEELHOUSE", "/wheelhouse")
BUILDENV = os.environ.get("SAFEPIP_BUILDENV", "/tmp/buildenv")
LEGACY = {"build-backend": "setuptools.build_meta:__legacy__", "requires": ["setuptools>=40.8.0"]}
HOOKS = (
    "get_requires_for_build_wheel", "prepare_metadata_for_build_wheel", "build_wheel",
    "get_requires_for_build_editable", "prepare_metadata_for_build_editable",
    "build_editable",
)


def write_result(data: dict[str, object]) -> None:
    with open(os.path.join(OUT, "result.json"), "w") as f:
        json.dump(data, f)


def build_system() -> dict[str, Any]:
    path = os.path.join(SRC, "pyproject.toml")
    if not os.path.exists(path):
        return dict(LEGACY)
    import tomllib

    with open(path, "rb") as f:
        data = tomllib.load(f)
    table = data.get("build-system")
    if not isinstance(table, dict) or not table:
        return dict(LEGACY)
    return dict(table)


def make_buildenv() -> None:
    os.makedirs(BUILDENV, exist_ok=True)
    if not os.path.isdir(WHEELHOUSE):
        return
    for name in sorted(os.listdir(WHEELHOUSE)):
        if not name.endswith(".whl"):
            continue
        with zipfile.ZipFile(os.path.join(WHEELHOUSE, name)) as zf:
            for info in zf.infolist():
                parts = info.filename.split("/")
                if info.filename.startswith("/") or ".." in parts:
                    raise SystemExit(f"bad member in build dependency {name}")
                # .data/purelib and .data/platlib go to the top; other .data is not needed
                if parts[0].endswith(".data"):
                    if len(parts) > 2 and parts[1] in ("purelib", "platlib"):
                        parts = parts[2:]
                    else:
                        continue
                if info.filename.endswith("/"):
                    continue
                target = os.path.join(BUILDENV, *parts)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    out.write(src.read())


def main() -> int:
    hook = sys.argv[1] if len(sys.argv) > 1 else ""
    if hook not in HOOKS:
        raise SystemExit(f"unknown hook {hook!r}")
    table = build_system()
    backend_spec = str(table.get("build-backend") or LEGACY["build-backend"])
    make_buildenv()
    paths = []
    for p in table.get("backend-path", []):
        full = os.path.realpath(os.path.join(SRC, p))
        if os.path.commonpath([full, os.path.realpath(SRC)]) != os.path.realpath(SRC):
            write_result({"hook": hook, "error": f"backend-path {p!r} leaves the source tree"})
            return 1
        paths.append(full)
    sys.path[:0] = [*paths, BUILDENV]
    os.chdir(SRC)
    module_name, _, obj = backend_spec.partition(":")
    try:
        backend = __import__(module_name, fromlist=["_"])
        for attr in filter(None, obj.split(".")):
            backend = getattr(backend, attr)
    except Exception:  # noqa: BLE001 - reported to the host, which decides
        write_result({"hook": hook, "error": f"cannot import the build backend "
                      f"{backend_spec!r}:\n{traceback.format_exc()}"})
        return 1
    func = getattr(backend, hook, None)
    if func is None:
        write_result({"hook": hook, "missing": True})
        return 0
    out_dir = os.path.join(OUT, "dist")
    os.makedirs(out_dir, exist_ok=True)
    try:
        if hook.startswith("get_requires"):
            result = func({})
        elif hook.startswith("prepare_metadata"):
            result = func(out_dir, {})
        else:
            result = func(out_dir, {}, None)
    except Exception:  # noqa: BLE001 - reported to the host, which decides
        write_result({"hook": hook, "error": traceback.format_exc()})
        return 1
    write_result({"hook": hook, "result": result, "requires": table.get("requires", [])})
    return 0


if __name__ == "__main__":
    sys.exit(main())
