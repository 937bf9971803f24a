"""The cooldown: files uploaded less than ``--min-release-age`` ago are not taken.

A compromised maintainer account publishes a malicious release, and installers take it
at once; PyPI's own figures (design.md) are that most malware is taken down within a
day. Waiting two days before taking a new file closes that window for everyone who does
not ask for the file by name: an exact ``==`` pin (as for yanked files) is exempt, and
said to be. The rule is per file, not per version: a wheel added later to an old release
(a new platform, say) waits too, also when a lock keeps that version; a lock's kept pin
whose files are all new (a lock made without the cooldown) is taken whole.

Files whose index gives no upload time (PEP 503 HTML pages, ``--find-links``, direct
URLs) cannot be judged and are taken, as uv's ``exclude-newer`` and pip's
``--uploaded-prior-to`` can only judge what the index dates.
"""

from __future__ import annotations

import re

from safepip.errors import UsageError

# typing is not imported at run time: the CLI reads DEFAULT to build its parser
TYPE_CHECKING = False
if TYPE_CHECKING:
    from safepip.models import DistFile

DEFAULT = "2d"  # the flag's default, as the user would write it
HINT = ("--min-release-age 0 takes files of any age (or pin the version with ==, "
        "which is exempt)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")


def parse_age(text: str, flag: str = "--min-release-age") -> float:
    """Seconds from ``2d``, ``36h``, ``90m``, ``3600s``, ``1w`` or a plain number of days;
    ``0`` turns the cooldown off."""
    m = _AGE.fullmatch(text.strip().lower())
    if m is None:
        raise UsageError(f"{flag} {text!r} is not an age",
                         hint=f"say e.g. {flag} 2d (days), 12h, 30m, or 0 to turn it off")
    return float(m[1]) * _UNITS[m[2] or "d"]


def describe(seconds: float) -> str:
    """An age as people say it: ``2 days``, ``5 hours``, ``12 minutes``."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = round(seconds / size, 1)
            text = f"{n:g}"
            return f"{text} {unit}{'' if text == '1' else 's'}"
    return f"{max(0, round(seconds))} seconds"


def window(seconds: float) -> str:
    """The cooldown's length as an adjective: ``2-day``, ``12-hour``."""
    n, unit = describe(seconds).split(" ")
    return f"{n}-{unit.removesuffix('s')}"


def upload_timestamp(text: str) -> float | None:
    """PEP 700's ``upload-time`` (ISO 8601, UTC) as a POSIX timestamp; None when absent
    or unreadable (such a file cannot be judged)."""
    import datetime  # only when some file is dated

    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


class Cooldown:
    """Which files are too new, at one instant ``now`` for the whole run."""

    def __init__(self, min_age: float, now: float) -> None:
        self.min_age = min_age
        self.now = now
        self.cutoff = now - min_age
        self._seen: dict[str, float | None] = {}

    def age_if_too_new(self, dist: DistFile) -> float | None:
        """How old ``dist`` is (seconds) if it is inside the cooldown, else None."""
        text = dist.upload_time
        if not text:
            return None
        if text in self._seen:
            when = self._seen[text]
        else:
            when = self._seen[text] = upload_timestamp(text)
        if when is None or when <= self.cutoff:
            return None
        return max(0.0, self.now - when)
