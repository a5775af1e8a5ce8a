"""Short, user-facing wording for pydantic's validation errors ("must be >= 0")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic_core import ErrorDetails

from remora.api.base import REMORA_ERROR
from remora.api.errors import ConfigIssue, Source, format_path

if TYPE_CHECKING:
    from pydantic import ValidationError

    from remora.api.yamlsource import Document

_TYPE_NAMES = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "a boolean (true or false)",
    "bool_parsing": "a boolean (true or false)",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "bytes_type": "a string",
}

_YAML_TYPE = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    dict: "mapping",
    list: "list",
    type(None): "null",
}


def _shown(value: Any) -> str:
    kind = _YAML_TYPE.get(type(value), type(value).__name__)
    if isinstance(value, dict | list):
        return kind
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{kind} {text}"


def _number(bound: Any) -> str:
    """100.0 -> "100": a bound reads as the user would write it."""
    if isinstance(bound, float) and bound.is_integer():
        return str(int(bound))
    return str(bound)


def describe(error: ErrorDetails) -> str:
    """One clause saying what is wrong with the value, without the path (added by the caller)."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind in _TYPE_NAMES:
        return f"must be {_TYPE_NAMES[kind]}, got {_shown(error.get('input'))}"
    if kind == "greater_than_equal":
        return f"must be >= {_number(ctx['ge'])}"
    if kind == "greater_than":
        return f"must be > {_number(ctx['gt'])}"
    if kind == "less_than_equal":
        return f"must be <= {_number(ctx['le'])}"
    if kind == "less_than":
        return f"must be < {_number(ctx['lt'])}"
    if kind in ("literal_error", "enum"):
        return f"must be one of {ctx.get('expected')}, got {_shown(error.get('input'))}"
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind == "too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')!s}, got {_shown(error.get('input'))}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    message = error["msg"]
    return message[:1].lower() + message[1:]


def document_issues(exc: ValidationError, document: Document, *, subject: str,
                    prefix: str = "", first_line: int = 1) -> list[ConfigIssue]:
    """One issue per validation error, at the line of its field: `prefix` goes before each
    field path and `first_line` is the file line of the document's first line (YAML held in a
    string, such as ConfigMap istio's `mesh`)."""
    issues = []
    for error in exc.errors(include_url=False):
        loc: list[str | int] = list(error["loc"])
        ctx = error.get("ctx") or {}
        if error["type"] == REMORA_ERROR:
            loc.extend(ctx.get("subpath", ()))
            message = str(ctx.get("message", error["msg"]))
        else:
            message = describe(error)
        line = document.line_of(tuple(loc)) + first_line - 1
        path = format_path(loc)
        if prefix:
            path = f"{prefix}{path}" if path.startswith("[") or not path else f"{prefix}.{path}"
        issues.append(ConfigIssue(message, source=Source(document.source.file, line),
                                  subject=subject, path=path))
    return issues
