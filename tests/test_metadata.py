"""Core metadata is read by safepip's own header reader: held to packaging.metadata's
answers for the fields resolution uses, on every distribution installed here and on the
awkward cases of the format."""

from __future__ import annotations

import importlib.metadata
import re

import pytest
from packaging.metadata import parse_email
from packaging.requirements import Requirement

from safepip.errors import MetadataError
from safepip.index.metadata import parse_metadata, read_headers

FIELDS = {"name": "name", "version": "version", "requires-python": "requires_python",
          "requires-dist": "requires_dist", "provides-extra": "provides_extra"}


def packagings(raw: bytes) -> dict[str, list[str]]:
    """packaging's fields; a folded value unfolded (packaging keeps the line break, on
    which Requirement() then fails; RFC 5322 takes it out)."""
    parsed, _ = parse_email(raw)
    out: dict[str, list[str]] = {}
    for ours, theirs in FIELDS.items():
        value = parsed.get(theirs)  # type: ignore[misc]
        if value is not None:
            values = value if isinstance(value, list) else [value]
            out[ours] = [re.sub(r"\r\n|\r|\n", "", v).strip() for v in values]
    return out


def installed_metadata() -> list[bytes]:
    found = []
    for dist in importlib.metadata.distributions():
        text = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
        if text:
            found.append(text.encode())
    return found


def test_same_fields_as_packaging_for_every_installed_distribution() -> None:
    corpus = installed_metadata()
    assert len(corpus) >= 20  # the test environment's own packages
    for raw in corpus:
        assert read_headers(raw, "x") == packagings(raw), raw[:200]


@pytest.mark.parametrize("raw", [
    # CRLF line ends, a folded Requires-Dist, a body that looks like headers
    b"Metadata-Version: 2.1\r\nName: a\r\nVersion: 1.0\r\nRequires-Dist: b\r\n"
    b"  >=2\r\n\r\nName: not-this\r\nRequires-Dist: evil\r\n",
    # a multi-line Description between fields, tabs as continuations
    b"Metadata-Version: 2.1\nName: a\nDescription: first\n        |second\n\t|third\n"
    b"Version: 2.0\nRequires-Python: >=3.8\nProvides-Extra: Fancy_Extra\n"
    b"Requires-Dist: c; extra == 'fancy-extra'\n",
    # headers in any case, values padded
    b"metadata-version: 2.1\nNAME:  a  \nversion:1.0\nrequires-dist:   d[x] ; python_version<'4'\n",
    # no body separator; the last header without a newline
    b"Metadata-Version: 2.1\nName: a\nVersion: 1.0\nRequires-Dist: e",
    # a line that is not a header ends the headers
    b"Metadata-Version: 2.1\nName: a\nVersion: 1.0\nthis is no header\nRequires-Dist: f\n",
    # not UTF-8 (Latin-1 in the author's name)
    b"Metadata-Version: 2.1\nName: a\nVersion: 1.0\nAuthor: Jos\xe9\nRequires-Dist: g\n",
    # UTF-8 in another field
    "Metadata-Version: 2.1\nName: a\nVersion: 1.0\nSummary: caf\u00e9\nRequires-Dist: h\n"
    .encode(),
])
def test_awkward_cases_match_packaging(raw: bytes) -> None:
    assert read_headers(raw, "x") == packagings(raw)


def test_resolution_reads_the_fields() -> None:
    md = parse_metadata(
        b"Metadata-Version: 2.1\r\nName: Demo.Pkg\r\nVersion: 1.0.post1\r\n"
        b"Requires-Python: >=3.9\r\nProvides-Extra: Fancy_Extra\r\n"
        b"Requires-Dist: b>=2; extra == 'fancy-extra'\r\nRequires-Dist: c\r\n  [x]\r\n"
        b"\r\nRequires-Dist: from-the-body\r\n", "demo.whl")
    assert (md.name, str(md.version), md.requires_python) == ("Demo.Pkg", "1.0.post1", ">=3.9")
    assert [str(r) for r in md.requires_dist] == ['b>=2; extra == "fancy-extra"', "c[x]"]
    assert md.provides_extra == frozenset({"fancy-extra"})


@pytest.mark.parametrize(("raw", "message"), [
    (b"Metadata-Version: 2.1\nName: a\nName: b\nVersion: 1.0\n", "2 Name fields"),
    (b"Metadata-Version: 2.1\nVersion: 1.0\n", "without Name or Version"),
    (b"Metadata-Version: 2.1\nName: a\n\nVersion: 1.0\n", "without Name or Version"),
    (b"Name: a\nVersion: one\n", "invalid version 'one'"),
    (b"Name: a\nVersion: 1\nRequires-Dist: b >>= 2\n", "invalid Requires-Dist 'b >>= 2'"),
])
def test_bad_metadata_is_named(raw: bytes, message: str) -> None:
    with pytest.raises(MetadataError, match=message) as exc:
        parse_metadata(raw, "a-1.0-py3-none-any.whl")
    assert "a-1.0-py3-none-any.whl" in str(exc.value)


def test_an_extras_lines_are_parsed_when_it_is_asked_for() -> None:
    """Most Requires-Dist lines are an extra's (`; extra == "X"`): they are left unparsed
    until X is asked for, and what applies is what packaging's markers say."""
    md = parse_metadata(
        b"Name: a\nVersion: 1\n"
        b"Requires-Dist: base>=1\n"
        b"Requires-Dist: plain; python_version >= '3'\n"
        b"Requires-Dist: fancy>=2; extra == 'Fancy_Extra'\n"
        b"Requires-Dist: broken >>= 2; extra == \"broken\"\n"
        b"Requires-Dist: either; extra == 'x' or extra == 'y'\n"
        b"Requires-Dist: url @ https://example.invalid/u.whl ; extra == 'x'\n"
        b"Requires-Dist: empty; extra == ''\n", "a.whl")
    assert sorted(r.name for r in md._parsed.values()) == [
        "base", "either", "empty", "plain", "url"]  # not fancy, not broken
    names = lambda extras: [r.name for r in md.dependencies(extras)]  # noqa: E731
    assert names(()) == ["base", "plain", "either", "url", "empty"]
    assert names(["fancy-extra"]) == ["base", "plain", "fancy", "either", "url", "empty"]

    # what applies is what applies when packaging parses every line
    def applies(r: Requirement, extras: tuple[str, ...]) -> bool:
        return r.marker is None or any(r.marker.evaluate({"extra": e})
                                       for e in extras or ("",))

    every = [Requirement(line) for line in md.requires_dist_lines if "broken" not in line]
    for extras in ((), ("fancy-extra",), ("Fancy.Extra",), ("x",), ("y",), ("x", "fancy_extra")):
        assert [str(r) for r in md.dependencies(extras) if applies(r, extras)] == \
               [str(r) for r in every if applies(r, extras)], extras
    with pytest.raises(MetadataError, match=r"a.whl: invalid Requires-Dist 'broken >>= 2; "):
        md.dependencies(["broken"])
    with pytest.raises(MetadataError, match="invalid Requires-Dist"):
        md.requires_dist  # noqa: B018 - every line, parsed
