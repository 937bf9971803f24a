"""Writing a lock file, and what ``--check`` compares (no packaging import: a lock
answered from its memo uses these alone)."""

from __future__ import annotations

import contextlib
import os

from safepip.errors import DiskFullError, is_disk_full


def body(text: str) -> str:
    """The lock without its header (what --check compares)."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("#"))


def write(path: str, text: str) -> None:
    """All or nothing: the old lock stays as it was if the new one cannot be written. A
    lock that already says exactly this is left untouched (its modification time too,
    for make and file watchers)."""
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    except (OSError, UnicodeDecodeError):
        pass
    tmp = f"{path}.safepip-tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if is_disk_full(exc):
            raise DiskFullError("writing the lock", path,
                                hint="free some space there; the lock is as it was") from exc
        raise
