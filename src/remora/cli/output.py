"""`-o text|json|yaml`: one renderer for every command that prints objects."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    YAML = "yaml"


def render(data: Any, output: OutputFormat) -> str:
    """JSON (indented) or YAML text for `data`, ending with a newline."""
    if output is OutputFormat.JSON:
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if output is OutputFormat.YAML:
        import yaml  # noqa: PLC0415  (a table or JSON needs no YAML)

        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        text: str = yaml.dump(data, Dumper=dumper, sort_keys=False, allow_unicode=True)
        return text
    raise ValueError(f"render() does not do {output.value}")
