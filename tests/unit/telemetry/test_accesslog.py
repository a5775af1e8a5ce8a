"""Access log lines: Istio's JSON access log format (istio/istio telemetry_logging.go
EnvoyJSONLogFormatIstio) filled as Envoy's command operators do (envoyproxy.io "Access logging")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from remora.telemetry.accesslog import MAX_BUFFERED_LINES, AccessLog, AccessRecord

ISTIO_JSON_FIELDS = {
    "start_time", "route_name", "method", "path", "protocol", "response_code", "response_flags",
    "response_code_details", "connection_termination_details", "bytes_received", "bytes_sent",
    "duration", "upstream_service_time", "x_forwarded_for", "user_agent", "request_id",
    "authority", "upstream_host", "upstream_cluster", "upstream_local_address",
    "downstream_local_address", "downstream_remote_address", "requested_server_name",
    "upstream_transport_failure_reason",
}  # fmt: skip

# 2024-05-01T12:34:56.789Z
START = 1714566896.789


def _record(**overrides: object) -> AccessRecord:
    fields: dict[str, object] = {
        "start_time": START,
        "method": "GET",
        "path": "/reviews/1?x=1",
        "response_code": 200,
        "response_code_details": "via_upstream",
        "bytes_received": 12,
        "bytes_sent": 1024,
        "duration_ms": 3.7,
        "upstream_service_time_ms": 2.2,
        "user_agent": "curl/8.0",
        "request_id": "abc",
        "authority": "reviews:9080",
        "upstream_host": "10.0.0.7:9080",
        "upstream_cluster": "outbound|9080|v1|reviews.default.svc.cluster.local",
        "downstream_remote_address": "127.0.0.1:50000",
        "route_name": "default",
    }
    fields.update(overrides)
    return AccessRecord(**fields)  # type: ignore[arg-type]


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_line_is_json_with_istios_fields(tmp_path: Path) -> None:
    log = AccessLog(str(tmp_path / "access.log"))
    log.write(_record())
    log.close()
    [line] = _lines(tmp_path / "access.log")
    assert set(line) == ISTIO_JSON_FIELDS
    assert line["start_time"] == "2024-05-01T12:34:56.789Z"
    assert line["method"] == "GET"
    assert line["path"] == "/reviews/1?x=1"
    assert line["protocol"] == "HTTP/1.1"
    # %RESPONSE_CODE%, %BYTES_*%, %DURATION% are numbers; %DURATION% in whole milliseconds
    assert line["response_code"] == 200
    assert line["bytes_received"] == 12
    assert line["bytes_sent"] == 1024
    assert line["duration"] == 3
    # %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% is a header value: a string
    assert line["upstream_service_time"] == "2"
    assert line["response_flags"] == "-"
    assert line["upstream_cluster"] == "outbound|9080|v1|reviews.default.svc.cluster.local"
    # unset operators are null in Envoy's JSON format
    assert line["x_forwarded_for"] is None
    assert line["requested_server_name"] is None


def test_keys_are_sorted_as_envoy_writes_a_struct(tmp_path: Path) -> None:
    log = AccessLog(str(tmp_path / "access.log"))
    log.write(_record())
    log.close()
    text = (tmp_path / "access.log").read_text()
    keys = list(json.loads(text))
    assert keys == sorted(keys)


def test_no_response_and_flags(tmp_path: Path) -> None:
    log = AccessLog(str(tmp_path / "access.log"))
    log.write(_record(response_code=0, response_flags="UF,URX", upstream_service_time_ms=None))
    log.close()
    [line] = _lines(tmp_path / "access.log")
    assert line["response_code"] == 0
    assert line["response_flags"] == "UF,URX"
    assert line["upstream_service_time"] is None


def test_hostile_header_values_stay_one_valid_line(tmp_path: Path) -> None:
    agent = 'evil"\n\\ \x00 ünï {"x":1}'
    log = AccessLog(str(tmp_path / "access.log"))
    log.write(_record(user_agent=agent, path='/a"b'))
    log.close()
    lines = _lines(tmp_path / "access.log")
    assert len(lines) == 1
    assert lines[0]["user_agent"] == agent
    assert lines[0]["path"] == '/a"b'


def test_lines_wait_for_flush_then_append(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_text('{"earlier": true}\n')
    log = AccessLog(str(path))
    log.write(_record(request_id="1"))
    log.write(_record(request_id="2"))
    assert len(path.read_text().splitlines()) == 1  # still buffered
    log.flush()
    assert [line.get("request_id") for line in _lines(path)] == [None, "1", "2"]
    log.close()


def test_a_full_batch_is_written_without_flush(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path))
    for i in range(MAX_BUFFERED_LINES):
        log.write(_record(request_id=str(i)))
    assert len(_lines(path)) == MAX_BUFFERED_LINES
    log.close()


def test_dash_is_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    log = AccessLog("-")
    log.write(_record())
    log.close()
    out = capsys.readouterr().out
    assert json.loads(out)["authority"] == "reviews:9080"


def test_none_is_off(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = AccessLog(None)
    assert not log.enabled
    log.write(_record())
    log.close()
    assert capsys.readouterr().out == ""
    assert list(tmp_path.iterdir()) == []


def test_writes_after_close_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path))
    log.close()
    log.write(_record())
    log.flush()
    assert path.read_text() == ""
