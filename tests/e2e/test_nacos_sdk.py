"""The real nacos-sdk-python (0.1.x, Nacos v1 HTTP API) against `remora controlplane`.

What the client does, read from its source (nacos/client.py): every naming call puts its
parameters in the query string (booleans as "True"/"False", an unset cluster as "None");
add_naming_instance(heartbeat_interval=) starts a thread calling PUT /ns/instance/beat with a
`beat` JSON; subscribe() polls /ns/instance/list and diffs instances by instanceId and
str(instance); add_config_watcher long-polls POST /cs/configs/listener with the
`Listening-Configs` form field (dataId^2group^2md5^2tenant^1) and Long-Pulling-Timeout, then
GETs /cs/configs for each key the answer names.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from remora.runner.ports import free_port

nacos = pytest.importorskip("nacos")
from nacos.listener import SubscribeListener  # noqa: E402
from nacos.params import parse_key  # noqa: E402

WAIT = 20.0
ADMIN_PASSWORD = "sdk-admin-pw"


def eventually(check: Callable[[], Any], *, timeout: float = WAIT) -> Any:
    """Poll `check` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            assert result, f"not true within {timeout} s"
            return result
        time.sleep(0.1)


class ControlPlane:
    """A `remora controlplane` process on a free port; `stop()` ends and reaps it (idempotent)."""

    def __init__(self, data_dir: Path) -> None:
        self.address = f"127.0.0.1:{free_port()}"
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("remora")), "controlplane",
             "--listen", self.address, "--data-dir", str(data_dir), "--drain-timeout", "1",
             "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, "REMORA_ADMIN_PASSWORD": ADMIN_PASSWORD})

    def up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(self.proc.stderr.read().decode() if self.proc.stderr else "")
        try:
            with urllib.request.urlopen(f"http://{self.address}/healthz", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    """Every thread a test starts is ended by its teardown. The SDK's threads (beats, subscribe
    timers, config long-polls, the callback pool) outliving a test poll a server that is gone
    and print tracebacks at the end of `make test`."""
    before = set(threading.enumerate())
    yield
    left = [thread.name for thread in threading.enumerate()
            if thread not in before and thread.is_alive()]
    assert not left, f"threads still running after the test: {left}"


@pytest.fixture
def controlplane(tmp_path: Path) -> Iterator[ControlPlane]:
    server = ControlPlane(tmp_path / "data")
    try:
        eventually(server.up)
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(controlplane: ControlPlane) -> str:
    """The control plane's address, host:port."""
    return controlplane.address


@pytest.fixture
def client_factory(controlplane: ControlPlane, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """NacosClients on the server, their files under tmp_path; after the test each stops asking
    the server anything, then the server stops, then the client's threads are waited for."""
    made: list[Any] = []

    def make(namespace: str = "", *, username: str = "admin",
             password: str = ADMIN_PASSWORD) -> Any:
        """A client logging in as the Nacos Java and Python clients do (username/password ->
        POST /nacos/v1/auth/login -> accessToken on every call)."""
        client = nacos.NacosClient(controlplane.address, namespace=namespace,
                                   logDir=str(tmp_path / "logs"),
                                   username=username or None, password=password or None)
        client.set_options(snapshot_base=str(tmp_path / f"snapshot{len(made)}"),
                           failover_base=str(tmp_path / f"failover{len(made)}"))
        made.append(client)
        return client

    yield make
    pullers = [thread for client in made for thread in stop_asking(client)]
    controlplane.stop()  # a long-poll in flight fails now; its puller sees no key left and ends
    for thread in pullers:
        thread.join(WAIT)
    release(made)


def stop_asking(client: Any) -> list[threading.Thread]:
    """End the client's beats, subscriptions and config watchers (the SDK's own calls); return
    the long-poll threads, which end once their request in flight returns."""
    for task in client.heartbeats.values():
        task.stop()
    timers = list(client.subscribe_timer_manager.all_timers().values())
    client.stop_subscribe()
    for timer in timers:  # a timer whose poll was running when cancelled schedules one more
        eventually(lambda timer=timer: timer.cancel() or not timer.alive())
    if client.puller_mapping is None:
        return list(client.heartbeats.values())
    pullers = {puller for puller, _keys in client.puller_mapping.values()}
    for key, watchers in list(client.watcher_mapping.items()):
        data_id, group, _namespace = parse_key(key)
        for watcher in list(watchers):
            client.remove_config_watcher(data_id, group, watcher.callback, remove_all=True)
    return [*client.heartbeats.values(), *pullers]


class _DispatchEnded(BaseException):
    """Ends the SDK's result-dispatch thread, a `while True` over its notify queue that has no
    stop of its own."""


class _NoWatchers(dict[str, Any]):
    def get(self, key: str, default: Any = None) -> Any:
        raise _DispatchEnded


def release(clients: list[Any]) -> None:
    """Once nothing polls: end each dispatch thread, callback pool, queue feeder and manager
    process that a client's first config watcher started."""
    watching = [client for client in clients if client.puller_mapping is not None]
    dispatchers = [thread for thread in threading.enumerate()
                   if thread.name.endswith("(_process_polling_result)")]
    previous_hook = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is not _DispatchEnded:
            previous_hook(args)

    threading.excepthook = hook
    try:
        for client in watching:
            client.watcher_mapping = _NoWatchers()
            client.notify_queue.put(("", None, None))
        for thread in dispatchers:
            thread.join(WAIT)
    finally:
        threading.excepthook = previous_hook
    for client in watching:
        client.callback_tread_pool.close()
        client.callback_tread_pool.join()
        client.notify_queue.close()
        client.notify_queue.join_thread()
        client.process_mgr.shutdown()


def hosts(client: Any, service: str, **kwargs: Any) -> dict[int, dict[str, Any]]:
    answer = client.list_naming_instance(service, **kwargs)
    return {host["port"]: host for host in answer["hosts"]}


def test_register_list_beat_and_deregister(client_factory: Callable[..., Any]) -> None:
    client = client_factory()
    assert client.add_naming_instance("orders", "10.0.0.1", 8080, metadata={"version": "v1"},
                                      weight=2.0)
    answer = client.list_naming_instance("orders", healthy_only=True)
    assert answer["name"] == "DEFAULT_GROUP@@orders" and answer["groupName"] == "DEFAULT_GROUP"
    assert answer["reachProtectionThreshold"] is False
    (host,) = answer["hosts"]
    assert host["instanceId"] == "10.0.0.1#8080#DEFAULT#DEFAULT_GROUP@@orders"
    assert (host["ip"], host["weight"], host["healthy"], host["enabled"], host["ephemeral"]) \
        == ("10.0.0.1", 2.0, True, True, True)
    assert host["metadata"] == {"version": "v1"} and host["clusterName"] == "DEFAULT"
    assert (host["instanceHeartBeatInterval"], host["instanceHeartBeatTimeOut"],
            host["ipDeleteTimeout"]) == (5000, 15000, 30000)

    beat = client.send_heartbeat("orders", "10.0.0.1", 8080)
    assert beat["code"] == 10200 and beat["clientBeatInterval"] == 5000
    # a beat for an instance the server does not know carries its data: registered again
    beat = client.send_heartbeat("orders", "10.0.0.2", 8080, metadata={"version": "v2"})
    assert beat["code"] == 10200
    listed = client.list_naming_instance("orders")["hosts"]
    assert {(h["ip"], h["metadata"].get("version")) for h in listed} \
        == {("10.0.0.1", "v1"), ("10.0.0.2", "v2")}

    assert client.modify_naming_instance("orders", "10.0.0.1", 8080, weight=7.0, enable=False)
    assert [h["ip"] for h in client.list_naming_instance("orders")["hosts"]] == ["10.0.0.2"]
    detail = client.get_naming_instance("orders", "10.0.0.1", 8080)
    assert detail["weight"] == 7.0

    assert client.remove_naming_instance("orders", "10.0.0.1", 8080)
    assert client.remove_naming_instance("orders", "10.0.0.2", 8080)
    assert client.list_naming_instance("orders")["hosts"] == []


def test_beats_keep_an_instance_healthy_silence_makes_it_unhealthy_then_gone(
        client_factory: Callable[..., Any]) -> None:
    client = client_factory()
    fast = {"preserved.heart.beat.interval": "500", "preserved.heart.beat.timeout": "1500",
            "preserved.ip.delete.timeout": "3000"}
    # the client's own beat thread, every 0.3 s
    assert client.add_naming_instance("pay", "10.0.0.1", 1, metadata=fast, heartbeat_interval=0.3)
    assert client.add_naming_instance("pay", "10.0.0.1", 2, metadata=fast)  # never beats
    assert client.add_naming_instance("pay", "10.0.0.1", 3, metadata=fast)  # never beats
    eventually(lambda: sorted(hosts(client, "pay", healthy_only=True)) == [1])
    eventually(lambda: sorted(hosts(client, "pay")) == [1])
    assert hosts(client, "pay")[1]["healthy"] is True


def test_subscribe_notifies_added_modified_deleted(client_factory: Callable[..., Any]) -> None:
    client = client_factory()
    client.add_naming_instance("cart", "10.0.0.1", 80)
    events: queue.Queue[tuple[str, int, float]] = queue.Queue()

    def on_change(event: str, instance: Any) -> None:
        events.put((event, instance.instance["port"], instance.instance["weight"]))

    client.subscribe([SubscribeListener(on_change, "test")], 0.2, service_name="cart")
    time.sleep(0.5)  # the first poll only fills the client's cache (no event, by design)
    client.add_naming_instance("cart", "10.0.0.1", 81)
    assert events.get(timeout=WAIT) == ("ADDED", 81, 1.0)
    client.modify_naming_instance("cart", "10.0.0.1", 81, weight=3.0)
    assert events.get(timeout=WAIT) == ("MODIFIED", 81, 3.0)
    client.remove_naming_instance("cart", "10.0.0.1", 81)
    assert events.get(timeout=WAIT) == ("DELETED", 81, 3.0)


@pytest.mark.parametrize("namespace", ["", "dev"])
def test_config_publish_get_listen_remove(client_factory: Callable[..., Any],
                                         namespace: str) -> None:
    client = client_factory(namespace)
    assert client.get_config("app.yaml", "DEFAULT_GROUP", no_snapshot=True) is None
    assert client.publish_config("app.yaml", "DEFAULT_GROUP", "replicas: 1", config_type="yaml")
    assert client.get_config("app.yaml", "DEFAULT_GROUP") == "replicas: 1"

    seen: queue.Queue[str | None] = queue.Queue()
    client.add_config_watcher("app.yaml", "DEFAULT_GROUP", lambda args: seen.put(args["content"]))
    assert client.publish_config("app.yaml", "DEFAULT_GROUP", "replicas: 2")
    assert seen.get(timeout=WAIT) == "replicas: 2"
    assert client.publish_config("app.yaml", "DEFAULT_GROUP", "replicas: 3")
    assert seen.get(timeout=WAIT) == "replicas: 3"

    page = client.get_configs(no_snapshot=True)
    assert [(i["dataId"], i["content"]) for i in page["pageItems"]] == [("app.yaml", "replicas: 3")]
    assert client.remove_config("app.yaml", "DEFAULT_GROUP")
    assert client.get_config("app.yaml", "DEFAULT_GROUP", no_snapshot=True) is None
    assert seen.get(timeout=WAIT) is None  # a deleted config notifies with no content


def admin_token(server: str) -> str:
    with urllib.request.urlopen(urllib.request.Request(
            f"http://{server}/nacos/v1/auth/login", method="POST",
            data=f"username=admin&password={ADMIN_PASSWORD}".encode()), timeout=10) as answer:
        return str(json.loads(answer.read())["accessToken"])


def test_wrong_calls_get_nacos_style_400s(server: str) -> None:
    request = urllib.request.Request(
        f"http://{server}/nacos/v1/ns/instance?ip=1.1.1.1&port=1&accessToken="
        f"{admin_token(server)}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 400
    assert caught.value.read() == b"caused: Param 'serviceName' is required.;"


def test_without_credentials_the_client_is_refused_and_registers_nothing(
        client_factory: Callable[..., Any]) -> None:
    """Auth is on by default (issue 11): an anonymous registration is a 403, as Nacos's (the
    client reports a 403 as "Insufficient privilege.")."""
    anonymous = client_factory(username="", password="")
    with pytest.raises(nacos.exception.NacosException, match="Insufficient privilege"):
        anonymous.add_naming_instance("orders", "10.0.0.9", 8080, weight=10000)
    assert client_factory().list_naming_instance("orders")["hosts"] == []
    with pytest.raises(urllib.error.HTTPError, match="403"):  # its login is refused
        client_factory(password="wrong").add_naming_instance("orders", "10.0.0.9", 8080)


def test_a_user_granted_one_namespace_works_there_and_nowhere_else(
        server: str, client_factory: Callable[..., Any]) -> None:
    def auth(path: str, **params: str) -> None:
        query = urllib.parse.urlencode({**params, "accessToken": admin_token(server)})
        with urllib.request.urlopen(urllib.request.Request(
                f"http://{server}/nacos/v1/auth/{path}?{query}", method="POST")) as answer:
            assert json.loads(answer.read())["code"] == 200

    auth("users", username="team-a", password="pw-a")
    auth("roles", role="team-a", username="team-a")
    auth("permissions", role="team-a", resource="team-a:*:*", action="rw")
    mine = client_factory("team-a", username="team-a", password="pw-a")
    assert mine.add_naming_instance("orders", "10.0.0.1", 8080)
    assert [h["ip"] for h in mine.list_naming_instance("orders")["hosts"]] == ["10.0.0.1"]
    assert mine.publish_config("app.yaml", "DEFAULT_GROUP", "a: 1")
    assert mine.get_config("app.yaml", "DEFAULT_GROUP") == "a: 1"
    theirs = client_factory("team-b", username="team-a", password="pw-a")
    with pytest.raises(nacos.exception.NacosException, match="Insufficient privilege"):
        theirs.add_naming_instance("orders", "10.0.0.2", 8080)
