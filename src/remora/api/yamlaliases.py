"""Bounds on YAML alias expansion ("billion laughs"), checked before any object is built.

The composer turns an alias into a second reference to the anchored node, so a few hundred
bytes can describe a graph that expands to billions of objects. Walking the composed graph once,
remembering each node's expanded size, costs one step per node *written*, however large the
expansion; the document is refused before it is constructed when the expansion is mostly alias
copies, by the rule Kubernetes' YAML decoder applies (go-yaml decode.go, allowedAliasRatio):
beyond 1,000 decoded nodes and 100 from aliases, at most 99 % may come from aliases up to 400,000
nodes, falling linearly to 10 % at 4,000,000. Its wording: "document contains excessive
aliasing". An alias inside the node it names is refused too ("anchor value contains itself").
"""

from __future__ import annotations

import yaml

_RATIO_LOW, _RATIO_HIGH = 400_000, 4_000_000


class AliasBombError(ValueError):
    """A document whose aliases expand it far beyond what was written."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def allowed_alias_ratio(decoded: int) -> float:
    """go-yaml's allowedAliasRatio: the share of decoded nodes that may come from aliases."""
    if decoded <= _RATIO_LOW:
        return 0.99
    if decoded >= _RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * (decoded - _RATIO_LOW) / (_RATIO_HIGH - _RATIO_LOW)


def check_aliases(root: yaml.Node) -> int:
    """The number of nodes `root` expands to; AliasBombError when aliases make most of it."""
    sizes: dict[int, int] = {}  # id(node) -> expanded size; -1 while the node is being sized

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            if known < 0:
                raise AliasBombError("anchor value contains itself (a recursive YAML alias)",
                                     node.start_mark.line + 1)
            return known
        sizes[id(node)] = -1
        total = 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                total += size(key) + size(value)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += size(item)
        sizes[id(node)] = total
        return total

    decoded = size(root)
    aliased = decoded - len(sizes)  # each node written is decoded once in place
    if aliased > 100 and decoded > 1000 and aliased / decoded > allowed_alias_ratio(decoded):
        raise AliasBombError(
            f"document contains excessive aliasing ({len(sizes)} nodes written expand to "
            f"{decoded}; a YAML alias bomb?)", root.start_mark.line + 1)
    return decoded
