"""Issue 11's attacks on a real `remora controlplane` over 127.0.0.1, as curl made them: each
is refused with Nacos's 4xx naming the field, and nothing reaches the proxies' view."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from remora.controlplane.bodylimit import MAX_BODY
from remora.registry.limits import MAX_CONTENT
from tests.e2e.meshkit import ControlPlaneProcess, run_controlplane


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with run_controlplane(tmp_path_factory.mktemp("cp")) as plane:
        yield client(plane)


def client(plane: ControlPlaneProcess) -> httpx.Client:
    return httpx.Client(base_url=plane.url, headers=plane.headers, timeout=60)


def test_bad_host_registration_is_a_400_and_not_listed(http: httpx.Client) -> None:
    bad = http.post("/nacos/v1/ns/instance",
                    params={"serviceName": "web", "ip": "bad_host!", "port": "8080"})
    assert bad.status_code == 400
    assert bad.text.startswith("caused: instance format invalid: ip 'bad_host!'")
    listed = http.get("/nacos/v1/ns/instance/list", params={"serviceName": "web"})
    assert listed.json()["hosts"] == []


def test_weight_of_2_to_the_40_is_a_400(http: httpx.Client) -> None:
    answer = http.post("/nacos/v1/ns/instance", params={
        "serviceName": "web", "ip": "127.0.0.1", "port": "8080", "weight": str(2**40)})
    assert answer.status_code == 400
    assert "The weights range from 0.0 to 10000.0" in answer.text


def test_config_over_nacos_10mb_is_a_400(http: httpx.Client) -> None:
    answer = http.post("/nacos/v1/cs/configs", data={
        "dataId": "big.yaml", "group": "G", "content": "x" * (MAX_CONTENT + 1)})
    assert answer.status_code == 400
    assert answer.text == f"caused: invalid content, over {MAX_CONTENT};"


def test_50mb_body_is_a_413_unread(http: httpx.Client) -> None:
    answer = http.post("/nacos/v1/cs/configs", params={"dataId": "huge.yaml", "group": "G"},
                       content=b"content=" + b"x" * (50 * 1024 * 1024),
                       headers={"content-type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 413
    assert answer.text == f"caused: request entity too large: limit is {MAX_BODY} bytes;"
    assert http.get("/nacos/v1/cs/configs",
                    params={"dataId": "huge.yaml", "group": "G"}).status_code == 404
