"""Who published a file: a PyPI Trusted Publisher identity, as safepip compares them.

PEP 740 provenance names its publisher (``{"kind": "GitHub", "repository": "o/r",
"workflow": "release.yml"}``); once the attestation verifies, the signing certificate has
been checked against exactly that identity, so the identity is proven.

Two identities are *the same publisher* when their kind and repository (GitHub, GitLab),
account email (Google) or project (CircleCI) agree; for a kind safepip does not know yet,
all of its fields must. The workflow file and the deployment environment are
shown but not compared: anyone who can change which workflow publishes can also change
what the existing workflow does, so comparing them would only produce false alarms.
"""

from __future__ import annotations

from typing import Any

from safepip._record import record

KINDS = {"github": "GitHub", "gitlab": "GitLab", "google": "Google", "circleci": "CircleCI"}
# the field that names a publisher of each other kind (compared like a repository)
IDENTITY_FIELD = {"CircleCI": "project_id"}
# fields that are shown but never part of the identity
NOT_IDENTITY = {"kind", "repository", "workflow", "workflow_filepath", "environment",
                "email", "vcs_ref"}


@record(frozen=True)
class Publisher:
    kind: str  # "GitHub" | "GitLab" | "Google" | another kind PyPI adds later
    repository: str = ""  # OWNER/REPO (GitHub), NAMESPACE/PROJECT (GitLab)
    workflow: str = ""  # release.yml, .gitlab-ci.yml
    environment: str = ""
    email: str = ""  # Google
    # any other string fields (CircleCI's project_id, vcs_origin, ...), sorted
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def who(self) -> str:
        if self.kind == "Google":
            return self.email
        if self.kind in ("GitHub", "GitLab"):
            return self.repository
        field = IDENTITY_FIELD.get(self.kind)
        if field is not None:
            return dict(self.extra).get(field, "")
        # a kind safepip does not know: every field it has is the identity
        return ",".join(f"{k}={v}" for k, v in self.extra)

    @property
    def key(self) -> str:
        """What must stay the same from one release to the next."""
        return f"{self.kind.lower()}:{self.who.lower()}"

    @property
    def spec(self) -> str:
        """The form ``safepip trust --publisher`` takes."""
        return f"{self.kind.lower()}:{self.who}"

    def describe(self) -> str:
        if self.kind == "GitHub":
            return f"github.com/{self.repository}" + (f" ({self.workflow})" if self.workflow
                                                      else "")
        if self.kind == "GitLab":
            return f"gitlab.com/{self.repository}" + (f" ({self.workflow})" if self.workflow
                                                      else "")
        if self.kind == "Google":
            return f"Google account {self.email}"
        if self.kind == "CircleCI":
            origin = dict(self.extra).get("vcs_origin")
            return f"CircleCI project {self.who}" + (f" ({origin})" if origin else "")
        return f"{self.kind} {self.who}".strip()

    @property
    def repository_url(self) -> str | None:
        host = {"GitHub": "github.com", "GitLab": "gitlab.com"}.get(self.kind)
        return f"https://{host}/{self.repository}" if host and self.repository else None

    def as_dict(self) -> dict[str, str]:
        out = {"kind": self.kind}
        for k in ("repository", "workflow", "environment", "email"):
            if v := getattr(self, k):
                out[k] = v
        out.update(self.extra)
        return out

    @classmethod
    def from_provenance(cls, data: dict[str, Any]) -> Publisher:
        """From a provenance bundle's ``publisher`` object (already schema-checked)."""

        def s(key: str) -> str:
            v = data.get(key)
            return v if isinstance(v, str) else ""

        kind = s("kind")
        extra = tuple(sorted((k, v) for k, v in data.items()
                             if k not in NOT_IDENTITY and isinstance(v, str) and v))
        return cls(kind=kind, repository=s("repository"),
                   workflow=s("workflow") or s("workflow_filepath"),
                   environment=s("environment"), email=s("email"), extra=extra)

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Publisher:
        """From a trust-store or lock entry (``kind`` + the identity's fields)."""
        return cls.from_provenance(data)

    @classmethod
    def parse(cls, spec: str) -> Publisher:
        """``github:OWNER/REPO``, ``gitlab:NS/PROJECT``, ``google:EMAIL``,
        ``circleci:PROJECT_ID`` or a ``https://github.com/OWNER/REPO`` URL. Raises
        ValueError."""
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
        if kind in IDENTITY_FIELD:
            return cls(kind=kind, extra=((IDENTITY_FIELD[kind], who),))
        if "/" not in who:
            raise ValueError(f"{spec!r}: a {kind} publisher is OWNER/REPOSITORY")
        return cls(kind=kind, repository=who)
