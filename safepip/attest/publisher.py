"""Who published a file: a PyPI Trusted Publisher identity, as safepip compares them.

PEP 740 provenance names its publisher (``{"kind": "GitHub", "repository": "o/r",
"workflow": "release.yml"}``); once the attestation verifies, the signing certificate has
been checked against exactly that identity, so the identity is proven.

Two identities are *the same publisher* when their kind and repository (GitHub, GitLab)
or account email (Google) agree. The workflow file and the deployment environment are
shown but not compared: anyone who can change which workflow publishes can also change
what the existing workflow does, so comparing them would only produce false alarms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KINDS = {"github": "GitHub", "gitlab": "GitLab", "google": "Google"}


@dataclass(frozen=True)
class Publisher:
    kind: str  # "GitHub" | "GitLab" | "Google" | another kind PyPI adds later
    repository: str = ""  # OWNER/REPO (GitHub), NAMESPACE/PROJECT (GitLab)
    workflow: str = ""  # release.yml, .gitlab-ci.yml
    environment: str = ""
    email: str = ""  # Google

    @property
    def key(self) -> str:
        """What must stay the same from one release to the next."""
        who = self.email if self.kind == "Google" else self.repository
        return f"{self.kind.lower()}:{who.lower()}"

    @property
    def spec(self) -> str:
        """The form ``safepip trust --publisher`` takes."""
        return self.key if self.kind == "Google" else (
            f"{self.kind.lower()}:{self.repository}")

    def describe(self) -> str:
        if self.kind == "GitHub":
            return f"github.com/{self.repository}" + (f" ({self.workflow})" if self.workflow
                                                      else "")
        if self.kind == "GitLab":
            return f"gitlab.com/{self.repository}" + (f" ({self.workflow})" if self.workflow
                                                      else "")
        if self.kind == "Google":
            return f"Google account {self.email}"
        return f"{self.kind} {self.repository or self.email}".strip()

    @property
    def repository_url(self) -> str | None:
        host = {"GitHub": "github.com", "GitLab": "gitlab.com"}.get(self.kind)
        return f"https://{host}/{self.repository}" if host and self.repository else None

    def as_dict(self) -> dict[str, str]:
        out = {"kind": self.kind}
        for k in ("repository", "workflow", "environment", "email"):
            if v := getattr(self, k):
                out[k] = v
        return out

    @classmethod
    def from_provenance(cls, data: dict[str, Any]) -> Publisher:
        """From a provenance bundle's ``publisher`` object (already schema-checked)."""

        def s(key: str) -> str:
            v = data.get(key)
            return v if isinstance(v, str) else ""

        kind = s("kind")
        return cls(kind=kind, repository=s("repository"),
                   workflow=s("workflow") or s("workflow_filepath"),
                   environment=s("environment"), email=s("email"))

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Publisher:
        """From a trust-store or lock entry (``kind`` + the identity's fields)."""
        return cls.from_provenance(data)

    @classmethod
    def parse(cls, spec: str) -> Publisher:
        """``github:OWNER/REPO``, ``gitlab:NS/PROJECT``, ``google:EMAIL`` or a
        ``https://github.com/OWNER/REPO`` URL. Raises ValueError."""
        text = spec.strip()
        for host, kind in (("github.com", "GitHub"), ("gitlab.com", "GitLab")):
            for prefix in (f"https://{host}/", f"http://{host}/", f"{host}/"):
                if text.lower().startswith(prefix):
                    text = f"{kind.lower()}:{text[len(prefix):]}"
        kind_s, sep, who = text.partition(":")
        found = KINDS.get(kind_s.lower())
        who = who.strip().strip("/").removesuffix(".git")
        if not sep or found is None or not who:
            raise ValueError(f"{spec!r} is not a publisher: write github:OWNER/REPO, "
                             "gitlab:NAMESPACE/PROJECT or google:EMAIL")
        kind = found
        if kind == "Google":
            if "@" not in who:
                raise ValueError(f"{spec!r}: a Google publisher is an email address")
            return cls(kind=kind, email=who)
        if "/" not in who:
            raise ValueError(f"{spec!r}: a {kind} publisher is OWNER/REPOSITORY")
        return cls(kind=kind, repository=who)
