"""What namespace mode needs is checked before anything starts, each miss naming its fix."""

from __future__ import annotations

import pytest

from remora.runner import netns
from remora.runner.podnet import NetworkError


def test_not_root_is_refused_naming_host_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    with pytest.raises(NetworkError, match=r"needs root .* or use --network host"):
        netns.preflight()


@pytest.mark.parametrize(("tool", "package"), [
    ("ip", "iproute2"), ("iptables-restore", "iptables"), ("setpriv", "util-linux")])
def test_a_missing_tool_names_its_package(monkeypatch: pytest.MonkeyPatch, tool: str,
                                          package: str) -> None:
    monkeypatch.setattr(netns.os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns.shutil, "which", lambda name: None if name == tool else name)
    with pytest.raises(NetworkError) as caught:
        netns.preflight()
    assert f"needs `{tool}`: apt-get install {package}, or use --network host" in \
        str(caught.value)


def test_a_pod_runs_inside_its_namespace_and_its_sidecar_as_the_proxy_user() -> None:
    pod = netns.PodNetwork("rmr1-web", "10.244.0.2", "rmr1v1")
    assert pod.exec_argv(["python3", "app.py"]) == [
        "ip", "netns", "exec", "rmr1-web", "python3", "app.py"]
    assert pod.proxy_argv(["remora"])[4:] == [
        "setpriv", "--reuid=1337", "--regid=1337", "--clear-groups", "--", "remora"]
    # a user 1337 cannot run the interpreter as: root in group 1337, which the rules exempt
    grouped = netns.PodNetwork("rmr1-web", "10.244.0.2", "rmr1v1", proxy_user=False)
    assert grouped.proxy_argv(["remora"])[4:] == [
        "setpriv", "--regid=1337", "--clear-groups", "--", "remora"]
