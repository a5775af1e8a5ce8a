"""IST0130 unreachable rules and IST0131 ineffective matches in a VirtualService.

Rules are tried in order and the first match wins (virtual_service.proto), so, as
istio/istio pkg/config/validation/validation.go (analyzeUnreachable*Rules) reports:
- a rule after a rule without matches is never used ("route without matches defined before"),
  and only the last rule may lack matches ("only the last rule can have no matches");
- a match identical (ignoring its name) to an earlier one is not used (IST0131); a rule all of
  whose matches are such duplicates is not used ("all matches used by prior rules");
- an http match with a uri prefix that an earlier prefix match covers is not used (IST0131,
  "... of prefix /a on rule ..."). Istio compares only some fields there; this check counts a
  match as covered only when every condition of the earlier match also holds for it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from remora.analysis.context import Context
from remora.analysis.messages import (
    VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
    VIRTUAL_SERVICE_UNREACHABLE_RULE,
    go_quote,
)
from remora.analysis.models import HTTPMatchRequest, VirtualService
from remora.analysis.virtualservice.cover import covers


@dataclass(frozen=True)
class _Rule:
    """One http/tcp/tls rule, reduced to what this check needs."""

    label: str  # "#0" or the quoted rule name
    matches: Sequence[Any]
    match_labels: Sequence[str]


def check(ctx: Context) -> None:
    for vs in ctx.of(VirtualService):
        spec = vs.spec
        http = [
            _Rule(_name(r.name, i), r.match, [_name(m.name, j) for j, m in enumerate(r.match)])
            for i, r in enumerate(spec.http)
        ]
        tcp = [
            _Rule(f"#{i}", r.match, [f"#{j}" for j in range(len(r.match))])
            for i, r in enumerate(spec.tcp)
        ]
        tls = [
            _Rule(f"#{i}", r.match, [f"#{j}" for j in range(len(r.match))])
            for i, r in enumerate(spec.tls)
        ]
        for section, rules in (("http", http), ("tcp", tcp), ("tls", tls)):
            _check_order(ctx, vs, section, rules)
        _check_prefix_overlaps(ctx, vs)


def _name(name: str | None, index: int) -> str:
    return go_quote(name) if name else f"#{index}"


def _check_order(ctx: Context, vs: VirtualService, section: str, rules: list[_Rule]) -> None:
    seen: dict[str, int] = {}
    catch_all = -1
    for i, rule in enumerate(rules):
        path = ("spec", section, i)
        if not rule.matches:
            if catch_all >= 0:
                ctx.report(
                    vs,
                    VIRTUAL_SERVICE_UNREACHABLE_RULE,
                    rule.label,
                    "only the last rule can have no matches",
                    path=path,
                )
            catch_all = i
            continue
        if catch_all >= 0:
            ctx.report(
                vs,
                VIRTUAL_SERVICE_UNREACHABLE_RULE,
                rule.label,
                "route without matches defined before",
                path=path,
            )
            continue
        duplicates = 0
        for j, match in enumerate(rule.matches):
            key = _canonical(match)
            if key in seen:
                duplicates += 1
                ctx.report(
                    vs,
                    VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
                    rule.label,
                    rule.match_labels[j],
                    rules[seen[key]].label,
                    path=(*path, "match", j),
                )
            else:
                seen[key] = i
        if duplicates == len(rule.matches):
            ctx.report(
                vs,
                VIRTUAL_SERVICE_UNREACHABLE_RULE,
                rule.label,
                "all matches used by prior rules",
                path=path,
            )


def _canonical(match: Any) -> str:
    """A match's conditions as a comparable string, ignoring its name (Istio's asJSON)."""
    data = match.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    data.pop("name", None)
    return json.dumps(data, sort_keys=True)


@dataclass(frozen=True)
class _PrefixMatch:
    rule: str
    label: str
    prefix: str
    match: HTTPMatchRequest
    path: tuple[str | int, ...]


def _check_prefix_overlaps(ctx: Context, vs: VirtualService) -> None:
    earlier: list[_PrefixMatch] = []
    seen: set[str] = set()
    for i, rule in enumerate(vs.spec.http):
        for j, match in enumerate(rule.match):
            key = _canonical(match)
            if key in seen:  # exact duplicates are reported above
                continue
            seen.add(key)
            if match.uri is None or not match.uri.prefix:
                continue
            current = _PrefixMatch(
                _name(rule.name, i),
                _name(match.name, j),
                match.uri.prefix,
                match,
                ("spec", "http", i, "match", j),
            )
            cover = next((e for e in earlier if covers(e.match, match)), None)
            if cover is not None:
                ctx.report(
                    vs,
                    VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
                    current.rule,
                    f"{current.label} of prefix {current.prefix}",
                    f"{cover.label} of prefix {cover.prefix} on {cover.rule}",
                    path=current.path,
                )
            earlier.append(current)
