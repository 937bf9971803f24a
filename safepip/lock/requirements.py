"""``safepip lock``: hash-pinned ``requirements.txt`` in the pip-compile shape.

Every file of each pinned version is hashed into the lock (wheels for every platform and
the sdist), so that pip's hash-checking mode, uv and safepip install the same version
anywhere; ``# via`` says why each pin is there. The lock is resolved for the current
interpreter, as pip-compile does, and its header says so.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from safepip import __version__
from safepip.errors import RequirementsFileError, UsageError

__all__ = ["existing_pins", "pyproject_requirements", "render", "source_options"]

if TYPE_CHECKING:
    from safepip.attest.publisher import Publisher
    from safepip.config import Config
    from safepip.models import DistFile, Pin
    from safepip.reqfile import RequirementSet


def pyproject_requirements(path: str, extras: list[str], groups: list[str],
                           rs: RequirementSet) -> None:
    """``[project.dependencies]``, chosen optional-dependencies and PEP 735 groups."""
    import tomllib

    from safepip.reqfile import parse_requirement

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError as exc:
        raise UsageError("nothing to lock: no requirements given and no pyproject.toml here",
                         hint="safepip lock NAME..., safepip lock -r requirements.in, or run "
                              "it in a project directory") from exc
    except (tomllib.TOMLDecodeError, OSError) as exc:
        raise RequirementsFileError(path, None, f"not valid TOML: {exc}") from exc
    project = data.get("project", {})
    deps = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise RequirementsFileError(path, None, f"no optional-dependencies {extra!r}")
        deps += optional[extra]
    all_groups = data.get("dependency-groups", {})

    def group(name: str, seen: tuple[str, ...] = ()) -> list[str]:
        if name in seen:
            raise RequirementsFileError(path, None, f"dependency group {name!r} includes "
                                        "itself")
        if name not in all_groups:
            raise RequirementsFileError(path, None, f"no dependency group {name!r}")
        out: list[str] = []
        for item in all_groups[name]:
            if isinstance(item, dict) and "include-group" in item:
                out += group(str(item["include-group"]), (*seen, name))
            elif isinstance(item, str):
                out.append(item)
        return out

    for g in groups:
        deps += group(g)
    for i, text in enumerate(deps):
        if not isinstance(text, str):
            raise RequirementsFileError(path, None, f"dependency {i + 1} is not a string")
        rs.requirements.append(parse_requirement(text, f"{path}:0"))


def existing_pins(path: str) -> dict[str, Version]:
    """``name==version`` lines of an existing lock (kept unless upgraded)."""
    pins: dict[str, Version] = {}
    if os.path.basename(path).startswith("pylock.") and path.endswith(".toml"):
        import tomllib

        try:
            with open(path, "rb") as fb:
                data = tomllib.load(fb)
            for pkg in data.get("packages", []):
                pins[canonicalize_name(str(pkg["name"]))] = Version(str(pkg["version"]))
        except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, InvalidVersion):
            return {}
        return pins
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return pins
    for line in lines:
        text = line.split("#", 1)[0].strip().rstrip("\\").strip()
        if not text or text.startswith("-"):
            continue
        try:
            req = Requirement(text.split(" --hash")[0])
        except InvalidRequirement:
            continue
        for spec in req.specifier:
            if spec.operator == "==":
                try:
                    pins[canonicalize_name(req.name)] = Version(spec.version)
                except InvalidVersion:
                    pass
    return pins


def source_options(cfg: Config, find_links_used: list[str], output: str) -> list[str]:
    """Option lines that let pip, uv and safepip find the locked files again: the
    --find-links locations that hold some of them (a local one relative to the lock, as
    pip reads it), and --no-index when the lock was made without an index."""
    from safepip.index.findlinks import local_path

    lines = []
    if cfg.no_index:
        lines.append("--no-index")
    for location in find_links_used:
        local = local_path(location)
        if local is not None:
            location = os.path.relpath(local, os.path.dirname(os.path.abspath(output)))
        lines.append(f"--find-links {location}")
    return lines


def render(pins: list[Pin], files: dict[str, list[DistFile]], python: str,
           command: str, identities: dict[str, Publisher] | None = None,
           resolved_for: str = "this interpreter and platform",
           options: list[str] | None = None) -> str:
    lines = [
        "#",
        f"# This file is autogenerated by safepip {__version__} with Python {python}",
        f"# (resolved for {resolved_for}), by the following command:",
        "#",
        f"#    {command}",
        "#",
    ]
    if options:
        lines.extend([*options, ""])
    for pin in sorted(pins, key=lambda p: p.name):
        if pin.dist is None:
            continue
        hashes = sorted({f.sha256 for f in files.get(pin.name, []) if f.sha256})
        extras = f"[{','.join(sorted(pin.extras))}]" if pin.extras else ""
        head = f"{pin.name}{extras}=={pin.version}"
        if pin.dist.index_url == "":
            head = f"{pin.name}{extras} @ {pin.dist.url}"
            hashes = [pin.dist.sha256] if pin.dist.sha256 else hashes
        if not hashes:
            raise RequirementsFileError(
                "requirements.txt", None, f"{pin.name} {pin.version}: no file with a sha256",
                hint="this index gives no hashes and the files could not be hashed")
        if hashes:
            lines.append(head + " \\")
            lines.extend(f"    --hash=sha256:{h}" + (" \\" if i < len(hashes) - 1 else "")
                         for i, h in enumerate(hashes))
        else:
            lines.append(head)
        via = list(pin.via)
        if len(via) == 1:
            lines.append(f"    # via {via[0]}")
        elif via:
            lines.append("    # via")
            lines.extend(f"    #   {v}" for v in via)
        if identities and pin.name in identities:
            # read back by safepip install: the locked file must be attested by it
            lines.append(f"    # attested-by: {identities[pin.name].spec}")
    return "\n".join(lines) + "\n"
