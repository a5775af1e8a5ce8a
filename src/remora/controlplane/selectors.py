"""Kubernetes label selectors (`?labelSelector=`): parse once, then match label maps.

The grammar is k8s.io/apimachinery/pkg/labels (selector.go): requirements joined by commas,
each `key`, `!key`, `key=value`, `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`.
As there, `!=` and `notin` also match objects that do not have the key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from remora.errors import RemoraError


class SelectorError(RemoraError):
    """A label selector that does not parse."""


_REQUIREMENT = re.compile(
    r"""\s*(?:
        (?P<not>!)\s*(?P<nkey>[^\s,=!()]+)
      | (?P<key>[^\s,=!()]+)\s*(?:
            (?P<op>==|=|!=)\s*(?P<value>[^\s,=!()]*)
          | \s(?P<setop>in|notin)\s*\((?P<values>[^()]*)\)
        )?
    )\s*(?:,|$)""",
    re.VERBOSE,
)
_VALID = re.compile(r"^([a-z0-9A-Z][-a-z0-9A-Z_.]*/)?[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?$")
_VALID_VALUE = re.compile(r"^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?)?$")


@dataclass(frozen=True, slots=True)
class Requirement:
    """One condition on one label key."""

    key: str
    operator: str  # exists, !, =, !=, in, notin
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        value = labels.get(self.key)
        if self.operator in ("=", "in"):
            return present and value in self.values
        return not present or value not in self.values  # != and notin


@dataclass(frozen=True, slots=True)
class Selector:
    """All requirements must hold; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)


def parse_selector(text: str | None) -> Selector:
    """`app=reviews,version in (v1,v2),!canary` -> Selector; SelectorError when malformed."""
    if not text or not text.strip():
        return Selector()
    requirements: list[Requirement] = []
    position = 0
    while position < len(text):
        found = _REQUIREMENT.match(text, position)
        if found is None or found.end() == position:
            raise SelectorError(f"unable to parse requirement: {text[position:]!r}")
        requirements.append(_requirement(found))
        position = found.end()
    return Selector(tuple(requirements))


def _requirement(found: re.Match[str]) -> Requirement:
    if found["not"]:
        return Requirement(_key(found["nkey"]), "!")
    key = _key(found["key"])
    if found["op"]:
        operator = "=" if found["op"] in ("=", "==") else "!="
        return Requirement(key, operator, frozenset({_value(found["value"])}))
    if found["setop"]:
        values = [v.strip() for v in found["values"].split(",")]
        return Requirement(key, found["setop"], frozenset(_value(v) for v in values))
    return Requirement(key, "exists")


def _key(key: str) -> str:
    if len(key) > 317 or not _VALID.match(key):
        raise SelectorError(f"invalid label key {key!r}")
    return key


def _value(value: str) -> str:
    if len(value) > 63 or not _VALID_VALUE.match(value):
        raise SelectorError(f"invalid label value {value!r}")
    return value
