"""`remora analyze` / `remora validate` run as a user runs them: a real process, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SEED004 = ROOT / "tests" / "unit" / "analysis" / "data" / "seed004"


def remora(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "remora.cli.main", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


def test_missing_subsets_are_ist0101_and_exit_79_as_istioctl() -> None:
    run = remora("analyze", "-f", str(SEED004 / "virtualservices"))
    assert run.returncode == 79, run.stderr
    lines = run.stdout.splitlines()
    assert lines and all("[IST0101]" in line for line in lines)
    assert all(
        "Referenced host+subset in destinationrule not found" in line
        or "Referenced mirror+subset in destinationrule not found" in line
        for line in lines
    )
    assert "Traceback" not in run.stderr


def test_with_the_destination_rules_there_is_no_error() -> None:
    run = remora("analyze", "-f", str(SEED004))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "No validation issues found when analyzing namespace: default." in run.stdout


BAD_INPUTS = {
    "malformed-yaml": (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: r\n"
        "spec:\n  hosts: [r\n",
        None,
    ),
    "wrong-type": (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: r\n"
        "spec:\n  hosts: [r]\n  http:\n  - route:\n    - destination: {host: r}\n"
        "      weight: many\n",
        "spec.http[0].route[0].weight",
    ),
    "unknown-field": (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: r\n"
        "spec:\n  host: r\n  trafficPolcy: {}\n",
        "spec.trafficPolcy",
    ),
    "bad-regex": (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: r\n"
        "spec:\n  hosts: [r]\n  http:\n  - match:\n    - uri:\n        regex: '/a/(\\d+'\n"
        "    route:\n    - destination: {host: r}\n",
        "spec.http[0].match[0].uri.regex",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_one_line_with_file_line_and_path(tmp_path: Path, case: str) -> None:
    text, path = BAD_INPUTS[case]
    file = tmp_path / "vs.yaml"
    file.write_text(text)
    run = remora("analyze", "-f", str(file))
    assert run.returncode != 0
    assert "Traceback" not in run.stdout + run.stderr
    lines = [line for line in (run.stdout + run.stderr).splitlines() if str(file) in line]
    assert len(lines) == 1, run.stdout + run.stderr
    (line,) = lines
    assert f"{file}:" in line
    if path is not None:
        assert path in line
    validate = remora("validate", "-f", str(file))
    assert validate.returncode == 1
    assert f"{file}:" in validate.stderr


def test_validate_prints_the_config_model_error_format(tmp_path: Path) -> None:
    file = tmp_path / "vs.yaml"
    file.write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\n"
        "spec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: a}\n"
        "      weight: 1\n    - destination: {host: b}\n      weight: -1\n"
    )
    run = remora("validate", "-f", str(file))
    assert run.returncode == 1
    assert (
        f"{file}:12: VirtualService default/reviews: spec.http[0].route[1].weight: must be >= 0"
        in run.stderr
    )


def test_stdin_namespace_and_json_output() -> None:
    text = (SEED004 / "virtualservices" / "vs-01.yaml").read_text()
    run = remora("analyze", "-f", "-", "-n", "shop", "-o", "json", stdin=text)
    assert run.returncode == 79, run.stderr
    messages = json.loads(run.stdout)
    assert messages and {m["code"] for m in messages} == {"IST0101"}
    assert all(m["origin"].startswith("VirtualService shop/") for m in messages)
    assert all(m["reference"].startswith("-:") for m in messages)
    as_yaml = yaml.safe_load(remora("analyze", "-", "-n", "shop", "-o", "yaml", stdin=text).stdout)
    assert as_yaml == messages


def test_only_the_requested_namespace_is_reported_unless_all() -> None:
    text = (SEED004 / "virtualservices" / "vs-01.yaml").read_text()
    other = remora("analyze", "-f", "-", "-n", "shop", stdin=text.replace("namespace:", "x:"))
    assert other.returncode in (0, 79)
    run = remora("analyze", "-f", "-", "-n", "elsewhere", stdin=text)
    everywhere = remora("analyze", "-f", "-", "-A", stdin=text)
    assert everywhere.returncode == 79
    assert len(everywhere.stdout.splitlines()) >= len(run.stdout.splitlines())


def test_usage_errors_exit_64_and_unparsable_files_65(tmp_path: Path) -> None:
    assert remora("analyze", "-o", "xml").returncode == 64  # no file: the control plane
    assert remora("analyze", "-f", "x.yaml", "-o", "xml").returncode == 64
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [\n")
    run = remora("analyze", "-f", str(bad))
    assert run.returncode == 65
    assert f"{bad}:" in run.stderr


UNENFORCED = """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all}
spec: {action: DENY, rules: [{}]}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: timeout}
spec:
  configPatches:
  - {applyTo: CLUSTER, patch: {operation: MERGE, value: {connect_timeout: 1s}}}
"""


def test_what_remora_does_not_enforce_is_a_warning_that_keeps_exit_0() -> None:
    """Issue 11 item 4: RMR0001 names what is not enforced; a Warning, so istioctl's exit
    statuses hold (0 by default, 79 with --failure-threshold Warning)."""
    run = remora("analyze", "-f", "-", stdin=UNENFORCED)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines() == [
        "Warning [RMR0001] (AuthorizationPolicy default/deny-all -:1) AuthorizationPolicy is NOT "
        "enforced by Remora: authorization is not implemented yet: requests this policy would "
        "DENY (or not ALLOW) are let through. It does NOT protect anything.",
        "Warning [RMR0001] (EnvoyFilter default/timeout -:11) spec.configPatches[0].applyTo is not "
        "enforced by Remora: only HTTP_FILTER patches, and NETWORK_FILTER MERGE patches of the "
        "HTTP connection manager's timeouts and limits, are applied (there are no Envoy "
        "listeners, clusters or route configurations to patch)",
    ]
    strict = remora("analyze", "-f", "-", "--failure-threshold", "Warning", stdin=UNENFORCED)
    assert strict.returncode == 79
