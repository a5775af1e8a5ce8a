"""YAML documents, and a lazy way back from any field path to its line.

Loading keeps only the data: node trees cost memory and time for every object, and lines are
needed only for the few that get a message. `FileIndex` re-parses a file's node trees the first
time a line is asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import yaml

from remora.api.errors import ConfigError, ConfigIssue, Source
from remora.api.yamlaliases import AliasBombError, check_aliases

try:  # the C loader is much faster; fall back only where libyaml is missing
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

_RESOLVED_MAX = 65_536


class _Loader(_BaseLoader):
    """The safe loader, remembering how plain scalars resolve.

    libyaml calls the Python resolver for every scalar, which tries YAML 1.1's regexes (bool,
    int, float, null, timestamp) each time. A plain scalar's tag depends on its text alone (no
    path resolvers are registered), and config repeats the same keys and values endlessly:
    memoizing saves ~18 % of parsing on bench/analyze.py.
    """

    _resolved: ClassVar[dict[str, str]] = {}

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is not yaml.ScalarNode:
            return (
                self.DEFAULT_MAPPING_TAG if kind is yaml.MappingNode else self.DEFAULT_SEQUENCE_TAG
            )
        if not implicit[0]:  # quoted, or tagged: never resolved by pattern
            return self.DEFAULT_SCALAR_TAG
        resolved = self._resolved
        tag = resolved.get(value)
        if tag is None:
            if len(resolved) >= _RESOLVED_MAX:
                resolved.clear()
            tag = _resolve_plain(self, value)
            resolved[value] = tag
        return tag


def _resolve_plain(loader: _BaseLoader, value: str) -> str:
    tag: str = _BaseLoader.resolve(loader, yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    return tag


class FileIndex:
    """The node trees of one file's documents, parsed on first use."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._nodes: list[yaml.Node] | None = None

    def node(self, ordinal: int) -> yaml.Node | None:
        if self._nodes is None:
            self._nodes = []
            loader = _Loader(self._text)
            try:
                while loader.check_node():
                    node = loader.get_node()
                    if node is not None:
                        self._nodes.append(node)
            except yaml.YAMLError:
                pass  # documents up to the error are indexed; the error itself was reported
            finally:
                loader.dispose()
        return self._nodes[ordinal] if ordinal < len(self._nodes) else None


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML document's data, where it starts, and how to find the line of a field in it."""

    data: Any
    source: Source
    index: FileIndex | None = None
    ordinal: int = 0
    prefix: tuple[str | int, ...] = ()  # where this object sits in its document (List items)

    def line_of(self, path: tuple[str | int, ...]) -> int:
        node = self.index.node(self.ordinal) if self.index is not None else None
        if node is None:
            return self.source.line
        return line_of(node, self.prefix + path)

    def item(self, key: str, position: int, line: int) -> Document:
        """The document standing for element `position` of the list at `key` (a kind: List)."""
        return Document(self.data[key][position], Source(self.source.file, line), self.index,
                        self.ordinal, (*self.prefix, key, position))  # fmt: skip


def read_documents(text: str, file: str) -> Iterator[Document]:
    """Yield the non-empty documents of a YAML stream; a syntax error raises ConfigError.

    Documents before the error are yielded first, so nothing valid is lost. A document whose
    aliases would expand it many times over is refused before it is built (yamlaliases).
    """
    index = FileIndex(text)
    loader = _Loader(text)
    ordinal = -1
    may_alias = _may_alias(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            ordinal += 1
            try:
                if may_alias:
                    check_aliases(node)
                data = construct(loader, node)
            except (DuplicateKeyError, AliasBombError) as exc:
                raise ConfigError(
                    [ConfigIssue(f"invalid YAML: {exc}", source=Source(file, exc.line))]
                ) from None
            except (ValueError, TypeError, IndexError, OverflowError):  # `!!int abc`, `!!float`
                raise ConfigError([ConfigIssue(
                    "invalid YAML: a value does not fit its explicit tag (such as !!int abc)",
                    source=Source(file, node.start_mark.line + 1))]) from None  # fmt: skip
            if data is not None:
                yield Document(data, Source(file, node.start_mark.line + 1), index, ordinal)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = min(mark.line + 1, text.count("\n") + 1) if mark is not None else 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(
            [ConfigIssue(f"invalid YAML: {problem}", source=Source(file, line))]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(f"invalid YAML: {exc}", source=Source(file, 1))]) from None
    except RecursionError:
        line = ordinal + 1
        raise ConfigError(
            [ConfigIssue("invalid YAML: nested too deeply", source=Source(file, line))]
        ) from None
    finally:
        loader.dispose()


_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


class DuplicateKeyError(ValueError):
    """A mapping names the same key twice; Kubernetes' strict YAML decoding refuses it too."""

    def __init__(self, key: str, line: int, first_line: int) -> None:
        super().__init__(f'mapping key "{key}" already defined at line {first_line}')
        self.line = line


class _NeedsGeneralConstructorError(Exception):
    """The document needs PyYAML's general constructor (merge keys, tags, odd keys)."""


def construct(loader: _Loader, node: yaml.Node) -> Any:
    """Python data for a document node: PyYAML's result, about twice as fast for plain YAML.

    PyYAML's constructor runs generators and checks per node; Kubernetes YAML is plain maps,
    lists and scalars, which this builds directly. Anything else takes PyYAML's path.
    """
    try:
        return _build(loader, node)
    except (
        _NeedsGeneralConstructorError,
        RecursionError,
    ):  # RecursionError: very deep nesting
        return loader.construct_document(node)


def _build(loader: _Loader, node: yaml.Node) -> Any:
    kind = type(node)
    if kind is yaml.ScalarNode:
        if node.tag == _STR:
            return node.value
        scalar = loader.yaml_constructors.get(node.tag)
        if scalar is None:
            raise _NeedsGeneralConstructorError
        return scalar(loader, node)
    if kind is yaml.MappingNode and node.tag == _MAP:
        mapping = {}
        for key_node, value_node in node.value:
            if type(key_node) is yaml.ScalarNode and key_node.tag == _STR:
                key = key_node.value
            else:  # merge keys, null/int/bool keys, or unhashable keys
                raise _NeedsGeneralConstructorError
            if key in mapping:
                raise DuplicateKeyError(key, key_node.start_mark.line + 1, _first_line(node, key))
            mapping[key] = _build(loader, value_node)
        return mapping
    if kind is yaml.SequenceNode and node.tag == _SEQ:
        return [_build(loader, item) for item in node.value]
    raise _NeedsGeneralConstructorError


def load_all(text: str) -> list[Any]:
    """The non-empty documents of a YAML stream as PyYAML builds them, aliases bounded as in
    read_documents; yaml.YAMLError or AliasBombError (with its line) when it cannot be."""
    loader = _Loader(text)
    may_alias = _may_alias(text)
    documents = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            if may_alias:
                check_aliases(node)
            data = loader.construct_document(node)
            if data is not None:
                documents.append(data)
    finally:
        loader.dispose()
    return documents


def _may_alias(text: str) -> bool:
    """False when the text has no anchor (`&`) or no alias (`*`): nothing can expand."""
    return "&" in text and "*" in text


def _first_line(mapping: yaml.Node, key: str) -> int:
    for key_node, _ in mapping.value:
        if key_node.value == key:
            return int(key_node.start_mark.line) + 1
    return int(mapping.start_mark.line) + 1


def line_of(node: yaml.Node, path: tuple[str | int, ...]) -> int:
    """The 1-based line of the deepest node along `path` that exists.

    A mapping key's line is used for a key (so an unknown field points at itself).
    """
    line = node.start_mark.line + 1
    for part in path:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key, value in node.value:
                if key.value == part:
                    line = key.start_mark.line + 1
                    node = value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
