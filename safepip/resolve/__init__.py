"""Resolution: user requirements in, one pin per project out (see ``provider``)."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from resolvelib import BaseReporter, ResolutionImpossible, ResolutionTooDeep, Resolver

from safepip.cooldown import HINT as COOLDOWN_HINT
from safepip.cooldown import describe, window
from safepip.errors import ResolutionError
from safepip.models import Candidate, Pin
from safepip.resolve.provider import PYTHON, Options, Provider, Req

if TYPE_CHECKING:
    from collections.abc import Callable

    from safepip.buildctx import BuildContext
    from safepip.index.metadata import MetadataFetcher
    from safepip.index.simple import IndexClient

__all__ = ["Options", "Req", "resolve"]

MAX_ROUNDS = 20_000


def _describe(req: Req, parent: object) -> str:
    text = req.text or (req.name + str(req.specifier))
    if parent is None:
        return f"{text} (from {req.source})"
    return f"{text} (required by {req.source})"


def _impossible_message(exc: ResolutionImpossible, provider: Provider) -> str:  # type: ignore[type-arg]
    causes = list(exc.causes)
    names = sorted({c.requirement.name for c in causes})
    lines = []
    for name in names:
        reqs = [c for c in causes if c.requirement.name == name]
        if name == PYTHON:
            lines.append(f"this environment's Python {provider.opts.python_version} is not "
                         "what these need:")
            lines.extend(f"  - {_describe(c.requirement, c.parent)}" for c in reqs)
            continue
        page_known = name in provider.skipped
        lines.append(f"no version of {name} satisfies all of:")
        lines.extend(f"  - {_describe(c.requirement, c.parent)}" for c in reqs)
        why = provider.skipped.get(name, [])
        if page_known and why:
            shown = list(dict.fromkeys(why))[:5]
            lines.append("  files left out: " + "; ".join(shown) +
                         (" ..." if len(set(why)) > 5 else ""))
        held = provider.held_back.get(name)
        cd = provider.opts.cooldown
        if held and cd is not None:
            versions = ", ".join(f"{v} (uploaded {describe(age)} ago)"
                                 for v, age in sorted(held.items(), reverse=True)[:5])
            lines.append(f"  held back by the {window(cd.min_age)} cooldown: {versions}")
        fut = provider._pages.get(name)
        if fut is not None and fut.done() and fut.exception() is None and fut.result() is None:
            fl = provider.index.find_links
            where = ", ".join(provider.index.index_urls) or "no index configured"
            if fl is not None and fl.locations:
                where += "; nor in --find-links " + ", ".join(fl.locations)
            lines.append(f"  {name} was not found on any index ({where})")
    return "cannot resolve the requirements:\n" + "\n".join(lines)


class _Reporter(BaseReporter[Req, Candidate, str]):
    def __init__(self, on_pin: Callable[[int, str], None] | None) -> None:
        self.on_pin = on_pin
        self.pinned = 0

    def pinning(self, candidate: Candidate) -> None:
        self.pinned += 1
        if self.on_pin is not None:
            self.on_pin(self.pinned, f"{candidate.name} {candidate.version}")


def resolve(reqs: list[Req], index: IndexClient, metadata: MetadataFetcher,
            opts: Options, jobs: int = 8,
            on_pin: Callable[[int, str], None] | None = None,
            build: BuildContext | None = None,
            pool: ThreadPoolExecutor | None = None) -> tuple[list[Pin], Provider]:
    """Resolve ``reqs``; the provider is returned for the metadata it gathered. Pages
    and metadata are fetched in ``pool`` (the run's, left running), else in a pool of
    ``jobs`` threads of its own."""
    user_names = {r.name for r in reqs}
    with (contextlib.nullcontext(pool) if pool is not None else
          ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="safepip-resolve")) as pool:
        provider = Provider(index, metadata, opts, pool, user_names, build)
        provider.prefetch(reqs)
        resolver: Resolver[Req, Candidate, str] = Resolver(provider, _Reporter(on_pin))
        try:
            result = resolver.resolve(reqs, max_rounds=MAX_ROUNDS)
        except ResolutionImpossible as exc:
            held = any(c.requirement.name in provider.held_back for c in exc.causes)
            raise ResolutionError(_impossible_message(exc, provider),
                                  hint=COOLDOWN_HINT if held else None) from None
        except ResolutionTooDeep as exc:
            raise ResolutionError(
                f"resolution gave up after {exc.round_count} rounds of backtracking",
                hint="add tighter version constraints (-c constraints.txt) to narrow the search",
            ) from None
        finally:
            for fut in list(provider._pages.values()) + list(provider._md.values()):
                fut.cancel()
    pins: list[Pin] = []
    seen: set[str] = set()
    extras_by_name: dict[str, frozenset[str]] = {}
    for cand in result.mapping.values():
        extras_by_name[cand.name] = extras_by_name.get(cand.name, frozenset()) | cand.extras
    via: dict[str, set[str]] = {}
    user_sources: dict[str, set[str]] = {}
    for r in reqs:
        src = r.source.rsplit(":", 1)[0] if r.source != "command line" else r.source
        user_sources.setdefault(r.name, set()).add(
            src if src == "command line" else f"-r {src}")
    for ident, cand in result.mapping.items():
        if cand.name == PYTHON:
            continue
        parents = via.setdefault(cand.name, set())
        for parent in result.graph.iter_parents(ident):
            if parent is None:
                parents |= user_sources.get(cand.name, {"command line"})
            else:
                base = parent.split("[")[0]
                if base != cand.name:
                    parents.add(base)
    for ident, cand in result.mapping.items():
        if cand.name == PYTHON or cand.name in seen or (
                "[" in ident and cand.name in result.mapping):
            continue
        seen.add(cand.name)
        pins.append(Pin(
            name=cand.name,
            version=cand.version,
            dist=cand.dist,
            extras=extras_by_name.get(cand.name, frozenset()),
            requested=cand.name in user_names,
            metadata=provider.metadata_by_candidate.get((cand.name, cand.version)),
            via=tuple(sorted(via.get(cand.name, ()))),
        ))
    pins.sort(key=lambda p: p.name)
    return pins, provider
