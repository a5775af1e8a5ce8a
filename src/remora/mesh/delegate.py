"""VirtualService delegation (one level): a root rule's matches merged into the delegate's rules.

Istio's semantics ("Virtual Service" reference, HTTPRoute.delegate: "the route rules of the
delegate VirtualService will be merged with that in the current one ... The delegate's
HTTPMatchRequest must be a strict subset of the root's, otherwise there is a conflict and the
HTTPRoute will not take effect"; pilot mergeHTTPRoute / hasConflict):

- each delegate match block is merged (AND) with every root block it does not conflict with;
  a delegate block conflicting with every root block drops the whole delegate rule;
- uri/scheme/method/authority: the delegate's value wins when set; a root exact needs the same
  exact, a root prefix needs a longer prefix or an exact under it, a regex on either side
  conflicts with anything set on the other;
- headers, withoutHeaders, queryParams, sourceLabels: union (the delegate's wins per key);
- port, sourceNamespace, gateways: the delegate's when set; must agree with the root's;
- a rule's own fields (rewrite, timeout, retries, fault, mirror, corsPolicy, headers...) default
  to the root rule's; names join as `root-delegate`.
"""

from __future__ import annotations

from remora.api.common import StringMatch
from remora.api.networking.http_route import HTTPMatchRequest, HTTPRoute

_INHERITED = ("rewrite", "direct_response", "timeout", "retries", "fault", "mirror",
              "mirror_percent", "mirror_percentage", "cors_policy", "headers")  # fmt: skip
_STRING_FIELDS = ("uri", "scheme", "method", "authority")
_MAP_FIELDS = ("headers", "without_headers", "query_params")


def _joined(root: str | None, leaf: str | None) -> str | None:
    if not leaf:
        return root
    return f"{root}-{leaf}" if root else leaf


def merge_rule(root: HTTPRoute, delegate: HTTPRoute) -> HTTPRoute | None:
    """The delegate rule as it applies under `root`, or None when their matches conflict."""
    matches = merge_matches(root.match, delegate.match)
    if matches is None:
        return None
    update: dict[str, object] = {"match": matches, "name": _joined(root.name, delegate.name)}
    for name in _INHERITED:
        if getattr(delegate, name) is None:
            update[name] = getattr(root, name)
    if not delegate.mirrors:
        update["mirrors"] = root.mirrors
    return delegate.model_copy(update=update)


def merge_matches(
    root: list[HTTPMatchRequest], delegate: list[HTTPMatchRequest]
) -> list[HTTPMatchRequest] | None:
    """Delegate blocks ANDed with the root blocks they fit in; None on conflict."""
    if not root:
        return delegate
    if not delegate:
        return root
    out: list[HTTPMatchRequest] = []
    for leaf in delegate:
        fitting = [block for block in root if not has_conflict(block, leaf)]
        if not fitting:
            return None
        out.extend(merge_match(block, leaf) for block in fitting)
    return out


def merge_match(root: HTTPMatchRequest, leaf: HTTPMatchRequest) -> HTTPMatchRequest:
    update: dict[str, object] = {"name": _joined(root.name, leaf.name)}
    for name in (*_STRING_FIELDS, "port", "source_namespace", "stat_prefix"):
        if not getattr(leaf, name):
            update[name] = getattr(root, name)
    for name in (*_MAP_FIELDS, "source_labels"):
        update[name] = {**getattr(root, name), **getattr(leaf, name)}
    if not leaf.gateways:
        update["gateways"] = root.gateways
    return leaf.model_copy(update=update)


def has_conflict(root: HTTPMatchRequest, leaf: HTTPMatchRequest) -> bool:
    """The leaf block is not within the root block (pilot hasConflict)."""
    for name in _STRING_FIELDS:
        if string_conflict(getattr(root, name), getattr(leaf, name)):
            return True
    for name in _MAP_FIELDS:
        mine: dict[str, StringMatch] = getattr(root, name)
        for key, value in getattr(leaf, name).items():
            if string_conflict(mine.get(key), value):
                return True
    if bool(root.ignore_uri_case) != bool(leaf.ignore_uri_case):
        return True
    if root.port and leaf.port and root.port != leaf.port:
        return True
    if root.source_namespace and leaf.source_namespace != root.source_namespace:
        return True
    for key, value in leaf.source_labels.items():
        if key in root.source_labels and root.source_labels[key] != value:
            return True
    if root.gateways and leaf.gateways:
        return not set(leaf.gateways) <= set(root.gateways)
    return False


def string_conflict(root: StringMatch | None, leaf: StringMatch | None) -> bool:
    """The leaf string match is not narrower than the root's (pilot stringMatchConflict)."""
    if root is None or leaf is None:
        return False
    if root.regex or leaf.regex:
        return True
    if root.exact:
        return leaf.exact != root.exact
    if root.prefix:
        if leaf.prefix:
            return not leaf.prefix.startswith(root.prefix)
        if leaf.exact:
            return not leaf.exact.startswith(root.prefix)
    return True
