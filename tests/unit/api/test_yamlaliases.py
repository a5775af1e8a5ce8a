"""YAML alias bombs are refused from the composed graph, before anything is built, by the rule
of Kubernetes' YAML decoder (go-yaml allowedAliasRatio, "document contains excessive
aliasing"); ordinary anchors and merge keys still load."""

from __future__ import annotations

import pytest
import yaml

from remora.api.yamlaliases import AliasBombError, allowed_alias_ratio, check_aliases


def billion_laughs(levels: int = 9) -> str:
    """The classic bomb: each level lists the previous one 9 times (9^levels "lol"s)."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [{','.join([f'*a{level - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def compose(text: str) -> yaml.Node:
    node = yaml.compose(text, Loader=yaml.CSafeLoader)
    assert node is not None
    return node


def test_billion_laughs_is_refused_from_the_nodes_written() -> None:
    text = billion_laughs()
    assert len(text) < 500  # the bomb was 381 bytes
    with pytest.raises(AliasBombError, match="document contains excessive aliasing") as caught:
        check_aliases(compose(text))
    # sized from the 28 nodes written, not from the 490,329,064 they expand to
    assert "28 nodes written expand to 490329064" in str(caught.value)
    assert caught.value.line == 1


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(AliasBombError, match="anchor value contains itself"):
        check_aliases(compose("a: &a [x, *a]\n"))


def test_ordinary_anchors_and_merge_keys_are_allowed() -> None:
    text = "base: &base {a: 1, b: 2}\nx: {<<: *base, c: 3}\ny: *base\n"
    assert check_aliases(compose(text)) == 23  # 13 written, 2 aliases of 5
    assert yaml.load(text, Loader=yaml.CSafeLoader)["x"] == {"a": 1, "b": 2, "c": 3}


def test_allowed_ratio_follows_go_yaml() -> None:
    assert allowed_alias_ratio(1_000) == 0.99
    assert allowed_alias_ratio(4_000_000) == 0.10
    assert allowed_alias_ratio(2_200_000) == pytest.approx(0.545)

