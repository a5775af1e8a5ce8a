"""Issue 2, "done when": seed 004's VirtualService examples without their DestinationRules report
IST0101 for each missing subset; with the DestinationRules added, nothing is reported.

The YAML under data/seed004/ is extracted from ../shared/seeds/004 (line noted in each file).
"""

from __future__ import annotations

from pathlib import Path

from remora.analysis import analyze
from remora.api.loader import load_paths

DATA = Path(__file__).parent / "data" / "seed004"
VIRTUAL_SERVICES = DATA / "virtualservices"
DESTINATION_RULES = DATA / "destinationrules"


def _subset_lines() -> dict[tuple[str, int], str]:
    """Every `subset:` in the VirtualService files: (file, line) -> the subset name."""
    found = {}
    for file in sorted(VIRTUAL_SERVICES.glob("*.yaml")):
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip().startswith("subset:"):
                found[(str(file), number)] = line.split(":", 1)[1].strip()
    return found


def test_each_missing_subset_is_reported_at_its_line() -> None:
    result = load_paths([str(VIRTUAL_SERVICES)])
    assert result.issues == []
    messages = analyze(result, namespace="default")
    subsets = _subset_lines()
    assert len(subsets) >= 20
    assert {(m.source.file, m.source.line) for m in messages if m.source} == set(subsets)
    for message in messages:
        assert message.source is not None
        subset = subsets[(message.source.file, message.source.line)]
        assert message.type.code == "IST0101"
        assert message.text.endswith(
            f'subset in destinationrule not found: "user-service+{subset}"'
        )
        assert str(message).startswith(
            f"Error [IST0101] (VirtualService default/user-service {message.source}) Referenced "
        )


def test_no_messages_with_the_destination_rules() -> None:
    result = load_paths([str(VIRTUAL_SERVICES), str(DESTINATION_RULES)])
    assert result.issues == []
    assert analyze(result, namespace="default") == []
