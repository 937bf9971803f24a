"""Developer tasks: ``nox -s tests``, ``nox -s lint``, ``nox -s bench``."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.default_venv_backend = "venv"

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite (network smoke tests included when SAFEPIP_RUN_NETWORK=1)."""
    session.install("-e", ".[test]")
    args = session.posargs or ["-q"]
    session.run("pytest", *args, env={"PYTHONDONTWRITEBYTECODE": "1"})


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff and mypy --strict."""
    session.install("-e", ".[dev]")
    session.run("ruff", "check", "safepip", "tests", "noxfile.py")
    session.run("mypy")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """safepip against pip and uv on the same inputs; ratios from one run."""
    session.install("-e", ".", "uv", "pip>=26", "pip-tools")
    session.run("python", os.path.join("tests", "bench.py"), *session.posargs)
