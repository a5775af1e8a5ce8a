"""The base of every config model: Istio's camelCase names, unknown fields rejected, strict types.

Field names are the snake_case of Istio's camelCase names (`ignoreUriCase` -> `ignore_uri_case`);
YAML keys are the camelCase aliases. Repeated and map fields default to empty, message and scalar
fields to None, so "unset" stays distinguishable where Istio gives it a meaning.
"""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from remora.api.duration import format_duration, parse_duration

REMORA_ERROR = "remora"


class Spec(BaseModel):
    """A strict, immutable model whose YAML keys are Istio's camelCase field names."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        strict=True,
        revalidate_instances="never",
    )


def fail(message: str, *path: str | int) -> NoReturn:
    """Reject a model from a validator, pointing at `path` below the model being validated.

    `fail("must be 3xx", "redirectCode")` inside HTTPRedirect yields
    `spec.http[0].redirect.redirectCode: must be 3xx`. Path parts are YAML keys (camelCase).
    """
    raise PydanticCustomError(REMORA_ERROR, "{message}", {"message": message, "subpath": path})


def _to_seconds(value: Any) -> float:
    if isinstance(value, float):  # already parsed (model built in code)
        return value
    if isinstance(value, bool) or not isinstance(value, str):
        raise PydanticCustomError(
            REMORA_ERROR,
            "{message}",
            {"message": f'must be a duration string such as "1s" or "500ms", got {value!r}',
             "subpath": ()},
        )
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise PydanticCustomError(
            REMORA_ERROR, "{message}", {"message": str(exc), "subpath": ()}
        ) from None


Duration = Annotated[
    float,
    BeforeValidator(_to_seconds),
    PlainSerializer(format_duration, return_type=str, when_used="json-unless-none"),
]
"""A duration in seconds, written in YAML as "500ms", "1.5s", "1h"."""
