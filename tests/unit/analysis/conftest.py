"""Helpers for analyzer tests: load YAML text and return the printed messages."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import pytest

from remora.analysis import analyze
from remora.api.loader import LoadResult, load_text

Lines = Callable[..., list[str]]


def analyze_text(text: str, *, file: str = "in.yaml", namespace: str | None = None,
                 unenforced: bool = False) -> list[str]:
    """Analyze YAML text (dedented) as one file; the messages as istioctl prints them. Remora's
    RMR0001 NotEnforced (istioctl has no such message) only with `unenforced`, so the checks
    mirrored from Istio compare with Istio's expectations."""
    result: LoadResult = load_text(textwrap.dedent(text), file)
    return [str(m) for m in analyze(result, namespace=namespace)
            if unenforced or m.type.code != "RMR0001"]


@pytest.fixture
def lines() -> Lines:
    return analyze_text
