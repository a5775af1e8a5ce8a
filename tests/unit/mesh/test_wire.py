"""The push wire format: snapshots replace, deltas apply only on the view they were made from."""

from __future__ import annotations

import json

import pytest

from remora.mesh.wire import View, WireError, apply_message, document_key, encode_document


def doc(kind: str, name: str, value: int = 0) -> dict[str, object]:
    return {"kind": kind, "metadata": {"name": name, "namespace": "default"}, "spec": {"v": value}}


def view(*documents: dict[str, object]) -> View:
    return View.of((document_key(d), encode_document(d)) for d in documents)


def test_a_delta_rebuilds_the_new_view_from_the_old_one() -> None:
    old = view(doc("Service", "a"), doc("Service", "b"))
    new = view(doc("Service", "a", 1), doc("Service", "c"))
    documents, received = apply_message({}, "", json.loads(old.snapshot_line())) or ({}, "")
    assert received == old.version
    documents, received = apply_message(documents, received,
                                        json.loads(new.delta_line(old))) or ({}, "")
    assert received == new.version
    assert documents == {document_key(d): d for d in (doc("Service", "a", 1),
                                                      doc("Service", "c"))}


def test_a_delta_on_another_base_is_refused() -> None:
    old, new = view(doc("Service", "a")), view(doc("Service", "b"))
    with pytest.raises(WireError):
        apply_message({}, "something-else", json.loads(new.delta_line(old)))


def test_ping_changes_nothing_and_versions_are_content() -> None:
    assert apply_message({}, "", {"type": "ping"}) is None
    assert view(doc("Service", "a")).version == view(doc("Service", "a")).version
    assert view(doc("Service", "a")).version != view(doc("Service", "a", 1)).version


def test_the_version_is_the_content_whatever_the_order() -> None:
    a, b = doc("Service", "a"), doc("Service", "b", 2)
    assert view(a, b).version == view(b, a).version
    assert view(a, b).version != view(a, doc("Service", "b", 3)).version
    assert view(a).version != view(a, b).version
    # of two documents with one key, every replica keeps the same one
    assert view(doc("Service", "a", 1), a).version == view(a, doc("Service", "a", 1)).version


def test_a_view_plus_one_document_is_the_view_built_with_it() -> None:
    a, b, c = doc("Service", "a"), doc("Service", "b", 2), doc("Service", "c", 3)
    plus = view(a, b).plus(document_key(c), encode_document(c))
    built = view(c, a, b)
    assert plus.version == built.version
    assert plus.documents == built.documents
    assert next(iter(plus.documents)) == document_key(c)  # first, as a snapshot line sends it
