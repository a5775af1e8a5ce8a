"""The e-commerce demo's four services on their own, no mesh: real processes on 127.0.0.1.

Each service is examples/ecommerce/apps/<name>.py run with PORT, DATA_DIR, VERSION and POD_NAME
set, as `remora up` runs it. Order reaches the others either by override URLs or, as in the
mesh, by service name (http://user:8080) through whatever `http_proxy` names; a small forward
proxy here stands in for the sidecar.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from remora.analysis import analyze
from remora.api.kube.workloads import Deployment
from remora.api.loader import load_paths
from remora.runner.ports import free_port
from tests.e2e.meshkit import wait_for

APPS = Path(__file__).resolve().parents[2] / "examples" / "ecommerce" / "apps"
PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY",
              "all_proxy", "ALL_PROXY")  # fmt: skip
API_KEY = "test-key"


@dataclass
class Service:
    """One running demo service."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.url + path, json=body, timeout=10, **kwargs)

    def stop(self) -> int:
        """SIGTERM, then SIGKILL if it has not exited after 10 s; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(timeout=10)


class Services:
    """Starts services and stops every one of them at the end of a test."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.started: list[Service] = []

    def start(self, script: str, *, pod: str | None = None, data_dir: Path | None = None,
              **env: str) -> Service:  # fmt: skip
        port = free_port()
        data_dir = data_dir or self.tmp / (pod or script)
        base = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
        full_env = {**base, "PORT": str(port), "DATA_DIR": str(data_dir),
                    "POD_NAME": pod or f"{script}-0", **env}  # fmt: skip
        process = subprocess.Popen(
            [sys.executable, f"{script}.py"], cwd=APPS, env=full_env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        service = Service(script, process, port, data_dir)
        self.started.append(service)
        wait_for(lambda: self._ready(service), timeout=10, message=f"{script} ready")
        return service

    @staticmethod
    def _ready(service: Service) -> bool:
        if service.process.poll() is not None:
            stderr = service.process.stderr.read() if service.process.stderr else b""
            raise AssertionError(f"{service.name} exited: {stderr.decode()}")
        try:
            return service.get("/ready").status_code == 200
        except httpx.TransportError:
            return False

    def stop_all(self) -> None:
        for service in self.started:
            service.stop()
            if service.process.stderr:
                service.process.stderr.close()


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    running = Services(tmp_path)
    yield running
    running.stop_all()


@pytest.fixture
def shop(services: Services) -> dict[str, Service]:
    """All four, order pointed at the others by override URLs."""
    user = services.start("user")
    product = services.start("product", VERSION="v2", pod="product-v2-0")
    payment = services.start("payment", CURRENCY="CHF", PAYMENT_API_KEY=API_KEY)
    order = services.start(
        "order", PAYMENT_API_KEY=API_KEY, USER_URL=user.url, PRODUCT_URL=product.url,
        PAYMENT_URL=payment.url,
    )  # fmt: skip
    return {"user": user, "product": product, "payment": payment, "order": order}


def test_users_are_seeded_listed_created_and_stamped_with_version_and_instance(
    services: Services,
) -> None:
    user = services.start("user", pod="user-v1-abc12-xyz34")
    listing = user.get("/api/users").json()
    assert [u["name"] for u in listing["items"]] == ["Alice", "Bob", "Carol"]
    assert (listing["version"], listing["instance"]) == ("v1", "user-v1-abc12-xyz34")
    created = user.post("/api/users", {"name": "Dan", "email": "dan@example.com"})
    assert created.status_code == 201
    new_id = created.json()["id"]
    assert user.get(f"/api/users/{new_id}").json()["name"] == "Dan"
    missing = user.get("/api/users/999")
    assert missing.status_code == 404
    assert missing.json()["version"] == "v1"  # errors say who answered too
    assert user.post("/api/users", {"name": "no email"}).status_code == 400
    assert user.post("/api/users/1").status_code == 405
    assert user.get("/nowhere").status_code == 404


def test_product_v2_is_visibly_different_from_v1(services: Services) -> None:
    v1 = services.start("product", VERSION="v1", pod="product-v1-0")
    v2 = services.start("product", VERSION="v2", pod="product-v2-0")
    one, two = v1.get("/api/products/1").json(), v2.get("/api/products/1").json()
    assert (one["version"], two["version"]) == ("v1", "v2")
    assert "badge" not in one and "rating" not in one
    assert two["badge"] == "new" and two["rating"] == 4.6
    assert {k: two[k] for k in ("name", "price")} == {k: one[k] for k in ("name", "price")}
    assert len(v2.get("/api/products").json()["items"]) == 4


def test_an_order_checks_user_and_product_and_is_paid(shop: dict[str, Service]) -> None:
    order = shop["order"]
    answer = order.post("/api/orders", {"userId": 1, "productId": 3, "quantity": 2})
    assert answer.status_code == 201, answer.text
    placed = answer.json()
    assert (placed["status"], placed["amount"], placed["currency"]) == ("paid", 118.0, "CHF")
    assert placed["user"]["name"] == "Alice"
    assert placed["product"]["version"] == "v2"  # who served each step is visible
    assert placed["payment"]["status"] == "approved"
    assert placed["version"] == "v1"
    listed = order.get("/api/orders").json()["items"]
    assert [o["ref"] for o in listed] == [placed["ref"]]
    payments = shop["payment"].get("/api/payments").json()["items"]
    assert [p["orderRef"] for p in payments] == [placed["ref"]]


def test_orders_that_cannot_be_placed(shop: dict[str, Service]) -> None:
    order = shop["order"]
    assert order.post("/api/orders", {"userId": 99, "productId": 1}).status_code == 400
    assert order.post("/api/orders", {"userId": 1, "productId": 99}).status_code == 400
    assert order.post("/api/orders", {"userId": 1}).status_code == 400
    zero = order.post("/api/orders", {"userId": 1, "productId": 1, "quantity": 0})
    assert zero.status_code == 400
    declined = order.post("/api/orders", {"userId": 1, "productId": 3, "quantity": 1000})
    assert declined.status_code == 402  # 59 000 is over payment's MAX_AMOUNT
    assert declined.json()["status"] == "declined"
    shop["payment"].stop()
    unpaid = order.post("/api/orders", {"userId": 1, "productId": 1})
    assert unpaid.status_code == 502
    assert "payment" in unpaid.json()["error"]


def test_payment_wants_the_api_key_from_the_secret(shop: dict[str, Service]) -> None:
    payment = shop["payment"]
    assert payment.post("/api/payments", {"amount": 5}).status_code == 401
    key = {"authorization": f"Bearer {API_KEY}"}
    paid = payment.post("/api/payments", {"amount": 5}, headers=key)
    assert paid.status_code == 201
    assert paid.json()["currency"] == "CHF"


class NameProxy(BaseHTTPRequestHandler):
    """A forward proxy standing in for the sidecar: service name → local port, headers kept."""

    ports: dict[str, int]  # set per test
    seen: list[tuple[str, str, str | None]]  # set per test

    def do_GET(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def _forward(self) -> None:
        parsed = urllib.request.urlparse(self.path)  # absolute-form: http://user:8080/api/...
        assert parsed.hostname is not None
        NameProxy.seen.append((self.command, parsed.hostname, self.headers.get("x-user-type")))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
        target = f"http://127.0.0.1:{NameProxy.ports[parsed.hostname]}{parsed.path}"
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        request = urllib.request.Request(target, data=body, headers=headers,
                                         method=self.command)  # fmt: skip
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=10) as response:
            status, data = response.status, response.read()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_order_reaches_the_others_by_service_name_through_http_proxy(
    services: Services, shop: dict[str, Service]
) -> None:
    NameProxy.ports = {name: s.port for name, s in shop.items()}
    NameProxy.seen = []
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), NameProxy)
    thread = threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        meshed = services.start("order", pod="order-meshed", PAYMENT_API_KEY=API_KEY,
                                http_proxy=f"http://127.0.0.1:{proxy.server_port}", no_proxy="")
        answer = meshed.post("/api/orders", {"userId": 2, "productId": 1},
                             headers={"x-user-type": "tester"})  # fmt: skip
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join(timeout=5)
    assert answer.status_code == 201, answer.text
    assert answer.json()["user"]["name"] == "Bob"
    # by Kubernetes service name, with the routing header passed on to every call
    assert NameProxy.seen == [("GET", "user", "tester"), ("GET", "product", "tester"),
                              ("POST", "payment", "tester")]  # fmt: skip


def test_readiness_and_liveness_switch_by_admin_call_and_by_file(services: Services) -> None:
    user = services.start("user")
    assert user.post("/admin/unready").status_code == 200
    assert user.get("/ready").status_code == 503
    assert user.get("/healthz").status_code == 200  # not ready is not dead
    assert user.get("/api/users/1").status_code == 200  # it still serves if asked
    user.post("/admin/ready")
    assert user.get("/ready").status_code == 200
    (user.data_dir / "unready").touch()
    assert user.get("/ready").status_code == 503
    (user.data_dir / "unready").unlink()
    assert user.get("/ready").status_code == 200
    user.post("/admin/unhealthy")
    assert user.get("/healthz").status_code == 503
    user.post("/admin/live")
    assert user.get("/healthz").status_code == 200


def test_sigterm_lets_a_slow_request_finish_and_data_outlives_the_process(
    services: Services, tmp_path: Path
) -> None:
    data = tmp_path / "order-data"
    payment = services.start("payment", data_dir=tmp_path / "payment-data")
    # USER_URL is a port that accepts and never answers: the order request waits CALL_TIMEOUT
    with socket.create_server(("127.0.0.1", 0)) as silent:
        silent.settimeout(10)
        order = services.start("order", data_dir=data, CALL_TIMEOUT="1",
                               USER_URL=f"http://127.0.0.1:{silent.getsockname()[1]}",
                               PAYMENT_URL=payment.url)  # fmt: skip
        answers: list[int] = []

        def place() -> None:
            answers.append(order.post("/api/orders", {"userId": 1, "productId": 1}).status_code)

        client = threading.Thread(target=place)
        client.start()
        held, _ = silent.accept()  # order is calling user: its request is in flight
        order.process.send_signal(signal.SIGTERM)
        client.join(timeout=20)
        held.close()
    assert answers == [502]  # the request in flight got its answer (user timed out) before exit
    assert order.process.wait(timeout=10) == 0  # the one SIGTERM: a clean exit
    assert (data / "order.db").exists()
    created = payment.post("/api/payments", {"amount": 3}).json()["id"]
    assert payment.stop() == 0
    again = services.start("payment", data_dir=tmp_path / "payment-data")
    assert [p["id"] for p in again.get("/api/payments").json()["items"]] == [created]


def test_answers_are_json_objects(shop: dict[str, Service]) -> None:
    for service, path in (("user", "/api/users"), ("product", "/api/products"),
                          ("order", "/api/orders"), ("payment", "/ready")):  # fmt: skip
        response = shop[service].get(path)
        assert response.headers["content-type"] == "application/json"
        assert isinstance(json.loads(response.text), dict)


def test_the_mesh_config_analyzes_clean_and_runs_these_scripts() -> None:
    """`remora analyze -f examples/ecommerce` finds nothing, and every container command names a
    script that exists relative to the YAML file's directory (where `remora up` runs it)."""
    result = load_paths([str(APPS.parent)])
    assert result.issues == []
    assert [m.to_dict() for m in analyze(result, namespace="default")] == []
    deployments = [r for r in result.resources if isinstance(r, Deployment)]
    assert {d.metadata.name for d in deployments} == {
        "user-v1", "product-v1", "product-v2", "order-v1", "payment-v1"}  # fmt: skip
    for deployment in deployments:
        (container,) = deployment.spec.template.spec.containers
        assert container.command[0] == "python3"
        assert deployment.source is not None
        assert (Path(deployment.source.file).parent / container.command[1]).is_file()
