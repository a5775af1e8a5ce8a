"""Request path normalization before routing and policy, as Istio's MeshConfig `pathNormalization`
configures Envoy's HTTP connection manager.

Istio (pilot listener_builder.go buildHTTPConnectionManager) maps the four modes onto three HCM
settings: NONE sets none; BASE sets `normalize_path`; MERGE_SLASHES adds `merge_slashes`;
DECODE_AND_MERGE_SLASHES adds `path_with_escaped_slashes_action: UNESCAPE_AND_FORWARD`. Envoy
(conn_manager_utility.cc maybeNormalizePath) applies them in this order, to the path before `?`
(the query is kept as sent), and the result is both what routes and policies match and the
:path the upstream receives (istio.io/latest/docs/reference/config/security/normalization):

1. a `#fragment` is dropped whatever the mode (Envoy's default since CVE-2021-39156);
2. %2F %2f %5C %5c become `/` and `\\` (DECODE_AND_MERGE_SLASHES only);
3. RFC 3986 normalization by Chromium's path canonicalizer (Envoy's `canonicalPath`): `\\` is a
   slash, `.` and `..` segments (also spelt `%2e`) are resolved and never climb above the root,
   escapes of unreserved characters (ALPHA, DIGIT, `-`, `.`, `_`, `~`) are decoded, other escapes
   are kept as sent, characters a URL may not hold are escaped, and `%00` (or a NUL) fails: Envoy
   answers 400 (details `path_normalization_failed`);
4. runs of slashes are merged (MERGE_SLASHES and DECODE_AND_MERGE_SLASHES).

Pure and allocation-free for the usual path: two substring tests and one character class tell
that nothing applies.
"""

from __future__ import annotations

import re
from typing import Final

# Per mode: (unescape %2F/%5C, normalize_path, merge_slashes); DEFAULT is BASE (meshconfig.proto)
_MODES: Final = {
    "NONE": (False, False, False),
    "DEFAULT": (False, True, False),
    "BASE": (False, True, False),
    "MERGE_SLASHES": (False, True, True),
    "DECODE_AND_MERGE_SLASHES": (True, True, True),
}

# Nothing to do unless the target holds a dot right after a slash, a doubled slash, or one of
# these: an escape, a backslash, a fragment, a character the canonicalizer escapes.
_SUSPECT_CHARS: Final = re.compile(r"[%\\#\"<>`{}|^\x00-\x20\x7f-\xff]")

# Chromium's kPathCharLookup (url_canon_path.cc), the table Envoy's normalize_path runs on.
_SPECIAL, _ESCAPE, _UNESCAPE, _INVALID_BIT = 1, 2 | 1, 4, 8
_INVALID = _INVALID_BIT | _SPECIAL


def _char_classes() -> tuple[int, ...]:
    table = [0] * 256  # PASS: copied as is
    for code in range(0x80):
        char = chr(code)
        if char.isalnum() or char in "-_~":
            table[code] = _UNESCAPE
        elif code < 0x20 or char in ' "#%<>?\\^`{|}\x7f':
            table[code] = _ESCAPE
    for code in range(0x80, 0x100):
        table[code] = _ESCAPE
    table[0] = _INVALID
    table[ord(".")] = _SPECIAL  # dot segments, below
    return tuple(table)


_CLASS: Final = _char_classes()
_HEX: Final = "0123456789ABCDEF"
_HEXDIGITS: Final = frozenset("0123456789abcdefABCDEF")
_SLASHES: Final = "/\\"


def normalize_path(target: str, mode: str) -> str | None:
    """The path as Envoy routes and forwards it under Istio `pathNormalization` `mode`, or None
    when normalization fails (Envoy answers 400). `target` is the origin-form path with query."""
    if "/." not in target and "//" not in target and _SUSPECT_CHARS.search(target) is None:
        return target  # the usual path: two substring scans and one character class
    fragment = target.find("#")
    if fragment >= 0:
        target = target[:fragment]
    unescape, canonical, merge = _MODES[mode]
    query_at = target.find("?")
    path, query = (target, "") if query_at < 0 else (target[:query_at], target[query_at:])
    if unescape and "%" in path:
        path = (path.replace("%2F", "/").replace("%2f", "/")
                .replace("%5C", "\\").replace("%5c", "\\"))
    if canonical:
        normalized = canonicalize(path)
        if normalized is None:
            return None
        path = normalized
    if merge and "//" in path:
        path = merge_slashes(path)
    return path + query


def merge_slashes(path: str) -> str:
    """Envoy's PathTransformer::mergeSlashes: empty segments dropped, a leading and a trailing
    slash kept (so a path of slashes only stays `//`, as in Envoy)."""
    inner = "/".join(segment for segment in path.split("/") if segment)
    return ("/" if path.startswith("/") else "") + inner + ("/" if path.endswith("/") else "")


def canonicalize(path: str) -> str | None:
    """Chromium's CanonicalizePath on a path without query, or None where it reports failure."""
    out: list[str] = []
    if not path or path[0] not in _SLASHES:
        out.append("/")
    end = len(path)
    ok = True
    last_invalid_percent = -10  # output index of a `%` that began no valid escape
    i = 0
    while i < end:
        char = path[i]
        flags = _CLASS[ord(char)]
        if not flags & _SPECIAL:
            out.append(char)
            i += 1
            continue
        dot = _dot_length(path, i, end)
        if dot:
            i = _dot_segment(path, i, dot, out)
            continue
        if char == "\\":
            out.append("/")
        elif char == "%":
            value = _hex_value(path, i, end)
            if value is None:
                last_invalid_percent = len(out)
                out.append("%")
            else:
                i += 2
                if _CLASS[value] & _UNESCAPE:
                    out.append(chr(value))
                    if last_invalid_percent >= len(out) - 3:
                        _escape_nested(path, i + 1, last_invalid_percent, out)
                else:  # kept as sent (hex case too); %00 fails
                    out += ("%", path[i - 1], path[i])
                    ok = ok and not _CLASS[value] & _INVALID_BIT
        else:
            out += ("%", _HEX[ord(char) >> 4], _HEX[ord(char) & 15])
            ok = ok and not flags & _INVALID_BIT
        i += 1
    return "".join(out) if ok else None


def _dot_length(text: str | list[str], i: int, end: int) -> int:
    """Chromium IsDot: 1 for `.`, 3 for `%2e` / `%2E`, else 0."""
    if text[i] == ".":
        return 1
    if text[i] == "%" and i + 3 <= end and text[i + 1] == "2" and text[i + 2] in "eE":
        return 3
    return 0


def _dot_segment(path: str, i: int, dot: int, out: list[str]) -> int:
    """A dot at `i` (of `dot` characters): `.`/`..` segment or part of a name (ClassifyAfterDot);
    returns the index after what it consumed."""
    after = i + dot
    if not out or out[-1] != "/":
        out.append(".")
        return after
    end = len(path)
    if after == end:
        return after  # "/." at the end: the current directory
    if path[after] in _SLASHES:
        return after + 1
    second = _dot_length(path, after, end)
    if second:
        after_second = after + second
        if after_second == end or path[after_second] in _SLASHES:
            _back_up(out)
            return after_second + (after_second < end)
    out.append(".")
    return after


def _back_up(out: list[str]) -> None:
    """`..`: drop the output's last segment, never the leading slash (BackUpToPreviousSlash)."""
    i = len(out) - 2
    while i > 0 and out[i] != "/":
        i -= 1
    del out[max(i, 0) + 1:]


def _hex_value(text: str | list[str], i: int, end: int) -> int | None:
    """The byte `%XY` at `i` stands for, or None when it is no valid escape (DecodeEscaped)."""
    if i + 3 > end or text[i + 1] not in _HEXDIGITS or text[i + 2] not in _HEXDIGITS:
        return None
    return int(text[i + 1] + text[i + 2], 16)


def _escape_nested(path: str, next_index: int, percent: int, out: list[str]) -> None:
    """Chromium CheckForNestedEscapes: `%%30%30` must not become the escape `%00` once the inner
    escapes are decoded, so such a `%` is written `%25` (this keeps normalization idempotent)."""
    length = len(out)
    last = out[-1]
    append_next = percent == length - 2
    if append_next:
        if next_index == len(path) or ord(path[next_index]) >= 0x80:
            return
        out.append(path[next_index])
    if _hex_value(out, percent, len(out)) is not None:
        if not append_next:
            out.append(out[percent + 1])
        out[percent + 1] = "2"
        out[percent + 2] = "5"
        out.append(last)
    elif append_next:
        del out[length:]
