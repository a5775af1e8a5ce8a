"""Istio header operations (set / add / remove) applied in Envoy's order.

Istio (pilot/pkg/networking/core/route/route.go TranslateHeadersOperations) emits `set` as
OVERWRITE_IF_EXISTS_OR_ADD and `add` as APPEND_IF_EXISTS_OR_ADD, each sorted by name, and turns a
`host` / `:authority` set or add into a host rewrite (set wins over add). Envoy's HeaderParser
(evaluateHeaders) removes first, then overwrites, then appends, and skips empty values
(keep_empty_value is false). Levels run most specific first — weighted cluster, then route —
so a later level wins (envoy docs: configuration/http/http_conn_man/headers "Custom request/
response headers"; most_specific_header_mutations_wins is false).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from remora.api.networking.shared import HeaderOperations

Header = tuple[str, str]
_AUTHORITY = frozenset({"host", ":authority"})


@dataclass(frozen=True, slots=True)
class _Level:
    """One Envoy HeaderParser: drop these names, then append these headers."""

    drop: frozenset[str]  # removed names, plus names overwritten with a value
    append: tuple[Header, ...]  # overwrites first, then adds


def _level(operations: Iterable[HeaderOperations]) -> _Level:
    """One HeaderParser over the concatenated lists of `operations` (Istio appends a single
    destination's operations to the route's)."""
    removes: list[str] = []
    sets: dict[str, str] = {}  # a later overwrite of the same name replaces the earlier one
    adds: list[Header] = []
    authority: str | None = None
    for ops in operations:
        removes.extend(name.lower() for name in ops.remove if name.lower() not in _AUTHORITY)
        level_authority = None
        for name, value in sorted(ops.set.items(), key=lambda item: item[0].lower()):
            if name.lower() in _AUTHORITY:
                level_authority = value
            elif value:  # Envoy skips empty values
                sets.pop(name.lower(), None)
                sets[name.lower()] = value
        for name, value in sorted(ops.add.items(), key=lambda item: item[0].lower()):
            if name.lower() in _AUTHORITY:
                level_authority = level_authority or value  # set's authority wins
            elif value:
                adds.append((name.lower(), value))
        if authority is None:  # the route's authority wins over its destination's
            authority = level_authority or None
    if authority is not None:
        sets["host"] = authority
    return _Level(frozenset(removes).union(sets), (*sets.items(), *adds))


@dataclass(frozen=True, slots=True)
class HeaderOps:
    """Header operations for requests or responses, as levels applied one after the other."""

    levels: tuple[_Level, ...] = ()
    EMPTY: ClassVar[HeaderOps]

    @classmethod
    def from_api(cls, ops: HeaderOperations | None) -> HeaderOps:
        return cls.merged(ops)

    @classmethod
    def merged(cls, *ops: HeaderOperations | None) -> HeaderOps:
        """One level from several operation lists, in order (route, then its destination)."""
        present = [one for one in ops if one is not None]
        if not any(one.set or one.add or one.remove for one in present):
            return cls.EMPTY
        return cls((_level(present),))

    @classmethod
    def for_destination(
        cls,
        route: HeaderOperations | None,
        destination: HeaderOperations | None,
        *,
        weighted: bool,
    ) -> HeaderOps:
        """What Istio makes of route- and destination-level operations together.

        One destination: its lists are appended to the route's (one HeaderParser). Several: the
        destination's are on the weighted cluster, which Envoy applies before the route's.
        """
        if not weighted:
            return cls.merged(route, destination)
        return cls.from_api(destination).then(cls.from_api(route))

    def then(self, later: HeaderOps) -> HeaderOps:
        """These operations, then `later`'s (which wins where both touch a header)."""
        if not later.levels:
            return self
        return HeaderOps((*self.levels, *later.levels)) if self.levels else later

    def apply(self, headers: list[Header]) -> list[Header]:
        """The headers after the operations; names lowercase. EMPTY returns `headers` itself."""
        for level in self.levels:
            drop = level.drop
            headers = [header for header in headers if header[0] not in drop]
            headers.extend(level.append)
        return headers


HeaderOps.EMPTY = HeaderOps()
