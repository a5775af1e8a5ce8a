"""Integer fields hold what Istio's protos hold (int32, uint32, uint64): a larger value is an
error naming the field path, not a number silently carried to the proxies (issue 11: weights
of 2^40 were accepted)."""

from __future__ import annotations

import pytest

from remora.api.loader import load_text

VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: %s
    - destination: {host: reviews, subset: v2}
      weight: %s
    retries: {attempts: %s}
"""

DR = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: %s}}
    outlierDetection: {consecutive5xxErrors: %s}
"""

SE = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext}
spec:
  hosts: [ext.example.com]
  resolution: DNS
  ports: [{number: %s, name: http, protocol: HTTP}]
"""


def issues(text: str) -> list[str]:
    return [str(issue) for issue in load_text(text, "f.yaml").issues]


def test_in_range_values_load() -> None:
    assert issues(VS % (2**31 - 1, 1, 2**31 - 1)) == []
    assert issues(DR % (2**31 - 1, 2**32 - 1)) == []


@pytest.mark.parametrize(("text", "said"), [
    (VS % (2**40, 1, 3), "spec.http[0].route[0].weight: must be <= 2147483647"),  # int32
    (VS % (1, 1, 2**31), "spec.http[0].retries.attempts: must be <= 2147483647"),  # int32
    (DR % (2**31, 5), "spec.trafficPolicy.connectionPool.tcp.maxConnections: must be <= "
                      "2147483647"),  # int32
    (DR % (10, 2**32), "spec.trafficPolicy.outlierDetection.consecutive5xxErrors: must be <= "
                       "4294967295"),  # UInt32Value
    (SE % 2**32, "spec.ports[0].number: must be <= 4294967295"),  # uint32
])
def test_out_of_range_values_name_the_field(text: str, said: str) -> None:
    (issue,) = issues(text)
    assert said in issue


def test_total_weight_must_fit_envoys_uint32_sum() -> None:
    two = VS.replace("    retries: {attempts: %s}\n", "") % (2**31 - 1, 2**31 - 1)
    text = two + "    - destination: {host: reviews, subset: v3}\n      weight: 2\n"
    (issue,) = issues(text)
    assert "spec.http[0].route: total destination weight 4294967296 exceeds 4294967295" in issue
