"""Property tests: whatever the input, loading and analysis give models or issues, never a crash.

Valid documents come from examples/ and from the seed tutorials (tests/seedblocks.py). Hypothesis
mutates them — deletes keys, changes types, inserts unknown or misplaced keys, swaps subtrees, puts
in random strings, numbers, lists and None — and the result must load into valid models or
`LoadResult.issues`, and `analyze()` must run over it. Random text and bytes must do the same.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from remora.analysis import analyze
from remora.api.loader import LoadResult, load_text
from tests.seedblocks import REPO, all_blocks
from tests.unit.test_seeds import INVALID, REPAIRED, SKIPPED, key, text_of

Path_ = tuple[str | int, ...]
Group = list[Any]  # the documents of one file

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _valid_groups() -> list[Group]:
    texts = [(str(p), p.read_text(encoding="utf-8"))
             for p in sorted((REPO / "examples").rglob("*.yaml"))]  # fmt: skip
    for block in all_blocks():
        where = key(block)
        if where not in INVALID and (where in REPAIRED or where not in SKIPPED):
            texts.append((block.id, text_of(block)))
    groups = []
    for name, text in texts:
        result = load_text(text, name)
        if result.issues or not result.resources:
            continue
        docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
        groups.append(docs)
    return groups


GROUPS = _valid_groups()


def _keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield str(k)
            yield from _keys(v)
    elif isinstance(node, list):
        for item in node:
            yield from _keys(item)


KEYS = sorted({k for group in GROUPS for doc in group for k in _keys(doc)})

INTERESTING = ["", " ", "0", "-1", "100", "1.5", "500ms", "1h", "-1s", "10x", "*", "*.", ".",
               "~", "null", "true", "[", "(", "a(", "\\", "v1", "mesh", "default", "reviews",
               "ns/host", "a.b.svc.cluster.local", "STRICT", "ROUND_ROBIN", "UNKNOWN", "GET",
               "x" * 300, "é", "🙂", "\t", "0.0.0.0/0", "10.0.0.1/33", "bad name!"]  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(INTERESTING)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _paths(node: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _paths(item, (*prefix, i))


def _get(root: Any, path: Path_) -> Any:
    for part in path:
        root = root[part]
    return root


def _set(root: Any, path: Path_, value: Any) -> Any:
    """Set the node at `path` (the root itself when path is empty); return the new root."""
    if not path:
        return value
    _get(root, path[:-1])[path[-1]] = value
    return root


def _retyped(value: Any, how: str) -> Any:
    return {"str": str(value), "list": [value], "map": {"value": value},
            "len": len(value) if isinstance(value, list | dict | str) else 7,
            "none": None}[how]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Group, int]:
    """A copy of one valid file's documents with one to four mutations in one document."""
    group = copy.deepcopy(draw(st.sampled_from(GROUPS)))
    index = draw(st.integers(0, len(group) - 1))
    doc = group[index]
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["delete", "replace", "insert", "retype", "swap", "duplicate"]))
        target = _get(doc, path)
        if op == "delete" and path:
            del _get(doc, path[:-1])[path[-1]]
        elif op == "replace":
            doc = _set(doc, path, draw(VALUES))
        elif op == "insert" and isinstance(target, dict):
            target[draw(st.sampled_from(KEYS) | st.text(max_size=8))] = draw(VALUES)
        elif op == "retype":
            doc = _set(doc, path, _retyped(target, draw(st.sampled_from(
                ["str", "list", "map", "len", "none"]))))  # fmt: skip
        elif op == "swap":
            other = draw(st.sampled_from(paths))
            if not (other[: len(path)] == path or path[: len(other)] == other):
                value = copy.deepcopy(_get(doc, other))
                doc = _set(doc, other, copy.deepcopy(target))
                doc = _set(doc, path, value)
        elif op == "duplicate" and isinstance(target, list) and target:
            target.append(copy.deepcopy(draw(st.sampled_from(target))))
    group[index] = doc
    return group, index


def check_loads_and_analyzes(text: str) -> LoadResult:
    """The invariant: issues or models, each issue a one-line message at a line of the text."""
    result = load_text(text, "m.yaml")
    lines = text.count("\n") + 2
    for issue in result.issues:
        line = str(issue)
        assert line.startswith("m.yaml:"), line
        assert issue.message and "Traceback" not in line
        assert issue.source is not None and 0 <= issue.source.line <= lines, line
    for namespace in (None, "default"):
        for message in analyze(result, namespace=namespace):
            assert str(message)
    return result


def test_there_is_a_corpus_to_mutate() -> None:
    kinds = {doc.get("kind") for group in GROUPS for doc in group}
    assert {"VirtualService", "DestinationRule", "Gateway", "Deployment", "Service"} <= kinds


@SETTINGS
@given(mutated())
def test_mutated_resources_load_as_models_or_issues(case: tuple[Group, int]) -> None:
    group, _ = case
    check_loads_and_analyzes(yaml.safe_dump_all(group, sort_keys=False, allow_unicode=True))


@SETTINGS
@given(mutated())
def test_valid_models_survive_a_round_trip(case: tuple[Group, int]) -> None:
    """A mutation that still validates gives a model that dumps to YAML that loads equal."""
    group, index = case
    result = load_text(yaml.safe_dump(group[index], sort_keys=False), "m.yaml")
    for resource in result.resources:
        data = resource.model_dump(mode="json", by_alias=True, exclude_unset=True)
        again = load_text(yaml.safe_dump(data, sort_keys=False), "again.yaml")
        assert [str(i) for i in again.issues] == []
        assert [r.model_dump() for r in again.resources] == [resource.model_dump()]


YAMLISH = st.lists(
    st.sampled_from([
        "apiVersion: networking.istio.io/v1", "apiVersion: v1", "apiVersion: apps/v1",
        "kind: VirtualService", "kind: DestinationRule", "kind: Service", "kind: Deployment",
        "kind: List", "items:", "metadata:", "  name: x", "  namespace: ns", "spec:",
        "  hosts: [a]", "  host: a", "  http:", "  - route:", "    - destination:",
        "        host: a", "        subset: v1", "  subsets:", "  - name: v1", "  - ", "-", "---",
        "...", "&a [*a]", "*a", "<<: *a", "? [a]", ": b", "%TAG ! tag:x,2000:", "!!binary x",
        "!!python/object/apply:os.system [true]", "{", "}", "'", '"', "\t", "key: |", "  text",
        "a: b: c", "- - -", "x: !!int abc", "x: !!float abc", "x: 0x1F", "x: 1e400",
        "y: 2001-12-14", "z: ~", "[1, 2", "0: 1", "null: 1", "[a]: 1",
    ]),
    max_size=30,
).map("\n".join)


@SETTINGS
@given(st.one_of(st.text(max_size=400), YAMLISH))
def test_random_text_never_raises(text: str) -> None:
    check_loads_and_analyzes(text)


@SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes_never_raise(data: bytes) -> None:
    check_loads_and_analyzes(data.decode("utf-8", errors="replace"))


@pytest.mark.parametrize("depth", [50, 5000])
def test_deep_nesting_is_an_issue_not_a_crash(depth: int) -> None:
    nested = "[" * depth + "]" * depth
    text = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\ndata: {nested}"
    result = check_loads_and_analyzes(text)
    assert result.issues
