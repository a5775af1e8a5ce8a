"""Loading: multi-document files, directories, stdin, Lists; issues carry file:line and path."""

import io
from pathlib import Path

import pytest
import yaml

from remora.api.errors import ConfigError
from remora.api.loader import load_paths, load_text, parse_resource

VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews
"""


def test_multi_document_stream_remembers_each_documents_line() -> None:
    text = f"{VS}---\n{VS.replace('name: reviews', 'name: ratings')}"
    result = load_text(text, "vs.yaml")
    assert not result.issues
    assert [r.name for r in result.resources] == ["reviews", "ratings"]
    assert [str(r.source) for r in result.resources] == ["vs.yaml:1", "vs.yaml:12"]


def test_objects_without_namespace_land_in_the_namespace_loaded_into() -> None:
    (resource,) = load_text(VS, "vs.yaml", namespace="shop").resources
    assert resource.key == "shop/reviews"
    assert resource.subject == "VirtualService shop/reviews"


def test_field_line_is_found_for_messages() -> None:
    (resource,) = load_text(VS, "vs.yaml").resources
    assert str(resource.source_of("spec", "http", 0, "route", 0, "destination", "host")) == (
        "vs.yaml:10"
    )
    # A path that does not exist points at its nearest present parent.
    assert str(resource.source_of("spec", "http", 0, "timeout")) == "vs.yaml:8"


def test_syntax_error_gives_file_and_line_and_keeps_earlier_documents() -> None:
    text = VS + "---\napiVersion: v1\nkind: Service\nmetadata: {name: x\n"
    result = load_text(text, "bad.yaml")
    assert [r.name for r in result.resources] == ["reviews"]
    (issue,) = result.issues
    assert str(issue).startswith("bad.yaml:15: invalid YAML:")


def test_unknown_field_names_its_path_and_line() -> None:
    text = VS.replace("  - route:\n", "  - bogus: 1\n    route:\n", 1)
    (issue,) = load_text(text, "vs.yaml").issues
    assert (
        str(issue) == "vs.yaml:8: VirtualService default/reviews: spec.http[0].bogus: unknown field"
    )


def test_wrong_type_names_its_path_and_line() -> None:
    text = VS.replace("hosts: [reviews]", "hosts: reviews")
    (issue,) = load_text(text, "vs.yaml").issues
    assert str(issue) == (
        "vs.yaml:6: VirtualService default/reviews: spec.hosts: "
        "must be a list, got string 'reviews'"
    )


def test_unserved_api_version_is_an_error() -> None:
    (issue,) = load_text(VS.replace("/v1\n", "/v2\n", 1), "vs.yaml").issues
    assert issue.path == "apiVersion"
    assert "is not served" in issue.message
    assert "networking.istio.io/v1alpha3" in issue.message


def test_kinds_not_modelled_are_kept_aside_not_errors() -> None:
    text = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny}\n"
    result = load_text(text, "np.yaml")
    assert not result.issues and not result.resources
    assert [(u.kind, u.name, str(u.source)) for u in result.unsupported] == [
        ("NetworkPolicy", "deny", "np.yaml:1")
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "- a\n- b\n",
            "x.yaml:1: expected a Kubernetes object (a mapping with apiVersion and kind), got list",
        ),
        ("kind: Service\nmetadata: {name: a}\n", "x.yaml:1: apiVersion: required field is missing"),
        ("apiVersion: v1\nkind: 7\n", "x.yaml:2: kind: must be a string"),
    ],
)
def test_documents_that_are_not_objects(text: str, expected: str) -> None:
    (issue,) = load_text(text, "x.yaml").issues
    assert str(issue) == expected


def test_list_kind_is_expanded_with_item_lines() -> None:
    text = "apiVersion: v1\nkind: List\nitems:\n" + "".join(
        "- " + VS.replace("\n", "\n  ").rstrip() + "\n" for _ in range(2)
    )
    text = text.replace("name: reviews", "name: one", 1)
    result = load_text(text, "list.yaml")
    assert not result.issues
    assert [(r.name, str(r.source)) for r in result.resources] == [
        ("one", "list.yaml:4"),
        ("reviews", "list.yaml:14"),
    ]
    bad = text.replace("hosts: [reviews]", "hosts: 5", 1)
    (issue,) = load_text(bad, "list.yaml").issues
    assert str(issue).startswith("list.yaml:9: VirtualService default/one: spec.hosts:")


def test_directories_are_read_recursively_and_stdin_with_dash(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "vs.yaml").write_text(VS)
    (tmp_path / "b.yml").write_text(VS.replace("name: reviews", "name: b"))
    (tmp_path / "notes.txt").write_text("not yaml: [")
    result = load_paths(
        [str(tmp_path), "-"], stdin=io.StringIO(VS.replace("name: reviews", "name: s"))
    )
    assert not result.issues
    assert sorted(r.name for r in result.resources) == ["b", "reviews", "s"]
    assert {r.source.file for r in result.resources if r.source} >= {"-"}


def test_missing_path_is_an_issue_not_an_exception(tmp_path: Path) -> None:
    (issue,) = load_paths([str(tmp_path / "nope.yaml")]).issues
    assert "no such file or directory" in str(issue)


def test_yaml_alias_bomb_is_refused_quickly_not_expanded() -> None:
    # "Billion laughs": each level repeats the previous one 10 times (10^9 lists in all).
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 10):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        levels.append(f"a{level}: &a{level} [{refs}]")
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\n" + "\n".join(levels) + "\n"
    (issue,) = load_text(text, "bomb.yaml").issues
    assert str(issue).startswith("bomb.yaml:1: invalid YAML: document contains excessive aliasing")


def test_parse_resource_builds_from_data_already_parsed() -> None:
    data = yaml.safe_load(VS)
    resource = parse_resource(data, namespace="shop")
    assert resource.key == "shop/reviews"
    data["spec"]["hosts"] = "reviews"
    with pytest.raises(ConfigError, match=r"spec\.hosts: must be a list"):
        parse_resource(data)
    with pytest.raises(ConfigError, match="unsupported kind 'Ingress'"):
        parse_resource({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress"})


def test_duplicate_keys_are_refused_as_kubectl_does() -> None:
    # sigs.k8s.io/yaml (kubectl apply) fails with: mapping key "hosts" already defined.
    text = VS.replace("  hosts: [reviews]\n", "  hosts: [reviews]\n  hosts: [ratings]\n")
    (issue,) = load_text(text, "vs.yaml").issues
    assert str(issue) == 'vs.yaml:7: invalid YAML: mapping key "hosts" already defined at line 6'
