"""Envoy's text access log format (MeshConfig accessLogEncoding TEXT): Istio's default format
when accessLogFormat is empty, else the user's, `-` for what a request does not have."""

from __future__ import annotations

from remora.telemetry.accessformat import ISTIO_TEXT_FORMAT, TextFormat, unknown_operators
from remora.telemetry.accesslog import AccessRecord

RECORD = AccessRecord(start_time=1_700_000_000.25, method="GET", path="/productpage",
                      response_code=503, response_flags="UH",
                      response_code_details="no_healthy_upstream", duration_ms=3.7,
                      authority="productpage:9080", request_id="abc",
                      upstream_cluster="outbound|9080||productpage.default.svc.cluster.local")


def test_istios_default_text_format() -> None:
    line = TextFormat(ISTIO_TEXT_FORMAT).format(RECORD)
    assert line == (
        '[2023-11-14T22:13:20.250Z] "GET /productpage HTTP/1.1" 503 UH no_healthy_upstream - '
        '"-" 0 0 3 - "-" "-" "abc" "productpage:9080" "-" '
        "outbound|9080||productpage.default.svc.cluster.local - - - - -\n")


def test_a_custom_format_and_operators_without_a_value() -> None:
    fmt = TextFormat("%REQ(:METHOD)% %RESPONSE_CODE% %UPSTREAM_CLUSTER_RAW% %DURATION%")
    assert fmt.format(RECORD) == "GET 503 - 3\n"
    assert unknown_operators("%REQ(:METHOD)% %UPSTREAM_CLUSTER_RAW%") == ["UPSTREAM_CLUSTER_RAW"]
