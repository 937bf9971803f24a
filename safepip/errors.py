"""One root exception, one subclass per failure domain, evidence on attributes.

Every error carries what a person needs to act: the package and file it concerns, the
rule that was broken, and (``hint``) the flag or step that gets past it. Only ``cli``
turns these into text on stderr and an exit code.
"""

from __future__ import annotations


class SafepipError(Exception):
    """Root of every error safepip raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(SafepipError):
    """Bad command-line arguments or configuration."""

    exit_code = 2


class TargetError(SafepipError):
    """No usable environment to install into, or one we must not touch."""


class RequirementsFileError(SafepipError):
    """A requirements or constraints file could not be read or parsed."""

    def __init__(self, path: str, line: int | None, message: str, *, hint: str | None = None):
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}", hint=hint)
        self.path = path
        self.line = line


class IndexError_(SafepipError):
    """The package index could not be reached or answered something unusable."""


class NetworkError(IndexError_):
    """A transport-level failure (connection, timeout, TLS, bad redirect)."""

    def __init__(self, url: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{message} ({url})", hint=hint)
        self.url = url


class InsecureURLError(NetworkError):
    """A URL that safepip refuses to fetch (plain http, file: redirect...)."""


class ResolutionError(SafepipError):
    """No set of versions satisfies the requirements."""


class BuildRequiredError(SafepipError):
    """The chosen version of a package exists only as a source distribution."""

    def __init__(self, project: str, version: str, filename: str, reason: str = "") -> None:
        super().__init__(
            f"{project} {version} is only available as a source distribution ({filename}); "
            "building it runs the package's own code, which safepip does only in a sandbox, "
            f"and {reason or 'no sandbox is available'}",
            hint=(
                "see `safepip sandbox status` for how to get Docker or bubblewrap; or pin a "
                f"version that ships a wheel (e.g. '{project}<{version}'); "
                "--unsafe-build-on-host builds on this machine (not recommended)"
            ),
        )
        self.project = project
        self.version = version
        self.filename = filename


class HashMismatchError(SafepipError):
    """A downloaded or cached file does not have the expected digest."""

    def __init__(
        self, filename: str, expected: str, got: str, source: str, algo: str = "sha256"
    ) -> None:
        super().__init__(
            f"hash mismatch for {filename}: {source} says {algo}:{expected}, "
            f"the downloaded file is {algo}:{got}; the file was discarded",
            hint="if the requirement's --hash is out of date, regenerate the lock",
        )
        self.filename = filename
        self.expected = expected
        self.got = got


class HashRequiredError(SafepipError):
    """Hash-checking mode is on and a requirement has no hash."""


class WheelError(SafepipError):
    """A wheel is malformed or tries something no honest wheel needs."""

    def __init__(
        self, filename: str, rule: str, detail: str, *, hint: str | None = None
    ) -> None:
        super().__init__(f"{filename}: {detail} [{rule}]", hint=hint)
        self.filename = filename
        self.rule = rule
        self.detail = detail


class InstallError(SafepipError):
    """Installing into the target failed; the environment was restored."""


class DiskFullError(SafepipError):
    """A write failed for lack of space or quota (threats.md row 30)."""

    def __init__(self, doing: str, path: str | None, *, hint: str) -> None:
        where = f" ({path})" if path else ""
        super().__init__(f"no space left on the device while {doing}{where}", hint=hint)
        self.path = path


def is_disk_full(exc: BaseException) -> bool:
    import errno

    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


class MetadataError(SafepipError):
    """A distribution's metadata is missing, malformed or inconsistent."""


class SdistError(SafepipError):
    """A source distribution that cannot be unpacked or read safely."""

    def __init__(self, filename: str, rule: str, detail: str, *, hint: str | None = None):
        super().__init__(f"{filename}: {detail} [{rule}]", hint=hint)
        self.filename = filename
        self.rule = rule


class SandboxError(SafepipError):
    """No sandbox can run builds here, or the sandbox itself failed."""


class BuildError(SafepipError):
    """A build inside the sandbox failed, was killed, or returned something unusable."""

    def __init__(self, project: str, message: str, *, log: str = "",
                 hint: str | None = None) -> None:
        super().__init__(f"building {project} failed: {message}", hint=hint)
        self.project = project
        self.log = log


class AttestationError(SafepipError):
    """A file's PEP 740 provenance is missing where it is required, does not verify, or
    names another publisher than the one trusted for its project."""

    def __init__(self, message: str, *, hint: str | None = None,
                 filename: str | None = None, project: str | None = None) -> None:
        super().__init__(f"{filename}: {message}" if filename else message, hint=hint)
        self.filename = filename
        self.project = project
        self.reason = message
